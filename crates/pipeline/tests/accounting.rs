//! Property tests: whatever the pipeline shape, failures, panics and cancellation point, every
//! stage's counters add up (`received == emitted + filtered + failed + dropped + cancelled`),
//! what a stage hands on is what the next receives, and the sink saw exactly its output.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use weft_core::Context;
use weft_pipeline::{ErrorPolicy, Overflow, Pipeline, Stage, StopReason};

#[derive(Debug, thiserror::Error)]
#[error("bad {0}")]
struct Bad(u64);

#[derive(Debug, Clone)]
struct Case {
    items: u64,
    chunk: usize,
    buffer: usize,
    workers: usize,
    ordered: bool,
    blocking: bool,
    fail_every: u64,
    panic_every: u64,
    fail_fast: bool,
    cancel_after: Option<u64>,
    shed: bool,
    fan: u8,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (0u64..3000, 1usize..64, 1usize..200, 1usize..5),
        (any::<bool>(), any::<bool>(), 0u64..40, 0u64..60),
        (
            any::<bool>(),
            proptest::option::of(0u64..3000),
            any::<bool>(),
            0u8..3,
        ),
    )
        .prop_map(
            |(
                (items, chunk, buffer, workers),
                (ordered, blocking, fail_every, panic_every),
                (fail_fast, cancel_after, shed, fan),
            )| Case {
                items,
                chunk,
                buffer,
                workers,
                ordered,
                blocking,
                fail_every,
                panic_every,
                fail_fast,
                cancel_after,
                shed,
                fan,
            },
        )
}

async fn run(c: Case) {
    let (ctx, cancel) = Context::background().with_cancel();
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let cancel_after = c.cancel_after;
    let policy = || {
        if c.fail_fast {
            ErrorPolicy::fail_fast()
        } else {
            ErrorPolicy::skip()
        }
    };
    let mut stage = Stage::new("work").workers(c.workers).on_error(policy());
    // An odd buffer leaves the default queue: a single-worker, non-blocking `work` then runs
    // fused in `tap`'s task, so the sums are checked for fused stages too.
    if c.buffer.is_multiple_of(2) {
        stage = stage.buffer(c.buffer);
    }
    if !c.ordered {
        stage = stage.unordered();
    }
    if c.blocking {
        stage = stage.blocking();
    }
    let (fail_every, panic_every) = (c.fail_every, c.panic_every);
    let mut p = Pipeline::from_iter(0..c.items)
        .chunk_size(c.chunk)
        .inspect("tap", move |_| {
            if Some(s.fetch_add(1, Ordering::Relaxed)) == cancel_after {
                cancel.cancel();
            }
        })
        .try_map(stage, move |x| {
            assert!(panic_every == 0 || x % panic_every != 1, "panic on {x}");
            if fail_every != 0 && x % fail_every == 0 {
                Err(Bad(*x))
            } else {
                Ok(*x)
            }
        })
        .filter("odd", |x| x % 2 == 1);
    p = match c.fan {
        1 => p.broadcast("tee", 2, |_, b| b.map("b", |x| x)),
        2 => p.partition("part", 3, |x| *x, |_, b| b.map("b", |x| x)),
        _ => p,
    };
    let overflow = if c.shed {
        Overflow::DropNewest
    } else {
        Overflow::Wait
    };
    let p = p.then(
        Stage::new("async")
            .workers(c.workers)
            .buffer(c.buffer)
            .overflow(overflow),
        |x| async move {
            tokio::task::yield_now().await;
            x
        },
    );
    let (report, out_len) = match p.collect::<Vec<u64>>(ctx.clone()).await {
        Ok(done) => {
            if c.cancel_after.is_none() {
                assert_ne!(done.report.stop, StopReason::Aborted);
            }
            let n = done.output.len() as u64;
            (done.report, n)
        }
        Err(e) => {
            assert!(c.fail_fast, "only fail-fast stages fail the run: {e}");
            assert_eq!(e.stage(), "work");
            let r = e.report().clone();
            let n = r.stage("sink").map_or(0, |s| s.emitted);
            (r, n)
        }
    };
    report
        .check()
        .unwrap_or_else(|e| panic!("{e}\n{c:?}\n{report:#?}"));
    let sink = report.stage("sink").expect("sink listed");
    assert_eq!(sink.emitted, out_len);
    let src = report.stage("source").expect("source listed");
    assert!(src.received <= c.items);
    if report.stop == StopReason::Completed {
        assert_eq!(src.received, c.items, "a completed run read everything");
        for s in &report.stages {
            assert_eq!(
                s.cancelled, 0,
                "nothing cancelled in a completed run: {s:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn counters_add_up_current_thread(c in case()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(c));
    }

    #[test]
    fn counters_add_up_multi_thread(c in case()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(c));
    }
}
