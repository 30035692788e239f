//! [`Pool`]: the handle users hold, and its submit, cancel, resize and shutdown API. Its
//! `tower::Service` impl is in `service.rs`; the builder in `builder.rs`.

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::TryAcquireError;
use tokio_util::sync::PollSemaphore;
use weft_core::Shutdown;

use crate::error::{SubmitError, TrySubmitError};
use crate::job::{JobHandle, JobId};
use crate::priority::Priority;
use crate::sched::{Place, Shared};
use crate::stats::Stats;

/// A pool of workers running jobs through a handler, with priorities, backpressure, timeouts,
/// panic isolation, cancellation, resizing and metrics. It is itself a `tower::Service<Req>`.
///
/// A `Pool` is a cheap handle: clones share the same workers and queue. When the last clone is
/// dropped the pool closes and its workers finish the queued jobs, then stop (like tower's
/// `Buffer`; unlike a `JoinSet`, nothing is aborted). [`shutdown`](Pool::shutdown) ends it
/// explicitly.
///
/// Every submitted job ends in exactly one [`Outcome`](crate::Outcome), counted in
/// [`stats`](Pool::stats).
///
/// # Backpressure
///
/// The queue is bounded (see [`Builder::capacity`](crate::Builder::capacity)). [`submit`](Pool::submit) waits for room,
/// [`try_submit`](Pool::try_submit) hands the job back when there is none, and the
/// `Service` impl reserves room in `poll_ready` and takes it in `call`, as tower requires: a
/// `ServiceBuilder` stack above the pool (or axum) sees `Pending` while the queue is full. The
/// reserved slot travels with the job and is freed when a worker takes the job from the queue
/// (or when it is cancelled there), as with tower's `Buffer`; dropping a `Pool` clone that
/// reserved but did not call gives its slot back.
///
/// # Examples
///
/// A pool behind a `ServiceBuilder` stack (timeout, concurrency limit):
///
/// ```
/// use std::time::Duration;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use weft_pool::Pool;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let pool = Pool::builder()
///     .workers(2)
///     .build(tower::service_fn(|s: String| async move { Ok::<_, std::io::Error>(s.len()) }));
/// let mut svc = ServiceBuilder::new()
///     .timeout(Duration::from_secs(1))
///     .concurrency_limit(8)
///     .service(pool);
/// let n = svc.ready().await?.call("hello".to_string()).await?;
/// assert_eq!(n, 5);
/// # Ok(())
/// # }
/// ```
pub struct Pool<Req, Resp, E> {
    shared: Arc<Shared<Req, Resp, E>>,
    priority: u8,
    /// A permit reserved by `poll_ready`, not yet used by `call`.
    reserved: bool,
    poll_sem: Option<PollSemaphore>,
}

