//! The SQLite engine: one file in WAL mode, writes gathered into shared transactions.
//!
//! # Group commit
//!
//! Every write (a new job, a job starting, a job's final state) goes to one committer thread,
//! which owns the write connection. It takes the first waiting write, gathers more for at most
//! [`SqliteConfig::commit_window`] or until [`SqliteConfig::commit_batch`] writes, runs them in
//! one transaction and commits (one fsync with `synchronous=FULL`), and only then answers each
//! writer. While a commit is under way new writes queue up, so under load batches grow by
//! themselves even with no window. If any write of a batch fails, or the commit does, the
//! transaction is rolled back and every writer of the batch gets
//! [`StoreError::BatchFailed`]: a job is stored whole or not at all.
//!
//! Reads use a second connection: in WAL mode they see every committed batch and never wait
//! for the writer.
//!
//! # Checkpoints
//!
//! SQLite's own checkpoints run on the connection that commits, so they would stall every
//! request waiting for the next batch: each one copies the WAL's pages back into the database
//! file and fsyncs both files (several milliseconds on a virtual disk). Here the writer never
//! checkpoints on its own: a checkpointer thread with a connection of its own copies the WAL
//! back every [`CHECKPOINT_EVERY`] frames while the committer goes on writing (a passive
//! checkpoint takes no lock a writer needs). A passive checkpoint alone never lets the WAL
//! start over under steady load (the writer has always appended more frames by the time it
//! ends), so once the WAL holds [`RESTART_AT`] frames the checkpointer pauses the committer
//! between batches and copies the few frames written meanwhile; the next commit then writes
//! from the start of the WAL again. Should the checkpointer fall behind (or a reader hold an
//! old snapshot), the committer checkpoints itself once the WAL passes
//! [`WRITER_CHECKPOINTS_AT`] frames, so the WAL stays bounded. Checkpoints change where a
//! committed page lies, never whether it is committed: durability is the commit's.
//!
//! # Answers of finished jobs
//!
//! A job's final state never changes (the first final state wins) until the job is purged, so
//! the `GET` answer of a finished job is kept, rendered, in a bounded cache
//! ([`RENDERED_CAPACITY`] jobs, oldest out first) and served without a database read; a purge
//! empties it. Jobs still queued or running are read from the database each time, and their
//! stored JSON text goes into the answer as it is, without being parsed.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::oneshot;

use super::render::RecordView;
use super::{
    JobRecord, JobStatus, JobStore, NewJob, Page, StoreError, cutoff_ms, no_run_at, now_ms, page,
};

/// How the SQLite engine commits. [`SqliteConfig::default`] gives the CLI's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// `synchronous=FULL`: every commit survives power loss, at the cost of an fsync per
    /// commit (one per batch). By default off (`NORMAL`: a commit survives the process being
    /// killed at any point; after a power loss the last commits may be lost).
    pub full_sync: bool,
    /// How long the committer waits for more writes after the first one of a batch. By default
    /// zero: a batch is whatever queued up while the previous commit ran. A window pays off
    /// only when each commit is slow (`full_sync` on a slow disk); when commits are quick it
    /// adds its length to every answer and lowers throughput (BENCHMARKS.md, issue 29).
    pub commit_window: Duration,
    /// The most writes in one transaction. By default, 512.
    pub commit_batch: NonZeroUsize,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            full_sync: false,
            commit_window: Duration::ZERO,
            commit_batch: NonZeroUsize::new(512).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

impl SqliteConfig {
    /// Sets [`full_sync`](SqliteConfig::full_sync).
    #[must_use]
    pub fn full_sync(mut self, on: bool) -> Self {
        self.full_sync = on;
        self
    }

    /// Sets [`commit_window`](SqliteConfig::commit_window).
    #[must_use]
    pub fn commit_window(mut self, window: Duration) -> Self {
        self.commit_window = window;
        self
    }

