//! [`Intake`]: where submits put jobs, behind a lock of its own, which submitters take once per
//! job (or per chunk) and workers once per batch, only to swap its vectors out; a pool has
//! [`SHARDS`] of them ([`Shards`]), and each thread pushes into one.
//!
//! # Why its own lock
//!
//! The intake used to live under the `state` lock with the workers' bookkeeping (parked and
//! woken workers, counts), so every submit waited for every worker's claim and the other way
//! round: with 4 and 16 concurrent submitters, 16-23% of `perf`'s samples waited on that one
//! lock (BENCHMARKS.md, issue 19). Now a submit takes only this lock, for a push and a few
//! counters, and reads the `state` lock's [`Hints`](super::state::Hints) after releasing it:
//! it takes the `state` lock only when a worker is parked (to wake it) or the pool may grow.
//!
//! # Invariants
//!
//! 1. A job enters a shard only while its `closed` is false, checked under its lock
//!    ([`Intake::push`] asserts it; every submit path checks [`Intake::is_closed`] in the same
//!    critical section); all shards close together, under all their locks, and never open
//!    again: so a worker that sees the shards closed and empty (under all their locks) may
//!    leave, no job can come after it.
//! 2. Ids grow with submission: [`Intake::push`] takes the next one from the counter the
//!    shards share, under its shard's lock, so each level's vector is sorted by id (cancel and
//!    detach binary-search it). A claim holds every shard's lock at once, so the jobs it takes
//!    have all the ids taken before that moment and later jobs have higher ones: merged by id,
//!    every job of a level in the intake is younger than every job of that level in the sorted
//!    queue, which stays sorted by id.
//! 3. `leased` holds queue places a submit took from a capacity semaphore ahead of use, per
//!    semaphore ([`take_leased`](Intake::take_leased), [`add_leased`](Intake::add_leased)).
//!    They are refilled only by a submit that found none and pushes a job in the same critical
//!    section, so a submit that then waits on the semaphore either saw none left or waits
//!    behind a queued job whose pop gives a place back (see `admission.rs`).
//! 4. A worker parks (and a worker leaves for idleness) only while it holds every shard's lock
//!    and has seen them empty, and it is counted in [`Hints`](super::state::Hints) before the
//!    locks are released; a submit reads the hints after its push released its shard's lock. So either
//!    the worker saw the job, or the submit sees the worker parked and wakes it (the loom
//!    model `loom_a_push_never_misses_a_parking_worker` in `state.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use super::Padded;
use super::lock::{SpinGuard, SpinLock};
use super::queue::{Entry, Levels, levels_to_search};
use crate::job::Cell;

/// How many intakes a pool has; each thread pushes into one (see [`Shards`]).
pub(crate) const SHARDS: usize = 4;

/// Which shard this thread pushes into: threads are numbered as they first submit.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// A pool's intakes: [`SHARDS`] of them, each behind its own lock, and the ids they share.
///
/// # Why shards
///
/// With one intake, submitters on different threads took turns on its lock, and each push
/// touched lines the other thread had just written (the lock, the intake's vectors, the
/// entry's slot): with 16 submitters awaiting their results, a fifth of `perf`'s samples waited
/// on that lock. A thread pushes into its own shard, whose lines stay in its core's cache; a
/// worker's claim takes every shard's lock (in index order), swaps their vectors out and merges
/// them by id, so the sorted queue sees the jobs as one intake would have given them
/// (invariant 2). What differs from one intake: a submit finds the leased queue places of its
/// own shard only (up to `lease - 1` per shard, see `admission.rs`), and a dropped handle's
/// cell is reused only by a submit on the shard its job went to.
pub(crate) struct Shards<Req, Resp, E> {
    shards: [Padded<SpinLock<Intake<Req, Resp, E>>>; SHARDS],
    /// Each shard's fill hint ([`Intake::fill`]).
    fills: [Arc<NonEmpty>; SHARDS],
}

/// Every shard's lock, held (taken in index order: the lock order among shards).
pub(crate) struct AllShards<'a, Req, Resp, E>([SpinGuard<'a, Intake<Req, Resp, E>>; SHARDS]);

