//! Integration tests for `weft_core::group`: WaitGroup (counting, guards, panics, reuse),
//! ErrGroup (first error and its cause, panics, limits, `try_go` hand-back, every error,
//! drop), ResultGroup (submission order), and cancel safety of every async method.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::oneshot;
use tokio_test::{assert_pending, assert_ready, task};
use weft_core::context::{Context, ContextError};
use weft_core::group::{ErrGroup, GroupError, ResultGroup, WaitGroup};

/// Lets every ready task on the current-thread runtime run as far as it can.
async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

/// Sets its flag when dropped: proves a future was dropped (and not run to the end).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn limit(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

// ---------------------------------------------------------------- WaitGroup

#[tokio::test]
async fn wait_group_waits_for_every_task() {
    let wg = WaitGroup::new();
    let mut releases = Vec::new();
    let finished = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let (tx, rx) = oneshot::channel::<()>();
        releases.push(tx);
        let finished = Arc::clone(&finished);
        wg.go(async move {
            rx.await.unwrap();
            finished.fetch_add(1, Ordering::SeqCst);
        });
    }
    assert_eq!(wg.len(), 3);
    let mut wait = task::spawn(wg.wait());
    assert_pending!(wait.poll());

    let last = releases.pop().unwrap();
    for tx in releases {
        tx.send(()).unwrap();
    }
    settle().await;
    assert_eq!(finished.load(Ordering::SeqCst), 2);
    assert_pending!(wait.poll(), "one task is still running");

    last.send(()).unwrap();
    settle().await;
    assert!(wait.is_woken());
    assert_ready!(wait.poll()).unwrap();
    assert_eq!(finished.load(Ordering::SeqCst), 3);
    assert!(wg.is_empty());
}

#[tokio::test]
async fn wait_on_empty_group_returns_at_once() {
    let wg = WaitGroup::new();
    assert_eq!(wg.wait().now_or_never(), Some(Ok(())));
}

#[tokio::test]
async fn guard_drop_is_done() {
    let wg = WaitGroup::new();
    let guard = wg.add();
    let explicit = wg.add();
    assert_eq!(wg.len(), 2);
    let mut wait = task::spawn(wg.wait());
    assert_pending!(wait.poll());

    explicit.done();
    assert_eq!(wg.len(), 1);
    assert_pending!(wait.poll());

    // Work that is not spawned by the group: a plain thread.
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert!(wait.is_woken());
    assert_ready!(wait.poll()).unwrap();
}

#[tokio::test]
async fn panic_is_reported_after_all_tasks_end() {
    let wg = WaitGroup::new();
    let (tx, rx) = oneshot::channel::<()>();
    let slow_done = Arc::new(AtomicBool::new(false));
    wg.go(async { panic!("first failure") });
    let flag = Arc::clone(&slow_done);
    wg.go(async move {
        rx.await.unwrap();
        flag.store(true, Ordering::SeqCst);
    });
    settle().await;

    let mut wait = task::spawn(wg.wait());
    assert_pending!(wait.poll(), "a panic does not end wait early");
    tx.send(()).unwrap();
    settle().await;
    let err = assert_ready!(wait.poll()).unwrap_err();
    assert!(slow_done.load(Ordering::SeqCst));
    assert_eq!(err.message(), "first failure");
    assert_eq!(err.count(), 1);
}

#[tokio::test]
async fn first_panic_wins_and_all_are_counted() {
    let wg = WaitGroup::new();
    let (tx, rx) = oneshot::channel::<()>();
    wg.go(async move {
        rx.await.unwrap();
        panic!("second");
    });
    wg.go(async { panic!("first") });
    settle().await;
    tx.send(()).unwrap();
    let err = wg.wait().await.unwrap_err();
    assert_eq!(err.message(), "first");
    assert_eq!(err.count(), 2);
    assert_eq!(
        err.to_string(),
        "task panicked: first (and 1 more panicked)"
    );
}

#[tokio::test]
async fn wait_group_is_reusable_after_wait() {
    let wg = WaitGroup::new();
    wg.go(async { panic!("round one") });
    assert_eq!(wg.wait().await.unwrap_err().message(), "round one");

    // Round two: the old panic is gone, and wait waits for the new tasks.
    let (tx, rx) = oneshot::channel::<()>();
    wg.go(async move { rx.await.unwrap() });
    let mut wait = task::spawn(wg.wait());
    assert_pending!(wait.poll());
    tx.send(()).unwrap();
    settle().await;
    assert_eq!(assert_ready!(wait.poll()), Ok(()));
}

