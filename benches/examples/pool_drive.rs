//! The cases of `benches/pool.rs` (1M no-op jobs, 2 workers, 3 priority levels, capacity 1024),
//! run a fixed number of times, interleaved, one line per run, then each case's median. For
//! `perf stat`/`perf record` (CPU time and context switches per job) and for comparisons on a
//! machine whose speed drifts: interleaved runs see the same drift.
//!
//! ```text
//! cargo run --release -p weft-benches --example pool_drive -- weft,hand_rolled 10
//! ```
//!
//! Cases: `weft` (per-job submit, handles dropped), `weft_awaited`, `spawn` (per-job
//! `spawn_with`, no handles), `many` (`submit_many`),
//! `spawn_many`, `hand_rolled`. `WORKERS=n` and `BATCH=n` override the pool's settings.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use weft_pool::{Pool, Shutdown};

const JOBS: u64 = 1_000_000;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn pool() -> Pool<u64, (), Infallible> {
    let mut b = Pool::builder()
        .workers(env("WORKERS").unwrap_or(2))
        .priorities(3)
        .capacity(1024);
    if let Some(n) = env("BATCH") {
        b = b.batch(n);
    }
    b.build(tower::service_fn(|n: u64| async move {
        black_box(n);
        Ok::<_, Infallible>(())
    }))
}

async fn weft(await_handles: bool) {
    let pool = pool();
    let mut window = std::collections::VecDeque::with_capacity(1024);
    for i in 0..JOBS {
        let h = pool.submit_with((i % 3) as u8, i).await.expect("open");
        if await_handles {
            window.push_back(h);
            if window.len() >= 1024
                && let Some(h) = window.pop_front()
            {
                h.await.expect("completed");
            }
        }
    }
    for h in window {
        h.await.expect("completed");
    }
    let s = pool
        .shutdown(Shutdown::drain(Duration::from_secs(600)))
        .await;
    eprintln!(
        "  queue wait p50 {:?} p99 {:?}",
        s.queue_wait.p50, s.queue_wait.p99
    );
}

async fn spawn() {
    let pool = pool();
    for i in 0..JOBS {
        pool.spawn_with((i % 3) as u8, i).await.expect("open");
    }
    pool.shutdown(Shutdown::drain(Duration::from_secs(600)))
        .await;
}

async fn many(handles: bool) {
    let pool = pool();
    let mut start = 0;
    let mut level = 0u8;
    while start < JOBS {
        let end = (start + 256).min(JOBS);
        if handles {
            for r in pool.submit_many(level, start..end).await {
                r.expect("open").detach();
            }
        } else {
            assert!(pool.spawn_many(level, start..end).await.is_empty());
        }
        level = (level + 1) % 3;
        start = end;
    }
    pool.shutdown(Shutdown::drain(Duration::from_secs(600)))
        .await;
}

async fn hand_rolled() {
    type Job = Box<dyn FnOnce() + Send>;
    let (tx, rx) = async_channel::bounded::<Job>(1024);
    let workers: Vec<_> = (0..2)
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

fn main() {
    let mut args = std::env::args().skip(1);
    let cases: Vec<String> = args
        .next()
        .unwrap_or_else(|| "weft,hand_rolled".into())
        .split(',')
        .map(String::from)
        .collect();
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for r in 0..runs {
        for (case, times) in cases.iter().zip(&mut times) {
            let t = Instant::now();
            match case.as_str() {
                "weft" => rt.block_on(weft(false)),
                "weft_awaited" => rt.block_on(weft(true)),
                "spawn" => rt.block_on(spawn()),
                "many" => rt.block_on(many(true)),
                "spawn_many" => rt.block_on(many(false)),
                "hand_rolled" => rt.block_on(hand_rolled()),
                other => panic!("unknown case {other}"),
            }
            let ms = t.elapsed().as_secs_f64() * 1e3;
            times.push(ms);
            println!("run {r} {case}: {ms:.1} ms");
        }
    }
    for (case, mut t) in cases.iter().zip(times) {
        t.sort_by(f64::total_cmp);
        println!("median {case}: {:.1} ms", t[t.len() / 2]);
    }
}
