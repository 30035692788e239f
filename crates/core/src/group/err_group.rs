//! golang.org/x/sync/errgroup, over tokio's `JoinSet`.

use std::fmt;
use std::future::{Future, poll_fn};
use std::num::NonZeroUsize;
use std::sync::Arc;

use super::core::{Collect, Core, Finished, Shared};
use super::error::{GroupError, TryGoError};
use crate::context::Context;

/// A group of fallible tasks that ends at the first error: golang.org/x/sync/errgroup, and
/// better.
///
/// - [`ErrGroup::with_context`] returns a child [`Context`] that is cancelled at the first
///   error **or panic**, with that failure as its [cause](Context::cause), so sibling tasks
///   can stop early (Go's `errgroup.WithContext`, which cannot catch panics).
/// - [`go`](ErrGroup::go) takes `&self`, and [`handle`](ErrGroup::handle) gives tasks an
///   [`ErrGroupHandle`] to spawn more tasks into their own group, as Go's `g.Go` may be
///   called from inside a task.
/// - [`set_limit`](ErrGroup::set_limit) bounds how many tasks run at once:
///   [`go`](ErrGroup::go) waits for a slot, [`try_go`](ErrGroup::try_go) does not and hands
///   the future back.
/// - [`wait`](ErrGroup::wait) waits for every task and returns the first failure;
///   [`wait_all`](ErrGroup::wait_all) returns every failure, in the order they happened
///   (which Go's errgroup refuses to do).
/// - A panic is a failure like an error ([`GroupError::Panicked`] with its message), never
///   a crash and never lost.
///
/// For tasks that return values, [`ResultGroup`](super::ResultGroup) collects them in
/// submission order.
///
/// # Drop
///
/// Built on tokio's [`JoinSet`](tokio::task::JoinSet): dropping the group aborts every task
/// still running (at its next `.await`), and cancels the group's context. This is
/// structured concurrency: no task outlives its group unless you `wait`. (A
/// [`WaitGroup`](super::WaitGroup) detaches instead.)
///
/// # Memory
///
/// A task's entry is freed when the group collects it: `wait` collects them all, and `go`
/// and `try_go` collect the ones already finished, so a long-lived group holds about as many
/// entries as it has running tasks. Every failure is kept until `wait` or `wait_all`.
///
/// # Examples
///
/// ```
/// use weft_core::context::Context;
/// use weft_core::group::{ErrGroup, GroupError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (mut group, ctx) = ErrGroup::with_context(&Context::background());
/// for id in 0..3 {
///     let ctx = ctx.clone();
///     group.go(async move {
///         if id == 1 {
///             return Err(format!("shard {id} unreachable"));
///         }
///         ctx.done().await; // the others stop once a sibling fails
///         Ok(())
///     }).await;
/// }
/// let err = group.wait().await.unwrap_err();
/// assert_eq!(err, GroupError::Failed("shard 1 unreachable".to_string()));
/// assert_eq!(ctx.cause().unwrap().to_string(), "shard 1 unreachable");
/// # }
/// ```
pub struct ErrGroup<E> {
    core: Core<(), E, Failures<E>>,
}

/// Failures collected so far in a round, with their tickets; successes leave nothing.
struct Failures<E>(Vec<(usize, GroupError<E>)>);

impl<E> Default for Failures<E> {
    fn default() -> Self {
        Failures(Vec::new())
    }
}

impl<E: Send + 'static> Collect<(), E> for Failures<E> {
    fn collect(&mut self, finished: Finished<(), E>) {
        if let Err(err) = finished.result {
            self.0.push((finished.ticket, err));
        }
    }
}