#[tokio::test]
async fn guard_dropped_by_a_panic_reports_it() {
    let wg = WaitGroup::new();
    let guard = wg.add();
    let handle = tokio::spawn(async move {
        let _guard = guard;
        panic!("outside the group");
    });
    assert!(handle.await.unwrap_err().is_panic());
    let err = wg.wait().await.unwrap_err();
    assert_eq!(err.message(), "panicked while holding a WaitGroup guard");
}

#[tokio::test]
async fn go_task_panicking_with_a_guard_keeps_the_message_once() {
    let wg = WaitGroup::new();
    let guard = wg.add();
    wg.go(async move {
        let _guard = guard;
        panic!("real message");
    });
    let err = wg.wait().await.unwrap_err();
    assert_eq!(err.message(), "real message");
    assert_eq!(err.count(), 1);
}

#[tokio::test]
async fn clones_share_one_group_and_tasks_may_add_tasks() {
    let wg = WaitGroup::new();
    let count = Arc::new(AtomicUsize::new(0));
    let inner_wg = wg.clone();
    let inner_count = Arc::clone(&count);
    wg.go(async move {
        for _ in 0..10 {
            let c = Arc::clone(&inner_count);
            inner_wg.go(async move {
                tokio::task::yield_now().await;
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    wg.wait().await.unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        10,
        "children spawned before the parent ended are waited for"
    );
}

#[tokio::test]
async fn wait_is_cancel_safe() {
    let wg = WaitGroup::new();
    let (tx, rx) = oneshot::channel::<()>();
    wg.go(async move {
        rx.await.unwrap();
        panic!("after the cancelled wait");
    });
    // A wait cancelled mid-flight (a select! whose other branch wins)...
    tokio::select! {
        biased;
        _ = wg.wait() => panic!("the task is still running"),
        () = std::future::ready(()) => {}
    }
    // ...loses nothing: the panic that follows is reported by the next wait.
    tx.send(()).unwrap();
    assert_eq!(
        wg.wait().await.unwrap_err().message(),
        "after the cancelled wait"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_group_counts_many_tasks_across_threads() {
    let wg = WaitGroup::new();
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..10_000 {
        let c = Arc::clone(&count);
        wg.go(async move {
            c.fetch_add(1, Ordering::Relaxed);
        });
    }
    wg.wait().await.unwrap();
    assert_eq!(count.load(Ordering::Relaxed), 10_000);
    assert!(wg.is_empty());
}

#[tokio::test]
async fn dropping_a_wait_group_detaches_its_tasks() {
    let wg = WaitGroup::new();
    let (tx, rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    wg.go(async move {
        rx.await.unwrap();
        done_tx.send(()).unwrap();
    });
    drop(wg);
    tx.send(()).unwrap();
    done_rx
        .await
        .expect("the task ran to its end after the group was dropped");
}

// ---------------------------------------------------------------- ErrGroup

#[tokio::test]
async fn first_error_cancels_context_with_it_as_cause() {
    let parent = Context::background();
    let (mut group, ctx) = ErrGroup::with_context(&parent);
    let stopped = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let ctx = ctx.clone();
        let stopped = Arc::clone(&stopped);
        group
            .go(async move {
                ctx.done().await;
                stopped.fetch_add(1, Ordering::SeqCst);
                Err("stopped by sibling".to_string())
            })
            .await;
    }
    group.go(async { Err("disk full".to_string()) }).await;

    let err = group.wait().await.unwrap_err();
    assert_eq!(err, GroupError::Failed("disk full".to_string()));
    assert_eq!(stopped.load(Ordering::SeqCst), 3);
    assert_eq!(ctx.err(), Some(ContextError::Cancelled));
    assert_eq!(ctx.cause().unwrap().to_string(), "disk full");
    assert!(!parent.is_done(), "the group never cancels its parent");
}

#[tokio::test]
async fn panic_cancels_context_and_is_returned() {
    let (mut group, ctx) = ErrGroup::<String>::with_context(&Context::background());
    let sibling_ctx = ctx.clone();
    group
        .go(async move {
            sibling_ctx.done().await;
            Ok(())
        })
        .await;
    group.go(async { panic!("index out of range") }).await;
    let err = group.wait().await.unwrap_err();
    assert_eq!(
        err,
        GroupError::Panicked(weft_core::Panicked::new("index out of range"))
    );
    assert_eq!(
        ctx.cause().unwrap().downcast_ref::<weft_core::Panicked>(),
        Some(&weft_core::Panicked::new("index out of range")),
        "the cause is the panic value itself"
    );
}

#[tokio::test]
async fn success_cancels_context_when_wait_returns() {
    let (mut group, ctx) = ErrGroup::<String>::with_context(&Context::background());
    group.go(async { Ok(()) }).await;
    settle().await;
    assert!(!ctx.is_done(), "not before wait returns");
    group.wait().await.unwrap();
    assert_eq!(ctx.err(), Some(ContextError::Cancelled));
}

#[tokio::test]
async fn parent_cancel_reaches_group_context() {
    let (parent, cancel) = Context::background().with_cancel();
    let (mut group, ctx) = ErrGroup::<ContextError>::with_context(&parent);
    let task_ctx = ctx.clone();
    group
        .go(async move { task_ctx.run(std::future::pending::<()>()).await })
        .await;
    cancel.cancel_with("shutdown");
    assert_eq!(
        group.wait().await,
        Err(GroupError::Failed(ContextError::Cancelled))
    );
    assert_eq!(ctx.cause().unwrap().to_string(), "shutdown");
}

#[tokio::test(start_paused = true)]
async fn first_error_is_the_earliest_not_the_first_submitted() {
    let (mut group, ctx) = ErrGroup::with_context(&Context::background());
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Err("late")
        })
        .await;
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err("early")
        })
        .await;
    assert_eq!(group.wait().await, Err(GroupError::Failed("early")));
    assert_eq!(ctx.cause().unwrap().to_string(), "early");
}

#[tokio::test]
async fn errgroup_without_context_runs_every_task() {
    let mut group = ErrGroup::new();
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..5 {
        let ran = Arc::clone(&ran);
        group
            .go(async move {
                ran.fetch_add(1, Ordering::SeqCst);
                if i == 0 { Err(i) } else { Ok(()) }
            })
            .await;
    }
    assert_eq!(group.wait().await, Err(GroupError::Failed(0)));
    assert_eq!(ran.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn wait_all_returns_every_failure_in_the_order_they_happened() {
    let mut group = ErrGroup::new();
    for (secs, outcome) in [(3, Err("c")), (1, Err("a")), (4, Ok(())), (2, Err("b"))] {
        group
            .go(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                outcome
            })
            .await;
    }
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            panic!("e")
        })
        .await;
    let errors = group.wait_all().await.unwrap_err();
    assert_eq!(
        errors,
        [
            GroupError::Failed("a"),
            GroupError::Failed("b"),
            GroupError::Failed("c"),
            GroupError::Panicked(weft_core::Panicked::new("e")),
        ]
    );
    assert_eq!(
        group.wait_all().await,
        Ok(()),
        "nothing left for a new round"
    );
}

#[tokio::test]
async fn limit_bounds_concurrency_and_go_waits_for_a_slot() {
    let mut group = ErrGroup::<String>::new();
    group.set_limit(limit(2));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut releases = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = oneshot::channel::<()>();
        releases.push(tx);
        let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
        group
            .go(async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                rx.await.unwrap();
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
    }
    settle().await;
    assert_eq!(running.load(Ordering::SeqCst), 2);

    // A third `go` waits while both slots are taken...
    let third_ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&third_ran);
    {
        let mut go = task::spawn(group.go(async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        }));
        assert_pending!(go.poll());
        settle().await;
        assert_pending!(go.poll(), "no slot while two tasks run");
        // ...and proceeds once one finishes.
        releases.pop().unwrap().send(()).unwrap();
        settle().await;
        assert!(go.is_woken());
        assert_ready!(go.poll());
    }
    releases.pop().unwrap().send(()).unwrap();
    group.wait().await.unwrap();
    assert!(third_ran.load(Ordering::SeqCst));
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn many_tasks_never_exceed_the_limit() {
    let mut group = ErrGroup::<String>::new();
    group.set_limit(limit(3));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
        group
            .go(async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
    }
    group.wait().await.unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn try_go_hands_the_future_back_when_full() {
    let mut group = ErrGroup::<String>::new();
    group.set_limit(limit(1));
    let (tx, rx) = oneshot::channel::<()>();
    group
        .try_go(async move {
            rx.await.unwrap();
            Ok(())
        })
        .unwrap();

    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let rejected = group
        .try_go(async move {
            flag.store(true, Ordering::SeqCst);
            Err("from the handed-back future".to_string())
        })
        .unwrap_err();
    assert_eq!(group.len(), 1, "nothing was spawned");
    settle().await;
    assert!(!ran.load(Ordering::SeqCst));

    tx.send(()).unwrap();
    group.wait().await.unwrap();
    // The very future we gave is handed back, and still runs.
    group.try_go(rejected.into_inner()).unwrap();
    assert_eq!(
        group.wait().await,
        Err(GroupError::Failed(
            "from the handed-back future".to_string()
        ))
    );
    assert!(ran.load(Ordering::SeqCst));
}

#[tokio::test]
async fn try_go_without_limit_always_spawns() {
    let group = ErrGroup::<String>::new();
    for _ in 0..100 {
        group.try_go(std::future::pending()).unwrap();
    }
    assert_eq!(group.len(), 100);
}

#[tokio::test]
async fn go_is_cancel_safe_and_drops_the_unspawned_future() {
    let mut group = ErrGroup::<String>::new();
    group.set_limit(limit(1));
    let (tx, rx) = oneshot::channel::<()>();
    group
        .go(async move {
            rx.await.unwrap();
            Ok(())
        })
        .await;

    let dropped = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicBool::new(false));
    let (flag, guard) = (Arc::clone(&ran), DropFlag(Arc::clone(&dropped)));
    tokio::select! {
        biased;
        () = group.go(async move {
            let _guard = guard;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        }) => panic!("no slot is free"),
        () = std::future::ready(()) => {}
    }
    assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
    assert_eq!(group.len(), 1, "and not spawned");

    tx.send(()).unwrap();
    group.wait().await.unwrap();
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn wait_is_cancel_safe_and_keeps_collected_failures() {
    let (mut group, ctx) = ErrGroup::with_context(&Context::background());
    group.go(async { Err("fast failure") }).await;
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Err("slow failure")
        })
        .await;
    // This wait collects the fast failure, then is cancelled while the slow task runs.
    tokio::select! {
        _ = group.wait() => panic!("the slow task has not finished"),
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    assert_eq!(group.len(), 1, "the fast task was collected");
    assert_eq!(group.wait().await, Err(GroupError::Failed("fast failure")));
    assert_eq!(ctx.cause().unwrap().to_string(), "fast failure");
}

