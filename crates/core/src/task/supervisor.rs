//! A supervisor that keeps one long-running task alive, as Erlang's one-for-one supervisors
//! do, within limits.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::panic::{Panicked, catch_panic};
use crate::context::Context;

/// Why one run of a supervised task failed.
///
/// # Examples
///
/// ```
/// use weft_core::Panicked;
/// use weft_core::task::Failure;
/// let f: Failure<std::io::Error> = Failure::Panicked(Panicked::new("boom"));
/// assert_eq!(f.to_string(), "panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure<E> {
    /// The run returned this error.
    Error(E),
    /// The run panicked; [`Panicked::message`] says with what.
    Panicked(Panicked),
}

impl<E> Failure<E> {
    /// Returns the error, if the run returned one rather than panicking.
    ///
    /// ```
    /// use weft_core::task::Failure;
    /// assert_eq!(Failure::Error(3).error(), Some(&3));
    /// ```
    #[must_use]
    pub fn error(&self) -> Option<&E> {
        match self {
            Failure::Error(e) => Some(e),
            Failure::Panicked(_) => None,
        }
    }

    /// Returns `true` if the run panicked.
    ///
    /// ```
    /// use weft_core::{Panicked, task::Failure};
    /// assert!(Failure::<()>::Panicked(Panicked::new("x")).is_panic());
    /// ```
    #[must_use]
    pub fn is_panic(&self) -> bool {
        matches!(self, Failure::Panicked(_))
    }
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(e) => write!(f, "failed: {e}"),
            Failure::Panicked(p) => fmt::Display::fmt(p, f),
        }
    }
}

/// One restart, as reported to [`Supervisor::on_restart`].
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use weft_core::context::Context;
/// use weft_core::task::{Supervisor, SupervisorExit};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&seen);
/// let exit = Supervisor::new("flaky")
///     .backoff(Duration::from_secs(1), Duration::from_secs(60))
///     .jitter(0.0)
///     .max_restarts(2, Duration::from_secs(600))
///     .on_restart(move |r| log.lock().unwrap().push((r.restart, r.delay)))
///     .spawn(&Context::background(), |_ctx| async { Err::<(), _>("refused") })
///     .await;
/// assert!(matches!(exit, SupervisorExit::GaveUp { restarts: 2, .. }));
/// assert_eq!(*seen.lock().unwrap(), [(1, Duration::from_secs(1)), (2, Duration::from_secs(2))]);
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Restart<E> {
    /// How many restarts this is, counting from 1 over the supervisor's life.
    pub restart: u32,
    /// Why the run that just ended failed.
    pub failure: Failure<E>,
    /// How long the supervisor waits before the next run (backoff with jitter).
    pub delay: Duration,
}

/// How a supervisor ended; the output of [`SupervisorHandle`].
///
/// # Examples
///
/// ```
/// use weft_core::context::Context;
/// use weft_core::task::{Supervisor, SupervisorExit};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let exit = Supervisor::new("once")
///     .spawn(&Context::background(), |_ctx| async { Ok::<(), String>(()) })
///     .await;
/// assert!(matches!(exit, SupervisorExit::Completed { restarts: 0 }));
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SupervisorExit<E> {
    /// A run returned `Ok(())`: the task finished its work, so nothing was restarted.
    Completed {
        /// Restarts before the run that completed.
        restarts: u32,
    },
    /// The supervisor's context was done (or the supervisor was aborted).
    Stopped {
        /// Restarts before it stopped.
        restarts: u32,
    },
    /// The task failed once more after `max_restarts` restarts within the window.
    GaveUp {
        /// Restarts over the supervisor's life.
        restarts: u32,
        /// Why the final run failed.
        last: Failure<E>,
    },
}

type OnRestart<E> = Box<dyn FnMut(&Restart<E>) + Send>;

