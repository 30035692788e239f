//! What the crawl reports: one record per page, live counters, and the final summary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::sitemap::SitemapFailure;

/// Why fetching a page failed. Recorded in [`PageRecord::error`] as its display text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// The request (headers or body) took longer than the timeout.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The request failed for another transport reason.
    #[error("request failed: {0}")]
    Request(String),
    /// The server answered with a client or server error status (4xx, 5xx).
    #[error("http status {0}")]
    Status(u16),
    /// More redirects than the configured limit.
    #[error("too many redirects (limit {0})")]
    TooManyRedirects(u32),
    /// A redirect status without a usable `Location` header.
    #[error("redirect without a valid location")]
    BadRedirect,
    /// Reading the body failed part way.
    #[error("reading the body failed: {0}")]
    Body(String),
    /// Fetching or parsing the page panicked (a bug); the crawl went on.
    #[error("the page task panicked")]
    Panicked,
    /// The URL names a link-local or cloud metadata address (`169.254.0.0/16`, `fe80::/10`,
    /// `metadata.google.internal`, ...) that no seed named: it was not requested.
    #[error("not requested: link-local or cloud metadata address")]
    Blocked,
    /// The body could not be saved (see [`CrawlConfig::save`](super::CrawlConfig::save)).
    #[error("cannot save the body: {0}")]
    Save(String),
}

/// Why a link or a redirect was not followed.
///
/// Serialised (in [`PageRecord::not_followed`] and the `--links` list) as its lowercase name.
///
/// ```
/// use weft_crawl::Skip;
/// assert_eq!(serde_json::to_string(&Skip::Scope)?, r#""scope""#);
/// assert_eq!(Skip::Scope.to_string(), "out of scope (another origin or domain)");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Skip {
    /// Another origin (scheme, host or port) than the seeds', and not an allowed domain.
    #[error("out of scope (another origin or domain)")]
    Scope,
    /// The include or exclude patterns (or the follow selector) leave it out.
    #[error("left out by the include, exclude or follow filters")]
    Filter,
    /// Its host's robots.txt disallows it.
    #[error("disallowed by robots.txt")]
    Robots,
    /// It is past the depth limit.
    #[error("past the depth limit")]
    Depth,
    /// It was already crawled or queued.
    #[error("already seen")]
    Seen,
    /// The page limit was reached.
    #[error("page limit reached")]
    PageLimit,
    /// A link-local or cloud metadata address (see [`PageError::Blocked`]).
    #[error("link-local or cloud metadata address")]
    Blocked,
}

impl From<reqwest::Error> for PageError {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's Display is terse ("error sending request"); the source says why.
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        if e.is_timeout() {
            PageError::Timeout
        } else if e.is_connect() {
            PageError::Connect(msg)
        } else if e.is_body() || e.is_decode() {
            PageError::Body(msg)
        } else {
            PageError::Request(msg)
        }
    }
}

fn error_as_text<S: Serializer>(e: &Option<PageError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.collect_str(e),
        None => s.serialize_none(),
    }
}

/// One crawled page: what was asked, what came back. Serialised as one JSON object (the
/// `weft crawl` output line), with `error` as text or `null`.
///
/// A page that was redirected within its host is one record (`url` asked, `final_url`
/// answered); a redirect to another host ends the record with the 3xx status and queues the
/// target as a page of its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PageRecord {
    /// The normalised URL that was queued.
    pub url: String,
    /// The URL of the last response (after redirects), or the redirect target where following
    /// stopped.
    pub final_url: String,
    /// The HTTP status of the last response, if any came.
    pub status: Option<u16>,
    /// The `Content-Type` header of the last response.
    pub content_type: Option<String>,
    /// The text of the HTML `<title>`, trimmed.
    pub title: Option<String>,
    /// Link hops from a seed (seeds, and pages listed by sitemaps, are 0).
    pub depth: u32,
    /// Distinct http(s) links found on the page (HTML only), followed or not.
    pub links: usize,
    /// Body bytes read (at most the body cap).
    pub bytes: u64,
    /// Whether the body was longer than the cap and cut.
    pub truncated: bool,
    /// Requests made for the last URL (1 plus retries).
    pub attempts: u32,
    /// Time from the first request to the end of parsing, in milliseconds.
    pub fetch_ms: f64,
    /// Why the page failed, if it did (a 4xx/5xx status counts as failed).
    #[serde(serialize_with = "error_as_text")]
    pub error: Option<PageError>,
    /// Why the redirect to `final_url` was not followed, when the page ended on one (a
    /// redirect to another in-scope origin is followed as a page of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_followed: Option<Skip>,
    /// The body's file in the save directory, when saving (see
    /// [`CrawlConfig::save`](super::CrawlConfig::save)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<String>,
    /// The sitemap that listed the page, when it was queued from one rather than found first
    /// as a seed or a link (see [`CrawlConfig::sitemaps`](super::CrawlConfig::sitemaps)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sitemap: Option<String>,
    /// The page's links, when [`record_links`](super::CrawlConfig::record_links) is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_links: Option<Vec<Link>>,
    /// Fields extracted with [`CrawlConfig::extract`](super::CrawlConfig::extract) or filled by
    /// [`on_html`](super::CrawlConfig::on_html) handlers; written as fields of the JSON line.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A link found on a page (see [`PageRecord::out_links`]).
