//! The PostgreSQL engine: one table many nodes share as one queue.
//!
//! # The shared queue
//!
//! - **Claims** ([`PgStore::claim`]) take the highest effective priority first, oldest first
//!   within a level, with `FOR UPDATE SKIP LOCKED`, so nodes claiming at once never wait on
//!   each other nor take the same job. A claim sets the job `running`, adds one to its
//!   `attempts`, and gives the claiming node a lease (`locked_until`).
//! - **Leases** are renewed by [`PgStore::heartbeat`] while the node runs the job; a node that
//!   dies stops renewing, and [`PgStore::sweep`] (any node's) returns jobs whose lease lapsed to
//!   `queued`, or to `dead` once they were claimed [`PgConfig::max_attempts`] times.
//! - **Fencing**: a worker records its outcome with its attempt number; a node whose lease
//!   lapsed and whose job was claimed again cannot record anything (see
//!   [`JobStore::finish`]).
//! - **Aging**: a queued job's effective priority rises one level per
//!   [`PgConfig::aging`] of waiting since it was created, computed by each claim from
//!   `created_at` (no row is rewritten to age it), so a steady stream of higher jobs cannot
//!   starve it. At one effective level, jobs of that native priority go first, then
//!   aged ones, each oldest first: a backlog that aged up does not delay fresh high jobs.
//! - **Retries** (with [`PgConfig::retry_failed`]): a failed or timed-out run goes back to
//!   `queued` with `run_at` put off by an exponential backoff with jitter, until
//!   `max_attempts`; then `dead`, kept for inspection.
//! - **Bounded** (with [`PgConfig::queue_size`]): a new job beyond the room of its level, counted
//!   over every node under an advisory lock, is refused with [`StoreError::QueueFull`].
//! - **No polling**: a commit that adds jobs sends `NOTIFY`; idle nodes wait on `LISTEN`
//!   ([`PgStore::listen`], a bounded buffer where wake-ups coalesce) with a slow fallback poll. A client's cancel sends a `NOTIFY` with
//!   the job's id, so the node running it cancels it at once.
//!
//! # Group commit
//!
//! Writes of workers (new jobs, outcomes) go to one committer task, which runs whatever queued
//! up meanwhile in one transaction: new jobs as one multi-row `INSERT`, outcomes pipelined. If
//! anything in it fails, every writer of the batch gets [`StoreError::BatchFailed`].
//!
//! Every time on a lease or in `run_at` is the database's clock, so nodes' clocks need not
//! agree.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, NoTls, Row};

use super::{JobRecord, JobStatus, JobStore, NewJob, Page, StoreError, page};

/// The database's clock in Unix milliseconds (every node reads the same clock).
const NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Serialises schema creation across nodes starting at once (any constant; ours spells
/// "weftjobs" in ASCII).
const SCHEMA_LOCK: i64 = 0x7765_6674_6a6f_6273;

/// Serialises admissions across nodes when the queue is bounded (ASCII "weftroom").
const ROOM_LOCK: i64 = 0x7765_6674_726f_6f6d;

/// What the committer answers a new job refused for want of room.
const NO_ROOM: u32 = u32::MAX;

/// The schema version this build creates and expects.
const SCHEMA_VERSION: i32 = 2;

const MIGRATION_1: &str = "
CREATE TABLE IF NOT EXISTS weft_jobs (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    priority     SMALLINT NOT NULL,
    eff_priority SMALLINT NOT NULL,
    data         JSONB NOT NULL,
    status       TEXT NOT NULL,
    result       JSONB,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    run_at       BIGINT NOT NULL DEFAULT 0,
    locked_by    TEXT,
    locked_until BIGINT
);
CREATE INDEX IF NOT EXISTS weft_jobs_claim ON weft_jobs (eff_priority DESC, priority DESC, seq) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS weft_jobs_lease ON weft_jobs (locked_until) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS weft_jobs_by_status ON weft_jobs (status, seq);
CREATE INDEX IF NOT EXISTS weft_jobs_finished ON weft_jobs (finished_at) WHERE finished_at IS NOT NULL;
";

/// Version 2: aging is computed by the claim, so the claim walks each native priority's queue
/// oldest first (`eff_priority` stays, unused, for version 1 nodes during an upgrade).
const MIGRATION_2: &str = "
CREATE INDEX IF NOT EXISTS weft_jobs_queue ON weft_jobs (priority, created_at, seq) WHERE status = 'queued';
DROP INDEX IF EXISTS weft_jobs_claim;
";

const COLUMNS: &str = "id, type, priority, data, status, result, error, attempts, created_at, started_at, finished_at";

/// The highest priority level (aging stops there).
const TOP_LEVEL: i16 = 2;

/// How the PostgreSQL engine connects and runs the shared queue. [`PgConfig::new`] gives the
/// CLI's defaults. Its `Debug` never shows the URL's password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database` (libpq's URL and key=value forms; add
    /// `?options=-c%20search_path%3DSCHEMA` to use another schema than `public`).
    pub url: String,
    /// How long a claim holds a job without a heartbeat. By default, 30 s.
    pub lease: Duration,
    /// How often each node sweeps lapsed leases and ages waiting jobs. By default, 10 s: a
    /// killed node's jobs run elsewhere within `lease + sweep_interval` (40 s).
    pub sweep_interval: Duration,
    /// How often an idle node looks for work even without a notification (delayed and retried
    /// jobs become due this way). By default, 2 s.
    pub poll_interval: Duration,
    /// A waiting job moves up one priority level per this much waiting. By default, 5 s.
    pub aging: Duration,
    /// How many times a job may be claimed before it ends `dead`. By default, 5.
    pub max_attempts: u32,
    /// Whether a failed or timed-out run is retried (after a backoff) while attempts remain.
    /// By default off: such a job ends `failed` or `timed_out`, as with SQLite.
    pub retry_failed: bool,
    /// The first retry's delay; each further one doubles it (at most an hour), with up to
    /// half of it taken off at random so retries spread. By default, 1 s.
    pub retry_backoff: Duration,
    /// The most writes in one transaction of the committer. By default, 512.
    pub commit_batch: NonZeroUsize,
    /// Connections kept for reads, claims and heartbeats (the committer and the listener
    /// have their own). By default, 8.
    pub pool_size: usize,
    /// The most jobs queued at one priority level, over every node: a new job beyond it is
    /// refused with [`StoreError::QueueFull`]. Exact, since admissions take an advisory lock
    /// in the transaction that counts and inserts. Jobs that come back to the queue (a lapsed
    /// lease, a release, a retry) were admitted already and are not refused. `None`, the
    /// default, leaves the queue unbounded; `weft serve` sets its `--queue-size`.
    pub queue_size: Option<usize>,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redacted(&self.url))
            .field("lease", &self.lease)
            .field("sweep_interval", &self.sweep_interval)
            .field("poll_interval", &self.poll_interval)
            .field("aging", &self.aging)
            .field("queue_size", &self.queue_size)
            .field("max_attempts", &self.max_attempts)
            .field("retry_failed", &self.retry_failed)
            .field("retry_backoff", &self.retry_backoff)
            .field("commit_batch", &self.commit_batch)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// `url` with its password (URL form) hidden; a key=value string is not shown at all.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("<redacted>"));
            }
            u.to_string()
        }
        Err(_) => "<connection string>".to_owned(),
    }
}

