//! `weft serve`: an HTTP job server on [`weft_pool`] that loses no accepted job.
//!
//! The job server of the Go material's worker-pool chapter, built for real:
//!
//! - `POST /api/jobs` with `{"id"?, "type", "priority"?, "data"}` answers **202** with the job's
//!   id and a `Location`, after the job is committed to its store; **400** for bad JSON, a missing
//!   or unknown type, or invalid data; **409** for a duplicate id; **503** with `Retry-After`
//!   when the queue is full (nothing is written) or the server is shutting down; **413** for a
//!   body over the limit; **408** for a body that does not arrive in time. Every error body is
//!   JSON: `{"error": "...", "status": N}`. An `Idempotency-Key` header makes a retried POST
//!   name the same job: the retry gets the same 202 (with `Idempotent-Replayed: true`), not a
//!   second job; the key reused for a different job is a **422**. `"run_at"` (Unix
//!   milliseconds) delays a job, with the PostgreSQL store only (**400** elsewhere).
//! - `GET /api/jobs/{id}`: status (`queued`, `running`, `completed`, `failed`, `cancelled`,
//!   `timed_out`, and with PostgreSQL `dead`) and result; **404** if unknown.
//! - `DELETE /api/jobs/{id}`: cancels a queued or running job (**200**), or says it already
//!   finished (**409**) or is unknown (**404**).
//! - `GET /api/jobs?status=...&limit=...&after=...` lists jobs a page at a time, oldest
//!   first (at most [`api::MAX_PAGE`], 100 by default; `next` in the answer is the `after`
//!   of the next page, `null` on the last); `GET /healthz` (`ok`, `recovering` with
//!   how many stored jobs still wait for queue room, or `shutting_down`); `GET /metrics` in
//!   Prometheus text format (queue depth per priority, outcomes, latency quantiles, jobs per
//!   stored status).
//!
//! # Exposure
//!
//! With a [`Token`], every route but `/healthz` needs `Authorization: Bearer <token>` (compared
//! in constant time). Job ids the server makes are 32 hex digits: the creation time in
//! milliseconds since the Unix epoch (48 bits, so ids sort by age and tell when a job was
//! made) then 80 random bits from the thread's CSPRNG, which make them unguessable. Connections
//! are limited ([`ServeConfig::max_connections`]) and must send their headers and body in time
//! ([`ServeConfig::header_timeout`], [`ServeConfig::body_timeout`]), so slow or idle clients
//! cannot use up the process's file descriptors.
//!
//! # Throughput
//!
//! A submission reserves room in its priority's queue before anything is written, so a full
//! queue costs no database work. With SQLite and PostgreSQL, concurrent submissions share one
//! transaction (group commit, [`store::SqliteConfig`]; on PostgreSQL one multi-row `INSERT`);
//! each client's 202 waits for its own batch's commit.
//!
//! # Losing nothing
//!
//! A job is in the database before its 202 is sent. On start, every job that was queued or
//! running is submitted again (so a job runs *at least once*: one that was running when the
//! process died runs again, and its `attempts` says so). The server answers at once; stored
//! jobs are fed to the pool as queue room frees, ahead of new submissions of their priority. On shutdown (the [`Context`] ends:
//! SIGTERM or Ctrl-C for the CLI), the server answers 503 to new submissions, lets running and
//! queued jobs finish for the grace period, then cancels what is left **and puts it back to
//! `queued`** in the database, so the next start runs it. A job is marked `cancelled` only when
//! a client asked for it.
//!
//! # Many nodes: PostgreSQL
//!
//! With [`ServeConfig::postgres`] (`weft serve --db postgres://...`), every node started on
//! the same database serves one queue ([`store::PgStore`]): a submission is committed to the
//! database (group commit, one multi-row insert per batch) and answered 202 by whichever node
//! got it; idle nodes hear of it through `LISTEN/NOTIFY` and claim it with `FOR UPDATE SKIP
//! LOCKED`, highest priority first (with aging), under a lease their heartbeat renews while
//! it runs. A node killed mid-job stops renewing; a sweep on any node returns the job to the
//! queue once its lease lapses (by default within 40 s), and the old node's late outcome is
//! refused (each claim is a numbered attempt). `DELETE` on any node stops the job on the node
//! running it within a notification's round trip. Jobs run *at least once*, said plainly: a
//! job that was running on a killed node runs again. The per-level queue room
//! ([`ServeConfig::queue_size`]) holds over all the nodes: a submission beyond it gets the
//! same 503 as on SQLite.
//!
//! # Priorities
//!
//! `priority` is `0` (low), `1` (normal, the default) or `2` (high), or the names `"low"`,
//! `"normal"`, `"high"`; they map to the pool's levels, which are strict with aging (a waiting
//! low job is promoted one level per [`ServeConfig::aging`]), FIFO within a level.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod admission;
pub mod api;
mod auth;
mod http;
pub mod jobs;
mod metrics;
mod node;
mod shards;
pub mod store;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::FutureExt as _;
use serde_json::Value;
use weft_core::Panicked;
use weft_core::context::{Context, ContextError};
use weft_pool::{JobId, Pool, Priority, Shutdown, Stats};