impl<Req, Resp, E> Shards<Req, Resp, E> {
    pub(crate) fn new(levels: usize, batch: usize) -> Self {
        let ids = Arc::new(Padded(AtomicU64::new(1)));
        let shards: [Padded<SpinLock<Intake<Req, Resp, E>>>; SHARDS] = std::array::from_fn(|_| {
            Padded(SpinLock::new(Intake::with_ids(
                levels,
                batch,
                Arc::clone(&ids),
            )))
        });
        let fills = std::array::from_fn(|i| Arc::clone(&shards[i].lock().fill));
        Shards { shards, fills }
    }

    /// This thread's shard's lock.
    pub(crate) fn lock_mine(&self) -> SpinGuard<'_, Intake<Req, Resp, E>> {
        // During thread teardown the thread-local may be gone: shard 0 then.
        let i = SHARD.try_with(|s| *s).unwrap_or(0);
        self.shards[i].lock()
    }

    /// Every shard's lock, in index order.
    pub(crate) fn lock_all(&self) -> AllShards<'_, Req, Resp, E> {
        AllShards(std::array::from_fn(|i| self.shards[i].lock()))
    }

    /// Each shard's lock, one at a time.
    pub(crate) fn each(&self) -> impl Iterator<Item = &SpinLock<Intake<Req, Resp, E>>> {
        self.shards.iter().map(|s| &s.0)
    }

    /// The fullest shard's fill hint ([`NonEmpty`]), read without a lock.
    pub(crate) fn fill(&self) -> u8 {
        self.fills.iter().map(|f| f.get()).max().unwrap_or(EMPTY)
    }
}

impl<Req, Resp, E> AllShards<'_, Req, Resp, E> {
    /// Jobs in all shards.
    pub(crate) fn len(&self) -> usize {
        self.0.iter().map(|i| i.len()).sum()
    }

    /// Whether the pool is closed (all shards close together, under all their locks).
    pub(crate) fn is_closed(&self) -> bool {
        self.0[0].is_closed()
    }

    /// Closes every shard (invariant 1); false if they already were.
    pub(crate) fn close(&mut self) -> bool {
        self.0.iter_mut().fold(false, |first, i| i.close() | first)
    }

    /// Swaps every shard's vectors with `spare[shard]`'s (see [`Intake::take_into`]).
    pub(crate) fn take_into(&mut self, spare: &mut [Levels<Req, Resp, E>]) {
        for (i, s) in self.0.iter_mut().zip(spare.iter_mut()) {
            i.take_into(s);
        }
    }

    /// Jobs per level, over all shards.
    pub(crate) fn level_lens(&self) -> Vec<usize> {
        let mut lens = Vec::new();
        for i in &self.0 {
            for (l, n) in i.level_lens().enumerate() {
                if lens.len() <= l {
                    lens.push(0);
                }
                lens[l] += n;
            }
        }
        lens
    }

    /// Jobs accepted, over all shards.
    pub(crate) fn accepted(&self) -> u64 {
        self.0.iter().map(|i| i.accepted()).sum()
    }

    /// Empties every shard (cancelling shutdown).
    pub(crate) fn drain_all(&mut self) -> Vec<Entry<Req, Resp, E>> {
        self.0.iter_mut().flat_map(|i| i.drain_all()).collect()
    }
}

/// [`Intake::fill`], on cache lines of its own: how full the intake is, coarsely.
#[repr(align(128))]
pub(crate) struct NonEmpty(AtomicU8);

/// [`NonEmpty`] values.
pub(crate) const EMPTY: u8 = 0;
pub(crate) const SOME: u8 = 1;
/// At least a worker's batch.
pub(crate) const A_BATCH: u8 = 2;

impl NonEmpty {
    pub(crate) fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }
}