impl PgConfig {
    /// The defaults, for the database at `url`.
    ///
    /// ```
    /// use weft_serve::store::PgConfig;
    /// let config = PgConfig::new("postgres://app:s3cret@db.internal/jobs");
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// ```
    ///
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_serve::store::PgConfig;
    /// let config = PgConfig::new("postgres://localhost/jobs");
    /// assert_eq!(config.lease + config.sweep_interval, Duration::from_secs(40));
    /// ```
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            lease: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(10),
            poll_interval: Duration::from_secs(2),
            aging: Duration::from_secs(5),
            max_attempts: 5,
            retry_failed: false,
            retry_backoff: Duration::from_secs(1),
            commit_batch: NonZeroUsize::new(512).unwrap_or(NonZeroUsize::MIN),
            pool_size: 8,
            queue_size: None,
        }
    }

    /// Sets [`lease`](PgConfig::lease).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`sweep_interval`](PgConfig::sweep_interval).
    #[must_use]
    pub fn sweep_interval(mut self, every: Duration) -> Self {
        self.sweep_interval = every;
        self
    }

    /// Sets [`poll_interval`](PgConfig::poll_interval).
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Sets [`aging`](PgConfig::aging).
    #[must_use]
    pub fn aging(mut self, aging: Duration) -> Self {
        self.aging = aging;
        self
    }

    /// Sets [`max_attempts`](PgConfig::max_attempts) (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets [`retry_failed`](PgConfig::retry_failed) and [`retry_backoff`](PgConfig::retry_backoff).
    #[must_use]
    pub fn retry_failed(mut self, on: bool, backoff: Duration) -> Self {
        self.retry_failed = on;
        self.retry_backoff = backoff;
        self
    }

    /// Sets [`queue_size`](PgConfig::queue_size): at most `n` queued jobs per priority level.
    ///
    /// ```
    /// use weft_serve::store::PgConfig;
    /// let config = PgConfig::new("postgres://localhost/jobs").queue_size(100);
    /// assert_eq!(config.queue_size, Some(100));
    /// ```
    #[must_use]
    pub fn queue_size(mut self, n: usize) -> Self {
        self.queue_size = Some(n);
        self
    }

    /// Sets [`commit_batch`](PgConfig::commit_batch).
    #[must_use]
    pub fn commit_batch(mut self, n: NonZeroUsize) -> Self {
        self.commit_batch = n;
        self
    }
}

/// A job this node claimed: run it, and record its outcome with its attempt.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Claimed {
    /// The job as stored, `running`, with `attempts` counting this claim.
    pub record: JobRecord,
    /// The level it was claimed at (its priority, raised by aging).
    pub level: u8,
}

/// What one [`PgStore::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Swept {
    /// Jobs whose lease lapsed, back to `queued`.
    pub requeued: u64,
    /// Jobs whose lease lapsed on their last attempt, now `dead`.
    pub dead: u64,
}

/// Something another node (or this one) told the queue, received by [`PgStore::listen`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueEvent {
    /// New jobs may be waiting (a commit added some, a sweep returned some, or the listener
    /// reconnected and may have missed notifications).
    Jobs,
    /// A client cancelled the job with this id.
    Cancelled(String),
}

/// Jobs in a PostgreSQL database, shared by every node that opens it. Cloning shares the
/// connections and the committer.
#[derive(Debug, Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    pg: tokio_postgres::Config,
    config: PgConfig,
    node: String,
    /// `NOTIFY` channel for new work and for cancels (per schema: nodes of other schemas on
    /// the same database are other queues).
    chan_jobs: String,
    chan_cancel: String,
    commits: mpsc::UnboundedSender<Pending>,
    /// Statements sent, for `/metrics` and for the no-busy-polling test.
    queries: AtomicU64,
}

struct Pending {
    write: Write,
    done: oneshot::Sender<Result<u32, StoreError>>,
}

enum Write {
    Insert(NewJob),
    Running(String),
    Finish {
        id: String,
        attempt: Option<u32>,
        status: JobStatus,
        result: Option<Value>,
        error: Option<String>,
    },
}

