//! weft-pipeline against the two shapes a user would write instead:
//!
//! - `tokio_mpsc_tasks`: the Go shape, one tokio task per stage joined by tokio mpsc channels,
//!   one send per item;
//! - `stream_chain`: a futures `StreamExt` chain in one task (no parallelism at all).
//!
//! Shapes: three trivial stages driven from the runtime's `block_on` thread
//! (`pipeline_3stage_10M`), the same three stages with the whole run spawned as a task of a
//! 2-worker runtime, as `#[tokio::main]` on this machine does (`pipeline_trivial_spawned_20M`),
//! and one CPU-bound `map` on 4 workers (`pipeline_parallel_map_4w_10M`). Before the criterion
//! groups, the spawned shape is also run in interleaved rounds and its median wall and CPU time
//! (user + system, from `/proc/self/stat`) printed, so the CPU cost is measured in the same run.
//!
//! Run: `cargo bench -p weft-benches --bench pipeline`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use tokio::sync::mpsc;
use weft_core::Context;
use weft_pipeline::{Pipeline, Stage};

const N: u64 = 10_000_000;
/// Items of the spawned trivial-stages shape.
const N_SPAWNED: u64 = 20_000_000;
/// Channel capacity of the hand-wired version (items), the same as weft's default buffer for
/// `u64` items (2 chunks of 8192).
const CAP: usize = 16384;
/// Chunk sizes measured for weft: `None` is the default (64 KiB of items: 8192 `u64`s).
const CHUNKS: [Option<usize>; 3] = [None, Some(512), Some(2048)];

fn with_chunk<T: Send + 'static>(p: Pipeline<T>, chunk: Option<usize>) -> Pipeline<T> {
    match chunk {
        Some(c) => p.chunk_size(c),
        None => p,
    }
}