#[tokio::test(start_paused = true)]
async fn wait_all_is_cancel_safe() {
    let mut group = ErrGroup::new();
    group.go(async { Err(1) }).await;
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Err(2)
        })
        .await;
    tokio::select! {
        _ = group.wait_all() => panic!("the slow task has not finished"),
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    assert_eq!(
        group.wait_all().await,
        Err(vec![GroupError::Failed(1), GroupError::Failed(2)])
    );
}

#[tokio::test]
async fn errgroup_is_reusable_after_wait() {
    let mut group = ErrGroup::new();
    group.go(async { Err("round one") }).await;
    assert_eq!(group.wait().await, Err(GroupError::Failed("round one")));
    group.go(async { Ok(()) }).await;
    assert_eq!(group.wait().await, Ok(()));
    group.go(async { Err("round three") }).await;
    assert_eq!(group.wait().await, Err(GroupError::Failed("round three")));
}

#[tokio::test]
#[should_panic(expected = "set_limit called while the group has tasks")]
async fn set_limit_with_tasks_panics() {
    let mut group = ErrGroup::<String>::new();
    group.go(std::future::pending()).await;
    group.set_limit(limit(1));
}

#[tokio::test]
async fn dropping_the_group_aborts_tasks_and_cancels_context() {
    let (group, ctx) = ErrGroup::<String>::with_context(&Context::background());
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = DropFlag(Arc::clone(&dropped));
    group
        .go(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
    settle().await;
    drop(group);
    settle().await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the running task was aborted"
    );
    assert!(ctx.is_done());
}