/// What PostgreSQL said: the server's message and code, or the client's error with its cause
/// (tokio-postgres keeps "connection refused" and the like in the source).
fn pg_error(e: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
    match (e.as_db_error(), e.source()) {
        (Some(db), _) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(pg_error(&e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            e => StoreError::Postgres(format!("no connection to the database: {e}")),
        }
    }
}

impl PgStore {
    /// Connects to the database, creates or migrates the schema (safe when several nodes start
    /// at once: they take turns under an advisory lock) and starts the committer.
    ///
    /// # Errors
    ///
    /// [`StoreError::Postgres`] if the URL is invalid, the database cannot be reached, or the
    /// schema is newer than this build knows.
    ///
    /// ```no_run
    /// use weft_serve::store::{JobStore, PgConfig, PgStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_serve::store::StoreError> {
    /// let store = PgStore::open(PgConfig::new("postgres://postgres@127.0.0.1/jobs")).await?;
    /// assert!(store.get("nope").await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(config: PgConfig) -> Result<PgStore, StoreError> {
        let pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
            StoreError::Postgres(format!("invalid PostgreSQL URL: {}", pg_error(&e)))
        })?;
        let manager = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(2))
            .build()
            .map_err(|e| StoreError::Postgres(format!("cannot build the connection pool: {e}")))?;
        let schema = {
            let mut client = pool.get().await?;
            migrate(&mut client).await?;
            let row = client.query_one("SELECT current_schema()", &[]).await?;
            row.get::<_, Option<String>>(0)
                .unwrap_or_else(|| "public".into())
        };
        let suffix = if schema == "public" {
            String::new()
        } else {
            format!("_{schema}")
        };
        let (commits, queue) = mpsc::unbounded_channel();
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                pg,
                node: format!("{:016x}", rand::random::<u64>()),
                chan_jobs: channel_name("weft_jobs", &suffix),
                chan_cancel: channel_name("weft_cancel", &suffix),
                config,
                commits,
                queries: AtomicU64::new(0),
            }),
        };
        // The committer holds only a weak handle, so it ends when the last store is dropped.
        tokio::spawn(committer(Arc::downgrade(&store.inner), queue));
        Ok(store)
    }

    /// This node's name in `locked_by` (random, per opened store).
    #[must_use]
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The engine's settings.
    #[must_use]
    pub fn config(&self) -> &PgConfig {
        &self.inner.config
    }

    /// Statements this store (and its clones) sent to the database so far: claims,
    /// heartbeats, sweeps, reads and commits alike.
    ///
    /// ```no_run
    /// use weft_serve::store::{JobStore, PgConfig, PgStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft_serve::store::StoreError> {
    /// let store = PgStore::open(PgConfig::new("postgres://postgres@127.0.0.1/jobs")).await?;
    /// let before = store.queries();
    /// store.get("a").await?;
    /// assert_eq!(store.queries() - before, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn queries(&self) -> u64 {
        self.inner.queries.load(Ordering::Relaxed)
    }

    fn count(&self, n: u64) {
        // A statistic only: no ordering with other memory is needed.
        self.inner.queries.fetch_add(n, Ordering::Relaxed);
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.inner.pool.get().await?)
    }

    async fn commit(&self, write: Write) -> Result<u32, StoreError> {
        let (done, committed) = oneshot::channel();
        self.inner
            .commits
            .send(Pending { write, done })
            .map_err(|_| StoreError::Unavailable("the committer task stopped".into()))?;
        committed
            .await
            .map_err(|_| StoreError::Unavailable("the committer task stopped".into()))?
    }

    /// Claims up to `limit` due jobs for this node, highest effective priority first and
    /// oldest first within a level, each under a fresh lease and as one more attempt.
    ///
    /// # Errors
    ///
    /// [`StoreError::Postgres`] if the database fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave jobs claimed by this node that it never runs: their lease
    /// lapses and a sweep returns them.
    pub async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let stmt = client.prepare_cached(&claim_statement()).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.count(1);
        let rows = client
            .query(
                &stmt,
                &[
                    &limit,
                    &self.inner.node,
                    &millis(self.inner.config.lease),
                    &millis(self.inner.config.aging).max(1),
                ],
            )
            .await?;
        let mut claimed: Vec<((i32, i64, i64), Claimed)> = rows
            .iter()
            .map(|r| {
                let level = u8::try_from(r.get::<_, i32>(11)).unwrap_or(0);
                let record = row_to_record(r);
                let key = (r.get::<_, i32>(12), record.created_at, r.get::<_, i64>(13));
                (key, Claimed { record, level })
            })
            .collect();
        // RETURNING has no order: restore the claim's (segment, then oldest first).
        claimed.sort_by_key(|(key, _)| *key);
        Ok(claimed.into_iter().map(|(_, c)| c).collect())
    }

    /// Renews the lease of every job this node holds and returns their ids. A job this node
    /// runs that is missing from the answer is no longer its own (a client cancelled it, or
    /// its lease lapsed and a sweep took it): stop running it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Postgres`] if the database fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses only this renewal (the statement is one UPDATE, applied or
    /// not): the leases keep their old expiry, and the next heartbeat renews them.
    pub async fn heartbeat(&self) -> Result<HashSet<String>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "WITH mine AS (
                     SELECT seq FROM weft_jobs WHERE locked_by = $1 AND status = 'running'
                     ORDER BY id FOR UPDATE)
                 UPDATE weft_jobs j SET locked_until = {NOW} + $2
                 FROM mine WHERE j.seq = mine.seq RETURNING j.id"
            ))
            .await?;
        self.count(1);
        let rows = client
            .query(&stmt, &[&self.inner.node, &millis(self.inner.config.lease)])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Returns jobs whose lease lapsed to `queued` (or `dead` after their last attempt). Any
    /// node may sweep; concurrent sweeps do not double-count.
    ///
    /// # Errors
    ///
    /// [`StoreError::Postgres`] if the database fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses nothing: the sweep is one statement, applied whole or not at all,
    /// and the next sweep (on any node) does what this one did not.
    pub async fn sweep(&self) -> Result<Swept, StoreError> {
        let client = self.client().await?;
        let max = i32::try_from(self.inner.config.max_attempts).unwrap_or(i32::MAX);
        let stmt = client
            .prepare_cached(&format!(
                "WITH lapsed AS (
                     UPDATE weft_jobs SET
                         status = CASE WHEN attempts < $1 THEN 'queued' ELSE 'dead' END,
                         error = 'the lease of node ' || locked_by || ' lapsed during attempt ' || attempts,
                         finished_at = CASE WHEN attempts < $1 THEN NULL ELSE {NOW} END,
                         run_at = {NOW}, locked_by = NULL, locked_until = NULL
                     WHERE status = 'running' AND locked_until < {NOW}
                     RETURNING status),
                 notified AS (
                     SELECT pg_notify($2, '') FROM lapsed WHERE status = 'queued' LIMIT 1)
                 SELECT count(*) FILTER (WHERE status = 'queued'),
                        count(*) FILTER (WHERE status = 'dead'),
                        (SELECT count(*) FROM notified)
                 FROM lapsed"
            ))
            .await?;
        self.count(1);
        let row = client
            .query_one(&stmt, &[&max, &self.inner.chan_jobs])
            .await?;
        Ok(Swept {
            requeued: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            dead: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        })
    }

    /// Puts back to `queued` the jobs of `ids` that this node holds (at shutdown, or when it
    /// gives up jobs it claimed), lease released and due at once. Returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError::Postgres`] if the database fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the jobs held by this node (the UPDATE applied or not);
    /// those it still holds go back to the queue when their lease lapses and a sweep runs.
    pub async fn release(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        self.count(1);
        let n = client
            .execute(
                &format!(
                    "UPDATE weft_jobs SET status = 'queued', started_at = NULL,
                         locked_by = NULL, locked_until = NULL, run_at = {NOW}
                     WHERE id = ANY($1) AND status = 'running' AND locked_by = $2"
                ),
                &[&ids, &self.inner.node],
            )
            .await?;
        if n > 0 {
            self.count(1);
            client
                .execute("SELECT pg_notify($1, '')", &[&self.inner.chan_jobs])
                .await?;
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Queued jobs per effective priority level, from the database (every node's queue).
    ///
    /// # Errors
    ///
    /// [`StoreError::Postgres`] if the database fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses nothing: it only reads.
    pub async fn queue_depth(&self) -> Result<Vec<(u8, u64)>, StoreError> {
        let client = self.client().await?;
        self.count(1);
        let rows = client
            .query(
                &format!(
                    "SELECT LEAST($2::int8, priority + ({NOW} - created_at) / $1)::int2 AS level,
                            count(*)
                     FROM weft_jobs WHERE status = 'queued' GROUP BY level ORDER BY level"
                ),
                &[
                    &millis(self.inner.config.aging).max(1),
                    &i64::from(TOP_LEVEL),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    u8::try_from(r.get::<_, i16>(0)).unwrap_or(0),
                    u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                )
            })
            .collect())
    }

    /// Opens a connection of its own that `LISTEN`s for new jobs and cancels, and forwards
    /// them until the [`QueueEvents`] is dropped. If the connection breaks it reconnects (every
    /// second until it succeeds) and sends [`QueueEvent::Jobs`], since notifications sent
    /// meanwhile are lost.
    ///
    /// The events wait in a bounded buffer ([`QueueEvents::CAPACITY`]): new-job notifications
    /// coalesce into one waiting [`QueueEvent::Jobs`] (it only means "look again"), and when
    /// the buffer is full a notification is dropped and the receiver gets a
    /// [`QueueEvent::Jobs`] once it has read what waits, so it claims again (a cancel dropped
    /// this way reaches the node running the job through its next heartbeat instead).
    ///
    /// # Errors
    ///
    /// [`StoreError::Postgres`] if the first connection fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it returns loses nothing: the receiver is dropped with it,
    /// and a connection opened so far ends with its task once that task sees no receiver left.
    pub async fn listen(&self) -> Result<QueueEvents, StoreError> {
        let (events, outbox) = QueueEvents::new(QueueEvents::CAPACITY);
        let first = self.listen_once(outbox.clone()).await?;
        let store = self.clone();
        tokio::spawn(async move {
            let mut ended = first;
            loop {
                tokio::select! {
                    _ = &mut ended => {}
                    () = outbox.tx.closed() => return,
                }
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = outbox.tx.closed() => return,
                    }
                    if let Ok(next) = store.listen_once(outbox.clone()).await {
                        ended = next;
                        break;
                    }
                }
                outbox.offer(QueueEvent::Jobs);
            }
        });
        Ok(events)
    }

    /// One listening connection: returns a task that ends when the connection does.
    async fn listen_once(&self, outbox: Outbox) -> Result<tokio::task::JoinHandle<()>, StoreError> {
        let (client, mut connection) = self.inner.pg.connect(NoTls).await?;
        let chan_jobs = self.inner.chan_jobs.clone();
        let chan_cancel = self.inner.chan_cancel.clone();
        // The driver polls the connection (so the LISTEN below completes) and forwards every
        // notification, until the connection ends or nobody listens any more.
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            loop {
                let next = tokio::select! {
                    m = messages.next() => m,
                    () = outbox.tx.closed() => return,
                };
                let event = match next {
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == chan_cancel => {
                        QueueEvent::Cancelled(n.payload().to_owned())
                    }
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == chan_jobs => {
                        QueueEvent::Jobs
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return,
                };
                if !outbox.offer(event) {
                    return;
                }
            }
        });
        let listen = format!(
            "LISTEN {}; LISTEN {}",
            quote_ident(&self.inner.chan_jobs),
            quote_ident(&self.inner.chan_cancel)
        );
        self.count(1);
        if let Err(e) = client.batch_execute(&listen).await {
            driver.abort();
            return Err(e.into());
        }
        // The client keeps the connection open: it lives as long as the driver.
        Ok(tokio::spawn(async move {
            let _client = client;
            let _ = driver.await;
        }))
    }
}

