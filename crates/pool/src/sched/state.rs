//! [`State`]: what the pool's `state` lock guards (the workers' bookkeeping: counts, parked,
//! woken and searching workers), the only code that changes it, and the [`Hints`] a submit
//! reads without the lock to learn whether it must take it.
//!
//! Submits no longer take this lock on their way in: they push into their thread's intake
//! shard under its own lock (`intake.rs`) and come here only when [`Hints::push_needs_state`]
//! says a worker is parked or the pool may grow. Workers claim under `sorted`, then this lock
//! (skipped when [`Hints::claim_alone`] allows), then every shard's lock (lock order:
//! `sorted`, `state`, the shards in index order).
//!
//! # Invariants
//!
//! 1. Jobs queued are the shards' and the sorted queue's, counted from their lengths by
//!    whoever holds all their locks ([`State::claim`] gets the count from its caller); a
//!    worker counts out `n` of them in a claim and pops exactly those under the `sorted` lock
//!    it holds throughout ([`Claim::pop_into`]).
//! 2. `workers` counts live workers (and ones being started). It goes up only in
//!    [`set_bounds`](State::set_bounds) and when a push decides to grow the pool; it goes down
//!    only when a worker leaves, decided here under the lock ([`claim`](State::claim) finding
//!    it in excess or the pool closed, [`leave`](State::leave) for idle expiry or a cancelling
//!    shutdown).
//! 3. Wake-ups: a worker in `idle` is parked and will be woken by whoever pops its waker;
//!    `woken` lists the workers woken by a push that have not fetched yet, and a push wakes
//!    another only while its shard holds more than a batch per woken worker (one wake-up per
//!    batch, not per job; a woken worker that leaves jobs behind wakes the next). While a
//!    worker searches the intake (`searching`, at most one), pushes wake nobody.
//! 4. [`Hints`]: `parked` is `idle.len()`, `may_grow` is `workers < max`, `workers` and
//!    `excess` (`workers > max`) are what they say, stored after every change of those, under
//!    this lock. A worker parks, or leaves for idleness, only while it also holds every
//!    shard's lock and has seen them empty (invariant 4 of `intake.rs`), so a submit that
//!    pushed under its shard's lock and then reads `parked` as 0 knows no worker parked
//!    without seeing its job (loom model `loom_a_push_never_misses_a_parking_worker`).
//!    `may_grow` is a hint only: a push that misses a worker leaving concurrently leaves the
//!    growth to the next push; a dynamic pool whose workers all left for idleness saw the
//!    shards empty under their locks as they left, so the next push sees `may_grow` and starts
//!    one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;

use super::queue::{Entry, Levels, Queue};
use crate::loom::{AtomicBool, AtomicUsize};

/// What a submit reads after its push, without the `state` lock (invariant 4), on cache
/// lines of their own: written only when a worker parks or is woken, or the worker count
/// changes, so not once per job.
#[repr(align(128))]
pub(crate) struct Hints {
    parked: AtomicUsize,
    may_grow: AtomicBool,
    /// `workers`, for a claim's fair share.
    workers: AtomicUsize,
    /// `workers > max`: workers must leave.
    excess: AtomicBool,
}

impl Hints {
    /// Whether a push must take the `state` lock: to wake a parked worker, or to start one.
    pub(crate) fn push_needs_state(&self) -> bool {
        // Relaxed: a parking worker's store happens before the intake lock's release that
        // the submit's push acquired (invariant 4); the loads order nothing else.
        self.parked.load(Ordering::Relaxed) > 0 || self.may_grow.load(Ordering::Relaxed)
    }

    /// For a worker that has not parked since its last claim (so it is neither in `idle` nor
    /// in `woken`): the worker count to share a claim over, if the claim may skip the `state`
    /// lock (nobody parked to chain-wake, no worker in excess). Read under the `sorted` lock,
    /// which every claim and park holds: so no worker parks or claims meanwhile, and a hint
    /// missed (a resize under way) is seen by the next claim.
    pub(crate) fn claim_alone(&self) -> Option<usize> {
        (self.parked.load(Ordering::Relaxed) == 0 && !self.excess.load(Ordering::Relaxed))
            .then(|| self.workers.load(Ordering::Relaxed).max(1))
    }
}