/// Where submits put jobs: one plain FIFO per level, and what a submit decides with them
/// (closed, ids, leased queue places); see the module docs.
///
/// # Why apart from the sorted queue
///
/// When submitters and workers shared one queue under one lock, every submit touched lines a
/// worker had just written (the lock, the queue's ends) and a worker's batch pop held the
/// lock while it compared levels: `perf` showed the submitting thread spending half its time
/// on the lock's cache line and waiting for it. Now a worker takes the whole intake in one
/// swap per level (O(levels) under the lock) and sorts it into the
/// [`Queue`](super::queue::Queue) under a lock submitters never take; each level stays FIFO
/// and every intake job is younger than every queued job of its level (invariant 2), so the
/// order of pops is the same as with one queue.
pub(crate) struct Intake<Req, Resp, E> {
    levels: Vec<Vec<Entry<Req, Resp, E>>>,
    len: usize,
    /// Whether the intake holds no job, some, or a batch's worth, readable without the lock:
    /// a worker waiting for work watches it briefly before it parks (see `sched::claim`).
    /// Written only when that changes, so not once per job.
    pub(crate) fill: Arc<NonEmpty>,
    /// The value last written to `fill`.
    hint: u8,
    batch: usize,
    /// Invariant 1.
    closed: bool,
    /// Invariant 2: the next id, shared by a pool's shards (taken under a shard's lock).
    ids: Arc<Padded<AtomicU64>>,
    /// Jobs accepted into the queue (refusals are counted apart).
    accepted: u64,
    /// Invariant 3: leased queue places per capacity semaphore.
    leased: Vec<usize>,
}

impl<Req, Resp, E> Intake<Req, Resp, E> {
    /// An intake with ids of its own (tests and loom models; a pool's shards share theirs).
    #[cfg(test)]
    pub(crate) fn new(levels: usize, batch: usize) -> Self {
        Self::with_ids(levels, batch, Arc::new(Padded(AtomicU64::new(1))))
    }

    fn with_ids(levels: usize, batch: usize, ids: Arc<Padded<AtomicU64>>) -> Self {
        Intake {
            levels: (0..levels).map(|_| Vec::new()).collect(),
            len: 0,
            fill: Arc::new(NonEmpty(AtomicU8::new(EMPTY))),
            hint: EMPTY,
            batch: batch.max(1),
            closed: false,
            ids,
            accepted: 0,
            leased: vec![0; levels],
        }
    }

