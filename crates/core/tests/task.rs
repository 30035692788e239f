//! Integration tests for `weft_core::task`: panic-safe spawn (outcomes, the `tracing` log with
//! the task's name, cancel safety of the handle) and the Supervisor (restarts after errors
//! and panics, exponential backoff and jitter on tokio's paused clock, giving up within a
//! window, restart reports, stopping with its Context).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use weft_core::context::Context;
use weft_core::task::{self, Failure, Supervisor, SupervisorExit, TaskError};

// ---------------------------------------------------------------- spawn

#[tokio::test]
async fn spawn_returns_output() {
    assert_eq!(task::spawn(async { "out" }).await, Ok("out"));
}

#[tokio::test]
async fn spawn_reports_panic_with_message() {
    let handle = task::spawn_named("worker-7", async {
        let n = std::hint::black_box(7);
        panic!("job {n} failed");
    });
    assert_eq!(handle.name(), "worker-7");
    assert_eq!(
        handle.await,
        Err(TaskError::Panicked(weft_core::Panicked::new(
            "job 7 failed"
        )))
    );
}

#[tokio::test]
async fn aborted_task_is_cancelled() {
    let handle = task::spawn(std::future::pending::<()>());
    handle.abort();
    let err = handle.await.unwrap_err();
    assert_eq!(err, TaskError::Cancelled);
    assert_eq!(err.to_string(), "task was cancelled");
}

/// Captures the log lines emitted on the current thread.
///
/// One global subscriber for the whole test binary, writing into a per-thread buffer: tests run
/// on current-thread runtimes, so a test's tasks log on its own thread. Not a scoped
/// `set_default` subscriber per test: with two of them on parallel test threads, tracing's
/// cached per-callsite interest can be rebuilt while one test's event is being checked, and
/// that event is dropped (seen as a missing WARN line in CI).
struct Capture;

thread_local! {
    static CAPTURED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The writer of the global subscriber: appends to this thread's buffer.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|c| c.borrow_mut().extend_from_slice(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Installs the global subscriber (once per binary) and empties this thread's buffer.
    fn start() -> Capture {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ThreadWriter)
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        });
        CAPTURED.with(|c| c.borrow_mut().clear());
        Capture
    }

    fn text(&self) -> String {
        CAPTURED.with(|c| String::from_utf8_lossy(&c.borrow()).into_owned())
    }
}

#[tokio::test] // current-thread: the task runs on this thread, where its log is captured
async fn panic_is_logged_with_the_task_name() {
    let capture = Capture::start();

    let handle = task::spawn_named("thumbnailer", async { panic!("corrupt png") });
    let id = handle.id();
    assert!(handle.await.unwrap_err().is_panic());

    let log = capture.text();
    assert!(log.contains("ERROR"), "{log}");
    assert!(log.contains("task panicked"), "{log}");
    assert!(log.contains("task=thumbnailer"), "{log}");
    assert!(log.contains("panic=corrupt png"), "{log}");
    assert!(log.contains(&format!("task.id={id}")), "{log}");
}

#[tokio::test]
async fn dropped_handle_detaches_and_a_panic_does_not_spread() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    drop(task::spawn(async move { tx.send(5).unwrap() }));
    drop(task::spawn(async { panic!("isolated") }));
    assert_eq!(rx.await, Ok(5));
}

#[tokio::test]
async fn awaiting_a_handle_is_cancel_safe() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut handle = task::spawn(async move {
        rx.await.unwrap();
        42
    });
    tokio::select! {
        biased;
        _ = &mut handle => panic!("the task is blocked"),
        () = std::future::ready(()) => {}
    }
    tx.send(()).unwrap();
    assert_eq!(handle.await, Ok(42), "the cancelled await lost nothing");
}

// ---------------------------------------------------------------- Supervisor

type Events = Arc<Mutex<Vec<(u32, String, Duration)>>>;

fn recording<E: std::fmt::Display + Send + 'static>(sup: Supervisor<E>) -> (Supervisor<E>, Events) {
    let events: Events = Arc::default();
    let log = Arc::clone(&events);
    let sup = sup.on_restart(move |r| {
        log.lock().unwrap_or_else(PoisonError::into_inner).push((
            r.restart,
            r.failure.to_string(),
            r.delay,
        ))
    });
    (sup, events)
}