pub(crate) struct State {
    /// Invariant 2.
    workers: usize,
    min: usize,
    max: usize,
    /// Parked workers: (worker id, waker).
    idle: Vec<(usize, Waker)>,
    /// Invariant 3.
    woken: Vec<usize>,
    /// Invariant 3: workers searching an empty queue before they park (at most one).
    searching: usize,
    next_worker: usize,
    /// Invariant 4.
    hints: Arc<Hints>,
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

/// Jobs a worker has counted out (invariant 1), to pop under the `sorted` lock it holds.
#[must_use]
pub(crate) struct Claim {
    n: usize,
    /// The next worker to wake, once the locks are released: jobs are left and nobody is on
    /// the way for them.
    pub(crate) wake: Option<Waker>,
}

impl Claim {
    /// Up to `batch` of `queued` jobs (at least one), never more than a fair share over
    /// `workers`, with nobody to wake.
    pub(crate) fn new(batch: usize, queued: usize, workers: usize) -> Self {
        let share = queued.div_ceil(workers.max(1));
        Claim {
            n: batch.min(share).clamp(1, queued),
            wake: None,
        }
    }

    /// Moves the intake shards' jobs (`moved[shard][level]`) into the sorted queue and pops
    /// the `n` counted out into `local`, counting them per level in `released`.
    pub(crate) fn pop_into<Req, Resp, E>(
        &self,
        sorted: &mut Queue<Req, Resp, E>,
        moved: &mut [Levels<Req, Resp, E>],
        local: &mut VecDeque<Entry<Req, Resp, E>>,
        released: &mut [usize],
    ) {
        sorted.append_shards(moved);
        debug_assert!(sorted.len() >= self.n);
        let before = local.len();
        sorted.pop_into(self.n, local, released);
        debug_assert_eq!(local.len() - before, self.n);
    }
}

impl State {
    pub(crate) fn new(min: usize, max: usize) -> Self {
        State {
            workers: 0,
            min,
            max,
            idle: Vec::new(),
            woken: Vec::new(),
            searching: 0,
            next_worker: 0,
            hints: Arc::new(Hints {
                parked: AtomicUsize::new(0),
                may_grow: AtomicBool::new(false),
                workers: AtomicUsize::new(0),
                excess: AtomicBool::new(false),
            }),
        }
    }

    /// The hints a submit reads (invariant 4).
    pub(crate) fn hints(&self) -> Arc<Hints> {
        Arc::clone(&self.hints)
    }

    /// Stores the hints after `idle`, `workers` or `max` may have changed (invariant 4); only
    /// what changed, so that a claim does not write the line every submit reads.
    fn note(&self) {
        let parked = self.idle.len();
        if self.hints.parked.load(Ordering::Relaxed) != parked {
            self.hints.parked.store(parked, Ordering::Relaxed);
        }
        let may_grow = self.workers < self.max;
        if self.hints.may_grow.load(Ordering::Relaxed) != may_grow {
            self.hints.may_grow.store(may_grow, Ordering::Relaxed);
        }
        if self.hints.workers.load(Ordering::Relaxed) != self.workers {
            self.hints.workers.store(self.workers, Ordering::Relaxed);
        }
        let excess = self.workers > self.max;
        if self.hints.excess.load(Ordering::Relaxed) != excess {
            self.hints.excess.store(excess, Ordering::Relaxed);
        }
    }

    /// After a push that left `queued` jobs in the intake: the parked worker to wake, if the
    /// queue needs one more (invariant 3), and whether to start a worker (then already
    /// counted, invariant 2).
    pub(crate) fn after_push(
        &mut self,
        queued: usize,
        batch: usize,
        scale_up_depth: usize,
    ) -> (Option<Waker>, bool) {
        let wake = if self.searching == 0 && self.woken.len() * batch < queued {
            self.idle.pop()
        } else {
            None
        };
        if let Some((w, _)) = &wake {
            self.woken.push(*w);
        }
        let grow = wake.is_none() && self.should_grow(queued, scale_up_depth);
        self.note();
        (wake.map(|(_, w)| w), grow)
    }

