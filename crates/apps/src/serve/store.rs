//! The job server's durable store: one SQLite file holding every accepted job and its state.
//!
//! A job is written here, committed, *before* the server answers 202, so an accepted job
//! survives a crash or restart of the process: on start, [`Store::recover`] hands back every job
//! that was queued or running, and the server runs it again (at least once). The database runs
//! in WAL mode with `synchronous=NORMAL`: a committed job survives the process being killed at
//! any point; after a power loss the last few commits may be lost (set `--db-sync full` for
//! that case, at a cost in submissions per second).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

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
}

impl JobStatus {
    /// The API name (`queued`, `timed_out`, ...).
    ///
    /// ```
    /// use weft_apps::serve::store::JobStatus;
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
        }
    }

    /// Parses an API name.
    ///
    /// ```
    /// use weft_apps::serve::store::JobStatus;
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
            _ => return None,
        })
    }

    /// `true` once the job has ended (completed, failed, cancelled, timed out).
    ///
    /// ```
    /// use weft_apps::serve::store::JobStatus;
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
    /// The store's worker thread went away (the runtime is shutting down).
    #[error("job database is unavailable: {0}")]
    Unavailable(String),
    /// The database file or its folder could not be created.
    #[error("cannot create the job database at {path}: {source}")]
    Create {
        /// The path we tried.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The SQLite-backed job store. Cloning shares one connection.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    data        TEXT NOT NULL,
    status      TEXT NOT NULL,
    result      TEXT,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, seq);
";

impl Store {
    /// Opens (creating if needed) the database at `path`; `full_sync` trades speed for
    /// durability across power loss.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the folder or file cannot be created or SQLite fails.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = weft_apps::serve::store::Store::open(&dir.path().join("jobs.db"), false).unwrap();
    /// assert!(store.get_blocking("nope").unwrap().is_none());
    /// ```
    pub fn open(path: &Path, full_sync: bool) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Create {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            if full_sync { "FULL" } else { "NORMAL" },
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Opens a private in-memory store (for tests and `--db :memory:`): nothing survives.
    ///
    /// # Errors
    ///
    /// [`StoreError::Sqlite`] if SQLite fails.
    pub fn in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on a blocking thread, so SQLite's fsyncs never stall the
    /// async workers.
    async fn with<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// Records a newly accepted job as queued; committed when this returns.
    ///
    /// # Errors
    ///
    /// [`StoreError::Duplicate`] if the id is taken.
    pub async fn insert(
        &self,
        id: String,
        job_type: &'static str,
        priority: u8,
        data: Value,
    ) -> Result<JobRecord, StoreError> {
        self.with(move |c| {
            let created_at = now_ms();
            let data_text = data.to_string();
            let inserted = c.execute(
                "INSERT INTO jobs (id, type, priority, data, status, created_at) VALUES (?1, ?2, ?3, ?4, 'queued', ?5)
                 ON CONFLICT(id) DO NOTHING",
                params![id, job_type, priority, data_text, created_at],
            )?;
            if inserted == 0 {
                return Err(StoreError::Duplicate(id));
            }
            Ok(JobRecord {
                id,
                job_type: job_type.to_owned(),
                priority,
                data,
                status: JobStatus::Queued,
                result: None,
                error: None,
                attempts: 0,
                created_at,
                started_at: None,
                finished_at: None,
            })
        })
        .await
    }

    /// Marks a job running (one more attempt). Returns `false` if it was no longer queued (for
    /// example, cancelled meanwhile): the caller must then not run it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails.
    pub async fn mark_running(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with(move |c| {
            let n = c.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?2
                 WHERE id = ?1 AND status = 'queued'",
                params![id, now_ms()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Records a job's final state. A job already final keeps its first final state (so a late
    /// worker cannot overwrite a cancel). Returns whether this call recorded it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails.
    pub async fn finish(
        &self,
        id: &str,
        status: JobStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        debug_assert!(status.is_final());
        let id = id.to_owned();
        self.with(move |c| {
            let n = c.execute(
                "UPDATE jobs SET status = ?2, result = ?3, error = ?4, finished_at = ?5
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![
                    id,
                    status.as_str(),
                    result.map(|r| r.to_string()),
                    error,
                    now_ms()
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Puts unfinished jobs back to `queued` (used at shutdown for jobs to re-run on the next
    /// start). Returns how many were re-queued.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails.
    pub async fn requeue(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        self.with(move |c| {
            let mut n = 0;
            for id in ids {
                n += c.execute(
                    "UPDATE jobs SET status = 'queued', started_at = NULL WHERE id = ?1 AND status = 'running'",
                    params![id],
                )?;
            }
            Ok(n)
        })
        .await
    }

    /// Removes a job that was stored but then not accepted (its queue was full).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM jobs WHERE id = ?1 AND status = 'queued'",
                params![id],
            )?;
            Ok(())
        })
        .await
    }

    /// Returns one job.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_owned();
        self.with(move |c| get(c, &id)).await
    }

    /// Returns one job, blocking the calling thread (for synchronous callers and tests).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails.
    pub fn get_blocking(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        get(&conn, id)
    }

    /// Lists jobs, oldest first, optionally only those in `status`, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails.
    pub async fn list(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.with(move |c| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut out = Vec::new();
            match status {
                Some(s) => {
                    let mut stmt = c.prepare_cached(&format!(
                        "{SELECT} WHERE status = ?1 ORDER BY seq LIMIT ?2"
                    ))?;
                    let rows = stmt.query_map(params![s.as_str(), limit], row_to_record)?;
                    for r in rows {
                        out.push(r?);
                    }
                }
                None => {
                    let mut stmt = c.prepare_cached(&format!("{SELECT} ORDER BY seq LIMIT ?1"))?;
                    let rows = stmt.query_map(params![limit], row_to_record)?;
                    for r in rows {
                        out.push(r?);
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Returns every job that was queued or running (in acceptance order), after resetting the
    /// running ones to queued: the work a restarted server must do again.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails.
    pub async fn recover(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running'",
                [],
            )?;
            let mut stmt = c.prepare(&format!("{SELECT} WHERE status = 'queued' ORDER BY seq"))?;
            let rows = stmt.query_map([], row_to_record)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r?);
            }
            Ok(out)
        })
        .await
    }

    /// Counts jobs per status.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails.
    pub async fn counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT status, COUNT(*) FROM jobs GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut out = Vec::new();
            for r in rows {
                let (s, n) = r?;
                if let Some(s) = JobStatus::parse(&s) {
                    out.push((s, u64::try_from(n).unwrap_or(0)));
                }
            }
            Ok(out)
        })
        .await
    }
}

const SELECT: &str = "SELECT id, type, priority, data, status, result, error, attempts, created_at, started_at, finished_at FROM jobs";

fn get(c: &Connection, id: &str) -> Result<Option<JobRecord>, StoreError> {
    let mut stmt = c.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?;
    Ok(stmt.query_row(params![id], row_to_record).optional()?)
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let data: String = r.get(3)?;
    let status: String = r.get(4)?;
    let result: Option<String> = r.get(5)?;
    Ok(JobRecord {
        id: r.get(0)?,
        job_type: r.get(1)?,
        priority: u8::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        error: r.get(6)?,
        attempts: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        created_at: r.get(8)?,
        started_at: r.get(9)?,
        finished_at: r.get(10)?,
    })
}
