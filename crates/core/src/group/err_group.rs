//! golang.org/x/sync/errgroup, over tokio's `JoinSet`.

use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;

use super::core::{Core, Finished};
use super::error::{GroupError, TryGoError};
use crate::context::Context;

/// A group of fallible tasks that ends at the first error: golang.org/x/sync/errgroup, and
/// better.
///
/// - [`ErrGroup::with_context`] returns a child [`Context`] that is cancelled at the first
///   error **or panic**, with that failure as its [cause](Context::cause), so sibling tasks
///   can stop early (Go's `errgroup.WithContext`, which cannot catch panics).
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
    core: Core<(), E>,
    /// Failures collected so far, with their tickets.
    failures: Vec<(usize, GroupError<E>)>,
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
            failures: Vec::new(),
        }
    }

    /// Returns a group and a child of `ctx` (Go's `errgroup.WithContext`). The child is
    /// cancelled at the group's first failure, with it as the cause (its `Display`, or
    /// `task panicked: {message}`), or else when [`wait`](ErrGroup::wait) returns, or when
    /// the group is dropped; and, as any child, when `ctx` is.
    ///
    /// ```
    /// use weft_core::context::Context;
    /// use weft_core::group::ErrGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (mut group, ctx) = ErrGroup::with_context(&Context::background());
    /// group.go(async { panic!("bug") }).await;
    /// let err = group.wait().await.unwrap_err();
    /// assert!(err.is_panic());
    /// assert_eq!(ctx.cause().unwrap().to_string(), "task panicked: bug");
    /// # let _: Option<String> = err.into_error();
    /// # }
    /// ```
    #[must_use = "the context is how tasks learn of a failure; the group is how you wait"]
    pub fn with_context(ctx: &Context) -> (Self, Context) {
        let (core, child) = Core::with_context(ctx);
        (
            ErrGroup {
                core,
                failures: Vec::new(),
            },
            child,
        )
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
    pub async fn go<F>(&mut self, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.reap();
        let permit = self.core.acquire().await;
        self.core.spawn(permit, future);
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
    pub fn try_go<F>(&mut self, future: F) -> Result<(), TryGoError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.reap();
        match self.core.try_acquire() {
            Ok(permit) => {
                self.core.spawn(permit, future);
                Ok(())
            }
            Err(()) => Err(TryGoError(future)),
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
        self.join_all().await;
        let first = self
            .failures
            .drain(..)
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
        self.join_all().await;
        let mut failures = std::mem::take(&mut self.failures);
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

    fn reap(&mut self) {
        let failures = &mut self.failures;
        self.core.reap(|f| absorb(failures, f));
    }

    async fn join_all(&mut self) {
        while let Some(joined) = self.core.join_next().await {
            if let Some(finished) = joined {
                absorb(&mut self.failures, finished);
            }
        }
        self.core.finish();
    }
}

fn absorb<E>(failures: &mut Vec<(usize, GroupError<E>)>, finished: Finished<(), E>) {
    if let Err(err) = finished.result {
        failures.push((finished.ticket, err));
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
            .field("failures", &self.failures.len())
            .finish()
    }
}