pub use self::auth::Token;

use self::admission::{Admission, Room};
use self::jobs::{JobSpec, JobType};
use self::node::Node;
use self::shards::Sharded;
use self::store::{
    JobRecord, JobStatus, JobStore, PgConfig, PgStore, SqliteConfig, Store, StoreError,
};

/// Priority levels of the server's pool: 0 low, 1 normal, 2 high.
pub const PRIORITY_LEVELS: u8 = 3;

/// How the job server runs. [`ServeConfig::default`] gives the CLI's defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Worker count (`NUM_WORKERS`). By default, the number of CPUs.
    pub workers: usize,
    /// Queue capacity per priority level (`QUEUE_SIZE`). By default, 100.
    pub queue_size: usize,
    /// Where the SQLite database lives; `None` (and no [`postgres`](ServeConfig::postgres))
    /// keeps jobs in memory only (nothing survives a restart).
    pub db: Option<PathBuf>,
    /// A PostgreSQL database shared by every node that names it: they form one queue (see
    /// [`store::PgStore`]). Takes the place of [`db`](ServeConfig::db). By default, none.
    pub postgres: Option<PgConfig>,
    /// Use `synchronous=FULL` (survive power loss; one fsync per commit batch). By default, off.
    pub db_full_sync: bool,
    /// How long the SQLite committer gathers more submissions after the first of a batch. By
    /// default zero: a batch is what queued up during the previous commit.
    pub commit_window: Duration,
    /// The most writes in one SQLite transaction. By default, 512.
    pub commit_batch: NonZeroUsize,
    /// How long running jobs may finish after shutdown starts. By default, 10 s.
    pub grace: Duration,
    /// Per-job timeout. By default, 60 s.
    pub job_timeout: Duration,
    /// Duration of one unit of simulated work. By default, 100 ms.
    pub work_step: Duration,
    /// Largest accepted request body. By default, 64 KiB.
    pub max_body: usize,
    /// A waiting job moves up one priority level per this much waiting. By default, 5 s.
    pub aging: Duration,
    /// `Retry-After` seconds sent with 503. By default, 1.
    pub retry_after_secs: u64,
    /// The bearer token every route but `/healthz` requires. By default, none (open).
    pub token: Option<Token>,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle. By default, 10 s.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body. By default, 10 s.
    pub body_timeout: Duration,
    /// Connections served at once; more wait to be accepted. By default, what the process's
    /// file-descriptor limit allows after a reserve of 64 (within 16..=10,000).
    pub max_connections: usize,
    /// Delete finished jobs (every final state) this long after they ended, checked every
    /// tenth of it (at least every 100 ms, at most every hour). By default, none: finished
    /// jobs are kept.
    pub keep_finished: Option<Duration>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let sqlite = SqliteConfig::default();
        ServeConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_size: 100,
            db: None,
            postgres: None,
            db_full_sync: false,
            commit_window: sqlite.commit_window,
            commit_batch: sqlite.commit_batch,
            grace: Duration::from_secs(10),
            job_timeout: Duration::from_secs(60),
            work_step: Duration::from_millis(100),
            max_body: 64 * 1024,
            aging: Duration::from_secs(5),
            retry_after_secs: 1,
            token: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: http::default_max_connections(),
            keep_finished: None,
        }
    }
}

