//! An `ErrGroup` whose tasks return values, collected in submission order.

use std::fmt;
use std::future::{Future, poll_fn};
use std::num::NonZeroUsize;

use super::core::{Collect, Core, Finished};
use super::error::{GroupError, TryGoError};
use crate::context::Context;
use crate::task::Panicked;

/// A task's outcome, its failure carrying its ticket (see `core`'s invariant 2).
type Outcome<T, E> = Result<T, (usize, GroupError<E>)>;

/// An [`ErrGroup`](super::ErrGroup) whose tasks return values: [`wait`](ResultGroup::wait)
/// gives them back **in submission order** (not completion order, as a `JoinSet` would),
/// or the first failure.
///
/// Everything else is as for `ErrGroup`: the optional context cancelled at the first failure
/// with it as cause, [`set_limit`](ResultGroup::set_limit), [`go`](ResultGroup::go) and
/// [`try_go`](ResultGroup::try_go), panics reported as [`GroupError::Panicked`], and abort on
/// drop. [`wait_all`](ResultGroup::wait_all) returns every task's outcome, in submission
/// order.
///
/// # Memory
///
/// One slot per submitted task is kept until `wait` (outputs must wait for their turn);
/// finished tasks' entries in the underlying `JoinSet` are freed as `go` goes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_core::group::ResultGroup;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut group = ResultGroup::<u64, std::io::Error>::new();
/// for n in [3_u64, 1, 2] {
///     group.go(async move {
///         tokio::time::sleep(Duration::from_secs(n)).await; // finish out of order
///         Ok(n * 10)
///     }).await;
/// }
/// assert_eq!(group.wait().await.unwrap(), [30, 10, 20]);
/// # }
/// ```
pub struct ResultGroup<T, E> {
    core: Core<T, E, Slots<T, E>>,
}

/// Outcomes by submission index, with failure tickets.
struct Slots<T, E>(Vec<Option<Outcome<T, E>>>);

impl<T, E> Default for Slots<T, E> {
    fn default() -> Self {
        Slots(Vec::new())
    }
}

impl<T: Send + 'static, E: Send + 'static> Collect<T, E> for Slots<T, E> {
    fn collect(&mut self, finished: Finished<T, E>) {
        let Finished {
            index,
            ticket,
            result,
        } = finished;
        if self.0.len() <= index {
            self.0.resize_with(index + 1, || None);
        }
        self.0[index] = Some(result.map_err(|err| (ticket, err)));
    }

    fn round_ended(&mut self, submitted: usize) {
        // Every task of the round has a slot, even one whose outcome never came back.
        self.0.resize_with(submitted.max(self.0.len()), || None);
    }
}

