//! The job server's store: every accepted job and its state, behind one trait, [`JobStore`].
//!
//! - [`SqliteStore`] (`--db FILE`): durable. A job is committed *before* the server answers 202,
//!   so an accepted job survives a crash or restart of the process: on start,
//!   [`JobStore::recover`] hands back every job that was queued or running, and the server runs
//!   it again (at least once). Concurrent writes share one transaction (group commit, see
//!   [`SqliteConfig`]).
//! - [`MemoryStore`] (`--in-memory`): the same operations on a map; nothing survives a restart.
//!
//! [`Store`] picks one at start-up and is itself a [`JobStore`]. Every engine passes one
//! conformance suite (`tests/store_conformance.rs`): the rules are listed on [`JobStore`].

mod memory;
mod postgres;
mod render;
mod sqlite;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use self::memory::MemoryStore;
pub use self::postgres::{Claimed, PgConfig, PgStore, QueueEvent, QueueEvents, Swept};
pub use self::sqlite::{SqliteConfig, SqliteStore};

/// The state of a job, as stored and as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// Accepted, waiting for a worker.
    Queued,
    /// A worker is running it.
    Running,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled by a client (or by shutdown, when configured to cancel).
    Cancelled,
    /// Ran past the job timeout.
    TimedOut,
    /// Gave up after its last attempt (PostgreSQL's shared queue: a lease that lapsed, or a
    /// failure with retries on); kept for inspection.
    Dead,
}

impl JobStatus {
    /// The API name (`queued`, `timed_out`, ...).
    ///
    /// ```
    /// use weft_serve::store::JobStatus;
    /// assert_eq!(JobStatus::TimedOut.as_str(), "timed_out");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::TimedOut => "timed_out",
            JobStatus::Dead => "dead",
        }
    }

    /// Parses an API name.
    ///
    /// ```
    /// use weft_serve::store::JobStatus;
    /// assert_eq!(JobStatus::parse("queued"), Some(JobStatus::Queued));
    /// ```
    #[must_use]
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "completed" => JobStatus::Completed,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            "timed_out" => JobStatus::TimedOut,
            "dead" => JobStatus::Dead,
            _ => return None,
        })
    }

    /// `true` once the job has ended (completed, failed, cancelled, timed out, dead).
    ///
    /// ```
    /// use weft_serve::store::JobStatus;
    /// assert!(JobStatus::Failed.is_final());
    /// assert!(!JobStatus::Running.is_final());
    /// ```
    #[must_use]
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    /// The job's id (given by the client or generated).
    pub id: String,
    /// The job type's API name.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Priority level (0 is the lowest).
    pub priority: u8,
    /// The job's data as submitted.
    pub data: Value,
    /// Current state.
    pub status: JobStatus,
    /// The result, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, once failed, cancelled or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many times a worker started it (more than 1 after a restart re-ran it).
    pub attempts: u32,
    /// When it was accepted (Unix milliseconds).
    pub created_at: i64,
    /// When its last run started (Unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When it ended (Unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

/// One page of a listing: jobs in acceptance order, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Page {
    /// The jobs of this page, oldest first.
    pub jobs: Vec<JobRecord>,
    /// Pass this as `after` for the next page; `None` when this page is the last.
    pub next: Option<u64>,
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A job with this id exists already.
    #[error("a job with id {0:?} exists already")]
    Duplicate(String),
    /// SQLite reported an error (the message says which).
    #[error("job database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error, or could not be reached (the message says which).
    #[error("job database error (PostgreSQL): {0}")]
    Postgres(String),
    /// The store's worker thread went away (the runtime is shutting down).
    #[error("job database is unavailable: {0}")]
    Unavailable(String),
    /// The transaction holding this write failed, so none of the writes it held (those of
    /// every request of the batch) was stored.
    #[error(
        "job database error: the commit of a batch of {batch} writes failed, none was stored: {reason}"
    )]
    BatchFailed {
        /// How many writes the failed transaction held.
        batch: usize,
        /// What SQLite said.
        reason: String,
    },
    /// The queue has no room for a new job at this priority level (every node's jobs count):
    /// nothing was stored.
    #[error(
        "the job queue is full ({capacity} jobs queued at priority {level}); retry later, or raise the queue size"
    )]
    QueueFull {
        /// The job's priority level.
        level: u8,
        /// The most queued jobs a level holds.
        capacity: usize,
    },
    /// This store cannot do what was asked (the message says what, and which store can).
    #[error("{0}")]
    Unsupported(String),
    /// The database file or its folder could not be created.
    #[error("cannot create the job database at {path}: {source}")]
    Create {
        /// The path we tried.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A job to store as `queued`: the validated submission.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewJob {
    /// The job's id (the client's or a generated one).
    pub id: String,
    /// The job type's API name.
    pub job_type: &'static str,
    /// Priority level.
    pub priority: u8,
    /// The job's data as submitted.
    pub data: Value,
    /// Not to start before this time (Unix milliseconds, by the database's clock); `None`
    /// starts it as soon as a worker is free. Only the PostgreSQL store keeps jobs for later:
    /// the others refuse such a job with [`StoreError::Unsupported`].
    pub run_at: Option<i64>,
}

