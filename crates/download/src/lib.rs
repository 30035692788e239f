//! `weft download`: a concurrent downloader that never leaves a corrupt file.
//!
//! A batch of [`Request`]s runs under a [`Context`] with a global and a per-host concurrency
//! limit; the [`Report`] lists one [`FileResult`] per request, in input order.
//!
//! - **Atomic completion.** Bytes go to `NAME.part`; only a complete file whose length matches
//!   what the server announced (and whose SHA-256 matches, when given) is moved to its final
//!   name, by hard link or rename. A file at a final name is always whole.
//! - **Resume.** A `NAME.part` left by an earlier run or attempt continues with a `Range`
//!   request guarded by `If-Range` (the strong ETag, or Last-Modified, kept in
//!   `NAME.part.meta`). A server that ignores ranges (200), or whose file changed, makes the
//!   download start over cleanly.
//! - **Segmented downloads** ([`Config::split`]). A large file (by default 64 MiB or more, in
//!   4 segments) from a server that serves ranges is fetched over several connections, each a
//!   byte range validated with `If-Range` and written in place into the one `.part` file; a
//!   connection that finishes early takes half of the largest remaining segment, and an
//!   interrupted download resumes each segment (the segment table is saved every second, so
//!   even a killed process loses little). A file that changes meanwhile starts over; a
//!   server that ignores ranges gets one connection.
//! - **Rate limits** ([`Config::limit_rate`], [`Config::limit_rate_per_host`]): token buckets
//!   that all downloads (or those of one host) draw from.
//! - **Retries** with exponential backoff and jitter for connection errors, timeouts, 5xx, 408
//!   and 429 (honouring `Retry-After`); none for other 4xx ([`DownloadError::is_retryable`]).
//! - **Names** from `Content-Disposition` or the URL path, sanitised to a single path
//!   component; a taken name becomes `name (1).ext` unless [`Config::overwrite`] is set.
//! - **Cancellation.** When the context ends, every download stops at its next await, writes
//!   what it holds to its `.part` file, and reports [`Outcome::Cancelled`]; the ones that
//!   finished are reported as such.
//! - **No dead partial files.** A download that stops keeps its `.part` only if it can be
//!   resumed (the server gave a validator); otherwise the file is deleted, so a full disk is
//!   not kept full by files nothing can use. [`FileResult::partial`] says which.
//!
//! # Scheduling
//!
//! A batch runs on a [`weft_pool::Pool`] whose workers are the global limit ([`Config::jobs`]),
//! one download per job; each job's [`JobHandle`] brings its result back
//! to the batch's input position. The per-host limit ([`Config::per_host`]) is kept by what
//! enters the pool: a dispatcher queues a download only while its host has fewer than
//! `per_host` downloads queued or running, holds the host's others back in input order, and
//! queues the next as one finishes. So a worker never sits waiting for a busy host while
//! another host's download could run (as it would with a per-host semaphore taken inside the
//! job), and nothing spins (as requeueing a job whose host is busy would).
//!
//! A pool rather than a weft-pipeline stage: the results are wanted per input, not as a
//! stream; a pipeline stage takes its items in upstream order, so a download for a busy host
//! would stall a stage worker or have to go round again; and a pool's handles, panic isolation
//! (a panicking download is reported as [`DownloadError::Panicked`] while the others go on)
//! and FIFO queue are what a batch of independent jobs needs. Retries with backoff stay inside
//! a job: a download keeps its worker and its host's slot while it waits to try again, so a
//! host that fails is not hit by other downloads meanwhile.
//!
//! # HTTP
//!
//! Requests go through a small HTTP client on hyper's connection API (TLS by rustls with
//! the Mozilla roots, plus [`Config::cacert`]; HTTP proxies from the environment or
//! [`Config::proxies`], see [`Proxies`]). Over TLS it speaks HTTP/2 when the server offers it
//! in ALPN (unless [`Config::http1_only`]): then all downloads from the host are streams on one
//! connection. Over HTTP/1.1, a download that read its body to the end hands its
//! connection back before it returns, so the next download finds it idle: a batch opens at
//! most one connection per download running at once against a host (reqwest's pool, which
//! returns connections from a task of its own, opens more; the figures are in BENCHMARKS.md).
//! An idle connection the server closed is replaced without costing an attempt.
//!
//! Cancellation goes through the batch's [`Context`], which every download watches at each
//! await: when it ends, a download writes what it holds to its `.part` file and reports
//! [`Outcome::Cancelled`]; queued ones end without a request. The pool itself is not tied to
//! that Context, because cancelling a pool job drops its future at once, losing the bytes in
//! memory.
//!
//! Differences from the Go `FileDownloader` this follows: results keep input order without a
//! shared slice, a failed or interrupted download never leaves a truncated file under the final
//! name (Go's `io.Copy` into the final file does), the output directory is the configured one
//! (the Go code creates `downloads` but writes into `TargetDir`), and cancellation is a
//! [`Context`] rather than none at all.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use weft_download::{Config, Downloader, Request};
//! use weft_core::context::Context;
//!
//! let downloader = Downloader::new(Config::new("downloads"))?;
//! let requests = vec![Request::parse("https://example.com/file.tar.gz")?];
//! let report = downloader.run(&Context::background(), requests).await;
//! for r in &report.results {
//!     println!("{} -> {:?}: {}", r.url, r.path, r.outcome);
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod config;
mod error;
mod fetch;
mod http;
mod input;
mod name;
mod part;
mod progress;
mod proxy;
mod rate;
mod retry;
mod split;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::num::NonZeroUsize;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use url::Url;
use weft_core::context::Context;
use weft_pool::{JobError, JobHandle, Pool, Priority, Shutdown};