/// Keeps a long-running task alive: runs it, and after it fails (returns `Err` or panics)
/// runs it again after an exponential backoff with jitter, until it completes, the
/// supervisor's [`Context`] is done, or it has failed too often.
///
/// - **Backoff.** The `n`-th restart within the window waits `initial * 2^(n-1)`, capped at
///   `max`, minus a random part of up to [`jitter`](Supervisor::jitter) of it (so restarts of
///   many supervised tasks spread out). Because the exponent counts only restarts within the
///   window, a task that has been healthy for a window starts again from `initial`.
/// - **Giving up.** After [`max_restarts`](Supervisor::max_restarts) restarts within the
///   window, the next failure ends the supervisor with [`SupervisorExit::GaveUp`].
/// - **Reporting.** Every restart calls [`on_restart`](Supervisor::on_restart) and is logged
///   through `tracing` at `WARN` (a give-up at `ERROR`), with the supervisor's name.
/// - **Stopping.** When the context is done the running attempt is dropped (after an optional
///   [`grace_period`](Supervisor::grace_period)), no restart happens, and the supervisor ends
///   with [`SupervisorExit::Stopped`]. Each run receives a clone of the context, so a task
///   that watches it can finish cleanly within the grace period.
///
/// A run that returns `Ok(())` is finished work, not a failure: the supervisor ends with
/// [`SupervisorExit::Completed`]. Loop inside the task to serve forever.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use weft_core::context::Context;
/// use weft_core::task::{Supervisor, SupervisorExit};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let runs = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&runs);
/// let handle = Supervisor::new("connector").spawn(&Context::background(), move |_ctx| {
///     let run = counter.fetch_add(1, Ordering::SeqCst);
///     async move {
///         if run < 2 {
///             panic!("connection reset"); // the first two runs crash...
///         }
///         Ok::<(), std::io::Error>(()) // ...the third one finishes
///     }
/// });
/// assert!(matches!(handle.await, SupervisorExit::Completed { restarts: 2 }));
/// assert_eq!(runs.load(Ordering::SeqCst), 3);
/// # }
/// ```
pub struct Supervisor<E> {
    name: Arc<str>,
    initial_backoff: Duration,
    max_backoff: Duration,
    jitter: f64,
    max_restarts: u32,
    window: Duration,
    grace: Duration,
    on_restart: Option<OnRestart<E>>,
}

