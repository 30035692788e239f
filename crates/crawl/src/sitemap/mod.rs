//! Sitemaps as extra seeds ([`CrawlConfig::sitemaps`](super::CrawlConfig::sitemaps)): their
//! limits, their errors, how one document is read (`parse`), fetched and filtered in the
//! pipeline (`stage`), and which documents the scheduler queues (`sources`).
//!
//! Where the documents come from and where they go:
//!
//! - **Sources**: the `Sitemap:` lines of each seed host's robots.txt (the robots.txt the
//!   crawl fetches anyway), else `/sitemap.xml` at the seed's origin. Without robots.txt
//!   ([`respect_robots(false)`](super::CrawlConfig::respect_robots)) it is always
//!   `/sitemap.xml`. These are level 0.
//! - **Fetching**: a sitemap document is a request of its host's queue in the frontier, like a
//!   page: the same per-host limit, delay and robots.txt rules, the same retries and
//!   link-local guard; it is not counted against the page limit.
//! - **Indexes** (`<sitemapindex>`): the sitemaps they list are queued one level down, on an
//!   in-scope host or the index's own origin, each URL at most once per crawl (so an index that
//!   lists itself ends), up to [`SitemapLimits::nesting`] levels and
//!   [`SitemapLimits::documents`] documents in all.
//! - **Url sets** (`<urlset>`): each `<loc>` is a seed at depth 0, filtered like any link
//!   (scope, include and exclude patterns, link-local guard, robots.txt) and deduplicated with
//!   everything else the crawl has queued.

mod parse;
mod sources;
pub(crate) mod stage;

use std::num::NonZeroUsize;

use super::record::PageError;

pub(crate) use sources::Sources;

/// How much of the sitemaps a crawl reads ([`CrawlConfig::sitemap_limits`]). The defaults are
/// the sitemaps.org protocol's limits per file, and bounds on how far indexes lead.
///
/// ```
/// use std::num::NonZeroUsize;
/// use weft_crawl::SitemapLimits;
///
/// let limits = SitemapLimits::default()
///     .documents(NonZeroUsize::new(20).unwrap())
///     .max_bytes(1 << 20);
/// assert_eq!(limits.get_documents().get(), 20);
/// assert_eq!(limits.get_max_urls(), 50_000);
/// ```
///
/// [`CrawlConfig::sitemap_limits`]: super::CrawlConfig::sitemap_limits
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SitemapLimits {
    documents: NonZeroUsize,
    nesting: u32,
    max_bytes: usize,
    max_urls: usize,
}

impl Default for SitemapLimits {
    fn default() -> Self {
        SitemapLimits {
            documents: NonZeroUsize::new(1000).expect("1000 is not zero"),
            nesting: 3,
            max_bytes: 50 * 1024 * 1024,
            max_urls: 50_000,
        }
    }
}

impl SitemapLimits {
    /// Fetches at most `n` sitemap documents in the whole crawl (indexes included). The
    /// sitemaps an index lists past this are not fetched, and the index is reported
    /// ([`SitemapError::DocumentLimit`]).
    ///
    /// By default, this is 1,000.
    pub fn documents(mut self, n: NonZeroUsize) -> Self {
        self.documents = n;
        self
    }

    /// Follows indexes at most `levels` deep: the documents named by robots.txt (or
    /// `/sitemap.xml`) are level 0, the sitemaps an index at level `L` lists are level `L + 1`,
    /// and none past `levels` is fetched ([`SitemapError::TooDeep`]). With 0, indexes are
    /// read but not followed.
    ///
    /// By default, this is 3 (the protocol allows 1: an index of url sets).
    pub fn nesting(mut self, levels: u32) -> Self {
        self.nesting = levels;
        self
    }

