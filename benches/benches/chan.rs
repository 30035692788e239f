//! Channel throughput: weft's channels against tokio mpsc, async-channel, flume and kanal
//! (async APIs), on a multi-thread tokio runtime.
//!
//! Each iteration moves `MESSAGES` `u64`s from P producer tasks to C consumer tasks and waits
//! for all of them. Cases: bounded(1024) 1x1 and 4x4, rendezvous 1x1 and 4x4. tokio's mpsc is
//! single-consumer and panics on capacity 0, so it runs in bounded 1x1 only; async-channel
//! panics on capacity 0, so it is absent from the rendezvous cases. Groups are named
//! `chan/{mt,ct}/{flavour}/{producers}x{consumers}` (multi-thread runtime with one worker per
//! core, or current-thread runtime).
//!
//! Run: `cargo bench -p weft-benches --bench chan`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const MESSAGES: u64 = 20_000;

fn runtime(multi_thread: bool) -> Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// Spawns `p` producers and `c` consumers over one channel and waits for all of them.
/// `$make` builds `(tx, rx)`; `$send` and `$recv` are the async calls, `$recv` yielding
/// `Option<u64>`.
macro_rules! mpmc {
    ($p:expr, $c:expr, $make:expr, |$tx:ident, $v:ident| $send:expr, |$rx:ident| $recv:expr) => {{
        let (tx, rx) = $make;
        let per = MESSAGES / $p as u64;
        let mut producers = Vec::with_capacity($p);
        for _ in 0..$p {
            let $tx = tx.clone();
            producers.push(tokio::spawn(async move {
                for $v in 0..per {
                    $send.await;
                }
            }));
        }
        drop(tx);
        let mut consumers = Vec::with_capacity($c);
        for _ in 0..$c {
            let $rx = rx.clone();
            consumers.push(tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(v) = $recv {
                    n += v & 1;
                }
                n
            }));
        }
        drop(rx);
        for p in producers {
            p.await.expect("producer task");
        }
        let mut total = 0;
        for c in consumers {
            total += c.await.expect("consumer task");
        }
        std::hint::black_box(total);
    }};
}

async fn weft(p: usize, c: usize, cap: usize) {
    mpmc!(
        p,
        c,
        weft_core::chan::bounded::<u64>(cap),
        |tx, v| async { tx.send(v).await.expect("receivers outlive senders") },
        |rx| rx.recv().await
    )
}

async fn async_channel(p: usize, c: usize, cap: usize) {
    mpmc!(
        p,
        c,
        async_channel::bounded::<u64>(cap),
        |tx, v| async { tx.send(v).await.expect("receivers outlive senders") },
        |rx| rx.recv().await.ok()
    )
}

async fn flume(p: usize, c: usize, cap: usize) {
    mpmc!(
        p,
        c,
        flume::bounded::<u64>(cap),
        |tx, v| async { tx.send_async(v).await.expect("receivers outlive senders") },
        |rx| rx.recv_async().await.ok()
    )
}

async fn kanal(p: usize, c: usize, cap: usize) {
    mpmc!(
        p,
        c,
        kanal::bounded_async::<u64>(cap),
        |tx, v| async { tx.send(v).await.expect("receivers outlive senders") },
        |rx| rx.recv().await.ok()
    )
}

async fn tokio_mpsc_1x1(cap: usize) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(cap);
    let producer = tokio::spawn(async move {
        for v in 0..MESSAGES {
            tx.send(v).await.expect("the receiver outlives the sender");
        }
    });
    let consumer = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(v) = rx.recv().await {
            n += v & 1;
        }
        n
    });
    producer.await.expect("producer task");
    std::hint::black_box(consumer.await.expect("consumer task"));
}

fn bench(c: &mut Criterion, multi_thread: bool) {
    let rt = runtime(multi_thread);
    let rt_name = if multi_thread { "mt" } else { "ct" };
    let cases: [(&str, usize, usize, usize); 4] = [
        ("bounded1024", 1024, 1, 1),
        ("bounded1024", 1024, 4, 4),
        ("rendezvous", 0, 1, 1),
        ("rendezvous", 0, 4, 4),
    ];
    for (flavour, cap, p, cons) in cases {
        let mut group = c.benchmark_group(format!("chan/{rt_name}/{flavour}/{p}x{cons}"));
        group.throughput(Throughput::Elements(MESSAGES));
        group.bench_function(BenchmarkId::from_parameter("weft"), |b| {
            b.to_async(&rt).iter(|| weft(p, cons, cap))
        });
        if cap > 0 && p == 1 && cons == 1 {
            group.bench_function(BenchmarkId::from_parameter("tokio_mpsc"), |b| {
                b.to_async(&rt).iter(|| tokio_mpsc_1x1(cap))
            });
        }
        if cap > 0 {
            group.bench_function(BenchmarkId::from_parameter("async_channel"), |b| {
                b.to_async(&rt).iter(|| async_channel(p, cons, cap))
            });
        }
        group.bench_function(BenchmarkId::from_parameter("flume"), |b| {
            b.to_async(&rt).iter(|| flume(p, cons, cap))
        });
        group.bench_function(BenchmarkId::from_parameter("kanal"), |b| {
            b.to_async(&rt).iter(|| kanal(p, cons, cap))
        });
        group.finish();
    }
}

/// The cases the targets are set on: a multi-thread runtime (both cores).
fn multi_thread(c: &mut Criterion) {
    bench(c, true);
}

/// The same on a current-thread runtime: the channel's own cost per message, without
/// cross-thread wake-ups.
fn current_thread(c: &mut Criterion) {
    bench(c, false);
}

criterion_group!(benches, multi_thread, current_thread);
criterion_main!(benches);
