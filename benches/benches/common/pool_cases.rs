//! The pool cases shared by `benches/pool.rs` and `examples/pool_drive.rs` (included with
//! `#[path]`), so the driver measures exactly what the bench does: 1M no-op jobs, 3 priority
//! levels (round-robin), capacity 1024, a draining shutdown at the end.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::Duration;

use weft_pool::{Pool, Priority, Shutdown, Stats};

pub(crate) const JOBS: u64 = 1_000_000;
pub(crate) const WORKERS: usize = 2;
pub(crate) const CAP: usize = 1024;

type NoopPool = Pool<u64, (), Infallible>;

/// How to build the pool every weft case uses (inside the runtime): its workers, and a batch
/// overriding the pool's default.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    pub(crate) workers: usize,
    pub(crate) batch: Option<NonZeroUsize>,
}

/// The bench's setup.
#[allow(dead_code)] // the driver builds its own
pub(crate) const BENCH: Setup = Setup {
    workers: WORKERS,
    batch: None,
};

fn pool(Setup { workers, batch }: Setup) -> NoopPool {
    let mut b = Pool::builder().workers(workers).priorities(3).capacity(CAP);
    if let Some(n) = batch {
        b = b.batch(n);
    }
    b.build(tower::service_fn(|n: u64| async move {
        black_box(n);
        Ok::<_, Infallible>(())
    }))
}

async fn drain(pool: NoopPool) -> Stats {
    pool.shutdown(Shutdown::drain(Duration::from_secs(600)))
        .await
}

/// One `submit_at` per job; the handles dropped, or all awaited (a window of `CAP`).
pub(crate) async fn submit(setup: Setup, await_handles: bool) -> Stats {
    let pool = pool(setup);
    let mut window = VecDeque::with_capacity(CAP);
    for i in 0..JOBS {
        let h = pool
            .submit_at(Priority::new((i % 3) as u8), i)
            .await
            .expect("open");
        if await_handles {
            window.push_back(h);
            if window.len() >= CAP
                && let Some(h) = window.pop_front()
            {
                h.await.expect("completed");
            }
        }
    }
    for h in window {
        h.await.expect("completed");
    }
    drain(pool).await
}

/// One `submit_detached_at` per job (no handle, no result cell).
pub(crate) async fn spawn(setup: Setup) -> Stats {
    let pool = pool(setup);
    for i in 0..JOBS {
        pool.submit_detached_at(Priority::new((i % 3) as u8), i)
            .await
            .expect("open");
    }
    drain(pool).await
}

/// `submit_many` (handles detached) or `submit_many_detached`, 256 jobs per call, cycling the
/// levels.
pub(crate) async fn many(setup: Setup, handles: bool) -> Stats {
    const CHUNK: u64 = 256;
    let pool = pool(setup);
    let mut start = 0;
    let mut level = 0u8;
    while start < JOBS {
        let end = (start + CHUNK).min(JOBS);
        if handles {
            for r in pool.submit_many(Priority::new(level), start..end).await {
                r.expect("open").detach();
            }
        } else {
            assert!(
                pool.submit_many_detached(Priority::new(level), start..end)
                    .await
                    .is_empty()
            );
        }
        level = (level + 1) % 3;
        start = end;
    }
    drain(pool).await
}

/// The peer: `workers` tokio tasks pulling boxed closures from an `async_channel::bounded(CAP)`.
pub(crate) async fn hand_rolled(workers: usize) {
    type Job = Box<dyn FnOnce() + Send>;
    let (tx, rx) = async_channel::bounded::<Job>(CAP);
    let workers: Vec<_> = (0..workers)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                while let Ok(job) = rx.recv().await {
                    job();
                }
            })
        })
        .collect();
    for i in 0..JOBS {
        tx.send(Box::new(move || {
            black_box(i);
        }))
        .await
        .expect("open");
    }
    drop(tx);
    for w in workers {
        w.await.expect("worker");
    }
}

/// Concurrent submitters (issue 19's shapes): `submitters` tasks spawned from the thread that
/// runs `block_on` on a multi-thread runtime share `JOBS` trivial jobs (an atomic add), either
/// fire-and-forget or each keeping `IN_FLIGHT` results awaited in a window.
pub(crate) const IN_FLIGHT: usize = 64;