/// What a server run did, returned when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeReport {
    /// Unfinished jobs found in the database at start, to run again.
    pub recovered: usize,
    /// Jobs accepted (202) during this run.
    pub accepted: u64,
    /// Unfinished jobs put back to `queued` at shutdown, for the next start.
    pub requeued: usize,
}

/// The server failed to start or stopped on an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The job database could not be opened or used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP server failed (binding, or accepting connections).
    #[error("http server error: {0}")]
    Http(#[source] std::io::Error),
}

/// A job the pool runs: its id, validated spec, and the queue room it holds until it starts.
#[derive(Debug)]
pub(crate) struct PoolJob {
    pub(crate) id: String,
    pub(crate) spec: Arc<JobSpec>,
    pub(crate) room: Option<Room>,
    /// The attempt this node claimed from a shared queue (it is `running` already, and its
    /// outcome is fenced by this number); `None` for a job of a local store.
    pub(crate) attempt: Option<u32>,
}

/// A job in the pool, with the way back to the server that records how it ends.
///
/// No task waits for each queued job: whichever way the job leaves the pool, dropping what it
/// became records its end. A worker that starts it turns it into a [`Run`]; a job dropped
/// unstarted (cancelled while queued, or left in the queue at shutdown) is handled here.
#[derive(Debug)]
pub(crate) struct Dispatched {
    job: PoolJob,
    /// Empty once a worker took the job over (or when it was never accepted).
    server: Weak<Server>,
}

impl Drop for Dispatched {
    fn drop(&mut self) {
        if let Some(server) = self.server.upgrade() {
            let id = std::mem::take(&mut self.job.id);
            server.ended(id, self.job.attempt, None, None);
        }
    }
}

/// A job's run in a worker: its outcome once it has one, and the job's context to tell a
/// timeout from a cancel when the pool drops the run before it ends.
struct Run {
    server: Arc<Server>,
    id: String,
    attempt: Option<u32>,
    outcome: Option<Outcome>,
    ctx: Context,
}

/// A final state to record: status, result, error.
type Outcome = (JobStatus, Option<Value>, Option<String>);

impl Drop for Run {
    fn drop(&mut self) {
        let id = std::mem::take(&mut self.id);
        // Dropped without an outcome: the pool's timer ended it (its context says so), or a
        // cancel did.
        let timed_out = self.ctx.err() == Some(ContextError::DeadlineExceeded);
        Arc::clone(&self.server).ended(id, self.attempt, self.outcome.take(), Some(timed_out));
    }
}

type JobPool = Pool<Dispatched, (), String>;

/// State shared by the HTTP handlers and the pool's jobs.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) store: Store,
    pub(crate) pool: JobPool,
    pub(crate) config: ServeConfig,
    pub(crate) admission: Admission,
    /// Jobs submitted to the pool and not yet recorded final: id -> pool job id (`None` for
    /// the moment between the insertion and the submission).
    pub(crate) live: Sharded<String, Option<JobId>>,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) accepted: AtomicU64,
    /// Submissions refused because their queue was full.
    pub(crate) rejected: AtomicU64,
    /// Stored jobs found at start and not yet handed to the pool.
    pub(crate) recovering: AtomicUsize,
    /// Ids of jobs whose client asked to cancel (recorded as `cancelled`, never re-queued).
    pub(crate) cancelled_by_client: Mutex<std::collections::HashSet<String>>,
    /// Recovery, and the short tasks that record final states (one per ended job, none per
    /// queued job).
    pub(crate) watchers: tokio_util::task::TaskTracker,
    pub(crate) requeue: Mutex<Vec<String>>,
    /// With PostgreSQL: this node's part of the shared queue.
    pub(crate) node: Option<Node>,
}

