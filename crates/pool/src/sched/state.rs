//! [`State`]: what the pool's `state` lock guards, and the only code that changes it.
//!
//! # Invariants
//!
//! 1. A job enters the intake only while `closed` is false, checked under the lock
//!    ([`State::push`] is only reached through `Shared::lock_open`, and the bulk path checks
//!    `closed` once for its whole chunk), so a closing pool never strands a job.
//! 2. `queued` is the number of jobs in the intake and in the sorted queue together, except
//!    while a worker that holds the `sorted` lock pops the `n` jobs it has already counted out
//!    ([`State::claim`] counts them out, [`Claim::pop_into`] pops them). Every other change of
//!    a queued job changes `queued` with it, here: [`push`](State::push),
//!    [`remove`](State::remove), [`drain_all`](State::drain_all). A worker counts out only
//!    what is there, and nobody else can pop while it holds `sorted`.
//! 3. `workers` counts live workers (and ones being started). It goes up only in
//!    [`set_bounds`](State::set_bounds) and when a push decides to grow the pool; it goes down
//!    only when a worker leaves, decided here under the lock ([`claim`](State::claim) finding
//!    it in excess or the pool closed, [`leave`](State::leave) for idle expiry or a cancelling
//!    shutdown).
//! 4. Wake-ups: a worker in `idle` is parked and will be woken by whoever pops its waker;
//!    `woken` lists the workers woken by a push that have not fetched yet, and a push wakes
//!    another only while the queue holds more than a batch per woken worker (one wake-up per
//!    batch, not per job; a woken worker that leaves jobs behind wakes the next). While a
//!    worker searches the intake (`searching`, at most one), pushes wake nobody.
//! 5. `leased` holds queue places a submit took from a capacity semaphore ahead of use, per
//!    semaphore ([`take_leased`](State::take_leased), [`add_leased`](State::add_leased)).
//!    They are refilled only by a submit that found none and pushes a job in the same critical
//!    section, so a submit that then waits on the semaphore either saw none left or waits
//!    behind a queued job whose pop gives a place back (see `admission.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use super::queue::{Entry, Intake, NonEmpty, Queue};
use crate::job::Cell;

pub(crate) struct State<Req, Resp, E> {
    /// Where submits put jobs (see [`Intake`]); workers move it into the sorted queue.
    intake: Intake<Req, Resp, E>,
    /// Invariant 2.
    queued: usize,
    closed: bool,
    next_id: u64,
    /// Jobs accepted into the queue (refusals are counted apart).
    accepted: u64,
    /// Invariant 3.
    workers: usize,
    min: usize,
    max: usize,
    /// Parked workers: (worker id, waker).
    idle: Vec<(usize, Waker)>,
    /// Invariant 4.
    woken: Vec<usize>,
    /// Invariant 4: workers searching an empty queue before they park (at most one).
    searching: usize,
    next_worker: usize,
    /// Invariant 5: leased queue places per capacity semaphore.
    leased: Vec<usize>,
}

/// What a worker's [`State::claim`] found.
pub(crate) enum Claimed {
    /// `n` jobs counted out for this worker: pop them with [`Claim::pop_into`].
    Batch(Claim),
    /// Nothing queued; the worker stays. `may_expire`: it is above the minimum, so its idle
    /// timer applies.
    Empty { may_expire: bool },
    /// The worker must stop (in excess after a resize, or the pool closed with nothing
    /// queued); it is no longer counted.
    Left,
}

/// Jobs a worker has counted out of `queued` (invariant 2), to pop under the `sorted` lock it
/// holds.
#[must_use]
pub(crate) struct Claim {
    n: usize,
    /// The next worker to wake, once the locks are released: jobs are left and nobody is on
    /// the way for them.
    pub(crate) wake: Option<Waker>,
}

