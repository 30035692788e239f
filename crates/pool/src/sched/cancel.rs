//! Cancellation: by handle (`JobHandle::cancel`, through [`CancelQueued`]), by id
//! (`Pool::cancel`), and everything at once (a cancelling shutdown or the pool's Context
//! ending). Whoever takes a job out of the queue gives its queue place back (invariant 2 of
//! the module) and whoever ends it counts its outcome (invariant 4).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Entry, Shared};
use crate::error::{JobError, Outcome};
use crate::job::{Cancel, CancelQueued};
use crate::lock;
use crate::stats::Counters;

/// Ends a job taken out of the queue (or a worker's batch) by a cancel: resolves its cell
/// `Cancelled` unless its handle's cancel got there first, and counts it in `counters` (or
/// with `count`, a worker's own counters).
pub(crate) fn cancel_entry<Req, Resp, E>(e: Entry<Req, Resp, E>, count: impl FnOnce()) {
    match e.cell {
        Some(cell) => {
            if cell.cancel() == Cancel::WasQueued {
                count();
                cell.resolve(Err(JobError::Cancelled));
            }
        }
        None => count(),
    }
}

impl<Req, Resp, E> Shared<Req, Resp, E> {
    fn count_cancelled(counters: &Counters) {
        counters.bump_shared(Outcome::Cancelled, 1);
    }

    /// Cancelling shutdown: close, cancel everything queued, stop everything running.
    pub(crate) fn cancel_everything(&self) {
        self.cancel_all.store(true, Ordering::SeqCst);
        self.close();
        let entries: Vec<_> = {
            let mut q = lock(&self.sorted);
            let mut intake = self.intake.lock_all();
            q.drain_all().chain(intake.drain_all()).collect()
        };
        for e in entries {
            cancel_entry(e, || Self::count_cancelled(&self.counters));
        }
        self.ctx_cancel.cancel_with("pool shut down");
        self.wake_runners();
    }

    /// Wakes every worker's task (cheap and rare: cancels of running jobs, shutdown).
    pub(crate) fn wake_runners(&self) {
        let slots: Vec<_> = lock(&self.registry).slots.iter().map(Arc::clone).collect();
        for s in slots {
            s.runner.wake();
        }
    }

    /// Cancel by id: queued (removed), claimed or running.
    pub(crate) fn cancel_id(&self, id: u64) -> bool {
        if let Some(e) = self.remove_queued(id, None) {
            self.release(e.level, 1);
            let Some(cell) = e.cell else {
                Self::count_cancelled(&self.counters);
                return true;
            };
            return match cell.cancel() {
                Cancel::WasQueued => {
                    Self::count_cancelled(&self.counters);
                    cell.resolve(Err(JobError::Cancelled));
                    true
                }
                Cancel::Flagged => true,
                Cancel::NoEffect => false,
            };
        }
        // Claimed or running: the worker that holds it acts on the flag (the job may have no
        // cell to flag, its handle being gone).
        let slot = lock(&self.registry)
            .slots
            .iter()
            .find(|s| s.cancel_claimed(id))
            .map(Arc::clone);
        match slot {
            Some(s) => {
                s.runner.wake();
                true
            }
            None => false,
        }
    }

    /// Takes the job `id` out of the intake or the sorted queue, if it is still queued.
    fn remove_queued(&self, id: u64, level: Option<u8>) -> Option<Entry<Req, Resp, E>> {
        // With `sorted` held no claim runs, so jobs only enter the shards meanwhile: each is
        // searched under its own lock, then the sorted queue.
        let mut q = lock(&self.sorted);
        let e = self.intake.each().find_map(|i| i.lock().remove(id, level));
        e.or_else(|| q.remove(id, level))
    }
}

impl<Req, Resp, E> CancelQueued for Shared<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    fn cancelled_while_queued(&self, id: u64, level: u8) {
        // Whoever takes the entry out of the queue gives its place back (invariant 2); if a
        // worker already claimed it, the worker did.
        if self.remove_queued(id, Some(level)).is_some() {
            self.release(level, 1);
        }
        Self::count_cancelled(&self.counters);
    }

    fn wake_workers(&self) {
        self.wake_runners();
    }
}
