//! Go's `context` package for tokio: cancellation, deadlines, causes and typed values, passed
//! down a tree of tasks.
//!
//! A [`Context`] is the one thing a weft pipeline, pool, app or example takes to know when to
//! stop. It is a cheap, cloneable handle (two `Arc`s) over tokio-util's
//! [`CancellationToken`], with Go's names:
//!
//! | Go | weft |
//! |---|---|
//! | `context.Background()` | [`Context::background()`] |
//! | `context.WithCancel(ctx)` | [`ctx.with_cancel()`](Context::with_cancel) |
//! | `context.WithCancelCause(ctx)` | [`ctx.with_cancel()`](Context::with_cancel) + [`cancel.cancel_with(cause)`](CancelFn::cancel_with) |
//! | `context.WithTimeout` / `WithDeadline` | [`ctx.with_timeout(d)`](Context::with_timeout) / [`ctx.with_deadline(t)`](Context::with_deadline) |
//! | `context.WithTimeoutCause` / `WithDeadlineCause` | [`ctx.with_timeout_cause(d, cause)`](Context::with_timeout_cause) / [`ctx.with_deadline_cause(t, cause)`](Context::with_deadline_cause) |
//! | `context.WithValue(ctx, key, v)` | [`ctx.with_value(v)`](Context::with_value), keyed by type |
//! | `context.WithoutCancel(ctx)` | [`ctx.without_cancel()`](Context::without_cancel) |
//! | `context.AfterFunc(ctx, f)` | [`ctx.after_func(f)`](Context::after_func) |
//! | `<-ctx.Done()` | [`ctx.done().await`](Context::done) |
//! | `ctx.Err()`, `context.Cause(ctx)` | [`ctx.err()`](Context::err), [`ctx.cause()`](Context::cause) |
//! | `context.Canceled`, `context.DeadlineExceeded` | [`ContextError::Cancelled`], [`ContextError::DeadlineExceeded`] |
//!
//! # Differences from Go, and why
//!
//! - **Dropping a [`CancelFn`] does not cancel.** `let (ctx, _) = parent.with_timeout(d)` gives
//!   a context that lives until its deadline or its parent ends, not one that is cancelled on
//!   the spot. Nothing leaks either: unlike Go, where a forgotten `cancel` keeps the child in its
//!   parent's map until the parent ends, a weft child unlinks itself from its parent once its
//!   last `Context` clone and `CancelFn` are dropped. To cancel on scope exit, use
//!   [`CancelFn::drop_guard`].
//! - **Deadlines cost no task or goroutine.** A deadline is compared with the clock when someone
//!   asks ([`is_done`](Context::is_done), [`err`](Context::err)) or waits
//!   ([`done`](Context::done) races the token against a timer). Creating and dropping 100k
//!   timeout contexts is a handful of allocations each (see `benches/benches/context.rs`).
//!   The one thing this changes: a tokio-util token from [`child_token`](Context::child_token)
//!   is cancelled by a deadline only once something notices the deadline, so await
//!   [`done`](Context::done) somewhere if a token alone must fire on time.
//! - **One cancel function for `WithCancel` and `WithCancelCause`.** [`CancelFn`] has both
//!   [`cancel`](CancelFn::cancel) and [`cancel_with`](CancelFn::cancel_with), and is `Clone`.
//! - **`Context` is a type, not an interface.** Go code may implement `context.Context`
//!   itself; here every context is a [`Context`], derived from another or from
//!   [`background`](Context::background). Code that speaks tokio-util's `CancellationToken`
//!   gets one from [`child_token`](Context::child_token).
//! - **`Cancelled`, not `Canceled`.** Go's `context.Canceled` is [`ContextError::Cancelled`]
//!   here, and its text is `context cancelled`: tokio (`JoinError::is_cancelled`,
//!   `CancellationToken`) and every other weft crate spell it that way, and one word per idea
//!   beats matching Go's spelling. Match on the variant, not on the text.
//! - **[`after_func`](Context::after_func)'s function runs on a tokio task.** Go's `cancel`
//!   starts `f`'s goroutine itself; here `after_func` spawns one task at once, which wakes when
//!   the context is done. Go's guarantee holds all the same: once the context is done,
//!   [`stop`](AfterFunc::stop) returns `false` and `f` runs exactly once, even if its task has
//!   not run yet. Two things differ: `after_func` must be called inside a tokio runtime, and
//!   `f` is dropped without running if the runtime shuts down before its task runs.
//! - **Values are keyed by type**, not by an `interface{}` key, so two libraries cannot collide
//!   by accident and lookups need no cast at the call site. Wrap a value in a newtype to give it
//!   its own key.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use weft_core::context::{Context, ContextError};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! #[derive(Debug, PartialEq)]
//! struct RequestId(u64);
//!
//! let root = Context::background().with_value(RequestId(7));
//! let (ctx, _cancel) = root.with_timeout(Duration::from_millis(50));
//!
//! // Work that notices the deadline: `run` races a future against the context.
//! let slow = tokio::time::sleep(Duration::from_secs(10));
//! assert_eq!(ctx.run(slow).await, Err(ContextError::DeadlineExceeded));
//! assert_eq!(ctx.value::<RequestId>(), Some(&RequestId(7)));
//! assert!(!root.is_done(), "a child never cancels its parent");
//! # }
//! ```

