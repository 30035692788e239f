//! The engine shared by `ErrGroup` and `ResultGroup`: a `JoinSet` of wrapped tasks behind a
//! lock, an optional concurrency limit, and the first-failure ticket that cancels the group's
//! context.
//!
//! # Invariants
//!
//! 1. Every task is wrapped so that it never unwinds into tokio: its result, error or panic
//!    comes back through the `JoinSet` as a [`Finished`] with its submission index.
//! 2. A failing task takes a *ticket* from `Shared::failures` before it returns; ticket 0 is
//!    the group's first failure, the one that cancels the context (with itself as cause) and
//!    the one `wait` returns. So the cause other tasks see and the error `wait` returns are
//!    the same failure, even when several tasks fail at once on different threads.
//! 3. Tickets and indices restart from 0 only when a poll finds the `JoinSet` empty, in the
//!    same critical section: no wrapper of an earlier round is alive to take a ticket, and a
//!    task spawned later (spawning takes the same lock) belongs to the next round.
//! 4. The lock (`Shared::state`) is held only for short, non-blocking steps (spawn, reap one
//!    poll's worth of finished tasks, read the length), never across an `.await` and never
//!    while user code runs (save one case: a runtime that is shutting down drops a spawned
//!    future inside `spawn`): `wait` polls the `JoinSet` through it, so a task may spawn into
//!    its own group while the owner waits.
//! 5. Once the owner is dropped, `closed` is set and the `JoinSet` is gone (its tasks are
//!    aborted); handles spawn nothing after that.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::error::GroupError;
use crate::context::{CancelFn, Cause, Context};
use crate::task::catch_panic;

/// One task's end, as the `JoinSet` returns it.
pub(super) struct Finished<T, E> {
    /// Submission index within the current round.
    pub(super) index: usize,
    /// Failure ticket (invariant 2); meaningless for a success.
    pub(super) ticket: usize,
    pub(super) result: Result<T, GroupError<E>>,
}

/// What a group keeps of its finished tasks until `wait` takes it.
pub(super) trait Collect<T, E>: Default + Send + 'static {
    fn collect(&mut self, finished: Finished<T, E>);

    /// Called once per round with how many tasks it had (`ResultGroup` sizes its output by
    /// it).
    fn round_ended(&mut self, _submitted: usize) {}
}

/// The state that handles share with their group.
pub(super) struct Shared<T, E, A> {
    state: Mutex<State<T, E, A>>,
    failures: AtomicUsize,
    cancel: Option<CancelFn>,
}

struct State<T, E, A> {
    set: JoinSet<Finished<T, E>>,
    limit: Option<Arc<Semaphore>>,
    next_index: usize,
    collected: A,
    /// The owner was dropped (invariant 5).
    closed: bool,
}

/// The owner's side: dropping it aborts the tasks and cancels the context.
pub(super) struct Core<T, E, A> {
    shared: Arc<Shared<T, E, A>>,
}

