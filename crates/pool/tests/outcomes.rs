//! Property: whatever mix of jobs (completing, failing, panicking, slow), whatever pool size and
//! shutdown mode, every submitted job ends in exactly one outcome, the handles agree with the
//! counters, and `submitted == sum of outcomes` after shutdown.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns too; clippy.toml allows it in tests

use std::time::Duration;

use proptest::prelude::*;
use weft_core::Context;
use weft_pool::{Outcome, Pool, Priority, Shutdown};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Ok,
    Fail,
    Panic,
    /// Sleeps this many ms (past the 50 ms timeout for big values).
    Sleep(u64),
    /// Waits for its Context.
    UntilDone,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Ok),
        1 => Just(Kind::Fail),
        2 => Just(Kind::Panic),
        2 => (0u64..100).prop_map(Kind::Sleep),
        1 => Just(Kind::UntilDone),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Drain(u64),
    Cancel,
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![(0u64..300).prop_map(Mode::Drain), Just(Mode::Cancel)]
}

async fn run(jobs: Vec<(Kind, u8, bool)>, workers: usize, cap: usize, mode: Mode) {
    let pool: Pool<Kind, (), &'static str> = Pool::builder()
        .workers(workers)
        .priorities(3)
        .capacity(cap)
        .timeout(Duration::from_millis(50))
        .build_fn(|ctx: Context, k: Kind| async move {
            match k {
                Kind::Ok => Ok(()),
                Kind::Fail => Err("fail"),
                Kind::Panic => panic!("random panic"),
                Kind::Sleep(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(())
                }
                Kind::UntilDone => {
                    ctx.done().await;
                    Ok(())
                }
            }
        });
    let mut handles = Vec::new();
    let mut refused = 0u64;
    for (k, level, try_only) in jobs {
        if try_only {
            match pool.try_submit_at(Priority::new(level), k) {
                Ok(h) => handles.push(h),
                Err(e) if e.is_full() => {}
                Err(_) => refused += 1,
            }
        } else {
            match pool.submit_at(Priority::new(level), k).await {
                Ok(h) => handles.push(h),
                Err(_) => refused += 1,
            }
        }
    }
    // Cancel one handle in three while things run.
    for h in handles.iter().step_by(3) {
        h.cancel();
    }
    let how = match mode {
        Mode::Drain(ms) => Shutdown::drain(Duration::from_millis(ms)),
        Mode::Cancel => Shutdown::Abort,
    };
    let stats = pool.shutdown(how).await;
    let mut seen = [0u64; 7];
    for h in handles {
        let o = Outcome::of(&h.await);
        seen[Outcome::all().position(|x| x == o).unwrap()] += 1;
    }
    assert_eq!(refused, 0, "nothing is refused before shutdown");
    assert_eq!(stats.outcomes, seen, "counters agree with the handles");
    assert_eq!(stats.submitted, stats.finished(), "{stats:?}");
    assert_eq!(stats.in_flight(), 0);
    assert_eq!(stats.workers, 0);
    assert_eq!(stats.count(Outcome::Rejected), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_job_ends_in_exactly_one_outcome(
        jobs in prop::collection::vec((kind(), 0u8..3, any::<bool>()), 0..60),
        workers in 1usize..4,
        cap in 1usize..16,
        mode in mode(),
    ) {
        // Panicking jobs are expected here: keep the output quiet.
        std::panic::set_hook(Box::new(|_| {}));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(jobs, workers, cap, mode));
    }
}

#[test]
fn the_same_holds_on_a_multi_thread_runtime() {
    std::panic::set_hook(Box::new(|_| {}));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let jobs: Vec<_> = (0..2000u32)
        .map(|i| {
            let k = match i % 7 {
                0 => Kind::Panic,
                1 => Kind::Fail,
                2 => Kind::Sleep(0),
                _ => Kind::Ok,
            };
            (k, (i % 3) as u8, false)
        })
        .collect();
    rt.block_on(run(jobs, 2, 64, Mode::Drain(10_000)));
}

/// Several submitters at once on a multi-thread runtime, each job's handle kept, dropped at
/// once (the job runs detached and its cell serves the next submit), cancelled through its
/// handle, or cancelled by id, while workers, let through a gate a few jobs at a time, keep
/// moving jobs from the intake into the sorted queue. A job lost between the two queues would
/// hang the draining shutdown or break the sums; a queued count out of step with the queues
/// trips the worker's debug assertions.
#[test]
fn concurrent_submitters_cancels_and_detached_jobs_all_end_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let g = std::sync::Arc::clone(&gate);
        let pool: Pool<u32, u32, &'static str> = Pool::builder()
            .workers(2)
            .priorities(3)
            .capacity(256)
            .batch(std::num::NonZeroUsize::new(8).unwrap())
            .build_fn(move |_ctx: Context, n: u32| {
                let g = std::sync::Arc::clone(&g);
                async move {
                    // Closed at the end: then every job passes.
                    if let Ok(p) = g.acquire().await {
                        p.forget();
                    }
                    Ok(n)
                }
            });
        // Lets the workers through slower than the submitters feed them.
        let pacer = {
            let gate = std::sync::Arc::clone(&gate);
            tokio::spawn(async move {
                while !gate.is_closed() {
                    gate.add_permits(4);
                    tokio::task::yield_now().await;
                }
            })
        };
        const PER: u32 = 2000;
        let submitters: Vec<_> = (0..4u32)
            .map(|s| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut kept = Vec::new();
                    for i in 0..PER {
                        let n = s * PER + i;
                        let h = pool
                            .submit_at(Priority::new((n % 3) as u8), n)
                            .await
                            .unwrap();
                        match n % 4 {
                            0 => kept.push((n, h)),
                            1 => drop(h),
                            2 => {
                                // Queued: ends Cancelled; running: may still complete.
                                h.cancel();
                                kept.push((n, h));
                            }
                            _ => {
                                pool.cancel(h.id());
                                kept.push((n, h));
                            }
                        }
                        if i % 16 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    kept
                })
            })
            .collect();
        let mut kept = Vec::new();
        for s in submitters {
            kept.extend(s.await.unwrap());
        }
        gate.close();
        pacer.await.unwrap();
        let (mut completed, mut cancelled) = (0u64, 0u64);
        for (n, h) in kept {
            match h.await {
                Ok(v) => {
                    assert_eq!(v, n, "a handle gets its own job's result");
                    completed += 1;
                }
                Err(weft_pool::JobError::Cancelled) => cancelled += 1,
                Err(e) => panic!("job {n}: unexpected {e:?}"),
            }
        }
        let stats = pool
            .shutdown(Shutdown::drain(Duration::from_secs(60)))
            .await;
        let total = u64::from(4 * PER);
        assert_eq!(stats.submitted, total);
        assert_eq!(stats.finished(), total, "{stats:?}");
        assert_eq!(stats.in_flight(), 0);
        assert_eq!(stats.workers, 0, "every worker left its loop normally");
        // The kept handles are three jobs in four; the dropped ones all completed.
        assert_eq!(completed + cancelled, total / 4 * 3);
        assert_eq!(stats.count(Outcome::Cancelled), cancelled, "{stats:?}");
        assert_eq!(stats.count(Outcome::Completed), completed + total / 4);
        assert!(
            cancelled > total / 4,
            "most cancels should find their job queued: {stats:?}"
        );
    });
}
