//! 1M no-op jobs through a worker pool with 2 workers, on a 2-thread runtime:
//!
//! - `weft_pool`: `weft_pool::Pool`, 2 workers, 3 priority levels (jobs spread over them), stats
//!   on (always), capacity 1024, handles dropped (detached), then a draining shutdown;
//! - `weft_pool_awaited`: the same, but every handle is awaited (a window of 1024);
//! - `weft_pool_spawn`: the same pool fed one job at a time with `spawn_with` (no handle, no
//!   result cell: what the hand-rolled pool's `send` of a closure gives, too);
//! - `weft_pool_many`: the same pool fed with `submit_many`, 256 jobs per call, the calls
//!   cycling over the 3 levels, handles dropped;
//! - `weft_pool_spawn_many`: the same with `spawn_many` (no handles, no per-job result cell);
//! - `hand_rolled`: 2 tokio tasks pulling boxed closures from an `async_channel::bounded(1024)`;
//! - `tower_buffer_limit`: tower's `Buffer(1024)` over `ConcurrencyLimit(2)`, driven by
//!   `buffer_unordered(1024)`; it is about 10x slower than the others, so it runs 100k jobs per
//!   iteration (its throughput is reported per job, so jobs/s stay comparable);
//! - `joinset`: a tokio task per job in a `JoinSet`, at most 1024 in flight.
//!
//! After the weft run it prints the pool's queue-wait (submit-to-start) percentiles under the
//! priority mix.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use futures::StreamExt;
use tower::{Service, ServiceBuilder, ServiceExt};
use weft_pool::{Pool, Shutdown};

const JOBS: u64 = 1_000_000;
const WORKERS: usize = 2;
const CAP: usize = 1024;
const TOWER_JOBS: u64 = 100_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn weft(await_handles: bool) -> weft_pool::Stats {
    let pool = Pool::builder()
        .workers(WORKERS)
        .priorities(3)
        .capacity(CAP)
        .build(tower::service_fn(|n: u64| async move {
            black_box(n);
            Ok::<_, Infallible>(())
        }));
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
    pool.shutdown(Shutdown::drain(Duration::from_secs(600)))
        .await
}

async fn weft_spawn() -> weft_pool::Stats {
    let pool = Pool::builder()
        .workers(WORKERS)
        .priorities(3)
        .capacity(CAP)
        .build(tower::service_fn(|n: u64| async move {
            black_box(n);
            Ok::<_, Infallible>(())
        }));
    for i in 0..JOBS {
        pool.spawn_with((i % 3) as u8, i).await.expect("open");
    }
    pool.shutdown(Shutdown::drain(Duration::from_secs(600)))
        .await
}

async fn weft_many(handles: bool) -> weft_pool::Stats {
    const CHUNK: u64 = 256;
    let pool = Pool::builder()
        .workers(WORKERS)
        .priorities(3)
        .capacity(CAP)
        .build(tower::service_fn(|n: u64| async move {
            black_box(n);
            Ok::<_, Infallible>(())
        }));
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
    pool.shutdown(Shutdown::drain(Duration::from_secs(600)))
        .await
}

async fn hand_rolled() {
    type Job = Box<dyn FnOnce() + Send>;
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

async fn tower_buffer_limit() {
    let svc = ServiceBuilder::new()
        .buffer(CAP)
        .concurrency_limit(WORKERS)
        .service(tower::service_fn(|n: u64| async move {
            black_box(n);
            Ok::<_, Infallible>(())
        }));
    futures::stream::iter(0..TOWER_JOBS)
        .map(|i| {
            let mut svc = svc.clone();
            async move { svc.ready().await?.call(i).await }
        })
        .buffer_unordered(CAP)
        .for_each(|r| {
            r.expect("ok");
            async {}
        })
        .await;
}

async fn joinset() {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..JOBS {
        if set.len() >= CAP {
            set.join_next().await.expect("task").expect("ok");
        }
        set.spawn(async move {
            black_box(i);
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("ok");
    }
}

fn bench(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("pool_1m_noop");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.throughput(Throughput::Elements(JOBS));
    let mut last_stats = None;
    g.bench_function(BenchmarkId::from_parameter("weft_pool"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                last_stats = Some(rt.block_on(weft(false)));
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("weft_pool_awaited"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(weft(true));
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("weft_pool_spawn"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let s = rt.block_on(weft_spawn());
                assert_eq!(s.count(weft_pool::Outcome::Completed), JOBS);
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("weft_pool_many"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let s = rt.block_on(weft_many(true));
                assert_eq!(s.count(weft_pool::Outcome::Completed), JOBS);
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("weft_pool_spawn_many"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let s = rt.block_on(weft_many(false));
                assert_eq!(s.count(weft_pool::Outcome::Completed), JOBS);
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("hand_rolled"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(hand_rolled());
            }
            start.elapsed()
        })
    });
    g.throughput(Throughput::Elements(TOWER_JOBS));
    g.bench_function(BenchmarkId::from_parameter("tower_buffer_limit"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(tower_buffer_limit());
            }
            start.elapsed()
        })
    });
    g.throughput(Throughput::Elements(JOBS));
    g.bench_function(BenchmarkId::from_parameter("joinset"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(joinset());
            }
            start.elapsed()
        })
    });
    g.finish();
    if let Some(s) = last_stats {
        eprintln!(
            "weft_pool last run: submitted {} completed {} | queue wait (submit-to-start) p50 {:?} p90 {:?} p99 {:?} | run time p50 {:?} p99 {:?}",
            s.submitted,
            s.count(weft_pool::Outcome::Completed),
            s.queue_wait.p50,
            s.queue_wait.p90,
            s.queue_wait.p99,
            s.run_time.p50,
            s.run_time.p99
        );
        for (level, l) in s.queue_wait_by_priority.iter().enumerate() {
            eprintln!(
                "  priority {level}: {} jobs, queue wait p50 {:?} p90 {:?} p99 {:?} max {:?}",
                l.count, l.p50, l.p90, l.p99, l.max
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
