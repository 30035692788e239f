//! The live view: following growing log files as `tail -F` does, with a report every interval.
//!
//! [`Follower`] is the engine: each [`poll`](Follower::poll) reads what was appended to the
//! followed files and counts it with the batch analysis's parsers, filters and aggregation;
//! [`snapshot`](Follower::snapshot) gives the report so far. [`follow`] (or
//! [`Follower::run`]) drives it: it polls every [`FollowOptions::poll_interval`] (250 ms by
//! default), hands a [`Snapshot`] to a callback every [`FollowOptions::snapshot_interval`]
//! (1 s), and returns the final report once its context is done.
//!
//! Each poll costs a few system calls per file when nothing changed (a `stat` of the path, an
//! `fstat` and a `read` of the open file); polling is portable, and it sees every change
//! `tail -F` handles (growth, truncation, a new file at the path) without a file-system
//! watcher.
//!
//! | `tail -F`                              | here                                                |
//! |----------------------------------------|-----------------------------------------------------|
//! | starts at the end (`-n 0`)             | [`Start::End`], the default                          |
//! | `-n +1` (from the start)               | [`Start::Beginning`]                                 |
//! | waits for a missing file               | [`FileState::Waiting`], read from its start later   |
//! | "file truncated": reads from 0         | the same; [`FileStatus::truncations`]               |
//! | "has been replaced": opens the new one | the same, after reading the old one to its end      |
//!
//! The `tui` feature adds a terminal dashboard over the snapshots (`weft_logs::tui`).

mod atomic;
mod follower;
mod tail;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use weft_core::context::Context;

pub use atomic::write_atomic;
pub use follower::Follower;

use crate::report::fmt_ms;
use crate::{LogsError, Options, Report};

/// Where following starts in a file that exists when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Start {
    /// At its end: only lines appended later are counted (`tail -F`'s default). The default.
    #[default]
    End,
    /// At its start: its existing lines are counted first.
    Beginning,
}

/// How [`follow`] paces itself. Start from [`FollowOptions::default()`] and set fields.
///
/// ```
/// use std::time::Duration;
/// use weft_logs::follow::{FollowOptions, Start};
/// let o = FollowOptions::default();
/// assert_eq!(o.start, Start::End);
/// assert_eq!(o.poll_interval, Duration::from_millis(250));
/// assert_eq!(o.snapshot_interval, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FollowOptions {
    /// Where to start in the files that exist. By default [`Start::End`].
    pub start: Start,
    /// How often the files are looked at; not zero. By default 250 ms.
    pub poll_interval: Duration,
    /// How often a [`Snapshot`] is handed to the callback. By default 1 s.
    pub snapshot_interval: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            start: Start::End,
            poll_interval: Duration::from_millis(250),
            snapshot_interval: Duration::from_secs(1),
        }
    }
}

/// What a followed path is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileState {
    /// The path names no file yet; it is looked for at every poll.
    Waiting,
    /// A file is open and read as it grows.
    Following,
    /// The file at the path cannot be followed (a gzip file appeared there); it is not read.
    Refused,
}

/// One followed path, as of the last poll.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FileStatus {
    /// The path given.
    pub path: PathBuf,
    /// Waiting, following or refused.
    pub state: FileState,
    /// The offset read up to in the current file.
    pub offset: u64,
    /// Lines counted from this path.
    pub lines: u64,
    /// Times the path was found naming a new file (rotations).
    pub rotations: u64,
    /// Times the file shrank and was read again from its start.
    pub truncations: u64,
    /// The last read error, or why the file is refused.
    pub error: Option<String>,
}

/// The state of a [`follow`] run at one interval.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// The report over every line counted so far.
    pub report: Report,
    /// The followed paths.
    pub files: Vec<FileStatus>,
    /// Time since following began.
    pub elapsed: Duration,
    /// Lines counted since the previous snapshot.
    pub new_lines: u64,
    /// `new_lines` per second over the interval since the previous snapshot.
    pub lines_per_second: f64,
}