pub use config::Config;
pub use error::{ClientError, DownloadError, HttpError, InputError, RedirectError};
pub use input::{Request, Sha256Digest, parse_list};
pub use progress::{Bars, NoProgress, Progress, Tracker};
pub use proxy::Proxies;

/// How one download ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The file is complete and verified at [`FileResult::path`].
    Complete,
    /// The download failed; any partial file was kept for a resume unless its content was
    /// unusable (too large, checksum mismatch, longer than announced) or could not be resumed
    /// safely (see [`Partial`]).
    Failed(DownloadError),
    /// The context ended first; the bytes received so far are in the `.part` file when it can
    /// be resumed (see [`Partial`]).
    Cancelled,
}

impl Outcome {
    /// Whether the file was downloaded completely.
    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Complete)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Complete => f.write_str("ok"),
            Self::Cancelled => f.write_str("cancelled"),
            Self::Failed(e) => {
                write!(f, "failed: {e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

/// What became of the partial file of a download that did not complete.
///
/// A `.part` file is kept only when it can be resumed safely: when the server named the
/// version of the file with a strong `ETag` or a `Last-Modified` date, kept in its
/// `.part.meta`, that the next run sends in `If-Range`. Any other partial file is deleted when
/// the download stops, so that a failed download (a full disk, say) never leaves a file that
/// only takes room.
///
/// ```
/// use weft_download::Partial;
///
/// let kept = Partial::Kept { validator: "ETag \"v1\"".into() };
/// assert_eq!(kept.to_string(), "partial file kept for resume (the server's ETag \"v1\" guards it)");
/// assert!(Partial::Removed { bytes: 10 }.to_string().starts_with("partial file (10 bytes) removed"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Partial {
    /// Kept at [`FileResult::path`] for the next run to resume.
    Kept {
        /// What guards the resume: `ETag "..."` or `Last-Modified ...`.
        validator: String,
    },
    /// Deleted: the server gave no strong `ETag` or `Last-Modified` to resume it against.
    Removed {
        /// The bytes it held.
        bytes: u64,
    },
}

impl fmt::Display for Partial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kept { validator } => {
                write!(
                    f,
                    "partial file kept for resume (the server's {validator} guards it)"
                )
            }
            Self::Removed { bytes } => write!(
                f,
                "partial file ({bytes} bytes) removed: the server sent no ETag or Last-Modified \
                 to resume it against"
            ),
        }
    }
}

/// What happened to one request.
#[derive(Debug)]
#[non_exhaustive]
pub struct FileResult {
    /// The requested URL.
    pub url: Url,
    /// The final file when complete; the kept `.part` file otherwise, if there is one (see
    /// [`partial`](Self::partial)).
    pub path: Option<PathBuf>,
    /// The size of the file at `path` (0 when there is none).
    pub bytes: u64,
    /// Where the last body started in the file (non-zero when it resumed a partial file).
    pub resumed_from: u64,
    /// Time from a pool worker starting the download to its end.
    pub duration: Duration,
    /// HTTP requests made (0 when the download never started).
    pub attempts: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// For a download that started and did not complete: whether its partial file was kept
    /// for a resume, and why, or removed (`None` when it had received nothing).
    pub partial: Option<Partial>,
}

/// The results of a batch, in input order.
#[derive(Debug)]
#[non_exhaustive]
pub struct Report {
    /// One result per request, in the order of the requests.
    pub results: Vec<FileResult>,
    /// Why the batch was cut short, when the context ended before every download finished.
    pub interrupted: Option<String>,
}

