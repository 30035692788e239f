//! The engine shared by `ErrGroup` and `ResultGroup`: a `JoinSet` of wrapped tasks, an
//! optional concurrency limit, and the first-failure ticket that cancels the group's context.
//!
//! # Invariants
//!
//! 1. Every task is wrapped so that it never unwinds into tokio: its result, error or panic
//!    comes back through the `JoinSet` as a [`Finished`] with its submission index.
//! 2. A failing task takes a *ticket* from `Shared::failures` before it returns; ticket 0 is
//!    the group's first failure, the one that cancels the context (with itself as cause) and
//!    the one `wait` returns. So the cause other tasks see and the error `wait` returns are
//!    the same failure, even when several tasks fail at once on different threads.
//! 3. Tickets restart from 0 only in [`Core::finish`], when the `JoinSet` is empty: no
//!    wrapper of an earlier round is alive to take one.

use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::error::GroupError;
use crate::context::{CancelFn, Context};
use crate::task::catch_panic;

/// One task's end, as the `JoinSet` returns it.
pub(super) struct Finished<T, E> {
    /// Submission index within the current round.
    pub(super) index: usize,
    /// Failure ticket (invariant 2); meaningless for a success.
    pub(super) ticket: usize,
    pub(super) result: Result<T, GroupError<E>>,
}

struct Shared {
    failures: AtomicUsize,
    cancel: Option<CancelFn>,
}

pub(super) struct Core<T, E> {
    set: JoinSet<Finished<T, E>>,
    limit: Option<Arc<Semaphore>>,
    shared: Arc<Shared>,
    next_index: usize,
}

impl<T, E> Core<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    pub(super) fn new(cancel: Option<CancelFn>) -> Self {
        Core {
            set: JoinSet::new(),
            limit: None,
            shared: Arc::new(Shared {
                failures: AtomicUsize::new(0),
                cancel,
            }),
            next_index: 0,
        }
    }

    pub(super) fn with_context(ctx: &Context) -> (Self, Context) {
        let (child, cancel) = ctx.with_cancel();
        (Core::new(Some(cancel)), child)
    }

    #[track_caller]
    pub(super) fn set_limit(&mut self, limit: NonZeroUsize) {
        assert!(
            self.set.is_empty(),
            "set_limit called while the group has tasks; set it before the first go"
        );
        self.limit = Some(Arc::new(Semaphore::new(limit.get())));
    }

    /// Waits for a slot under the limit (none needed without one).
    pub(super) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        match &self.limit {
            // The semaphore is never closed, so `acquire_owned` cannot fail.
            Some(sem) => Arc::clone(sem).acquire_owned().await.ok(),
            None => None,
        }
    }

    /// Takes a slot if one is free: `Err(())` when the group is at its limit.
    pub(super) fn try_acquire(&self) -> Result<Option<OwnedSemaphorePermit>, ()> {
        match &self.limit {
            Some(sem) => Arc::clone(sem)
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| ()),
            None => Ok(None),
        }
    }

    /// Spawns `future` holding `permit` (released when the task ends).
    #[track_caller]
    pub(super) fn spawn<F>(&mut self, permit: Option<OwnedSemaphorePermit>, future: F)
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let index = self.next_index;
        self.next_index += 1;
        let shared = Arc::clone(&self.shared);
        self.set.spawn(async move {
            let result = match catch_panic(future).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(GroupError::Failed(e)),
                Err(panicked) => Err(GroupError::Panicked(panicked)),
            };
            let mut ticket = usize::MAX;
            if let Err(err) = &result {
                // Relaxed: the ticket only orders failures among themselves; the result
                // reaches `wait` through the JoinSet, which synchronizes.
                ticket = shared.failures.fetch_add(1, Ordering::Relaxed);
                if ticket == 0
                    && let Some(cancel) = &shared.cancel
                {
                    cancel.cancel_with(err.to_string());
                }
            }
            drop(permit);
            Finished {
                index,
                ticket,
                result,
            }
        });
    }

    /// Collects tasks that have already finished, without waiting.
    pub(super) fn reap(&mut self, mut sink: impl FnMut(Finished<T, E>)) {
        while let Some(joined) = self.set.try_join_next() {
            if let Some(finished) = Self::unwrap_joined(joined) {
                sink(finished);
            }
        }
    }

    /// Waits for the next task to finish; `None` once the set is empty.
    ///
    /// Cancel safe, as `JoinSet::join_next`.
    pub(super) async fn join_next(&mut self) -> Option<Option<Finished<T, E>>> {
        let joined = self.set.join_next().await?;
        Some(Self::unwrap_joined(joined))
    }

    fn unwrap_joined(
        joined: Result<Finished<T, E>, tokio::task::JoinError>,
    ) -> Option<Finished<T, E>> {
        // Wrappers never panic (invariant 1) and the set never aborts them while it is
        // alive; a JoinError means the runtime is shutting down, and nobody can observe the
        // group anymore.
        joined.ok()
    }

    /// Ends a round once every task has been joined: Go's `Wait` cancels the group's
    /// context when it returns, and the next round numbers tasks and failures from 0.
    pub(super) fn finish(&mut self) {
        debug_assert!(self.set.is_empty());
        if let Some(cancel) = &self.shared.cancel {
            cancel.cancel();
        }
        self.shared.failures.store(0, Ordering::Relaxed);
        self.next_index = 0;
    }

    pub(super) fn len(&self) -> usize {
        self.set.len()
    }
}

impl<T, E> Drop for Core<T, E> {
    fn drop(&mut self) {
        // The JoinSet aborts the tasks as it drops; tell whoever else holds the context.
        if let Some(cancel) = &self.shared.cancel {
            cancel.cancel();
        }
    }
}

impl<T, E> fmt::Debug for Core<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("len", &self.set.len())
            .field("limit", &self.limit.as_ref().map(|s| s.available_permits()))
            .finish_non_exhaustive()
    }
}