impl<Req, Resp, E> Pool<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    pub(crate) fn from_shared(shared: Arc<Shared<Req, Resp, E>>, priority: u8) -> Self {
        Pool {
            shared,
            priority,
            reserved: false,
            poll_sem: None,
        }
    }

    #[track_caller]
    fn check_level(&self, priority: Priority) -> u8 {
        let priority = priority.get();
        assert!(
            priority < self.shared.config.levels,
            "priority {priority} out of range: the pool has {} levels",
            self.shared.config.levels
        );
        priority
    }

    /// This handle with `priority` as its default, for [`submit`](Pool::submit) and the
    /// `Service` impl (so one pool can serve a high- and a low-priority route).
    ///
    /// # Panics
    ///
    /// If `priority` is not below the pool's number of levels.
    #[track_caller]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        let level = self.check_level(priority);
        self.release_reservation();
        self.priority = level;
        self
    }

    /// Submits a job at the default priority, waiting for queue room; returns its handle.
    ///
    /// # Cancel safety
    ///
    /// If the returned future is dropped while waiting for room, the job is dropped with it and
    /// was never submitted (nothing is counted). To keep it, use
    /// [`try_submit`](Pool::try_submit), which hands it back, or the `Service` impl, whose
    /// `poll_ready` reserves room before the job is given.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Closed`] after shutdown and [`SubmitError::Blacklisted`] for a
    /// blacklisted key, both handing the job back (and counted as `Rejected` /
    /// `Blacklisted`).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use weft_pool::{Pool, Shutdown, SubmitError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).build_fn(|_ctx, n: i32| async move { Ok::<_, Infallible>(-n) });
    /// let handle = pool.submit(5).await.unwrap();
    /// assert_eq!(handle.await, Ok(-5));
    /// pool.shutdown(Shutdown::Abort).await;
    /// assert!(matches!(pool.submit(6).await, Err(SubmitError::Closed(6))));
    /// # }
    /// ```
    pub async fn submit(&self, job: Req) -> Result<JobHandle<Resp, E>, SubmitError<Req>> {
        self.submit_level(self.priority, job).await
    }

    /// Submits a job at `priority` (higher runs first), waiting for room in its queue.
    ///
    /// # Cancel safety
    ///
    /// As for [`submit`](Pool::submit): dropped while waiting, the job is dropped too.
    ///
    /// # Panics
    ///
    /// If `priority` is not below the pool's number of levels.
    ///
    /// # Errors
    ///
    /// As for [`submit`](Pool::submit).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use weft_pool::{Pool, Priority};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).priorities(3)
    ///     .build_fn(|_ctx, s: &'static str| async move { Ok::<_, Infallible>(s) });
    /// let h = pool.submit_at(Priority::HIGH, "urgent").await.unwrap();
    /// assert_eq!(h.priority(), Priority::HIGH);
    /// assert_eq!(h.await, Ok("urgent"));
    /// # }
    /// ```
    #[track_caller]
    pub fn submit_at(
        &self,
        priority: Priority,
        job: Req,
    ) -> impl Future<Output = Result<JobHandle<Resp, E>, SubmitError<Req>>> + Send + '_ {
        let level = self.check_level(priority);
        self.submit_level(level, job)
    }

    async fn submit_level(
        &self,
        priority: u8,
        job: Req,
    ) -> Result<JobHandle<Resp, E>, SubmitError<Req>> {
        // First without waiting, the queue place taken under the queue lock; then, if there
        // was none, the slow way.
        let job = match self.shared.enqueue_at(priority, job, Place::Take) {
            Ok(h) => return Ok(h),
            Err(r) => match r.into_submit() {
                Ok(e) => return Err(e),
                Err(job) => job,
            },
        };
        let job = self.take_room(priority, job).await?;
        self.shared.enqueue(priority, job)
    }

    /// Takes a queue place for `job` (if bounded), waiting for one; the job back once it has
    /// one, or refused.
    async fn take_room(&self, priority: u8, job: Req) -> Result<Req, SubmitError<Req>> {
        if let Some(sem) = self.shared.semaphore(priority) {
            match sem.try_acquire() {
                Ok(p) => p.forget(),
                Err(TryAcquireError::Closed) => return Err(self.refused_closed(job)),
                // A place another intake shard leased (this thread's had none).
                Err(TryAcquireError::NoPermits) if self.shared.take_leased(priority) => {}
                Err(TryAcquireError::NoPermits) => {
                    let job = self.shared.precheck(job)?;
                    match sem.acquire().await {
                        Ok(p) => p.forget(),
                        Err(_) => return Err(self.refused_closed(job)),
                    }
                    return Ok(job);
                }
            }
        }
        Ok(job)
    }

    /// Submits a job at the default priority without a [`JobHandle`], waiting for queue room,
    /// and returns its [`JobId`] (for [`cancel`](Pool::cancel)): the cheapest per-job submit,
    /// for jobs nobody waits for. Like dropping [`submit`](Pool::submit)'s handle, but no
    /// result cell is even created. The job runs as any other: its outcome is counted in
    /// [`stats`](Pool::stats), and its timeout, panic isolation and blacklisting apply. The
    /// per-job form of [`submit_many_detached`](Pool::submit_many_detached).
    ///
    /// (Unlike `tokio::spawn`, which runs a future and returns a handle to it, this queues a
    /// request for the pool's handler and returns only an id: hence the name.)
    ///
    /// # Cancel safety
    ///
    /// As for [`submit`](Pool::submit): dropped while waiting for room, the job is dropped
    /// too and was never submitted.
    ///
    /// # Errors
    ///
    /// As for [`submit`](Pool::submit).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_pool::{Outcome, Pool, Shutdown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(2)
    ///     .build_fn(|_ctx, n: u64| async move { if n == 3 { Err("three") } else { Ok(n) } });
    /// for n in 0..10 {
    ///     pool.submit_detached(n).await.unwrap();
    /// }
    /// let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(10))).await;
    /// assert_eq!(stats.count(Outcome::Completed), 9);
    /// assert_eq!(stats.count(Outcome::Failed), 1);
    /// # }
    /// ```
    pub async fn submit_detached(&self, job: Req) -> Result<JobId, SubmitError<Req>> {
        self.detached_level(self.priority, job).await
    }

    /// [`submit_detached`](Pool::submit_detached) at `priority` (higher runs first).
    ///
    /// # Cancel safety
    ///
    /// As for [`submit`](Pool::submit): dropped while waiting, the job is dropped too.
    ///
    /// # Panics
    ///
    /// If `priority` is not below the pool's number of levels.
    ///
    /// # Errors
    ///
    /// As for [`submit`](Pool::submit).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use weft_pool::{Outcome, Pool, Priority, Shutdown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).priorities(2)
    ///     .build_fn(|_ctx, n: u32| async move { Ok::<_, Infallible>(n) });
    /// let id = pool.submit_detached_at(Priority::new(1), 7).await.unwrap();
    /// assert!(id.as_u64() > 0);
    /// let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    /// assert_eq!(stats.count(Outcome::Completed), 1);
    /// # }
    /// ```
    #[track_caller]
    pub fn submit_detached_at(
        &self,
        priority: Priority,
        job: Req,
    ) -> impl Future<Output = Result<JobId, SubmitError<Req>>> + Send + '_ {
        let level = self.check_level(priority);
        self.detached_level(level, job)
    }

    async fn detached_level(&self, priority: u8, job: Req) -> Result<JobId, SubmitError<Req>> {
        // As in `submit_level`.
        let job = match self.shared.enqueue_detached(priority, job, Place::Take) {
            Ok(id) => return Ok(JobId(id)),
            Err(r) => match r.into_submit() {
                Ok(e) => return Err(e),
                Err(job) => job,
            },
        };
        let job = self.take_room(priority, job).await?;
        match self.shared.enqueue_detached(priority, job, Place::Held) {
            Ok(id) => Ok(JobId(id)),
            Err(r) => Err(r.into_submit().unwrap_or_else(SubmitError::Closed)),
        }
    }

    /// Submits many jobs at `priority`, waiting for queue room as needed; returns one result
    /// per job, in order. The fast way to feed a pool: the queue lock, the clock read, the
    /// capacity permits and the decision to wake a worker are taken once per chunk of jobs
    /// instead of once per job (a chunk is at most 256 jobs, and no more than the queue has
    /// room for at that moment, so a bounded queue never holds more than its capacity).
    ///
    /// Each job is accepted or refused as by [`submit_at`](Pool::submit_at): a blacklisted
    /// job is handed back in [`SubmitError::Blacklisted`]; once the pool is closed, every job
    /// left is handed back in [`SubmitError::Closed`] (all counted as with `submit`).
    ///
    /// # Cancel safety
    ///
    /// If the returned future is dropped while waiting for room, the jobs already queued stay
    /// queued (their handles are dropped, which detaches them: they run and are counted); the
    /// jobs not yet queued, including those still in the iterator, are dropped and were never
    /// submitted.
    ///
    /// # Panics
    ///
    /// If `priority` is not below the pool's number of levels.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use weft_pool::{Pool, Priority};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(2).capacity(4)
    ///     .build_fn(|_ctx, n: u64| async move { Ok::<_, Infallible>(n * n) });
    /// // More jobs than the queue holds: it waits for room chunk by chunk.
    /// let handles = pool.submit_many(Priority::LOW, 1..=10).await;
    /// let mut sum = 0;
    /// for h in handles {
    ///     sum += h.unwrap().await.unwrap();
    /// }
    /// assert_eq!(sum, 385);
    /// # }
    /// ```
    #[track_caller]
    pub fn submit_many<I>(
        &self,
        priority: Priority,
        jobs: I,
    ) -> impl Future<Output = Vec<Result<JobHandle<Resp, E>, SubmitError<Req>>>>
    where
        I: IntoIterator<Item = Req>,
    {
        let level = self.check_level(priority);
        let jobs = jobs.into_iter();
        async move { self.submit_many_level(level, jobs).await }
    }

    async fn submit_many_level(
        &self,
        priority: u8,
        jobs: impl Iterator<Item = Req>,
    ) -> Vec<Result<JobHandle<Resp, E>, SubmitError<Req>>> {
        let mut out = Vec::with_capacity(jobs.size_hint().0);
        self.feed(priority, jobs, true, |r| match r {
            Ok(Some(h)) => out.push(Ok(h)),
            Ok(None) => {}
            Err(e) => out.push(Err(e)),
        })
        .await;
        out
    }

    /// Submits many jobs at `priority` without handles, waiting for queue room as needed; the
    /// cheapest way to feed a pool when nobody waits for the jobs' results (like dropping
    /// every handle [`submit_many`](Pool::submit_many) returns, but no per-job result cell is
    /// even created). Their outcomes are counted in [`stats`](Pool::stats) as any job's.
    ///
    /// Returns the jobs handed back, in order: the blacklisted ones, and every job left once the
    /// pool is closed (counted as with `submit`); empty when all were queued.
    ///
    /// A job submitted this way has no handle and no [`JobId`] to give out, so it cannot be
    /// awaited or cancelled alone; a cancelling [`shutdown`](Pool::shutdown) cancels it like
    /// any other job (and its timeout, panic isolation and blacklisting apply as usual).
    ///
    /// # Cancel safety
    ///
    /// As for [`submit_many`](Pool::submit_many): if dropped while waiting for room, the jobs
    /// already queued stay queued and the others were never submitted.
    ///
    /// # Panics
    ///
    /// If `priority` is not below the pool's number of levels.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_pool::{Outcome, Pool, Priority, Shutdown};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(2).capacity(8)
    ///     .build_fn(|_ctx, n: u64| async move { if n % 10 == 0 { Err("tens") } else { Ok(n) } });
    /// let refused = pool.submit_many_detached(Priority::LOW, 1..=100).await;
    /// assert!(refused.is_empty());
    /// let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(10))).await;
    /// assert_eq!(stats.count(Outcome::Completed), 90);
    /// assert_eq!(stats.count(Outcome::Failed), 10);
    /// # }
    /// ```
    #[track_caller]
    pub fn submit_many_detached<I>(
        &self,
        priority: Priority,
        jobs: I,
    ) -> impl Future<Output = Vec<SubmitError<Req>>>
    where
        I: IntoIterator<Item = Req>,
    {
        let level = self.check_level(priority);
        let jobs = jobs.into_iter();
        async move {
            let mut refused = Vec::new();
            self.feed(level, jobs, false, |r| {
                if let Err(e) = r {
                    refused.push(e);
                }
            })
            .await;
            refused
        }
    }

    /// Queues `jobs` chunk by chunk (see [`submit_many`](Pool::submit_many)), giving `sink`
    /// one result per job.
    async fn feed(
        &self,
        priority: u8,
        mut jobs: impl Iterator<Item = Req>,
        handles: bool,
        mut sink: impl FnMut(Result<Option<JobHandle<Resp, E>>, SubmitError<Req>>),
    ) {
        const CHUNK: usize = 256;
        let mut chunk: Vec<Req> = Vec::with_capacity(CHUNK);
        loop {
            chunk.extend(jobs.by_ref().take(CHUNK));
            if chunk.is_empty() {
                return;
            }
            while !chunk.is_empty() {
                // As many as there is room for right now (at least one, waiting for it).
                let n = match self.shared.semaphore(priority) {
                    None => chunk.len(),
                    Some(sem) => {
                        let n = sem.available_permits().clamp(1, chunk.len());
                        let acquired = match sem.try_acquire_many(n as u32) {
                            Ok(p) => Some(p),
                            Err(TryAcquireError::NoPermits) => {
                                sem.acquire_many(n as u32).await.ok()
                            }
                            Err(TryAcquireError::Closed) => None,
                        };
                        let Some(permits) = acquired else {
                            // Closed: hand back everything left.
                            for job in chunk.drain(..).chain(jobs.by_ref()) {
                                sink(Err(self.refused_closed(job)));
                            }
                            return;
                        };
                        permits.forget();
                        n
                    }
                };
                self.shared
                    .enqueue_many(priority, chunk.drain(..n), handles, &mut sink);
            }
        }
    }

    fn refused_closed(&self, job: Req) -> SubmitError<Req> {
        self.shared.reject(job)
    }

    /// Submits a job at the default priority if its queue has room, else hands it back.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] (not counted anywhere: the job was never submitted),
    /// [`TrySubmitError::Closed`], [`TrySubmitError::Blacklisted`]; each hands the job back.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use weft_pool::{Pool, TrySubmitError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).capacity(1).build_fn(|_ctx, ms: u64| async move {
    ///     tokio::time::sleep(Duration::from_millis(ms)).await;
    ///     Ok::<_, Infallible>(())
    /// });
    /// let _queued = pool.try_submit(10).unwrap();
    /// match pool.try_submit(20) {
    ///     Err(TrySubmitError::Full(job)) => assert_eq!(job, 20),
    ///     other => panic!("expected Full, got {other:?}"),
    /// }
    /// # }
    /// ```
    pub fn try_submit(&self, job: Req) -> Result<JobHandle<Resp, E>, TrySubmitError<Req>> {
        self.try_submit_level(self.priority, job)
    }

    /// [`try_submit`](Pool::try_submit) at `priority`.
    ///
    /// # Panics
    ///
    /// If `priority` is not below the pool's number of levels.
    ///
    /// # Errors
    ///
    /// As for [`try_submit`](Pool::try_submit).
    #[track_caller]
    pub fn try_submit_at(
        &self,
        priority: Priority,
        job: Req,
    ) -> Result<JobHandle<Resp, E>, TrySubmitError<Req>> {
        let level = self.check_level(priority);
        self.try_submit_level(level, job)
    }

    fn try_submit_level(
        &self,
        priority: u8,
        job: Req,
    ) -> Result<JobHandle<Resp, E>, TrySubmitError<Req>> {
        match self.shared.enqueue_at(priority, job, Place::Take) {
            Ok(h) => Ok(h),
            Err(r) => match r.into_submit() {
                Ok(e) => Err(e.into()),
                // Closed and blacklisted were checked first, so they are counted as such.
                // No place in this thread's intake shard nor the semaphore: one leased by
                // another shard still counts as room.
                Err(job) if self.shared.take_leased(priority) => {
                    self.shared.enqueue(priority, job).map_err(Into::into)
                }
                Err(job) => Err(TrySubmitError::Full(job)),
            },
        }
    }

    /// Cancels a job by id: queued (removed, resolved `Cancelled`), claimed by a worker but not
    /// started, or running (its Context is cancelled and its future dropped). Returns `false`
    /// if no such job is pending.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use weft_pool::{JobError, Pool};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).build_fn(|ctx, ()| async move {
    ///     ctx.done().await;
    ///     Ok::<_, Infallible>(())
    /// });
    /// let h = pool.submit(()).await.unwrap();
    /// tokio::task::yield_now().await;
    /// assert!(pool.cancel(h.id()));
    /// assert_eq!(h.await, Err(JobError::Cancelled));
    /// # }
    /// ```
    pub fn cancel(&self, id: JobId) -> bool {
        self.shared.cancel_id(id.0)
    }

    /// Changes the pool to exactly `n` workers at run time, like ants' `Tune` or pond's
    /// `Resize`. New workers start at once; extra ones stop after their current job (never
    /// interrupting it).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use weft_pool::Pool;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(2).build_fn(|_ctx, ()| async { Ok::<_, Infallible>(()) });
    /// pool.resize(5);
    /// assert_eq!(pool.stats().workers, 5);
    /// # }
    /// ```
    #[track_caller]
    pub fn resize(&self, n: usize) {
        assert!(n > 0, "a pool needs at least one worker");
        self.shared.set_bounds(n, n);
    }

    /// Makes the pool dynamic with these bounds at run time (see
    /// [`Builder::dynamic_workers`](crate::Builder::dynamic_workers)).
    ///
    /// # Panics
    ///
    /// If `max` is 0.
    #[track_caller]
    pub fn resize_range(&self, range: RangeInclusive<usize>) {
        assert!(*range.end() > 0, "a pool needs at least one worker");
        let max = *range.end();
        self.shared.set_bounds((*range.start()).min(max), max);
    }

    /// Lifts the blacklisting of `key` (and forgets its panics). Returns whether it was known.
    pub fn unblacklist(&self, key: &str) -> bool {
        self.shared.blacklist.as_ref().is_some_and(|b| b.clear(key))
    }

    /// Stops accepting jobs: later submissions are rejected (handed back), the `Service`'s
    /// `poll_ready` fails; queued and running jobs go on.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether the pool has been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Shuts the pool down and waits until every worker has stopped; returns the final
    /// [`Stats`], where `submitted` equals the sum of the outcomes.
    ///
    /// # Cancel safety
    ///
    /// The pool is closed before the first await. If the returned future is dropped while
    /// waiting, the shutdown goes on without the waiting: a drain continues without its
    /// timeout (nothing is cancelled when it would have expired); a cancel has already
    /// cancelled everything.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use weft_pool::{Outcome, Pool, Shutdown};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).build_fn(|_ctx, ms: u64| async move {
    ///     tokio::time::sleep(Duration::from_millis(ms)).await;
    ///     Ok::<_, Infallible>(())
    /// });
    /// for ms in [10, 10, 10_000] {
    ///     pool.submit(ms).await.unwrap().detach();
    /// }
    /// let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(1))).await;
    /// assert_eq!(stats.count(Outcome::Completed), 2);
    /// assert_eq!(stats.count(Outcome::Cancelled), 1, "the slow one outlived the drain");
    /// assert_eq!(stats.submitted, stats.finished());
    /// # }
    /// ```
    pub async fn shutdown(&self, how: Shutdown) -> Stats {
        self.shared.close();
        match how {
            Shutdown::Drain { timeout } => {
                if tokio::time::timeout(timeout, self.shared.workers_stopped())
                    .await
                    .is_err()
                {
                    self.shared.cancel_everything();
                }
            }
            // `Abort`, and any way of ending added to `Shutdown` later: stop at once.
            _ => self.shared.cancel_everything(),
        }
        self.shared.workers_stopped().await;
        self.shared.stats()
    }

    /// A snapshot of the pool's workers, queue, outcome counters and latencies.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    fn release_reservation(&mut self) {
        if std::mem::take(&mut self.reserved) {
            self.shared.release(self.priority, 1);
        }
    }

    /// The `Service` impl's `poll_ready`: reserves a queue place at this handle's priority
    /// (kept until [`take_reservation`](Self::take_reservation) or drop). `Err` if closed.
    pub(crate) fn poll_reserve(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        if self.reserved {
            return Poll::Ready(Ok(()));
        }
        let Some(sem) = self.shared.semaphore(self.priority) else {
            return if self.is_closed() {
                Poll::Ready(Err(()))
            } else {
                Poll::Ready(Ok(()))
            };
        };
        // Fast path without the PollSemaphore's boxed future.
        match sem.try_acquire() {
            Ok(p) => {
                p.forget();
                self.reserved = true;
                return Poll::Ready(Ok(()));
            }
            Err(TryAcquireError::Closed) => return Poll::Ready(Err(())),
            Err(TryAcquireError::NoPermits) => {}
        }
        // Places the per-job submits leased count as taken: use one before waiting.
        if self.shared.take_leased(self.priority) {
            self.reserved = true;
            return Poll::Ready(Ok(()));
        }
        let sem = Arc::clone(sem);
        let poll_sem = self.poll_sem.get_or_insert_with(|| PollSemaphore::new(sem));
        match poll_sem.poll_acquire(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(p)) => {
                p.forget();
                self.reserved = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(None) => Poll::Ready(Err(())),
        }
    }

    /// The `Service` impl's `call`: enqueues `req` on the place `poll_reserve` reserved.
    ///
    /// # Panics
    ///
    /// If the queue is bounded and no place is reserved (tower's contract).
    pub(crate) fn call_reserved(
        &mut self,
        req: Req,
    ) -> Result<JobHandle<Resp, E>, SubmitError<Req>> {
        if self.shared.is_bounded() {
            assert!(
                std::mem::take(&mut self.reserved),
                "poll_ready must be called first"
            );
        }
        self.shared.enqueue(self.priority, req)
    }

    /// This handle's default priority.
    pub(crate) fn default_level(&self) -> u8 {
        self.priority
    }
}