    /// [`after_push`](Self::after_push) for a chunk of pushes: one worker per batch's worth
    /// of queued jobs, woken into `wake`.
    pub(crate) fn after_push_many(
        &mut self,
        queued: usize,
        batch: usize,
        scale_up_depth: usize,
        wake: &mut Vec<Waker>,
    ) -> bool {
        let before = wake.len();
        while self.searching == 0 && self.woken.len() * batch < queued {
            match self.idle.pop() {
                Some((w, waker)) => {
                    self.woken.push(w);
                    wake.push(waker);
                }
                None => break,
            }
        }
        let grow = wake.len() == before && self.should_grow(queued, scale_up_depth);
        self.note();
        grow
    }

    /// A dynamic pool grows when a job is queued with no worker idle (at the configured depth).
    fn should_grow(&mut self, queued: usize, scale_up_depth: usize) -> bool {
        let grow = self.idle.is_empty() && self.workers < self.max && queued >= scale_up_depth;
        if grow {
            self.workers += 1;
        }
        grow
    }

    /// The pool closed (its intake first): the parked workers to wake (they will leave or
    /// drain).
    pub(crate) fn wake_all(&mut self) -> Vec<Waker> {
        let wake = self.idle.drain(..).map(|(_, w)| w).collect();
        self.note();
        wake
    }

