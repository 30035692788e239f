//! Integration tests for `weft_core::context`: propagation, deadlines (on tokio's paused clock),
//! causes, values, `after_func`, `without_cancel`, `run`, and cancel safety of `done`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready, task};
use weft_core::context::{Cause, Context, ContextError};

#[test]
fn background_is_never_done() {
    let ctx = Context::background();
    assert!(!ctx.is_done());
    assert_eq!(ctx.err(), None);
    assert!(ctx.cause().is_none());
    assert_eq!(ctx.deadline(), None);
    assert_eq!(ctx.remaining(), None);
}

#[test]
fn cancel_reaches_all_descendants_but_not_parent_or_siblings() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (a, cancel_a) = parent.with_cancel();
    let (b, _cancel_b) = parent.with_cancel();
    let (a1, _c) = a.with_cancel();
    let a1v = a1.with_value(5_u8);

    cancel_a.cancel();
    assert!(a.is_done() && a1.is_done() && a1v.is_done());
    assert!(!parent.is_done(), "a child never cancels its parent");
    assert!(!b.is_done(), "a sibling is unaffected");

    cancel_parent.cancel();
    assert!(parent.is_done() && b.is_done());
    assert_eq!(b.err(), Some(ContextError::Cancelled));
}

#[test]
fn dropping_cancel_fn_does_not_cancel() {
    let (ctx, _) = Context::background().with_cancel();
    assert!(!ctx.is_done());
    let (ctx2, cancel) = Context::background().with_timeout(Duration::from_secs(60));
    drop(cancel);
    assert!(!ctx2.is_done());
}

#[test]
fn drop_guard_cancels_on_scope_exit() {
    let (ctx, cancel) = Context::background().with_cancel();
    {
        let _g = cancel.drop_guard();
        assert!(!ctx.is_done());
    }
    assert_eq!(ctx.err(), Some(ContextError::Cancelled));
}

#[test]
fn first_cause_wins_and_reaches_children() {
    let (parent, cancel) = Context::background().with_cancel();
    let (child, _c) = parent.with_cancel();
    let (grandchild, _c2) = child.with_timeout(Duration::from_secs(60));
    cancel.cancel_with(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "peer gone",
    ));
    cancel.cancel_with("ignored");
    let cause = grandchild.cause().expect("done");
    assert_eq!(cause.to_string(), "peer gone");
    assert_eq!(
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
        Some(std::io::ErrorKind::BrokenPipe)
    );
    assert_eq!(grandchild.err(), Some(ContextError::Cancelled));
}

#[test]
fn own_cause_is_kept_when_parent_cancels_later() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (child, cancel_child) = parent.with_cancel();
    cancel_child.cancel_with("child first");
    cancel_parent.cancel_with("parent later");
    assert_eq!(child.cause().unwrap().to_string(), "child first");
    assert_eq!(parent.cause().unwrap().to_string(), "parent later");
}

