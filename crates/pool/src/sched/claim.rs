//! A worker taking its next batch: search briefly on an empty queue, claim a batch under the
//! `state` and `intake` locks and pop it under the `sorted` lock, or park, or leave.
//!
//! A worker that finds the queue empty does not park at once: if no other worker is doing so,
//! it searches: it watches the intake shards' fill hints without a lock, and between looks it yields
//! its thread to the runtime (it wakes itself and returns `Pending`), while pushes wake nobody.
//! Waking a parked worker costs the submitter a system call and both threads a context switch,
//! which for short jobs cost more than the jobs. Yielding rather than spinning in place matters
//! because workers share the runtime's threads with the submitters: the task that must run to
//! produce the next job (a submitter just woken by a job's result lands in the waking thread's
//! next-task slot) runs between two looks instead of waiting behind the spin. The search is
//! bounded, so an idle pool still parks all its workers.

use std::collections::VecDeque;
use std::task::Waker;

use super::intake::{EMPTY, SHARDS, SOME};
use super::queue::Levels;
use super::slot::WorkerSlot;
use super::state::{Claim, Claimed};
use super::{Entry, Shared};
use crate::lock;

/// How many times a searching worker yields its thread and looks at the intake again before
/// it parks (each look a task poll: a few microseconds in all when nothing else runs).
const SEARCH: u32 = 64;

/// Once a job has come, how many more looks a searching worker waits for a batch's worth.
const SEARCH_FOR_BATCH: u32 = 4;

/// A worker's search of an empty queue before it parks (see the module docs). While
/// [`Search::On`], the worker counts as searching (invariant 3 of `State`), so it must end
/// with [`Shared::fetch`] or [`Shared::end_search`].
#[derive(Default)]
pub(crate) enum Search {
    /// The worker may start a search (once per wait for work).
    #[default]
    Fresh,
    /// Searching: `left` more looks at the intake shards' fill hints.
    On { left: u32 },
    /// Searched (or not allowed to): the next empty fetch parks.
    Off,
}

/// What [`Shared::fetch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// Jobs were added to the worker's local batch.
    Batch,
    /// Nothing to do: the worker is parked with the given waker.
    Parked,
    /// Searching: the worker must wake itself and yield, then fetch again.
    Yield,
    /// The worker must stop; it is no longer counted.
    Left,
}

/// A worker's buffers for [`Shared::fetch`], kept across fetches so no batch allocates.
pub(crate) struct Buffers<Req, Resp, E> {
    /// The jobs claimed, in the order to run them.
    pub(crate) local: VecDeque<Entry<Req, Resp, E>>,
    /// Per intake shard and level, the shards' vectors on their way to the sorted queue (the
    /// shards get these, emptied, in exchange: their capacity goes back and forth instead of
    /// being allocated per batch).
    moved: Vec<Levels<Req, Resp, E>>,
    /// Per level, queue places to give back.
    release: Vec<usize>,
}

impl<Req, Resp, E> Buffers<Req, Resp, E> {
    pub(crate) fn new(levels: usize) -> Self {
        Buffers {
            local: VecDeque::new(),
            moved: (0..SHARDS)
                .map(|_| (0..levels).map(|_| Vec::new()).collect())
                .collect(),
            release: vec![0; levels],
        }
    }
}

impl<Req, Resp, E> Shared<Req, Resp, E> {
    /// One attempt of worker `slot` to take up to `batch` jobs into `buf.local`. With an
    /// empty queue, starts or continues a `search` ([`Fetched::Yield`]); when that is over and
    /// nothing is queued, `expired` is asked (only for a worker above the minimum, polled with
    /// `waker`) whether its idle timer has run out; if not, the worker parks with `waker`.
    pub(crate) fn fetch(
        &self,
        slot: &WorkerSlot,
        batch: usize,
        search: &mut Search,
        buf: &mut Buffers<Req, Resp, E>,
        waker: &Waker,
        expired: impl FnOnce(&Waker) -> bool,
    ) -> Fetched {
        // Until a job comes; then, for a few looks, until a batch's worth has come, so that the
        // queue lock is taken once per batch rather than once per job.
        if let Search::On { left } = search
            && *left > 0
            && !self.cancelling()
        {
            *left -= 1;
            match self.intake.fill() {
                EMPTY => return Fetched::Yield,
                SOME => {
                    *left = (*left).min(SEARCH_FOR_BATCH);
                    if *left > 0 {
                        return Fetched::Yield;
                    }
                }
                _ => {}
            }
        }
        let mut q = lock(&self.sorted);
        // A worker that has not parked in this wait, with nobody parked and nobody in excess,
        // claims without the `state` lock: nothing there changes (see `Hints::claim_alone`).
        if let Search::Fresh = search
            && let Some(workers) = self.hints.claim_alone()
        {
            let mut intake = self.intake.lock_all();
            let queued = intake.len() + q.len();
            if queued > 0 {
                intake.take_into(&mut buf.moved);
                drop(intake);
                let claim = Claim::new(batch, queued, workers);
                claim.pop_into(&mut q, &mut buf.moved, &mut buf.local, &mut buf.release);
                drop(q);
                self.claimed(slot, buf);
                return Fetched::Batch;
            }
        }
        let mut st = self.state.lock();
        let mut intake = self.intake.lock_all();
        let (queued, closed) = (intake.len() + q.len(), intake.is_closed());
        match std::mem::replace(search, Search::Off) {
            Search::On { .. } => st.end_search(),
            Search::Fresh if !self.cancelling() && st.begin_search(queued, closed) => {
                *search = Search::On { left: SEARCH };
                return Fetched::Yield;
            }
            _ => {}
        }
        match st.claim(slot.id, batch, queued, closed) {
            Claimed::Batch(claim) => {
                intake.take_into(&mut buf.moved);
                drop(intake);
                drop(st);
                // Still under `sorted`: nobody else pops, so the jobs counted out are there.
                claim.pop_into(&mut q, &mut buf.moved, &mut buf.local, &mut buf.release);
                drop(q);
                if let Some(w) = claim.wake {
                    w.wake();
                }
                self.claimed(slot, buf);
                Fetched::Batch
            }
            Claimed::Left => Fetched::Left,
            // Parked (or gone) before the shards' locks are released (invariant 4 of
            // `state.rs`): a push after this sees the worker in the hints.
            Claimed::Empty { may_expire } => {
                if may_expire && expired(waker) {
                    st.leave(slot.id);
                    Fetched::Left
                } else {
                    st.park(slot.id, waker);
                    Fetched::Parked
                }
            }
        }
    }

    /// After a claim, outside the locks: publishes the batch's ids (cancel by id) and gives
    /// its queue places back.
    fn claimed(&self, slot: &WorkerSlot, buf: &mut Buffers<Req, Resp, E>) {
        slot.set_claimed(buf.local.iter().map(|e| e.id));
        for (level, n) in buf.release.iter_mut().enumerate() {
            self.release(level as u8, std::mem::take(n));
        }
    }

    /// Ends a search the worker gives up before its [`fetch`](Self::fetch) ended it (the
    /// worker's future dropped mid-search), so that pushes wake workers again.
    pub(crate) fn end_search(&self, search: &mut Search) {
        if let Search::On { .. } = std::mem::replace(search, Search::Off) {
            self.state.lock().end_search();
        }
    }
}