#[tokio::test(start_paused = true)]
async fn restarts_with_exponential_backoff_capped_at_max() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let (sup, events) = recording(
        Supervisor::new("backoff")
            .backoff(Duration::from_secs(1), Duration::from_secs(5))
            .jitter(0.0)
            .max_restarts(5, Duration::from_secs(3600)),
    );
    let log = Arc::clone(&starts);
    let exit = sup
        .spawn(&Context::background(), move |_ctx| {
            log.lock().unwrap().push(Instant::now());
            async { Err::<(), _>("refused") }
        })
        .await;

    let SupervisorExit::GaveUp { restarts, last } = exit else {
        panic!("expected GaveUp, got {exit:?}");
    };
    assert_eq!(restarts, 5);
    assert_eq!(last, Failure::Error("refused"));

    let secs = |d: Duration| d.as_secs();
    let starts = starts.lock().unwrap();
    let gaps: Vec<u64> = starts.windows(2).map(|w| secs(w[1] - w[0])).collect();
    assert_eq!(gaps, [1, 2, 4, 5, 5], "doubling from 1 s, capped at 5 s");
    let events = events.lock().unwrap();
    let delays: Vec<u64> = events.iter().map(|e| secs(e.2)).collect();
    assert_eq!(delays, gaps, "each report states the delay actually waited");
    let numbers: Vec<u32> = events.iter().map(|e| e.0).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert!(events.iter().all(|e| e.1 == "failed: refused"));
}

#[tokio::test(start_paused = true)]
async fn restarts_after_panic_and_reports_message() {
    let runs = Arc::new(AtomicU32::new(0));
    let (sup, events) = recording(Supervisor::<String>::new("crashy").jitter(0.0));
    let counter = Arc::clone(&runs);
    let exit = sup
        .spawn(&Context::background(), move |_ctx| {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if run == 0 {
                    panic!("null pointer");
                }
                Ok(())
            }
        })
        .await;
    assert!(matches!(exit, SupervisorExit::Completed { restarts: 1 }));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, "panicked: null pointer");
    assert_eq!(
        events[0].2,
        Duration::from_millis(100),
        "the default backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn panic_in_the_factory_is_a_failed_run() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let exit = Supervisor::<String>::new("factory")
        .max_restarts(1, Duration::from_secs(60))
        .spawn(&Context::background(), move |_ctx| {
            counter.fetch_add(1, Ordering::SeqCst);
            if true {
                panic!("cannot build the task");
            }
            async { Ok(()) }
        })
        .await;
    let SupervisorExit::GaveUp { restarts: 1, last } = exit else {
        panic!("expected GaveUp after 1 restart, got {exit:?}");
    };
    assert_eq!(
        last,
        Failure::Panicked(weft_core::Panicked::new("cannot build the task"))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_n_restarts_within_the_window() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let exit = Supervisor::new("doomed")
        .backoff(Duration::from_secs(1), Duration::from_secs(1))
        .max_restarts(3, Duration::from_secs(60))
        .spawn(&Context::background(), move |_ctx| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(std::io::Error::other("down")) }
        })
        .await;
    assert!(matches!(exit, SupervisorExit::GaveUp { restarts: 3, .. }));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "the first run and 3 restarts"
    );
}

#[tokio::test(start_paused = true)]
async fn zero_max_restarts_never_restarts() {
    let exit = Supervisor::new("once")
        .max_restarts(0, Duration::from_secs(60))
        .spawn(&Context::background(), |_ctx| async { Err::<(), _>("x") })
        .await;
    assert!(matches!(exit, SupervisorExit::GaveUp { restarts: 0, .. }));
}