///
/// ```
/// use weft_crawl::{Link, Skip};
/// let link = Link::new("http://a.test/x".into(), Some(Skip::Depth));
/// assert_eq!(
///     serde_json::to_string(&link)?,
///     r#"{"url":"http://a.test/x","followed":false,"reason":"depth"}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Link {
    /// Absolute and [normalised](super::normalize).
    pub url: String,
    /// Whether the crawl queued it (a page limit reached later may still leave it out).
    pub followed: bool,
    /// Why it was not followed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Skip>,
}

impl Link {
    /// A link, followed unless there is a reason.
    pub fn new(url: String, reason: Option<Skip>) -> Self {
        Link {
            url,
            followed: reason.is_none(),
            reason,
        }
    }
}

impl PageRecord {
    pub(crate) fn new(url: String, depth: u32) -> Self {
        PageRecord {
            final_url: url.clone(),
            url,
            status: None,
            content_type: None,
            title: None,
            depth,
            links: 0,
            bytes: 0,
            truncated: false,
            attempts: 0,
            fetch_ms: 0.0,
            error: None,
            not_followed: None,
            out_links: None,
            saved: None,
            sitemap: None,
            fields: serde_json::Map::new(),
        }
    }
}

/// Live counters of a running crawl, shared with whoever watches it (a progress bar).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) pages: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) robots_denied: AtomicU64,
    pub(crate) blocked: AtomicU64,
    pub(crate) sitemaps: AtomicU64,
    pub(crate) sitemap_urls: AtomicU64,
    pub(crate) sitemap_out_of_scope: AtomicU64,
    pub(crate) sitemap_errors: AtomicU64,
    /// The first [`MAX_SITEMAP_FAILURES`] failures, for the summary.
    pub(crate) sitemap_failures: Mutex<Vec<SitemapFailure>>,
}

/// Sitemap failures kept for the summary (all are counted): enough to see what is wrong,
/// bounded however many documents an index lists.
pub(crate) const MAX_SITEMAP_FAILURES: usize = 100;

impl Counters {
    /// Counts a sitemap failure and keeps it for the summary (the first ones).
    pub(crate) fn sitemap_failed(&self, failure: SitemapFailure) {
        tracing::info!(%failure);
        // Relaxed: a counter for the summary, read after the run is joined.
        self.sitemap_errors.fetch_add(1, Ordering::Relaxed);
        // A panic while holding this lock cannot leave the list half-updated.
        let mut kept = self
            .sitemap_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() < MAX_SITEMAP_FAILURES {
            kept.push(failure);
        }
    }

