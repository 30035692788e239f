//! How the downloader behaves: limits, timeouts, retries. Every setter states its default.

use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::proxy::Proxies;

/// Settings for a [`Downloader`](super::Downloader), built with chained setters.
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use weft_download::Config;
///
/// let config = Config::new("downloads")
///     .jobs(NonZeroUsize::new(32).unwrap())
///     .per_host(NonZeroUsize::new(4).unwrap())
///     .idle_timeout(Duration::from_secs(10))
///     .max_size(Some(1 << 30));
/// assert_eq!(config.dir().to_str(), Some("downloads"));
/// assert_eq!(config.jobs_limit().get(), 32);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) dir: PathBuf,
    pub(crate) jobs: NonZeroUsize,
    pub(crate) per_host: NonZeroUsize,
    pub(crate) max_attempts: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_size: Option<u64>,
    pub(crate) max_redirects: usize,
    pub(crate) overwrite: bool,
    pub(crate) fsync: bool,
    pub(crate) user_agent: String,
    /// `None`: the environment's, read when the downloader is set up.
    pub(crate) proxies: Option<Proxies>,
    /// `None`: automatic.
    pub(crate) split: Option<NonZeroUsize>,
    pub(crate) limit_rate: Option<NonZeroU64>,
    pub(crate) limit_rate_per_host: Option<NonZeroU64>,
    pub(crate) cacert: Option<PathBuf>,
    pub(crate) http1_only: bool,
}