/// The pool refused a job: it is closed (shutdown began).
#[derive(Debug)]
pub(crate) struct PoolClosed;

impl Server {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Hands an accepted (stored) job to the pool. Nothing waits for it: its end is recorded
    /// by the job itself ([`Run`], [`Dispatched`]). The pool's queue is bounded by
    /// [`Admission`], not by the pool, so this fails only once the pool is closed.
    pub(crate) fn dispatch(self: &Arc<Self>, job: PoolJob, priority: u8) -> Result<(), PoolClosed> {
        let id = job.id.clone();
        // In the map before the pool has it, so that the job's end (which removes it) cannot
        // come first and leave an entry behind.
        self.live.shard(&id).insert(id.clone(), None);
        let dispatched = Dispatched {
            job,
            server: Arc::downgrade(self),
        };
        // The pool is unbounded (see `build_pool`), so the submission never waits for room.
        let submitted = self
            .pool
            .submit_detached_at(Priority::new(priority), dispatched)
            .now_or_never();
        match submitted {
            Some(Ok(pool_id)) => {
                if let Some(slot) = self.live.shard(&id).get_mut(id.as_str()) {
                    *slot = Some(pool_id);
                }
                Ok(())
            }
            refused => {
                self.live.shard(&id).remove(id.as_str());
                // Not accepted after all: the caller answers for it, nothing is recorded.
                let mut job = match refused {
                    Some(Err(e)) => Some(e.into_inner()),
                    _ => None,
                };
                if let Some(job) = &mut job {
                    job.server = Weak::new();
                }
                Err(PoolClosed)
            }
        }
    }

    /// Records how a job left the pool: `outcome` if its run produced one; otherwise, with
    /// `timed_out` (`None`: it never started), a timeout, a client's cancel, or else a job to
    /// put back to `queued` for the next start. The one place final states are written.
    fn ended(
        self: Arc<Self>,
        id: String,
        attempt: Option<u32>,
        outcome: Option<Outcome>,
        timed_out: Option<bool>,
    ) {
        // The run is over: a heartbeat from now on must not take the job, soon recorded
        // final, for one that was taken from this node (its lease is still renewed until the
        // outcome is recorded).
        if let Some(node) = &self.node {
            node.ran(&id);
        }
        let by_client = self
            .cancelled_by_client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let record = outcome.or_else(|| {
            if timed_out == Some(true) {
                Some((
                    JobStatus::TimedOut,
                    None,
                    Some(format!("job ran longer than {:?}", self.config.job_timeout)),
                ))
            } else if by_client {
                Some((
                    JobStatus::Cancelled,
                    None,
                    Some("cancelled by client".into()),
                ))
            } else {
                // Cancelled or refused by shutdown: not the client's doing, so the job goes
                // back to `queued` for the next start (see the module docs).
                None
            }
        });
        match record {
            Some((status, result, error)) if tokio::runtime::Handle::try_current().is_ok() => {
                let server = Arc::clone(&self);
                self.watchers.spawn(async move {
                    if let Err(e) = server.store.finish(&id, attempt, status, result, error).await {
                        tracing::error!(job = %id, error = %e, "could not record the job's final state");
                    }
                    server.forget(&id);
                });
            }
            // No runtime left to write with: the job stays as stored, and the next start
            // recovers it.
            Some(_) => self.forget(&id),
            None => {
                self.requeue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(id.clone());
                self.forget(&id);
            }
        }
    }

    /// The job's end is recorded: it is no longer this process's to cancel.
    fn forget(&self, id: &str) {
        self.live.shard(id).remove(id);
        if let Some(node) = &self.node {
            node.done(id);
        }
    }

