//! [`Builder`]: how a [`Pool`] is configured.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tower_service::Service;
use weft_core::Context;

use crate::config::{Blacklist, Capacity, Config, KeyFn, PanicPolicy};
use crate::handler::{Contextual, FnHandler, Handler, Plain, WithContext};
use crate::pool::Pool;
use crate::priority::Priority;
use crate::sched::{Shared, Spawner};
use crate::worker;

impl<Req, Resp, E> Pool<Req, Resp, E> {
    /// A builder with the defaults; see [`Builder`].
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use weft_pool::Pool;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder().workers(1).build_fn(|_ctx, n: u8| async move { Ok::<_, Infallible>(n) });
    /// assert_eq!(pool.stats().workers, 1);
    /// # }
    /// ```
    pub fn builder() -> Builder<Req, Resp, E> {
        Builder::new()
    }
}

/// Configures and builds a [`Pool`]; from [`Pool::builder`].
///
/// Every setter states its default. `build*` must be called inside a tokio runtime: it spawns
/// the workers there.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use weft_core::Context;
/// use weft_pool::{Blacklist, PanicPolicy, Pool, Priority};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (ctx, _cancel) = Context::background().with_cancel();
/// let pool = Pool::builder()
///     .dynamic_workers(1..=8)
///     .idle_timeout(Duration::from_secs(30))
///     .priorities(3)
///     .aging(Duration::from_millis(500))
///     .capacity_per_priority(100)
///     .timeout(Duration::from_secs(5))
///     .panic_policy(PanicPolicy::ReplaceWorker)
///     .job_key(|name: &String| Some(name.clone()))
///     .blacklist(Blacklist::after_panics(3))
///     .context(ctx)
///     .build_fn(|_ctx, name: String| async move { Ok::<_, Infallible>(name.len()) });
/// assert_eq!(pool.submit_at(Priority::HIGH, "urgent".into()).await.unwrap().await, Ok(6));
/// # }
/// ```
pub struct Builder<Req, Resp, E> {
    min: usize,
    max: usize,
    idle_timeout: Duration,
    scale_up_depth: usize,
    capacity: Capacity,
    levels: u8,
    default_priority: u8,
    aging: Option<Duration>,
    timeout: Option<Duration>,
    panic_policy: PanicPolicy,
    blacklist: Option<Blacklist>,
    job_key: Option<KeyFn<Req>>,
    context: Context,
    batch: usize,
    _marker: PhantomData<fn() -> (Resp, E)>,
}

impl<Req, Resp, E> Clone for Builder<Req, Resp, E> {
    fn clone(&self) -> Self {
        Builder {
            job_key: self.job_key.clone(),
            context: self.context.clone(),
            _marker: PhantomData,
            ..*self
        }
    }
}

impl<Req, Resp, E> fmt::Debug for Builder<Req, Resp, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &(self.min..=self.max))
            .field("idle_timeout", &self.idle_timeout)
            .field("capacity", &self.capacity)
            .field("levels", &self.levels)
            .field("aging", &self.aging)
            .field("timeout", &self.timeout)
            .field("panic_policy", &self.panic_policy)
            .field("blacklist", &self.blacklist)
            .field("job_key", &self.job_key.is_some())
            .finish_non_exhaustive()
    }
}

impl<Req, Resp, E> Default for Builder<Req, Resp, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Req, Resp, E> Builder<Req, Resp, E> {
    /// A builder with the defaults (see each setter).
    pub fn new() -> Self {
        let n = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
        Builder {
            min: n,
            max: n,
            idle_timeout: Duration::from_secs(10),
            scale_up_depth: 1,
            capacity: Capacity::Shared(1024),
            levels: 1,
            default_priority: 0,
            aging: Some(Duration::from_secs(1)),
            timeout: None,
            panic_policy: PanicPolicy::KeepWorker,
            blacklist: None,
            job_key: None,
            context: Context::background(),
            batch: 256,
            _marker: PhantomData,
        }
    }

    /// A fixed number of workers. By default, the number of CPUs.
    ///
    /// # Panics
    ///
    /// If `n` is 0 (a pool without workers would never run a job).
    #[track_caller]
    pub fn workers(mut self, n: usize) -> Self {
        assert!(n > 0, "a pool needs at least one worker");
        self.min = n;
        self.max = self.min;
        self
    }

