//! `weft crawl`: a concurrent, polite web crawler.
//!
//! Go's classic scraper (a fixed pool of workers reading one URL channel) fetches a list; a
//! crawler must also *discover* its work, be polite to each host and stop cleanly. Here:
//!
//! - **Concurrency**: at most [`concurrency`](CrawlConfig::concurrency) requests in flight,
//!   at most [`per_host`](CrawlConfig::per_host) to any one host, and requests to one host
//!   started at least [`delay`](CrawlConfig::delay) apart (plus random jitter). One
//!   coordinator task owns the frontier; each request runs in its own task.
//! - **Scope**: links are followed within [`max_depth`](CrawlConfig::max_depth) and
//!   [`max_pages`](CrawlConfig::max_pages), to the allowed domains (by default the seeds'
//!   hosts), matching the include and exclude patterns; URLs are [normalised](normalize) and
//!   never fetched twice, redirect hops included.
//! - **Manners**: robots.txt is fetched per host and obeyed (including `Crawl-delay`) unless
//!   [`respect_robots(false)`](CrawlConfig::respect_robots).
//! - **Robustness**: timeouts, a body size cap, a redirect limit, retries with backoff for
//!   transient errors; big pages are parsed on blocking threads; non-HTML bodies are counted,
//!   not parsed.
//! - **Streaming**: [`Crawler::crawl`] returns a [`Crawl`], a stream of [`PageRecord`]s in
//!   the order they finish; when a [`Context`](weft_core::context::Context) is cancelled the
//!   stream ends after the pages already crawled, with a [`Summary`] saying why.
//!
//! ```no_run
//! use futures::StreamExt;
//! use weft_apps::crawl::{CrawlConfig, Crawler};
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

mod config;
mod crawler;
mod error;
mod fetch;
mod frontier;
mod parse;
mod record;
mod robots;
mod url;

pub use config::{CrawlConfig, DEFAULT_USER_AGENT};
pub use crawler::{Crawl, Crawler};
pub use error::CrawlError;
pub use record::{PageError, PageRecord, Progress, Stats, StopReason, Summary};
pub use url::normalize;
