//! The private core shared by a pool's handles and workers.
//!
//! # Invariants
//!
//! 1. `state` (one mutex) holds the intake (where submits put jobs), the count of queued jobs,
//!    the worker count and its bounds, the parked workers' wakers and the closed flag. A job
//!    enters the intake only while `closed` is false, checked under the lock, so a closing pool
//!    never strands a job. `sorted` (another mutex, taken only by workers, cancels, stats and
//!    shutdown, always before `state`) holds the jobs moved out of the intake, in priority
//!    order; see `queue::Intake` for why there are two.
//! 2. `state.queued` is the number of jobs in the intake and in `sorted` together, except while
//!    a worker that holds `sorted` pops the `n` jobs it has already counted out. Everything that
//!    adds or removes a queued job changes it under `state`; a worker counts out only what is
//!    there, and nobody else can pop while it holds `sorted`.
//! 3. Queue capacity is a semaphore per level (or one shared by all levels). A permit is taken
//!    before a job is pushed and given back by whoever takes the job out of the queue: a
//!    worker's batch pop, a cancel that removes it, or a cancelling shutdown. So the number of
//!    queued jobs never exceeds the capacity.
//! 4. `state.workers` counts live workers. A worker leaves only through `fetch` deciding so
//!    under the lock (excess after `resize`, idle expiry, or closed and empty), and it moves its
//!    counters into `registry.retired` under the registry lock before its slot goes.
//! 5. Outcomes: a job's outcome is counted once, by whoever resolves its cell (see `Cell`).
//! 6. Detached jobs: a job still in the intake whose handle is dropped loses its result cell
//!    (taken out of its entry under the `state` lock), so its worker never touches the cell; a
//!    job already sorted, claimed or running keeps it. Cancel by id reaches a claimed or running
//!    job through its worker's `claimed` ids and `cancel_flag`, whether it has a cell or not.
//!
//! Lock order: `sorted` then `state`; `registry` then a worker's `claimed` list (cancel by id).
//! Neither queue lock is held while another lock is taken (cells, blacklist, registry,
//! semaphores), and wakers are woken after the lock that found them is released.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::Waker;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use weft_core::Context;
use weft_core::context::{AfterFunc, CancelFn};

use crate::builder::{Blacklist, PanicPolicy};
use crate::clock::Clock;
use crate::error::{JobError, Outcome, SubmitError};
use crate::future::{CancelQueued, JobHandle};
use crate::lock;
use crate::queue::{Cell, Entry, Intake, Queue, RunnerWaker};
use crate::stats::{Acc, Counters, Histogram, Stats};

/// The `state` lock, held.
type StateGuard<'a, Req, Resp, E> = MutexGuard<'a, State<Req, Resp, E>>;

/// A job past the blacklist check, or refused there.
type Staged<Req> = Result<Req, SubmitError<Req>>;

pub(crate) type KeyFn<Req> = Arc<dyn Fn(&Req) -> Option<String> + Send + Sync>;

pub(crate) struct Config<Req> {
    pub(crate) levels: u8,
    pub(crate) timeout: Option<Duration>,
    pub(crate) panic_policy: PanicPolicy,
    pub(crate) job_key: Option<KeyFn<Req>>,
    pub(crate) batch: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) scale_up_depth: usize,
}

pub(crate) struct State<Req, Resp, E> {
    /// Where submits put jobs (see [`Intake`]); workers move it into `Shared::sorted`.
    pub(crate) intake: Intake<Req, Resp, E>,
    /// Jobs in the intake and in `Shared::sorted` together, less those a worker holding the
    /// `sorted` lock is about to pop: what is queued, as submitters and parking workers see it.
    pub(crate) queued: usize,
    pub(crate) closed: bool,
    next_id: u64,
    accepted: u64,
    pub(crate) workers: usize,
    pub(crate) min: usize,
    pub(crate) max: usize,
    /// Parked workers: (worker id, waker).
    pub(crate) idle: Vec<(usize, Waker)>,
    /// Workers woken by a submit that have not fetched yet. A submit wakes another worker only
    /// when the queue holds more than a batch per woken worker (a woken worker that leaves jobs
    /// behind wakes the next): one wake-up per batch, not per job.
    pub(crate) woken: Vec<usize>,
    /// Workers spinning on an empty queue before they park (at most one): while one does,
    /// a submit wakes nobody (it will see the job).
    pub(crate) searching: usize,
    next_worker: usize,
}

