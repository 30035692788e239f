//! `weft serve`: an HTTP job server on [`weft_pool`] that loses no accepted job.
//!
//! The job server of the Go material's worker-pool chapter, built for real:
//!
//! - `POST /api/jobs` with `{"id"?, "type", "priority"?, "data"}` answers **202** with the job's
//!   id and a `Location`, after the job is committed to SQLite; **400** (JSON error) for bad
//!   JSON, a missing or unknown type, or invalid data; **409** for a duplicate id; **503** with
//!   `Retry-After` when the queue is full or the server is shutting down; **413** for a body
//!   over the limit.
//! - `GET /api/jobs/{id}`: status (`queued`, `running`, `completed`, `failed`, `cancelled`,
//!   `timed_out`) and result; **404** if unknown.
//! - `DELETE /api/jobs/{id}`: cancels a queued or running job (**200**), or says it already
//!   finished (**409**) or is unknown (**404**).
//! - `GET /api/jobs?status=...&limit=...` lists jobs; `GET /healthz`; `GET /metrics` in
//!   Prometheus text format (queue depth per priority, outcomes, latency quantiles, jobs per
//!   stored status).
//!
//! # Losing nothing
//!
//! A job is in the database before its 202 is sent. On start, every job that was queued or
//! running is submitted again (so a job runs *at least once*: one that was running when the
//! process died runs again, and its `attempts` says so). On shutdown (the [`Context`] ends:
//! SIGTERM or Ctrl-C for the CLI), the server answers 503 to new submissions, lets running and
//! queued jobs finish for the grace period, then cancels what is left **and puts it back to
//! `queued`** in the database, so the next start runs it. A job is marked `cancelled` only when
//! a client asked for it.
//!
//! # Priorities
//!
//! `priority` is `0` (low), `1` (normal, the default) or `2` (high), or the names `"low"`,
//! `"normal"`, `"high"`; they map to the pool's levels, which are strict with aging (a waiting
//! low job is promoted one level per [`ServeConfig::aging`]), FIFO within a level.

pub mod api;
pub mod jobs;
mod metrics;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use weft_core::context::Context;
use weft_pool::{JobError as PoolJobError, JobHandle, JobId, Pool, Priority, Shutdown, Stats};

use self::jobs::{JobSpec, JobType};
use self::store::{JobStatus, Store, StoreError};

/// Priority levels of the server's pool: 0 low, 1 normal, 2 high.
pub const PRIORITY_LEVELS: u8 = 3;

/// How the job server runs. [`ServeConfig::default`] gives the CLI's defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Worker count (`NUM_WORKERS`). By default, the number of CPUs.
    pub workers: usize,
    /// Queue capacity per priority level (`QUEUE_SIZE`). By default, 100.
    pub queue_size: usize,
    /// Where the database lives; `None` keeps jobs in memory only (nothing survives a restart).
    pub db: Option<PathBuf>,
    /// Use `synchronous=FULL` (survive power loss, slower). By default, off.
    pub db_full_sync: bool,
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
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_size: 100,
            db: None,
            db_full_sync: false,
            grace: Duration::from_secs(10),
            job_timeout: Duration::from_secs(60),
            work_step: Duration::from_millis(100),
            max_body: 64 * 1024,
            aging: Duration::from_secs(5),
            retry_after_secs: 1,
        }
    }
}

/// What a server run did, returned when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeReport {
    /// Jobs recovered from the database at start and submitted again.
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

/// A job the pool runs: its id and validated spec.
#[derive(Debug, Clone)]
pub(crate) struct PoolJob {
    pub(crate) id: String,
    pub(crate) spec: Arc<JobSpec>,
}

type JobPool = Pool<PoolJob, Value, String>;

/// State shared by the HTTP handlers and the job watchers.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) store: Store,
    pub(crate) pool: JobPool,
    pub(crate) config: ServeConfig,
    /// Jobs submitted to the pool and not yet recorded final: id -> pool job id.
    pub(crate) live: Mutex<HashMap<String, JobId>>,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) accepted: std::sync::atomic::AtomicU64,
    /// Ids of jobs whose client asked to cancel (recorded as `cancelled`, never re-queued).
    pub(crate) cancelled_by_client: Mutex<std::collections::HashSet<String>>,
    pub(crate) watchers: tokio_util::task::TaskTracker,
    pub(crate) requeue: Mutex<Vec<String>>,
}