/// The claim: one statement walking the queue in effective-priority order as six segments,
/// each an oldest-first range of the `(priority, created_at, seq)` index, each locking with
/// `SKIP LOCKED` only as many rows as the segments before it left to take. The effective
/// level of a job of native priority `p` that waited `w` is `min(2, p + w / aging)`, so, with
/// `now` read once and `A` the aging: level 2 is native 2, then native 1 created before
/// `now - A`, then native 0 created before `now - 2A`; level 1 is the other native 1, then
/// native 0 created before `now - A`; level 0 the rest. Parameters: `$1` the most to claim,
/// `$2` the node, `$3` the lease and `$4` the aging in milliseconds. Returns the job's
/// columns, its level and its segment.
fn claim_statement() -> String {
    // (native priority, waited less than k agings, waited at least k agings, level), in claim
    // order.
    const SEGMENTS: [(i16, Option<i64>, Option<i64>, i32); 6] = [
        (2, None, None, 2),
        (1, None, Some(1), 2),
        (0, None, Some(2), 2),
        (1, Some(1), None, 1),
        (0, Some(2), Some(1), 1),
        (0, Some(1), None, 0),
    ];
    let mut ctes = vec![format!("t AS MATERIALIZED (SELECT {NOW} AS now)")];
    let mut taken = String::new();
    for (i, (priority, newer, older, level)) in SEGMENTS.iter().enumerate() {
        let n = i + 1;
        let mut filter = format!("status = 'queued' AND priority = {priority}");
        // Waited at least k agings: created at or before now - kA.
        if let Some(k) = older {
            filter.push_str(&format!(
                " AND created_at <= (SELECT now FROM t) - {k} * $4::int8"
            ));
        }
        // Waited less than k agings.
        if let Some(k) = newer {
            filter.push_str(&format!(
                " AND created_at > (SELECT now FROM t) - {k} * $4::int8"
            ));
        }
        ctes.push(format!(
            "s{n} AS (SELECT seq, {level}::int4 AS level, {n}::int4 AS segment FROM weft_jobs
                 WHERE {filter} AND run_at <= (SELECT now FROM t)
                 ORDER BY created_at, seq
                 LIMIT GREATEST(0, $1::int8{taken})
                 FOR UPDATE SKIP LOCKED)"
        ));
        taken.push_str(&format!(" - (SELECT count(*) FROM s{n})"));
    }
    let union = (1..=SEGMENTS.len())
        .map(|n| format!("SELECT * FROM s{n}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    format!(
        "WITH {}, picked AS ({union})
         UPDATE weft_jobs j
         SET status = 'running', attempts = j.attempts + 1, started_at = {NOW},
             locked_by = $2, locked_until = {NOW} + $3
         FROM picked WHERE j.seq = picked.seq
         RETURNING j.{}, picked.level, picked.segment, j.seq",
        ctes.join(",\n"),
        COLUMNS.replace(", ", ", j.")
    )
}