#[test]
fn plain_cancel_cause_is_the_context_error() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let cause: Cause = ctx.cause().unwrap();
    assert_eq!(
        cause.downcast_ref::<ContextError>(),
        Some(&ContextError::Cancelled)
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_is_lazy_and_exact() {
    let (ctx, _c) = Context::background().with_timeout(Duration::from_millis(100));
    tokio::time::advance(Duration::from_millis(99)).await;
    assert!(!ctx.is_done());
    assert_eq!(ctx.remaining(), Some(Duration::from_millis(1)));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(
        ctx.is_done(),
        "done at the deadline, with no task to fire it"
    );
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(
        ctx.cause().unwrap().downcast_ref::<ContextError>(),
        Some(&ContextError::DeadlineExceeded)
    );
    assert_eq!(ctx.remaining(), Some(Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn child_deadline_is_min_of_own_and_parent() {
    let start = Instant::now();
    let (parent, _c1) = Context::background().with_timeout(Duration::from_secs(1));
    let (longer, _c2) = parent.with_timeout(Duration::from_secs(10));
    let (shorter, _c3) = parent.with_timeout(Duration::from_millis(10));
    assert_eq!(longer.deadline(), Some(start + Duration::from_secs(1)));
    assert_eq!(shorter.deadline(), Some(start + Duration::from_millis(10)));

    shorter.done().await;
    assert_eq!(Instant::now(), start + Duration::from_millis(10));
    assert!(
        !parent.is_done(),
        "a child's deadline does not end its parent"
    );

    longer.done().await;
    assert_eq!(Instant::now(), start + Duration::from_secs(1));
    assert_eq!(longer.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(parent.err(), Some(ContextError::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn deadline_expiry_wakes_waiters_on_descendants_without_timers() {
    // Only the parent's waiter has a timer to poll; the plain `with_cancel` child below it must
    // still be woken, because expiry cancels the deadline's owner and its whole subtree.
    let (parent, _c1) = Context::background().with_timeout(Duration::from_secs(1));
    let (child, _c2) = parent.with_cancel();
    let token = child.child_token();
    let parent_waiter = tokio::spawn({
        let p = parent.clone();
        async move { p.done().await }
    });
    token.cancelled().await;
    parent_waiter.await.unwrap();
    assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn cancel_after_deadline_passed_keeps_deadline_exceeded() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(2)).await;
    // Nobody looked at the deadline yet; it still ended the context first.
    cancel.cancel_with("too late");
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn cancel_before_deadline_is_cancelled() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(1));
    cancel.cancel();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(ctx.err(), Some(ContextError::Cancelled));
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("the {0} budget ran out")]
struct Budget(&'static str);

fn budget_of(ctx: &Context) -> Option<&'static str> {
    ctx.cause()
        .and_then(|c| c.downcast_ref::<Budget>().map(|b| b.0))
}

#[tokio::test(start_paused = true)]
async fn timeout_cause_is_the_cause_when_the_deadline_ends_the_context() {
    let start = Instant::now();
    let (ctx, _c) =
        Context::background().with_timeout_cause(Duration::from_secs(2), Budget("request"));
    let (child, _c2) = ctx.with_cancel();
    assert_eq!(
        ctx.cause().map(|c| c.to_string()),
        None,
        "no cause while not done"
    );
    child.done().await;
    assert_eq!(Instant::now(), start + Duration::from_secs(2));
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(budget_of(&ctx), Some("request"));
    assert_eq!(
        budget_of(&child),
        Some("request"),
        "children see the deadline's cause"
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_cause_is_the_cause_even_when_the_deadline_passed_unobserved() {
    let (parent, cancel) = Context::background().with_cancel();
    let deadline = Instant::now() + Duration::from_secs(1);
    let (ctx, _c) = parent.with_deadline_cause(deadline, Budget("batch"));
    assert_eq!(ctx.deadline(), Some(deadline));
    tokio::time::advance(Duration::from_secs(5)).await;
    // Nobody looked at the deadline; the parent's later cancel does not replace it.
    cancel.cancel_with("shutdown");
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(budget_of(&ctx), Some("batch"));
    assert_eq!(parent.cause().unwrap().to_string(), "shutdown");
}

#[tokio::test(start_paused = true)]
async fn cancel_before_a_deadline_with_cause_keeps_the_cancel_cause() {
    let (ctx, cancel) =
        Context::background().with_timeout_cause(Duration::from_secs(1), Budget("request"));
    cancel.cancel_with("client went away");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(ctx.err(), Some(ContextError::Cancelled));
    assert_eq!(ctx.cause().unwrap().to_string(), "client went away");
}

#[tokio::test(start_paused = true)]
async fn an_earlier_parent_deadline_ends_the_child_with_the_parent_cause() {
    let (parent, _c1) =
        Context::background().with_timeout_cause(Duration::from_secs(1), Budget("parent"));
    let (child, _c2) = parent.with_timeout_cause(Duration::from_secs(10), Budget("child"));
    let (plain, _c3) = Context::background().with_timeout(Duration::from_secs(1));
    let (plain_child, _c4) = plain.with_timeout_cause(Duration::from_secs(10), Budget("child"));
    child.done().await;
    plain_child.done().await;
    assert_eq!(budget_of(&child), Some("parent"));
    assert_eq!(
        plain_child.cause().unwrap().downcast_ref::<ContextError>(),
        Some(&ContextError::DeadlineExceeded),
        "the parent's deadline without a cause ends the child with DeadlineExceeded"
    );
}

#[test]
fn values_shadow_and_look_through_parents() {
    #[derive(Debug, PartialEq)]
    struct Trace(&'static str);
    #[derive(Debug, PartialEq)]
    struct User(u32);

    let root = Context::background().with_value(Trace("t1"));
    let (cancelable, _c) = root.with_cancel();
    let child = cancelable.with_value(User(1));
    let shadow = child.with_value(Trace("t2"));

    assert_eq!(child.value::<Trace>(), Some(&Trace("t1")));
    assert_eq!(child.value::<User>(), Some(&User(1)));
    assert_eq!(shadow.value::<Trace>(), Some(&Trace("t2")));
    assert_eq!(root.value::<User>(), None);
    assert_eq!(root.value::<Trace>(), Some(&Trace("t1")));
}

#[test]
fn with_value_shares_cancellation_with_parent() {
    let (ctx, cancel) = Context::background().with_cancel();
    let v = ctx.with_value(1_i32);
    cancel.cancel_with("bye");
    assert!(v.is_done());
    assert_eq!(v.cause().unwrap().to_string(), "bye");
}

#[tokio::test(start_paused = true)]
async fn without_cancel_keeps_values_drops_cancel_and_deadline() {
    let (ctx, cancel) = Context::background()
        .with_value("v")
        .with_timeout(Duration::from_secs(1));
    let detached = ctx.without_cancel();
    assert_eq!(detached.deadline(), None);
    cancel.cancel();
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(!detached.is_done());
    assert_eq!(detached.value::<&str>(), Some(&"v"));
    let (c, cancel2) = detached.with_cancel();
    cancel2.cancel();
    assert!(c.is_done());
}

#[tokio::test]
async fn after_func_runs_once_when_done() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = ctx.after_func({
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(());
        }
    });
    cancel.cancel();
    cancel.cancel();
    rx.await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        !handle.stop(),
        "stop after the call says it did not prevent it"
    );
}

#[tokio::test]
async fn after_func_on_done_context_runs_immediately() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _h = ctx.after_func(move || {
        let _ = tx.send(7);
    });
    assert_eq!(rx.await.unwrap(), 7);
}

#[tokio::test]
async fn after_func_stop_before_done_prevents_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (ctx, cancel) = Context::background().with_cancel();
    let handle = ctx.after_func({
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
        }
    });
    assert!(handle.stop());
    assert!(!handle.stop());
    cancel.cancel();
    // Give any (wrongly) surviving task every chance to run.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn after_func_stop_after_cancel_returns_false_and_the_call_still_runs() {
    // On a current-thread runtime the after_func task cannot run between `cancel` and `stop`:
    // the context is done, so `stop` must say it is too late, and the call must happen.
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = ctx.after_func(move || tx.send("ran").unwrap());
    cancel.cancel();
    assert!(
        !handle.stop(),
        "the context is done: stop cannot prevent the call"
    );
    assert_eq!(rx.await, Ok("ran"));
}

#[tokio::test(start_paused = true)]
async fn after_func_stop_after_an_unobserved_deadline_returns_false_and_the_call_runs() {
    // The deadline has passed but nothing has noticed it yet (no token is cancelled): the
    // context is done all the same, so `stop` is too late.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::ZERO);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = ctx.after_func(move || tx.send(()).unwrap());
    assert!(!handle.stop());
    assert_eq!(rx.await, Ok(()));
}

#[test]
fn after_func_stop_races_cancel_and_once_done_the_call_always_runs() {
    // For each race: the call runs exactly when `stop` returns false (the oneshot's sender is
    // either used by the call or dropped with the stopped function), and a context seen done
    // before `stop` always gets `false`.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut stopped_count, mut ran_count) = (0, 0);
        for _ in 0..2000 {
            let (ctx, cancel) = Context::background().with_cancel();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let handle = ctx.after_func(move || tx.send(()).unwrap());
            let canceller = std::thread::spawn(move || cancel.cancel());
            let done_before = ctx.is_done();
            let stopped = handle.stop();
            canceller.join().unwrap();
            if done_before {
                assert!(!stopped, "stop returned true on a context already done");
            }
            let ran = rx.await.is_ok();
            assert_eq!(
                ran, !stopped,
                "exactly one of: the call ran, stop prevented it"
            );
            if stopped {
                stopped_count += 1;
            } else {
                ran_count += 1;
            }
        }
        assert_eq!(stopped_count + ran_count, 2000);
    });
}

#[tokio::test]
async fn run_returns_output_or_error() {
    let ctx = Context::background();
    assert_eq!(ctx.run(async { 5 }).await, Ok(5));

    let (ctx, cancel) = ctx.with_cancel();
    let polled = Arc::new(AtomicUsize::new(0));
    cancel.cancel();
    let p = polled.clone();
    let r = ctx
        .run(async move {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .await;
    assert_eq!(r, Err(ContextError::Cancelled));
    assert_eq!(
        polled.load(Ordering::SeqCst),
        0,
        "done context: future never polled"
    );
}

#[tokio::test(start_paused = true)]
async fn run_stops_pending_future_at_deadline() {
    let (ctx, _c) = Context::background().with_timeout(Duration::from_millis(30));
    let start = Instant::now();
    let r = ctx.run(std::future::pending::<()>()).await;
    assert_eq!(r, Err(ContextError::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_millis(30));
}

#[tokio::test]
async fn done_is_cancel_safe_and_wakes_on_cancel() {
    let (ctx, cancel) = Context::background().with_cancel();
    // A done() future dropped mid-wait loses nothing: a fresh one still sees the cancel.
    let mut first = task::spawn(ctx.done());
    assert_pending!(first.poll());
    drop(first);
    let mut second = task::spawn(ctx.done());
    assert_pending!(second.poll());
    cancel.cancel();
    assert!(second.is_woken());
    assert_ready!(second.poll());
    assert!(ctx.done().now_or_never().is_some());
}

#[tokio::test(start_paused = true)]
async fn done_in_select_with_deadline() {
    let (ctx, _c) = Context::background().with_timeout(Duration::from_secs(3));
    let mut ticks = 0;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.tick().await;
    loop {
        tokio::select! {
            biased;
            () = ctx.done() => break,
            _ = interval.tick() => ticks += 1,
        }
    }
    assert_eq!(
        ticks, 2,
        "ticks at 1s and 2s; the deadline at 3s wins by bias"
    );
}

#[test]
fn done_can_be_created_outside_a_runtime() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(1));
    let fut = ctx.done();
    cancel.cancel();
    // Polling a cancelled context's future needs no timer.
    assert!(fut.now_or_never().is_some());
}

#[test]
fn many_timeout_contexts_are_cheap_and_unlink() {
    let parent = Context::background();
    for _ in 0..100_000 {
        let (_ctx, _cancel) = parent.with_timeout(Duration::from_secs(1));
    }
    // A child that is dropped unlinks from its parent: cancelling the parent now has nothing
    // to walk. (This is a functional check; the cost is measured in benches/context.rs.)
    let (p, cancel) = parent.with_cancel();
    drop(p);
    cancel.cancel();
}

#[test]
fn debug_output_names_state() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let s = format!("{ctx:?} {cancel:?}");
    assert!(s.contains("Cancelled"), "{s}");
}