    /// Reads at most `bytes` of a document, after gzip decompression (and at most as many
    /// compressed): past it the document is cut there ([`SitemapError::TooLarge`]), so a gzip
    /// bomb costs no more than this.
    ///
    /// By default, this is 50 MiB (the protocol's limit, 52,428,800 bytes).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Takes at most `urls` `<loc>` entries from one document; the rest are ignored
    /// ([`SitemapError::TooManyUrls`]).
    ///
    /// By default, this is 50,000 (the protocol's limit).
    pub fn max_urls(mut self, urls: usize) -> Self {
        self.max_urls = urls;
        self
    }

    /// The limit on documents.
    pub fn get_documents(&self) -> NonZeroUsize {
        self.documents
    }

    /// The limit on index nesting.
    pub fn get_nesting(&self) -> u32 {
        self.nesting
    }

    /// The limit on a document's (decompressed) size.
    pub fn get_max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The limit on a document's entries.
    pub fn get_max_urls(&self) -> usize {
        self.max_urls
    }
}

/// Why a sitemap document failed, was cut short, or did not lead everywhere it listed. Counted
/// in [`Stats::sitemap_errors`](super::Stats::sitemap_errors) and listed in
/// [`Summary::sitemap_failures`](super::Summary::sitemap_failures); the crawl goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SitemapError {
    /// The request failed (network, status, redirects).
    #[error("cannot fetch it: {0}")]
    Fetch(PageError),
    /// Longer than [`SitemapLimits::max_bytes`] (after decompression): the entries before the
    /// cut are used.
    #[error("larger than {limit} bytes (decompressed): read up to there")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// More entries than [`SitemapLimits::max_urls`]: the first ones are used.
    #[error("lists more than {limit} urls: the rest are ignored")]
    TooManyUrls {
        /// The limit.
        limit: usize,
    },
    /// The gzip stream is corrupt or ends early: the entries before the damage are used.
    #[error("corrupt or truncated gzip data: {0}")]
    Gzip(String),
    /// The XML is malformed: the entries before the error are used.
    #[error("malformed xml at byte {position}: {message}")]
    Xml {
        /// Where the error is, in the decompressed document.
        position: u64,
        /// What is wrong.
        message: String,
    },
    /// The document is XML (or not), but its root is neither `<urlset>` nor `<sitemapindex>`
    /// (often an HTML page served with status 200 where no sitemap exists).
    #[error("not a sitemap (the root element is {root:?}, not urlset or sitemapindex)")]
    NotASitemap {
        /// The root element's name, empty if there is none.
        root: String,
    },
    /// An index lists sitemaps deeper than [`SitemapLimits::nesting`]: they are not fetched.
    #[error("lists {skipped} sitemaps nested deeper than {limit} indexes: not fetched")]
    TooDeep {
        /// The limit.
        limit: u32,
        /// Sitemaps not fetched.
        skipped: usize,
    },
    /// An index lists sitemaps past [`SitemapLimits::documents`]: they are not fetched.
    #[error("lists {skipped} sitemaps past the limit of {limit} documents: not fetched")]
    DocumentLimit {
        /// The limit.
        limit: usize,
        /// Sitemaps not fetched.
        skipped: usize,
    },
}

/// A sitemap document that failed ([`Summary::sitemap_failures`](super::Summary::sitemap_failures)).
///
/// ```
/// use weft_crawl::{SitemapError, SitemapFailure};
///
/// let failure = SitemapFailure::new(
///     "http://a.test/sitemap.xml".into(),
///     SitemapError::TooLarge { limit: 1024 },
/// );
/// assert_eq!(
///     failure.to_string(),
///     "sitemap http://a.test/sitemap.xml: larger than 1024 bytes (decompressed): read up to there"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sitemap {url}: {error}")]
#[non_exhaustive]
pub struct SitemapFailure {
    /// The document's URL.
    pub url: String,
    /// What went wrong (the display text includes it, so it is not also a `source`).
    pub error: SitemapError,
}

impl SitemapFailure {
    /// A failure of the document at `url`.
    pub fn new(url: String, error: SitemapError) -> Self {
        SitemapFailure { url, error }
    }
}
