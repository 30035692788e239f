//! The crawler's settings, with their defaults.

use std::num::NonZeroUsize;
use std::time::Duration;

use regex::Regex;
use scraper::{ElementRef, Selector};

use super::error::CrawlError;
use super::extract::{Extract, Handler, HtmlPage, selector};
use super::record::PageRecord;
use super::sitemap::SitemapLimits;

/// Settings of a [`Crawler`](super::Crawler). Every setter states its default.
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use weft_crawl::CrawlConfig;
///
/// let config = CrawlConfig::new()
///     .max_depth(2)
///     .max_pages(500)
///     .concurrency(NonZeroUsize::new(32).unwrap())
///     .per_host(NonZeroUsize::new(4).unwrap())
///     .delay(Duration::from_millis(100), Duration::from_millis(50));
/// assert_eq!(config.get_max_depth(), Some(2));
/// assert_eq!(config.get_per_host().get(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct CrawlConfig {
    pub(crate) max_depth: Option<u32>,
    pub(crate) max_pages: Option<u64>,
    pub(crate) concurrency: NonZeroUsize,
    pub(crate) per_host: NonZeroUsize,
    pub(crate) delay: Duration,
    pub(crate) jitter: Duration,
    pub(crate) allowed_domains: Vec<String>,
    pub(crate) include: Vec<Regex>,
    pub(crate) exclude: Vec<Regex>,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) max_redirects: u32,
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) respect_robots: bool,
    pub(crate) max_crawl_delay: Duration,
    pub(crate) user_agent: String,
    pub(crate) extract: Vec<Extract>,
    pub(crate) links: bool,
    pub(crate) follow: Option<Selector>,
    pub(crate) handlers: Vec<Handler>,
    pub(crate) save: Option<std::path::PathBuf>,
    pub(crate) resume: bool,
    pub(crate) sitemaps: bool,
    pub(crate) sitemap_limits: SitemapLimits,
}

/// The product token the crawler announces and looks for in robots.txt.
pub const DEFAULT_USER_AGENT: &str = concat!("weft-crawl/", env!("CARGO_PKG_VERSION"));

const NZ_16: NonZeroUsize = NonZeroUsize::new(16).expect("16 is not zero");
const NZ_8: NonZeroUsize = NonZeroUsize::new(8).expect("8 is not zero");

impl Default for CrawlConfig {
    fn default() -> Self {
        CrawlConfig {
            max_depth: None,
            max_pages: None,
            concurrency: NZ_16,
            per_host: NZ_8,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            allowed_domains: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body: 10 * 1024 * 1024,
            max_redirects: 10,
            retries: 2,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            respect_robots: true,
            max_crawl_delay: Duration::from_secs(30),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            extract: Vec::new(),
            links: false,
            follow: None,
            handlers: Vec::new(),
            save: None,
            resume: false,
            sitemaps: false,
            sitemap_limits: SitemapLimits::default(),
        }
    }
}

impl CrawlConfig {
    /// The default settings (see each setter).
    pub fn new() -> Self {
        Self::default()
    }

