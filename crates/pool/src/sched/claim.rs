//! A worker taking its next batch: spin briefly on an empty queue, claim a batch under the
//! `state` lock and pop it under the `sorted` lock, or park, or leave.
//!
//! A worker that finds the queue empty does not park at once: if no other worker is doing so,
//! it spins for a few microseconds on the intake's fill hint (and, once a job is there, a
//! little longer for a batch's worth), while pushes wake nobody. Waking a parked worker costs
//! the submitter a system call and both threads a context switch, which for short jobs cost
//! more than the jobs; the spin is bounded, so an idle pool still parks all its workers.

use std::collections::VecDeque;
use std::task::Waker;

use super::queue::{EMPTY, SOME};
use super::slot::WorkerSlot;
use super::state::Claimed;
use super::{Entry, Shared};
use crate::lock;

/// How many times a worker that finds the queue empty checks it again, with a spin-loop hint
/// between checks (a few microseconds in all), before it parks.
const SPIN: u32 = 128;

/// Once a job has come, how many more checks a spinning worker waits for a batch's worth.
const SPIN_FOR_BATCH: u32 = 32;

/// What [`Shared::fetch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// Jobs were added to the worker's local batch.
    Batch,
    /// Nothing to do: the worker is parked with the given waker.
    Parked,
    /// The worker must stop; it is no longer counted.
    Left,
}

/// A worker's buffers for [`Shared::fetch`], kept across fetches so no batch allocates.
pub(crate) struct Buffers<Req, Resp, E> {
    /// The jobs claimed, in the order to run them.
    pub(crate) local: VecDeque<Entry<Req, Resp, E>>,
    /// Per level, the intake's vectors on their way to the sorted queue (the intake gets
    /// these, emptied, in exchange: their capacity goes back and forth instead of being
    /// allocated per batch).
    moved: Vec<Vec<Entry<Req, Resp, E>>>,
    /// Per level, queue places to give back.
    release: Vec<usize>,
}

impl<Req, Resp, E> Buffers<Req, Resp, E> {
    pub(crate) fn new(levels: usize) -> Self {
        Buffers {
            local: VecDeque::new(),
            moved: (0..levels).map(|_| Vec::new()).collect(),
            release: vec![0; levels],
        }
    }
}

impl<Req, Resp, E> Shared<Req, Resp, E> {
    /// One attempt of worker `slot` to take up to `batch` jobs into `buf.local`. Spins first
    /// if `*may_spin` (then cleared). When nothing is queued, `expired` is asked (only for a
    /// worker above the minimum, polled with `waker`) whether its idle timer has run out; if
    /// not, the worker parks with `waker`.
    pub(crate) fn fetch(
        &self,
        slot: &WorkerSlot,
        batch: usize,
        may_spin: &mut bool,
        buf: &mut Buffers<Req, Resp, E>,
        waker: &Waker,
        expired: impl FnOnce(&Waker) -> bool,
    ) -> Fetched {
        let mut q = lock(&self.sorted);
        let mut st = self.state.lock();
        if *may_spin
            && !self.cancelling()
            && let Some(flag) = st.begin_search()
        {
            *may_spin = false;
            drop(st);
            drop(q);
            // Until a job comes; then, briefly, until a batch's worth has come, so that the
            // queue lock is taken once per batch rather than once per job.
            let mut wait = SPIN;
            let mut i = 0;
            while i < wait {
                match flag.get() {
                    EMPTY => {}
                    SOME if wait == SPIN => {
                        wait = i + SPIN_FOR_BATCH;
                    }
                    SOME => {}
                    _ => break,
                }
                std::hint::spin_loop();
                i += 1;
            }
            q = lock(&self.sorted);
            st = self.state.lock();
            st.end_search();
        }
        match st.claim(slot.id, batch, &mut buf.moved) {
            Claimed::Batch(claim) => {
                drop(st);
                // Still under `sorted`: nobody else pops, so the jobs counted out are there.
                claim.pop_into(&mut q, &mut buf.moved, &mut buf.local, &mut buf.release);
                drop(q);
                if let Some(w) = claim.wake {
                    w.wake();
                }
                slot.set_claimed(buf.local.iter().map(|e| e.id));
                for (level, n) in buf.release.iter_mut().enumerate() {
                    self.release(level as u8, std::mem::take(n));
                }
                Fetched::Batch
            }
            Claimed::Left => Fetched::Left,
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
}