impl Report {
    /// Whether every download completed.
    pub fn all_complete(&self) -> bool {
        self.results.iter().all(|r| r.outcome.is_complete())
    }

    /// Counts of (complete, failed, cancelled) downloads; they add up to the number of requests.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.results
            .iter()
            .fold((0, 0, 0), |(c, f, x), r| match r.outcome {
                Outcome::Complete => (c + 1, f, x),
                Outcome::Failed(_) => (c, f + 1, x),
                Outcome::Cancelled => (c, f, x + 1),
            })
    }
}

/// State shared by the downloads of one [`Downloader`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) client: http::Client,
    /// Final names taken during the current run.
    pub(crate) claimed: Arc<Mutex<HashSet<String>>>,
}

/// Runs batches of downloads (see the [module docs](self)).
///
/// A `Downloader` keeps one HTTP client (and its idle connections) for all its batches. Run one
/// batch at a time per output directory: two concurrent batches into the same directory would
/// share `.part` names.
#[derive(Debug, Clone)]
pub struct Downloader {
    shared: Arc<Shared>,
}

impl Downloader {
    /// Sets up the HTTP client for `config`.
    ///
    /// # Errors
    ///
    /// The TLS backend cannot be set up, or (when [`Config::proxies`] was not called) a proxy
    /// the environment names is invalid (see [`Proxies::from_env`]).
    pub fn new(config: Config) -> Result<Self, ClientError> {
        let client = http::Client::new(http::ClientConfig {
            connect_timeout: config.connect_timeout,
            user_agent: config.user_agent.clone(),
            max_redirects: config.max_redirects,
            // As many as can be busy at once against one host.
            max_idle_per_host: config.per_host.min(config.jobs).get(),
            proxies: match &config.proxies {
                Some(p) => p.clone(),
                None => Proxies::from_env()?,
            },
            extra_roots: match &config.cacert {
                Some(path) => http::read_pem_certificates(path).map_err(ClientError)?,
                None => Vec::new(),
            },
            http1_only: config.http1_only,
        })
        .map_err(ClientError)?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                client,
                claimed: Default::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Downloads `requests` into the configured directory and reports each, in input order.
    ///
    /// The downloads run as jobs of a [`weft_pool::Pool`] with [`Config::jobs`] workers, fed
    /// so that no host has more than [`Config::per_host`] of them at once (see
    /// [Scheduling](self#scheduling)). The batch ends when every download has ended, or soon
    /// after `ctx` ends: downloads in flight keep their partial files and report
    /// [`Outcome::Cancelled`], as do those that had not started.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future ends the batch as `ctx` ending would, but without the
    /// report: downloads not started never start, and those in flight stop at their next await
    /// in the background, keeping what they received in their `.part` files. No file at a final
    /// name is ever partial. Cancel through `ctx` instead to also get the report.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use weft_download::{Config, Downloader, Outcome, Request};
    /// use weft_core::context::Context;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let downloader = Downloader::new(Config::new(dir.path()))?;
    /// // Nothing listens on port 9 of loopback: the connection is refused.
    /// let requests = vec![Request::parse("http://127.0.0.1:9/a.bin")?];
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel(); // stop before anything starts
    /// let report = downloader.run(&ctx, requests).await;
    /// assert!(matches!(report.results[0].outcome, Outcome::Cancelled));
    /// assert_eq!(report.counts(), (0, 0, 1));
    /// # Ok(()) }
    /// ```
    pub async fn run(&self, ctx: &Context, requests: Vec<Request>) -> Report {
        self.run_with_progress(ctx, requests, Arc::new(NoProgress))
            .await
    }

    /// [`run`](Self::run), reporting progress to `progress`.
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    pub async fn run_with_progress(
        &self,
        ctx: &Context,
        requests: Vec<Request>,
        progress: Arc<dyn Progress>,
    ) -> Report {
        let config = &self.shared.config;
        self.shared
            .claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let urls: Vec<Url> = requests.iter().map(|r| r.url.clone()).collect();

        if let Err(e) = tokio::fs::create_dir_all(&config.dir).await {
            let results = urls
                .into_iter()
                .map(|url| {
                    not_started(
                        url,
                        Outcome::Failed(DownloadError::file(&config.dir, io_clone(&e))),
                    )
                })
                .collect();
            return Report {
                results,
                interrupted: None,
            };
        }

        // One directory listing tells which downloads may have partial files, instead of a
        // file-system check per download.
        let parts: HashSet<String> = {
            let dir = config.dir.clone();
            tokio::task::spawn_blocking(move || partial_bases(&dir))
                .await
                .unwrap_or_default()
        };
        // Partial-file names are fixed in input order, so a rerun of the same list finds its
        // own partial files again.
        let mut bases: HashSet<String> = HashSet::new();
        let mut hosts: HashMap<String, usize> = HashMap::new();
        let mut host_conns: Vec<Arc<tokio::sync::Semaphore>> = Vec::new();
        let limits = rate::Limits::new(config.limit_rate, config.limit_rate_per_host);
        let mut planned = Vec::with_capacity(requests.len());
        for request in requests {
            let url_name = name::from_url(&request.url);
            let mut base = url_name.clone();
            let mut n = 0;
            while !bases.insert(base.clone()) {
                n += 1;
                base = name::numbered(&url_name, n);
            }
            let host_key = format!(
                "{}:{}",
                request.url.host_str().unwrap_or(""),
                request.url.port_or_known_default().unwrap_or(0)
            );
            let limiter = limits.for_host(&host_key);
            let next = hosts.len();
            let host = *hosts.entry(host_key).or_insert(next);
            if host == host_conns.len() {
                host_conns.push(Arc::new(tokio::sync::Semaphore::new(config.per_host.get())));
            }
            planned.push(Planned {
                host,
                job: fetch::Job {
                    request,
                    had_part: parts.contains(&base),
                    base,
                    url_name,
                    no_split: Default::default(),
                    host: host_conns[host].clone(),
                    limiter,
                },
            });
        }

        // The batch runs under a child of `ctx` that also ends when this future is dropped, so
        // a dropped run stops its downloads the way a cancelled one does.
        let (run_ctx, cancel) = ctx.with_cancel();
        let _stop_on_drop = cancel.drop_guard();
        let batch = Arc::new(Batch {
            shared: self.shared.clone(),
            ctx: run_ctx,
            progress,
            files: part::FileThread::start(),
        });
        // The dispatcher is a task of its own: each finished download then wakes a task on
        // the runtime's workers rather than the thread that awaits `run`.
        let dispatcher = tokio::spawn(schedule(batch, planned, hosts.len()));
        let results: Vec<Option<FileResult>> = match dispatcher.await {
            Ok(results) => results,
            Err(_) => (0..urls.len()).map(|_| None).collect(),
        };
        let results = results
            .into_iter()
            .zip(urls)
            .map(|(r, url)| {
                r.unwrap_or_else(|| not_started(url, Outcome::Failed(DownloadError::Panicked)))
            })
            .collect::<Vec<_>>();
        let interrupted = results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Cancelled))
            .then(|| {
                ctx.cause()
                    .map(|c| c.to_string())
                    .or_else(|| ctx.err().map(|e| e.to_string()))
                    .unwrap_or_else(|| "cancelled".to_owned())
            });
        Report {
            results,
            interrupted,
        }
    }
}