impl<E> Supervisor<E>
where
    E: fmt::Display + Send + 'static,
{
    /// Returns a supervisor named `name` (used in its logs) with the defaults: backoff from
    /// 100 ms doubling up to 30 s, jitter 0.25, at most 10 restarts within 60 s, no grace
    /// period, no restart callback.
    ///
    /// ```
    /// use weft_core::task::Supervisor;
    /// let sup = Supervisor::<std::io::Error>::new("indexer");
    /// assert_eq!(sup.name(), "indexer");
    /// ```
    #[must_use]
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Supervisor {
            name: name.into(),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            jitter: 0.25,
            max_restarts: 10,
            window: Duration::from_secs(60),
            grace: Duration::ZERO,
            on_restart: None,
        }
    }

    /// Returns the supervisor's name.
    ///
    /// ```
    /// use weft_core::task::Supervisor;
    /// assert_eq!(Supervisor::<String>::new("a").name(), "a");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the backoff: the first restart within a window waits `initial`, each further one
    /// twice as long, never more than `max`. By default 100 ms and 30 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::task::Supervisor;
    /// let sup = Supervisor::<String>::new("a").backoff(Duration::from_secs(1), Duration::from_secs(8));
    /// # let _ = sup;
    /// ```
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets the jitter, the largest fraction of a delay that is randomly taken off it: each
    /// delay is drawn uniformly from `[delay * (1 - jitter), delay]`. Clamped to `0.0..=1.0`
    /// (`NaN` counts as `0.0`); `0.0` makes delays exact. By default 0.25.
    ///
    /// ```
    /// use weft_core::task::Supervisor;
    /// let sup = Supervisor::<String>::new("a").jitter(0.5);
    /// # let _ = sup;
    /// ```
    #[must_use]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Sets when to give up: after `restarts` restarts within any `window`, the next failure
    /// ends the supervisor with [`SupervisorExit::GaveUp`]. `0` never restarts. By default 10
    /// restarts within 60 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::task::Supervisor;
    /// let sup = Supervisor::<String>::new("a").max_restarts(3, Duration::from_secs(10));
    /// # let _ = sup;
    /// ```
    #[must_use]
    pub fn max_restarts(mut self, restarts: u32, window: Duration) -> Self {
        self.max_restarts = restarts;
        self.window = window;
        self
    }

    /// Sets how long a running attempt may go on after the context is done, to finish
    /// cleanly, before it is dropped. By default zero: it is dropped at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::task::Supervisor;
    /// let sup = Supervisor::<String>::new("a").grace_period(Duration::from_secs(5));
    /// # let _ = sup;
    /// ```
    #[must_use]
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Calls `f` on every restart, before the backoff delay, with the failure and the delay.
    /// Keep it short: the supervisor calls it inline. By default there is none (restarts are
    /// still logged).
    ///
    /// # Panics
    ///
    /// A panic in `f` ends the supervisor; awaiting its handle then resumes that panic.
    ///
    /// ```
    /// use weft_core::task::Supervisor;
    /// let sup = Supervisor::<String>::new("a").on_restart(|r| eprintln!("restart {}: {}", r.restart, r.failure));
    /// # let _ = sup;
    /// ```
    #[must_use]
    pub fn on_restart(mut self, f: impl FnMut(&Restart<E>) + Send + 'static) -> Self {
        self.on_restart = Some(Box::new(f));
        self
    }

    /// Starts supervising: spawns a task that calls `make(ctx.clone())` and runs the future it
    /// returns, again after each failure, as described on [`Supervisor`].
    ///
    /// The supervisor is one tokio task; each run is polled inside it (its panics are caught
    /// there), so supervising costs no task beyond that one.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// use weft_core::task::{Supervisor, SupervisorExit};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let handle = Supervisor::new("server").spawn(&ctx, |ctx| async move {
    ///     ctx.done().await; // serve until told to stop
    ///     Ok::<(), String>(())
    /// });
    /// cancel.cancel();
    /// assert!(matches!(handle.await, SupervisorExit::Stopped { restarts: 0 }));
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn<F, Fut>(self, ctx: &Context, make: F) -> SupervisorHandle<E>
    where
        F: FnMut(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let ctx = ctx.clone();
        SupervisorHandle {
            inner: tokio::spawn(self.run(ctx, make)),
        }
    }

    async fn run<F, Fut>(mut self, ctx: Context, mut make: F) -> SupervisorExit<E>
    where
        F: FnMut(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        // Start times of the restarts within the current window, oldest first.
        let mut recent: VecDeque<Instant> = VecDeque::new();
        let mut restarts: u32 = 0;
        loop {
            if ctx.is_done() {
                return SupervisorExit::Stopped { restarts };
            }
            let failure = match self.run_once(&ctx, &mut make).await {
                RunOutcome::Completed => return SupervisorExit::Completed { restarts },
                RunOutcome::Stopped => return SupervisorExit::Stopped { restarts },
                RunOutcome::Failed(failure) => failure,
            };

            let now = Instant::now();
            while recent
                .front()
                .is_some_and(|&t| now.saturating_duration_since(t) >= self.window)
            {
                recent.pop_front();
            }
            if recent.len() >= self.max_restarts as usize {
                tracing::error!(
                    supervisor = %self.name,
                    restarts,
                    failure = %failure,
                    "task failed too often; giving up"
                );
                return SupervisorExit::GaveUp {
                    restarts,
                    last: failure,
                };
            }
            let delay = self.delay(recent.len());
            recent.push_back(now);
            restarts = restarts.saturating_add(1);
            tracing::warn!(
                supervisor = %self.name,
                restart = restarts,
                delay = ?delay,
                failure = %failure,
                "restarting task"
            );
            if let Some(on_restart) = self.on_restart.as_mut() {
                on_restart(&Restart {
                    restart: restarts,
                    failure,
                    delay,
                });
            }
            tokio::select! {
                biased;
                () = ctx.done() => return SupervisorExit::Stopped { restarts },
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Runs one attempt, racing it against the context. (`&mut self`: the callback makes
    /// `Supervisor` `Send` but not `Sync`, and this future must be `Send`.)
    async fn run_once<F, Fut>(&mut self, ctx: &Context, make: &mut F) -> RunOutcome<E>
    where
        F: FnMut(Context) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        // A panic in `make` itself counts as a failed run, like one in the future it returns.
        let attempt = match std::panic::catch_unwind(AssertUnwindSafe(|| make(ctx.clone()))) {
            Ok(fut) => fut,
            Err(payload) => return self.panicked(Panicked::from_payload(&*payload)),
        };
        let mut attempt = pin!(catch_panic(attempt));
        let outcome = tokio::select! {
            biased;
            outcome = &mut attempt => outcome,
            () = ctx.done() => {
                if !self.grace.is_zero() {
                    // The attempt saw the same context; let it wind down.
                    let _ = tokio::time::timeout(self.grace, &mut attempt).await;
                }
                return RunOutcome::Stopped;
            }
        };
        if ctx.is_done() {
            // The run ended because (or just as) the context ended, for example by watching
            // it: that is stopping, not a failure to restart or a completion.
            return RunOutcome::Stopped;
        }
        match outcome {
            Ok(Ok(())) => RunOutcome::Completed,
            Ok(Err(e)) => RunOutcome::Failed(Failure::Error(e)),
            Err(panicked) => self.panicked(panicked),
        }
    }

    fn panicked(&self, panicked: Panicked) -> RunOutcome<E> {
        tracing::error!(
            supervisor = %self.name,
            panic = %panicked.message(),
            "supervised task panicked"
        );
        RunOutcome::Failed(Failure::Panicked(panicked))
    }

    /// The delay before the restart that follows `prior` restarts within the window.
    fn delay(&self, prior: usize) -> Duration {
        let factor = 1_u32.checked_shl(u32::try_from(prior).unwrap_or(u32::MAX));
        let base = factor
            .and_then(|f| self.initial_backoff.checked_mul(f))
            .map_or(self.max_backoff, |d| d.min(self.max_backoff));
        if self.jitter == 0.0 {
            return base;
        }
        // `try_from`: near `Duration::MAX` the f64 round trip can overflow; keep `base` then.
        let factor = 1.0 - self.jitter * rand::random::<f64>();
        Duration::try_from_secs_f64(base.as_secs_f64() * factor)
            .map_or(base, |jittered| jittered.min(base))
    }
}

enum RunOutcome<E> {
    Completed,
    Stopped,
    Failed(Failure<E>),
}

impl<E> fmt::Debug for Supervisor<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.name)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("jitter", &self.jitter)
            .field("max_restarts", &self.max_restarts)
            .field("window", &self.window)
            .field("grace", &self.grace)
            .field("on_restart", &self.on_restart.is_some())
            .finish()
    }
}