impl Server {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Hands an accepted (stored) job to the pool and starts its watcher. On a full queue the
    /// job comes back in the error.
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        job: PoolJob,
        priority: u8,
    ) -> Result<(), weft_pool::TrySubmitError<PoolJob>> {
        let id = job.id.clone();
        // Hold the map's lock across submission so that the watcher's removal cannot run
        // before the insertion.
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let handle = self.pool.try_submit_at(Priority::new(priority), job)?;
        live.insert(id.clone(), handle.id());
        drop(live);
        let server = Arc::clone(self);
        self.watchers
            .spawn(async move { server.watch(id, handle).await });
        Ok(())
    }

    /// Waits for a job's outcome and records it: the one place final states are written.
    async fn watch(self: Arc<Self>, id: String, handle: JobHandle<Value, String>) {
        let outcome = handle.await;
        let by_client = self
            .cancelled_by_client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let record = match outcome {
            Ok(result) => Some((JobStatus::Completed, Some(result), None)),
            Err(PoolJobError::Failed(e)) => Some((JobStatus::Failed, None, Some(e))),
            Err(PoolJobError::TimedOut) => Some((
                JobStatus::TimedOut,
                None,
                Some(format!("job ran longer than {:?}", self.config.job_timeout)),
            )),
            Err(PoolJobError::Panicked(panicked)) => Some((
                JobStatus::Failed,
                None,
                Some(format!("job panicked: {}", panicked.message())),
            )),
            Err(PoolJobError::Cancelled) if by_client => Some((
                JobStatus::Cancelled,
                None,
                Some("cancelled by client".into()),
            )),
            // Cancelled or rejected by shutdown: not the client's doing, so the job goes back to
            // `queued` for the next start (see the module docs).
            Err(_) => None,
        };
        match record {
            Some((status, result, error)) => {
                if let Err(e) = self.store.finish(&id, status, result, error).await {
                    tracing::error!(job = %id, error = %e, "could not record the job's final state");
                }
            }
            None => self
                .requeue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(id.clone()),
        }
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    pub(crate) fn stats(&self) -> Stats {
        self.pool.stats()
    }
}