/// What every download of one batch shares: the downloader, the batch's context, the progress
/// observer.
struct Batch {
    shared: Arc<Shared>,
    ctx: Context,
    progress: Arc<dyn Progress>,
    /// Writes and places the small files.
    files: part::FileThread,
}

/// A download of the batch before it runs.
struct Planned {
    /// Its host (`host:port`), numbered in order of first appearance.
    host: usize,
    job: fetch::Job,
}

/// A pool job: the input position and the download.
type PoolJob = (usize, fetch::Job);

/// Runs the batch on a [`Pool`] of `jobs` workers, feeding it so that no host has more than
/// `per_host` downloads queued or running; returns the results by input position.
///
/// A download enters the pool only when its host has room, so a worker never waits for a host:
/// the pool's FIFO queue holds only downloads that can start, and its workers are the global
/// limit. Each host's further downloads wait here, in input order, and the one finishing hands
/// its host's slot to the next. When `per_host >= jobs` the host limit cannot bind and the whole
/// batch is queued at once.
async fn schedule(
    batch: Arc<Batch>,
    planned: Vec<Planned>,
    hosts: usize,
) -> Vec<Option<FileResult>> {
    let config = &batch.shared.config;
    let jobs = config.jobs.get();
    let per_host = if config.per_host.get() >= jobs {
        usize::MAX
    } else {
        config.per_host.get()
    };
    let ctx = batch.ctx.clone();
    let handler = {
        let batch = batch.clone();
        // The job's own Context is the pool's (not cancelled by the batch's end): a download
        // watches the batch's context itself, so that it can save its bytes before it stops,
        // where a pool cancellation would drop it mid-write.
        move |_job_ctx: Context, (index, job): PoolJob| {
            let batch = batch.clone();
            async move { Ok::<_, Infallible>(download_one(&batch, index, job).await) }
        }
    };
    let pool: Pool<PoolJob, FileResult, Infallible> = Pool::builder()
        .workers(jobs)
        // Downloads are long jobs: each worker takes one at a time.
        .batch(NonZeroUsize::MIN)
        .unbounded()
        .build_fn(handler);

    let mut results: Vec<Option<FileResult>> = (0..planned.len()).map(|_| None).collect();
    let mut host_of = Vec::with_capacity(planned.len());
    let mut active = vec![0usize; hosts];
    let mut waiting: Vec<VecDeque<PoolJob>> = (0..hosts).map(|_| VecDeque::new()).collect();
    let mut first = Vec::new();
    for (index, Planned { host, job }) in planned.into_iter().enumerate() {
        host_of.push(host);
        if active[host] < per_host {
            active[host] += 1;
            first.push((index, job));
        } else {
            waiting[host].push_back((index, job));
        }
    }
    let indices: Vec<usize> = first.iter().map(|(i, _)| *i).collect();
    let mut running = FuturesUnordered::new();
    for (index, submitted) in indices
        .into_iter()
        .zip(pool.submit_many(Priority::LOW, first).await)
    {
        match submitted {
            Ok(handle) => running.push(indexed(index, handle)),
            // The pool is ours and never closed before the end: unreachable in practice.
            Err(e) => {
                results[index] = Some(not_started(
                    e.into_inner().1.request.url,
                    Outcome::Cancelled,
                ))
            }
        }
    }

    let done = ctx.done();
    tokio::pin!(done);
    let mut stopped = false;
    loop {
        tokio::select! {
            biased;
            _ = done.as_mut(), if !stopped => {
                // Downloads not yet handed to the pool never start; those in it see the
                // context ended and stop at their next await.
                stopped = true;
                for (index, job) in waiting.iter_mut().flat_map(|w| w.drain(..)) {
                    results[index] = Some(not_started(job.request.url, Outcome::Cancelled));
                }
            }
            next = running.next() => {
                let Some((index, result)) = next else { break };
                results[index] = match result {
                    Ok(r) => Some(r),
                    // Left empty: reported as a panicked download.
                    Err(JobError::Panicked(panicked)) => {
                        tracing::error!(message = panicked.message(), "download panicked");
                        None
                    }
                    Err(_) => None,
                };
                let host = host_of[index];
                active[host] -= 1;
                if let Some((index, job)) = waiting[host].pop_front() {
                    active[host] += 1;
                    match pool.try_submit((index, job)) {
                        Ok(handle) => running.push(indexed(index, handle)),
                        Err(e) => {
                            active[host] -= 1;
                            let url = e.into_inner().1.request.url;
                            results[index] = Some(not_started(url, Outcome::Cancelled));
                        }
                    }
                }
            }
        }
    }
    pool.shutdown(Shutdown::Abort).await;
    results
}