mod error;
mod future;
mod node;

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use error::{Cause, ContextError};
pub use future::Done;

use node::Node;

/// A Go-style context: a cancellation signal with an optional deadline, a cancel cause and typed
/// values, shared by a tree of tasks.
///
/// Cloning is cheap (two reference counts) and every clone is the same context. Create a root
/// with [`Context::background`] and derive children with [`with_cancel`](Context::with_cancel),
/// [`with_timeout`](Context::with_timeout), [`with_deadline`](Context::with_deadline) and
/// [`with_value`](Context::with_value). A child is done when its parent is, never the reverse.
///
/// See the [module documentation](self) for the mapping from Go and the differences.
///
/// # Examples
///
/// ```
/// use weft_core::context::Context;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (parent, cancel) = Context::background().with_cancel();
/// let (child, _child_cancel) = parent.with_cancel();
///
/// let worker = tokio::spawn({
///     let child = child.clone();
///     async move {
///         child.done().await;
///         child.cause().unwrap().to_string()
///     }
/// });
/// cancel.cancel_with("shutting down");
/// assert_eq!(worker.await.unwrap(), "shutting down");
/// # }
/// ```
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
    values: Option<Arc<ValueNode>>,
}

struct ValueNode {
    type_id: TypeId,
    value: Box<dyn Any + Send + Sync>,
    parent: Option<Arc<ValueNode>>,
}

impl Context {
    /// Returns a new root context: never cancelled, no deadline, no values (Go's
    /// `context.Background()`).
    ///
    /// Each call returns an independent root; cancelling a child of one never affects another.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// let ctx = Context::background();
    /// assert!(!ctx.is_done());
    /// assert_eq!(ctx.deadline(), None);
    /// ```
    #[must_use]
    pub fn background() -> Context {
        Context {
            node: Node::root(),
            values: None,
        }
    }

    /// Returns a child context and the function that cancels it (Go's `context.WithCancel`, and
    /// `WithCancelCause` through [`CancelFn::cancel_with`]).
    ///
    /// The child is done when `cancel` is called or when `self` is done. Dropping the
    /// [`CancelFn`] does **not** cancel; see [`CancelFn`].
    ///
    /// ```
    /// use weft_core::context::Context;
    /// let parent = Context::background();
    /// let (child, cancel) = parent.with_cancel();
    /// cancel.cancel();
    /// assert!(child.is_done());
    /// assert!(!parent.is_done());
    /// ```
    #[must_use = "the context is the first value; the CancelFn cancels it (dropping it does not)"]
    pub fn with_cancel(&self) -> (Context, CancelFn) {
        self.derive(None)
    }

    /// Returns a child context that is done `timeout` from now at the latest (Go's
    /// `context.WithTimeout`). The deadline uses tokio's clock, so a paused test clock applies.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::context::{Context, ContextError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    /// ctx.done().await;
    /// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    /// # }
    /// ```
    #[must_use = "the context is the first value; the CancelFn cancels it (dropping it does not)"]
    pub fn with_timeout(&self, timeout: Duration) -> (Context, CancelFn) {
        self.with_deadline(Instant::now() + timeout)
    }