impl<E> ErrGroup<E>
where
    E: fmt::Display + Send + 'static,
{
    /// Returns a group without a context (Go's zero `errgroup.Group`): a failure cancels
    /// nothing, every task runs to its end.
    ///
    /// ```
    /// use weft_core::group::ErrGroup;
    /// let group = ErrGroup::<std::io::Error>::new();
    /// assert!(group.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        ErrGroup {
            core: Core::new(None),
        }
    }

    /// Returns a group and a child of `ctx` (Go's `errgroup.WithContext`). The child is
    /// cancelled at the group's first failure, with it as the cause, or else when
    /// [`wait`](ErrGroup::wait) returns, or when the group is dropped; and, as any child, when
    /// `ctx` is.
    ///
    /// The cause is the failure itself where Rust lets the context and `wait` both have it,
    /// as Go's `context.Cause` does:
    ///
    /// - a panic: the [`Panicked`](crate::Panicked) value (`cause.downcast_ref::<Panicked>()`);
    /// - `E = Arc<dyn Error + Send + Sync>` (or [`Cause`](crate::context::Cause)): the very
    ///   error value, shared, so `cause.downcast_ref::<YourError>()` finds it;
    /// - any other `E`: its `Display` text, since a value that is not shared or `Clone`
    ///   cannot be both returned by `wait` and kept by the context. Make `E` an `Arc<dyn
    ///   Error + Send + Sync>` to keep the value.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_core::{Panicked, context::Context};
    /// use weft_core::group::ErrGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (mut group, ctx) = ErrGroup::<String>::with_context(&Context::background());
    /// group.go(async { panic!("bug") }).await;
    /// let err = group.wait().await.unwrap_err();
    /// assert!(err.is_panic());
    /// assert_eq!(ctx.cause().unwrap().downcast_ref::<Panicked>().unwrap().message(), "bug");
    ///
    /// // A shared error type keeps the value itself as the cause.
    /// type SharedError = Arc<dyn std::error::Error + Send + Sync>;
    /// let (mut group, ctx) = ErrGroup::<SharedError>::with_context(&Context::background());
    /// group.go(async { Err(Arc::new(std::io::Error::other("disk full")) as SharedError) }).await;
    /// assert!(group.wait().await.is_err());
    /// let io = ctx.cause().unwrap();
    /// assert_eq!(io.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::Other);
    /// # }
    /// ```
    #[must_use = "the context is how tasks learn of a failure; the group is how you wait"]
    pub fn with_context(ctx: &Context) -> (Self, Context) {
        let (core, child) = Core::with_context(ctx);
        (ErrGroup { core }, child)
    }

    /// Limits the number of tasks running at once to `limit` (Go's `SetLimit`). By default
    /// there is no limit.
    ///
    /// # Panics
    ///
    /// Panics if the group has tasks (running, or finished and not yet collected by
    /// [`wait`](ErrGroup::wait)), as Go's `SetLimit` does: changing the limit under running
    /// tasks would miscount them.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use weft_core::group::ErrGroup;
    /// let mut group = ErrGroup::<String>::new();
    /// group.set_limit(NonZeroUsize::new(8).unwrap());
    /// ```
    #[track_caller]
    pub fn set_limit(&mut self, limit: NonZeroUsize) {
        self.core.set_limit(limit);
    }

    /// Spawns `future` into the group once a slot under the limit is free (at once without a
    /// limit): Go's `g.Go`.
    ///
    /// It takes `&self`, as [`WaitGroup::go`](super::WaitGroup::go) does; to spawn from
    /// inside the group's own tasks, give them a [`handle`](ErrGroup::handle). With a limit,
    /// a task that waits in `go` holds its own slot meanwhile: as in Go, a group whose every
    /// slot is held by tasks waiting to spawn makes no progress.
    ///
    /// # Cancel safety
    ///
    /// If the returned future is dropped before it completes, it was waiting for a slot and
    /// `future` is dropped without being spawned. Use [`try_go`](ErrGroup::try_go) to keep
    /// the future when no slot is free.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use weft_core::group::ErrGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = ErrGroup::<String>::new();
    /// group.set_limit(NonZeroUsize::new(2).unwrap());
    /// for _ in 0..10 {
    ///     group.go(async { Ok(()) }).await; // never more than 2 at once
    /// }
    /// assert!(group.wait().await.is_ok());
    /// # }
    /// ```
    pub async fn go<F>(&self, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        // Only a dropped group refuses, and `self` is alive.
        let _ = self.core.shared().go(future).await;
    }

    /// Spawns `future` if a slot under the limit is free (always, without a limit), or
    /// hands it back in [`TryGoError`]: Go's `g.TryGo`, without losing the function.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use weft_core::group::ErrGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = ErrGroup::<String>::new();
    /// group.set_limit(NonZeroUsize::MIN);
    /// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    /// group.try_go(async move { rx.await.ok(); Ok(()) }).unwrap();
    /// let rejected = group.try_go(async { Ok(()) }).unwrap_err();
    /// tx.send(()).unwrap();
    /// group.wait().await.unwrap();
    /// group.try_go(rejected.into_inner()).unwrap(); // a slot is free again
    /// # group.wait().await.unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn try_go<F>(&self, future: F) -> Result<(), TryGoError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.core.shared().try_go(future).map_err(TryGoError)
    }

    /// Returns a handle that spawns into this group, for the group's own tasks (Go's `g.Go`
    /// called from inside a task). Handles are cheap to clone; they do not keep the group
    /// alive: once it is dropped, they spawn nothing.
    ///
    /// ```
    /// use weft_core::group::ErrGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    /// let mut group = ErrGroup::<String>::new();
    /// let handle = group.handle();
    /// group.go(async move {
    ///     // A crawler's root task spawns a task per link it finds.
    ///     for link in ["/a", "/b"] {
    ///         let tx = tx.clone();
    ///         handle.go(async move { tx.send(link).map_err(|e| e.to_string()) }).await;
    ///     }
    ///     Ok(())
    /// }).await;
    /// group.wait().await.unwrap(); // waits for the tasks spawned from inside, too
    /// let mut rx = rx;
    /// let mut seen = Vec::new();
    /// while let Some(link) = rx.recv().await {
    ///     seen.push(link);
    /// }
    /// seen.sort();
    /// assert_eq!(seen, ["/a", "/b"]);
    /// # }
    /// ```
    #[must_use]
    pub fn handle(&self) -> ErrGroupHandle<E> {
        ErrGroupHandle {
            shared: Arc::clone(self.core.shared()),
        }
    }

    /// Waits for every task, then returns the group's first failure, or `Ok(())` (Go's
    /// `g.Wait`). Later failures are dropped; use [`wait_all`](ErrGroup::wait_all) to keep
    /// them. The group's context, if any, is cancelled when this returns, and the group can
    /// be used for another round.
    ///
    /// "First" is the failure that happened first, the same one that cancelled the context.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: tasks keep running and the failures already collected stay in the
    /// group; a later `wait` picks up where this one stopped.
    ///
    /// ```
    /// use weft_core::group::{ErrGroup, GroupError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = ErrGroup::new();
    /// group.go(async { Ok(()) }).await;
    /// group.go(async { Err(7) }).await;
    /// assert_eq!(group.wait().await, Err(GroupError::Failed(7)));
    /// assert_eq!(group.wait().await, Ok(()), "a new round");
    /// # }
    /// ```
    pub async fn wait(&mut self) -> Result<(), GroupError<E>> {
        let Failures(failures) = self.join_all().await;
        let first = failures
            .into_iter()
            .min_by_key(|(ticket, _)| *ticket)
            .map(|(_, err)| err);
        first.map_or(Ok(()), Err)
    }

    /// Waits for every task, then returns every failure in the order they happened, or
    /// `Ok(())` if none failed. Otherwise as [`wait`](ErrGroup::wait).
    ///
    /// Pair it with [`ErrGroup::new`] (no context) to let every task run to its end and
    /// report every error, like a multi-error. With a context, the tasks that stop because a
    /// sibling failed report whatever they return then.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`wait`](ErrGroup::wait).
    ///
    /// ```
    /// use weft_core::group::{ErrGroup, GroupError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = ErrGroup::new();
    /// for n in 0..4 {
    ///     group.go(async move { if n % 2 == 1 { Err(n) } else { Ok(()) } }).await;
    /// }
    /// let mut errors = group.wait_all().await.unwrap_err();
    /// errors.sort_by_key(|e| format!("{e}")); // occurrence order depends on scheduling
    /// assert_eq!(errors, [GroupError::Failed(1), GroupError::Failed(3)]);
    /// # }
    /// ```
    pub async fn wait_all(&mut self) -> Result<(), Vec<GroupError<E>>> {
        let Failures(mut failures) = self.join_all().await;
        if failures.is_empty() {
            return Ok(());
        }
        failures.sort_unstable_by_key(|(ticket, _)| *ticket);
        Err(failures.into_iter().map(|(_, err)| err).collect())
    }

    /// Returns how many tasks the group holds: running, or finished and not yet collected.
    ///
    /// ```
    /// use weft_core::group::ErrGroup;
    /// assert_eq!(ErrGroup::<String>::new().len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Returns `true` if the group holds no task.
    ///
    /// ```
    /// use weft_core::group::ErrGroup;
    /// assert!(ErrGroup::<String>::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.core.len() == 0
    }

    /// Waits until the round's last task has ended; `&mut self` so that only the owner
    /// waits, one wait at a time.
    async fn join_all(&mut self) -> Failures<E> {
        poll_fn(|cx| self.core.poll_round(cx)).await
    }
}