    fn note_len(&mut self) {
        let hint = match self.len {
            0 => EMPTY,
            n if n < self.batch => SOME,
            _ => A_BATCH,
        };
        if hint != self.hint {
            self.hint = hint;
            self.fill.0.store(hint, Ordering::Release);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Closes the intake (invariant 1); false if it already was.
    pub(crate) fn close(&mut self) -> bool {
        !std::mem::replace(&mut self.closed, true)
    }

    /// Jobs in the intake.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Jobs accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Takes one of semaphore `sem`'s leased queue places, if one is left (invariant 3).
    pub(crate) fn take_leased(&mut self, sem: usize) -> bool {
        let left = &mut self.leased[sem];
        let some = *left > 0;
        *left -= usize::from(some);
        some
    }

    /// Keeps `n` places just taken from semaphore `sem` for the next submits (invariant 3).
    pub(crate) fn add_leased(&mut self, sem: usize, n: usize) {
        self.leased[sem] += n;
    }

    /// Accepts one job (invariants 1 and 2): its id.
    pub(crate) fn push(
        &mut self,
        req: Req,
        level: u8,
        cell: Option<Arc<Cell<Resp, E>>>,
        stamp: i64,
    ) -> u64 {
        let id = self.take_ids(1);
        self.push_as(id, req, level, cell, stamp);
        id
    }

    /// `n` consecutive ids for the pushes that follow under this lock (invariant 2): one
    /// read-modify-write of the shared counter for a chunk of jobs.
    pub(crate) fn take_ids(&mut self, n: u64) -> u64 {
        // Relaxed: taken under this shard's lock; a claim holds every shard's lock at once, so
        // the ids taken before it all precede the ids taken after it (invariant 2).
        self.ids.fetch_add(n, Ordering::Relaxed)
    }

    /// Accepts one job with an id from [`take_ids`](Self::take_ids), taken in this critical
    /// section (invariants 1 and 2).
    pub(crate) fn push_as(
        &mut self,
        id: u64,
        req: Req,
        level: u8,
        cell: Option<Arc<Cell<Resp, E>>>,
        stamp: i64,
    ) {
        debug_assert!(!self.closed);
        self.accepted += 1;
        self.levels[level as usize].push(Entry {
            req,
            cell,
            id,
            level,
            stamp,
        });
        self.len += 1;
        self.note_len();
    }

    /// Swaps every level's jobs with `spare`'s (empty) vectors: the caller gets the jobs, the
    /// intake gets the spare vectors' capacity. O(levels).
    pub(crate) fn take_into(&mut self, spare: &mut [Vec<Entry<Req, Resp, E>>]) {
        if self.len == 0 {
            return;
        }
        for (mine, theirs) in self.levels.iter_mut().zip(spare.iter_mut()) {
            debug_assert!(theirs.is_empty());
            std::mem::swap(mine, theirs);
        }
        self.len = 0;
        self.note_len();
    }

    /// Removes the job `id` if it is still here.
    pub(crate) fn remove(&mut self, id: u64, level: Option<u8>) -> Option<Entry<Req, Resp, E>> {
        for l in levels_to_search(level, self.levels.len()) {
            let q = &mut self.levels[l];
            // Ids grow with submission, so a level is sorted by id: binary search.
            if let Ok(i) = q.binary_search_by_key(&id, |e| e.id) {
                let e = q.remove(i);
                self.len -= 1;
                self.note_len();
                return Some(e);
            }
        }
        None
    }

    /// Takes the result cell out of the job `id` at `level`, whose handle was dropped, if it
    /// is still here: the job stays queued, but runs detached (no outcome stored, nothing
    /// shared with the handle's side). The job just submitted is usually the last of its
    /// level: checked first.
    pub(crate) fn detach(&mut self, id: u64, level: u8) -> Option<Arc<Cell<Resp, E>>> {
        let q = self.levels.get_mut(level as usize)?;
        let i = match q.last() {
            Some(e) if e.id == id => q.len() - 1,
            _ => q.binary_search_by_key(&id, |e| e.id).ok()?,
        };
        q.get_mut(i).and_then(|e| e.cell.take())
    }

    pub(crate) fn level_lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.levels.iter().map(Vec::len)
    }

    pub(crate) fn drain_all(&mut self) -> impl Iterator<Item = Entry<Req, Resp, E>> + '_ {
        self.len = 0;
        self.note_len();
        self.levels.iter_mut().flat_map(|q| q.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intake_detach_and_remove_find_jobs_by_id() {
        let mut intake: Intake<u32, (), ()> = Intake::new(2, 2);
        for n in 1..=4u32 {
            let cell = Some(Arc::new(Cell::new(None)));
            assert_eq!(
                intake.push(n, (n % 2) as u8, cell, 0),
                u64::from(n),
                "ids grow from 1"
            );
        }
        assert_eq!(intake.fill.get(), A_BATCH);
        assert!(intake.detach(3, 1).is_some(), "the cell comes out");
        assert!(intake.detach(3, 1).is_none(), "and only once");
        assert!(intake.detach(3, 0).is_none(), "wrong level");
        assert_eq!(
            intake.remove(3, None).map(|e| e.req),
            Some(3),
            "the job stays queued"
        );
        assert_eq!(intake.remove(2, Some(0)).map(|e| e.req), Some(2));
        assert_eq!(intake.remove(2, None).map(|e| e.req), None);
        assert_eq!(intake.level_lens().collect::<Vec<_>>(), [1, 1]);
    }

    #[test]
    fn a_closed_intake_stays_closed_and_leased_places_are_taken_once() {
        let mut intake: Intake<u32, (), ()> = Intake::new(1, 4);
        assert!(!intake.take_leased(0), "none leased yet");
        intake.add_leased(0, 2);
        assert!(intake.take_leased(0) && intake.take_leased(0));
        assert!(!intake.take_leased(0), "two leased, two taken");
        assert!(intake.close(), "the first close closes");
        assert!(!intake.close(), "the second finds it closed");
        assert!(intake.is_closed());
    }
}
