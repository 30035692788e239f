//! The pool cases shared by `benches/pool.rs` and `examples/pool_drive.rs` (included with
//! `#[path]`), so the driver measures exactly what the bench does: 1M no-op jobs, 3 priority
//! levels (round-robin), capacity 1024, a draining shutdown at the end.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::Duration;

use weft_pool::{Pool, Shutdown, Stats};

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

/// One `submit_with` per job; the handles dropped, or all awaited (a window of `CAP`).
pub(crate) async fn submit(setup: Setup, await_handles: bool) -> Stats {
    let pool = pool(setup);
    let mut window = VecDeque::with_capacity(CAP);
    for i in 0..JOBS {
        let h = pool.submit_with((i % 3) as u8, i).await.expect("open");
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

/// One `spawn_with` per job (no handle, no result cell).
pub(crate) async fn spawn(setup: Setup) -> Stats {
    let pool = pool(setup);
    for i in 0..JOBS {
        pool.spawn_with((i % 3) as u8, i).await.expect("open");
    }
    drain(pool).await
}

/// `submit_many` (handles detached) or `spawn_many`, 256 jobs per call, cycling the levels.
pub(crate) async fn many(setup: Setup, handles: bool) -> Stats {
    const CHUNK: u64 = 256;
    let pool = pool(setup);
    let mut start = 0;
    let mut level = 0u8;
    while start < JOBS {
        let end = (start + CHUNK).min(JOBS);
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