/// A job's result tagged with its input position.
fn indexed(
    index: usize,
    handle: JobHandle<FileResult, Infallible>,
) -> impl Future<Output = (usize, Result<FileResult, JobError<Infallible>>)> {
    handle.map(move |r| (index, r))
}

/// One download, as a pool job: stops before it starts when the batch has ended.
async fn download_one(batch: &Batch, index: usize, job: fetch::Job) -> FileResult {
    if batch.ctx.is_done() {
        return not_started(job.request.url, Outcome::Cancelled);
    }
    let done = batch.ctx.done();
    tokio::pin!(done);
    // The download's own connection: the scheduler keeps at most `per_host` downloads per
    // host, so this waits only while a split download of the host holds extra connections.
    let _connection = tokio::select! {
        biased;
        _ = done.as_mut() => return not_started(job.request.url, Outcome::Cancelled),
        permit = job.host.clone().acquire_owned() => permit.ok(),
    };
    let mut tracker = batch.progress.begin(index, &job.base);
    let result = fetch::fetch(
        &batch.shared,
        &batch.files,
        &job,
        done.as_mut(),
        tracker.as_mut(),
    )
    .await;
    tracker.end(&result.outcome);
    result
}

fn not_started(url: Url, outcome: Outcome) -> FileResult {
    FileResult {
        url,
        path: None,
        bytes: 0,
        resumed_from: 0,
        duration: Duration::ZERO,
        attempts: 0,
        outcome,
        partial: None,
    }
}

fn io_clone(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

/// The `BASE` of every `BASE.part` and `BASE.part.meta` in `dir`.
fn partial_bases(dir: &std::path::Path) -> HashSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashSet::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let base = name
                .strip_suffix(".part")
                .or_else(|| name.strip_suffix(".part.meta"))?;
            Some(base.to_owned())
        })
        .collect()
}
