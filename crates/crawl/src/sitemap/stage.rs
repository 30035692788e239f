//! A sitemap document in the crawl pipeline: fetched by the `fetch` stage ([`fetch`]), read
//! and filtered by the `parse` stage ([`digest`]), turned into queued work by the scheduler.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use reqwest::header::LOCATION;
use url::Url;

use super::parse::{self, Kind};
use super::{SitemapError, SitemapFailure};
use crate::fetch::{Env, read_body, send};
use crate::frontier::{Job, JobKind};
use crate::record::{PageError, Skip};
use crate::robots::Robots;
use crate::url::{host_key, normalize};

/// A fetched sitemap document, not read yet.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) job: Job,
    /// Where the document was found (after same-host redirects).
    pub(crate) url: Url,
    pub(crate) body: Body,
}

/// How a sitemap fetch ended.
#[derive(Debug)]
pub(crate) enum Body {
    /// The body, and whether it was cut at the size cap.
    Read(Vec<u8>, bool),
    /// A redirect to another host, to queue there.
    Redirect(Job),
    /// A same-host redirect to a URL robots.txt disallows (counted as denied).
    Denied,
    Failed(SitemapError),
}

impl Fetched {
    /// The document of a fetch that panicked (a bug): a failure, and the crawl goes on.
    pub(crate) fn panicked(job: Job) -> Self {
        Fetched {
            url: job.url.clone(),
            job,
            body: Body::Failed(SitemapError::Fetch(PageError::Panicked)),
        }
    }
}

/// What a sitemap document leads to: the scheduler queues it.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The document's level (see `SitemapLimits::nesting`).
    pub(crate) level: u32,
    /// Where the document was found.
    pub(crate) url: Url,
    /// Pages it lists: in scope, allowed, and marked seen.
    pub(crate) pages: Vec<Url>,
    /// Sitemaps it lists (an index): on an allowed host, not yet deduplicated.
    pub(crate) sitemaps: Vec<Url>,
    /// A redirect to another host.
    pub(crate) redirect: Option<Job>,
}

impl Outcome {
    /// The outcome of a read that panicked (a bug): a failure, and the crawl goes on.
    pub(crate) fn panicked(env: &Env, url: Url, level: u32) -> Self {
        let error = SitemapError::Fetch(PageError::Panicked);
        env.counters
            .sitemap_failed(SitemapFailure::new(url.to_string(), error));
        Outcome {
            level,
            url,
            pages: Vec::new(),
            sitemaps: Vec::new(),
            redirect: None,
        }
    }
}

/// Fetches a sitemap document: retries, redirects (same host: followed if robots.txt allows;
/// another host: queued there, like a page's), the body up to the size cap.
pub(crate) async fn fetch(env: Arc<Env>, job: Job, robots: Arc<Robots>) -> Fetched {
    let max_bytes = env.config.sitemap_limits.get_max_bytes();
    let mut url = job.url.clone();
    let mut hops = job.redirects;
    let failed = |e: PageError| Body::Failed(SitemapError::Fetch(e));
    let body = loop {
        let mut resp = match send(&env, &url).await.0 {
            Ok(resp) => resp,
            Err(e) => break failed(e),
        };
        let status = resp.status();
        if status.is_redirection() {
            let target = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| url.join(loc.trim()).ok())
                .and_then(normalize);
            let Some(target) = target else {
                break failed(PageError::BadRedirect);
            };
            if hops >= env.config.max_redirects {
                break failed(PageError::TooManyRedirects(env.config.max_redirects));
            }
            hops += 1;
            if host_key(&target) != host_key(&url) {
                // Politeness and robots.txt belong to the other host's queue.
                break Body::Redirect(Job {
                    url: target,
                    depth: 0,
                    redirects: hops,
                    kind: job.kind.clone(),
                });
            }
            if !robots.allows(&target) {
                // Relaxed: a counter for the summary.
                env.counters.robots_denied.fetch_add(1, Ordering::Relaxed);
                break Body::Denied;
            }
            url = target;
            continue;
        }
        if !status.is_success() {
            break failed(PageError::Status(status.as_u16()));
        }
        break match read_body(&mut resp, max_bytes, true).await {
            Ok((body, _, cut)) => Body::Read(body, cut),
            Err(e) => failed(e),
        };
    };
    Fetched { job, url, body }
}

/// Reads a fetched document (CPU-bound: on the parse stage's blocking threads) and filters
/// what it lists: pages as links are filtered (and marked seen), sitemaps by host. Counts the
/// document, its URLs, those out of scope, and its failure.
pub(crate) fn digest(env: &Env, fetched: Fetched) -> Outcome {
    let Fetched { job, url, body } = fetched;
    let JobKind::Sitemap { level } = job.kind else {
        unreachable!("only sitemap jobs are fetched as sitemaps");
    };
    let mut outcome = Outcome {
        level,
        url,
        pages: Vec::new(),
        sitemaps: Vec::new(),
        redirect: None,
    };
    let counters = &env.counters;
    let (body, cut) = match body {
        Body::Read(body, cut) => (body, cut),
        Body::Redirect(job) => {
            outcome.redirect = Some(job);
            return outcome;
        }
        Body::Denied => return outcome,
        Body::Failed(error) => {
            counters.sitemap_failed(SitemapFailure::new(outcome.url.to_string(), error));
            return outcome;
        }
    };
    let doc = parse::read(&body, cut, &env.config.sitemap_limits);
    // Relaxed, all of them: counters for the summary, read after the run is joined.
    counters.sitemaps.fetch_add(1, Ordering::Relaxed);
    if let Some(error) = doc.error {
        counters.sitemap_failed(SitemapFailure::new(outcome.url.to_string(), error));
    }
    let mut out_of_scope = 0;
    match doc.kind {
        Some(Kind::Urlset) => {
            counters
                .sitemap_urls
                .fetch_add(doc.locs.len() as u64, Ordering::Relaxed);
            for loc in &doc.locs {
                match page(env, &outcome.url, loc) {
                    Ok(page) => outcome.pages.push(page),
                    Err(Some(Skip::Scope | Skip::Filter) | None) => out_of_scope += 1,
                    // Seen, robots, blocked or the page limit: counted where they apply.
                    Err(Some(_)) => {}
                }
            }
        }
        Some(Kind::Index) => {
            let own = outcome.url.origin();
            for loc in &doc.locs {
                let sitemap = outcome
                    .url
                    .join(loc)
                    .ok()
                    .and_then(normalize)
                    .filter(|u| u.origin() == own || env.scope.allows_host(u));
                match sitemap {
                    Some(sitemap) => outcome.sitemaps.push(sitemap),
                    None => out_of_scope += 1,
                }
            }
        }
        None => {}
    }
    counters
        .sitemap_out_of_scope
        .fetch_add(out_of_scope, Ordering::Relaxed);
    outcome
}

/// A listed page, as a link is checked (`fetch::scrape`): `Err(None)` if it is not an
/// http(s) URL.
fn page(env: &Env, sitemap: &Url, loc: &str) -> Result<Url, Option<Skip>> {
    // The protocol asks for absolute URLs; a relative one is read as a link would be.
    let url = sitemap.join(loc).ok().and_then(normalize).ok_or(None)?;
    env.scope.check(&url)?;
    if !env.guard.allows(&url) {
        return Err(Some(Skip::Blocked));
    }
    // Relaxed: see `fetch::scrape`.
    if env.budget_spent.load(Ordering::Relaxed) {
        return Err(Some(Skip::PageLimit));
    }
    if !env.mark_seen(&url) {
        return Err(Some(Skip::Seen));
    }
    Ok(url)
}