    /// Follows links at most `depth` hops from a seed (seeds are depth 0).
    ///
    /// By default, depth is unlimited (the crawl is bounded by its allowed domains).
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.max_depth = Some(depth);
        self
    }

    /// Fetches at most `pages` pages (robots.txt and sitemap requests are not counted).
    ///
    /// By default, the number of pages is unlimited.
    pub fn max_pages(mut self, pages: u64) -> Self {
        self.max_pages = Some(pages);
        self
    }

    /// At most `n` requests in flight over all hosts (Go's worker count).
    ///
    /// By default, this is 16.
    pub fn concurrency(mut self, n: NonZeroUsize) -> Self {
        self.concurrency = n;
        self
    }

    /// At most `n` requests in flight to any one host (`scheme://host:port`).
    ///
    /// By default, this is 8.
    pub fn per_host(mut self, n: NonZeroUsize) -> Self {
        self.per_host = n;
        self
    }

    /// Starts requests to the same host at least `delay` apart, plus a random extra in
    /// `0..=jitter` each time. A robots.txt `Crawl-delay` raises the delay for its host (up to
    /// [`max_crawl_delay`](Self::max_crawl_delay)).
    ///
    /// By default, there is no delay and no jitter.
    pub fn delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.delay = delay;
        self.jitter = jitter;
        self
    }

    /// Also follows links to these hosts and their subdomains (`example.com` allows
    /// `docs.example.com`; IP addresses match exactly), on any port, over http or https.
    /// Seeds are always fetched.
    ///
    /// By default, there are none: only the seeds' origins (scheme, host and port) are in
    /// scope, so `http://host:8080/` does not lead to `http://host:8081/` or `https://host/`.
    pub fn allow_domains<I, S>(mut self, domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_domains = domains.into_iter().map(Into::into).collect();
        self
    }

    /// Follows a link only if its normalised URL matches one of these patterns.
    ///
    /// By default, there are none (every allowed link is followed).
    pub fn include(mut self, patterns: Vec<Regex>) -> Self {
        self.include = patterns;
        self
    }

    /// Never follows a link whose normalised URL matches one of these patterns.
    ///
    /// By default, there are none.
    pub fn exclude(mut self, patterns: Vec<Regex>) -> Self {
        self.exclude = patterns;
        self
    }

    /// Gives up on a request (headers and body) after `timeout`, and on connecting after
    /// `connect`.
    ///
    /// By default, these are 30 s and 10 s.
    pub fn timeouts(mut self, timeout: Duration, connect: Duration) -> Self {
        self.timeout = timeout;
        self.connect_timeout = connect;
        self
    }

    /// Reads at most `bytes` of a body; the rest is dropped and the page marked truncated.
    ///
    /// By default, this is 10 MiB.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Follows at most `n` redirects from one URL.
    ///
    /// By default, this is 10.
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.max_redirects = n;
        self
    }

    /// Retries a request up to `retries` times after a transient failure (connection error,
    /// timeout, status 429, 502, 503 or 504), waiting `backoff`, then twice as long each time
    /// (plus jitter, at most `max_backoff`, or what a `Retry-After` header asks within that).
    ///
    /// By default, 2 retries, 500 ms backoff, at most 30 s.
    pub fn retries(mut self, retries: u32, backoff: Duration, max_backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self.max_backoff = max_backoff;
        self
    }

    /// Whether robots.txt is fetched and obeyed for each host.
    ///
    /// By default, it is.
    pub fn respect_robots(mut self, yes: bool) -> Self {
        self.respect_robots = yes;
        self
    }

    /// The longest robots.txt `Crawl-delay` that is honoured; longer ones are cut to this.
    ///
    /// By default, this is 30 s.
    pub fn max_crawl_delay(mut self, max: Duration) -> Self {
        self.max_crawl_delay = max;
        self
    }

    /// The `User-Agent` header; its first word (before `/`) is the robots.txt product token.
    ///
    /// By default, this is [`DEFAULT_USER_AGENT`].
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// Extracts a field from every HTML page into [`PageRecord::fields`] (repeatable: each
    /// call adds one).
    ///
    /// By default, nothing is extracted.
    pub fn extract(mut self, field: Extract) -> Self {
        self.extract.push(field);
        self
    }

    /// Whether each record lists the page's links ([`PageRecord::out_links`]): absolute,
    /// normalised, each with whether it was followed and, if not, why.
    ///
    /// By default, only their number is recorded.
    pub fn record_links(mut self, yes: bool) -> Self {
        self.links = yes;
        self
    }

    /// Follows only the links of the elements this CSS selector matches (an element's own
    /// `href`, or the links inside it): pagination and listing pages, such as
    /// `"a.next, .pagination"`. Scope, patterns, depth and robots.txt still apply.
    ///
    /// By default, every link is a candidate.
    ///
    /// # Errors
    ///
    /// [`CrawlError::Selector`] if the selector does not parse.
    pub fn follow(mut self, css: &str) -> Result<Self, CrawlError> {
        self.follow = Some(selector(css)?);
        Ok(self)
    }

    /// Calls `handler` for every element that the CSS selector matches on every HTML page
    /// (colly's `OnHTML`), with the parsed page and the page's record, which it may fill
    /// ([`PageRecord::fields`]). Handlers run on the crawl's parse threads (blocking threads,
    /// one per core), after the built-in fields and extraction, in the order they were added.
    ///
    /// A handler that panics marks its page as failed ([`PageError::Panicked`](super::PageError::Panicked)); the
    /// crawl goes on.
    ///
    /// By default, there are none.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weft_crawl::{CrawlConfig, Crawler};
    /// use weft_core::context::Context;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use axum::{Router, response::Html, routing::get};
    /// # let app = Router::new().route("/", get(|| async { Html(
    /// #     r#"<ul><li class="item" data-sku="a1">Tea</li><li class="item" data-sku="b2">Milk</li></ul>"#
    /// # ) }));
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let site = format!("http://{}/", listener.local_addr()?);
    /// # tokio::spawn(async move { axum::serve(listener, app).await });
    /// let config = CrawlConfig::new().on_html("li.item", |item, _page, record| {
    ///     let sku = item.value().attr("data-sku").unwrap_or_default();
    ///     let skus = record.fields.entry("skus").or_insert_with(|| serde_json::json!([]));
    ///     if let Some(list) = skus.as_array_mut() {
    ///         list.push(sku.into());
    ///     }
    /// })?;
    /// let mut crawl = Crawler::new(config)?.crawl(&Context::background(), [&site])?;
    /// let page = crawl.next().await.unwrap();
    /// assert_eq!(page.fields["skus"], serde_json::json!(["a1", "b2"]));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`CrawlError::Selector`] if the selector does not parse.
    pub fn on_html<F>(mut self, css: &str, handler: F) -> Result<Self, CrawlError>
    where
        F: Fn(ElementRef<'_>, &HtmlPage<'_>, &mut PageRecord) + Send + Sync + 'static,
    {
        self.handlers.push(Handler::new(selector(css)?, handler));
        Ok(self)
    }

    /// Stores each successful body in `dir` (created if missing), named by a SHA-256 of its
    /// final URL, written atomically, with `dir/index.jsonl` mapping each URL to its file,
    /// status, content type and fetch time ([`PageRecord::saved`] names the file). Without
    /// [`resume`](Self::resume), the index is started over.
    ///
    /// By default, nothing is saved.
    pub fn save(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.save = Some(dir.into());
        self
    }

    /// With [`save`](Self::save): pages the index already lists (from an interrupted crawl)
    /// are read from the directory instead of fetched (their records have 0 attempts), and
    /// their links are followed as before, so the crawl goes on where it stopped.
    ///
    /// By default, this is off.
    pub fn resume(mut self, yes: bool) -> Self {
        self.resume = yes;
        self
    }

    /// Reads the seeds' sitemaps and crawls the pages they list as extra seeds (depth 0), so
    /// pages no link leads to are crawled too.
    ///
    /// - **Where**: each `Sitemap:` line of a seed host's robots.txt (from the robots.txt
    ///   request the crawl makes anyway, on any host it names), or `/sitemap.xml` at the
    ///   seed's origin if there is none, or if robots.txt is not read
    ///   ([`respect_robots(false)`](Self::respect_robots)).
    /// - **What**: `<urlset>` and `<sitemapindex>` documents, gzip or not (told by content,
    ///   so `.xml.gz` files and `Content-Encoding: gzip` bodies both work); indexes are
    ///   followed within [`sitemap_limits`](Self::sitemap_limits), each sitemap URL read at
    ///   most once (so an index listing itself ends), and only on an in-scope host or the
    ///   index's own origin.
    /// - **Which pages**: every `<loc>` is filtered like a link (scope, include and exclude
    ///   patterns, robots.txt), and deduplicated with everything else the crawl queued. Its
    ///   record names the sitemap ([`PageRecord::sitemap`]). Listed pages are at depth 0,
    ///   like seeds: [`max_depth`](Self::max_depth) counts links followed from them, so
    ///   `max_depth(0)` crawls exactly the seeds and the listed pages.
    /// - **Politeness**: a sitemap document is a request of its host like a page (per-host
    ///   limit, delay, robots.txt, retries), not counted against
    ///   [`max_pages`](Self::max_pages).
    /// - **Errors**: a sitemap that cannot be fetched or read (a 404, malformed XML,
    ///   truncated gzip, a limit reached) is counted ([`Stats::sitemap_errors`]) and listed
    ///   ([`Summary::sitemap_failures`]); the entries read before the damage are used, and
    ///   the crawl goes on.
    ///
    /// By default, sitemaps are not read.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weft_crawl::{CrawlConfig, Crawler};
    /// use weft_core::context::Context;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use axum::{Router, response::Html, routing::get};
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let site = format!("http://{}", listener.local_addr()?);
    /// # let sitemap = format!(
    /// #     r#"<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
    /// #          <url><loc>{site}/hidden</loc></url>
    /// #          <url><loc>http://elsewhere.test/</loc></url>
    /// #        </urlset>"#
    /// # );
    /// # let app = Router::new()
    /// #     .route("/robots.txt", get(|| async { "User-agent: *\nAllow: /\n" }))
    /// #     .route("/sitemap.xml", get(move || async move { sitemap }))
    /// #     .route("/", get(|| async { Html("<title>Home</title>") }))
    /// #     .route("/hidden", get(|| async { Html("<title>Hidden</title>") }));
    /// # tokio::spawn(async move { axum::serve(listener, app).await });
    /// // The home page links nowhere; its /sitemap.xml lists /hidden and a page elsewhere.
    /// let config = CrawlConfig::new().sitemaps(true);
    /// let mut crawl = Crawler::new(config)?.crawl(&Context::background(), [format!("{site}/")])?;
    /// let mut titles = Vec::new();
    /// while let Some(page) = crawl.next().await {
    ///     titles.push((page.title.unwrap_or_default(), page.sitemap));
    /// }
    /// titles.sort();
    /// let listed_by = Some(format!("{site}/sitemap.xml"));
    /// assert_eq!(titles, [("Hidden".into(), listed_by), ("Home".into(), None)]);
    /// let stats = crawl.summary().unwrap().stats;
    /// assert_eq!((stats.sitemaps, stats.sitemap_urls, stats.sitemap_out_of_scope), (1, 2, 1));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`Stats::sitemap_errors`]: super::Stats::sitemap_errors
    /// [`Summary::sitemap_failures`]: super::Summary::sitemap_failures
    pub fn sitemaps(mut self, yes: bool) -> Self {
        self.sitemaps = yes;
        self
    }

    /// How many sitemap documents are read, how deep indexes are followed, and how large a
    /// document may be ([`SitemapLimits`]), with [`sitemaps`](Self::sitemaps).
    ///
    /// By default, [`SitemapLimits::default`]: 1,000 documents, 3 levels of indexes, and the
    /// protocol's 50 MiB and 50,000 URLs per document.
    pub fn sitemap_limits(mut self, limits: SitemapLimits) -> Self {
        self.sitemap_limits = limits;
        self
    }

    /// The depth limit, if any.
    pub fn get_max_depth(&self) -> Option<u32> {
        self.max_depth
    }

    /// The page limit, if any.
    pub fn get_max_pages(&self) -> Option<u64> {
        self.max_pages
    }

    /// The global concurrency.
    pub fn get_concurrency(&self) -> NonZeroUsize {
        self.concurrency
    }

    /// The per-host concurrency.
    pub fn get_per_host(&self) -> NonZeroUsize {
        self.per_host
    }

    /// The robots.txt product token: the user agent up to its first `/` or space.
    pub(crate) fn robots_agent(&self) -> &str {
        self.user_agent
            .split(['/', ' '])
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("weft-crawl")
    }
}