impl Config {
    /// Downloads into `dir` (created if missing), with the defaults each setter documents.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            jobs: NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN),
            per_host: NonZeroUsize::new(6).unwrap_or(NonZeroUsize::MIN),
            max_attempts: 5,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_size: None,
            max_redirects: 10,
            overwrite: false,
            fsync: false,
            user_agent: concat!("weft-download/", env!("CARGO_PKG_VERSION")).to_owned(),
            proxies: None,
            split: None,
            limit_rate: None,
            limit_rate_per_host: None,
            cacert: None,
            http1_only: false,
        }
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The global concurrency limit.
    pub fn jobs_limit(&self) -> NonZeroUsize {
        self.jobs
    }

    /// How many downloads run at once in total. By default, 8.
    pub fn jobs(mut self, n: NonZeroUsize) -> Self {
        self.jobs = n;
        self
    }

    /// How many downloads run at once against one host (`host:port`). By default, 6.
    pub fn per_host(mut self, n: NonZeroUsize) -> Self {
        self.per_host = n;
        self
    }

    /// How many requests one download may make in total (the first try included) before it
    /// fails; 0 is treated as 1. By default, 5.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The backoff before the second attempt; it doubles per attempt up to `max`, and each wait
    /// is randomised within its upper half. By default, 250 ms doubling up to 30 s.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// The longest `Retry-After` honoured; a server asking for longer fails the download with
    /// [`DownloadError::RetryAfterTooLong`](super::DownloadError::RetryAfterTooLong).
    /// By default, 120 s.
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// The limit for establishing a connection. By default, 10 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The longest wait for the response headers or for the next piece of the body.
    /// By default, 30 s.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// The largest file accepted, in bytes; larger ones fail (and their partial file is
    /// deleted). By default, no limit.
    pub fn max_size(mut self, bytes: Option<u64>) -> Self {
        self.max_size = bytes;
        self
    }

    /// How many redirects are followed; a loop fails at once. By default, 10.
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.max_redirects = n;
        self
    }

    /// Whether an existing file at the chosen name is replaced (atomically, by rename). When
    /// off, the file is saved as `name (1).ext`, `name (2).ext`, ... instead. Two downloads of
    /// one run never replace each other either way. By default, off.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Whether each file is flushed to stable storage (`fsync`) before it is renamed to its
    /// final name. Without it a file at its final name is whole for every reader and after any
    /// crash of this process; with it, also after a power loss. By default, off.
    pub fn fsync(mut self, yes: bool) -> Self {
        self.fsync = yes;
        self
    }

    /// The `User-Agent` header. By default, `weft-download/<version>`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// The HTTP proxies to use. By default, the ones the environment names
    /// ([`Proxies::from_env`], read by [`Downloader::new`](super::Downloader::new), which fails
    /// on an invalid one); [`Proxies::none`] for none.
    ///
    /// ```
    /// use weft_download::{Config, Proxies};
    ///
    /// let config = Config::new("out").proxies(Proxies::none().http("http://proxy.local:3128")?);
    /// # let _ = config;
    /// # Ok::<(), weft_download::ClientError>(())
    /// ```
    pub fn proxies(mut self, proxies: Proxies) -> Self {
        self.proxies = Some(proxies);
        self
    }

    /// How many connections one file is fetched over (segmented download).
    ///
    /// A file is split only when the server accepts ranges (`Accept-Ranges: bytes`), announces
    /// its size, and gives a validator (a strong ETag or Last-Modified) that every segment's
    /// response must repeat; each segment is at least 1 MiB. The segments are byte ranges
    /// written in place into the one `.part` file; a connection that finishes early takes half
    /// of the largest remaining segment; an interrupted download resumes each segment. A server
    /// that answers a range with the whole file, or a file that changes twice during the
    /// download, makes it go on over one connection. The connections count against
    /// [`per_host`](Self::per_host): a split takes only the host's free ones. Over HTTP/2 the
    /// segments are streams on the host's one connection (which helps only where the server
    /// limits each stream rather than each connection).
    ///
    /// `None` is automatic: files of 64 MiB or more get 4 segments, smaller ones one;
    /// `Some(1)` never splits. By default, automatic.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use weft_download::Config;
    ///
    /// let config = Config::new("out").split(NonZeroUsize::new(8));
    /// assert_eq!(config.split_limit(), NonZeroUsize::new(8));
    /// ```
    pub fn split(mut self, segments: Option<NonZeroUsize>) -> Self {
        self.split = segments;
        self
    }

    /// The configured split (`None`: automatic); see [`split`](Self::split).
    pub fn split_limit(&self) -> Option<NonZeroUsize> {
        self.split
    }

    /// The most bytes a second received by all downloads of a batch together. Downloads slow
    /// down by pausing their reads (a token bucket with a tenth of a second of burst), so the
    /// servers' TCP windows shrink as with curl's `--limit-rate`. By default, no limit.
    ///
    /// ```
    /// use std::num::NonZeroU64;
    /// use weft_download::Config;
    ///
    /// let config = Config::new("out").limit_rate(NonZeroU64::new(2 << 20));
    /// // Splitting stays automatic unless asked otherwise.
    /// assert_eq!(config.split_limit(), None);
    /// ```
    pub fn limit_rate(mut self, bytes_per_second: Option<NonZeroU64>) -> Self {
        self.limit_rate = bytes_per_second;
        self
    }

    /// The most bytes a second received from one host (`host:port`), on top of
    /// [`limit_rate`](Self::limit_rate). By default, no limit.
    pub fn limit_rate_per_host(mut self, bytes_per_second: Option<NonZeroU64>) -> Self {
        self.limit_rate_per_host = bytes_per_second;
        self
    }

    /// A PEM file of certificate authorities to trust on top of the Mozilla roots, for
    /// servers whose certificates a private CA signed (curl's `--cacert` reads the same
    /// format, but replaces the roots instead of adding to them). [`Downloader::new`]
    /// reads it, and fails when it holds no certificate. By default, none.
    ///
    /// [`Downloader::new`]: super::Downloader::new
    ///
    /// ```
    /// use weft_download::{Config, Downloader};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let pem = dir.path().join("ca.pem");
    /// std::fs::write(&pem, "not a certificate\n")?;
    /// let config = Config::new(dir.path()).cacert(&pem);
    /// assert_eq!(config.cacert_file(), Some(pem.as_path()));
    /// assert!(Downloader::new(config).is_err(), "a file without a certificate is refused");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cacert(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.cacert = Some(pem_file.into());
        self
    }

    /// The PEM file of extra certificate authorities, if any; see [`cacert`](Self::cacert).
    pub fn cacert_file(&self) -> Option<&Path> {
        self.cacert.as_deref()
    }

    /// Whether HTTP/1.1 is used even with servers that offer HTTP/2 (curl's `--http1.1`).
    ///
    /// Otherwise a TLS connection offers `h2` and `http/1.1` in ALPN, and when the server picks
    /// `h2` every download from that host shares the one connection, as HTTP/2 streams (at most
    /// [`per_host`](Self::per_host) at once, segments included). Plain `http://` URLs always use
    /// HTTP/1.1. By default, off.
    ///
    /// ```
    /// use weft_download::Config;
    ///
    /// assert!(!Config::new("out").is_http1_only());
    /// assert!(Config::new("out").http1_only(true).is_http1_only());
    /// ```
    pub fn http1_only(mut self, yes: bool) -> Self {
        self.http1_only = yes;
        self
    }

    /// Whether HTTP/2 is turned off; see [`http1_only`](Self::http1_only).
    pub fn is_http1_only(&self) -> bool {
        self.http1_only
    }
}
