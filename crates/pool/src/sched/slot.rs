//! [`WorkerSlot`]: what a worker publishes to the rest of the pool (its counters, whether it
//! is busy, the ids of the batch it has claimed for cancel by id, and its task's waker).
//!
//! The worker writes its slot; cancel by id and stats read it. Cancel by id reaches a claimed
//! or running job through `claimed` and `cancel_flag`, whether the job has a result cell or
//! not.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use crate::lock;
use crate::stats::Counters;

/// What a worker publishes: its counters, whether it is busy, and the jobs it has claimed.
pub(crate) struct WorkerSlot {
    pub(crate) id: usize,
    pub(crate) counters: Counters,
    pub(crate) busy: AtomicBool,
    pub(crate) claimed_len: AtomicUsize,
    /// The ids of the current batch, for cancel by id (a job may have no cell to flag).
    claimed: Mutex<ClaimedIds>,
    /// Index in `claimed.ids` of the job running or about to run: those before it ended.
    next: AtomicUsize,
    /// Set when `claimed.cancel` is not empty: the worker checks it before and while running
    /// each job (one load of its own line), and looks at the list only when it is set.
    cancel_flag: AtomicBool,
    pub(crate) runner: RunnerWaker,
}

/// A worker's claimed batch, as seen by cancel by id.
#[derive(Default)]
struct ClaimedIds {
    ids: Vec<u64>,
    /// Ids of this batch cancelled by id, not acted on yet.
    cancel: Vec<u64>,
}

impl WorkerSlot {
    pub(crate) fn new(id: usize, levels: usize) -> Self {
        WorkerSlot {
            id,
            counters: Counters::new(levels),
            busy: AtomicBool::new(false),
            claimed_len: AtomicUsize::new(0),
            claimed: Mutex::new(ClaimedIds::default()),
            next: AtomicUsize::new(0),
            cancel_flag: AtomicBool::new(false),
            runner: RunnerWaker::default(),
        }
    }

    /// Worker: whether job `id` of its batch was cancelled by id (and forgets it).
    pub(crate) fn take_cancel(&self, id: u64) -> bool {
        if !self.cancel_flag.load(Ordering::Acquire) {
            return false;
        }
        let mut c = lock(&self.claimed);
        match c.cancel.iter().position(|x| *x == id) {
            Some(i) => {
                c.cancel.swap_remove(i);
                if c.cancel.is_empty() {
                    self.cancel_flag.store(false, Ordering::Relaxed);
                }
                true
            }
            None => false,
        }
    }

    /// Worker: a new batch (or none) replaces the claimed one.
    pub(crate) fn set_claimed(&self, ids: impl Iterator<Item = u64>) {
        let mut c = lock(&self.claimed);
        c.ids.clear();
        c.ids.extend(ids);
        c.cancel.clear();
        self.cancel_flag.store(false, Ordering::Relaxed);
        self.next.store(0, Ordering::Relaxed);
        self.claimed_len.store(c.ids.len(), Ordering::Relaxed);
    }

    /// Worker: the job at `next` has ended (cancel by id no longer finds it).
    pub(crate) fn advance(&self) {
        // Only the worker writes `next`; Release pairs with `cancel_claimed`'s Acquire.
        self.next
            .store(self.next.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// Cancel by id: flags `id` if it is in this batch and has not ended.
    pub(crate) fn cancel_claimed(&self, id: u64) -> bool {
        let mut c = lock(&self.claimed);
        let Some(pos) = c.ids.iter().position(|x| *x == id) else {
            return false;
        };
        if pos < self.next.load(Ordering::Acquire) || c.cancel.contains(&id) {
            return false;
        }
        c.cancel.push(id);
        self.cancel_flag.store(true, Ordering::Release);
        true
    }
}

/// Where a worker leaves its task's waker, so a running job's canceller can wake it.
#[derive(Default)]
pub(crate) struct RunnerWaker(Mutex<Option<Waker>>);

impl RunnerWaker {
    pub(crate) fn register(&self, waker: &Waker) {
        let mut w = lock(&self.0);
        if !w.as_ref().is_some_and(|old| old.will_wake(waker)) {
            *w = Some(waker.clone());
        }
    }

    pub(crate) fn wake(&self) {
        if let Some(w) = lock(&self.0).as_ref() {
            w.wake_by_ref();
        }
    }
}

/// The live workers' slots and the counters of the workers that left.
pub(crate) struct Registry {
    pub(crate) slots: Vec<Arc<WorkerSlot>>,
    pub(crate) retired: Counters,
}