#[tokio::test(start_paused = true)]
async fn restarts_outside_the_window_neither_count_nor_grow_the_backoff() {
    let runs = Arc::new(AtomicU32::new(0));
    let (sup, events) = recording(
        Supervisor::new("slow-failer")
            .backoff(Duration::from_secs(1), Duration::from_secs(60))
            .jitter(0.0)
            .max_restarts(2, Duration::from_secs(60)),
    );
    let counter = Arc::clone(&runs);
    let exit = sup
        .spawn(&Context::background(), move |_ctx| {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                // Each run is healthy for longer than the window before failing.
                tokio::time::sleep(Duration::from_secs(100)).await;
                if run < 6 { Err("flap") } else { Ok(()) }
            }
        })
        .await;
    assert!(
        matches!(exit, SupervisorExit::Completed { restarts: 6 }),
        "6 failures, but never more than 2 within 60 s: {exit:?}"
    );
    let events = events.lock().unwrap();
    assert!(
        events.iter().all(|e| e.2 == Duration::from_secs(1)),
        "the backoff restarts from the initial delay: {events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_takes_a_random_part_off_each_delay() {
    let (sup, events) = recording(
        Supervisor::new("jittery")
            .backoff(Duration::from_secs(8), Duration::from_secs(8))
            .jitter(0.5)
            .max_restarts(20, Duration::from_secs(3600)),
    );
    let exit = sup
        .spawn(&Context::background(), |_ctx| async { Err::<(), _>("no") })
        .await;
    assert!(matches!(exit, SupervisorExit::GaveUp { restarts: 20, .. }));
    let delays: Vec<Duration> = events.lock().unwrap().iter().map(|e| e.2).collect();
    assert_eq!(delays.len(), 20);
    assert!(
        delays
            .iter()
            .all(|d| *d >= Duration::from_secs(4) && *d <= Duration::from_secs(8)),
        "within [delay * (1 - jitter), delay]: {delays:?}"
    );
    assert!(
        delays.iter().any(|d| *d != delays[0]),
        "the delays vary: {delays:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn stops_when_the_context_is_cancelled_while_running() {
    let (ctx, cancel) = Context::background().with_cancel();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let handle = Supervisor::<String>::new("server").spawn(&ctx, move |_ctx| {
        let guard = DropFlag(Arc::clone(&flag));
        async move {
            let _guard = guard;
            std::future::pending::<Result<(), String>>().await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    assert!(matches!(
        handle.await,
        SupervisorExit::Stopped { restarts: 0 }
    ));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the running attempt was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn stops_during_backoff_without_another_run() {
    let (ctx, cancel) = Context::background().with_cancel();
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let (sup, _events) = recording(
        Supervisor::new("backing-off")
            .backoff(Duration::from_secs(60), Duration::from_secs(60))
            .jitter(0.0),
    );
    let handle = sup.spawn(&ctx, move |_ctx| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>("fail") }
    });
    tokio::time::sleep(Duration::from_secs(30)).await; // inside the first 60 s backoff
    cancel.cancel();
    assert!(matches!(
        handle.await,
        SupervisorExit::Stopped { restarts: 1 }
    ));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn already_done_context_runs_nothing() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let exit = Supervisor::<String>::new("late")
        .spawn(&ctx, move |_ctx| {
            flag.store(true, Ordering::SeqCst);
            async { Ok(()) }
        })
        .await;
    assert!(matches!(exit, SupervisorExit::Stopped { restarts: 0 }));
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn grace_period_lets_the_attempt_finish_cleanly() {
    for (grace, expect_clean) in [(Duration::from_secs(5), true), (Duration::ZERO, false)] {
        let (ctx, cancel) = Context::background().with_cancel();
        let clean = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&clean);
        let handle = Supervisor::<String>::new("graceful")
            .grace_period(grace)
            .spawn(&ctx, move |ctx| {
                let flag = Arc::clone(&flag);
                async move {
                    ctx.done().await;
                    tokio::time::sleep(Duration::from_secs(1)).await; // flush buffers
                    flag.store(true, Ordering::SeqCst);
                    Ok(())
                }
            });
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
        assert!(matches!(handle.await, SupervisorExit::Stopped { .. }));
        assert_eq!(
            clean.load(Ordering::SeqCst),
            expect_clean,
            "grace {grace:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn awaiting_the_supervisor_is_cancel_safe() {
    let (ctx, cancel) = Context::background().with_cancel();
    let mut handle = Supervisor::<String>::new("watched").spawn(&ctx, |ctx| async move {
        ctx.done().await;
        Ok(())
    });
    tokio::select! {
        _ = &mut handle => panic!("still supervising"),
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    assert!(!handle.is_finished());
    cancel.cancel();
    assert!(matches!(
        handle.await,
        SupervisorExit::Stopped { restarts: 0 }
    ));
}

#[tokio::test(start_paused = true)]
async fn restarts_are_logged_with_the_supervisor_name() {
    let capture = Capture::start();
    let exit = Supervisor::new("mailer")
        .max_restarts(1, Duration::from_secs(60))
        .spawn(&Context::background(), |_ctx| async {
            Err::<(), _>("smtp down")
        })
        .await;
    assert!(matches!(exit, SupervisorExit::GaveUp { restarts: 1, .. }));
    let log = capture.text();
    assert!(
        log.contains("WARN") && log.contains("restarting task"),
        "{log}"
    );
    assert!(log.contains("supervisor=mailer"), "{log}");
    assert!(log.contains("failure=failed: smtp down"), "{log}");
    assert!(log.contains("giving up"), "{log}");
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn error_caused_by_the_context_is_not_restarted() {
    let (ctx, cancel) = Context::background().with_cancel();
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let (sup, events) = recording(Supervisor::new("ctx-aware"));
    let handle = sup.spawn(&ctx, move |ctx| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { ctx.run(std::future::pending::<()>()).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    assert!(matches!(
        handle.await,
        SupervisorExit::Stopped { restarts: 0 }
    ));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(events.lock().unwrap().is_empty(), "no restart was reported");
}
