//! WaitGroup (and ErrGroup) against raw JoinSet and TaskTracker: spawn one million tiny tasks
//! and wait for all of them, on a current-thread and on a multi-thread runtime.
//!
//! Every variant does the same work per task (an empty future, plus what its API needs: a
//! `Result` for ErrGroup), spawns from inside a runtime task (so the multi-thread runtime uses
//! its worker-local queues, as real code does), and waits until every task has ended.
//!
//! Run: `cargo bench -p weft-benches --bench group`

use std::hint::black_box;

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;
use weft_core::group::{ErrGroup, WaitGroup};

mod common;
use common::time_in_task;

const TASKS: u64 = 1_000_000;

async fn wait_group() {
    let wg = WaitGroup::new();
    for i in 0..TASKS {
        wg.go(async move {
            black_box(i);
        });
    }
    wg.wait().await.expect("no task panics");
}

async fn join_set() {
    let mut set = JoinSet::new();
    for i in 0..TASKS {
        set.spawn(async move {
            black_box(i);
        });
    }
    while let Some(res) = set.join_next().await {
        res.expect("no task panics");
    }
}

async fn task_tracker() {
    let tracker = TaskTracker::new();
    for i in 0..TASKS {
        // Detached, as WaitGroup's tasks are.
        drop(tracker.spawn(async move {
            black_box(i);
        }));
    }
    tracker.close();
    tracker.wait().await;
}

async fn err_group() {
    let mut group = ErrGroup::<std::convert::Infallible>::new();
    for i in 0..TASKS {
        group
            .go(async move {
                black_box(i);
                Ok(())
            })
            .await;
    }
    group.wait().await.expect("no task fails");
}

fn bench_runtime(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, rt: &Runtime) {
    group.bench_function("wait_group", |b| {
        b.iter_custom(|iters| time_in_task(rt, iters, wait_group));
    });
    group.bench_function("join_set", |b| {
        b.iter_custom(|iters| time_in_task(rt, iters, join_set));
    });
    group.bench_function("task_tracker", |b| {
        b.iter_custom(|iters| time_in_task(rt, iters, task_tracker));
    });
    group.bench_function("err_group", |b| {
        b.iter_custom(|iters| time_in_task(rt, iters, err_group));
    });
}

fn one_million_tasks(c: &mut Criterion) {
    let current = Builder::new_current_thread()
        .build()
        .expect("current-thread runtime");
    let mut group = c.benchmark_group("group_1m_tasks/current_thread");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(TASKS));
    bench_runtime(&mut group, &current);
    group.finish();

    let multi = Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("multi-thread runtime");
    let mut group = c.benchmark_group("group_1m_tasks/multi_thread");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(TASKS));
    bench_runtime(&mut group, &multi);
    group.finish();
}

criterion_group!(benches, one_million_tasks);
criterion_main!(benches);