impl NewJob {
    /// A job to run as soon as a worker is free.
    ///
    /// ```
    /// use serde_json::json;
    /// use weft_serve::store::NewJob;
    /// let job = NewJob::new("a", "notification", 1, json!({})).run_at(1_900_000_000_000);
    /// assert_eq!(job.run_at, Some(1_900_000_000_000));
    /// ```
    #[must_use]
    pub fn new(id: impl Into<String>, job_type: &'static str, priority: u8, data: Value) -> Self {
        NewJob {
            id: id.into(),
            job_type,
            priority,
            data,
            run_at: None,
        }
    }

    /// Sets [`run_at`](NewJob::run_at).
    #[must_use]
    pub fn run_at(mut self, unix_ms: i64) -> Self {
        self.run_at = Some(unix_ms);
        self
    }
}

/// The operations `weft serve` needs from a job store, with one meaning on every engine.
///
/// Every engine passes one conformance suite (`crates/serve/tests/store_conformance.rs`), so
/// the server can rely on these rules whichever engine holds its jobs:
///
/// 1. A job is created `queued` ([`insert`](JobStore::insert)); an id is stored at most once.
/// 2. Only a `queued` job can start ([`mark_running`](JobStore::mark_running)); each start is
///    one more attempt, and the attempt number is handed back.
/// 3. The **first final state wins** ([`finish`](JobStore::finish)): a late worker cannot
///    overwrite a client's cancel, and a worker of an older attempt (fenced by its attempt
///    number) cannot overwrite anything.
/// 4. [`recover`](JobStore::recover) makes unfinished work that nobody holds runnable again:
///    a restarted server runs every accepted job at least once.
///
/// Methods return `impl Future + Send` so that the server can call them from any task; the
/// engines do their I/O off the async workers (a committer thread for SQLite, the network for
/// PostgreSQL).
pub trait JobStore: Clone + Send + Sync + 'static {
    /// Records a newly accepted job as `queued`; durable (committed) when this returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Duplicate`] if the id is taken; [`StoreError::BatchFailed`] if the
    /// transaction that held it failed (nothing of it was stored);
    /// [`StoreError::Unsupported`] for a [`run_at`](NewJob::run_at) on a store that runs
    /// jobs at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the write: the job may still be stored.
    ///
    /// ```
    /// use serde_json::json;
    /// use weft_serve::store::{JobStatus, JobStore, NewJob, Store, StoreError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StoreError> {
    /// let store = Store::in_memory();
    /// let job = NewJob::new("a", "notification", 1, json!({}));
    /// store.insert(job.clone()).await?;
    /// assert!(matches!(store.insert(job).await, Err(StoreError::Duplicate(_))));
    /// assert_eq!(store.get("a").await?.map(|j| j.status), Some(JobStatus::Queued));
    /// # Ok(())
    /// # }
    /// ```
    fn insert(&self, job: NewJob) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks a queued job running, as one more attempt, and returns that attempt's number
    /// (1 for the first run). Returns `None` if the job was not queued (for example, cancelled
    /// meanwhile): the caller must then not run it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the engine fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the write.
    ///
    /// ```
    /// use serde_json::json;
    /// use weft_serve::store::{JobStore, NewJob, Store};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_serve::store::StoreError> {
    /// let store = Store::in_memory();
    /// store.insert(NewJob::new("a", "notification", 1, json!({}))).await?;
    /// assert_eq!(store.mark_running("a").await?, Some(1));
    /// assert_eq!(store.mark_running("a").await?, None, "already running");
    /// # Ok(())
    /// # }
    /// ```
    fn mark_running(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;

    /// Records a job's final state, and returns whether this call recorded it. A job already
    /// final keeps its first final state. With `attempt`, the write is *fenced*: it applies
    /// only while the job is still in that attempt, so a worker whose run was given to
    /// another (after a restart or a lapsed lease) cannot record anything. `None` (a client's
    /// cancel) applies to any attempt.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the engine fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the write.
    ///
    /// ```
    /// use serde_json::json;
    /// use weft_serve::store::{JobStatus, JobStore, NewJob, Store};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_serve::store::StoreError> {
    /// let store = Store::in_memory();
    /// store.insert(NewJob::new("a", "notification", 1, json!({}))).await?;
    /// let attempt = store.mark_running("a").await?;
    /// assert!(!store.finish("a", Some(7), JobStatus::Completed, None, None).await?, "stale attempt");
    /// assert!(store.finish("a", attempt, JobStatus::Completed, Some(json!(1)), None).await?);
    /// assert!(!store.finish("a", None, JobStatus::Cancelled, None, None).await?, "first final wins");
    /// # Ok(())
    /// # }
    /// ```
    fn finish(
        &self,
        id: &str,
        attempt: Option<u32>,
        status: JobStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Puts running jobs back to `queued` (at shutdown, for jobs to re-run on the next start).
    /// Returns how many were re-queued.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the engine fails.
    fn requeue(&self, ids: Vec<String>) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Removes a queued job that was stored but then not accepted after all (the server began
    /// shutting down between its commit and its hand-off to the pool). A job that left
    /// `queued` is kept.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the engine fails.
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Returns one job.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the engine fails.
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;

    /// Lists one page of jobs in acceptance order: those accepted after the cursor `after`
    /// (from the previous page's [`Page::next`]; `None` for the first page), optionally only
    /// those in `status`, at most `limit`. A job accepted meanwhile appears on a later page;
    /// none is listed twice.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the engine fails.
    ///
    /// ```
    /// use serde_json::json;
    /// use weft_serve::store::{JobStore, NewJob, Store};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_serve::store::StoreError> {
    /// let store = Store::in_memory();
    /// for id in ["a", "b", "c"] {
    ///     store.insert(NewJob::new(id, "notification", 1, json!({}))).await?;
    /// }
    /// let first = store.list(None, None, 2).await?;
    /// assert_eq!(first.jobs.len(), 2);
    /// let rest = store.list(None, first.next, 2).await?;
    /// assert_eq!((rest.jobs[0].id.as_str(), rest.next), ("c", None));
    /// # Ok(())
    /// # }
    /// ```
    fn list(
        &self,
        status: Option<JobStatus>,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Deletes finished jobs (every final state) that ended more than `older_than` ago, and
    /// returns how many. Queued and running jobs are never deleted.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the engine fails.
    fn purge_finished(
        &self,
        older_than: Duration,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Returns every job that was queued, or running without anyone holding it, in acceptance
    /// order, after resetting those running ones to queued: the work a restarted server must
    /// do again. (On SQLite and memory every running job is unheld once the process
    /// restarts; on PostgreSQL a job under another node's live lease is left to that node.)
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the engine fails.
    fn recover(&self) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send;

    /// Counts jobs per status.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the engine fails.
    fn counts(&self) -> impl Future<Output = Result<Vec<(JobStatus, u64)>, StoreError>> + Send;
}

/// The job store of a server, whichever engine it is: SQLite on disk, PostgreSQL, or memory.
/// Cloning shares the same jobs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Store {
    /// Durable, in one SQLite file.
    Sqlite(SqliteStore),
    /// In memory only.
    Memory(MemoryStore),
    /// Shared by many nodes, in PostgreSQL.
    Postgres(PgStore),
}

/// Runs the same call on whichever engine the store is.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call,
            Store::Memory($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the folder or file cannot be created or SQLite fails.
    ///
    /// ```
    /// use weft_serve::store::{SqliteConfig, Store};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(&dir.path().join("jobs.db"), SqliteConfig::default())?;
    /// assert!(matches!(store, Store::Sqlite(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: &Path, config: SqliteConfig) -> Result<Store, StoreError> {
        Ok(Store::Sqlite(SqliteStore::open(path, config)?))
    }

    /// A new, empty in-memory store.
    ///
    /// ```
    /// let store = weft_serve::store::Store::in_memory();
    /// assert!(matches!(store, weft_serve::store::Store::Memory(_)));
    /// ```
    #[must_use]
    pub fn in_memory() -> Store {
        Store::Memory(MemoryStore::new())
    }
}

impl JobStore for Store {
    async fn insert(&self, job: NewJob) -> Result<(), StoreError> {
        each!(self, s => s.insert(job).await)
    }

    async fn mark_running(&self, id: &str) -> Result<Option<u32>, StoreError> {
        each!(self, s => s.mark_running(id).await)
    }

    async fn finish(
        &self,
        id: &str,
        attempt: Option<u32>,
        status: JobStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        debug_assert!(status.is_final());
        each!(self, s => s.finish(id, attempt, status, result, error).await)
    }

    async fn requeue(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        each!(self, s => s.requeue(ids).await)
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        each!(self, s => s.delete(id).await)
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        each!(self, s => s.get(id).await)
    }

    async fn list(
        &self,
        status: Option<JobStatus>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        each!(self, s => s.list(status, after, limit).await)
    }

    async fn purge_finished(&self, older_than: Duration) -> Result<u64, StoreError> {
        each!(self, s => s.purge_finished(older_than).await)
    }

    async fn recover(&self) -> Result<Vec<JobRecord>, StoreError> {
        each!(self, s => s.recover().await)
    }

    async fn counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        each!(self, s => s.counts().await)
    }
}

/// The refusal of a delayed job by a store that runs jobs at once.
pub(crate) fn no_run_at() -> StoreError {
    StoreError::Unsupported(
        "`run_at` needs the PostgreSQL store (--db postgres://...): this store runs jobs at once"
            .into(),
    )
}

/// Makes a page of `limit` from rows fetched with `limit + 1` (each with its sequence number):
/// the extra row only says that another page follows.
pub(crate) fn page(mut rows: Vec<(u64, JobRecord)>, limit: usize) -> Page {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    Page {
        jobs: rows.into_iter().map(|(_, j)| j).collect(),
        next,
    }
}

/// `older_than` before now, in Unix milliseconds.
pub(crate) fn cutoff_ms(older_than: Duration) -> i64 {
    now_ms().saturating_sub(i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX))
}