    /// Returns a child context that is done at `deadline` at the latest (Go's
    /// `context.WithDeadline`). The child's deadline is the earlier of `deadline` and the
    /// parent's.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use weft_core::context::Context;
    ///
    /// let soon = Instant::now() + Duration::from_secs(1);
    /// let (parent, _c1) = Context::background().with_deadline(soon);
    /// let (child, _c2) = parent.with_timeout(Duration::from_secs(60));
    /// assert_eq!(child.deadline(), Some(soon), "a child never outlives its parent's deadline");
    /// ```
    #[must_use = "the context is the first value; the CancelFn cancels it (dropping it does not)"]
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelFn) {
        self.derive(Some(deadline))
    }

    /// Returns a child context that is done `timeout` from now at the latest, and then has
    /// `cause` as its [cause](Context::cause) (Go 1.21's `context.WithTimeoutCause`).
    /// [`err`](Context::err) still says [`ContextError::DeadlineExceeded`]; a cancel before
    /// the deadline keeps its own cause.
    ///
    /// Only this context's own deadline carries `cause`: if the parent's deadline comes
    /// first, the child ends with the parent's deadline and cause, as in Go.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::context::{Context, ContextError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("upstream took longer than {0:?}")]
    /// struct SlowUpstream(Duration);
    ///
    /// let budget = Duration::from_millis(250);
    /// let (ctx, _cancel) = Context::background().with_timeout_cause(budget, SlowUpstream(budget));
    /// ctx.done().await;
    /// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    /// let cause = ctx.cause().unwrap();
    /// assert_eq!(cause.downcast_ref::<SlowUpstream>().unwrap().0, budget);
    /// # }
    /// ```
    #[must_use = "the context is the first value; the CancelFn cancels it (dropping it does not)"]
    pub fn with_timeout_cause(
        &self,
        timeout: Duration,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> (Context, CancelFn) {
        self.with_deadline_cause(Instant::now() + timeout, cause)
    }

    /// Returns a child context that is done at `deadline` at the latest, and then has `cause`
    /// as its [cause](Context::cause) (Go 1.21's `context.WithDeadlineCause`). As
    /// [`with_timeout_cause`](Context::with_timeout_cause), with an instant.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use weft_core::context::{Context, ContextError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let close_of_business = Instant::now() + Duration::from_secs(8 * 3600);
    /// let (ctx, _cancel) = Context::background()
    ///     .with_deadline_cause(close_of_business, "the batch window closed");
    /// tokio::time::advance(Duration::from_secs(8 * 3600)).await;
    /// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "the batch window closed");
    /// # }
    /// ```
    #[must_use = "the context is the first value; the CancelFn cancels it (dropping it does not)"]
    pub fn with_deadline_cause(
        &self,
        deadline: Instant,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> (Context, CancelFn) {
        let node = self.node.child(Some(deadline), Some(Cause::new(cause)));
        self.wrap(node)
    }

    fn derive(&self, deadline: Option<Instant>) -> (Context, CancelFn) {
        self.wrap(self.node.child(deadline, None))
    }

    fn wrap(&self, node: Arc<Node>) -> (Context, CancelFn) {
        let cancel = CancelFn {
            node: Arc::clone(&node),
        };
        (
            Context {
                node,
                values: self.values.clone(),
            },
            cancel,
        )
    }

    /// Returns a child context carrying `value`, looked up by its type with
    /// [`value`](Context::value) (Go's `context.WithValue`). A value of the same type set on a
    /// child shadows the parent's, for that child and its descendants only.
    ///
    /// The child shares the parent's cancellation: it is done exactly when the parent is.
    ///
    /// ```
    /// use weft_core::context::Context;
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct User(&'static str);
    ///
    /// let parent = Context::background().with_value(User("ann"));
    /// let child = parent.with_value(User("bob"));
    /// assert_eq!(child.value::<User>(), Some(&User("bob")));
    /// assert_eq!(parent.value::<User>(), Some(&User("ann")));
    /// assert_eq!(parent.value::<u32>(), None);
    /// ```
    #[must_use]
    pub fn with_value<T: Any + Send + Sync>(&self, value: T) -> Context {
        Context {
            node: Arc::clone(&self.node),
            values: Some(Arc::new(ValueNode {
                type_id: TypeId::of::<T>(),
                value: Box::new(value),
                parent: self.values.clone(),
            })),
        }
    }

    /// Returns the nearest value of type `T` on this context or its parents.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// let ctx = Context::background().with_value(42_u32);
    /// assert_eq!(ctx.value::<u32>(), Some(&42));
    /// ```
    #[must_use]
    pub fn value<T: Any + Send + Sync>(&self) -> Option<&T> {
        let want = TypeId::of::<T>();
        let mut node = self.values.as_deref();
        while let Some(n) = node {
            if n.type_id == want {
                return n.value.downcast_ref::<T>();
            }
            node = n.parent.as_deref();
        }
        None
    }

    /// Returns a context with this context's values that is never cancelled and has no
    /// deadline (Go 1.21's `context.WithoutCancel`): for work that must finish even when the
    /// request that started it ends, such as writing an audit record.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// let (ctx, cancel) = Context::background().with_value("trace-1").with_cancel();
    /// let detached = ctx.without_cancel();
    /// cancel.cancel();
    /// assert!(ctx.is_done());
    /// assert!(!detached.is_done());
    /// assert_eq!(detached.value::<&str>(), Some(&"trace-1"));
    /// ```
    #[must_use]
    pub fn without_cancel(&self) -> Context {
        Context {
            node: Node::root(),
            values: self.values.clone(),
        }
    }

    /// Returns a future that completes when this context is done (Go's `<-ctx.Done()`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes. Use it freely as a `tokio::select!` branch.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel();
    /// tokio::select! {
    ///     _ = ctx.done() => {}
    ///     _ = std::future::pending::<()>() => unreachable!(),
    /// }
    /// # }
    /// ```
    pub fn done(&self) -> Done {
        Done::new(Arc::clone(&self.node))
    }

    /// Returns `true` once the context is cancelled or past its deadline. Never blocks.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// assert!(!ctx.is_done());
    /// cancel.cancel();
    /// assert!(ctx.is_done());
    /// ```
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.node.is_done()
    }

    /// Returns why the context is done, or `None` while it is not (Go's `ctx.Err()`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::context::{Context, ContextError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(5));
    /// assert_eq!(ctx.err(), None);
    /// tokio::time::advance(Duration::from_secs(5)).await;
    /// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    /// # }
    /// ```
    #[must_use]
    pub fn err(&self) -> Option<ContextError> {
        self.node.reason().map(|r| r.err)
    }

    /// Returns the cause the context was cancelled with (Go 1.20's `context.Cause`), or `None`
    /// while it is not done. Without an explicit cause, the cause is the [`ContextError`].
    /// Children see their parent's cause.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// let (parent, cancel) = Context::background().with_cancel();
    /// let (child, _) = parent.with_cancel();
    /// cancel.cancel_with(std::io::Error::other("upstream closed"));
    /// assert_eq!(child.cause().unwrap().to_string(), "upstream closed");
    /// ```
    #[must_use]
    pub fn cause(&self) -> Option<Cause> {
        self.node.reason().map(|r| r.cause)
    }

    /// Returns the deadline: the earliest of this context's and its parents' deadlines.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// assert_eq!(Context::background().deadline(), None);
    /// ```
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// Returns the time left until the deadline (zero once it has passed), or `None` without a
    /// deadline. Handy to give a nested timeout the remaining budget.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::context::Context;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _c) = Context::background().with_timeout(Duration::from_secs(3));
    /// assert_eq!(ctx.remaining(), Some(Duration::from_secs(3)));
    /// # }
    /// ```
    #[must_use]
    pub fn remaining(&self) -> Option<Duration> {
        self.node
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Races `future` against this context (Go's `select { case <-ctx.Done(): ... case v := <-work: ... }`).
    ///
    /// Returns `Ok(output)` if the future finishes first, or `Err` with the context's error once
    /// the context is done, dropping the future. If the context is already done, the future is
    /// not polled at all.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `future` itself: dropping the returned future drops `future`.
    ///
    /// ```
    /// use weft_core::context::{Context, ContextError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = Context::background();
    /// assert_eq!(ctx.run(async { 1 + 1 }).await, Ok(2));
    ///
    /// let (ctx, cancel) = ctx.with_cancel();
    /// cancel.cancel();
    /// assert_eq!(ctx.run(async { 1 + 1 }).await, Err(ContextError::Cancelled));
    /// # }
    /// ```
    pub async fn run<F: Future>(&self, future: F) -> Result<F::Output, ContextError> {
        if let Some(err) = self.err() {
            return Err(err);
        }
        tokio::select! {
            biased;
            () = self.done() => Err(self.err().unwrap_or(ContextError::Cancelled)),
            output = future => Ok(output),
        }
    }

    /// Arranges for `f` to run on a tokio task once this context is done (Go 1.21's
    /// `context.AfterFunc`). If the context is already done, `f` runs right away on that task.
    ///
    /// The returned [`AfterFunc`]'s [`stop`](AfterFunc::stop) prevents the call, but only
    /// while the context is not done: as in Go, once the context is done (cancelled, or past
    /// its deadline, noticed or not), `stop` returns `false` and `f` runs exactly once, even
    /// if its task has not been scheduled yet. Dropping the handle does not stop it. `f` runs
    /// on an async worker thread: it must not block (wrap blocking work in
    /// `tokio::task::spawn_blocking`). If the runtime shuts down before the task runs, `f` is
    /// dropped without being called.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use weft_core::context::Context;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// let _cleanup = ctx.after_func(move || { let _ = tx.send("closed"); });
    ///
    /// let stopped = Arc::new(AtomicBool::new(false));
    /// let never = ctx.after_func({ let s = stopped.clone(); move || s.store(true, Ordering::SeqCst) });
    /// assert!(never.stop(), "stopped before the context ended");
    ///
    /// cancel.cancel();
    /// assert_eq!(rx.await.unwrap(), "closed");
    /// assert!(!stopped.load(Ordering::SeqCst));
    /// # }
    /// ```
    #[track_caller]
    pub fn after_func<F>(&self, f: F) -> AfterFunc
    where
        F: FnOnce() + Send + 'static,
    {
        let slot: AfterSlot = Arc::new(Mutex::new(Some(Box::new(f))));
        let done = self.done();
        let task_slot = Arc::clone(&slot);
        let task = tokio::spawn(async move {
            done.await;
            // Take under the lock, call after releasing it: `stop` must never wait on `f`.
            let f = task_slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(f) = f {
                f();
            }
        });
        AfterFunc {
            slot,
            node: Arc::clone(&self.node),
            task: task.abort_handle(),
        }
    }

    /// Returns a tokio-util [`CancellationToken`] that is cancelled when this context is
    /// cancelled, for code that takes a token. Cancelling the returned token does not cancel
    /// the context.
    ///
    /// A deadline cancels the token only once someone notices it (a polled
    /// [`done`](Context::done), or [`is_done`](Context::is_done)/[`err`](Context::err) after it
    /// passed); await `done()` somewhere if the token alone must fire on time.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let token = ctx.child_token();
    /// cancel.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    #[must_use]
    pub fn child_token(&self) -> CancellationToken {
        self.node.token.child_token()
    }
}

impl Default for Context {
    /// Same as [`Context::background`].
    fn default() -> Self {
        Context::background()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("err", &self.err())
            .field("deadline", &self.deadline())
            .finish_non_exhaustive()
    }
}

/// Cancels the context returned with it (Go's `context.CancelFunc` and
/// `context.CancelCauseFunc` in one).
///
/// Cancelling is idempotent: the first call wins, with its cause, and later calls do nothing.
/// It is `Clone`, so several owners may cancel.
///
/// # Drop
///
/// Dropping a `CancelFn` does **not** cancel the context (so `let (ctx, _) =
/// parent.with_timeout(d)` is safe), and leaks nothing: the context unlinks from its parent
/// once every clone of it and of its `CancelFn` is gone. Use [`drop_guard`](CancelFn::drop_guard)
/// for cancel-on-scope-exit, the Rust spelling of Go's `defer cancel()`.
///
/// # Examples
///
/// ```
/// use weft_core::context::Context;
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel_with("first");
/// cancel.cancel_with("second");
/// assert_eq!(ctx.cause().unwrap().to_string(), "first");
/// ```
#[derive(Clone)]
#[must_use = "dropping a CancelFn does not cancel; call cancel() or keep it (or use drop_guard())"]
pub struct CancelFn {
    node: Arc<Node>,
}

impl CancelFn {
    /// Cancels the context and its children with [`ContextError::Cancelled`] as the cause.
    ///
    /// ```
    /// use weft_core::context::{Context, ContextError};
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel();
    /// assert_eq!(ctx.err(), Some(ContextError::Cancelled));
    /// ```
    pub fn cancel(&self) {
        self.node.cancel(
            ContextError::Cancelled,
            Cause::from(ContextError::Cancelled),
        );
    }

    /// Cancels the context and its children, recording `cause` (an error, or a message) for
    /// [`Context::cause`]. [`Context::err`] still says [`ContextError::Cancelled`].
    ///
    /// If the context was already done (cancelled, or past its deadline), this does nothing.
    ///
    /// ```
    /// use weft_core::context::{Context, ContextError};
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel_with(format!("worker {} failed", 3));
    /// assert_eq!(ctx.err(), Some(ContextError::Cancelled));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "worker 3 failed");
    /// ```
    pub fn cancel_with(
        &self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) {
        self.node.cancel(ContextError::Cancelled, Cause::new(cause));
    }

    /// Returns a guard that cancels the context when dropped: Go's `defer cancel()`.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// {
    ///     let _guard = cancel.drop_guard();
    /// }
    /// assert!(ctx.is_done());
    /// ```
    pub fn drop_guard(self) -> CancelGuard {
        CancelGuard { cancel: Some(self) }
    }
}

impl fmt::Debug for CancelFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelFn")
            .field("is_done", &self.node.is_done())
            .finish()
    }
}

/// Cancels its context when dropped; made by [`CancelFn::drop_guard`].
///
/// ```
/// use weft_core::context::Context;
/// let (ctx, cancel) = Context::background().with_cancel();
/// let guard = cancel.drop_guard();
/// let cancel = guard.disarm(); // keep the context alive after all
/// drop(cancel);
/// assert!(!ctx.is_done());
/// ```
#[must_use = "the guard cancels when dropped; dropping it at once cancels at once"]
pub struct CancelGuard {
    cancel: Option<CancelFn>,
}

impl CancelGuard {
    /// Returns the [`CancelFn`] without cancelling.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// let (_ctx, cancel) = Context::background().with_cancel();
    /// let _cancel = cancel.drop_guard().disarm();
    /// ```
    pub fn disarm(mut self) -> CancelFn {
        match self.cancel.take() {
            Some(cancel) => cancel,
            // `cancel` is only taken here and in `drop`, and both consume the guard.
            None => unreachable!("CancelGuard disarmed twice"),
        }
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel.cancel();
        }
    }
}