// ---------------------------------------------------------------- ResultGroup

#[tokio::test(start_paused = true)]
async fn results_come_back_in_submission_order() {
    let mut group = ResultGroup::<u32, String>::new();
    let delays = [5_u64, 1, 4, 2, 3];
    for (i, secs) in delays.into_iter().enumerate() {
        group
            .go(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                Ok(u32::try_from(i).unwrap())
            })
            .await;
    }
    assert_eq!(group.wait().await.unwrap(), [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn result_group_returns_earliest_failure_and_cancels() {
    let (mut group, ctx) = ResultGroup::<u32, &str>::with_context(&Context::background());
    group.go(async { Ok(1) }).await;
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Err("second submitted, fails late")
        })
        .await;
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err("third submitted, fails first")
        })
        .await;
    assert_eq!(
        group.wait().await,
        Err(GroupError::Failed("third submitted, fails first"))
    );
    assert_eq!(
        ctx.cause().unwrap().to_string(),
        "third submitted, fails first"
    );
}

#[tokio::test(start_paused = true)]
async fn result_group_wait_all_keeps_every_outcome_in_order() {
    let mut group = ResultGroup::<u32, &str>::new();
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(10)
        })
        .await;
    group.go(async { Err("bad") }).await;
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            panic!("worse")
        })
        .await;
    assert_eq!(
        group.wait_all().await,
        [
            Ok(10),
            Err(GroupError::Failed("bad")),
            Err(GroupError::Panicked(weft_core::Panicked::new("worse")))
        ]
    );
}