impl Snapshot {
    /// The snapshot in one line, for logs and pipes: elapsed time, lines (new and per second),
    /// requests, errors, 5xx, latency percentiles and the files being read.
    ///
    /// ```
    /// use weft_logs::follow::{Follower, Start};
    /// use weft_logs::Options;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.log");
    /// std::fs::write(&path, "2024-03-01 12:00:00 path=/a status=503 time=20ms\n")?;
    /// let mut f = Follower::new([&path], Options::default(), Start::Beginning)?;
    /// f.poll()?;
    /// let snap = weft_logs::follow::Snapshot::new(&f, std::time::Duration::from_secs(5), 1, 1.0);
    /// let line = snap.summary();
    /// assert!(line.starts_with("+0:05 lines 1 (+1, 1/s) requests 1 errors 1 (100.0%) 5xx 1"), "{line}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn summary(&self) -> String {
        let r = &self.report;
        let secs = self.elapsed.as_secs();
        let s5xx: u64 = r
            .status_codes
            .iter()
            .filter(|s| s.status >= 500)
            .map(|s| s.count)
            .sum();
        let mut line = format!(
            "+{}:{:02} lines {} (+{}, {:.0}/s) requests {} errors {} ({:.1}%) 5xx {s5xx}",
            secs / 60,
            secs % 60,
            r.lines,
            self.new_lines,
            self.lines_per_second,
            r.requests,
            r.errors,
            r.error_share * 100.0,
        );
        if let Some(l) = &r.latency {
            line.push_str(&format!(
                " p50 {}ms p99 {}ms",
                fmt_ms(l.p50_ms),
                fmt_ms(l.p99_ms)
            ));
        }
        let following = self
            .files
            .iter()
            .filter(|f| f.state == FileState::Following)
            .count();
        line.push_str(&format!(" files {following}/{}", self.files.len()));
        line
    }

    /// A snapshot of `follower` now, for callers that drive a [`Follower`] themselves.
    #[must_use]
    pub fn new(
        follower: &Follower,
        elapsed: Duration,
        new_lines: u64,
        lines_per_second: f64,
    ) -> Snapshot {
        Snapshot {
            report: follower.snapshot(),
            files: follower.files(),
            elapsed,
            new_lines,
            lines_per_second,
        }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

/// Follows `paths` until `ctx` is done, calling `on_snapshot` every
/// [`FollowOptions::snapshot_interval`], and returns the final report.
///
/// Shorthand for [`Follower::new`] then [`Follower::run`]; see [`Follower`] for how files
/// are read.
///
/// # Errors
///
/// As [`Follower::new`] and [`Follower::run`].
///
/// # Cancel safety
///
/// As [`Follower::run`]: cancel `ctx` to stop and keep the report; dropping the future loses it.
///
/// ```
/// use std::io::Write;
/// use weft_core::context::Context;
/// use weft_logs::follow::{FollowOptions, follow};
/// use weft_logs::Options;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("access.log");
/// let (ctx, cancel) = Context::background().with_cancel();
/// let mut log = std::fs::File::create(&path)?;
/// let report = follow(&ctx, [&path], Options::default(), FollowOptions::default(), move |snap| {
///     if snap.report.requests == 0 {
///         // The writer appends between two snapshots...
///         log.write_all(b"2024-03-01 12:00:00 path=/a status=200 time=8ms\n").expect("append");
///     } else {
///         // ...and a later snapshot counts it.
///         assert_eq!(snap.report.requests, 1);
///         cancel.cancel();
///     }
/// })
/// .await?;
/// assert_eq!(report.requests, 1);
/// # Ok(()) }
/// ```
pub async fn follow<P, F>(
    ctx: &Context,
    paths: impl IntoIterator<Item = P>,
    options: Options,
    follow: FollowOptions,
    on_snapshot: F,
) -> Result<Report, LogsError>
where
    P: Into<PathBuf>,
    F: FnMut(&Snapshot) + Send + 'static,
{
    let follower = Follower::new(paths, options, follow.start)?;
    follower.run(ctx, &follow, on_snapshot).await
}

impl Follower {
    /// Polls the files every `pace.poll_interval` until `ctx` is done, calls `on_snapshot`
    /// with a [`Snapshot`] every `pace.snapshot_interval`, then polls a last time and returns
    /// the final report ([`Follower::into_report`]). `pace.start` is not used here (the
    /// follower has started already).
    ///
    /// Polls, snapshots and the callback run on tokio's blocking threads (they read files, and
    /// a callback may draw a terminal or write a page), one at a time, in order. The report is
    /// not partial: following has no end, so stopping it is its normal end.
    ///
    /// # Errors
    ///
    /// As [`Follower::poll`]; [`LogsError::InvalidArgument`] for a zero poll interval;
    /// [`LogsError::Worker`] if a poll or the callback panicked.
    ///
    /// # Cancel safety
    ///
    /// Cancel `ctx` to stop following and get the report. Dropping the future instead loses
    /// the follower and its counts (a poll already running on a blocking thread finishes
    /// first).
    pub async fn run<F>(
        self,
        ctx: &Context,
        pace: &FollowOptions,
        on_snapshot: F,
    ) -> Result<Report, LogsError>
    where
        F: FnMut(&Snapshot) + Send + 'static,
    {
        if pace.poll_interval.is_zero() {
            return Err(LogsError::InvalidArgument(
                "the poll interval must not be zero (250 ms is the default)".into(),
            ));
        }
        let started = Instant::now();
        let mut ticks = tokio::time::interval(pace.poll_interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut driver = Driver {
            follower: self,
            on_snapshot,
            last_snapshot: started,
            lines_at_snapshot: 0,
        };
        let mut next_snapshot = started + pace.snapshot_interval;
        loop {
            if driver.follower.is_behind() {
                // Catching up with a large file: read on at once, unless told to stop.
                if ctx.is_done() {
                    break;
                }
            } else {
                tokio::select! {
                    biased;
                    () = ctx.done() => break,
                    _ = ticks.tick() => {}
                }
            }
            let now = Instant::now();
            let snapshot = (now >= next_snapshot).then(|| now.duration_since(started));
            if snapshot.is_some() {
                next_snapshot = now + pace.snapshot_interval;
            }
            driver = tokio::task::spawn_blocking(move || driver.step(snapshot, now))
                .await
                .map_err(|_| LogsError::Worker)??;
        }
        // Lines appended just before the stop are counted too.
        let report = tokio::task::spawn_blocking(move || {
            driver.follower.poll()?;
            Ok::<_, LogsError>(driver.follower.into_report())
        })
        .await
        .map_err(|_| LogsError::Worker)??;
        Ok(report)
    }
}

/// The follower and its callback, moved to a blocking thread for each step.
struct Driver<F> {
    follower: Follower,
    on_snapshot: F,
    last_snapshot: Instant,
    lines_at_snapshot: u64,
}

impl<F: FnMut(&Snapshot)> Driver<F> {
    /// One poll, then a snapshot if one is due (`elapsed` since following began).
    fn step(mut self, snapshot: Option<Duration>, now: Instant) -> Result<Self, LogsError> {
        self.follower.poll()?;
        if let Some(elapsed) = snapshot {
            let lines = self.follower.lines();
            let new_lines = lines - self.lines_at_snapshot;
            let secs = now.duration_since(self.last_snapshot).as_secs_f64();
            let rate = if secs > 0.0 {
                new_lines as f64 / secs
            } else {
                0.0
            };
            let snap = Snapshot::new(&self.follower, elapsed, new_lines, rate);
            (self.on_snapshot)(&snap);
            self.last_snapshot = now;
            self.lines_at_snapshot = lines;
        }
        Ok(self)
    }
}