    /// Between `min` and `max` workers (`max` at least 1): the pool starts `min`, adds one when
    /// a job is queued while no worker is idle and the queue holds at least
    /// [`scale_up_at`](Builder::scale_up_at) jobs, and a worker above `min` stops after
    /// [`idle_timeout`](Builder::idle_timeout) without work. By default the pool is fixed.
    ///
    /// # Panics
    ///
    /// If `max` is 0.
    #[track_caller]
    pub fn dynamic_workers(mut self, range: RangeInclusive<usize>) -> Self {
        assert!(*range.end() > 0, "a pool needs at least one worker");
        self.max = *range.end();
        self.min = (*range.start()).min(self.max);
        self
    }

    /// How long a worker above the minimum may idle before it stops. By default, 10 s.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// The queue depth at which a dynamic pool adds a worker. By default, 1 (any queued job
    /// with no idle worker).
    pub fn scale_up_at(mut self, depth: NonZeroUsize) -> Self {
        self.scale_up_depth = depth.get();
        self
    }

    /// At most `n` queued jobs in all, across priorities. This is the default, with `n` = 1024.
    ///
    /// # Panics
    ///
    /// If `n` is 0 (no job could ever be queued; use [`unbounded`](Builder::unbounded) for no
    /// limit).
    #[track_caller]
    pub fn capacity(mut self, n: usize) -> Self {
        assert!(n > 0, "a pool's capacity must be at least 1");
        self.capacity = Capacity::Shared(n);
        self
    }

    /// At most `n` queued jobs per priority level, so a flood of low jobs cannot block the
    /// submission of high ones. By default capacity is shared.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn capacity_per_priority(mut self, n: usize) -> Self {
        assert!(n > 0, "a pool's capacity must be at least 1");
        self.capacity = Capacity::PerPriority(n);
        self
    }

    /// No capacity limit: `submit` never waits. Only by name: by default the queue is bounded.
    pub fn unbounded(mut self) -> Self {
        self.capacity = Capacity::Unbounded;
        self
    }

    /// The number of priority levels, `1..=64`: level `n - 1` is the highest. By default, 1.
    ///
    /// # Panics
    ///
    /// If `levels` is 0 or above 64.
    #[track_caller]
    pub fn priorities(mut self, levels: u8) -> Self {
        assert!((1..=64).contains(&levels), "priority levels must be 1..=64");
        self.levels = levels;
        self.default_priority = self.default_priority.min(levels - 1);
        self
    }

    /// The level [`Pool::submit`] and the `Service` impl use. By default, 0 (the lowest).
    ///
    /// # Panics
    ///
    /// If `priority` is not below the number of levels (set [`priorities`](Builder::priorities)
    /// first).
    #[track_caller]
    pub fn default_priority(mut self, priority: Priority) -> Self {
        let priority = priority.get();
        assert!(priority < self.levels, "priority {priority} out of range");
        self.default_priority = priority;
        self
    }

    /// How fast a waiting job gains priority: each `rate` of waiting counts as one level, so a
    /// low job that has waited `rate` longer than a job one level above goes first. `None`
    /// gives strict priorities (low levels can starve). By default, 1 s.
    pub fn aging(mut self, rate: impl Into<Option<Duration>>) -> Self {
        self.aging = rate.into();
        self
    }

    /// A per-job timeout, from the job's start: past it the job resolves
    /// [`JobError::TimedOut`](crate::JobError::TimedOut), its future is dropped and its Context
    /// (whose deadline it is) is cancelled. By default, none.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// What happens to a worker whose job panicked. By default, [`PanicPolicy::KeepWorker`].
    pub fn panic_policy(mut self, policy: PanicPolicy) -> Self {
        self.panic_policy = policy;
        self
    }

    /// The key jobs are grouped by for [`blacklist`](Builder::blacklist) (`None`: never
    /// blacklisted). By default, no key.
    pub fn job_key<F>(mut self, key: F) -> Self
    where
        F: Fn(&Req) -> Option<String> + Send + Sync + 'static,
    {
        self.job_key = Some(Arc::new(key));
        self
    }

    /// Blacklists job keys that keep panicking (needs [`job_key`](Builder::job_key)). By
    /// default, off.
    pub fn blacklist(mut self, blacklist: Blacklist) -> Self {
        self.blacklist = Some(blacklist);
        self
    }

    /// The Context the pool runs under: when it is done, the pool shuts down as with
    /// [`Shutdown::Abort`](crate::Shutdown::Abort), and every job's Context is its
    /// descendant (so values set on it reach the handler). By default, a fresh background
    /// Context.
    pub fn context(mut self, ctx: Context) -> Self {
        self.context = ctx;
        self
    }

    /// The most jobs a worker takes from the queue per lock. Workers take fewer when few jobs
    /// are queued (never more than their share) and when jobs are slow: a batch holds about
    /// 25 µs of work at the recent average run time (so a job queued behind it, say one of a
    /// higher priority, waits about that long at most), and jobs over 25 µs are taken one at a
    /// time. A worker that finds the queue empty watches it a few microseconds (yielding its
    /// thread to other tasks between looks) for this many jobs to come before it parks. By default, 256 (about 25 µs of 100 ns jobs).
    pub fn batch(mut self, n: NonZeroUsize) -> Self {
        self.batch = n.get();
        self
    }
}