fn build_pool(ctx: &Context, store: &Store, config: &ServeConfig) -> JobPool {
    let step = config.work_step;
    let store = store.clone();
    Pool::builder()
        .workers(config.workers.max(1))
        .priorities(PRIORITY_LEVELS)
        .default_priority(Priority::NORMAL)
        .capacity_per_priority(config.queue_size.max(1))
        .aging(config.aging)
        .timeout(config.job_timeout)
        .context(ctx.without_cancel())
        .build_fn(move |job_ctx: Context, job: PoolJob| {
            let store = store.clone();
            async move {
                match store.mark_running(&job.id).await {
                    Ok(true) => {}
                    // Cancelled (or otherwise ended) while queued: nothing to run.
                    Ok(false) => return Err("job was no longer queued".to_owned()),
                    Err(e) => return Err(format!("cannot start job: {e}")),
                }
                jobs::run(&job_ctx, &job.spec, step)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
}

/// Runs the job server on `listener` until `ctx` ends, then shuts down as the module docs say.
///
/// # Errors
///
/// [`ServeError`] if the database cannot be opened or the HTTP server fails.
///
/// # Cancel safety
///
/// Not cancel safe: dropping the future stops the server without the graceful shutdown (jobs
/// stay in the database as they were and are recovered at the next start). End `ctx` instead.
///
/// ```no_run
/// use weft_apps::serve::{ServeConfig, serve};
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (ctx, _cancel) = weft_apps::shutdown::ctrl_c_context();
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
    let store = match &config.db {
        Some(path) => Store::open(path, config.db_full_sync)?,
        None => Store::in_memory()?,
    };
    // The pool's own context is detached from `ctx`: at shutdown we drain first and cancel
    // only after the grace period, rather than cancelling every job the moment `ctx` ends.
    let pool = build_pool(&ctx, &store, &config);
    let server = Arc::new(Server {
        store,
        pool,
        config,
        live: Mutex::new(HashMap::new()),
        shutting_down: AtomicBool::new(false),
        accepted: std::sync::atomic::AtomicU64::new(0),
        cancelled_by_client: Mutex::new(Default::default()),
        watchers: tokio_util::task::TaskTracker::new(),
        requeue: Mutex::new(Vec::new()),
    });

    // Recover before serving, so recovered jobs keep their place ahead of new ones. The pool's
    // queues are bounded; recovered jobs wait for room (submit), never get dropped.
    let recovered = server.store.recover().await?;
    let recovered_count = recovered.len();
    for record in recovered {
        let Some(job_type) = JobType::parse(&record.job_type) else {
            let _ = server
                .store
                .finish(
                    &record.id,
                    JobStatus::Failed,
                    None,
                    Some(format!("unknown job type {}", record.job_type)),
                )
                .await;
            continue;
        };
        let spec = match JobSpec::parse(job_type, &record.data) {
            Ok(spec) => spec,
            Err(e) => {
                let _ = server
                    .store
                    .finish(&record.id, JobStatus::Failed, None, Some(e.to_string()))
                    .await;
                continue;
            }
        };
        let mut job = PoolJob {
            id: record.id,
            spec: Arc::new(spec),
        };
        let priority = record.priority.min(PRIORITY_LEVELS - 1);
        loop {
            match server.dispatch(job, priority) {
                Ok(()) => break,
                Err(e) if e.is_full() => {
                    job = e.into_inner();
                    // Let workers make room; recovery is bounded by the queue like any submit.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if ctx.is_done() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    if recovered_count > 0 {
        tracing::info!(
            recovered = recovered_count,
            "re-submitted unfinished jobs from the database"
        );
    }

    // The HTTP server outlives the drain: during the grace period clients still read job
    // states, and new submissions get 503 with Retry-After instead of a refused connection.
    let app = api::router(Arc::clone(&server));
    let (http_ctx, stop_http) = Context::background().with_cancel();
    let mut http = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(http_ctx.done())
            .into_future(),
    );
    tokio::select! {
        () = ctx.done() => {}
        ended = &mut http => {
            // The server stopped by itself: that is an accept error, not a shutdown.
            server.shutting_down.store(true, Ordering::Release);
            server.pool.shutdown(Shutdown::Abort).await;
            return Err(ServeError::Http(match ended {
                Ok(Err(e)) => e,
                Ok(Ok(())) => std::io::Error::other("http server ended unexpectedly"),
                Err(e) => std::io::Error::other(e),
            }));
        }
    }

    // Shutdown: refuse new jobs, drain the pool for the grace period, then cancel the rest.
    server.shutting_down.store(true, Ordering::Release);
    let grace = server.config.grace;
    server.pool.shutdown(Shutdown::drain(grace)).await;
    server.watchers.close();
    server.watchers.wait().await;
    let requeue = std::mem::take(&mut *server.requeue.lock().unwrap_or_else(|e| e.into_inner()));
    let requeued = server.store.requeue(requeue).await?;
    stop_http.cancel();
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ServeError::Http(e)),
        Err(e) => return Err(ServeError::Http(std::io::Error::other(e))),
    }
    Ok(ServeReport {
        recovered: recovered_count,
        accepted: server.accepted.load(Ordering::Relaxed),
        requeued,
    })
}

/// Binds `addr` and runs [`serve`]; the listening address is logged.
///
/// # Errors
///
/// [`ServeError::Http`] if `addr` cannot be bound; otherwise as [`serve`].
pub async fn bind_and_serve(
    ctx: Context,
    addr: SocketAddr,
    config: ServeConfig,
) -> Result<ServeReport, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(ServeError::Http)?;
    serve(ctx, listener, config).await
}
