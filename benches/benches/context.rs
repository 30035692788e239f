//! weft's Context against tokio-util's CancellationToken (which it wraps) and against the
//! naive way to give a token a deadline (a spawned timer task per token).
//!
//! - `context/no_runtime`: create 10k children of one parent; cancel a parent with 10k
//!   children; create and drop 100k timeout contexts.
//! - `context/current_thread` and `context/multi_thread`: cancel propagation to 10k tasks
//!   each waiting on its own child, and 100k timeouts created and dropped inside a runtime
//!   (where the naive peer can spawn its timer tasks).
//!
//! Run: `cargo bench -p weft-benches --bench context`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::{Builder, Runtime};
use tokio_util::sync::CancellationToken;
use weft_core::context::Context;

mod common;
use common::time_in_task;
use weft_core::group::WaitGroup;

const CHILDREN: usize = 10_000;
const TIMEOUTS: usize = 100_000;
const TIMEOUT: Duration = Duration::from_secs(30);

fn no_runtime(c: &mut Criterion) {
    let mut group = c.benchmark_group("context/no_runtime");

    group.throughput(Throughput::Elements(CHILDREN as u64));
    group.bench_function("create_10k_children/context", |b| {
        let root = Context::background();
        b.iter_with_large_drop(|| {
            (0..CHILDREN)
                .map(|_| root.with_cancel())
                .collect::<Vec<_>>()
        });
    });
    group.bench_function("create_10k_children/cancellation_token", |b| {
        let root = CancellationToken::new();
        b.iter_with_large_drop(|| {
            (0..CHILDREN)
                .map(|_| root.child_token())
                .collect::<Vec<_>>()
        });
    });

    group.bench_function("cancel_parent_of_10k/context", |b| {
        b.iter_batched(
            || {
                let (parent, cancel) = Context::background().with_cancel();
                let children: Vec<_> = (0..CHILDREN).map(|_| parent.with_cancel()).collect();
                (cancel, children)
            },
            |(cancel, children)| {
                cancel.cancel();
                (cancel, children)
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("cancel_parent_of_10k/cancellation_token", |b| {
        b.iter_batched(
            || {
                let parent = CancellationToken::new();
                let children: Vec<_> = (0..CHILDREN).map(|_| parent.child_token()).collect();
                (parent, children)
            },
            |(parent, children)| {
                parent.cancel();
                (parent, children)
            },
            BatchSize::PerIteration,
        );
    });

    group.throughput(Throughput::Elements(TIMEOUTS as u64));
    group.bench_function("timeout_create_drop_100k/context", |b| {
        let root = Context::background();
        b.iter(|| {
            for _ in 0..TIMEOUTS {
                let (ctx, cancel) = black_box(root.with_timeout(TIMEOUT));
                drop((ctx, cancel));
            }
        });
    });
    group.bench_function(
        "timeout_create_drop_100k/cancellation_token_no_deadline",
        |b| {
            let root = CancellationToken::new();
            b.iter(|| {
                for _ in 0..TIMEOUTS {
                    black_box(root.child_token());
                }
            });
        },
    );
    group.finish();
}

/// Yields until `counter` reaches `n`: every waiter is parked before the cancel.
async fn until(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::Acquire) < n {
        tokio::task::yield_now().await;
    }
}

async fn propagate_context() {
    let (parent, cancel) = Context::background().with_cancel();
    let wg = WaitGroup::new();
    let parked = Arc::new(AtomicUsize::new(0));
    for _ in 0..CHILDREN {
        let (child, _child_cancel) = parent.with_cancel();
        let parked = Arc::clone(&parked);
        wg.go(async move {
            let done = child.done();
            parked.fetch_add(1, Ordering::Release);
            done.await;
        });
    }
    until(&parked, CHILDREN).await;
    cancel.cancel();
    wg.wait().await.expect("no waiter panics");
}

async fn propagate_token() {
    let parent = CancellationToken::new();
    let wg = WaitGroup::new();
    let parked = Arc::new(AtomicUsize::new(0));
    for _ in 0..CHILDREN {
        let child = parent.child_token();
        let parked = Arc::clone(&parked);
        wg.go(async move {
            let done = child.cancelled_owned();
            parked.fetch_add(1, Ordering::Release);
            done.await;
        });
    }
    until(&parked, CHILDREN).await;
    parent.cancel();
    wg.wait().await.expect("no waiter panics");
}

async fn timeouts_context() {
    let root = Context::background();
    for _ in 0..TIMEOUTS {
        let (ctx, cancel) = black_box(root.with_timeout(TIMEOUT));
        drop((ctx, cancel));
    }
}

/// The naive deadline: a child token plus a spawned task that cancels it when the timer
/// fires, aborted when the token is dropped.
async fn timeouts_token_with_timer_task() {
    let root = CancellationToken::new();
    for _ in 0..TIMEOUTS {
        let token = root.child_token();
        let timer = tokio::spawn({
            let token = token.clone();
            async move {
                tokio::time::sleep(TIMEOUT).await;
                token.cancel();
            }
        });
        black_box(&token);
        timer.abort();
    }
}

fn with_runtime(c: &mut Criterion, name: &str, rt: &Runtime) {
    let mut group = c.benchmark_group(format!("context/{name}"));
    group.sample_size(20);
    group.throughput(Throughput::Elements(CHILDREN as u64));
    group.bench_function("cancel_propagation_10k_waiters/context", |b| {
        b.iter_custom(|iters| time_in_task(rt, iters, propagate_context));
    });
    group.bench_function("cancel_propagation_10k_waiters/cancellation_token", |b| {
        b.iter_custom(|iters| time_in_task(rt, iters, propagate_token));
    });
    group.throughput(Throughput::Elements(TIMEOUTS as u64));
    group.bench_function("timeout_create_drop_100k/context", |b| {
        b.iter_custom(|iters| time_in_task(rt, iters, timeouts_context));
    });
    group.bench_function("timeout_create_drop_100k/token_with_timer_task", |b| {
        b.iter_custom(|iters| time_in_task(rt, iters, timeouts_token_with_timer_task));
    });
    group.finish();
}

fn runtimes(c: &mut Criterion) {
    let current = Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("current-thread runtime");
    with_runtime(c, "current_thread", &current);
    drop(current);
    let multi = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("multi-thread runtime");
    with_runtime(c, "multi_thread", &multi);
}

criterion_group!(benches, no_runtime, runtimes);
criterion_main!(benches);