/// Handle to a running [`Supervisor`]; await it for the [`SupervisorExit`].
///
/// # Drop
///
/// Dropping the handle detaches the supervisor: it keeps supervising until its context is
/// done. Stop it by cancelling that context (or with [`abort`](SupervisorHandle::abort)).
///
/// # Cancel safety
///
/// Awaiting the handle is cancel safe: dropping the `.await` loses nothing, the supervisor
/// runs on. Poll `&mut handle` in a `select!` loop.
///
/// # Panics
///
/// Awaiting resumes a panic raised by the [`on_restart`](Supervisor::on_restart) callback.
///
/// # Examples
///
/// ```
/// use weft_core::context::Context;
/// use weft_core::task::{Supervisor, SupervisorExit};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = Supervisor::new("idle").spawn(&Context::background(), |_ctx| async {
///     std::future::pending::<Result<(), String>>().await
/// });
/// assert!(!handle.is_finished());
/// handle.abort();
/// assert!(matches!(handle.await, SupervisorExit::Stopped { .. }));
/// # }
/// ```
#[must_use = "dropping the handle detaches the supervisor; await it to learn how it ended"]
pub struct SupervisorHandle<E> {
    inner: JoinHandle<SupervisorExit<E>>,
}

impl<E> SupervisorHandle<E> {
    /// Aborts the supervisor and its running attempt at once, without a grace period;
    /// awaiting the handle then gives [`SupervisorExit::Stopped`] (with an unknown restart
    /// count, reported as 0). Prefer cancelling the context.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// use weft_core::task::Supervisor;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let h = Supervisor::new("x").spawn(&Context::background(), |_| std::future::pending::<Result<(), String>>());
    /// h.abort();
    /// # }
    /// ```
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// Returns `true` once the supervisor has ended.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// use weft_core::task::Supervisor;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let h = Supervisor::new("x").spawn(&Context::background(), |_| std::future::pending::<Result<(), String>>());
    /// assert!(!h.is_finished());
    /// # }
    /// ```
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl<E> Future for SupervisorHandle<E> {
    type Output = SupervisorExit<E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(Pin::new(&mut self.inner).poll(cx)) {
            Ok(exit) => exit,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => SupervisorExit::Stopped { restarts: 0 },
        })
    }
}

impl<E> fmt::Debug for SupervisorHandle<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorHandle")
            .field("finished", &self.inner.is_finished())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_then_saturates_at_max_without_overflow() {
        let sup = Supervisor::<String>::new("t")
            .backoff(Duration::from_secs(1), Duration::from_secs(30))
            .jitter(0.0);
        let secs: Vec<u64> = [0, 1, 4, 5, 31, 32, 10_000, usize::MAX]
            .into_iter()
            .map(|n| sup.delay(n).as_secs())
            .collect();
        assert_eq!(secs, [1, 2, 16, 30, 30, 30, 30, 30]);
    }

    #[test]
    fn jitter_is_clamped() {
        let nan = Supervisor::<String>::new("t")
            .backoff(Duration::from_secs(4), Duration::from_secs(4))
            .jitter(f64::NAN);
        assert_eq!(
            nan.delay(0),
            Duration::from_secs(4),
            "NaN counts as no jitter"
        );
        let full = Supervisor::<String>::new("t")
            .backoff(Duration::from_secs(4), Duration::from_secs(4))
            .jitter(7.0);
        assert!((0..100).all(|_| full.delay(0) <= Duration::from_secs(4)));
        let huge = Supervisor::<String>::new("t").backoff(Duration::MAX, Duration::MAX);
        assert!(huge.delay(3) <= Duration::MAX, "no overflow panic");
    }
}
