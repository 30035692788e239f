//! [`Cell`]: the per-job state shared by a job's handle, its worker and its cancellers: where
//! the outcome goes, and the cancel flag.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;

use crate::error::JobError;
use crate::loom::{AtomicBool, AtomicU8, SlotLock, lock_slot};

/// Where a job is in its life, as its cell records it.
///
/// ```text
/// Queued ──start──> Running ──cancel──> CancelRequested
///   │                  │                      │
///   └──cancel──> Done <┴──────resolve─────────┘
/// ```
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CellState {
    /// In the queue or claimed by a worker, not started.
    Queued = 0,
    /// Its worker runs it.
    Running = 1,
    /// Running, and a cancel asked its worker to stop it.
    CancelRequested = 2,
    /// Ended: its outcome is stored (or was not, its handle being gone).
    Done = 3,
}

impl CellState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => CellState::Queued,
            1 => CellState::Running,
            2 => CellState::CancelRequested,
            _ => CellState::Done,
        }
    }
}

/// The per-job shared state: where the outcome goes, and the cancel flag.
///
/// # Invariants
///
/// 1. `state` moves `Queued -> Running -> (CancelRequested ->) Done` or `Queued -> Done`
///    (cancelled while queued or claimed), only forward, by compare-and-swap (the worker's
///    final store to `Done` is from a state only it leaves).
/// 2. Whoever moves it to `Done` from `Queued` (a canceller, or a worker ending a job a cancel
///    by id reached) or from `Running`/`CancelRequested` (the worker) stores the result exactly
///    once: so each job has exactly one outcome.
/// 3. A canceller that moves `Running -> CancelRequested` then wakes the workers (they check
///    the flag at every poll of the job).
pub(crate) struct Cell<Resp, E> {
    state: AtomicU8,
    /// Set by the handle's first poll: a cell never polled holds no waker, so it can be
    /// reused as it is (see `sched::stash`).
    polled: AtomicBool,
    slot: SlotLock<Slot<Resp, E>>,
    /// What the handle's drop does with a cell whose job is still queued (see
    /// `sched::stash`), and the pool's identity for it.
    pub(crate) stash: Option<(StashFn<Resp, E>, u64)>,
}

/// Takes a dropped handle's cell: `(cell, job id, level)`.
pub(crate) type StashFn<Resp, E> = fn(Arc<Cell<Resp, E>>, u64, u8);

struct Slot<Resp, E> {
    result: Option<Result<Resp, JobError<E>>>,
    waker: Option<Waker>,
}

/// What [`Cell::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// The job was queued (or claimed, not started) and is now `Done`: the caller must take it
    /// out of the queue if it is there, resolve it `Cancelled` and count it.
    WasQueued,
    /// The job was running and is now flagged: the caller must wake the workers.
    Flagged,
    /// Too late (ended) or already requested: nothing to do.
    NoEffect,
}

impl<Resp, E> Cell<Resp, E> {
    pub(crate) fn new(stash: Option<(StashFn<Resp, E>, u64)>) -> Self {
        Cell {
            state: AtomicU8::new(CellState::Queued as u8),
            polled: AtomicBool::new(false),
            stash,
            slot: SlotLock::new(Slot {
                result: None,
                waker: None,
            }),
        }
    }

    /// A cell that already holds its outcome.
    pub(crate) fn resolved(result: Result<Resp, JobError<E>>) -> Self {
        let cell = Cell::new(None);
        cell.state.store(CellState::Done as u8, Ordering::Relaxed);
        lock_slot(&cell.slot).result = Some(result);
        cell
    }

    fn load(&self, order: Ordering) -> CellState {
        CellState::from_u8(self.state.load(order))
    }

    fn advance(&self, from: CellState, to: CellState) -> Result<(), CellState> {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(CellState::from_u8)
    }

    /// Worker: claims the job to run it. False if it was cancelled while queued.
    pub(crate) fn start(&self) -> bool {
        self.advance(CellState::Queued, CellState::Running).is_ok()
    }

    /// Worker: ends a job that a cancel by id reached after it was claimed, like
    /// [`cancel`](Self::cancel) of a queued job. False if it had already started or ended.
    pub(crate) fn cancel_claimed(&self) -> bool {
        self.advance(CellState::Queued, CellState::Done).is_ok()
    }

    /// Worker: whether a cancel was requested while running (checked at every poll).
    pub(crate) fn cancel_requested(&self) -> bool {
        // Relaxed: the flag carries no data; the worker acts on it alone.
        self.load(Ordering::Relaxed) == CellState::CancelRequested
    }

