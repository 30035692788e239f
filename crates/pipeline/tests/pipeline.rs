//! Behaviour of pipelines: stages, order, policies, fan-out/fan-in, shutdown, sinks, counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use weft_core::Context;
use weft_pipeline::{
    Backoff, ErrorPolicy, Overflow, Pipeline, PipelineError, Retry, Shutdown, Stage, StopReason,
};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
enum E {
    #[error("transient {0}")]
    Transient(u64),
    #[error("permanent {0}")]
    Permanent(u64),
}

fn bg() -> Context {
    Context::background()
}

#[tokio::test]
async fn generate_square_filter_counts_every_item() {
    let done = Pipeline::generate(|_ctx, tx| async move {
        for i in 0..1000u64 {
            if tx.send(i).await.is_err() {
                return;
            }
        }
    })
    .map("square", |x| x * x)
    .filter("even", |x| x % 2 == 0)
    .collect::<Vec<_>>(bg())
    .await
    .unwrap();
    let want: Vec<u64> = (0..1000u64).map(|x| x * x).filter(|x| x % 2 == 0).collect();
    assert_eq!(done.output, want);
    let r = &done.report;
    assert_eq!(r.stop, StopReason::Completed);
    let sq = r.stage("square").unwrap();
    assert_eq!((sq.received, sq.emitted, sq.output), (1000, 1000, 1000));
    let ev = r.stage("even").unwrap();
    assert_eq!((ev.received, ev.emitted, ev.filtered), (1000, 500, 500));
    assert_eq!(r.stage("sink").unwrap().received, 500);
    r.check().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_ordered_keeps_order_and_unordered_keeps_items() {
    let done = Pipeline::from_iter(0..50_000u64)
        .chunk_size(64)
        .map(Stage::new("sq").workers(4), |x| x * x)
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(
        done.output,
        (0..50_000u64).map(|x| x * x).collect::<Vec<_>>()
    );
    let done = Pipeline::from_iter(0..50_000u64)
        .chunk_size(64)
        .map(Stage::new("sq").workers(4).unordered(), |x| x * x)
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    let mut out = done.output;
    out.sort_unstable();
    assert_eq!(out, (0..50_000u64).map(|x| x * x).collect::<Vec<_>>());
    done.report.check().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_stage_runs_off_the_async_thread() {
    let async_thread = std::thread::current().id();
    let done = Pipeline::from_iter(0..100u32)
        .map(Stage::new("cpu").blocking().workers(2), move |x| {
            (x, std::thread::current().id() != async_thread)
        })
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert!(done.output.iter().all(|(_, off)| *off));
    assert_eq!(
        done.output.iter().map(|p| p.0).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn few_items_are_split_across_idle_workers() {
    // 8 items in one chunk and 4 workers that each wait for all 4 to be running at once:
    // this only finishes if the chunk was split.
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let b = barrier.clone();
    let done = Pipeline::from_iter(0..4u32)
        .map(Stage::new("meet").workers(4).blocking(), move |x| {
            b.wait();
            x
        })
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(done.output, [0, 1, 2, 3]);
}

#[tokio::test]
async fn fail_fast_returns_first_error_with_stage_name_and_balanced_report() {
    let err = Pipeline::from_iter(0..10_000u64)
        .chunk_size(16)
        .try_map("check", |x| {
            if *x == 500 {
                Err(E::Permanent(*x))
            } else {
                Ok(*x)
            }
        })
        .map("after", |x| x)
        .collect::<Vec<_>>(bg())
        .await
        .unwrap_err();
    assert_eq!(err.stage(), "check");
    assert_eq!(err.to_string(), "stage `check` failed: permanent 500");
    let r = err.report();
    assert_eq!(r.stop, StopReason::Failed);
    assert_eq!(r.stage("check").unwrap().failed, 1);
    r.check().unwrap();
}

#[tokio::test(start_paused = true)]
async fn retry_only_transient_errors_then_skip() {
    let tries_of_1 = Arc::new(AtomicU32::new(0));
    let c = tries_of_1.clone();
    let retry = Retry::new(3)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .when(|e: &E| matches!(e, E::Transient(_)));
    let stage = Stage::new("op").on_error(ErrorPolicy::skip().with_retry(retry));
    let done = Pipeline::from_iter(0..4u64)
        .try_map(stage, move |x| {
            match x {
                // fails twice, then succeeds
                1 if c.fetch_add(1, Ordering::SeqCst) < 2 => Err(E::Transient(*x)),
                // never retried
                2 => Err(E::Permanent(*x)),
                // retried 3 times, still failing
                3 => Err(E::Transient(*x)),
                _ => Ok(*x),
            }
        })
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(done.output, [0, 1], "recovered item kept its place");
    let op = done.report.stage("op").unwrap();
    assert_eq!((op.emitted, op.failed, op.retried), (2, 2, 2 + 3));
    done.report.check().unwrap();
}

#[tokio::test]
async fn dead_letters_carry_item_and_error() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(100);
    let stage = Stage::new("odd").on_error(ErrorPolicy::dead_letter(tx));
    let done = Pipeline::from_iter(0..10u64)
        .try_map(stage, |x| {
            if x % 2 == 1 {
                Err(E::Permanent(*x))
            } else {
                Ok(*x)
            }
        })
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(done.output, [0, 2, 4, 6, 8]);
    let mut letters = Vec::new();
    while let Ok(l) = rx.try_recv() {
        assert_eq!(&*l.stage, "odd");
        letters.push((l.item, l.error.to_string()));
    }
    assert_eq!(letters.len(), 5);
    assert_eq!(letters[0], (Some(1), "permanent 1".to_string()));
}

#[tokio::test]
async fn panic_in_map_is_caught_and_handled_by_policy() {
    let stage = Stage::new("boom").workers(2).on_error(ErrorPolicy::skip());
    let done = Pipeline::from_iter(0..1000u64)
        .map(stage, |x| {
            assert!(x % 100 != 7, "bad item {x}");
            x
        })
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(done.output.len(), 990);
    assert!(
        done.output.windows(2).all(|w| w[0] < w[1]),
        "order kept around panics"
    );
    assert_eq!(done.report.stage("boom").unwrap().failed, 10);
    done.report.check().unwrap();

    let err = Pipeline::from_iter(0..10u64)
        .map("boom", |x| {
            assert!(x != 3, "bad item");
            x
        })
        .collect::<Vec<_>>(bg())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("panicked: bad item"), "{err}");
    err.report().check().unwrap();
}

/// Filter and inspect run a chunk in place; a panic in the middle of a chunk (first item, a
/// run of consecutive items, last item) must fail exactly that item, keep the others' verdicts
/// and order, and hand the panicking item to the dead-letter channel.
#[tokio::test]
async fn panics_in_filter_and_inspect_fail_only_their_item() {
    let boom = |x: u64| matches!(x % 50, 0 | 21 | 22 | 49);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
    let keep = Stage::new("keep").on_error(ErrorPolicy::dead_letter(tx.clone()));
    let tap = Stage::new("tap").on_error(ErrorPolicy::dead_letter(tx));
    let done = Pipeline::from_iter(0..1000u64)
        .chunk_size(50)
        .filter(keep, move |x| {
            assert!(!boom(*x), "filter boom {x}");
            x % 3 != 0
        })
        .inspect(tap, |x| assert!(x % 50 != 47, "inspect boom {x}"))
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    let expect: Vec<u64> = (0..1000u64)
        .filter(|x| !boom(*x) && x % 3 != 0 && x % 50 != 47)
        .collect();
    assert_eq!(done.output, expect, "every other item kept, in order");
    let keep = done.report.stage("keep").unwrap();
    let filter_panics = (0..1000u64).filter(|x| boom(*x)).count() as u64;
    let kept = (0..1000u64).filter(|x| !boom(*x) && x % 3 != 0).count() as u64;
    assert_eq!(
        (keep.received, keep.emitted, keep.failed, keep.filtered),
        (1000, kept, filter_panics, 1000 - kept - filter_panics)
    );
    let tap = done.report.stage("tap").unwrap();
    assert_eq!(
        (tap.emitted, tap.failed),
        (expect.len() as u64, kept - expect.len() as u64)
    );
    done.report.check().unwrap();
    let mut letters = Vec::new();
    while let Ok(l) = rx.try_recv() {
        letters.push((l.stage.to_string(), l.item));
    }
    letters.sort();
    let mut want: Vec<(String, Option<u64>)> = (0..1000u64)
        .filter(|x| boom(*x))
        .map(|x| ("keep".to_string(), Some(x)))
        .chain(
            (0..1000u64)
                .filter(|x| !boom(*x) && x % 3 != 0 && x % 50 == 47)
                .map(|x| ("tap".to_string(), Some(x))),
        )
        .collect();
    want.sort();
    assert_eq!(letters, want, "each panicking item is handed back once");
}

#[tokio::test]
async fn panic_in_async_stage_goes_to_dead_letter() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(10);
    let stage = Stage::new("fetch")
        .workers(3)
        .on_error(ErrorPolicy::dead_letter(tx));
    let done = Pipeline::from_iter(0..6u64)
        .then(stage, |x| async move {
            assert!(x != 4, "cannot fetch 4");
            x
        })
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(done.output, [0, 1, 2, 3, 5]);
    let l = rx.try_recv().unwrap();
    assert!(l.item.is_none(), "then consumed the item");
    assert!(l.error.to_string().contains("cannot fetch 4"));
}

#[tokio::test(start_paused = true)]
async fn batch_flushes_on_size_and_on_time() {
    let done = Pipeline::generate(|_ctx, tx| async move {
        for i in 0..7u32 {
            // 5 quick items, then a pause longer than max_wait, then 2 more
            if i == 5 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if tx.send(i).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .batch("b", 3, Duration::from_millis(100))
    .collect::<Vec<_>>(bg())
    .await
    .unwrap();
    // [0,1,2] by size, [3,4] by the timer during the pause, [5,6] by the timer before the end
    assert_eq!(done.output, [vec![0, 1, 2], vec![3, 4], vec![5, 6]]);
    let b = done.report.stage("b").unwrap();
    assert_eq!((b.received, b.emitted, b.output), (7, 7, 3));
}

#[tokio::test(start_paused = true)]
async fn throttle_spaces_items() {
    let start = tokio::time::Instant::now();
    let done = Pipeline::from_iter(0..21u32)
        .throttle("t", 10, Duration::from_secs(1))
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(done.output.len(), 21);
    // the first tick is immediate, then one per 100 ms
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn bounded_buffer_caps_queue_depth() {
    let done = Pipeline::from_iter(0..200u32)
        .chunk_size(2)
        .then(Stage::new("slow").buffer(6), |x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    let slow = done.report.stage("slow").unwrap();
    assert!(
        slow.max_queue_depth <= 6 && slow.max_queue_depth >= 2,
        "{slow:?}"
    );
    assert_eq!(done.output.len(), 200);
}

#[tokio::test(start_paused = true)]
async fn drop_when_full_counts_drops() {
    let done = Pipeline::from_iter(0..500u32)
        .chunk_size(1)
        .then(
            Stage::new("slow").buffer(2).overflow(Overflow::DropNewest),
            |x| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                x
            },
        )
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    let slow = done.report.stage("slow").unwrap();
    assert!(slow.dropped > 0);
    assert_eq!(slow.received, 500);
    assert_eq!(done.output.len() as u64, slow.emitted);
    assert_eq!(slow.emitted + slow.dropped, 500);
    done.report.check().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_partition_merge_account_per_branch() {
    let done = Pipeline::from_iter(0..1000u64)
        .broadcast("tee", 3, |i, b| b.map("x", move |x| x + i as u64 * 10_000))
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(done.output.len(), 3000);
    for i in 0..3 {
        assert_eq!(
            done.report.stage(&format!("tee[{i}]/x")).unwrap().received,
            1000
        );
    }
    assert_eq!(done.report.stage("tee").unwrap().output, 3000);
    done.report.check().unwrap();

    let done = Pipeline::from_iter(0..1000u64)
        .partition("part", 4, |x| x % 10, |_, b| b.filter("f", |x| x % 2 == 0))
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(done.output.len(), 500);
    let received: u64 = (0..4)
        .map(|i| done.report.stage(&format!("part[{i}]/f")).unwrap().received)
        .sum();
    assert_eq!(received, 1000);
    done.report.check().unwrap();

    let a = Pipeline::from_iter(0..100u64).map("a", |x| x);
    let b = Pipeline::from_iter(100..300u64).map("b", |x| x);
    let done = Pipeline::merge([a, b])
        .map("after", |x| x)
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    let mut out = done.output;
    out.sort_unstable();
    assert_eq!(out, (0..300).collect::<Vec<_>>());
    assert_eq!(done.report.stage("after").unwrap().received, 300);
    done.report.check().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_midway_accounts_items_in_flight() {
    let (ctx, cancel) = bg().with_cancel();
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let done = Pipeline::from_iter(0..1_000_000u64)
        .chunk_size(32)
        .inspect("count", move |_| {
            if s.fetch_add(1, Ordering::Relaxed) == 5000 {
                cancel.cancel();
            }
        })
        .map(Stage::new("sq").workers(3), |x| x * x)
        .collect::<Vec<_>>(ctx.clone())
        .await
        .unwrap();
    let r = &done.report;
    assert_eq!(r.stop, StopReason::Aborted);
    assert!((done.output.len() as u64) < 1_000_000);
    assert_eq!(r.stage("sink").unwrap().emitted, done.output.len() as u64);
    r.check().unwrap();
}

#[tokio::test(start_paused = true)]
async fn drain_timeout_aborts_a_stuck_stage() {
    let (ctx, cancel) = bg().with_cancel();
    let done = Pipeline::from_iter(0..100u32)
        .then("stuck", move |x| {
            if x == 10 {
                cancel.cancel();
            }
            async move {
                if x >= 10 {
                    std::future::pending::<()>().await;
                }
                x
            }
        })
        .shutdown(Shutdown::drain(Duration::from_secs(3)))
        .collect::<Vec<_>>(ctx.clone())
        .await
        .unwrap();
    assert_eq!(done.report.stop, StopReason::DrainTimedOut);
    assert_eq!(done.output, (0..10).collect::<Vec<_>>());
    let stuck = done.report.stage("stuck").unwrap();
    assert!(stuck.cancelled >= 1);
    done.report.check().unwrap();
}

#[tokio::test]
async fn already_cancelled_context_runs_nothing_and_balances() {
    let (ctx, cancel) = bg().with_cancel();
    cancel.cancel();
    let done = Pipeline::from_iter(0..1_000_000u64)
        .map("m", |x| x)
        .collect::<Vec<_>>(ctx.clone())
        .await
        .unwrap();
    assert_eq!(done.report.stop, StopReason::Aborted);
    assert!(done.output.len() < 1_000_000);
    done.report.check().unwrap();
}

#[tokio::test]
async fn into_channel_reports_closed_receiver() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let run = tokio::spawn(Pipeline::from_iter(0..1000u32).into_channel(bg(), tx));
    assert_eq!(rx.recv().await, Some(0));
    drop(rx);
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, PipelineError::Sink { .. }));
    assert_eq!(err.to_string(), "sink failed: sink channel closed");
    err.report().check().unwrap();
}

#[tokio::test]
async fn live_progress_shows_a_run_in_flight() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let p = Pipeline::from_iter(0..10u32)
        .chunk_size(1)
        .then("wait", move |x| {
            let g = g.clone();
            async move {
                if x == 5 {
                    g.notified().await;
                }
                x
            }
        });
    let progress = p.progress();
    let run = tokio::spawn(async move { p.collect::<Vec<_>>(bg()).await });
    // wait until the stage has taken item 5 and is stuck on it
    loop {
        if let Some(s) = progress.stage("wait")
            && s.emitted == 5
            && s.received >= 6
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(!run.is_finished());
    gate.notify_one();
    let done = run.await.unwrap().unwrap();
    assert_eq!(done.output.len(), 10);
    assert_eq!(progress.stage("wait").unwrap().emitted, 10);
}

#[tokio::test]
async fn stream_sink_yields_in_order_and_counts_unread_as_cancelled() {
    let mut s = Pipeline::from_iter(0..10_000u32)
        .map("m", |x| x + 1)
        .into_stream(bg());
    let first: Vec<u32> = s.by_ref().take(5).collect().await;
    assert_eq!(first, [1, 2, 3, 4, 5]);
    let r = s.finish().await.unwrap();
    assert_eq!(r.stop, StopReason::Aborted, "stopped before the end");
    let sink = r.stage("sink").unwrap();
    assert_eq!(sink.emitted, 5);
    r.check().unwrap();

    let s = Pipeline::from_iter(0..100u32).into_stream(bg());
    let all: Vec<u32> = s.collect().await;
    assert_eq!(all.len(), 100);
}

// ---------------------------------------------------------------- cancel safety

#[tokio::test(start_paused = true)]
async fn emitter_send_cancelled_mid_flight_sends_nothing() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let done = Pipeline::generate(|_ctx, tx| async move {
        // Fill the pipeline, then a send that has to wait is cancelled by a timeout.
        let mut sent = 0u32;
        for i in 0..10_000u32 {
            tokio::select! {
                r = tx.send(i) => {
                    if r.is_err() { return; }
                    sent += 1;
                }
                () = tokio::time::sleep(Duration::from_millis(10)) => {
                    // cancelled mid-flight: item `i` must not arrive
                    g.notify_one();
                    let _ = tx.send(u32::MAX).await;
                    break;
                }
            }
        }
        assert!(sent < 10_000, "the pipeline filled up");
    })
    .chunk_size(4)
    .default_buffer(8)
    .then("gate", {
        let gate = gate.clone();
        move |x| {
            let gate = gate.clone();
            async move {
                if x == 0 {
                    gate.notified().await;
                }
                x
            }
        }
    })
    .collect::<Vec<_>>(bg())
    .await
    .unwrap();
    let out = done.output;
    assert_eq!(*out.last().unwrap(), u32::MAX);
    let n = out.len() - 1;
    assert_eq!(
        out[..n],
        (0..n as u32).collect::<Vec<_>>()[..],
        "no gap, no cancelled item"
    );
}

#[tokio::test(start_paused = true)]
async fn stream_next_cancelled_mid_flight_loses_nothing() {
    let mut s = Pipeline::from_iter(0..20u32)
        .chunk_size(1)
        .then("slow", |x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .into_stream(bg());
    let mut got = Vec::new();
    loop {
        tokio::select! {
            x = s.next() => match x {
                Some(x) => got.push(x),
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(3)) => {} // cancels next()
        }
    }
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    s.finish().await.unwrap().check().unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_a_run_future_stops_its_stages() {
    struct Flag(Arc<AtomicU32>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicU32::new(0));
    let flag = Flag(dropped.clone());
    let ctx = bg();
    let run = Pipeline::from_iter(0..10u32)
        .then("forever", move |_x| {
            let _keep = &flag;
            std::future::pending::<u32>()
        })
        .collect::<Vec<_>>(ctx.clone());
    // cancel the run future mid-flight
    let r = tokio::time::timeout(Duration::from_millis(20), run).await;
    assert!(r.is_err());
    // the stage task (and its closure) is gone once the runtime processed the abort
    for _ in 0..100 {
        if dropped.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

/// An async stage whose output queue is full stops starting new items but keeps driving the
/// ones already in flight: a started request that is not polled makes no progress (and can
/// time out on the server's side). Fails if the stage waits for its hand-off without polling
/// its in-flight futures.
#[tokio::test]
async fn async_stage_keeps_driving_in_flight_work_while_its_output_is_full() {
    let started = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (s, f, g) = (started.clone(), finished.clone(), gate.clone());
    let run = tokio::spawn(async move {
        Pipeline::from_iter(0..100u64)
            .chunk_size(1)
            .then(Stage::new("work").workers(4), move |x| {
                let (s, f) = (s.clone(), f.clone());
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    // Needs more than one poll to finish, like any real I/O.
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    f.fetch_add(1, Ordering::SeqCst);
                    x
                }
            })
            .then(Stage::new("slow").buffer(1), move |x| {
                let g = g.clone();
                async move {
                    g.acquire().await.expect("open").forget();
                    x
                }
            })
            .collect::<Vec<_>>(bg())
            .await
    });
    // Let the run settle against the closed gate (one thread: nothing runs behind our back).
    let mut settled = false;
    for _ in 0..10_000 {
        tokio::task::yield_now().await;
        let n = started.load(Ordering::SeqCst);
        if n >= 4 && finished.load(Ordering::SeqCst) == n {
            settled = true;
            break;
        }
    }
    assert!(
        settled,
        "in-flight work stalled: {} started, {} finished",
        started.load(Ordering::SeqCst),
        finished.load(Ordering::SeqCst)
    );
    assert!(
        started.load(Ordering::SeqCst) < 100,
        "a full queue must stop new work from starting"
    );
    gate.add_permits(1000);
    let done = run.await.unwrap().unwrap();
    assert_eq!(done.output, (0..100).collect::<Vec<_>>());
    done.report.check().unwrap();
}

/// Sinks own their Context and everything else they use, so their futures can be spawned.
#[tokio::test]
async fn every_sink_future_can_be_spawned() {
    let collect = tokio::spawn(Pipeline::from_iter(0..10u32).collect::<Vec<_>>(bg()));
    let fold = tokio::spawn(Pipeline::from_iter(0..10u32).fold(bg(), 0, |a, x| a + x));
    let seen = Arc::new(AtomicU32::new(0));
    let s = seen.clone();
    let for_each = tokio::spawn(Pipeline::from_iter(0..10u32).for_each(bg(), move |_| {
        s.fetch_add(1, Ordering::Relaxed);
    }));
    let stream = Pipeline::from_iter(0..10u32).into_stream(bg());
    let streamed = tokio::spawn(stream.collect::<Vec<_>>());
    assert_eq!(collect.await.unwrap().unwrap().output.len(), 10);
    assert_eq!(fold.await.unwrap().unwrap().output, 45);
    for_each.await.unwrap().unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 10);
    assert_eq!(streamed.await.unwrap().len(), 10);
}

/// Consecutive single-worker sync stages run in one task, yet each keeps its own counters
/// and the hand-offs between them still add up; a stage with its own buffer keeps its queue.
#[tokio::test]
async fn fused_sync_stages_report_as_separate_stages() {
    let done = Pipeline::from_iter(0..10_000u64)
        .chunk_size(100)
        .map("m1", |x| x * 3)
        .filter("keep", |x| x % 2 == 0)
        .map("m2", |x| x + 1)
        .map(Stage::new("queued").buffer(300), |x| x)
        .collect::<Vec<_>>(bg())
        .await
        .unwrap();
    assert_eq!(done.output.len(), 5_000);
    assert_eq!(done.output[1], 7);
    let r = &done.report;
    let stage = |n: &str| r.stage(n).unwrap().clone();
    assert_eq!((stage("m1").received, stage("m1").output), (10_000, 10_000));
    assert_eq!(
        (stage("keep").received, stage("keep").filtered),
        (10_000, 5_000)
    );
    assert_eq!((stage("m2").received, stage("m2").emitted), (5_000, 5_000));
    assert_eq!(
        stage("m2").max_queue_depth,
        0,
        "m2 ran in m1's task, with no queue"
    );
    assert!(
        stage("queued").max_queue_depth > 0,
        "a stage with a buffer has its own queue"
    );
    let names: Vec<&str> = r.stages.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["source", "m1", "keep", "m2", "queued", "sink"]);
    r.check().unwrap();
}

/// A fail-fast failure in a fused stage fails the run with that stage's name, and every item
/// in every fused stage is still accounted for.
#[tokio::test]
async fn a_failure_in_a_fused_stage_names_it_and_balances() {
    let err = Pipeline::from_iter(0..100_000u64)
        .map("m1", |x| x + 1)
        .try_map("parse", |x: &u64| {
            if *x == 50_000 {
                Err(E::Permanent(*x))
            } else {
                Ok(*x)
            }
        })
        .map("m2", |x| x)
        .collect::<Vec<_>>(bg())
        .await
        .unwrap_err();
    assert_eq!(err.stage(), "parse");
    assert_eq!(err.report().stage("parse").unwrap().failed, 1);
    err.report().check().unwrap();
}