impl<E> Default for ErrGroup<E>
where
    E: fmt::Display + Send + 'static,
{
    /// Same as [`ErrGroup::new`].
    fn default() -> Self {
        ErrGroup::new()
    }
}

impl<E> fmt::Debug for ErrGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrGroup")
            .field("core", &self.core)
            .finish()
    }
}

/// Spawns into an [`ErrGroup`] from anywhere, notably from inside the group's own tasks (Go's
/// `g.Go` called by a goroutine of the group); made by [`ErrGroup::handle`].
///
/// Tasks spawned through a handle are the group's like any other: they count for
/// [`wait`](ErrGroup::wait), their failures cancel the group's context, the limit applies, and
/// dropping the group aborts them.
///
/// # Drop
///
/// A handle does not keep the group alive. Once the group is dropped (which aborts its
/// tasks), [`go`](ErrGroupHandle::go) drops its future without running it and
/// [`try_go`](ErrGroupHandle::try_go) hands it back.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use weft_core::group::ErrGroup;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut group = ErrGroup::<String>::new();
/// let visited = Arc::new(AtomicUsize::new(0));
/// let (handle, count) = (group.handle(), Arc::clone(&visited));
/// group.go(async move {
///     // The root spawns three children, and each child one grandchild.
///     for _ in 0..3 {
///         let (grandparent, count) = (handle.clone(), Arc::clone(&count));
///         handle.go(async move {
///             let leaf = Arc::clone(&count);
///             grandparent.go(async move { leaf.fetch_add(1, Ordering::Relaxed); Ok(()) }).await;
///             count.fetch_add(1, Ordering::Relaxed);
///             Ok(())
///         }).await;
///     }
///     Ok(())
/// }).await;
/// group.wait().await.unwrap();
/// assert_eq!(visited.load(Ordering::Relaxed), 6);
/// # }
/// ```
pub struct ErrGroupHandle<E> {
    shared: Arc<Shared<(), E, Failures<E>>>,
}