    /// Canceller: cancels a queued job (the caller must then resolve it and account for it), or
    /// flags a running one (the caller must then wake the workers).
    pub(crate) fn cancel(&self) -> Cancel {
        match self.advance(CellState::Queued, CellState::Done) {
            Ok(()) => Cancel::WasQueued,
            Err(CellState::Running) => {
                match self.advance(CellState::Running, CellState::CancelRequested) {
                    Ok(()) => Cancel::Flagged,
                    Err(_) => Cancel::NoEffect,
                }
            }
            Err(_) => Cancel::NoEffect,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.load(Ordering::Acquire) == CellState::Done
    }

    /// Whether a cell taken back from a dropped handle and its queue entry can serve another
    /// job as it is: queued (so no outcome stored) and never polled (so no waker).
    pub(crate) fn reusable(&self) -> bool {
        !self.polled.load(Ordering::Relaxed) && self.load(Ordering::Relaxed) == CellState::Queued
    }

    /// Whether the job may still be in the queue (not started, not cancelled). Relaxed: a
    /// hint only; whoever acts on it checks again under the queue lock.
    pub(crate) fn maybe_queued(&self) -> bool {
        self.load(Ordering::Relaxed) == CellState::Queued
    }

    /// Ends the job without storing its outcome: for a job nobody can ask the outcome of (its
    /// handle was dropped). Called instead of [`resolve`](Self::resolve), once per job.
    pub(crate) fn resolve_detached(&self) {
        self.finish();
    }

    /// The worker's (or the canceller's) final move to `Done`. A plain store: every other
    /// writer of `state` is a compare-and-swap, and an RMW reads the latest value in the
    /// modification order, so a canceller's `Running -> CancelRequested` lands before this
    /// store or fails. loom 0.7 does not apply that rule to plain stores (tokio-rs/loom#254,
    /// fixed by the open loom#391) and reports executions where the canceller's swap lands
    /// after it; under `cfg(loom)` the store is a `swap` (an RMW, the same order in the C++
    /// model), so the models check the protocol and not that loom bug.
    fn finish(&self) {
        #[cfg(not(loom))]
        self.state.store(CellState::Done as u8, Ordering::Release);
        #[cfg(loom)]
        self.state.swap(CellState::Done as u8, Ordering::AcqRel);
    }

    /// Stores the outcome and wakes the handle. Called once per job (invariant 2).
    pub(crate) fn resolve(&self, result: Result<Resp, JobError<E>>) {
        self.finish();
        let waker = {
            let mut slot = lock_slot(&self.slot);
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Handle: takes the outcome, or registers to be woken.
    pub(crate) fn poll_result(&self, waker: &Waker) -> Option<Result<Resp, JobError<E>>> {
        if !self.polled.load(Ordering::Relaxed) {
            self.polled.store(true, Ordering::Relaxed);
        }
        let mut slot = lock_slot(&self.slot);
        if let Some(r) = slot.result.take() {
            return Some(r);
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            slot.waker = Some(waker.clone());
        }
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn cell() -> Cell<u32, &'static str> {
        Cell::new(None)
    }

    #[test]
    fn the_state_is_one_byte_with_the_documented_order() {
        assert_eq!(std::mem::size_of::<CellState>(), 1);
        for s in [
            CellState::Queued,
            CellState::Running,
            CellState::CancelRequested,
            CellState::Done,
        ] {
            assert_eq!(CellState::from_u8(s as u8), s);
        }
    }

    #[test]
    fn a_cancel_while_queued_ends_the_job_before_its_worker_starts_it() {
        let c = cell();
        assert_eq!(c.cancel(), Cancel::WasQueued);
        assert!(c.is_done());
        assert!(!c.start(), "the worker must not run a cancelled job");
        assert!(!c.cancel_claimed(), "nor end it a second time");
        assert_eq!(c.cancel(), Cancel::NoEffect, "a second cancel does nothing");
    }

    #[test]
    fn a_cancel_while_running_only_asks_the_worker_to_stop() {
        let c = cell();
        assert!(c.start());
        assert!(!c.cancel_requested());
        assert_eq!(c.cancel(), Cancel::Flagged);
        assert!(c.cancel_requested());
        assert!(!c.is_done(), "the worker ends it, not the canceller");
        assert_eq!(c.cancel(), Cancel::NoEffect, "asked once");
        c.resolve(Err(JobError::Cancelled));
        assert!(c.is_done());
        assert_eq!(c.cancel(), Cancel::NoEffect, "too late once done");
    }

    #[test]
    fn a_cancel_by_id_and_a_handle_cancel_end_a_claimed_job_once() {
        let c = cell();
        assert!(c.cancel_claimed());
        assert_eq!(c.cancel(), Cancel::NoEffect);
        let c = cell();
        assert_eq!(c.cancel(), Cancel::WasQueued);
        assert!(!c.cancel_claimed());
    }

    #[test]
    fn the_handle_is_woken_once_with_the_outcome() {
        let c = cell();
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        assert_eq!(c.poll_result(&waker), None);
        assert_eq!(
            c.poll_result(&waker),
            None,
            "a second poll registers no second waker"
        );
        assert!(c.start());
        c.resolve(Ok(7));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(c.poll_result(&waker), Some(Ok(7)));
        assert_eq!(c.poll_result(&waker), None, "the outcome is taken once");
    }

    #[test]
    fn a_cell_is_reusable_only_while_queued_and_never_polled() {
        let c = cell();
        assert!(c.reusable() && c.maybe_queued());
        let _ = c.poll_result(Waker::noop());
        assert!(!c.reusable(), "a polled cell may hold a waker");
        let c = cell();
        assert!(c.start());
        assert!(!c.reusable() && !c.maybe_queued());
        let resolved: Cell<u32, &str> = Cell::resolved(Err(JobError::Rejected));
        assert!(resolved.is_done());
        assert_eq!(
            resolved.poll_result(Waker::noop()),
            Some(Err(JobError::Rejected))
        );
    }
}

/// loom models: every interleaving of a job's worker, its handle and a canceller.
/// `RUSTFLAGS="--cfg loom" cargo test -p weft-pool --lib --release loom`
#[cfg(all(test, loom))]
mod loom_tests {
    use std::future::poll_fn;

    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    use super::*;

    type TestCell = Cell<u32, ()>;

    /// The worker's side: start the job and end it, cancelled if a cancel asked.
    fn work(cell: &TestCell, resolved: &AtomicUsize) {
        if cell.start() {
            let r = if cell.cancel_requested() {
                Err(JobError::Cancelled)
            } else {
                Ok(1)
            };
            resolved.fetch_add(1, Ordering::SeqCst);
            cell.resolve(r);
        }
    }

    #[test]
    fn loom_a_cancel_racing_the_worker_ends_the_job_once_and_wakes_the_handle() {
        loom::model(|| {
            let cell = Arc::new(TestCell::new(None));
            let resolved = Arc::new(AtomicUsize::new(0));
            let worker = {
                let (cell, resolved) = (Arc::clone(&cell), Arc::clone(&resolved));
                thread::spawn(move || work(&cell, &resolved))
            };
            let canceller = {
                let (cell, resolved) = (Arc::clone(&cell), Arc::clone(&resolved));
                thread::spawn(move || {
                    if cell.cancel() == Cancel::WasQueued {
                        resolved.fetch_add(1, Ordering::SeqCst);
                        cell.resolve(Err(JobError::Cancelled));
                    }
                })
            };
            // The handle waits: a lost wake-up would deadlock the model.
            let result = loom::future::block_on(poll_fn(|cx| match cell.poll_result(cx.waker()) {
                Some(r) => std::task::Poll::Ready(r),
                None => std::task::Poll::Pending,
            }));
            worker.join().unwrap();
            canceller.join().unwrap();
            assert_eq!(resolved.load(Ordering::SeqCst), 1, "exactly one outcome");
            assert_eq!(cell.load(Ordering::Acquire), CellState::Done, "{result:?}");
            assert!(matches!(result, Ok(1) | Err(JobError::Cancelled)));
        });
    }

    #[test]
    fn loom_a_cancel_by_id_and_a_handle_cancel_of_a_claimed_job_end_it_once() {
        loom::model(|| {
            let cell = Arc::new(TestCell::new(None));
            let ended = Arc::new(AtomicUsize::new(0));
            let by_id = {
                let (cell, ended) = (Arc::clone(&cell), Arc::clone(&ended));
                thread::spawn(move || {
                    if cell.cancel_claimed() {
                        ended.fetch_add(1, Ordering::SeqCst);
                    }
                })
            };
            if cell.cancel() == Cancel::WasQueued {
                ended.fetch_add(1, Ordering::SeqCst);
            }
            by_id.join().unwrap();
            assert_eq!(ended.load(Ordering::SeqCst), 1);
        });
    }
}
