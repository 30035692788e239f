//! The scheduler core: the private state shared by a pool's handles and its workers, and every
//! operation on it. The [`Pool`](crate::Pool) handle, the `Service` impl and the workers reach
//! it only through these operations.
//!
//! | file | what it owns |
//! |---|---|
//! | `intake.rs` | the intake shards (one per thread, each its own lock: the jobs submits push, closed, ids, leased places) |
//! | `state.rs` | the `state` lock's contents (workers, parked, woken and searching workers), the hints submits read without it, and the only code that changes them |
//! | `queue.rs` | the sorted priority queue (FIFO per level, aging) |
//! | `admission.rs` | accepting jobs: the closed and blacklist checks, ids, pushes, wake-ups |
//! | `stash.rs` | reuse of a dropped handle's result cell by the thread's next submit |
//! | `claim.rs` | a worker taking a batch: search (yielding), claim, park or leave |
//! | `cancel.rs` | cancel by handle, by id, and the cancelling shutdown |
//! | `scaling.rs` | starting and retiring workers, resizing |
//! | `blacklist.rs` | keys that keep panicking |
//! | `slot.rs` | what each worker publishes (counters, claimed ids, its waker) |
//! | `lock.rs` | the `state` and `intake` locks (spin locks that yield) |
//!
//! # Invariants
//!
//! 1. The queue's accounting (jobs queued, worker counts and wake-ups): see `state.rs`; the
//!    closed flag, ids and leased places: see `intake.rs`. Each file is its fields' only
//!    writer.
//! 2. Queue capacity is a semaphore per level (or one shared by all levels). A permit is taken
//!    before a job is pushed and given back by whoever takes the job out of the queue: a
//!    worker's batch pop (`claim.rs`), a cancel that removes it or a cancelling shutdown
//!    (`cancel.rs`), or a submit refused after taking it (`admission.rs`). So the number of
//!    queued jobs never exceeds the capacity. A per-job submit may take several permits at
//!    once and keep the unused ones under their intake shard's lock for the next submits
//!    (`admission.rs`, invariant 3 of `intake.rs`): they count as taken.
//! 3. A worker leaves only through the `state` lock (invariant 2 of `state.rs`), and it moves
//!    its counters into `registry.retired` under the registry lock before its slot goes
//!    (`scaling.rs`).
//! 4. Outcomes: a job's outcome is counted once, by whoever resolves its cell (see
//!    `job::Cell`), or for a job without a cell by whoever ends it.
//! 5. Detached jobs: a job still in the intake whose handle is dropped loses its result cell
//!    (taken out of its entry under its shard's lock, `stash.rs`), so its worker never touches
//!    the cell; a job already sorted, claimed or running keeps it.
//!
//! Lock order: `sorted`, `state`, the intake shards in index order (any may be skipped: a
//! submit takes its shard alone, and `state` only after releasing it); `registry` then a worker's claimed ids (cancel
//! by id).
//! Neither queue lock is held while another lock is taken (cells, blacklist, registry,
//! semaphores), and wakers are woken after the lock that found them is released.

mod admission;
mod blacklist;
mod cancel;
mod claim;
mod intake;
mod lock;
mod queue;
mod scaling;
mod slot;
mod stash;
mod state;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use weft_core::Context;
use weft_core::context::{AfterFunc, CancelFn};

pub(crate) use admission::Place;
pub(crate) use blacklist::BlacklistState;
pub(crate) use cancel::cancel_entry;
pub(crate) use claim::{Buffers, Fetched, Search};
pub(crate) use queue::Entry;
pub(crate) use scaling::Spawner;
pub(crate) use slot::WorkerSlot;
pub(crate) use stash::pool_of;

use crate::clock::Clock;
use crate::config::{Blacklist, Config};
use crate::lock;
use crate::stats::{Acc, Counters, Histogram, Stats};
use intake::{Intake, Shards};
pub(crate) use lock::{SpinGuard, SpinLock};
use queue::Queue;
use slot::Registry;
use state::{Hints, State};