impl<Req, Resp, E> Clone for Pool<Req, Resp, E> {
    fn clone(&self) -> Self {
        self.shared.handle_cloned();
        Pool {
            shared: Arc::clone(&self.shared),
            priority: self.priority,
            reserved: false,
            poll_sem: None,
        }
    }
}

impl<Req, Resp, E> Drop for Pool<Req, Resp, E> {
    fn drop(&mut self) {
        if std::mem::take(&mut self.reserved) {
            self.shared.release(self.priority, 1);
        }
        self.shared.handle_dropped();
    }
}

impl<Req, Resp, E> fmt::Debug for Pool<Req, Resp, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("priority", &self.priority)
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_pool_is_found_by_its_handles_while_alive_and_leaves_the_registry_when_dropped() {
        let pool = Pool::builder()
            .workers(1)
            .build_fn(|_ctx, n: u32| async move { Ok::<_, Infallible>(n) });
        let uid = pool.shared.uid();
        assert!(
            crate::sched::pool_of(uid).is_some(),
            "registered when built"
        );
        assert_eq!(pool.submit(1).await.unwrap().await.unwrap(), 1);
        let weak = Arc::downgrade(&pool.shared);
        pool.shutdown(Shutdown::drain(std::time::Duration::from_secs(1)))
            .await;
        drop(pool);
        // The workers' tasks drop their references as they finish.
        for _ in 0..1000 {
            if weak.strong_count() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(weak.strong_count(), 0, "the pool's core is freed");
        assert!(crate::sched::pool_of(uid).is_none(), "and unregistered");
    }
}