impl<T, E> ResultGroup<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// Returns a group without a context: a failure cancels nothing.
    ///
    /// ```
    /// use weft_core::group::ResultGroup;
    /// let group = ResultGroup::<u8, String>::new();
    /// assert!(group.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        ResultGroup {
            core: Core::new(None),
        }
    }

    /// Returns a group and a child of `ctx`, cancelled at the group's first failure with it
    /// as the cause, or when [`wait`](ResultGroup::wait) returns, or when the group is
    /// dropped. See [`ErrGroup::with_context`](super::ErrGroup::with_context).
    ///
    /// ```
    /// use weft_core::context::Context;
    /// use weft_core::group::ResultGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (mut group, ctx) = ResultGroup::<u8, &str>::with_context(&Context::background());
    /// group.go(async { Err("bad input") }).await;
    /// assert!(group.wait().await.is_err());
    /// assert_eq!(ctx.cause().unwrap().to_string(), "bad input");
    /// # }
    /// ```
    #[must_use = "the context is how tasks learn of a failure; the group is how you wait"]
    pub fn with_context(ctx: &Context) -> (Self, Context) {
        let (core, child) = Core::with_context(ctx);
        (ResultGroup { core }, child)
    }

    /// Limits the number of tasks running at once to `limit`. By default there is no limit.
    ///
    /// # Panics
    ///
    /// Panics if the group has tasks not yet collected by `wait`.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use weft_core::group::ResultGroup;
    /// let mut group = ResultGroup::<u8, String>::new();
    /// group.set_limit(NonZeroUsize::new(4).unwrap());
    /// ```
    #[track_caller]
    pub fn set_limit(&mut self, limit: NonZeroUsize) {
        self.core.set_limit(limit);
    }

    /// Spawns `future` once a slot under the limit is free (at once without a limit). Its
    /// output takes the next place in `wait`'s vector. It takes `&self`, as
    /// [`ErrGroup::go`](super::ErrGroup::go) does.
    ///
    /// # Cancel safety
    ///
    /// If the returned future is dropped before it completes, `future` is dropped without
    /// being spawned and takes no place. Use [`try_go`](ResultGroup::try_go) to keep it.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// ```
    /// use weft_core::group::ResultGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = ResultGroup::<&str, String>::new();
    /// group.go(async { Ok("a") }).await;
    /// group.go(async { Ok("b") }).await;
    /// assert_eq!(group.wait().await.unwrap(), ["a", "b"]);
    /// # }
    /// ```
    pub async fn go<F>(&self, future: F)
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        // Only a dropped group refuses, and `self` is alive.
        let _ = self.core.shared().go(future).await;
    }

    /// Spawns `future` if a slot under the limit is free, or hands it back in
    /// [`TryGoError`] (and it takes no place).
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use weft_core::group::ResultGroup;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = ResultGroup::<u8, String>::new();
    /// group.set_limit(NonZeroUsize::MIN);
    /// group.try_go(async { Ok(1) }).unwrap();
    /// assert!(group.try_go(async { Ok(2) }).is_err(), "the first still holds the only slot");
    /// assert_eq!(group.wait().await.unwrap(), [1]);
    /// # }
    /// ```
    #[track_caller]
    pub fn try_go<F>(&self, future: F) -> Result<(), TryGoError<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.core.shared().try_go(future).map_err(TryGoError)
    }

    /// Waits for every task, then returns their outputs in submission order, or the first
    /// failure (the one that cancelled the context). The context, if any, is cancelled when
    /// this returns, and the group can be used for another round.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: tasks keep running and collected outputs stay in the group; a later
    /// `wait` picks up where this one stopped.
    ///
    /// ```
    /// use weft_core::group::{GroupError, ResultGroup};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = ResultGroup::new();
    /// group.go(async { Ok(1) }).await;
    /// group.go(async { Err("nope") }).await;
    /// assert_eq!(group.wait().await, Err(GroupError::Failed("nope")));
    /// # }
    /// ```
    pub async fn wait(&mut self) -> Result<Vec<T>, GroupError<E>> {
        let outcomes = self.join_all().await;
        let mut first: Option<(usize, GroupError<E>)> = None;
        let mut values = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                Ok(value) => values.push(value),
                Err((ticket, err)) => {
                    if first.as_ref().is_none_or(|(t, _)| ticket < *t) {
                        first = Some((ticket, err));
                    }
                }
            }
        }
        match first {
            Some((_, err)) => Err(err),
            None => Ok(values),
        }
    }

    /// Waits for every task, then returns each task's outcome in submission order.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`wait`](ResultGroup::wait).
    ///
    /// ```
    /// use weft_core::group::{GroupError, ResultGroup};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = ResultGroup::new();
    /// group.go(async { Err("first") }).await;
    /// group.go(async { Ok(2) }).await;
    /// group.go(async { panic!("third") }).await;
    /// let all = group.wait_all().await;
    /// assert_eq!(all[0], Err(GroupError::Failed("first")));
    /// assert_eq!(all[1], Ok(2));
    /// assert!(all[2].as_ref().unwrap_err().is_panic());
    /// # }
    /// ```
    pub async fn wait_all(&mut self) -> Vec<Result<T, GroupError<E>>> {
        self.join_all()
            .await
            .into_iter()
            .map(|outcome| outcome.map_err(|(_, err)| err))
            .collect()
    }

    /// Returns how many tasks the group holds: running, or finished and not yet collected.
    ///
    /// ```
    /// use weft_core::group::ResultGroup;
    /// assert_eq!(ResultGroup::<u8, String>::new().len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Returns `true` if the group holds no task.
    ///
    /// ```
    /// use weft_core::group::ResultGroup;
    /// assert!(ResultGroup::<u8, String>::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.core.len() == 0
    }

    /// Joins every task and returns the round's outcomes by submission index.
    async fn join_all(&mut self) -> Vec<Outcome<T, E>> {
        let Slots(slots) = poll_fn(|cx| self.core.poll_round(cx)).await;
        slots
            .into_iter()
            .map(|slot| {
                // Only a task lost to a runtime shutdown leaves its slot empty.
                slot.unwrap_or_else(|| {
                    Err((
                        usize::MAX,
                        GroupError::Panicked(Panicked::new("task ended without an outcome")),
                    ))
                })
            })
            .collect()
    }
}

impl<T, E> Default for ResultGroup<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    /// Same as [`ResultGroup::new`].
    fn default() -> Self {
        ResultGroup::new()
    }
}

impl<T, E> fmt::Debug for ResultGroup<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultGroup")
            .field("core", &self.core)
            .finish()
    }
}