/// What [`PgStore::listen`] hands out: the queue's events, in a bounded buffer where new-job
/// wake-ups coalesce and an overflow turns into one [`QueueEvent::Jobs`] (see
/// [`PgStore::listen`]).
///
/// ```no_run
/// use weft_serve::store::{PgConfig, PgStore, QueueEvent, StoreError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = PgStore::open(PgConfig::new("postgres://localhost/jobs")).await?;
/// let mut events = store.listen().await?;
/// while let Some(event) = events.recv().await {
///     match event {
///         // Look again: one claim covers every wake-up that coalesced into this one.
///         QueueEvent::Jobs => drop(store.claim(8).await?),
///         QueueEvent::Cancelled(id) => println!("stop {id} if it runs here"),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct QueueEvents {
    rx: mpsc::Receiver<QueueEvent>,
    flags: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    /// A [`QueueEvent::Jobs`] waits in the buffer: another one adds nothing.
    jobs: AtomicBool,
    /// A notification was dropped for want of room: the receiver owes itself a look.
    dropped: AtomicBool,
}

/// The listener's side of [`QueueEvents`].
#[derive(Debug, Clone)]
struct Outbox {
    tx: mpsc::Sender<QueueEvent>,
    flags: Arc<Flags>,
}

impl Outbox {
    /// Queues `event`, coalescing and dropping as [`PgStore::listen`] says; `false` once the
    /// receiver is gone.
    fn offer(&self, event: QueueEvent) -> bool {
        let jobs = event == QueueEvent::Jobs;
        // AcqRel with the receiver's store: a wake-up it has taken is never counted as waiting.
        if jobs && self.flags.jobs.swap(true, Ordering::AcqRel) {
            return true;
        }
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if jobs {
                    self.flags.jobs.store(false, Ordering::Release);
                }
                self.flags.dropped.store(true, Ordering::Release);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl QueueEvents {
    /// How many events wait at most.
    pub const CAPACITY: usize = 64;

    fn new(capacity: usize) -> (QueueEvents, Outbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let flags = Arc::new(Flags::default());
        (
            QueueEvents {
                rx,
                flags: Arc::clone(&flags),
            },
            Outbox { tx, flags },
        )
    }

    /// The next event; `None` once the listener stopped for good.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event is taken only when this returns it.
    pub async fn recv(&mut self) -> Option<QueueEvent> {
        // What waits first; then, if something was dropped meanwhile, a look again. (Dropped
        // only when the buffer was full, so a receiver parked on an empty buffer misses
        // nothing.)
        let event = match self.rx.try_recv() {
            Ok(event) => event,
            Err(_) if self.flags.dropped.swap(false, Ordering::AcqRel) => {
                return Some(QueueEvent::Jobs);
            }
            Err(_) => self.rx.recv().await?,
        };
        if event == QueueEvent::Jobs {
            self.flags.jobs.store(false, Ordering::Release);
        }
        Some(event)
    }
}

/// A `NOTIFY` channel name: at most 63 bytes, as PostgreSQL keeps them.
fn channel_name(base: &str, suffix: &str) -> String {
    let mut name = format!("{base}{suffix}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Creates the schema or brings it up to [`SCHEMA_VERSION`], one node at a time.
async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS weft_schema (version INTEGER NOT NULL)")
        .await?;
    let version: i32 = tx
        .query_opt("SELECT version FROM weft_schema", &[])
        .await?
        .map_or(0, |r| r.get(0));
    if version > SCHEMA_VERSION {
        return Err(StoreError::Postgres(format!(
            "the database's job schema is version {version}, newer than this weft knows \
             ({SCHEMA_VERSION}); upgrade weft"
        )));
    }
    if version < 1 {
        tx.batch_execute(MIGRATION_1).await?;
    }
    if version < 2 {
        tx.batch_execute(MIGRATION_2).await?;
    }
    if version == 0 {
        tx.execute(
            "INSERT INTO weft_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await?;
    } else if version < SCHEMA_VERSION {
        tx.execute("UPDATE weft_schema SET version = $1", &[&SCHEMA_VERSION])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn row_to_record(r: &Row) -> JobRecord {
    let status: String = r.get(4);
    JobRecord {
        id: r.get(0),
        job_type: r.get(1),
        priority: u8::try_from(r.get::<_, i16>(2)).unwrap_or(0),
        data: r.get(3),
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        result: r.get(5),
        error: r.get(6),
        attempts: u32::try_from(r.get::<_, i32>(7)).unwrap_or(0),
        created_at: r.get(8),
        started_at: r.get(9),
        finished_at: r.get(10),
    }
}

impl JobStore for PgStore {
    async fn insert(&self, job: NewJob) -> Result<(), StoreError> {
        let id = job.id.clone();
        let level = job.priority;
        match self.commit(Write::Insert(job)).await? {
            0 => Err(StoreError::Duplicate(id)),
            NO_ROOM => Err(StoreError::QueueFull {
                level,
                capacity: self.inner.config.queue_size.unwrap_or(0),
            }),
            _ => Ok(()),
        }
    }

    async fn mark_running(&self, id: &str) -> Result<Option<u32>, StoreError> {
        let attempt = self.commit(Write::Running(id.to_owned())).await?;
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
        if attempt.is_some() {
            let changed = self
                .commit(Write::Finish {
                    id: id.to_owned(),
                    attempt,
                    status,
                    result,
                    error,
                })
                .await?;
            return Ok(changed > 0);
        }
        // Unfenced (a client's cancel): at once, and tell every node, so the one running the
        // job stops it.
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "WITH done AS (
                     UPDATE weft_jobs SET status = $2, result = $3, error = $4,
                         finished_at = {NOW}, locked_by = NULL, locked_until = NULL
                     WHERE id = $1 AND status IN ('queued', 'running')
                     RETURNING id)
                 SELECT pg_notify($5, id) FROM done"
            ))
            .await?;
        self.count(1);
        let rows = client
            .query(
                &stmt,
                &[
                    &id,
                    &status.as_str(),
                    &result,
                    &error,
                    &self.inner.chan_cancel,
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn requeue(&self, ids: Vec<String>) -> Result<usize, StoreError> {
        let client = self.client().await?;
        self.count(1);
        let n = client
            .execute(
                "UPDATE weft_jobs SET status = 'queued', started_at = NULL,
                     locked_by = NULL, locked_until = NULL
                 WHERE id = ANY($1) AND status = 'running'
                   AND (locked_by IS NULL OR locked_by = $2)",
                &[&ids, &self.inner.node],
            )
            .await?;
        if n > 0 {
            // Other nodes may take them now rather than at their next poll.
            self.count(1);
            client
                .execute("SELECT pg_notify($1, '')", &[&self.inner.chan_jobs])
                .await?;
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        self.count(1);
        client
            .execute(
                "DELETE FROM weft_jobs WHERE id = $1 AND status = 'queued'",
                &[&id],
            )
            .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM weft_jobs WHERE id = $1"))
            .await?;
        self.count(1);
        Ok(client
            .query_opt(&stmt, &[&id])
            .await?
            .as_ref()
            .map(row_to_record))
    }

    async fn list(
        &self,
        status: Option<JobStatus>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let client = self.client().await?;
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let after = after.map_or(0, |a| i64::try_from(a).unwrap_or(i64::MAX));
        self.count(1);
        let rows = match status {
            Some(s) => {
                client
                    .query(
                        &format!(
                            "SELECT {COLUMNS}, seq FROM weft_jobs WHERE status = $1 AND seq > $2
                             ORDER BY seq LIMIT $3"
                        ),
                        &[&s.as_str(), &after, &fetch],
                    )
                    .await?
            }
            None => client
                .query(
                    &format!(
                        "SELECT {COLUMNS}, seq FROM weft_jobs WHERE seq > $1 ORDER BY seq LIMIT $2"
                    ),
                    &[&after, &fetch],
                )
                .await?,
        };
        let rows = rows
            .iter()
            .map(|r| {
                (
                    u64::try_from(r.get::<_, i64>(11)).unwrap_or(0),
                    row_to_record(r),
                )
            })
            .collect();
        Ok(page(rows, limit))
    }

    async fn purge_finished(&self, older_than: Duration) -> Result<u64, StoreError> {
        let client = self.client().await?;
        self.count(1);
        // The database's clock decides what is old, as for leases.
        Ok(client
            .execute(
                &format!(
                    "DELETE FROM weft_jobs
                     WHERE finished_at < {NOW} - $1 AND status NOT IN ('queued', 'running')"
                ),
                &[&millis(older_than)],
            )
            .await?)
    }

    async fn recover(&self) -> Result<Vec<JobRecord>, StoreError> {
        let client = self.client().await?;
        self.count(2);
        client
            .execute(
                &format!(
                    "UPDATE weft_jobs SET status = 'queued', started_at = NULL,
                         locked_by = NULL, locked_until = NULL
                     WHERE status = 'running' AND (locked_until IS NULL OR locked_until < {NOW})"
                ),
                &[],
            )
            .await?;
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM weft_jobs WHERE status = 'queued' ORDER BY seq"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(row_to_record).collect())
    }

    async fn counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        let client = self.client().await?;
        self.count(1);
        let rows = client
            .query(
                "SELECT status, count(*) FROM weft_jobs GROUP BY status",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let status = JobStatus::parse(r.get::<_, &str>(0))?;
                Some((status, u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
            })
            .collect())
    }
}

/// The committer task: gathers writes into batches and commits each in one transaction, until
/// the last [`PgStore`] is dropped.
async fn committer(store: std::sync::Weak<Inner>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::new();
    while let Some(first) = queue.recv().await {
        let Some(inner) = store.upgrade() else { return };
        let max = inner.config.commit_batch.get();
        batch.push(first);
        while batch.len() < max {
            match queue.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let store = PgStore { inner };
        match run_batch(&store, &batch).await {
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
    }
}

/// Keeps, of a batch's new jobs (in order), those the queue has room for at their level, and
/// returns the slots of the others: refused, unless their id exists already (then they stay in
/// the batch, where the insert finds them duplicates). Holds the admission lock until the
/// transaction ends, so two nodes never count the same room.
#[allow(clippy::too_many_arguments)]
async fn make_room(
    store: &PgStore,
    tx: &deadpool_postgres::Transaction<'_>,
    cap: usize,
    slots: &mut Vec<usize>,
    ids: &mut Vec<&str>,
    types: &mut Vec<&str>,
    priorities: &mut Vec<i16>,
    data: &mut Vec<&Value>,
    run_at: &mut Vec<i64>,
) -> Result<Vec<usize>, StoreError> {
    let mut levels: Vec<i16> = priorities.clone();
    levels.sort_unstable();
    levels.dedup();
    let cap_i64 = i64::try_from(cap).unwrap_or(i64::MAX);
    // The count must start after the lock is held, so that its snapshot sees every admission
    // committed before. Not pipelined: `execute` with a query string sends a Parse and waits for
    // its answer before it sends the statement, so a cached count sent alongside reached the
    // server first and counted before the lock (the test that both nodes admit exactly the room
    // caught it: 9 admitted for a room of 5).
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await?;
    store.count(2);
    tx.execute(&lock, &[&ROOM_LOCK]).await?;
    let stmt = tx
        .prepare_cached(
            "SELECT l, (SELECT count(*) FROM (SELECT 1 FROM weft_jobs
                        WHERE status = 'queued' AND priority = l LIMIT $2) q)
             FROM unnest($1::int2[]) AS l",
        )
        .await?;
    let rows = tx.query(&stmt, &[&levels, &cap_i64]).await?;
    let mut room: std::collections::HashMap<i16, i64> = rows
        .iter()
        .map(|r| (r.get::<_, i16>(0), cap_i64 - r.get::<_, i64>(1)))
        .collect();
    let mut keep = Vec::with_capacity(ids.len());
    for p in priorities.iter() {
        let left = room.entry(*p).or_insert(0);
        keep.push(*left > 0);
        if *left > 0 {
            *left -= 1;
        }
    }
    if keep.iter().all(|k| *k) {
        return Ok(Vec::new());
    }
    // A refused id that exists already is a duplicate (a client's retried request), not a
    // refusal: leave it in for the insert to answer.
    let over: Vec<&str> = ids
        .iter()
        .zip(&keep)
        .filter(|(_, k)| !**k)
        .map(|(id, _)| *id)
        .collect();
    store.count(1);
    let existing: HashSet<String> = tx
        .query("SELECT id FROM weft_jobs WHERE id = ANY($1)", &[&over])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (k, id) in keep.iter_mut().zip(ids.iter()) {
        *k = *k || existing.contains(*id);
    }
    let refused = slots
        .iter()
        .zip(&keep)
        .filter(|(_, k)| !**k)
        .map(|(slot, _)| *slot)
        .collect();
    retain_mask(slots, &keep);
    retain_mask(ids, &keep);
    retain_mask(types, &keep);
    retain_mask(priorities, &keep);
    retain_mask(data, &keep);
    retain_mask(run_at, &keep);
    Ok(refused)
}

/// Keeps the items of `v` whose place in `mask` is true.
fn retain_mask<T>(v: &mut Vec<T>, mask: &[bool]) {
    let mut keep = mask.iter();
    v.retain(|_| keep.next().copied().unwrap_or(true));
}

/// Runs one batch in one transaction: the new jobs as one multi-row insert, then starts and
/// outcomes pipelined. Any error rolls back everything.
async fn run_batch(store: &PgStore, batch: &[Pending]) -> Result<Vec<u32>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let mut out = vec![0u32; batch.len()];

    // New jobs: the first of each id in the batch goes in; a repeat is a duplicate.
    let mut seen = HashSet::new();
    let mut slots = Vec::new();
    let (mut ids, mut types, mut priorities, mut data, mut run_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, p) in batch.iter().enumerate() {
        if let Write::Insert(job) = &p.write
            && seen.insert(job.id.as_str())
        {
            slots.push(i);
            ids.push(job.id.as_str());
            types.push(job.job_type);
            priorities.push(i16::from(job.priority));
            data.push(&job.data);
            run_at.push(job.run_at.unwrap_or(0));
        }
    }
    if let (Some(cap), false) = (store.inner.config.queue_size, ids.is_empty()) {
        let refused = make_room(
            store,
            &tx,
            cap,
            &mut slots,
            &mut ids,
            &mut types,
            &mut priorities,
            &mut data,
            &mut run_at,
        )
        .await?;
        for slot in refused {
            out[slot] = NO_ROOM;
        }
    }
    if !ids.is_empty() {
        let stmt = tx
            .prepare_cached(&format!(
                "WITH added AS (
                     INSERT INTO weft_jobs
                         (id, type, priority, eff_priority, data, status, created_at, run_at)
                     SELECT u.id, u.type, u.priority, u.priority, u.data, 'queued', {NOW}, u.run_at
                     FROM unnest($1::text[], $2::text[], $3::int2[], $4::jsonb[], $6::int8[])
                          WITH ORDINALITY AS u(id, type, priority, data, run_at, n)
                     ORDER BY u.n
                     ON CONFLICT (id) DO NOTHING
                     RETURNING id)
                 SELECT id, pg_notify($5, '') FROM added"
            ))
            .await?;
        store.count(1);
        let rows = tx
            .query(
                &stmt,
                &[
                    &ids,
                    &types,
                    &priorities,
                    &data,
                    &store.inner.chan_jobs,
                    &run_at,
                ],
            )
            .await?;
        let added: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        for (slot, id) in slots.iter().zip(&ids) {
            if added.contains(*id) {
                out[*slot] = 1;
            }
        }
    }

    // Starts and outcomes, in order, pipelined on the transaction's connection.
    let retry = store.inner.config.retry_failed;
    let base = millis(store.inner.config.retry_backoff);
    let running = tx
        .prepare_cached(&format!(
            "UPDATE weft_jobs SET status = 'running', attempts = attempts + 1, started_at = {NOW}
             WHERE id = $1 AND status = 'queued' RETURNING attempts"
        ))
        .await?;
    // A fenced outcome applies only while the job runs that very attempt. A retryable one
    // (a failure, with retries on) goes back to the queue, due after the backoff, while
    // attempts remain; after the last it is `dead`.
    let finish = tx
        .prepare_cached(&format!(
            "UPDATE weft_jobs SET
                 status = CASE WHEN NOT $6 THEN $2
                               WHEN attempts < $7 THEN 'queued' ELSE 'dead' END,
                 result = $3, error = $4,
                 finished_at = CASE WHEN $6 AND attempts < $7 THEN NULL ELSE {NOW} END,
                 started_at = CASE WHEN $6 AND attempts < $7 THEN NULL ELSE started_at END,
                 run_at = CASE WHEN $6 AND attempts < $7
                     THEN {NOW} + (LEAST(3600000, $8::bigint * power(2, attempts - 1))
                                   * (0.5 + random() / 2))::bigint
                     ELSE run_at END,
                 locked_by = NULL, locked_until = NULL
             WHERE id = $1 AND status IN ('queued', 'running')
               AND ($5::int4 IS NULL OR (status = 'running' AND attempts = $5))"
        ))
        .await?;
    let max = i32::try_from(store.inner.config.max_attempts).unwrap_or(i32::MAX);
    // Rows are locked in id order, as the heartbeat locks this node's rows: two transactions
    // taking locks in one order cannot deadlock (in another order they did, under load, and
    // PostgreSQL aborted the batch). Stable, so writes of one job keep their order.
    let mut order: Vec<(usize, &Pending)> = batch.iter().enumerate().collect();
    order.sort_by_key(|(_, p)| match &p.write {
        Write::Insert(_) => "",
        Write::Running(id) | Write::Finish { id, .. } => id.as_str(),
    });
    let mut pending = Vec::new();
    for (i, p) in order {
        match &p.write {
            Write::Insert(_) => {}
            Write::Running(id) => {
                let (tx, running) = (&tx, &running);
                pending.push(futures_util::future::Either::Left(async move {
                    let row = tx.query_opt(running, &[id]).await?;
                    Ok::<_, tokio_postgres::Error>((
                        i,
                        row.map_or(0, |r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(0)),
                    ))
                }));
            }
            Write::Finish {
                id,
                attempt,
                status,
                result,
                error,
            } => {
                let (tx, finish) = (&tx, &finish);
                let attempt = attempt.map(|a| i32::try_from(a).unwrap_or(i32::MAX));
                let again = retry
                    && attempt.is_some()
                    && matches!(status, JobStatus::Failed | JobStatus::TimedOut);
                pending.push(futures_util::future::Either::Right(async move {
                    let n = tx
                        .execute(
                            finish,
                            &[
                                id,
                                &status.as_str(),
                                result,
                                error,
                                &attempt,
                                &again,
                                &max,
                                &base,
                            ],
                        )
                        .await?;
                    Ok((i, u32::from(n > 0)))
                }));
            }
        }
    }
    store.count(pending.len() as u64);
    for (i, changed) in futures_util::future::try_join_all(pending).await? {
        out[i] = changed;
    }
    tx.commit().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{QueueEvent, QueueEvents};

    #[tokio::test]
    async fn wake_ups_coalesce_while_one_waits_unread() {
        let (mut events, outbox) = QueueEvents::new(4);
        for _ in 0..100 {
            assert!(outbox.offer(QueueEvent::Jobs));
        }
        assert!(outbox.offer(QueueEvent::Cancelled("a".into())));
        assert_eq!(events.recv().await, Some(QueueEvent::Jobs));
        assert_eq!(events.recv().await, Some(QueueEvent::Cancelled("a".into())));
        // Once read, the next wake-up is queued again.
        assert!(outbox.offer(QueueEvent::Jobs));
        assert_eq!(events.recv().await, Some(QueueEvent::Jobs));
        assert!(events.rx.is_empty());
    }

    #[tokio::test]
    async fn an_overflow_drops_notifications_and_ends_in_one_wake_up() {
        let (mut events, outbox) = QueueEvents::new(4);
        for i in 0..10 {
            assert!(outbox.offer(QueueEvent::Cancelled(format!("c{i}"))));
        }
        // The buffer kept 4; the rest were dropped, and after them comes a look again.
        for i in 0..4 {
            assert_eq!(
                events.recv().await,
                Some(QueueEvent::Cancelled(format!("c{i}")))
            );
        }
        assert_eq!(events.recv().await, Some(QueueEvent::Jobs));
        assert!(events.rx.is_empty());
        // Only once.
        assert!(
            !events
                .flags
                .dropped
                .load(std::sync::atomic::Ordering::Acquire)
        );
    }

    #[tokio::test]
    async fn the_outbox_reports_a_receiver_that_went_away() {
        let (events, outbox) = QueueEvents::new(4);
        drop(events);
        assert!(!outbox.offer(QueueEvent::Jobs));
    }
}