impl<E> ErrGroupHandle<E>
where
    E: fmt::Display + Send + 'static,
{
    /// Spawns `future` into the group once a slot under the limit is free, as
    /// [`ErrGroup::go`]; drops it without running it if the group is gone.
    ///
    /// # Cancel safety
    ///
    /// As [`ErrGroup::go`]: if the returned future is dropped while waiting for a slot,
    /// `future` is dropped without being spawned.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// ```
    /// use weft_core::group::ErrGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = ErrGroup::<String>::new();
    /// let handle = group.handle();
    /// handle.go(async { Err("from a handle".to_string()) }).await;
    /// assert_eq!(group.wait().await.unwrap_err().to_string(), "from a handle");
    /// # }
    /// ```
    pub async fn go<F>(&self, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        // A dropped group refuses it: dropping it is all that is left to do.
        let _ = self.shared.go(future).await;
    }

    /// Spawns `future` if a slot under the limit is free, as [`ErrGroup::try_go`]; hands it
    /// back in [`TryGoError`] when the group is at its limit or gone.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// ```
    /// use weft_core::group::ErrGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let group = ErrGroup::<String>::new();
    /// let handle = group.handle();
    /// drop(group);
    /// assert!(handle.try_go(async { Ok(()) }).is_err(), "the group is gone");
    /// # }
    /// ```
    #[track_caller]
    pub fn try_go<F>(&self, future: F) -> Result<(), TryGoError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.shared.try_go(future).map_err(TryGoError)
    }
}

impl<E> Clone for ErrGroupHandle<E> {
    fn clone(&self) -> Self {
        ErrGroupHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E> fmt::Debug for ErrGroupHandle<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrGroupHandle")
            .field("group", &self.shared)
            .finish()
    }
}