    /// New worker bounds: how many workers to start (already counted; none once `closed`)
    /// and whom to wake so that workers in excess leave.
    pub(crate) fn set_bounds(
        &mut self,
        min: usize,
        max: usize,
        closed: bool,
    ) -> (usize, Vec<Waker>) {
        self.min = min;
        self.max = max;
        let spawn = if closed {
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
        self.note();
        (spawn, wake)
    }

    /// An id for a worker being started.
    pub(crate) fn next_worker_id(&mut self) -> usize {
        self.next_worker += 1;
        self.next_worker
    }

    /// Live workers (and ones being started).
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// A worker with nothing to do (`queued` is 0) starts searching (watching the intake's
    /// fill hints), if the pool is open and no other worker searches (invariant 3).
    /// [`end_search`](Self::end_search) must follow a `true`.
    pub(crate) fn begin_search(&mut self, queued: usize, closed: bool) -> bool {
        let search = queued == 0 && self.searching == 0 && !closed && self.workers <= self.max;
        self.searching += usize::from(search);
        search
    }

    pub(crate) fn end_search(&mut self) {
        self.searching -= 1;
    }

    /// Worker `worker` asks for up to `batch` of the `queued` jobs (the intake shards' and the
    /// sorted queue's, whose locks the caller holds; `closed`: the shards are), never more
    /// than its fair share (a parked worker counts, since a job held in this batch behind a
    /// slow one could have run there). On [`Claimed::Batch`] the caller takes the shards' jobs
    /// and pops with [`Claim::pop_into`]; on [`Claimed::Empty`] it parks the worker (or lets it
    /// leave) before it releases the shards' locks (invariant 4).
    pub(crate) fn claim(
        &mut self,
        worker: usize,
        batch: usize,
        queued: usize,
        closed: bool,
    ) -> Claimed {
        if let Some(i) = self.woken.iter().position(|w| *w == worker) {
            self.woken.swap_remove(i);
        }
        let excess = self.workers > self.max;
        if !excess && queued > 0 {
            self.unpark(worker);
            let mut claim = Claim::new(batch, queued, self.workers);
            // Jobs left and nobody on the way for them: wake the next worker (pushes wake one
            // worker per batch, so the chain continues here).
            let next = if queued > claim.n && self.woken.is_empty() && self.searching == 0 {
                self.idle.pop()
            } else {
                None
            };
            if let Some((w, _)) = &next {
                self.woken.push(*w);
            }
            self.note();
            claim.wake = next.map(|(_, w)| w);
            return Claimed::Batch(claim);
        }
        if excess || closed {
            self.leave(worker);
            return Claimed::Left;
        }
        Claimed::Empty {
            may_expire: self.workers > self.min,
        }
    }

    /// Worker `worker` waits for a push (or a close, resize or cancel) to wake it. The caller
    /// holds every intake shard's lock and saw them empty (invariant 4).
    pub(crate) fn park(&mut self, worker: usize, waker: &Waker) {
        match self.idle.iter_mut().find(|(w, _)| *w == worker) {
            Some((_, old)) => {
                if !old.will_wake(waker) {
                    *old = waker.clone();
                }
            }
            None => self.idle.push((worker, waker.clone())),
        }
        self.note();
    }

    fn unpark(&mut self, worker: usize) {
        self.idle.retain(|(w, _)| *w != worker);
    }

    /// Worker `worker` stops: no longer counted, no longer parked (invariant 2).
    pub(crate) fn leave(&mut self, worker: usize) {
        self.workers -= 1;
        self.unpark(worker);
        self.note();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::sched::intake::Intake;

    type I = Intake<u32, (), ()>;
    type Q = Queue<u32, (), ()>;

    fn open(workers: usize) -> (State, I, Q) {
        let mut st = State::new(workers, workers);
        assert_eq!(st.set_bounds(workers, workers, false).0, workers);
        (st, I::new(2, 4), Q::new(2, None))
    }

    /// Jobs in both queues.
    fn held(i: &I, q: &Q) -> usize {
        i.len() + q.len()
    }

    fn claim(
        st: &mut State,
        i: &mut I,
        q: &mut Q,
        worker: usize,
        batch: usize,
    ) -> Option<Vec<u32>> {
        match st.claim(worker, batch, i.len() + q.len(), i.is_closed()) {
            Claimed::Batch(c) => {
                let mut moved = vec![vec![Vec::new(), Vec::new()]];
                i.take_into(&mut moved[0]);
                let mut local = VecDeque::new();
                c.pop_into(q, &mut moved, &mut local, &mut [0, 0]);
                Some(local.into_iter().map(|e| e.req).collect())
            }
            _ => None,
        }
    }

    #[test]
    fn a_claim_takes_its_fair_share_of_both_queues_in_priority_order() {
        let (mut st, mut i, mut q) = open(2);
        for n in 0..6 {
            i.push(n, (n % 2) as u8, None, 0);
        }
        // Fair share: 6 queued over 2 workers, so at most 3 even with a batch of 4.
        let got = claim(&mut st, &mut i, &mut q, 1, 4).expect("a batch");
        assert_eq!(got.len(), 3);
        assert_eq!(held(&i, &q), 3, "the rest moved to the sorted queue");
        // Strict order: the batch was level 1's (ids 2, 4, 6); level 0's are still queued.
        assert_eq!(got, [1, 3, 5]);
        i.push(6, 1, None, 0);
        // 4 queued (1 in the intake, 3 sorted) over 2 workers: 2, the new high one first.
        let got = claim(&mut st, &mut i, &mut q, 2, 4).expect("a batch");
        assert_eq!(got, [6, 0]);
        assert_eq!(held(&i, &q), 2);
    }

    #[test]
    fn a_closed_pool_lets_its_idle_workers_leave_and_wakes_the_parked() {
        let (mut st, mut i, mut q) = open(2);
        st.park(1, Waker::noop());
        assert!(
            st.hints().push_needs_state(),
            "a parked worker shows in the hints"
        );
        assert!(i.close());
        assert_eq!(st.wake_all().len(), 1, "the parked worker is woken");
        assert!(st.wake_all().is_empty(), "closing twice wakes nobody");
        assert!(matches!(st.claim(2, 4, 0, i.is_closed()), Claimed::Left));
        assert_eq!(st.workers(), 1, "one worker left");
        assert!(claim(&mut st, &mut i, &mut q, 1, 4).is_none());
        assert_eq!(st.workers(), 0, "then the other");
    }

    #[test]
    fn a_push_wakes_one_parked_worker_per_batch_and_none_while_one_searches() {
        let (mut st, _i, _q) = open(3);
        assert!(
            !st.hints().push_needs_state(),
            "nobody parked: pushes skip the lock"
        );
        st.park(1, Waker::noop());
        st.park(2, Waker::noop());
        assert!(
            st.after_push(1, 4, 1).0.is_some(),
            "the first job wakes a worker"
        );
        for n in 2..5 {
            assert!(
                st.after_push(n, 4, 1).0.is_none(),
                "a batch's worth per woken worker"
            );
        }
        assert!(
            st.after_push(5, 4, 1).0.is_some(),
            "past a batch, the next one"
        );
        assert!(!st.hints().push_needs_state(), "nobody parked any more");
        let (mut st, _i, _q) = open(3);
        st.park(1, Waker::noop());
        assert!(st.begin_search(0, false));
        assert!(!st.begin_search(0, false), "one searcher at a time");
        assert!(
            st.after_push(1, 4, 1).0.is_none(),
            "the searching worker will see it"
        );
        st.end_search();
        assert!(!st.begin_search(1, false), "no search with jobs queued");
        assert!(!st.begin_search(0, true), "nor once closed");
    }

    #[test]
    fn workers_in_excess_leave_after_a_resize_down() {
        let (mut st, _i, _q) = open(3);
        st.park(1, Waker::noop());
        let (spawn, wake) = st.set_bounds(1, 1, false);
        assert_eq!((spawn, wake.len()), (0, 1));
        assert!(matches!(st.claim(1, 4, 0, false), Claimed::Left));
        assert!(matches!(st.claim(2, 4, 0, false), Claimed::Left));
        assert!(matches!(
            st.claim(3, 4, 0, false),
            Claimed::Empty { may_expire: false }
        ));
        assert_eq!(st.workers(), 1);
    }

    #[test]
    fn a_claim_skips_the_state_lock_only_with_nobody_parked_and_nobody_in_excess() {
        let (mut st, _i, _q) = open(2);
        assert_eq!(
            st.hints().claim_alone(),
            Some(2),
            "shared over both workers"
        );
        st.park(1, Waker::noop());
        assert_eq!(
            st.hints().claim_alone(),
            None,
            "a parked worker may need waking"
        );
        let _ = st.wake_all();
        assert_eq!(st.hints().claim_alone(), Some(2));
        let _ = st.set_bounds(1, 1, false);
        assert_eq!(st.hints().claim_alone(), None, "a worker must leave");
        st.leave(2);
        assert_eq!(st.hints().claim_alone(), Some(1));
    }

    #[test]
    fn a_dynamic_pool_below_its_maximum_sends_pushes_to_the_state_lock() {
        let mut st = State::new(0, 2);
        assert_eq!(st.set_bounds(0, 2, false).0, 0);
        assert!(st.hints().push_needs_state(), "room to grow");
        assert!(st.after_push(1, 4, 1).1, "a job with no worker starts one");
        assert!(st.after_push(2, 4, 1).1);
        assert!(!st.after_push(3, 4, 1).1, "at most max");
        assert!(!st.hints().push_needs_state(), "at max, nobody parked");
        st.leave(1);
        assert!(st.hints().push_needs_state(), "a worker left: room again");
    }
}

/// loom models of the scheduler core's locks and hints, as the pool uses them (lock order
/// `sorted`, `state`, `intake`; a submit takes only `intake`, then `state` if the hints say).
/// `RUSTFLAGS="--cfg loom" cargo test -p weft-pool --lib --release loom`
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::loom::{Mutex, lock};
    use crate::sched::intake::Intake;

    type I = Intake<u32, (), ()>;
    type Q = Queue<u32, (), ()>;

    /// A submit as `admission.rs` makes it: push under the intake lock, then the hints.
    fn submit(intake: &Mutex<I>, state: &Mutex<State>, hints: &Hints, n: u32) -> bool {
        let queued = {
            let mut i = lock(intake);
            i.push(n, 0, None, 0);
            i.len()
        };
        if hints.push_needs_state() {
            return lock(state).after_push(queued, 1, 1).0.is_some();
        }
        false
    }

    /// Every job ends exactly once (run or cancelled), and the two queues hold the rest,
    /// across a submitter, a worker (claiming with and without the `state` lock) and a
    /// canceller.
    #[test]
    fn loom_queued_jobs_are_counted_once_across_push_claim_and_cancel() {
        loom::model(|| {
            let mut st = State::new(1, 1);
            let _ = st.set_bounds(1, 1, false);
            let hints = st.hints();
            let state = Arc::new(Mutex::new(st));
            let intake = Arc::new(Mutex::new(I::new(1, 1)));
            let sorted = Arc::new(Mutex::new(Q::new(1, None)));

            let submitter = {
                let (state, intake, hints) = (state.clone(), intake.clone(), hints.clone());
                thread::spawn(move || {
                    for n in 1..=2 {
                        submit(&intake, &state, &hints, n);
                    }
                })
            };
            let canceller = {
                let (intake, sorted) = (intake.clone(), sorted.clone());
                thread::spawn(move || {
                    let mut q = lock(&sorted);
                    let mut i = lock(&intake);
                    i.remove(1, None)
                        .or_else(|| q.remove(1, None))
                        .map(|e| e.req)
                })
            };
            let mut ran = Vec::new();
            for _ in 0..2 {
                let mut q = lock(&sorted);
                let mut moved = vec![vec![Vec::new()]];
                let mut local = VecDeque::new();
                // The claim without the `state` lock (`claim.rs`), as the worker has not parked.
                if let Some(workers) = hints.claim_alone() {
                    let mut i = lock(&intake);
                    let queued = i.len() + q.len();
                    if queued > 0 {
                        i.take_into(&mut moved[0]);
                        drop(i);
                        let c = Claim::new(1, queued, workers);
                        c.pop_into(&mut q, &mut moved, &mut local, &mut [0]);
                        ran.extend(local.into_iter().map(|e| e.req));
                        continue;
                    }
                }
                let mut st = lock(&state);
                let mut i = lock(&intake);
                let queued = i.len() + q.len();
                if let Claimed::Batch(c) = st.claim(1, 1, queued, i.is_closed()) {
                    i.take_into(&mut moved[0]);
                    drop(i);
                    drop(st);
                    c.pop_into(&mut q, &mut moved, &mut local, &mut [0]);
                    ran.extend(local.into_iter().map(|e| e.req));
                }
            }
            submitter.join().unwrap();
            let cancelled = canceller.join().unwrap();
            let q = lock(&sorted);
            let i = lock(&intake);
            let left = q.len() + i.len();
            assert_eq!(ran.len() + usize::from(cancelled.is_some()) + left, 2);
            if let Some(c) = cancelled {
                assert!(!ran.contains(&c), "a cancelled job never runs");
            }
        });
    }

    /// A worker that finds nothing parks under the intake lock; a submit that pushes and then
    /// reads the hints either was seen by the worker's claim or sees it parked and wakes it:
    /// never a job queued with its only worker parked and nobody to wake it.
    #[test]
    fn loom_a_push_never_misses_a_parking_worker() {
        loom::model(|| {
            let mut st = State::new(1, 1);
            let _ = st.set_bounds(1, 1, false);
            let hints = st.hints();
            let state = Arc::new(Mutex::new(st));
            let intake = Arc::new(Mutex::new(I::new(1, 1)));
            let woke = Arc::new(AtomicBool::new(false));

            let submitter = {
                let (state, intake, hints, woke) =
                    (state.clone(), intake.clone(), hints.clone(), woke.clone());
                thread::spawn(move || {
                    if submit(&intake, &state, &hints, 1) {
                        woke.store(true, Ordering::SeqCst);
                    }
                })
            };
            // The worker: one fetch (no sorted queue in this model: nothing is sorted).
            let took = {
                let mut st = lock(&state);
                let i = lock(&intake);
                match st.claim(1, 1, i.len(), i.is_closed()) {
                    Claimed::Batch(_) => true,
                    Claimed::Empty { .. } => {
                        st.park(1, Waker::noop());
                        false
                    }
                    Claimed::Left => unreachable!("open, not in excess"),
                }
            };
            submitter.join().unwrap();
            assert!(
                took || woke.load(Ordering::SeqCst),
                "the job was claimed or its worker woken"
            );
        });
    }
}
