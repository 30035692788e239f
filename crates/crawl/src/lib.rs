//! `weft crawl`: a concurrent, polite web crawler.
//!
//! Go's classic scraper (a fixed pool of workers reading one URL channel) fetches a list; a
//! crawler must also *discover* its work, be polite to each host and stop cleanly. Here:
//!
//! - **Concurrency**: at most [`concurrency`](CrawlConfig::concurrency) requests in flight,
//!   at most [`per_host`](CrawlConfig::per_host) to any one host, and requests to one host
//!   started at least [`delay`](CrawlConfig::delay) apart (plus random jitter). The crawl
//!   runs on a [`weft_pipeline`] pipeline whose sink feeds the links it finds back to its
//!   source (below).
//! - **Scope**: links are followed within [`max_depth`](CrawlConfig::max_depth) and
//!   [`max_pages`](CrawlConfig::max_pages), on the seeds' origins (scheme, host and port) or
//!   the [allowed domains](CrawlConfig::allow_domains), matching the include and exclude
//!   patterns; URLs are [normalised](normalize) (credentials dropped) and never fetched twice,
//!   redirect hops included. A redirect that is not followed says why
//!   ([`PageRecord::not_followed`]).
//! - **Safety**: no request goes to a link-local or cloud metadata address (`169.254.0.0/16`,
//!   `fe80::/10`, `metadata.google.internal`, ...), checked on the URL and on every resolved
//!   address, unless a seed names that host; robots.txt is read up to 500 KiB.
//! - **Scraping**: fields by CSS selector ([`CrawlConfig::extract`], [`Extract`]), each page's
//!   links with their fate ([`CrawlConfig::record_links`]), following by selector
//!   ([`CrawlConfig::follow`]), handlers given the parsed page ([`CrawlConfig::on_html`], the
//!   shape of colly's `OnHTML`), bodies saved and a crawl resumed ([`CrawlConfig::save`],
//!   [`CrawlConfig::resume`]), sitemaps (and sitemap indexes, gzip) read as extra seeds
//!   ([`CrawlConfig::sitemaps`]).
//! - **Manners**: robots.txt is fetched per host and obeyed (including `Crawl-delay`) unless
//!   [`respect_robots(false)`](CrawlConfig::respect_robots).
//! - **Robustness**: timeouts, a body size cap, a redirect limit, retries with backoff for
//!   transient errors; big pages are parsed on blocking threads; non-HTML bodies are counted,
//!   not parsed.
//! - **Streaming**: [`Crawler::crawl`] returns a [`Crawl`], a stream of [`PageRecord`]s in
//!   the order they finish; when a [`Context`](weft_core::context::Context) is cancelled the
//!   stream ends after the pages already crawled, with a [`Summary`] saying why.
//!
//! # How the crawl maps onto the pipeline
//!
//! ```text
//!   scheduler ──▶ fetch ───────────▶ parse ───────────▶ sink ──▶ Crawl stream (the reader)
//!   (generate)    async, -j N        blocking threads,   │
//!       ▲         workers,           one per core,       │ "request done" + links found
//!       │         unordered          unordered           │ (unbounded channel)
//!       └────────────────────────────────────────────────┘
//! ```
//!
//! - **Source**: [`Pipeline::generate`](weft_pipeline::Pipeline::generate) runs the
//!   scheduler, the only owner of the frontier (per-host queues, robots.txt state, delay
//!   timers, so no locks). It emits a request (a page, a sitemap document, or a host's
//!   robots.txt) whenever the global and per-host limits and the host's delay allow, and
//!   counts it *outstanding* until the sink reports it back. It never has more than `concurrency` requests outstanding, so
//!   each request it emits finds an idle `fetch` worker at once: the moment it is emitted is
//!   the moment it starts, which is what the per-host delay spaces, and per-host concurrency
//!   counted from emission to report can only over-count.
//! - **`fetch`**: [`then`](weft_pipeline::Pipeline::then) with `concurrency` workers,
//!   unordered: retries with backoff, redirects, the body cap. A panic becomes a page error,
//!   so every request comes out of the stage.
//! - **`parse`**: [`map`](weft_pipeline::Pipeline::map) on blocking threads, unordered:
//!   html5ever, `<base href>`, link resolution and scope, CPU-bound work kept off the async
//!   workers that run the fetches.
//! - **Sink**: a task reading [`into_stream`](weft_pipeline::Pipeline::into_stream). For each
//!   result it first reports to the scheduler (request done, links found: dedup, depth and
//!   page limits are applied there), then hands the page to the [`Crawl`] stream, then counts
//!   it. The report channel is unbounded, so the sink never waits on the source and the
//!   feedback loop cannot deadlock; it holds at most `concurrency` reports.
//! - **End**: the scheduler returns, which ends the source and so the run, exactly when the
//!   frontier has nothing it could release and nothing is outstanding (every request emitted
//!   has come back through the sink, from wherever it was in the pipeline).
//! - **Backpressure**: a slow reader holds the sink, reports stop, outstanding requests stay
//!   outstanding, and the scheduler starts nothing new.
//! - **Cancellation**: a done context aborts the run (requests in flight are dropped); the
//!   reader gets every page handed over so far, then a [`Summary`] that counts the abandoned
//!   requests.
//!
//! ```no_run
//! use futures::StreamExt;
//! use weft_crawl::{CrawlConfig, Crawler};
//! use weft_core::context::Context;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (ctx, _cancel) = Context::background().with_timeout(std::time::Duration::from_secs(60));
//! let crawler = Crawler::new(CrawlConfig::new().max_pages(100))?;
//! let mut crawl = crawler.crawl(&ctx, ["https://example.com/"])?;
//! while let Some(page) = crawl.next().await {
//!     println!("{}", serde_json::to_string(&page)?);
//! }
//! eprintln!("{}", crawl.summary().unwrap());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod config;
mod crawler;
mod error;
mod extract;
mod fetch;
mod frontier;
mod guard;
mod parse;
mod record;
mod robots;
mod save;
mod sitemap;
mod url;

pub use config::{CrawlConfig, DEFAULT_USER_AGENT};
pub use crawler::{Crawl, Crawler};
pub use error::CrawlError;
pub use extract::{Extract, HtmlPage};
pub use record::{Link, PageError, PageRecord, Progress, Skip, Stats, StopReason, Summary};
/// The HTML parser the crawl uses: [`CrawlConfig::on_html`] handlers get its `ElementRef`s.
pub use scraper;
pub use sitemap::{SitemapError, SitemapFailure, SitemapLimits};
pub use url::{normalize, parse_seed};