    /// The failures kept so far.
    pub(crate) fn sitemap_failures(&self) -> Vec<SitemapFailure> {
        self.sitemap_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A snapshot of a crawl's counters. See [`Crawl::progress`](super::Crawl::progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Pages crawled (records handed to the reader).
    pub pages: u64,
    /// Pages whose record has an error.
    pub errors: u64,
    /// Body bytes read.
    pub bytes: u64,
    /// URLs waiting in the frontier.
    pub queued: u64,
    /// Requests started and not finished yet: being fetched or parsed (pages, sitemaps and
    /// robots.txt).
    pub in_flight: u64,
    /// URLs not fetched because robots.txt disallows them.
    pub robots_denied: u64,
    /// Requests refused because they would reach a link-local or cloud metadata address
    /// (pages and robots.txt redirects).
    pub blocked: u64,
    /// Sitemap documents read (fetched with a 2xx status and parsed, completely or not); see
    /// [`CrawlConfig::sitemaps`](super::CrawlConfig::sitemaps).
    pub sitemaps: u64,
    /// Page URLs the url sets listed (before filtering and deduplication).
    pub sitemap_urls: u64,
    /// URLs sitemaps listed that were not queued because they are out of scope, left out by
    /// the include or exclude patterns, or not http(s) URLs (pages; and sitemaps an index
    /// lists on another host).
    pub sitemap_out_of_scope: u64,
    /// Sitemap documents that failed or were cut short, and indexes whose sitemaps were not
    /// all fetched because of the limits (see [`Summary::sitemap_failures`]).
    pub sitemap_errors: u64,
}

/// A cheap, cloneable view of a running crawl's counters, for progress displays.
#[derive(Debug, Clone)]
pub struct Progress(pub(crate) Arc<Counters>);

impl Progress {
    /// The counters now. Each is read on its own (relaxed), so they may be a moment apart.
    pub fn snapshot(&self) -> Stats {
        // Relaxed: counters for display; no other memory depends on them.
        let c = &self.0;
        Stats {
            pages: c.pages.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            robots_denied: c.robots_denied.load(Ordering::Relaxed),
            blocked: c.blocked.load(Ordering::Relaxed),
            sitemaps: c.sitemaps.load(Ordering::Relaxed),
            sitemap_urls: c.sitemap_urls.load(Ordering::Relaxed),
            sitemap_out_of_scope: c.sitemap_out_of_scope.load(Ordering::Relaxed),
            sitemap_errors: c.sitemap_errors.load(Ordering::Relaxed),
        }
    }
}

/// Why a crawl ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Every reachable page within the limits was crawled.
    Finished,
    /// The page limit was reached.
    PageLimit,
    /// The context was cancelled; the cause, if one was given.
    Cancelled(Option<String>),
}

/// The totals of a finished crawl, available from [`Crawl::summary`](super::Crawl::summary)
/// once the last page has been taken.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Summary {
    /// The counters at the end.
    pub stats: Stats,
    /// Requests still in flight when a cancellation stopped the crawl (their pages are not
    /// reported).
    pub abandoned: u64,
    /// Wall time of the crawl.
    pub elapsed: Duration,
    /// Why it ended.
    pub stop: StopReason,
    /// The sitemap documents that failed, the first 100 (all are counted in
    /// [`Stats::sitemap_errors`]).
    pub sitemap_failures: Vec<SitemapFailure>,
}

impl Summary {
    /// Pages per second over the whole crawl.
    pub fn pages_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.pages as f64 / secs
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        write!(
            f,
            "crawled {} pages ({} errors, {} bytes) in {:.2}s, {:.0} pages/s",
            s.pages,
            s.errors,
            s.bytes,
            self.elapsed.as_secs_f64(),
            self.pages_per_sec()
        )?;
        if s.robots_denied > 0 {
            write!(f, "; {} denied by robots.txt", s.robots_denied)?;
        }
        if s.sitemaps > 0 || s.sitemap_errors > 0 {
            write!(
                f,
                "; {} sitemaps read ({} urls, {} out of scope, {} errors)",
                s.sitemaps, s.sitemap_urls, s.sitemap_out_of_scope, s.sitemap_errors
            )?;
        }
        if s.blocked > 0 {
            write!(
                f,
                "; {} requests refused (link-local or cloud metadata address)",
                s.blocked
            )?;
        }
        match &self.stop {
            StopReason::Finished => write!(f, "; finished"),
            StopReason::PageLimit => write!(f, "; stopped at the page limit"),
            StopReason::Cancelled(cause) => {
                write!(f, "; cancelled")?;
                if let Some(c) = cause {
                    write!(f, " ({c})")?;
                }
                if s.queued > 0 || self.abandoned > 0 {
                    write!(
                        f,
                        ", {} queued and {} in flight left",
                        s.queued, self.abandoned
                    )?;
                }
                Ok(())
            }
        }
    }
}