/// What every concurrent job adds to.
static ADDED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn add_one() {
    ADDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Runs `submit(jobs)` in `submitters` spawned tasks, `JOBS / submitters` jobs each, spawned
/// from the thread in `block_on` (outside the runtime's threads) or, if `inside`, from a task
/// (then they start on that task's thread, in its run queue).
async fn with_submitters<F, Fut>(submitters: usize, inside: bool, submit: F)
where
    F: Fn(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let per = JOBS / submitters as u64;
    let run = async move {
        let tasks: Vec<_> = (0..submitters).map(|_| tokio::spawn(submit(per))).collect();
        for t in tasks {
            t.await.expect("submitter");
        }
    };
    if inside {
        tokio::spawn(run).await.expect("spawner");
    } else {
        run.await;
    }
}

fn check_added(before: u64, jobs: u64) {
    let after = ADDED.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(after - before, jobs, "every job ran once");
}

/// weft: `Pool::builder().workers(WORKERS).priorities(3)` (capacity 1024, aging, stats and panic
/// isolation on, as by default) over a `service_fn` that adds one; `submit_detached` per job,
/// or `submit` with `IN_FLIGHT` handles awaited per submitter; a draining shutdown at the end.
pub(crate) async fn concurrent_weft(submitters: usize, awaited: bool, inside: bool) {
    let before = ADDED.load(std::sync::atomic::Ordering::Relaxed);
    let pool: Pool<u64, (), Infallible> =
        Pool::builder()
            .workers(WORKERS)
            .priorities(3)
            .build(tower::service_fn(|_: u64| async {
                add_one();
                Ok::<_, Infallible>(())
            }));
    let shared = pool.clone();
    with_submitters(submitters, inside, move |per| {
        let pool = shared.clone();
        async move {
            let mut window = VecDeque::with_capacity(IN_FLIGHT);
            for i in 0..per {
                if awaited {
                    window.push_back(pool.submit(i).await.expect("open"));
                    if window.len() >= IN_FLIGHT
                        && let Some(h) = window.pop_front()
                    {
                        h.await.expect("completed");
                    }
                } else {
                    pool.submit_detached(i).await.expect("open");
                }
            }
            for h in window {
                h.await.expect("completed");
            }
        }
    })
    .await;
    let per = JOBS / submitters as u64;
    drain(pool).await;
    check_added(before, per * submitters as u64);
}

/// The peer a tokio user writes by hand: `WORKERS` tasks pulling boxed closures from an
/// `async_channel::bounded(CAP)`; when results are awaited, a `tokio::sync::oneshot` per job.
pub(crate) async fn concurrent_hand_rolled(submitters: usize, awaited: bool, inside: bool) {
    type Job = Box<dyn FnOnce() + Send>;
    let before = ADDED.load(std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = async_channel::bounded::<Job>(CAP);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                while let Ok(job) = rx.recv().await {
                    job();
                }
            })
        })
        .collect();
    let shared = tx.clone();
    with_submitters(submitters, inside, move |per| {
        let tx = shared.clone();
        async move {
            let mut window = VecDeque::with_capacity(IN_FLIGHT);
            for _ in 0..per {
                if awaited {
                    let (done, wait) = tokio::sync::oneshot::channel();
                    tx.send(Box::new(move || {
                        add_one();
                        let _ = done.send(());
                    }))
                    .await
                    .expect("open");
                    window.push_back(wait);
                    if window.len() >= IN_FLIGHT
                        && let Some(w) = window.pop_front()
                    {
                        w.await.expect("completed");
                    }
                } else {
                    tx.send(Box::new(add_one)).await.expect("open");
                }
            }
            for w in window {
                w.await.expect("completed");
            }
        }
    })
    .await;
    drop(tx);
    for w in workers {
        w.await.expect("worker");
    }
    let per = JOBS / submitters as u64;
    check_added(before, per * submitters as u64);
}

/// CPU time of this process so far (every thread's time on a CPU, from
/// `/proc/self/task/*/schedstat`, in ns), or `None` where that is not readable.
#[allow(dead_code)] // the criterion bench reports wall time only
pub(crate) fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}