impl<Req, Resp, E> State<Req, Resp, E> {
    /// The id of a job being accepted (and counts it).
    fn accept(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.accepted += 1;
        id
    }

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

    pub(crate) fn unpark(&mut self, worker: usize) {
        self.idle.retain(|(w, _)| *w != worker);
    }
}

/// What a worker publishes: its counters, whether it is busy, and the jobs it has claimed.
pub(crate) struct WorkerSlot {
    pub(crate) id: usize,
    pub(crate) counters: Counters,
    pub(crate) busy: AtomicBool,
    pub(crate) claimed_len: AtomicUsize,
    /// The ids of the current batch, for cancel by id (a job may have no cell to flag).
    pub(crate) claimed: Mutex<Claimed>,
    /// Index in `claimed.ids` of the job running or about to run: those before it ended.
    pub(crate) next: AtomicUsize,
    /// Set when `claimed.cancel` is not empty: the worker checks it before and while running
    /// each job (one load of its own line), and looks at the list only when it is set.
    pub(crate) cancel_flag: AtomicBool,
    pub(crate) runner: Arc<RunnerWaker>,
}

/// A worker's claimed batch, as seen by cancel by id.
#[derive(Default)]
pub(crate) struct Claimed {
    pub(crate) ids: Vec<u64>,
    /// Ids of this batch cancelled by id, not acted on yet.
    pub(crate) cancel: Vec<u64>,
}

impl WorkerSlot {
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