impl Claim {
    /// Moves the intake's jobs (`moved`) into the sorted queue and pops the `n` counted out
    /// into `local`, counting them per level in `released`.
    pub(crate) fn pop_into<Req, Resp, E>(
        &self,
        sorted: &mut Queue<Req, Resp, E>,
        moved: &mut [Vec<Entry<Req, Resp, E>>],
        local: &mut VecDeque<Entry<Req, Resp, E>>,
        released: &mut [usize],
    ) {
        sorted.append(moved);
        debug_assert!(sorted.len() >= self.n);
        let before = local.len();
        sorted.pop_into(self.n, local, released);
        debug_assert_eq!(local.len() - before, self.n);
    }
}

impl<Req, Resp, E> State<Req, Resp, E> {
    pub(crate) fn new(levels: usize, batch: usize, min: usize, max: usize) -> Self {
        State {
            intake: Intake::new(levels, batch),
            queued: 0,
            closed: false,
            next_id: 1,
            accepted: 0,
            workers: 0,
            min,
            max,
            idle: Vec::new(),
            woken: Vec::new(),
            searching: 0,
            next_worker: 0,
            leased: vec![0; levels],
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Takes one of semaphore `sem`'s leased queue places, if one is left (invariant 5).
    pub(crate) fn take_leased(&mut self, sem: usize) -> bool {
        let left = &mut self.leased[sem];
        let some = *left > 0;
        *left -= usize::from(some);
        some
    }

    /// Keeps `n` places just taken from semaphore `sem` for the next submits (invariant 5).
    pub(crate) fn add_leased(&mut self, sem: usize, n: usize) {
        self.leased[sem] += n;
    }

    /// Accepts one job into the intake (invariants 1 and 2): its id.
    pub(crate) fn push(
        &mut self,
        req: Req,
        level: u8,
        cell: Option<Arc<Cell<Resp, E>>>,
        stamp: i64,
    ) -> u64 {
        debug_assert!(!self.closed);
        let id = self.next_id;
        self.next_id += 1;
        self.accepted += 1;
        self.intake.push(req, (id, level), cell, stamp);
        self.queued += 1;
        id
    }

    /// After one push: the parked worker to wake, if the queue needs one more (invariant 4),
    /// and whether to start a worker (then already counted, invariant 3).
    pub(crate) fn after_push(
        &mut self,
        batch: usize,
        scale_up_depth: usize,
    ) -> (Option<Waker>, bool) {
        let wake = if self.searching == 0 && self.woken.len() * batch < self.queued {
            self.idle.pop()
        } else {
            None
        };
        if let Some((w, _)) = &wake {
            self.woken.push(*w);
        }
        let grow = wake.is_none() && self.should_grow(scale_up_depth);
        (wake.map(|(_, w)| w), grow)
    }

    /// [`after_push`](Self::after_push) for a chunk of pushes: one worker per batch's worth
    /// of queued jobs, woken into `wake`.
    pub(crate) fn after_push_many(
        &mut self,
        batch: usize,
        scale_up_depth: usize,
        wake: &mut Vec<Waker>,
    ) -> bool {
        if self.closed {
            return false;
        }
        let before = wake.len();
        while self.searching == 0 && self.woken.len() * batch < self.queued {
            match self.idle.pop() {
                Some((w, waker)) => {
                    self.woken.push(w);
                    wake.push(waker);
                }
                None => break,
            }
        }
        wake.len() == before && self.should_grow(scale_up_depth)
    }

    /// A dynamic pool grows when a job is queued with no worker idle (at the configured depth).
    fn should_grow(&mut self, scale_up_depth: usize) -> bool {
        let grow = self.idle.is_empty() && self.workers < self.max && self.queued >= scale_up_depth;
        if grow {
            self.workers += 1;
        }
        grow
    }

    /// Takes the result cell out of a job still in the intake (its handle was dropped).
    pub(crate) fn detach(&mut self, id: u64, level: u8) -> Option<Arc<Cell<Resp, E>>> {
        self.intake.detach(id, level)
    }

    /// Takes job `id` out of the intake or `sorted` (whose lock the caller holds), if queued.
    pub(crate) fn remove(
        &mut self,
        sorted: &mut Queue<Req, Resp, E>,
        id: u64,
        level: Option<u8>,
    ) -> Option<Entry<Req, Resp, E>> {
        let e = self
            .intake
            .remove(id, level)
            .or_else(|| sorted.remove(id, level));
        if e.is_some() {
            self.queued -= 1;
        }
        e
    }

    /// Empties both queues (cancelling shutdown).
    pub(crate) fn drain_all(
        &mut self,
        sorted: &mut Queue<Req, Resp, E>,
    ) -> Vec<Entry<Req, Resp, E>> {
        self.queued = 0;
        sorted.drain_all().chain(self.intake.drain_all()).collect()
    }

    /// Closes the pool (invariant 1): the parked workers to wake (they will leave or drain).
    pub(crate) fn close(&mut self) -> Vec<Waker> {
        if self.closed {
            return Vec::new();
        }
        self.closed = true;
        self.idle.drain(..).map(|(_, w)| w).collect()
    }

    /// New worker bounds: how many workers to start (already counted) and whom to wake so
    /// that workers in excess leave.
    pub(crate) fn set_bounds(&mut self, min: usize, max: usize) -> (usize, Vec<Waker>) {
        self.min = min;
        self.max = max;
        let spawn = if self.closed {
            0
        } else {
            min.saturating_sub(self.workers)
        };
        self.workers += spawn;
        let wake = if self.workers > max {
            self.idle.drain(..).map(|(_, w)| w).collect()
        } else {
            Vec::new()
        };
        (spawn, wake)
    }

    /// An id for a worker being started.
    pub(crate) fn next_worker_id(&mut self) -> usize {
        self.next_worker += 1;
        self.next_worker
    }

    /// Queued jobs per level (with the sorted queue's), workers, jobs accepted.
    pub(crate) fn snapshot(&self, sorted: &Queue<Req, Resp, E>) -> (Vec<usize>, usize, u64) {
        let queued = sorted
            .level_lens()
            .zip(self.intake.level_lens())
            .map(|(a, b)| a + b)
            .collect();
        (queued, self.workers, self.accepted)
    }

    /// A worker with nothing to do starts searching: watching the intake's fill hint, if the queue is
    /// empty, the pool open, and no other worker searches (invariant 4): the hint to watch.
    /// [`end_search`](Self::end_search) must follow.
    pub(crate) fn begin_search(&mut self) -> Option<Arc<NonEmpty>> {
        if self.queued == 0 && self.searching == 0 && !self.closed && self.workers <= self.max {
            self.searching += 1;
            Some(Arc::clone(&self.intake.nonempty))
        } else {
            None
        }
    }

    pub(crate) fn end_search(&mut self) {
        self.searching -= 1;
    }

    /// Worker `worker` asks for up to `batch` jobs (never more than its fair share of what is
    /// queued: a parked worker counts, since a job held in this batch behind a slow one could
    /// have run there). The intake's jobs go to `moved`, to be sorted by [`Claim::pop_into`].
    pub(crate) fn claim(
        &mut self,
        worker: usize,
        batch: usize,
        moved: &mut [Vec<Entry<Req, Resp, E>>],
    ) -> Claimed {
        if let Some(i) = self.woken.iter().position(|w| *w == worker) {
            self.woken.swap_remove(i);
        }
        let excess = self.workers > self.max;
        if !excess && self.queued > 0 {
            self.unpark(worker);
            let share = self.queued.div_ceil(self.workers.max(1));
            let n = batch.min(share).clamp(1, self.queued);
            self.queued -= n;
            self.intake.take_into(moved);
            // Jobs left and nobody on the way for them: wake the next worker (pushes wake one
            // worker per batch, so the chain continues here).
            let next = if self.queued > 0 && self.woken.is_empty() && self.searching == 0 {
                self.idle.pop()
            } else {
                None
            };
            if let Some((w, _)) = &next {
                self.woken.push(*w);
            }
            return Claimed::Batch(Claim {
                n,
                wake: next.map(|(_, w)| w),
            });
        }
        if excess || self.closed {
            self.leave(worker);
            return Claimed::Left;
        }
        Claimed::Empty {
            may_expire: self.workers > self.min,
        }
    }

    /// Worker `worker` waits for a push (or a close, resize or cancel) to wake it.
    pub(crate) fn park(&mut self, worker: usize, waker: &Waker) {
        match self.idle.iter_mut().find(|(w, _)| *w == worker) {
            Some((_, old)) => {
                if !old.will_wake(waker) {
                    *old = waker.clone();
                }
            }
            None => self.idle.push((worker, waker.clone())),
        }
    }

    fn unpark(&mut self, worker: usize) {
        self.idle.retain(|(w, _)| *w != worker);
    }

    /// Worker `worker` stops: no longer counted, no longer parked (invariant 3).
    pub(crate) fn leave(&mut self, worker: usize) {
        self.workers -= 1;
        self.unpark(worker);
    }
}

#[cfg(test)]
impl<Req, Resp, E> State<Req, Resp, E> {
    fn queued(&self) -> usize {
        self.queued
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::task::Waker;

    use super::*;

    type S = State<u32, (), ()>;

    fn open(workers: usize) -> (S, Queue<u32, (), ()>) {
        let mut st = S::new(2, 4, workers, workers);
        assert_eq!(st.set_bounds(workers, workers).0, workers);
        (st, Queue::new(2, None))
    }

    /// Jobs in both queues, as invariant 2 counts them.
    fn held(st: &S, q: &Queue<u32, (), ()>) -> usize {
        st.snapshot(q).0.iter().sum()
    }

    fn claim(
        st: &mut S,
        q: &mut Queue<u32, (), ()>,
        worker: usize,
        batch: usize,
    ) -> Option<Vec<u32>> {
        let mut moved = vec![Vec::new(), Vec::new()];
        match st.claim(worker, batch, &mut moved) {
            Claimed::Batch(c) => {
                let mut local = VecDeque::new();
                c.pop_into(q, &mut moved, &mut local, &mut [0, 0]);
                Some(local.into_iter().map(|e| e.req).collect())
            }
            _ => None,
        }
    }

    #[test]
    fn queued_counts_both_queues_through_pushes_claims_and_removes() {
        let (mut st, mut q) = open(2);
        for n in 0..6 {
            st.push(n, (n % 2) as u8, None, 0);
        }
        assert_eq!(st.queued(), 6);
        // Fair share: 6 queued over 2 workers, so at most 3 even with a batch of 4.
        let got = claim(&mut st, &mut q, 1, 4).expect("a batch");
        assert_eq!(got.len(), 3);
        assert_eq!(st.queued(), 3);
        assert_eq!(held(&st, &q), 3, "the rest moved to the sorted queue");
        // Strict order: the batch was level 1's (ids 2, 4, 6); level 0's are still queued.
        assert_eq!(got, [1, 3, 5]);
        assert!(st.remove(&mut q, 5, None).is_some(), "id 5 is still queued");
        assert!(st.remove(&mut q, 5, None).is_none(), "and removed once");
        assert_eq!((st.queued(), held(&st, &q)), (2, 2));
        assert_eq!(st.drain_all(&mut q).len(), 2);
        assert_eq!((st.queued(), held(&st, &q)), (0, 0));
    }

    #[test]
    fn a_closed_pool_lets_its_idle_workers_leave_and_wakes_the_parked() {
        let (mut st, mut q) = open(2);
        st.park(1, Waker::noop());
        assert_eq!(st.close().len(), 1, "the parked worker is woken");
        assert!(st.close().is_empty(), "closing twice wakes nobody");
        let mut moved = vec![Vec::new(), Vec::new()];
        assert!(matches!(st.claim(2, 4, &mut moved), Claimed::Left));
        assert_eq!(st.snapshot(&q).1, 1, "one worker left");
        assert!(claim(&mut st, &mut q, 1, 4).is_none());
        assert_eq!(st.snapshot(&q).1, 0, "then the other");
    }

    #[test]
    fn a_push_wakes_one_parked_worker_per_batch_and_none_while_one_searches() {
        let (mut st, _q) = open(3);
        st.park(1, Waker::noop());
        st.park(2, Waker::noop());
        st.push(0, 0, None, 0);
        assert!(
            st.after_push(4, 1).0.is_some(),
            "the first job wakes a worker"
        );
        for n in 1..4 {
            st.push(n, 0, None, 0);
            assert!(
                st.after_push(4, 1).0.is_none(),
                "a batch's worth per woken worker"
            );
        }
        st.push(4, 0, None, 0);
        assert!(
            st.after_push(4, 1).0.is_some(),
            "past a batch, the next one"
        );
        let (mut st, _q) = open(3);
        st.park(1, Waker::noop());
        assert!(st.begin_search().is_some());
        assert!(st.begin_search().is_none(), "one searcher at a time");
        st.push(0, 0, None, 0);
        assert!(
            st.after_push(4, 1).0.is_none(),
            "the searching worker will see it"
        );
        st.end_search();
    }

    #[test]
    fn workers_in_excess_leave_after_a_resize_down() {
        let (mut st, q) = open(3);
        st.park(1, Waker::noop());
        let (spawn, wake) = st.set_bounds(1, 1);
        assert_eq!((spawn, wake.len()), (0, 1));
        let mut moved = vec![Vec::new(), Vec::new()];
        assert!(matches!(st.claim(1, 4, &mut moved), Claimed::Left));
        assert!(matches!(st.claim(2, 4, &mut moved), Claimed::Left));
        assert!(matches!(
            st.claim(3, 4, &mut moved),
            Claimed::Empty { may_expire: false }
        ));
        assert_eq!(st.snapshot(&q).1, 1);
    }
}

/// loom model of the queue accounting: a submitter, a worker and a canceller share the two
/// locks as the pool does (`sorted` before `state`). Every job ends exactly once (run or
/// cancelled) and `queued` always equals the jobs held once no worker is between claim and pop.
/// `RUSTFLAGS="--cfg loom" cargo test -p weft-pool --lib --release loom`
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::loom::{Mutex, lock};

    type S = State<u32, (), ()>;
    type Q = Queue<u32, (), ()>;

    #[test]
    fn loom_queued_jobs_are_counted_once_across_push_claim_and_cancel() {
        loom::model(|| {
            let mut st = S::new(1, 1, 1, 1);
            let _ = st.set_bounds(1, 1);
            let state = Arc::new(Mutex::new(st));
            let sorted = Arc::new(Mutex::new(Q::new(1, None)));

            let submitter = {
                let state = Arc::clone(&state);
                thread::spawn(move || {
                    for n in 1..=2 {
                        lock(&state).push(n, 0, None, 0);
                    }
                })
            };
            let canceller = {
                let (state, sorted) = (Arc::clone(&state), Arc::clone(&sorted));
                thread::spawn(move || {
                    let mut q = lock(&sorted);
                    lock(&state).remove(&mut q, 1, None).map(|e| e.req)
                })
            };
            let mut ran = Vec::new();
            for _ in 0..2 {
                let mut q = lock(&sorted);
                let mut st = lock(&state);
                let mut moved = vec![Vec::new()];
                if let Claimed::Batch(c) = st.claim(1, 1, &mut moved) {
                    drop(st);
                    let mut local = VecDeque::new();
                    c.pop_into(&mut q, &mut moved, &mut local, &mut [0]);
                    ran.extend(local.into_iter().map(|e| e.req));
                }
            }
            submitter.join().unwrap();
            let cancelled = canceller.join().unwrap();
            let q = lock(&sorted);
            let st = lock(&state);
            let left: usize = st.snapshot(&q).0.iter().sum();
            assert_eq!(st.queued(), left, "queued counts what both queues hold");
            assert_eq!(ran.len() + usize::from(cancelled.is_some()) + left, 2);
            if let Some(c) = cancelled {
                assert!(!ran.contains(&c), "a cancelled job never runs");
            }
        });
    }
}
