//! Accepting jobs: the door checks (closed, blacklisted), the push into the intake, and the
//! wake-up decision after it. Every submit path (`submit`, `spawn`, the bulk ones and the
//! `Service` impl) ends here, holding the job's queue place (invariant 2 of the module).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::intake::Intake;
use super::stash::Stashed;
use super::{IntakeGuard, Shared};
use crate::error::{Outcome, SubmitError};
use crate::job::JobHandle;

/// A job past the blacklist check, or refused there.
type Staged<Req> = Result<Req, SubmitError<Req>>;

/// Where a submit's queue place comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// The caller took it (waited for it, or reserved it in `poll_ready`).
    Held,
    /// Taken under the `intake` lock from the leased places or the semaphore
    /// ([`Shared::take_place`]); if there is none, the job comes back in [`Refused::NoRoom`]
    /// and the caller waits for one outside the lock.
    Take,
}

/// Why a submit did not queue its job.
pub(crate) enum Refused<Req> {
    /// Refused for good (closed, blacklisted); counted.
    Submit(SubmitError<Req>),
    /// [`Place::Take`] found no queue place: nothing was counted or taken.
    NoRoom(Req),
}

impl<Req> From<SubmitError<Req>> for Refused<Req> {
    fn from(e: SubmitError<Req>) -> Self {
        Refused::Submit(e)
    }
}