impl fmt::Debug for CancelGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelGuard")
            .field("armed", &self.cancel.is_some())
            .finish()
    }
}

/// The function an [`AfterFunc`] may still call; `None` once called or stopped.
///
/// Whoever takes it out owns the decision: the task takes it to call it (only once the
/// context is done), `stop` takes it to drop it (only while the context is not done). So once
/// the context is done, `stop` never takes it and the task, which is then bound to wake, calls
/// it: Go's "once done, `stop` is false and `f` runs" without a callback inside `cancel`.
type AfterSlot = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// Handle to a function registered with [`Context::after_func`].
///
/// Dropping the handle does not stop the function.
///
/// # Examples
///
/// ```
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = Context::background().after_func(|| println!("never"));
/// assert!(handle.stop());
/// assert!(!handle.stop(), "only the first stop prevents the call");
/// # }
/// ```
pub struct AfterFunc {
    slot: AfterSlot,
    node: Arc<Node>,
    task: AbortHandle,
}

impl AfterFunc {
    /// Prevents the function from running, as Go's `stop()`: returns `true` if this call
    /// stopped it, `false` if the context is already done (the function then runs, or has
    /// run, exactly once) or if it was already stopped.
    ///
    /// `true` means the context was not done when `stop` decided, and the function will
    /// never run. A `stop` racing a cancel on another thread sees one or the other first.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// assert!(ctx.after_func(|| {}).stop());
    ///
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// let late = ctx.after_func(move || tx.send("ran").unwrap());
    /// cancel.cancel();
    /// assert!(!late.stop(), "the context is done: too late to stop");
    /// assert_eq!(rx.await.unwrap(), "ran");
    /// # }
    /// ```
    pub fn stop(&self) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        // Decided under the lock, so the task cannot take the function between this check
        // and the take. A done context (even by a deadline nobody observed: the task's own
        // timer will) means the task runs the function: leave it there.
        if slot.is_none() || self.node.is_done() {
            return false;
        }
        let f = slot.take();
        drop(slot);
        // Dropped outside the lock: `f`'s captures may run arbitrary `Drop` code.
        drop(f);
        // The task has nothing left to do; free it now rather than when the context ends.
        self.task.abort();
        true
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pending = self
            .slot
            .lock()
            .map(|s| s.is_some())
            .unwrap_or_else(|e| e.into_inner().is_some());
        f.debug_struct("AfterFunc")
            .field("pending", &pending)
            .finish()
    }
}