    /// Sets [`commit_batch`](SqliteConfig::commit_batch).
    #[must_use]
    pub fn commit_batch(mut self, n: NonZeroUsize) -> Self {
        self.commit_batch = n;
        self
    }
}

/// Jobs in one SQLite file. Cloning shares the connections and the committer.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The write connection, shared with the committer thread (which holds it per batch) for
    /// the rare writes that are not batched (recovery, requeue, delete).
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    commits: mpsc::Sender<Pending>,
    rendered: Arc<Mutex<Rendered>>,
    /// Frames in the WAL after the last commit (the tests watch the WAL start over).
    #[cfg(test)]
    wal_frames: Arc<AtomicU32>,
}

/// The checkpointer copies the WAL back each time it has grown by this many frames (pages):
/// half of SQLite's own automatic checkpoint, as the copy no longer holds up commits.
pub(crate) const CHECKPOINT_EVERY: u32 = 500;

/// Once the WAL holds this many frames, the checkpointer finishes its pass with the committer
/// paused, so that the WAL starts over (one pause of about two fsyncs per this many frames).
pub(crate) const RESTART_AT: u32 = 2000;

/// Past this many frames the committer checkpoints itself (the checkpointer is behind).
pub(crate) const WRITER_CHECKPOINTS_AT: u32 = 16_000;

/// The WAL file is cut back to this size when it starts over after a burst made it larger.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// How many finished jobs' answers [`SqliteStore`] keeps rendered.
pub(crate) const RENDERED_CAPACITY: usize = 4096;

/// Rendered answers of finished jobs, by id; the oldest goes first when full.
#[derive(Debug, Default)]
struct Rendered {
    by_id: HashMap<Box<str>, Bytes>,
    age: VecDeque<Box<str>>,
}

impl Rendered {
    fn put(&mut self, id: &str, body: Bytes) {
        if self.by_id.contains_key(id) {
            return;
        }
        if self.age.len() >= RENDERED_CAPACITY
            && let Some(old) = self.age.pop_front()
        {
            self.by_id.remove(&old);
        }
        self.age.push_back(id.into());
        self.by_id.insert(id.into(), body);
    }
}

/// One write waiting for its batch's commit.
struct Pending {
    write: Write,
    /// `Ok(0)` if the write's condition did not hold; otherwise `Ok(1)`, or for a start the
    /// attempt number it began.
    done: oneshot::Sender<Result<u32, StoreError>>,
}