impl<Req, Resp, E> Shared<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    /// Counts a rejection and hands the job back.
    pub(crate) fn reject(&self, job: Req) -> SubmitError<Req> {
        self.refuse(Outcome::Rejected, 1);
        SubmitError::Closed(job)
    }

    /// Counts `n` refusals at the door, as submitted.
    fn refuse(&self, outcome: Outcome, n: u64) {
        self.refused.fetch_add(n, Ordering::Relaxed);
        self.counters.bump_shared(outcome, n);
    }

    /// The door check before waiting for capacity: closed or blacklisted.
    pub(crate) fn precheck(&self, job: Req) -> Result<Req, SubmitError<Req>> {
        if self.is_closed() {
            return Err(self.reject(job));
        }
        if let Some(bl) = &self.blacklist
            && let Some(key) = self.key_of(&job)
            && bl.is_blacklisted(&key)
        {
            self.refuse(Outcome::Blacklisted, 1);
            return Err(SubmitError::Blacklisted { job, key });
        }
        Ok(job)
    }

    /// The job, or the job back (its queue place released, the refusal counted) when its key
    /// is blacklisted.
    fn admit(&self, level: u8, job: Req, place: Place) -> Staged<Req> {
        if let Some(bl) = &self.blacklist
            && let Some(key) = self.key_of(&job)
            && bl.is_blacklisted(&key)
        {
            if place == Place::Held {
                self.release(level, 1);
            }
            self.refuse(Outcome::Blacklisted, 1);
            return Err(SubmitError::Blacklisted { job, key });
        }
        Ok(job)
    }

    /// Pushes a job whose queue place (if bounded) the caller holds (it moves with the job);
    /// its handle.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        level: u8,
        job: Req,
    ) -> Result<JobHandle<Resp, E>, SubmitError<Req>> {
        self.enqueue_at(level, job, Place::Held)
            .map_err(Refused::into_held)
    }

    /// Pushes a job, its queue place as `place` says; its handle.
    pub(crate) fn enqueue_at(
        self: &Arc<Self>,
        level: u8,
        job: Req,
        place: Place,
    ) -> Result<JobHandle<Resp, E>, Refused<Req>> {
        let job = self.admit(level, job, place)?;
        let stashed = self.take_stashed();
        // Allocated outside the lock when no stashed cell may serve instead.
        let mut fresh = stashed.is_none().then(|| self.new_cell());
        let now = self.clock.now_ns();
        let Some(mut intake) = self.lock_open(level, place) else {
            return Err(SubmitError::Closed(job).into());
        };
        if place == Place::Take && !self.take_place(&mut intake, level) {
            drop(intake);
            // A stashed cell not reused is only a reference dropped: its job keeps the other.
            return Err(Refused::NoRoom(job));
        }
        let mut garbage = None;
        let pair = match stashed.map(|s: Stashed| s.reuse(&mut intake)) {
            Some(Ok(pair)) => Some(pair),
            Some(Err(g)) => {
                garbage = Some(g);
                None
            }
            None => None,
        };
        let (cell, queued) = match pair {
            Some(pair) => pair,
            None => {
                let c = fresh.take().unwrap_or_else(|| self.new_cell());
                (Arc::clone(&c), c)
            }
        };
        let id = intake.push(job, level, Some(queued), now);
        self.pushed(intake);
        drop(garbage); // outside the lock: a cell may hold a waker
        drop(fresh);
        Ok(JobHandle::new(cell, id, level))
    }

    /// [`enqueue_at`](Self::enqueue_at) without a handle or result cell: the job's id.
    pub(crate) fn enqueue_detached(
        self: &Arc<Self>,
        level: u8,
        job: Req,
        place: Place,
    ) -> Result<u64, Refused<Req>> {
        let job = self.admit(level, job, place)?;
        let now = self.clock.now_ns();
        let Some(mut intake) = self.lock_open(level, place) else {
            return Err(SubmitError::Closed(job).into());
        };
        if place == Place::Take && !self.take_place(&mut intake, level) {
            drop(intake);
            return Err(Refused::NoRoom(job));
        }
        let id = intake.push(job, level, None, now);
        self.pushed(intake);
        Ok(id)
    }

    /// A queue place for one job at `level`, under the `intake` lock: a leased one, or by
    /// leasing [`lease`](Self::lease) more from the semaphore with one compare-and-swap (the
    /// caller pushes a job before unlocking, which invariant 3 of `intake.rs` relies on).
    /// `false` if the semaphore has none now or is closed: the caller waits outside the lock.
    /// tokio's `try_acquire` takes no lock, so the lock order is kept.
    fn take_place(&self, intake: &mut Intake<Req, Resp, E>, level: u8) -> bool {
        let Some(sem) = self.semaphore(level) else {
            return true;
        };
        let slot = self.lease_slot(level);
        if intake.take_leased(slot) {
            return true;
        }
        if self.lease > 1
            && let Ok(p) = sem.try_acquire_many(self.lease as u32)
        {
            p.forget();
            intake.add_leased(slot, self.lease - 1);
            return true;
        }
        match sem.try_acquire() {
            Ok(p) => {
                p.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// A leased queue place for `level` in any intake shard, if one is left: taken by
    /// `poll_ready`, and by a submit or `try_submit` that found none in its own shard, before
    /// waiting on the semaphore (or reporting `Full`), so leased places never keep them
    /// waiting.
    pub(crate) fn take_leased(&self, level: u8) -> bool {
        let slot = self.lease_slot(level);
        self.intake.each().any(|i| i.lock().take_leased(slot))
    }

    /// The `intake` lock if the pool is open; `None` if closed, the submit's queue place then
    /// given back and the refusal counted (the caller hands the job back).
    fn lock_open(&self, level: u8, place: Place) -> Option<IntakeGuard<'_, Req, Resp, E>> {
        let intake = self.intake.lock_mine();
        if intake.is_closed() {
            drop(intake);
            if place == Place::Held {
                self.release(level, 1);
            }
            self.refuse(Outcome::Rejected, 1);
            return None;
        }
        Some(intake)
    }

    /// After one push under `intake`: releases it, then wakes a parked worker or starts one if
    /// the queue needs it. The `state` lock is taken only if the hints say a worker is parked
    /// or the pool may grow (invariant 4 of `state.rs`): with every worker busy or searching,
    /// a submit takes no lock a worker's claim holds long.
    fn pushed(self: &Arc<Self>, intake: IntakeGuard<'_, Req, Resp, E>) {
        let queued = intake.len();
        drop(intake);
        if !self.hints.push_needs_state() {
            return;
        }
        let (wake, grow) =
            self.state
                .lock()
                .after_push(queued, self.config.batch, self.config.scale_up_depth);
        if let Some(w) = wake {
            w.wake();
        }
        if grow {
            self.spawn_worker();
        }
    }

    /// [`enqueue`](Self::enqueue) for many jobs at one level, whose queue places (if bounded)
    /// the caller holds: one lock, one clock read and one wake-up decision for all of them.
    /// Gives `sink` one result per job, in order: a handle if `handles`, else `None` (the job
    /// gets no result cell at all).
    pub(crate) fn enqueue_many(
        self: &Arc<Self>,
        level: u8,
        jobs: impl Iterator<Item = Req>,
        handles: bool,
        mut sink: impl FnMut(Result<Option<JobHandle<Resp, E>>, SubmitError<Req>>),
    ) {
        // Blacklisted jobs are refused before the lock, as in `enqueue`.
        let staged: Vec<Staged<Req>> = jobs
            .map(|job| self.admit(level, job, Place::Held))
            .collect();
        let now = self.clock.now_ns();
        let mut intake = self.intake.lock_mine();
        let closed = intake.is_closed();
        let mut rejected = 0;
        let accepted = if closed {
            0
        } else {
            staged.iter().filter(|s| s.is_ok()).count() as u64
        };
        let mut next_id = intake.take_ids(accepted);
        for item in staged {
            sink(match item {
                Err(e) => Err(e),
                Ok(job) if closed => {
                    rejected += 1;
                    Err(SubmitError::Closed(job))
                }
                Ok(job) if handles => {
                    let cell = self.new_cell();
                    let id = next_id;
                    next_id += 1;
                    intake.push_as(id, job, level, Some(Arc::clone(&cell)), now);
                    Ok(Some(JobHandle::new(cell, id, level)))
                }
                Ok(job) => {
                    intake.push_as(next_id, job, level, None, now);
                    next_id += 1;
                    Ok(None)
                }
            });
        }
        let queued = intake.len();
        drop(intake);
        let mut wake = Vec::new();
        let grow = !closed
            && self.hints.push_needs_state()
            && self.state.lock().after_push_many(
                queued,
                self.config.batch,
                self.config.scale_up_depth,
                &mut wake,
            );
        if rejected > 0 {
            self.release(level, rejected);
            self.refuse(Outcome::Rejected, rejected as u64);
        }
        for w in wake {
            w.wake();
        }
        if grow {
            self.spawn_worker();
        }
    }
}

impl<Req> Refused<Req> {
    /// The error of a [`Place::Held`] submit, which never lacks room.
    fn into_held(self) -> SubmitError<Req> {
        match self {
            Refused::Submit(e) => e,
            // Unreachable: only `Place::Take` reports no room. Handing the job back as
            // refused keeps this path free of panics.
            Refused::NoRoom(job) => SubmitError::Closed(job),
        }
    }

    /// The error of a submit that will not wait for room, or the job back if there was none.
    pub(crate) fn into_submit(self) -> Result<SubmitError<Req>, Req> {
        match self {
            Refused::Submit(e) => Ok(e),
            Refused::NoRoom(job) => Err(job),
        }
    }
}