fn chunk_name(chunk: Option<usize>) -> String {
    chunk.map_or_else(|| "default".to_owned(), |c| format!("chunk{c}"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `fut` as a task of `rt` (as code under `#[tokio::main]` runs), not on the thread
/// that blocks on the runtime.
fn spawned<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async move { tokio::spawn(fut).await.expect("bench task panicked") })
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat` (clock
/// ticks of 10 ms, so only sums over many iterations mean anything). `None` off Linux.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// One case of [`interleaved`]: runs the shape once on the runtime.
type RunCase = dyn Fn(&tokio::runtime::Runtime);

/// Runs each case `rounds` times, interleaved (so load from other processes hits them alike),
/// and prints the median wall time per run, the CPU time per run and the wall ratio of each
/// case against the last one.
fn interleaved(
    rt: &tokio::runtime::Runtime,
    title: &str,
    rounds: usize,
    cases: &[(&str, &RunCase)],
) {
    let mut wall: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut cpu = vec![Duration::ZERO; cases.len()];
    for _ in 0..rounds {
        for (i, (_, run)) in cases.iter().enumerate() {
            let c0 = cpu_time();
            let t0 = std::time::Instant::now();
            run(rt);
            wall[i].push(t0.elapsed());
            if let (Some(a), Some(b)) = (c0, cpu_time()) {
                cpu[i] += b - a;
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let medians: Vec<Duration> = wall.iter_mut().map(median).collect();
    let peer = medians[cases.len() - 1];
    eprintln!("{title}: {rounds} interleaved rounds");
    for (i, (name, _)) in cases.iter().enumerate() {
        eprintln!(
            "  {name:<24} wall median {:>8.1} ms   cpu/run {:>8.1} ms   speed vs {} {:.2}x",
            medians[i].as_secs_f64() * 1e3,
            cpu[i].as_secs_f64() * 1e3 / rounds as f64,
            cases[cases.len() - 1].0,
            peer.as_secs_f64() / medians[i].as_secs_f64(),
        );
    }
}

#[inline]
fn m1(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}
#[inline]
fn keep(x: &u64) -> bool {
    !x.is_multiple_of(3)
}
#[inline]
fn m2(x: u64) -> u64 {
    x ^ (x >> 7)
}

/// A CPU-bound map for the parallel case: ~20 rounds of a 64-bit mix.
#[inline]
fn heavy(mut x: u64) -> u64 {
    for _ in 0..20 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
    x
}

async fn weft_3stage(chunk: Option<usize>) -> u64 {
    with_chunk(Pipeline::from_iter(0..N), chunk)
        .map("m1", m1)
        .filter("keep", keep)
        .map("m2", m2)
        .fold(Context::background(), 0u64, |a, x| a.wrapping_add(x))
        .await
        .expect("run")
        .output
}

async fn weft_trivial_spawned() -> u64 {
    Pipeline::from_iter(0..N_SPAWNED)
        .map("m1", m1)
        .filter("keep", keep)
        .map("m2", m2)
        .fold(Context::background(), 0u64, |a, x| a.wrapping_add(x))
        .await
        .expect("run")
        .output
}

/// The same stages, each given its default queue size by name (`buffer(16384)`), which keeps
/// each in a task of its own: how weft ran them before consecutive sync stages were fused.
async fn weft_trivial_spawned_unfused() -> u64 {
    let own = |name: &'static str| Stage::new(name).buffer(CAP);
    Pipeline::from_iter(0..N_SPAWNED)
        .map(own("m1"), m1)
        .filter(own("keep"), keep)
        .map(own("m2"), m2)
        .fold(Context::background(), 0u64, |a, x| a.wrapping_add(x))
        .await
        .expect("run")
        .output
}

async fn chain_trivial_spawned() -> u64 {
    futures::stream::iter(0..N_SPAWNED)
        .map(m1)
        .filter(|x| futures::future::ready(keep(x)))
        .map(m2)
        .fold(0u64, |a, x| futures::future::ready(a.wrapping_add(x)))
        .await
}

/// Items of the async shape: each item's future yields once (a stand-in for I/O that is
/// ready at once), up to `ASYNC_WORKERS` in flight.
const N_ASYNC: u64 = 1_000_000;
const ASYNC_WORKERS: usize = 64;

async fn io(x: u64) -> u64 {
    tokio::task::yield_now().await;
    m1(x)
}

async fn weft_async() -> u64 {
    Pipeline::from_iter(0..N_ASYNC)
        .then(Stage::new("io").workers(ASYNC_WORKERS), io)
        .fold(Context::background(), 0u64, |a, x| a.wrapping_add(x))
        .await
        .expect("run")
        .output
}

async fn chain_async() -> u64 {
    futures::stream::iter(0..N_ASYNC)
        .map(io)
        .buffered(ASYNC_WORKERS)
        .fold(0u64, |a, x| futures::future::ready(a.wrapping_add(x)))
        .await
}

async fn mpsc_3stage() -> u64 {
    let (tx0, mut rx0) = mpsc::channel::<u64>(CAP);
    let (tx1, mut rx1) = mpsc::channel::<u64>(CAP);
    let (tx2, mut rx2) = mpsc::channel::<u64>(CAP);
    let (tx3, mut rx3) = mpsc::channel::<u64>(CAP);
    tokio::spawn(async move {
        for i in 0..N {
            if tx0.send(i).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(x) = rx0.recv().await {
            if tx1.send(m1(x)).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(x) = rx1.recv().await {
            if keep(&x) && tx2.send(x).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(x) = rx2.recv().await {
            if tx3.send(m2(x)).await.is_err() {
                return;
            }
        }
    });
    let mut acc = 0u64;
    while let Some(x) = rx3.recv().await {
        acc = acc.wrapping_add(x);
    }
    acc
}

async fn chain_3stage() -> u64 {
    futures::stream::iter(0..N)
        .map(m1)
        .filter(|x| futures::future::ready(keep(x)))
        .map(m2)
        .fold(0u64, |a, x| futures::future::ready(a.wrapping_add(x)))
        .await
}

async fn weft_parallel(ordered: bool, chunk: Option<usize>) -> u64 {
    let stage = Stage::new("heavy").workers(4);
    let stage = if ordered { stage } else { stage.unordered() };
    with_chunk(Pipeline::from_iter(0..N), chunk)
        .map(stage, heavy)
        .fold(Context::background(), 0u64, |a, x| a.wrapping_add(x))
        .await
        .expect("run")
        .output
}

/// Go's fan-out/fan-in: the source deals items round-robin to 4 workers' channels, the
/// workers send into one output channel.
async fn mpsc_parallel() -> u64 {
    let (out_tx, mut out_rx) = mpsc::channel::<u64>(CAP);
    let mut txs = Vec::new();
    for _ in 0..4 {
        let (tx, mut rx) = mpsc::channel::<u64>(CAP);
        txs.push(tx);
        let out = out_tx.clone();
        tokio::spawn(async move {
            while let Some(x) = rx.recv().await {
                if out.send(heavy(x)).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(out_tx);
    tokio::spawn(async move {
        for i in 0..N {
            if txs[(i % 4) as usize].send(i).await.is_err() {
                return;
            }
        }
    });
    let mut acc = 0u64;
    while let Some(x) = out_rx.recv().await {
        acc = acc.wrapping_add(x);
    }
    acc
}

async fn chain_parallel() -> u64 {
    futures::stream::iter(0..N)
        .map(heavy)
        .fold(0u64, |a, x| futures::future::ready(a.wrapping_add(x)))
        .await
}

fn bench(c: &mut Criterion) {
    let rt = rt();
    let expect3 = (0..N)
        .map(m1)
        .filter(keep)
        .map(m2)
        .fold(0u64, u64::wrapping_add);
    let expectp = (0..N).map(heavy).fold(0u64, u64::wrapping_add);
    // Same answers, or the comparison means nothing.
    assert_eq!(rt.block_on(weft_3stage(None)), expect3);
    assert_eq!(rt.block_on(mpsc_3stage()), expect3);
    assert_eq!(rt.block_on(chain_3stage()), expect3);
    assert_eq!(rt.block_on(weft_parallel(true, None)), expectp);
    assert_eq!(rt.block_on(mpsc_parallel()), expectp);

    let expect_spawned = (0..N_SPAWNED)
        .map(m1)
        .filter(keep)
        .map(m2)
        .fold(0u64, u64::wrapping_add);
    assert_eq!(spawned(&rt, weft_trivial_spawned()), expect_spawned);
    assert_eq!(spawned(&rt, chain_trivial_spawned()), expect_spawned);
    assert_eq!(spawned(&rt, weft_trivial_spawned_unfused()), expect_spawned);
    interleaved(
        &rt,
        "pipeline_trivial_spawned_20M",
        15,
        &[
            ("weft", &|rt| {
                black_box(spawned(rt, weft_trivial_spawned()));
            }),
            ("weft_unfused", &|rt| {
                black_box(spawned(rt, weft_trivial_spawned_unfused()));
            }),
            ("stream_chain", &|rt| {
                black_box(spawned(rt, chain_trivial_spawned()));
            }),
        ],
    );

    interleaved(
        &rt,
        "pipeline_parallel_map_4w_10M (spawned)",
        5,
        &[
            ("weft_ordered", &|rt| {
                black_box(spawned(rt, weft_parallel(true, None)));
            }),
            ("stream_chain", &|rt| {
                black_box(spawned(rt, chain_parallel()));
            }),
        ],
    );
    let expect_async = (0..N_ASYNC).map(m1).fold(0u64, u64::wrapping_add);
    assert_eq!(spawned(&rt, weft_async()), expect_async);
    assert_eq!(spawned(&rt, chain_async()), expect_async);
    interleaved(
        &rt,
        "pipeline_then_64w_1M (spawned)",
        9,
        &[
            ("weft", &|rt| {
                black_box(spawned(rt, weft_async()));
            }),
            ("stream_buffered", &|rt| {
                black_box(spawned(rt, chain_async()));
            }),
        ],
    );

    let mut g = c.benchmark_group("pipeline_trivial_spawned_20M");
    g.throughput(Throughput::Elements(N_SPAWNED));
    g.sample_size(10);
    g.bench_function("weft", |b| {
        b.iter(|| black_box(spawned(&rt, weft_trivial_spawned())))
    });
    g.bench_function("weft_unfused", |b| {
        b.iter(|| black_box(spawned(&rt, weft_trivial_spawned_unfused())))
    });
    g.bench_function("stream_chain", |b| {
        b.iter(|| black_box(spawned(&rt, chain_trivial_spawned())))
    });
    g.finish();

    let mut g = c.benchmark_group("pipeline_3stage_10M");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    for chunk in CHUNKS {
        g.bench_function(format!("weft_{}", chunk_name(chunk)), |b| {
            b.iter(|| black_box(rt.block_on(weft_3stage(chunk))))
        });
    }
    g.bench_function("tokio_mpsc_tasks", |b| {
        b.iter(|| black_box(rt.block_on(mpsc_3stage())))
    });
    g.bench_function("stream_chain", |b| {
        b.iter(|| black_box(rt.block_on(chain_3stage())))
    });
    g.finish();

    let mut g = c.benchmark_group("pipeline_parallel_map_4w_10M");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    for chunk in CHUNKS {
        g.bench_function(format!("weft_ordered_{}", chunk_name(chunk)), |b| {
            b.iter(|| black_box(rt.block_on(weft_parallel(true, chunk))))
        });
    }
    g.bench_function("weft_unordered_default", |b| {
        b.iter(|| black_box(rt.block_on(weft_parallel(false, None))))
    });
    g.bench_function("tokio_mpsc_tasks", |b| {
        b.iter(|| black_box(rt.block_on(mpsc_parallel())))
    });
    g.bench_function("stream_chain", |b| {
        b.iter(|| black_box(rt.block_on(chain_parallel())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