    /// Cancels the job `id` if this process runs it (a client asked, here or on another node):
    /// its context ends, and it is recorded `cancelled`, never re-queued.
    pub(crate) fn cancel_local(&self, id: &str) {
        let pool_id = self.live.shard(id).get(id).copied().flatten();
        if let Some(pool_id) = pool_id {
            self.cancelled_by_client
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_owned());
            self.pool.cancel(pool_id);
        }
    }

    /// Stops a job that is no longer this node's (its lease lapsed and another node took it):
    /// its outcome would be refused anyway (fencing), so it stops now.
    pub(crate) fn stop_lost(&self, id: &str) {
        let pool_id = self.live.shard(id).get(id).copied().flatten();
        if let Some(pool_id) = pool_id {
            self.pool.cancel(pool_id);
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        self.pool.stats()
    }

    /// Feeds jobs found in the store at start to the pool, each as soon as its priority's
    /// queue has room, until all are in or shutdown begins (the rest stay `queued` in the
    /// store for the next start).
    async fn feed_recovered(self: Arc<Self>, ctx: Context, recovered: Vec<JobRecord>) {
        for record in recovered {
            let priority = record.priority.min(PRIORITY_LEVELS - 1);
            let spec = JobType::parse(&record.job_type)
                .ok_or_else(|| format!("unknown job type {}", record.job_type))
                .and_then(|t| JobSpec::parse(t, &record.data).map_err(|e| e.to_string()));
            match spec {
                Err(e) => {
                    let _ = self
                        .store
                        .finish(&record.id, None, JobStatus::Failed, None, Some(e))
                        .await;
                }
                Ok(spec) => {
                    let room = tokio::select! {
                        room = self.admission.reserve(priority) => room,
                        () = ctx.done() => return,
                    };
                    let job = PoolJob {
                        id: record.id,
                        spec: Arc::new(spec),
                        room,
                        attempt: None,
                    };
                    if self.is_shutting_down() || self.dispatch(job, priority).is_err() {
                        return;
                    }
                }
            }
            self.recovering.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn build_pool(ctx: &Context, store: &Store, config: &ServeConfig) -> JobPool {
    let step = config.work_step;
    let store = store.clone();
    // Unbounded by name: `Admission` holds the queue to `queue_size` per level before a job is
    // stored, so the pool never refuses a stored job for want of room.
    Pool::builder()
        .workers(config.workers.max(1))
        .priorities(PRIORITY_LEVELS)
        .default_priority(Priority::NORMAL)
        .unbounded()
        .aging(config.aging)
        .timeout(config.job_timeout)
        .context(ctx.without_cancel())
        .build_fn(move |job_ctx: Context, mut job: Dispatched| {
            let store = store.clone();
            // Taken over: from here the run records the job's end.
            let server = std::mem::take(&mut job.server).upgrade();
            let id = std::mem::take(&mut job.job.id);
            let attempt = job.job.attempt;
            let spec = Arc::clone(&job.job.spec);
            // Started: its place in the queue is free for the next submission.
            drop(job.job.room.take());
            drop(job);
            async move {
                let Some(server) = server else {
                    return Err("the server stopped".to_owned());
                };
                let mut run = Run {
                    server,
                    id,
                    attempt,
                    outcome: None,
                    ctx: job_ctx.clone(),
                };
                // A claimed job is `running` in the store already.
                let start = match attempt {
                    Some(attempt) => Ok(Some(attempt)),
                    None => store.mark_running(&run.id).await,
                };
                let refused = match start {
                    Ok(Some(_attempt)) => None,
                    // Cancelled (or otherwise ended) while queued: nothing to run.
                    Ok(None) => Some("job was no longer queued".to_owned()),
                    Err(e) => Some(format!("cannot start job: {e}")),
                };
                if let Some(e) = refused {
                    run.outcome = Some((JobStatus::Failed, None, Some(e.clone())));
                    return Err(e);
                }
                let ran = std::panic::AssertUnwindSafe(jobs::run(&job_ctx, &spec, step))
                    .catch_unwind()
                    .await;
                match ran {
                    Ok(Ok(result)) => {
                        run.outcome = Some((JobStatus::Completed, Some(result), None));
                        Ok(())
                    }
                    // Stopped by its context: the drop of `run` tells a timeout from a cancel.
                    Ok(Err(e @ jobs::JobError::Stopped(_))) => Err(e.to_string()),
                    Ok(Err(e)) => {
                        let e = e.to_string();
                        run.outcome = Some((JobStatus::Failed, None, Some(e.clone())));
                        Err(e)
                    }
                    Err(payload) => {
                        let panicked = Panicked::from_payload(&*payload);
                        run.outcome = Some((
                            JobStatus::Failed,
                            None,
                            Some(format!("job panicked: {}", panicked.message())),
                        ));
                        drop(run);
                        // The pool counts it as the panic it was.
                        std::panic::resume_unwind(payload)
                    }
                }
            }
        })
}

/// A job server whose store is open: [`run`](JobServer::run) serves it.
///
/// Opening first lets a caller report a bad database before it says the server is up.
#[derive(Debug)]
pub struct JobServer {
    store: Store,
    config: ServeConfig,
}

impl JobServer {
    /// Opens the store `config` names: PostgreSQL at [`ServeConfig::postgres`] (creating or
    /// migrating its schema), else SQLite at [`ServeConfig::db`], else memory.
    ///
    /// # Errors
    ///
    /// [`ServeError::Store`] if the database cannot be reached, opened or created.
    ///
    /// ```
    /// use weft_serve::{JobServer, ServeConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let bad = ServeConfig { db: Some("/dev/null/jobs.db".into()), ..ServeConfig::default() };
    /// assert!(JobServer::open(bad).await.is_err());
    /// # }
    /// ```
    pub async fn open(config: ServeConfig) -> Result<JobServer, ServeError> {
        if let Some(pg) = &config.postgres {
            // The queue room per level holds over every node: the database counts it.
            let pg = pg.clone().queue_size(config.queue_size);
            let store = Store::Postgres(PgStore::open(pg).await?);
            return Ok(JobServer { store, config });
        }
        let store = match &config.db {
            Some(path) => Store::open(
                path,
                SqliteConfig::default()
                    .full_sync(config.db_full_sync)
                    .commit_window(config.commit_window)
                    .commit_batch(config.commit_batch),
            )?,
            None => Store::in_memory(),
        };
        Ok(JobServer { store, config })
    }

    /// The store the server runs on (for example, to read [`store::PgStore::queries`]).
    ///
    /// ```
    /// use weft_serve::{JobServer, ServeConfig, store::Store};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_serve::ServeError> {
    /// let server = JobServer::open(ServeConfig::default()).await?;
    /// assert!(matches!(server.store(), Store::Memory(_)));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs the job server on `listener` until `ctx` ends, then shuts down as the module docs
    /// say.
    ///
    /// # Errors
    ///
    /// [`ServeError`] if the store fails at start or at shutdown.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future stops the server without the graceful shutdown
    /// (jobs stay in the database as they were and are recovered at the next start). End `ctx`
    /// instead.
    pub async fn run(
        self,
        ctx: Context,
        listener: tokio::net::TcpListener,
    ) -> Result<ServeReport, ServeError> {
        let JobServer { store, config } = self;
        // The pool's own context is detached from `ctx`: at shutdown we drain first and cancel
        // only after the grace period, rather than cancelling every job the moment `ctx` ends.
        let pool = build_pool(&ctx, &store, &config);
        // A shared queue is never "recovered" by one node: other nodes may be running its
        // jobs. Jobs of a dead node come back through the sweep, when their leases lapse.
        let node = match &store {
            Store::Postgres(pg) => Some(Node::new(pg.clone(), config.workers)),
            _ => None,
        };
        let recovered = if node.is_some() {
            Vec::new()
        } else {
            store.recover().await?
        };
        let recovered_count = recovered.len();
        let server = Arc::new(Server {
            store,
            pool,
            admission: Admission::new(PRIORITY_LEVELS, config.queue_size),
            config,
            live: Sharded::default(),
            shutting_down: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            recovering: AtomicUsize::new(recovered_count),
            cancelled_by_client: Mutex::new(Default::default()),
            watchers: tokio_util::task::TaskTracker::new(),
            requeue: Mutex::new(Vec::new()),
            node,
        });
        let purger = server
            .config
            .keep_finished
            .map(|keep| tokio::spawn(purge_finished(server.store.clone(), keep, ctx.clone())));
        let (node_ctx, stop_node) = Context::background().with_cancel();
        let node_task = server
            .node
            .is_some()
            .then(|| tokio::spawn(node::run(Arc::clone(&server), ctx.clone(), node_ctx)));
        if recovered_count > 0 {
            tracing::info!(
                recovered = recovered_count,
                "feeding unfinished jobs from the database to the pool as room frees"
            );
            // Waiting for room first, they keep their place ahead of new submissions.
            server
                .watchers
                .spawn(Arc::clone(&server).feed_recovered(ctx.clone(), recovered));
        }

        // The HTTP server outlives the drain: during the grace period clients still read job
        // states, and new submissions get 503 with Retry-After instead of a refused connection.
        let app = api::router(Arc::clone(&server));
        let (http_ctx, stop_http) = Context::background().with_cancel();
        let http = tokio::spawn(http::run(
            listener,
            app,
            server.config.max_connections,
            server.config.header_timeout,
            http_ctx,
        ));
        ctx.done().await;

        // Shutdown: refuse new jobs, drain the pool for the grace period, then cancel the rest.
        server.shutting_down.store(true, Ordering::Release);
        let grace = server.config.grace;
        server.pool.shutdown(Shutdown::drain(grace)).await;
        server.watchers.close();
        server.watchers.wait().await;
        stop_node.cancel();
        if let Some(task) = node_task {
            let _ = task.await;
        }
        if let Some(task) = purger {
            let _ = task.await;
        }
        let requeue =
            std::mem::take(&mut *server.requeue.lock().unwrap_or_else(|e| e.into_inner()));
        let requeued = server.store.requeue(requeue).await?;
        stop_http.cancel();
        if let Err(e) = http.await {
            return Err(ServeError::Http(std::io::Error::other(e)));
        }
        Ok(ServeReport {
            recovered: recovered_count,
            accepted: server.accepted.load(Ordering::Relaxed),
            requeued,
        })
    }
}

/// Deletes jobs that finished more than `keep` ago, every tenth of `keep`, until `ctx` ends.
async fn purge_finished(store: Store, keep: Duration, ctx: Context) {
    let every = (keep / 10).clamp(Duration::from_millis(100), Duration::from_secs(3600));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ctx.done() => return,
            _ = tick.tick() => {}
        }
        match store.purge_finished(keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "deleted finished jobs past --keep-finished"),
            Err(e) => tracing::warn!(error = %e, "could not delete old finished jobs"),
        }
    }
}

/// Opens the store and runs the job server on `listener` until `ctx` ends:
/// [`JobServer::open`] then [`JobServer::run`].
///
/// # Errors
///
/// [`ServeError`] if the database cannot be opened or fails.
///
/// # Cancel safety
///
/// As for [`JobServer::run`].
///
/// ```no_run
/// use weft_serve::{ServeConfig, serve};
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (ctx, _cancel) = weft_core::signal::ctrl_c_context();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let report = serve(ctx, listener, ServeConfig::default()).await?;
/// println!("accepted {} jobs", report.accepted);
/// # Ok(())
/// # }
/// ```
pub async fn serve(
    ctx: Context,
    listener: tokio::net::TcpListener,
    config: ServeConfig,
) -> Result<ServeReport, ServeError> {
    JobServer::open(config).await?.run(ctx, listener).await
}

/// Binds `addr` and runs [`serve`].
///
/// # Errors
///
/// [`ServeError::Http`] if `addr` cannot be bound; otherwise as [`serve`].
pub async fn bind_and_serve(
    ctx: Context,
    addr: SocketAddr,
    config: ServeConfig,
) -> Result<ServeReport, ServeError> {
    let server = JobServer::open(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(ServeError::Http)?;
    server.run(ctx, listener).await
}
