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
//! - **Retries** with exponential backoff and jitter for connection errors, timeouts, 5xx, 408
//!   and 429 (honouring `Retry-After`); none for other 4xx ([`DownloadError::is_retryable`]).
//! - **Names** from `Content-Disposition` or the URL path, sanitised to a single path
//!   component; a taken name becomes `name (1).ext` unless [`Config::overwrite`] is set.
//! - **Cancellation.** When the context ends, every download stops at its next await, writes
//!   what it holds to its `.part` file, and reports [`Outcome::Cancelled`]; the ones that
//!   finished are reported as such.
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
//! use weft_apps::download::{Config, Downloader, Request};
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

mod config;
mod error;
mod fetch;
mod input;
mod name;
mod part;
mod progress;
mod retry;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use url::Url;
use weft_core::context::Context;

pub use config::Config;
pub use error::{ClientError, DownloadError, InputError};
pub use input::{Request, Sha256Digest, parse_list};
pub use progress::{Bars, NoProgress, Progress, Tracker};

/// How one download ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The file is complete and verified at [`FileResult::path`].
    Complete,
    /// The download failed; any partial file was kept for a resume unless its content was
    /// unusable (too large, checksum mismatch, longer than announced).
    Failed(DownloadError),
    /// The context ended first; the bytes received so far are in the `.part` file.
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

/// What happened to one request.
#[derive(Debug)]
#[non_exhaustive]
pub struct FileResult {
    /// The requested URL.
    pub url: Url,
    /// The final file when complete; the kept `.part` file otherwise, if there is one.
    pub path: Option<PathBuf>,
    /// The size of the file at `path` (0 when there is none).
    pub bytes: u64,
    /// Where the last body started in the file (non-zero when it resumed a partial file).
    pub resumed_from: u64,
    /// Time from the download becoming active (holding its permits) to its end.
    pub duration: Duration,
    /// HTTP requests made (0 when the download never started).
    pub attempts: u32,
    /// How it ended.
    pub outcome: Outcome,
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
    pub(crate) client: reqwest::Client,
    /// Final names taken during the current run.
    pub(crate) claimed: Arc<Mutex<HashSet<String>>>,
}

/// Runs batches of downloads (see the [module docs](self)).
///
/// A `Downloader` keeps one HTTP client (and its connection pool) for all its batches. Run one
/// batch at a time per output directory: two concurrent batches into the same directory would
/// share `.part` names.
#[derive(Debug, Clone)]
pub struct Downloader {
    shared: Arc<Shared>,
}

impl Downloader {
    /// Sets up the HTTP client for `config`.
    pub fn new(config: Config) -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .redirect(fetch::redirect_policy(config.max_redirects))
            .user_agent(config.user_agent.clone())
            .pool_max_idle_per_host(config.per_host.get())
            .tcp_nodelay(true)
            .build()
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
    /// Each request runs as its own task once it holds a permit for its host and then one of
    /// the global permits (host first, so downloads waiting for a busy host never hold a global
    /// slot another host could use). The batch ends when every download has ended, or soon
    /// after `ctx` ends: downloads in flight keep their partial files and report
    /// [`Outcome::Cancelled`], as do those that had not started.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future aborts the downloads in flight: bytes a download held in
    /// memory (up to 512 KiB) and the report are lost, but no file at a final name is ever
    /// partial. Cancel through `ctx` instead to keep every byte and get the report.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use weft_apps::download::{Config, Downloader, Outcome, Request};
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
        let mut results: Vec<Option<FileResult>> = (0..requests.len()).map(|_| None).collect();

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
        let global = Arc::new(Semaphore::new(config.jobs.get()));
        let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
        // Partial-file names are fixed in input order, so a rerun of the same list finds its
        // own partial files again.
        let mut bases: HashSet<String> = HashSet::new();
        let mut tasks = JoinSet::new();
        let mut index_of = HashMap::new();
        for (index, request) in requests.into_iter().enumerate() {
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
            let host = hosts
                .entry(host_key)
                .or_insert_with(|| Arc::new(Semaphore::new(config.per_host.get())))
                .clone();
            let global = global.clone();
            let shared = self.shared.clone();
            let progress = progress.clone();
            let done = ctx.done();
            let job = fetch::Job {
                request,
                had_part: parts.contains(&base),
                base,
                url_name,
            };
            let handle = tasks.spawn(async move {
                tokio::pin!(done);
                let permits = tokio::select! {
                    biased;
                    _ = done.as_mut() => None,
                    p = async {
                        let h = host.acquire_owned().await.ok()?;
                        let g = global.acquire_owned().await.ok()?;
                        Some((h, g))
                    } => p,
                };
                let Some(_permits) = permits else {
                    return (index, not_started(job.request.url, Outcome::Cancelled));
                };
                let mut tracker = progress.begin(index, &job.base);
                let result = fetch::fetch(&shared, &job, done.as_mut(), tracker.as_mut()).await;
                tracker.end(&result.outcome);
                (index, result)
            });
            index_of.insert(handle.id(), index);
        }

        while let Some(joined) = tasks.join_next_with_id().await {
            match joined {
                Ok((_, (index, result))) => results[index] = Some(result),
                Err(e) => {
                    if let Some(&index) = index_of.get(&e.id()) {
                        let url = urls[index].clone();
                        results[index] =
                            Some(not_started(url, Outcome::Failed(DownloadError::Panicked)));
                    }
                }
            }
        }
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

fn not_started(url: Url, outcome: Outcome) -> FileResult {
    FileResult {
        url,
        path: None,
        bytes: 0,
        resumed_from: 0,
        duration: Duration::ZERO,
        attempts: 0,
        outcome,
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