/// The `intake` lock, held.
type IntakeGuard<'a, Req, Resp, E> = SpinGuard<'a, Intake<Req, Resp, E>>;

pub(crate) struct Shared<Req, Resp, E> {
    /// Where submits push: a shard per thread (see `intake.rs`).
    intake: Shards<Req, Resp, E>,
    /// What a submit reads after its push to learn whether it must take `state`.
    hints: Arc<Hints>,
    /// The workers' bookkeeping (see `state.rs`).
    state: Padded<SpinLock<State>>,
    /// The queue workers pop from, in priority order (see `intake::Intake` for why it is
    /// apart). Lock order: `sorted`, `state`, `intake`.
    sorted: Padded<Mutex<Queue<Req, Resp, E>>>,
    /// Job stamps and latencies (see [`Clock`]).
    pub(crate) clock: Clock,
    /// This pool's identity for the thread-local cell stash.
    uid: u64,
    /// One semaphore per level (the same `Arc` for all when capacity is shared); `None` when
    /// unbounded.
    capacity: Option<Vec<Arc<Semaphore>>>,
    /// Queue places a per-job submit leases from its semaphore when it finds none leased
    /// (`intake::Intake::leased`): one compare-and-swap on the semaphore per this many submits
    /// instead of one per submit. At most 16, and 1 (no lease) below a capacity of 128, so the
    /// places leased and unused never exceed 1/64 of the capacity per semaphore and intake
    /// shard (so 1/16 with the 4 shards; they count as taken).
    lease: usize,
    /// Whether all levels share one semaphore (then they share one lease).
    shared_capacity: bool,
    pub(crate) config: Config<Req>,
    /// Outcomes decided outside a worker.
    counters: Counters,
    /// Submissions refused at the door (rejected or blacklisted), counted as submitted.
    refused: AtomicU64,
    registry: Mutex<Registry>,
    pub(crate) blacklist: Option<BlacklistState>,
    /// Set by a cancelling shutdown: workers drop what they run and start nothing new.
    cancel_all: AtomicBool,
    spawner: OnceLock<Spawner<Req, Resp, E>>,
    tracker: TaskTracker,
    /// Live `Pool` handles; the last one dropped closes the pool (it drains).
    handles: AtomicUsize,
    /// The pool's own Context (child of the configured one) and its cancel.
    pub(crate) ctx: Context,
    ctx_cancel: CancelFn,
    watcher: Mutex<Option<AfterFunc>>,
}

/// Keeps a value on cache lines of its own, so that writes to it do not slow down readers of
/// its neighbours on other cores (false sharing).
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Pool identities for the thread-local cell stash.
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

impl<Req, Resp, E> Shared<Req, Resp, E> {
    pub(crate) fn new(
        config: Config<Req>,
        capacity: Option<Vec<Arc<Semaphore>>>,
        aging: Option<Duration>,
        (min, max): (usize, usize),
        blacklist: Option<Blacklist>,
        parent: &Context,
    ) -> Self {
        let (ctx, ctx_cancel) = parent.with_cancel();
        let levels = config.levels as usize;
        let lease = capacity
            .as_ref()
            .map_or(1, |c| (c[0].available_permits() / 64).clamp(1, 16));
        let shared_capacity = capacity
            .as_ref()
            .is_some_and(|c| c.len() > 1 && Arc::ptr_eq(&c[0], &c[1]));
        let state = State::new(min, max);
        Shared {
            intake: Shards::new(levels, config.batch),
            hints: state.hints(),
            state: Padded(SpinLock::new(state)),
            sorted: Padded(Mutex::new(Queue::new(levels, aging))),
            clock: Clock::new(),
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            capacity,
            lease,
            shared_capacity,
            config,
            counters: Counters::new(levels),
            refused: AtomicU64::new(0),
            registry: Mutex::new(Registry {
                slots: Vec::new(),
                retired: Counters::new(levels),
            }),
            blacklist: blacklist.map(BlacklistState::new),
            cancel_all: AtomicBool::new(false),
            spawner: OnceLock::new(),
            tracker: TaskTracker::new(),
            handles: AtomicUsize::new(1),
            ctx,
            ctx_cancel,
            watcher: Mutex::new(None),
        }
    }