enum Write {
    /// A new job, its `data` already rendered: the HTTP task renders and frees the JSON tree,
    /// so the one committer thread (every job goes through it) does neither.
    Insert {
        id: String,
        job_type: &'static str,
        priority: u8,
        data: String,
        at: i64,
    },
    Running(String, i64),
    Finish {
        id: String,
        attempt: Option<u32>,
        status: JobStatus,
        result: Option<Value>,
        error: Option<String>,
        at: i64,
    },
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
CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
";

const INSERT: &str = "INSERT INTO jobs (id, type, priority, data, status, created_at)
     VALUES (?1, ?2, ?3, ?4, 'queued', ?5) ON CONFLICT(id) DO NOTHING";
const RUNNING: &str = "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?2
     WHERE id = ?1 AND status = 'queued' RETURNING attempts";
// A fenced write (?6 not null) applies only while the job runs in that very attempt.
const FINISH: &str = "UPDATE jobs SET status = ?2, result = ?3, error = ?4, finished_at = ?5
     WHERE id = ?1 AND status IN ('queued', 'running')
       AND (?6 IS NULL OR (status = 'running' AND attempts = ?6))";
const SELECT: &str = "SELECT id, type, priority, data, status, result, error, attempts, created_at, started_at, finished_at, seq FROM jobs";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its committer thread.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the folder or file cannot be created or SQLite fails.
    ///
    /// ```
    /// use weft_serve::store::{JobStore, SqliteConfig, SqliteStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = SqliteStore::open(&dir.path().join("jobs.db"), SqliteConfig::default())?;
    /// assert!(store.get("nope").await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(path: &Path, config: SqliteConfig) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, config, true)
    }

    /// [`open`](SqliteStore::open); without `checkpointer`, only the committer's own
    /// checkpoints past [`WRITER_CHECKPOINTS_AT`] keep the WAL bounded (for the tests).
    fn open_with(
        path: &Path,
        config: SqliteConfig,
        checkpointer: bool,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Create {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let mut writer = Connection::open(path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(
            None,
            "synchronous",
            if config.full_sync { "FULL" } else { "NORMAL" },
        )?;
        writer.busy_timeout(Duration::from_secs(5))?;
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        writer.execute_batch(SCHEMA)?;
        // The hook takes the place of SQLite's automatic checkpoint on this connection.
        let frames = Arc::new(AtomicU32::new(0));
        let hooked = Arc::clone(&frames);
        writer.wal_hook(Some(
            move |_: &mut rusqlite::hooks::Wal, n: std::ffi::c_int| {
                hooked.store(u32::try_from(n).unwrap_or(0), Ordering::Relaxed);
                Ok(())
            },
        ))?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(Duration::from_secs(5))?;
        let copier = Connection::open(path)?;
        let writer = Arc::new(Mutex::new(writer));
        let (wake, woken) = mpsc::sync_channel(1);
        if checkpointer {
            let paused = Arc::clone(&writer);
            std::thread::Builder::new()
                .name("weft-serve-ckpt".into())
                .spawn(move || run_checkpointer(&copier, &paused, &woken))
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot start the checkpointer: {e}"))
                })?;
        }
        let checkpoints = Checkpoints {
            frames: Arc::clone(&frames),
            wake,
            woken_at: 0,
            last: 0,
            writer_at: WRITER_CHECKPOINTS_AT,
        };
        let (commits, queue) = mpsc::channel();
        let conn = Arc::clone(&writer);
        std::thread::Builder::new()
            .name("weft-serve-commit".into())
            .spawn(move || committer(&conn, &queue, config, checkpoints))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the committer: {e}")))?;
        Ok(SqliteStore {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            commits,
            rendered: Arc::default(),
            #[cfg(test)]
            wal_frames: frames,
        })
    }

    fn rendered(&self) -> std::sync::MutexGuard<'_, Rendered> {
        self.rendered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job `id` as `GET /api/jobs/{id}` answers it: a finished job's from the cache, any
    /// other's read and written from the stored text without parsing it.
    pub(crate) async fn get_json(&self, id: &str) -> Result<Option<Bytes>, StoreError> {
        if let Some(hit) = self.rendered().by_id.get(id) {
            return Ok(Some(hit.clone()));
        }
        let key = id.to_owned();
        let read = Self::with(&self.reader, move |c| {
            let mut stmt = c.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?;
            Ok(stmt
                .query_row(params![key], |r| {
                    let view = row_view(r)?;
                    Ok((view.status.is_final(), view.render()))
                })
                .optional()?)
        })
        .await?;
        Ok(read.map(|(finished, body)| {
            let body = Bytes::from(body);
            if finished {
                self.rendered().put(id, body.clone());
            }
            body
        }))
    }

    /// Hands `write` to the committer and waits for its batch's commit.
    async fn commit(&self, write: Write) -> Result<u32, StoreError> {
        let (done, committed) = oneshot::channel();
        self.commits
            .send(Pending { write, done })
            .map_err(|_| StoreError::Unavailable("the committer thread stopped".into()))?;
        committed
            .await
            .map_err(|_| StoreError::Unavailable("the committer thread stopped".into()))?
    }

    /// Runs `f` with `conn` on a blocking thread, so SQLite never stalls the async workers.
    async fn with<R, F>(conn: &Arc<Mutex<Connection>>, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let conn = Arc::clone(conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

impl JobStore for SqliteStore {
    async fn insert(&self, job: NewJob) -> Result<(), StoreError> {
        if job.run_at.is_some() {
            return Err(no_run_at());
        }
        let NewJob {
            id,
            job_type,
            priority,
            data,
            ..
        } = job;
        let write = Write::Insert {
            id: id.clone(),
            job_type,
            priority,
            data: data.to_string(),
            at: now_ms(),
        };
        drop(data);
        match self.commit(write).await? {
            0 => Err(StoreError::Duplicate(id)),
            _ => Ok(()),
        }
    }

    async fn mark_running(&self, id: &str) -> Result<Option<u32>, StoreError> {
        let attempt = self.commit(Write::Running(id.to_owned(), now_ms())).await?;
        Ok((attempt > 0).then_some(attempt))
    }

    async fn finish(
        &self,
        id: &str,
        attempt: Option<u32>,
        status: JobStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        let changed = self
            .commit(Write::Finish {
                id: id.to_owned(),
                attempt,
                status,
                result,
                error,
                at: now_ms(),
            })
            .await?;
        Ok(changed > 0)
    }

    async fn requeue(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        Self::with(&self.writer, move |c| {
            let tx = c.unchecked_transaction()?;
            let mut n = 0;
            for id in ids {
                n += tx.execute(
                    "UPDATE jobs SET status = 'queued', started_at = NULL WHERE id = ?1 AND status = 'running'",
                    params![id],
                )?;
            }
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        Self::with(&self.writer, move |c| {
            c.execute(
                "DELETE FROM jobs WHERE id = ?1 AND status = 'queued'",
                params![id],
            )?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_owned();
        Self::with(&self.reader, move |c| {
            let mut stmt = c.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?;
            Ok(stmt.query_row(params![id], row_to_record).optional()?)
        })
        .await
    }

    async fn list(
        &self,
        status: Option<JobStatus>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        Self::with(&self.reader, move |c| {
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let after = after.map_or(0, |a| i64::try_from(a).unwrap_or(i64::MAX));
            let with_seq = |r: &rusqlite::Row<'_>| {
                Ok((
                    u64::try_from(r.get::<_, i64>(11)?).unwrap_or(0),
                    row_to_record(r)?,
                ))
            };
            let mut rows = Vec::new();
            match status {
                Some(s) => {
                    let mut stmt = c.prepare_cached(&format!(
                        "{SELECT} WHERE status = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                    ))?;
                    for r in stmt.query_map(params![s.as_str(), after, fetch], with_seq)? {
                        rows.push(r?);
                    }
                }
                None => {
                    let mut stmt = c.prepare_cached(&format!(
                        "{SELECT} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                    ))?;
                    for r in stmt.query_map(params![after, fetch], with_seq)? {
                        rows.push(r?);
                    }
                }
            }
            Ok(page(rows, limit))
        })
        .await
    }

    async fn purge_finished(&self, older_than: Duration) -> Result<u64, StoreError> {
        let cutoff = cutoff_ms(older_than);
        let n = Self::with(&self.writer, move |c| {
            let n = c.execute(
                "DELETE FROM jobs WHERE finished_at < ?1 AND status NOT IN ('queued', 'running')",
                params![cutoff],
            )?;
            Ok(n as u64)
        })
        .await?;
        // Purged jobs must answer 404 from now on.
        if n > 0 {
            *self.rendered() = Rendered::default();
        }
        Ok(n)
    }

    async fn recover(&self) -> Result<Vec<JobRecord>, StoreError> {
        Self::with(&self.writer, |c| {
            c.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running'",
                [],
            )?;
            let mut stmt = c.prepare(&format!("{SELECT} WHERE status = 'queued' ORDER BY seq"))?;
            let mut out = Vec::new();
            for r in stmt.query_map([], row_to_record)? {
                out.push(r?);
            }
            Ok(out)
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        Self::with(&self.reader, |c| {
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

/// The committer's side of the checkpoints: it wakes the checkpointer as the WAL grows, and
/// checkpoints itself only past [`WRITER_CHECKPOINTS_AT`].
struct Checkpoints {
    /// Frames in the WAL after the writer's last commit, from its WAL hook.
    frames: Arc<AtomicU32>,
    wake: mpsc::SyncSender<()>,
    /// The WAL's frames when the checkpointer was last woken.
    woken_at: u32,
    /// The WAL's frames after the previous commit: fewer now means the WAL started over.
    last: u32,
    /// The committer checkpoints itself once the WAL holds this many frames.
    writer_at: u32,
}

impl Checkpoints {
    /// Called by the committer after each batch, with the writer connection.
    fn after_commit(&mut self, conn: &Connection) {
        let n = self.frames.load(Ordering::Relaxed);
        if n < self.last {
            self.woken_at = 0;
            self.writer_at = WRITER_CHECKPOINTS_AT;
        }
        self.last = n;
        // A full channel means a wake-up is already pending: nothing is lost.
        if n >= self.woken_at.saturating_add(CHECKPOINT_EVERY) && self.wake.try_send(()).is_ok() {
            self.woken_at = n;
        }
        if n >= self.writer_at {
            if let Err(e) = checkpoint(conn) {
                tracing::warn!(error = %e, "job database checkpoint failed");
            }
            // Not again at every commit if a reader keeps the WAL from starting over.
            self.writer_at = n.saturating_add(RESTART_AT);
        }
    }
}

/// A passive checkpoint on `conn`: copies what it can of the WAL into the database file
/// without waiting for anyone. Returns the WAL's frames.
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
}

/// The checkpointer thread: a passive checkpoint each time the committer wakes it; past
/// [`RESTART_AT`] frames, a second one with the committer paused (holding the writer's lock
/// between batches), so the WAL is all copied and the next commit starts it over. Ends with
/// the committer.
fn run_checkpointer(conn: &Connection, writer: &Mutex<Connection>, woken: &mpsc::Receiver<()>) {
    while woken.recv().is_ok() {
        match checkpoint(conn) {
            Ok(frames) if frames >= i64::from(RESTART_AT) => {
                let _paused = writer.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = checkpoint(conn) {
                    tracing::warn!(error = %e, "job database checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "job database checkpoint failed"),
        }
    }
}

/// The committer thread: gathers writes into batches and commits each batch in one
/// transaction, until every [`SqliteStore`] clone is gone.
fn committer(
    conn: &Mutex<Connection>,
    queue: &mpsc::Receiver<Pending>,
    config: SqliteConfig,
    mut checkpoints: Checkpoints,
) {
    let max = config.commit_batch.get();
    let mut batch = Vec::with_capacity(max.min(1024));
    while let Ok(first) = queue.recv() {
        batch.push(first);
        let deadline = Instant::now() + config.commit_window;
        while batch.len() < max {
            let wait = deadline.saturating_duration_since(Instant::now());
            let next = if wait.is_zero() {
                queue.try_recv().ok()
            } else {
                queue.recv_timeout(wait).ok()
            };
            match next {
                Some(p) => batch.push(p),
                None => break,
            }
        }
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        match run_batch(&conn, &batch) {
            Ok(changed) => {
                for (p, changed) in batch.drain(..).zip(changed) {
                    // A writer that stopped waiting is fine: its write is committed anyway.
                    let _ = p.done.send(Ok(changed));
                }
            }
            Err(e) => {
                let n = batch.len();
                tracing::error!(batch = n, error = %e, "job database commit failed");
                for p in batch.drain(..) {
                    let _ = p.done.send(Err(StoreError::BatchFailed {
                        batch: n,
                        reason: e.to_string(),
                    }));
                }
            }
        }
        checkpoints.after_commit(&conn);
    }
}

/// Runs every write of `batch` in one transaction; on any error nothing is kept (the
/// transaction is rolled back).
fn run_batch(conn: &Connection, batch: &[Pending]) -> rusqlite::Result<Vec<u32>> {
    // BEGIN and COMMIT come from the statement cache: a rusqlite `Transaction` would parse
    // both again for every batch.
    let done = conn
        .prepare_cached("BEGIN")
        .and_then(|mut begin| begin.execute([]))
        .and_then(|_| write_batch(conn, batch))
        .and_then(|changed| conn.prepare_cached("COMMIT")?.execute([]).map(|_| changed));
    // Also after a failed BEGIN: a transaction left open by an earlier failed rollback is
    // closed here, so the next batch can begin.
    if done.is_err() && !conn.is_autocommit() {
        // The batch's error is the one to report; like rusqlite's `Transaction` on drop, a
        // failed rollback is not.
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
}

/// The writes of `batch`, inside the transaction [`run_batch`] opened.
fn write_batch(tx: &Connection, batch: &[Pending]) -> rusqlite::Result<Vec<u32>> {
    let mut changed = Vec::with_capacity(batch.len());
    for p in batch {
        let n = match &p.write {
            Write::Insert {
                id,
                job_type,
                priority,
                data,
                at,
            } => tx
                .prepare_cached(INSERT)?
                .execute(params![id, job_type, priority, data, at])?
                .min(1) as u32,
            Write::Running(id, at) => tx
                .prepare_cached(RUNNING)?
                .query_row(params![id, at], |r| r.get::<_, u32>(0))
                .optional()?
                .unwrap_or(0),
            Write::Finish {
                id,
                attempt,
                status,
                result,
                error,
                at,
            } => tx
                .prepare_cached(FINISH)?
                .execute(params![
                    id,
                    status.as_str(),
                    result.as_ref().map(Value::to_string),
                    error,
                    at,
                    attempt
                ])?
                .min(1) as u32,
        };
        changed.push(n);
    }
    Ok(changed)
}

/// A row of [`SELECT`] borrowed as it is, its JSON columns as text.
fn row_view<'r>(r: &'r rusqlite::Row<'_>) -> rusqlite::Result<RecordView<'r>> {
    let text = |i: usize| -> rusqlite::Result<Option<&'r str>> {
        match r.get_ref(i)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            v => Ok(Some(v.as_str()?)),
        }
    };
    let status = text(4)?.unwrap_or_default();
    Ok(RecordView {
        id: text(0)?.unwrap_or_default(),
        job_type: text(1)?.unwrap_or_default(),
        priority: u8::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        data: text(3)?.unwrap_or("null"),
        status: JobStatus::parse(status).unwrap_or(JobStatus::Failed),
        result: text(5)?,
        error: text(6)?,
        attempts: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        created_at: r.get(8)?,
        started_at: r.get(9)?,
        finished_at: r.get(10)?,
    })
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_failed_batch_is_rolled_back_and_the_next_one_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("jobs.db"), SqliteConfig::default()).unwrap();
        store
            .writer
            .lock()
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON jobs WHEN NEW.id = 'poison'
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
            )
            .unwrap();
        let err = store
            .insert(NewJob::new("poison", "notification", 1, json!({})))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::BatchFailed { .. }), "{err}");
        assert!(
            store.writer.lock().unwrap().is_autocommit(),
            "the failed batch's transaction was left open"
        );
        assert!(store.get("poison").await.unwrap().is_none());
        // The next batch begins and commits; its data is stored as submitted.
        let data = json!({"recipients": ["a", "b"], "message": "é\"", "channel": "sms"});
        store
            .insert(NewJob::new("next", "notification", 1, data.clone()))
            .await
            .unwrap();
        assert_eq!(store.get("next").await.unwrap().unwrap().data, data);
    }

    /// Inserts jobs one at a time until the WAL has started over `times` times (or `limit`
    /// inserts); returns the most frames the WAL held before each start, and the jobs inserted.
    async fn frames_before_each_restart(
        store: &SqliteStore,
        times: usize,
        limit: usize,
    ) -> (Vec<u32>, u64) {
        let mut peaks = Vec::new();
        let mut last = 0;
        let mut inserted = 0;
        for i in 0..limit {
            let data = json!({"recipients": ["a"], "message": "m".repeat(300), "channel": "sms"});
            store
                .insert(NewJob::new(format!("job-{i:06}"), "notification", 1, data))
                .await
                .unwrap();
            inserted += 1;
            let n = store.wal_frames.load(Ordering::Relaxed);
            if n < last {
                peaks.push(last);
                if peaks.len() == times {
                    break;
                }
            }
            last = n;
        }
        (peaks, inserted)
    }

    #[tokio::test]
    async fn the_commit_path_never_checkpoints_and_the_wal_still_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("jobs.db"), SqliteConfig::default()).unwrap();
        // SQLite's automatic checkpoint (its default WAL hook) is off on the writer: a commit
        // never copies the WAL back, nor fsyncs for it.
        let automatic: i64 = store
            .writer
            .lock()
            .unwrap()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(automatic, 0);
        // Yet the WAL is copied back and starts over, again and again.
        let (peaks, inserted) = frames_before_each_restart(&store, 5, 200_000).await;
        assert_eq!(peaks.len(), 5, "the WAL never started over: {peaks:?}");
        // Past WRITER_CHECKPOINTS_AT, only a checkpointer in the middle of a pass can keep
        // the committer's own checkpoint from finishing, and not for long.
        assert!(
            peaks.iter().all(|&p| p < 2 * WRITER_CHECKPOINTS_AT),
            "the WAL grew without bound: {peaks:?}"
        );
        // Copied back and started over, the WAL lost no job.
        assert_eq!(
            store.counts().await.unwrap(),
            vec![(JobStatus::Queued, inserted)]
        );
    }

    #[tokio::test]
    async fn without_the_checkpointer_the_committer_keeps_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open_with(&dir.path().join("jobs.db"), SqliteConfig::default(), false)
                .unwrap();
        let (peaks, inserted) = frames_before_each_restart(&store, 2, 200_000).await;
        assert_eq!(peaks.len(), 2, "the WAL never started over: {peaks:?}");
        // One commit of one job writes a handful of frames past the threshold, no more.
        assert!(
            peaks
                .iter()
                .all(|&p| (WRITER_CHECKPOINTS_AT..WRITER_CHECKPOINTS_AT + 16).contains(&p)),
            "{peaks:?}"
        );
        assert_eq!(
            store.counts().await.unwrap(),
            vec![(JobStatus::Queued, inserted)]
        );
    }

    #[tokio::test]
    async fn get_json_matches_get_and_a_purge_drops_cached_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("jobs.db"), SqliteConfig::default()).unwrap();
        let data = json!({"recipients": ["a\"b"], "message": "é", "channel": "sms"});
        store
            .insert(NewJob::new("j", "notification", 1, data))
            .await
            .unwrap();
        let queued = store.get_json("j").await.unwrap().unwrap();
        let record = store.get("j").await.unwrap().unwrap();
        assert_eq!(&queued[..], serde_json::to_vec(&record).unwrap());
        // Not final: not cached, so the next read sees the change.
        store.mark_running("j").await.unwrap();
        let running = store.get_json("j").await.unwrap().unwrap();
        assert_eq!(
            &running[..],
            serde_json::to_vec(&store.get("j").await.unwrap().unwrap()).unwrap()
        );
        store
            .finish(
                "j",
                None,
                JobStatus::Completed,
                Some(json!({"sent": 1})),
                None,
            )
            .await
            .unwrap();
        let done = store.get_json("j").await.unwrap().unwrap();
        assert_eq!(
            &done[..],
            serde_json::to_vec(&store.get("j").await.unwrap().unwrap()).unwrap()
        );
        assert!(
            store.rendered().by_id.contains_key("j"),
            "a finished job's answer is cached"
        );
        // Purged once its finish time is in the past (the clock has millisecond steps).
        while store.purge_finished(Duration::ZERO).await.unwrap() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(
            store.get_json("j").await.unwrap().is_none(),
            "purged: 404, not the cached answer"
        );
    }
}