impl<Req, Resp, E> Builder<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + 'static,
{
    /// Builds a pool around `service`, a `tower::Service<Req>` cloned per worker. The handler
    /// does not see a per-job Context (none is created): cancelling or timing out a running
    /// job drops its future.
    ///
    /// Each worker drives its own clone with tower's contract: `poll_ready` before it takes a
    /// job, then `call`. A clone whose `poll_ready` fails or panics is replaced by a fresh clone
    /// of `service` (counted in [`Stats::restarts`](crate::Stats)); one that stays `Pending`
    /// holds its worker back, so the other workers take the jobs.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use weft_pool::Pool;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder()
    ///     .workers(2)
    ///     .build(tower::service_fn(|n: u64| async move { Ok::<_, Infallible>(n * 2) }));
    /// assert_eq!(pool.submit(21).await.unwrap().await, Ok(42));
    /// # }
    /// ```
    #[track_caller]
    pub fn build<S>(self, service: S) -> Pool<Req, Resp, E>
    where
        S: Service<Req, Response = Resp, Error = E> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        self.build_handler(Plain(service))
    }

    /// Builds a pool around `service`, a `tower::Service<WithContext<Req>>` cloned per worker:
    /// each call gets the job's own [`Context`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[track_caller]
    pub fn build_with_context<S>(self, service: S) -> Pool<Req, Resp, E>
    where
        S: Service<WithContext<Req>, Response = Resp, Error = E> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        self.build_handler(Contextual(service))
    }

    /// Builds a pool around an async closure taking the job's [`Context`] and the request.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[track_caller]
    pub fn build_fn<F, Fut>(self, f: F) -> Pool<Req, Resp, E>
    where
        F: Fn(Context, Req) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        self.build_handler(FnHandler(f))
    }

    #[track_caller]
    fn build_handler<H>(self, handler: H) -> Pool<Req, Resp, E>
    where
        H: Handler<Req, Response = Resp, Error = E> + Clone,
    {
        let runtime = tokio::runtime::Handle::current();
        let capacity = match self.capacity {
            Capacity::Unbounded => None,
            Capacity::Shared(n) => {
                let s = Arc::new(Semaphore::new(n));
                Some(vec![s; self.levels as usize])
            }
            Capacity::PerPriority(n) => Some(
                (0..self.levels)
                    .map(|_| Arc::new(Semaphore::new(n)))
                    .collect(),
            ),
        };
        let config = Config {
            levels: self.levels,
            timeout: self.timeout,
            panic_policy: self.panic_policy,
            job_key: self.job_key,
            batch: self.batch,
            idle_timeout: self.idle_timeout,
            scale_up_depth: self.scale_up_depth,
        };
        let shared = Arc::new(Shared::new(
            config,
            capacity,
            self.aging,
            (self.min, self.max),
            self.blacklist,
            &self.context,
        ));
        let prototype = Arc::new(Mutex::new(handler));
        let spawner: Spawner<Req, Resp, E> = Box::new(move |shared, slot| {
            let fut = worker::run::<Req, H>(Arc::clone(shared), Arc::clone(&prototype), slot);
            shared.spawn_task(fut, &runtime);
        });
        shared.start(spawner, self.min, self.max);
        Pool::from_shared(shared, self.default_priority)
    }
}
