//! 1M no-op jobs through a worker pool with 2 workers, on a 2-thread runtime:
//!
//! - `weft_pool`: `weft_pool::Pool`, 2 workers, 3 priority levels (jobs spread over them), stats
//!   on (always), capacity 1024, handles dropped (detached), then a draining shutdown;
//! - `weft_pool_awaited`: the same, but every handle is awaited (a window of 1024);
//! - `weft_pool_spawn`: the same pool fed one job at a time with `submit_detached_at` (no handle, no
//!   result cell: what the hand-rolled pool's `send` of a closure gives, too);
//! - `weft_pool_many`: the same pool fed with `submit_many`, 256 jobs per call, the calls
//!   cycling over the 3 levels, handles dropped;
//! - `weft_pool_spawn_many`: the same with `submit_many_detached` (no handles, no per-job result
//!   cell);
//! - `hand_rolled`: 2 tokio tasks pulling boxed closures from an `async_channel::bounded(1024)`;
//! - `tower_buffer_limit`: tower's `Buffer(1024)` over `ConcurrencyLimit(2)`, driven by
//!   `buffer_unordered(1024)`; it is about 10x slower than the others, so it runs 100k jobs per
//!   iteration (its throughput is reported per job, so jobs/s stay comparable);
//! - `joinset`: a tokio task per job in a `JoinSet`, at most 1024 in flight.
//!
//! After the weft run it prints the pool's queue-wait (submit-to-start) percentiles under the
//! priority mix.
//!
//! Group `pool_concurrent` (issue 19's shapes): 2 workers, 1, 4 or 16 submitting tasks spawned
//! from the thread in `block_on`, 1M jobs that each add one to an atomic; `ff_*`
//! fire-and-forget (`submit_detached` against the hand-rolled pool's `send`), `aw_*` submit and
//! await with 64 in flight per submitter (`submit` and its handle against `send` and a
//! oneshot). For CPU time beside wall time, and interleaved rounds, run the same cases with
//! `cargo run --release -p weft-benches --example pool_drive -- ff_weft_4,ff_hand_4 5`.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Instant;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use futures::StreamExt;
use tower::{Service, ServiceBuilder, ServiceExt};
#[path = "common/pool_cases.rs"]
mod cases;
use cases::{CAP, JOBS, WORKERS};

const TOWER_JOBS: u64 = 100_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
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
                last_stats = Some(rt.block_on(cases::submit(cases::BENCH, false)));
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("weft_pool_awaited"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(cases::submit(cases::BENCH, true));
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("weft_pool_spawn"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let s = rt.block_on(cases::spawn(cases::BENCH));
                assert_eq!(s.count(weft_pool::Outcome::Completed), JOBS);
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("weft_pool_many"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let s = rt.block_on(cases::many(cases::BENCH, true));
                assert_eq!(s.count(weft_pool::Outcome::Completed), JOBS);
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("weft_pool_spawn_many"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let s = rt.block_on(cases::many(cases::BENCH, false));
                assert_eq!(s.count(weft_pool::Outcome::Completed), JOBS);
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("hand_rolled"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(cases::hand_rolled(WORKERS));
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

fn concurrent(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("pool_concurrent");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.throughput(Throughput::Elements(JOBS));
    for submitters in [1, 4, 16] {
        for (shape, awaited) in [("ff", false), ("aw", true)] {
            g.bench_function(format!("{shape}_weft_{submitters}"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        rt.block_on(cases::concurrent_weft(submitters, awaited, false));
                    }
                    start.elapsed()
                })
            });
            g.bench_function(format!("{shape}_hand_{submitters}"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        rt.block_on(cases::concurrent_hand_rolled(submitters, awaited, false));
                    }
                    start.elapsed()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench, concurrent);
criterion_main!(benches);