    /// Cancel by id: flags `id` if it is in this batch and has not ended.
    fn cancel_claimed(&self, id: u64) -> bool {
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

pub(crate) struct Registry {
    pub(crate) slots: Vec<Arc<WorkerSlot>>,
    retired: Counters,
}

/// Spawns one worker task for a slot (type-erases the handler).
pub(crate) type Spawner<Req, Resp, E> =
    Box<dyn Fn(&Arc<Shared<Req, Resp, E>>, Arc<WorkerSlot>) + Send + Sync>;

pub(crate) struct BlacklistState {
    cfg: Blacklist,
    keys: Mutex<HashMap<String, KeyState>>,
}

#[derive(Default)]
struct KeyState {
    panics: u32,
    /// `Some(None)`: blacklisted for good; `Some(Some(t))`: until `t`.
    until: Option<Option<Instant>>,
}

impl BlacklistState {
    pub(crate) fn new(cfg: Blacklist) -> Self {
        BlacklistState {
            cfg,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` is blacklisted now; an expired cooldown clears the key (half-open: its
    /// count restarts from zero).
    pub(crate) fn is_blacklisted(&self, key: &str) -> bool {
        let mut keys = lock(&self.keys);
        let Some(st) = keys.get(key) else {
            return false;
        };
        match st.until {
            None => false,
            Some(None) => true,
            Some(Some(t)) if Instant::now() < t => true,
            Some(Some(_)) => {
                keys.remove(key);
                false
            }
        }
    }

    pub(crate) fn record_panic(&self, key: &str) {
        let mut keys = lock(&self.keys);
        let st = keys.entry(key.to_owned()).or_default();
        st.panics += 1;
        if st.panics >= self.cfg.after.get() && st.until.is_none() {
            st.until = Some(self.cfg.cooldown.map(|d| Instant::now() + d));
            tracing::warn!(key, panics = st.panics, "job key blacklisted");
        }
    }

    pub(crate) fn clear(&self, key: &str) -> bool {
        lock(&self.keys).remove(key).is_some()
    }
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

/// What a [`JobHandle`] holds to cancel its job: a weak reference to the pool, in an allocation
/// of its own. Every submit clones it and every handle drop releases it; when handles held the
/// pool's `Arc` itself, that reference count shared a cache line with the fields the workers
/// read, and each submit made those lines bounce between cores.
#[repr(align(128))]
struct PoolRef<Req, Resp, E>(Weak<Shared<Req, Resp, E>>);

/// Pool identities for [`DETACHED`].
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

/// A dropped handle's cell whose job was still queued.
struct Stashed {
    uid: u64,
    id: u64,
    level: u8,
    cell: Arc<dyn Any + Send + Sync>,
}

thread_local! {
    /// The last cell this thread's dropped handles gave back (see [`stash`]).
    static DETACHED: RefCell<Option<Stashed>> = const { RefCell::new(None) };
}

/// A handle dropped while its job is queued gives its cell here. The next submit of this
/// thread to the same pool, under the queue lock it takes anyway, takes the cell's other
/// reference out of the job's queue entry (the job then runs detached: its worker never
/// touches the cell) and, holding both references, reuses the cell for the new job: a
/// submit whose handle is dropped costs no allocation and no atomic reference count. If no
/// such submit comes, the job runs with its cell as any job whose handle is gone.
pub(crate) fn stash<Resp, E>(cell: Arc<Cell<Resp, E>>, id: u64, level: u8)
where
    Resp: Send + 'static,
    E: Send + 'static,
{
    let Some((_, uid)) = cell.stash else { return };
    let new = Stashed {
        uid,
        id,
        level,
        cell,
    };
    // During thread teardown the slot may be gone: the cell is then simply dropped.
    let old = DETACHED.try_with(|d| d.borrow_mut().replace(new));
    drop(old);
}

impl<Req, Resp, E> CancelQueued for PoolRef<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    fn cancelled_while_queued(&self, id: u64, level: u8) {
        if let Some(s) = self.0.upgrade() {
            s.cancelled_while_queued(id, level);
        }
    }

    fn wake_workers(&self) {
        if let Some(s) = self.0.upgrade() {
            s.wake_runners();
        }
    }
}

pub(crate) struct Shared<Req, Resp, E> {
    pub(crate) state: Padded<Mutex<State<Req, Resp, E>>>,
    /// The queue workers pop from, in priority order (see [`Intake`] for why it is apart).
    /// Lock order: `sorted`, then `state`.
    pub(crate) sorted: Padded<Mutex<Queue<Req, Resp, E>>>,
    /// Job stamps and latencies (see [`Clock`]).
    pub(crate) clock: Clock,
    /// Given to job handles (see [`PoolRef`]); set once the pool is in its `Arc`.
    handle_ref: OnceLock<Arc<dyn CancelQueued>>,
    /// This pool's identity for [`DETACHED`].
    uid: u64,
    /// One semaphore per level (the same `Arc` for all when capacity is shared); `None` when
    /// unbounded.
    pub(crate) capacity: Option<Vec<Arc<Semaphore>>>,
    pub(crate) config: Config<Req>,
    /// Outcomes decided outside a worker.
    pub(crate) counters: Counters,
    /// Submissions refused at the door (rejected or blacklisted), counted as submitted.
    refused: AtomicU64,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) blacklist: Option<BlacklistState>,
    /// Set by a cancelling shutdown: workers drop what they run and start nothing new.
    pub(crate) cancel_all: AtomicBool,
    pub(crate) spawner: OnceLock<Spawner<Req, Resp, E>>,
    pub(crate) tracker: TaskTracker,
    /// Live `Pool` handles; the last one dropped closes the pool (it drains).
    pub(crate) handles: AtomicUsize,
    /// The pool's own Context (child of the configured one) and its cancel.
    pub(crate) ctx: Context,
    ctx_cancel: CancelFn,
    pub(crate) watcher: Mutex<Option<AfterFunc>>,
}

impl<Req, Resp, E> Shared<Req, Resp, E> {
    pub(crate) fn semaphore(&self, level: u8) -> Option<&Arc<Semaphore>> {
        self.capacity.as_ref().map(|c| &c[level as usize])
    }

    pub(crate) fn release(&self, level: u8, n: usize) {
        if n > 0
            && let Some(s) = self.semaphore(level)
        {
            s.add_permits(n);
        }
    }

    /// Stops accepting jobs; queued ones still run (drain).
    pub(crate) fn close(&self) {
        let wake: Vec<(usize, Waker)> = {
            let mut st = lock(&self.state);
            if st.closed {
                Vec::new()
            } else {
                st.closed = true;
                st.idle.drain(..).collect()
            }
        };
        for (_, w) in wake {
            w.wake();
        }
        if let Some(c) = &self.capacity {
            for s in c {
                s.close();
            }
        }
        self.tracker.close();
    }
}

impl<Req, Resp, E> Shared<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: Config<Req>,
        capacity: Option<Vec<Arc<Semaphore>>>,
        aging: Option<Duration>,
        min: usize,
        max: usize,
        blacklist: Option<Blacklist>,
        parent: &Context,
    ) -> Self {
        let (ctx, ctx_cancel) = parent.with_cancel();
        let levels = config.levels as usize;
        Shared {
            state: Padded(Mutex::new(State {
                intake: Intake::new(levels, config.batch),
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
            })),
            sorted: Padded(Mutex::new(Queue::new(levels, aging))),
            clock: Clock::new(),
            handle_ref: OnceLock::new(),
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            capacity,
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

    /// Must be called once the pool is in its `Arc`, before any submit.
    pub(crate) fn init_handle_ref(self: &Arc<Self>) {
        let r: Arc<dyn CancelQueued> = Arc::new(PoolRef(Arc::downgrade(self)));
        let _ = self.handle_ref.set(r);
    }

    fn handle_ref(self: &Arc<Self>) -> Arc<dyn CancelQueued> {
        match self.handle_ref.get() {
            Some(r) => Arc::clone(r),
            None => Arc::clone(self) as Arc<dyn CancelQueued>,
        }
    }

    /// Counts a rejection and hands the job back.
    pub(crate) fn reject(&self, job: Req) -> SubmitError<Req> {
        self.refuse(Outcome::Rejected);
        SubmitError::Closed(job)
    }

    fn refuse(&self, outcome: Outcome) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.counters.bump_shared(outcome, 1);
    }

    pub(crate) fn key_of(&self, job: &Req) -> Option<String> {
        self.config.job_key.as_ref().and_then(|f| f(job))
    }

    /// The door check before waiting for capacity: closed or blacklisted.
    pub(crate) fn precheck(&self, job: Req) -> Result<Req, SubmitError<Req>> {
        if lock(&self.state).closed {
            self.refuse(Outcome::Rejected);
            return Err(SubmitError::Closed(job));
        }
        if let Some(bl) = &self.blacklist
            && let Some(key) = self.key_of(&job)
            && bl.is_blacklisted(&key)
        {
            self.refuse(Outcome::Blacklisted);
            return Err(SubmitError::Blacklisted { job, key });
        }
        Ok(job)
    }

    /// The job, or the job back (its permit released, the refusal counted) when its key is
    /// blacklisted.
    fn admit(&self, level: u8, job: Req) -> Staged<Req> {
        if let Some(bl) = &self.blacklist
            && let Some(key) = self.key_of(&job)
            && bl.is_blacklisted(&key)
        {
            self.release(level, 1);
            self.refuse(Outcome::Blacklisted);
            return Err(SubmitError::Blacklisted { job, key });
        }
        Ok(job)
    }

    /// Pushes a job whose capacity permit (if bounded) the caller holds (it moves with the job).
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        level: u8,
        job: Req,
    ) -> Result<JobHandle<Resp, E>, SubmitError<Req>> {
        let job = self.admit(level, job)?;
        let stashed = self.take_stashed();
        // Allocated outside the lock when no stashed cell may serve instead.
        let mut fresh = stashed.is_none().then(|| self.new_cell());
        let now = self.clock.now_ns();
        let Some(mut st) = self.lock_open(level) else {
            return Err(SubmitError::Closed(job));
        };
        let mut garbage = None;
        let pair = match stashed.map(|s| Self::reuse(&mut st, s)) {
            Some(Ok(pair)) => Some(pair),
            Some(Err(g)) => {
                garbage = Some(g);
                None
            }
            None => None,
        };
        let id = st.accept();
        let (cell, queued) = match pair {
            Some(pair) => pair,
            None => {
                let c = fresh.take().unwrap_or_else(|| self.new_cell());
                (Arc::clone(&c), c)
            }
        };
        st.intake.push(job, (id, level), Some(queued), now);
        st.queued += 1;
        self.pushed(st);
        drop(garbage); // outside the lock: a cell may hold a waker
        drop(fresh);
        Ok(JobHandle::new(cell, Some(self.handle_ref()), id, level))
    }

    /// [`enqueue`](Self::enqueue) without a handle or result cell (`Pool::spawn`): the job's id.
    pub(crate) fn enqueue_detached(
        self: &Arc<Self>,
        level: u8,
        job: Req,
    ) -> Result<u64, SubmitError<Req>> {
        let job = self.admit(level, job)?;
        let now = self.clock.now_ns();
        let Some(mut st) = self.lock_open(level) else {
            return Err(SubmitError::Closed(job));
        };
        let id = st.accept();
        st.intake.push(job, (id, level), None, now);
        st.queued += 1;
        self.pushed(st);
        Ok(id)
    }

    /// The `state` lock if the pool is open; `None` if closed, the submit's queue place then
    /// given back and the refusal counted (the caller hands the job back).
    fn lock_open(&self, level: u8) -> Option<StateGuard<'_, Req, Resp, E>> {
        let st = lock(&self.state);
        if st.closed {
            drop(st);
            self.release(level, 1);
            self.refuse(Outcome::Rejected);
            return None;
        }
        Some(st)
    }

    /// After one push under `st`: wakes a parked worker or starts one if the queue needs it,
    /// releasing the lock first.
    fn pushed(self: &Arc<Self>, mut st: StateGuard<'_, Req, Resp, E>) {
        let wake = if st.searching == 0 && st.woken.len() * self.config.batch < st.queued {
            st.idle.pop()
        } else {
            None
        };
        if let Some((w, _)) = &wake {
            st.woken.push(*w);
        }
        let grow = st.idle.is_empty()
            && wake.is_none()
            && st.workers < st.max
            && st.queued >= self.config.scale_up_depth;
        if grow {
            st.workers += 1;
        }
        drop(st);
        if let Some((_, w)) = wake {
            w.wake();
        }
        if grow {
            self.spawn_worker();
        }
    }

    /// [`enqueue`](Self::enqueue) for many jobs at one level, whose permits (if bounded) the
    /// caller holds: one lock, one clock read and one wake-up decision for all of them. Gives
    /// `sink` one result per job, in order: a handle if `handles`, else `None` (the job gets
    /// no result cell at all).
    pub(crate) fn enqueue_many(
        self: &Arc<Self>,
        level: u8,
        jobs: impl Iterator<Item = Req>,
        handles: bool,
        mut sink: impl FnMut(Result<Option<JobHandle<Resp, E>>, SubmitError<Req>>),
    ) {
        // Blacklisted jobs are refused before the lock, as in `enqueue`.
        let staged: Vec<Staged<Req>> = jobs.map(|job| self.admit(level, job)).collect();
        let now = self.clock.now_ns();
        let mut st = lock(&self.state);
        let closed = st.closed;
        let mut rejected = 0;
        for item in staged {
            sink(match item {
                Err(e) => Err(e),
                Ok(job) if closed => {
                    rejected += 1;
                    Err(SubmitError::Closed(job))
                }
                Ok(job) => {
                    let id = st.accept();
                    if handles {
                        let cell = self.new_cell();
                        st.intake
                            .push(job, (id, level), Some(Arc::clone(&cell)), now);
                        st.queued += 1;
                        Ok(Some(JobHandle::new(
                            cell,
                            Some(self.handle_ref()),
                            id,
                            level,
                        )))
                    } else {
                        st.intake.push(job, (id, level), None, now);
                        st.queued += 1;
                        Ok(None)
                    }
                }
            });
        }
        // One worker per batch's worth of queued jobs, as in `enqueue`.
        let mut wake = Vec::new();
        while !closed && st.searching == 0 && st.woken.len() * self.config.batch < st.queued {
            match st.idle.pop() {
                Some((w, waker)) => {
                    st.woken.push(w);
                    wake.push(waker);
                }
                None => break,
            }
        }
        let grow = !closed
            && st.idle.is_empty()
            && wake.is_empty()
            && st.workers < st.max
            && st.queued >= self.config.scale_up_depth;
        if grow {
            st.workers += 1;
        }
        drop(st);
        if rejected > 0 {
            self.release(level, rejected);
            self.refused.fetch_add(rejected as u64, Ordering::Relaxed);
            self.counters
                .bump_shared(Outcome::Rejected, rejected as u64);
        }
        for w in wake {
            w.wake();
        }
        if grow {
            self.spawn_worker();
        }
    }

    /// Starts one worker; the caller has already counted it in `state.workers`.
    pub(crate) fn spawn_worker(self: &Arc<Self>) {
        let id = {
            let mut st = lock(&self.state);
            st.next_worker += 1;
            st.next_worker
        };
        let slot = Arc::new(WorkerSlot {
            id,
            counters: Counters::new(self.config.levels as usize),
            busy: AtomicBool::new(false),
            claimed_len: AtomicUsize::new(0),
            claimed: Mutex::new(Claimed::default()),
            next: AtomicUsize::new(0),
            cancel_flag: AtomicBool::new(false),
            runner: Arc::new(RunnerWaker::default()),
        });
        lock(&self.registry).slots.push(Arc::clone(&slot));
        if let Some(spawn) = self.spawner.get() {
            spawn(self, slot);
        }
    }

    /// A worker leaves (invariant 4): its counters join the retired sums.
    pub(crate) fn retire(&self, slot: &Arc<WorkerSlot>) {
        let mut reg = lock(&self.registry);
        reg.retired.absorb(&slot.counters);
        reg.slots.retain(|s| !Arc::ptr_eq(s, slot));
    }

    pub(crate) fn set_bounds(self: &Arc<Self>, min: usize, max: usize) {
        let (spawn, wake) = {
            let mut st = lock(&self.state);
            st.min = min;
            st.max = max;
            let spawn = if st.closed {
                0
            } else {
                min.saturating_sub(st.workers)
            };
            st.workers += spawn;
            let wake: Vec<Waker> = if st.workers > max {
                st.idle.drain(..).map(|(_, w)| w).collect()
            } else {
                Vec::new()
            };
            (spawn, wake)
        };
        for w in wake {
            w.wake();
        }
        for _ in 0..spawn {
            self.spawn_worker();
        }
    }

    /// Cancelling shutdown: close, cancel everything queued, stop everything running.
    pub(crate) fn cancel_everything(&self) {
        self.cancel_all.store(true, Ordering::SeqCst);
        self.close();
        let entries: Vec<_> = {
            let mut q = lock(&self.sorted);
            let mut st = lock(&self.state);
            st.queued = 0;
            q.drain_all().chain(st.intake.drain_all()).collect()
        };
        for e in entries {
            match e.cell {
                Some(cell) => {
                    if cell.cancel().0 {
                        self.counters.bump_shared(Outcome::Cancelled, 1);
                        cell.resolve(Err(JobError::Cancelled));
                    }
                }
                None => self.counters.bump_shared(Outcome::Cancelled, 1),
            }
        }
        self.ctx_cancel.cancel_with("pool shut down");
        self.wake_runners();
    }

    /// Wakes every worker's task (cheap and rare: cancels of running jobs, shutdown).
    pub(crate) fn wake_runners(&self) {
        let runners: Vec<Arc<RunnerWaker>> = lock(&self.registry)
            .slots
            .iter()
            .map(|s| Arc::clone(&s.runner))
            .collect();
        for r in runners {
            r.wake();
        }
    }

    /// Cancel by id: queued (removed), claimed or running.
    pub(crate) fn cancel_id(&self, id: u64) -> bool {
        let removed = self.remove_queued(id, None);
        if let Some(e) = removed {
            self.release(e.level, 1);
            let Some(cell) = e.cell else {
                self.counters.bump_shared(Outcome::Cancelled, 1);
                return true;
            };
            let (was_queued, took) = cell.cancel();
            if was_queued {
                self.counters.bump_shared(Outcome::Cancelled, 1);
                cell.resolve(Err(JobError::Cancelled));
            }
            return took;
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
        let mut q = lock(&self.sorted);
        let mut st = lock(&self.state);
        let e = st.intake.remove(id, level).or_else(|| q.remove(id, level));
        if e.is_some() {
            st.queued -= 1;
        }
        e
    }

    /// This thread's stashed cell if it is this pool's (see [`stash`]).
    fn take_stashed(&self) -> Option<Stashed> {
        DETACHED
            .try_with(|d| {
                let mut d = d.borrow_mut();
                if d.as_ref().is_some_and(|s| s.uid == self.uid) {
                    d.take()
                } else {
                    None
                }
            })
            .ok()
            .flatten()
    }

    /// Under the `state` lock: detaches the stashed cell's job and returns the cell's two
    /// references if they can serve a new job; else what to drop after the lock.
    #[allow(clippy::type_complexity)]
    fn reuse(
        st: &mut State<Req, Resp, E>,
        s: Stashed,
    ) -> Result<
        (Arc<Cell<Resp, E>>, Arc<Cell<Resp, E>>),
        (Option<Arc<Cell<Resp, E>>>, Arc<dyn Any + Send + Sync>),
    > {
        let entry = st.intake.detach(s.id, s.level);
        let Some(entry) = entry else {
            return Err((None, s.cell));
        };
        match s.cell.downcast::<Cell<Resp, E>>() {
            // Both references in hand (a cell has no others: handle and queue entry only),
            // queued and never polled: as good as new.
            Ok(mine)
                if Arc::ptr_eq(&mine, &entry)
                    && Arc::strong_count(&mine) == 2
                    && mine.reusable() =>
            {
                Ok((mine, entry))
            }
            Ok(mine) => Err((Some(entry), mine)),
            Err(other) => Err((Some(entry), other)),
        }
    }

    /// A fresh cell for a job with a handle.
    fn new_cell(self: &Arc<Self>) -> Arc<Cell<Resp, E>> {
        Arc::new(Cell::new(Some((
            stash::<Resp, E> as crate::queue::StashFn<Resp, E>,
            self.uid,
        ))))
    }

    pub(crate) fn stats(&self) -> Stats {
        let (queued, workers, accepted) = {
            let q = lock(&self.sorted);
            let st = lock(&self.state);
            let queued = q
                .level_lens()
                .zip(st.intake.level_lens())
                .map(|(a, b)| a + b)
                .collect();
            (queued, st.workers, st.accepted)
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

impl<Req, Resp, E> CancelQueued for Shared<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    fn cancelled_while_queued(&self, id: u64, level: u8) {
        // Whoever takes the entry out of the queue gives its permit back (invariant 3); if a
        // worker already claimed it, the worker did.
        let removed = self.remove_queued(id, Some(level));
        if removed.is_some() {
            self.release(level, 1);
        }
        self.counters.bump_shared(Outcome::Cancelled, 1);
    }

    fn wake_workers(&self) {
        self.wake_runners();
    }
}

impl<Req, Resp, E> Drop for Shared<Req, Resp, E> {
    fn drop(&mut self) {
        if let Some(w) = lock(&self.watcher).take() {
            w.stop();
        }
    }
}