impl<T, E, A> Core<T, E, A>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
    A: Collect<T, E>,
{
    pub(super) fn new(cancel: Option<CancelFn>) -> Self {
        Core {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    set: JoinSet::new(),
                    limit: None,
                    next_index: 0,
                    collected: A::default(),
                    closed: false,
                }),
                failures: AtomicUsize::new(0),
                cancel,
            }),
        }
    }

    pub(super) fn with_context(ctx: &Context) -> (Self, Context) {
        let (child, cancel) = ctx.with_cancel();
        (Core::new(Some(cancel)), child)
    }

    pub(super) fn shared(&self) -> &Arc<Shared<T, E, A>> {
        &self.shared
    }

    #[track_caller]
    pub(super) fn set_limit(&mut self, limit: NonZeroUsize) {
        let mut state = self.shared.lock();
        assert!(
            state.set.is_empty(),
            "set_limit called while the group has tasks; set it before the first go"
        );
        state.limit = Some(Arc::new(Semaphore::new(limit.get())));
    }

    /// Polls for the end of the round: collects every task that has finished and, once none
    /// is left, ends the round (invariant 3) and returns what was collected.
    ///
    /// Cancel safe: what is collected stays in the shared state until the round ends.
    pub(super) fn poll_round(&self, cx: &mut TaskContext<'_>) -> Poll<A> {
        let mut state = self.shared.lock();
        loop {
            match state.set.poll_join_next(cx) {
                Poll::Ready(Some(joined)) => {
                    // Wrappers never panic (invariant 1) and the set never aborts them while
                    // the owner is alive; a JoinError means the runtime is shutting down, and
                    // nobody can observe the group anymore.
                    if let Ok(finished) = joined {
                        state.collected.collect(finished);
                    }
                }
                Poll::Ready(None) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        // Invariant 3: the set is empty and we hold the lock.
        self.shared.failures.store(0, Ordering::Relaxed);
        let next_index = std::mem::take(&mut state.next_index);
        let mut collected = std::mem::take(&mut state.collected);
        drop(state);
        collected.round_ended(next_index);
        // Go's `Wait` cancels the group's context when it returns.
        if let Some(cancel) = &self.shared.cancel {
            cancel.cancel();
        }
        Poll::Ready(collected)
    }

    pub(super) fn len(&self) -> usize {
        self.shared.lock().set.len()
    }
}

impl<T, E, A> Shared<T, E, A>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
    A: Collect<T, E>,
{
    fn lock(&self) -> MutexGuard<'_, State<T, E, A>> {
        // No user code runs under the lock (invariant 4), so a poisoned lock holds consistent
        // state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns `future` once a slot under the limit is free (at once without a limit, under a
    /// single lock); hands it back if the owner is gone.
    ///
    /// Cancel safe as `go` documents: dropped while waiting for a slot, it drops `future`.
    pub(super) async fn go<F>(self: &Arc<Self>, future: F) -> Result<(), F>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let sem = {
            let mut state = self.lock();
            if state.closed {
                return Err(future);
            }
            match &state.limit {
                Some(sem) => Arc::clone(sem),
                None => {
                    self.spawn_locked(&mut state, None, future);
                    return Ok(());
                }
            }
        };
        // The semaphore is never closed, so `acquire_owned` cannot fail.
        let permit = sem.acquire_owned().await.ok();
        let mut state = self.lock();
        if state.closed {
            return Err(future);
        }
        self.spawn_locked(&mut state, permit, future);
        Ok(())
    }

    /// Spawns `future` if a slot under the limit is free (always without a limit); hands it
    /// back if the group is at its limit or the owner is gone.
    pub(super) fn try_go<F>(self: &Arc<Self>, future: F) -> Result<(), F>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let mut state = self.lock();
        if state.closed {
            return Err(future);
        }
        let permit = match &state.limit {
            Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => return Err(future),
            },
            None => None,
        };
        self.spawn_locked(&mut state, permit, future);
        Ok(())
    }

    /// Spawns `future` holding `permit` (released when the task ends), first collecting the
    /// tasks already finished so that a long-lived group holds about as many entries as it
    /// has running tasks.
    fn spawn_locked<F>(
        self: &Arc<Self>,
        state: &mut State<T, E, A>,
        permit: Option<OwnedSemaphorePermit>,
        future: F,
    ) where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        while let Some(joined) = state.set.try_join_next() {
            if let Ok(finished) = joined {
                state.collected.collect(finished);
            }
        }
        let index = state.next_index;
        state.next_index += 1;
        let shared = Arc::clone(self);
        state.set.spawn(async move {
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
                    cancel.cancel_with(cause_of(err));
                }
            }
            drop(permit);
            drop(shared);
            Finished {
                index,
                ticket,
                result,
            }
        });
    }
}

/// The context cause for a group's failure: the error value itself when its type can be
/// shared (`Arc<dyn Error + Send + Sync>`, or a [`Cause`]), the [`Panicked`] value for a panic,
/// and otherwise the error's text (a value that is not `Clone` cannot be both returned by
/// `wait` and kept by the context).
///
/// [`Panicked`]: crate::Panicked
fn cause_of<E: fmt::Display + 'static>(err: &GroupError<E>) -> Cause {
    match err {
        GroupError::Failed(e) => {
            let any: &dyn Any = e;
            if let Some(shared) = any.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
                Cause::from(Arc::clone(shared))
            } else if let Some(cause) = any.downcast_ref::<Cause>() {
                cause.clone()
            } else {
                Cause::new(e.to_string())
            }
        }
        GroupError::Panicked(panicked) => Cause::new(panicked.clone()),
    }
}

impl<T, E, A> Drop for Core<T, E, A> {
    fn drop(&mut self) {
        let set = {
            let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            state.closed = true;
            std::mem::take(&mut state.set)
        };
        // Dropped outside the lock: the JoinSet aborts the tasks as it drops (a task may hold
        // a handle to this very state). Then tell whoever else holds the context.
        drop(set);
        if let Some(cancel) = &self.shared.cancel {
            cancel.cancel();
        }
    }
}

impl<T, E, A> fmt::Debug for Core<T, E, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.shared, f)
    }
}

impl<T, E, A> fmt::Debug for Shared<T, E, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Core")
            .field("len", &state.set.len())
            .field(
                "limit",
                &state.limit.as_ref().map(|s| s.available_permits()),
            )
            .field("closed", &state.closed)
            .finish_non_exhaustive()
    }
}