#[tokio::test]
async fn result_group_limit_try_go_and_reuse() {
    let mut group = ResultGroup::<&str, String>::new();
    group.set_limit(limit(1));
    let (tx, rx) = oneshot::channel::<()>();
    group
        .try_go(async move {
            rx.await.unwrap();
            Ok("a")
        })
        .unwrap();
    let rejected = group.try_go(async { Ok("b") }).unwrap_err();
    tx.send(()).unwrap();
    group.go(rejected.into_inner()).await; // waits for the slot
    assert_eq!(group.wait().await.unwrap(), ["a", "b"]);
    // A new round numbers from zero again.
    group.go(async { Ok("c") }).await;
    assert_eq!(group.wait().await.unwrap(), ["c"]);
}

#[tokio::test(start_paused = true)]
async fn result_group_wait_is_cancel_safe() {
    let mut group = ResultGroup::<u8, String>::new();
    group.go(async { Ok(1) }).await;
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(2)
        })
        .await;
    tokio::select! {
        _ = group.wait() => panic!("the slow task has not finished"),
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    assert_eq!(group.len(), 1);
    assert_eq!(group.wait().await.unwrap(), [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn result_group_wait_all_is_cancel_safe() {
    let mut group = ResultGroup::<u8, String>::new();
    group.go(async { Ok(1) }).await;
    group
        .go(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Err("late".to_string())
        })
        .await;
    tokio::select! {
        _ = group.wait_all() => panic!("the slow task has not finished"),
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    assert_eq!(
        group.wait_all().await,
        [Ok(1), Err(GroupError::Failed("late".to_string()))]
    );
}

#[tokio::test]
async fn result_group_go_is_cancel_safe_and_takes_no_place() {
    let mut group = ResultGroup::<&str, String>::new();
    group.set_limit(limit(1));
    let (tx, rx) = oneshot::channel::<()>();
    group
        .go(async move {
            rx.await.unwrap();
            Ok("kept")
        })
        .await;
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = DropFlag(Arc::clone(&dropped));
    tokio::select! {
        biased;
        () = group.go(async move {
            let _guard = guard;
            Ok("never spawned")
        }) => panic!("no slot is free"),
        () = std::future::ready(()) => {}
    }
    assert!(dropped.load(Ordering::SeqCst));
    tx.send(()).unwrap();
    assert_eq!(group.wait().await.unwrap(), ["kept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returned_error_is_the_cause_even_when_many_fail_at_once() {
    for _ in 0..20 {
        let (mut group, ctx) = ErrGroup::with_context(&Context::background());
        for i in 0..200 {
            group.go(async move { Err(format!("task {i}")) }).await;
        }
        let err = group.wait().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            ctx.cause().unwrap().to_string(),
            "wait returns the failure that cancelled the context"
        );
    }
}

#[derive(Debug, thiserror::Error)]
#[error("shard {0} unreachable")]
struct ShardDown(u32);

type SharedError = Arc<dyn std::error::Error + Send + Sync>;

#[tokio::test]
async fn a_shared_error_value_is_the_context_cause_and_downcasts() {
    let (mut group, ctx) = ErrGroup::<SharedError>::with_context(&Context::background());
    group
        .go(async { Err(Arc::new(ShardDown(4)) as SharedError) })
        .await;
    let GroupError::Failed(returned) = group.wait().await.unwrap_err() else {
        panic!("expected the task's error");
    };
    let cause = ctx.cause().unwrap();
    assert_eq!(cause.downcast_ref::<ShardDown>().map(|s| s.0), Some(4));
    assert!(
        Arc::ptr_eq(&cause.into_inner(), &returned),
        "the context and wait share the one error value"
    );
}

#[tokio::test]
async fn a_cause_returned_by_a_task_is_passed_on_unwrapped() {
    // A task that stops because its own context ended can return that context's cause; the
    // group's context then carries the original error, not a wrapper around it.
    let (upstream, cancel) = Context::background().with_cancel();
    let (mut group, ctx) = ErrGroup::with_context(&Context::background());
    group
        .go(async move {
            upstream.done().await;
            Err(upstream.cause().unwrap())
        })
        .await;
    cancel.cancel_with(ShardDown(9));
    assert!(group.wait().await.is_err());
    assert_eq!(
        ctx.cause()
            .unwrap()
            .downcast_ref::<ShardDown>()
            .map(|s| s.0),
        Some(9)
    );
}

#[tokio::test]
async fn tasks_spawn_into_their_own_group_and_wait_waits_for_them() {
    let mut group = ErrGroup::<String>::new();
    let handle = group.handle();
    let (release, gate) = oneshot::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&finished);
    group
        .go(async move {
            // The root returns at once; the grandchild it leaves behind holds the group open.
            let inner = handle.clone();
            handle
                .go(async move {
                    inner
                        .go(async move {
                            gate.await.map_err(|e| e.to_string())?;
                            flag.store(true, Ordering::SeqCst);
                            Ok(())
                        })
                        .await;
                    Ok(())
                })
                .await;
            Ok(())
        })
        .await;
    let mut wait = task::spawn(group.wait());
    settle().await;
    assert_pending!(
        wait.poll(),
        "a task spawned from inside the group is still running"
    );
    release.send(()).unwrap();
    settle().await;
    assert!(wait.is_woken());
    assert_ready!(wait.poll()).unwrap();
    assert!(finished.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_failure_spawned_from_inside_cancels_the_context_and_is_returned() {
    let (mut group, ctx) = ErrGroup::with_context(&Context::background());
    let handle = group.handle();
    let sibling = ctx.clone();
    group
        .go(async move {
            handle.go(async { Err("inner failure") }).await;
            sibling.done().await;
            Err("stopped by the inner failure")
        })
        .await;
    assert_eq!(group.wait().await, Err(GroupError::Failed("inner failure")));
    assert_eq!(ctx.cause().unwrap().to_string(), "inner failure");
}

#[tokio::test]
async fn a_handle_spawns_nothing_once_the_group_is_dropped() {
    let group = ErrGroup::<String>::new();
    let handle = group.handle();
    drop(group);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&dropped));
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    handle
        .go(async move {
            let _flag = flag;
            r.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await;
    assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
    assert!(
        handle.try_go(async { Ok(()) }).is_err(),
        "try_go hands it back"
    );
    settle().await;
    assert!(!ran.load(Ordering::SeqCst), "and never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_spawning_tasks_on_many_threads_are_all_waited_for() {
    for _ in 0..20 {
        let mut group = ErrGroup::<String>::new();
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..8 {
            let (handle, count) = (group.handle(), Arc::clone(&count));
            group
                .go(async move {
                    for _ in 0..16 {
                        let count = Arc::clone(&count);
                        handle
                            .go(async move {
                                count.fetch_add(1, Ordering::Relaxed);
                                Ok(())
                            })
                            .await;
                    }
                    Ok(())
                })
                .await;
        }
        group.wait().await.unwrap();
        assert_eq!(
            count.load(Ordering::Relaxed),
            8 * 16,
            "wait returned before a task ended"
        );
    }
}