    /// This pool's identity (cell stash, handle registry).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn uid(&self) -> u64 {
        self.uid
    }

    /// Level `level`'s capacity semaphore; `None` when the queue is unbounded.
    pub(crate) fn semaphore(&self, level: u8) -> Option<&Arc<Semaphore>> {
        self.capacity.as_ref().map(|c| &c[level as usize])
    }

    /// The index of level `level`'s semaphore, for its lease.
    fn lease_slot(&self, level: u8) -> usize {
        if self.shared_capacity {
            0
        } else {
            level as usize
        }
    }

    pub(crate) fn is_bounded(&self) -> bool {
        self.capacity.is_some()
    }

    /// Gives `n` queue places of `level` back (invariant 2).
    pub(crate) fn release(&self, level: u8, n: usize) {
        if n > 0
            && let Some(s) = self.semaphore(level)
        {
            s.add_permits(n);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.intake.lock_mine().is_closed()
    }

    /// Whether a cancelling shutdown has begun.
    pub(crate) fn cancelling(&self) -> bool {
        self.cancel_all.load(Ordering::Relaxed)
    }

    /// Stops accepting jobs; queued ones still run (drain).
    pub(crate) fn close(&self) {
        // The intake first (invariant 1 of `intake.rs`), then the parked workers: a worker that
        // parked before the intake closed is woken here; one that claims after saw it closed.
        let first = self.intake.lock_all().close();
        if first {
            let wake = self.state.lock().wake_all();
            for w in wake {
                w.wake();
            }
        }
        if let Some(c) = &self.capacity {
            for s in c {
                s.close();
            }
        }
        self.tracker.close();
    }

    /// A `Pool` handle was cloned.
    pub(crate) fn handle_cloned(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// A `Pool` handle was dropped; the last one closes the pool.
    pub(crate) fn handle_dropped(&self) {
        // AcqRel: the last handle must see every other handle's work before closing.
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }

    /// Waits until every worker has stopped (after [`close`](Self::close)).
    pub(crate) async fn workers_stopped(&self) {
        self.tracker.wait().await;
    }

    pub(crate) fn key_of(&self, job: &Req) -> Option<String> {
        self.config.job_key.as_ref().and_then(|f| f(job))
    }

    pub(crate) fn stats(&self) -> Stats {
        let (queued, workers, accepted) = {
            let q = lock(&self.sorted);
            let workers = self.state.lock().workers();
            let i = self.intake.lock_all();
            let queued = q
                .level_lens()
                .zip(i.level_lens())
                .map(|(a, b)| a + b)
                .collect();
            (queued, workers, i.accepted())
        };
        let mut acc = Acc::new(self.config.levels as usize);
        let (mut busy, mut claimed) = (0, 0);
        {
            let reg = lock(&self.registry);
            reg.retired.add_to(&mut acc);
            for s in &reg.slots {
                s.counters.add_to(&mut acc);
                busy += usize::from(s.busy.load(Ordering::Relaxed));
                claimed += s.claimed_len.load(Ordering::Relaxed);
            }
        }
        self.counters.add_to(&mut acc);
        Stats {
            workers,
            busy,
            queued,
            claimed,
            submitted: accepted + self.refused.load(Ordering::Relaxed),
            outcomes: acc.outcomes,
            restarts: acc.restarts,
            queue_wait: {
                let mut all = Histogram::zeroed_acc();
                for level in &acc.queue_wait {
                    for (a, b) in all.iter_mut().zip(level) {
                        *a += b;
                    }
                }
                Histogram::latency(&all)
            },
            queue_wait_by_priority: acc
                .queue_wait
                .iter()
                .map(|h| Histogram::latency(h))
                .collect(),
            run_time: Histogram::latency(&acc.run_time),
        }
    }
}

impl<Req, Resp, E> Drop for Shared<Req, Resp, E> {
    fn drop(&mut self) {
        stash::unregister(self.uid);
        if let Some(w) = lock(&self.watcher).take() {
            w.stop();
        }
    }
}
