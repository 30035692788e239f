//! Fetching one page (retries, same-host redirects, body cap) and one robots.txt: the crawl
//! pipeline's `fetch` stage; and turning a fetched page into its record and links: its `parse`
//! stage.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use url::Url;

use super::config::CrawlConfig;
use super::extract::HtmlPage;
use super::frontier::{Job, JobKind};
use super::guard::Guard;
use super::parse::followable;
use super::parse::parse_html;
use super::record::{Counters, Link, PageError, PageRecord, Skip};
use super::robots::Robots;
use super::save::Saver;
use super::url::{Scope, host_key, normalize};

/// What every stage of the crawl shares.
#[derive(Debug)]
pub(crate) struct Env {
    pub(crate) client: reqwest::Client,
    pub(crate) config: CrawlConfig,
    pub(crate) scope: Scope,
    /// Every URL ever queued or requested, normalised. Shared with the tasks so that a
    /// same-host redirect never requests a URL twice either.
    pub(crate) seen: Mutex<HashSet<Box<str>>>,
    /// The addresses never requested.
    pub(crate) guard: Guard,
    pub(crate) counters: Arc<Counters>,
    /// Set by the scheduler once the page limit is reached: no link is followed after that.
    pub(crate) budget_spent: AtomicBool,
    /// Where bodies are saved, and what an earlier crawl saved.
    pub(crate) saver: Option<Saver>,
}

impl Env {
    /// Marks the URL as seen; false if it already was.
    pub(crate) fn mark_seen(&self, url: &Url) -> bool {
        // A panic while holding this lock cannot leave the set half-updated.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.insert(url.as_str().into())
    }
}

/// A fetched page, not parsed yet: the `fetch` stage's output.
#[derive(Debug)]
pub(crate) struct FetchedPage {
    pub(crate) record: PageRecord,
    /// The HTML body to parse (its links resolve against `url`); `None` for anything else.
    pub(crate) html: Option<(Vec<u8>, Url)>,
    /// A redirect to another host, to queue as its own page.
    pub(crate) redirect: Option<Job>,
    /// When the first request started (for [`PageRecord::fetch_ms`]).
    pub(crate) started: std::time::Instant,
    /// The host's robots.txt rules, for the page's same-origin links.
    pub(crate) robots: Option<Arc<Robots>>,
    /// A successful body that is not HTML, kept to be saved.
    pub(crate) other_body: Option<Vec<u8>>,
    /// Read from the save directory rather than fetched.
    pub(crate) loaded: bool,
}

impl FetchedPage {
    /// The page of a fetch that panicked (a bug): recorded as failed, the crawl goes on.
    pub(crate) fn panicked(url: String, depth: u32) -> Self {
        let mut record = PageRecord::new(url, depth);
        record.error = Some(PageError::Panicked);
        FetchedPage {
            record,
            html: None,
            redirect: None,
            started: std::time::Instant::now(),
            robots: None,
            other_body: None,
            loaded: false,
        }
    }
}

/// A crawled page: its record and where it leads. The `parse` stage's output.
#[derive(Debug)]
pub(crate) struct PageOutcome {
    pub(crate) record: PageRecord,
    /// In-scope links to queue at `depth + 1`.
    pub(crate) follow: Vec<Url>,
    /// A redirect to another host, to queue as its own page.
    pub(crate) redirect: Option<Job>,
}

fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

fn backoff(config: &CrawlConfig, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let wait = match retry_after {
        Some(asked) => asked,
        None => {
            // Exponential, with "equal jitter" (half fixed, half random) so that retries from
            // many tasks do not arrive together.
            let exp = config.backoff.saturating_mul(1u32 << (attempt - 1).min(16));
            use rand::Rng;
            exp / 2 + (exp / 2).mul_f64(rand::rng().random_range(0.0..=1.0))
        }
    };
    wait.min(config.max_backoff)
}

/// Sends a GET, retrying transient failures. Returns the last result and the attempts made
/// (0 when the URL is blocked and nothing was sent).
pub(crate) async fn send(env: &Env, url: &Url) -> (Result<Response, PageError>, u32) {
    if !env.guard.allows(url) {
        // Relaxed: a counter for the summary, read after the run is joined.
        env.counters.blocked.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%url, "not requested: link-local or cloud metadata address");
        return (Err(PageError::Blocked), 0);
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = env.client.get(url.clone()).send().await;
        let retry = match &result {
            Ok(resp) if is_transient(resp.status()) => Some(
                resp.headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            ),
            Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => Some(None),
            _ => None,
        };
        match retry {
            Some(retry_after) if attempt <= env.config.retries => {
                tokio::time::sleep(backoff(&env.config, attempt, retry_after)).await;
            }
            _ => return (result.map_err(PageError::from), attempt),
        }
    }
}

/// Reads up to `cap` bytes of the body; keeps them only if `keep`. Returns the bytes kept,
/// the count read, and whether the body went past the cap.
pub(crate) async fn read_body(
    resp: &mut Response,
    cap: usize,
    keep: bool,
) -> Result<(Vec<u8>, u64, bool), PageError> {
    let hint = resp.content_length().unwrap_or(0).min(cap as u64) as usize;
    let mut buf = if keep {
        Vec::with_capacity(hint)
    } else {
        Vec::new()
    };
    let mut read = 0usize;
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - read;
        if chunk.len() > room {
            if keep {
                buf.extend_from_slice(&chunk[..room]);
            }
            return Ok((buf, cap as u64, true));
        }
        read += chunk.len();
        if keep {
            buf.extend_from_slice(&chunk);
        }
    }
    Ok((buf, read as u64, false))
}

fn is_html(content_type: Option<&str>, body_start: &[u8]) -> bool {
    match content_type {
        Some(ct) => {
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "text/html" || mime == "application/xhtml+xml"
        }
        None => {
            // No header: sniff, as browsers do.
            let start: Vec<u8> = body_start
                .iter()
                .skip_while(|b| b.is_ascii_whitespace())
                .take(14)
                .map(u8::to_ascii_lowercase)
                .collect();
            start.starts_with(b"<!doctype html") || start.starts_with(b"<html")
        }
    }
}

/// Fetches a page: retries, follows same-host redirects that are in scope, allowed by
/// robots.txt and not seen before, and reads the body up to the cap (keeping it if it is
/// HTML, for [`parse_page`]).
pub(crate) async fn fetch_page(env: Arc<Env>, job: Job, robots: Arc<Robots>) -> FetchedPage {
    let mut record = PageRecord::new(job.url.to_string(), job.depth);
    if let JobKind::Listed(sitemap) = &job.kind {
        record.sitemap = Some(sitemap.to_string());
    }
    let mut out = FetchedPage {
        record,
        html: None,
        redirect: None,
        started: std::time::Instant::now(),
        robots: Some(Arc::clone(&robots)),
        other_body: None,
        loaded: false,
    };
    if let Some((entry, path)) = env.saver.as_ref().and_then(|s| s.saved(job.url.as_str())) {
        // Resuming: the page an earlier crawl saved, parsed again for its links.
        if let Ok(final_url) = Url::parse(&entry.final_url)
            && let Ok(body) = tokio::fs::read(&path).await
        {
            let rec = &mut out.record;
            rec.final_url = entry.final_url.clone();
            rec.status = Some(entry.status);
            rec.content_type = entry.content_type.clone();
            rec.bytes = body.len() as u64;
            rec.saved = Some(entry.file.clone());
            out.loaded = true;
            if is_html(rec.content_type.as_deref(), &body) {
                out.html = Some((body, final_url));
            }
            return out;
        }
    }
    let saving = env.saver.is_some();
    let rec = &mut out.record;
    let mut url = job.url;
    let mut hops = job.redirects;
    loop {
        let (result, attempts) = send(&env, &url).await;
        rec.attempts = attempts;
        rec.final_url = url.to_string();
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                rec.error = Some(e);
                break;
            }
        };
        let status = resp.status();
        rec.status = Some(status.as_u16());
        rec.content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);

        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            let target = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| url.join(loc.trim()).ok())
                .and_then(normalize);
            let Some(target) = target else {
                rec.error = Some(PageError::BadRedirect);
                break;
            };
            rec.final_url = target.to_string();
            if hops >= env.config.max_redirects {
                rec.error = Some(PageError::TooManyRedirects(env.config.max_redirects));
                break;
            }
            hops += 1;
            if let Err(skip) = env.scope.check(&target) {
                rec.not_followed = Some(skip);
                break;
            }
            if host_key(&target) != host_key(&url) {
                // Politeness and robots.txt belong to the other host's queue.
                out.redirect = Some(Job {
                    url: target,
                    depth: rec.depth,
                    redirects: hops,
                    kind: job.kind,
                });
                break;
            }
            if !robots.allows(&target) {
                rec.not_followed = Some(Skip::Robots);
                break;
            }
            if !env.mark_seen(&target) {
                // Already crawled (or queued) on its own: a loop ends here.
                rec.not_followed = Some(Skip::Seen);
                break;
            }
            url = target;
            continue;
        }

        if status.is_client_error() || status.is_server_error() {
            rec.error = Some(PageError::Status(status.as_u16()));
        }
        let html = status.is_success() && is_html(rec.content_type.as_deref(), b"");
        let sniff = status.is_success() && rec.content_type.is_none();
        let (body, bytes, truncated) = match read_body(
            &mut resp,
            env.config.max_body,
            html || sniff || (saving && status.is_success()),
        )
        .await
        {
            Ok(read) => read,
            Err(e) => {
                rec.error = Some(e);
                break;
            }
        };
        rec.bytes = bytes;
        rec.truncated = truncated;
        if html || (sniff && is_html(None, &body)) {
            out.html = Some((body, url));
        } else if saving && status.is_success() {
            out.other_body = Some(body);
        }
        break;
    }
    out
}

/// Parses a fetched page's HTML (CPU-bound: the crawl runs it on blocking threads): its
/// title, extracted fields, handlers, and which links to follow (each link's fate, for
/// [`PageRecord::out_links`]).
pub(crate) fn parse_page(env: &Env, page: FetchedPage) -> PageOutcome {
    let FetchedPage {
        mut record,
        html,
        redirect,
        started,
        robots,
        other_body,
        loaded,
    } = page;
    if let Some(saver) = &env.saver
        && !loaded
        && let Some(status @ 200..=299) = record.status
        && let Some(body) = html.as_ref().map(|(b, _)| b).or(other_body.as_ref())
    {
        match saver.save(
            &record.url,
            &record.final_url,
            status,
            record.content_type.as_deref(),
            body,
        ) {
            Ok(file) => record.saved = Some(file),
            Err(e) => record.error = Some(PageError::Save(e.to_string())),
        }
    }
    let mut follow = Vec::new();
    if let Some((body, url)) = html {
        // A panic here is a bug in a parser or a handler: the page says so and the crawl goes
        // on (the pipeline would otherwise fail the whole run).
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scrape(env, &body, &url, robots.as_deref(), &mut record)
        }));
        match parsed {
            Ok(to_follow) => follow = to_follow,
            Err(_) => record.error = Some(PageError::Panicked),
        }
    }
    record.fetch_ms = started.elapsed().as_secs_f64() * 1000.0;
    PageOutcome {
        record,
        follow,
        redirect,
    }
}

/// Fills the record from the HTML and returns the links to queue (marked seen).
fn scrape(
    env: &Env,
    body: &[u8],
    url: &Url,
    robots: Option<&Robots>,
    record: &mut PageRecord,
) -> Vec<Url> {
    let config = &env.config;
    let parsed = parse_html(body, url);
    record.title = parsed.title.clone();
    record.links = parsed.links.len();
    for field in &config.extract {
        record
            .fields
            .insert(field.name().to_owned(), field.apply(&parsed.doc));
    }
    if !config.handlers.is_empty() {
        let page = HtmlPage {
            doc: &parsed.doc,
            url: &parsed.base,
        };
        for handler in &config.handlers {
            for element in parsed.doc.select(&handler.selector) {
                (handler.run)(element, &page, record);
            }
        }
    }
    let followable = config.follow.as_ref().map(|sel| followable(&parsed, sel));
    let next_depth = record.depth + 1;
    let too_deep = config.max_depth.is_some_and(|max| next_depth > max);
    let own_origin = url.origin();
    let mut follow = Vec::new();
    let mut links = config.links.then(|| Vec::with_capacity(parsed.links.len()));
    for link in parsed.links {
        let verdict = env.scope.check(&link).and_then(|()| {
            if followable
                .as_ref()
                .is_some_and(|set| !set.contains(link.as_str()))
            {
                return Err(Skip::Filter);
            }
            if too_deep {
                return Err(Skip::Depth);
            }
            if !env.guard.allows(&link) {
                return Err(Skip::Blocked);
            }
            if robots.is_some_and(|r| !r.allows(&link)) && link.origin() == own_origin {
                if env.mark_seen(&link) {
                    // Relaxed: a counter for the summary.
                    env.counters.robots_denied.fetch_add(1, Ordering::Relaxed);
                }
                return Err(Skip::Robots);
            }
            // Relaxed: set by the scheduler once no more pages will start; a link that
            // races past it is queued and dropped there.
            if env.budget_spent.load(Ordering::Relaxed) {
                return Err(Skip::PageLimit);
            }
            if !env.mark_seen(&link) {
                return Err(Skip::Seen);
            }
            Ok(())
        });
        if let Some(links) = &mut links {
            links.push(Link::new(link.to_string(), verdict.err()));
        }
        if verdict.is_ok() {
            follow.push(link);
        }
    }
    record.out_links = links;
    follow
}

/// The most of a robots.txt that is read and parsed: the 500 KiB that RFC 9309 asks crawlers
/// to parse at least (more costs memory per host and says nothing a real site needs).
pub(crate) const ROBOTS_MAX: usize = 500 * 1024;

/// Fetches and parses a host's robots.txt (following up to 5 redirects, to any host but a
/// blocked address, as RFC 9309 allows). 2xx: its rules (the first [`ROBOTS_MAX`] bytes, up to
/// the last whole line); 4xx, a blocked redirect or too many: allow all; 5xx: disallow all
/// (RFC 9309); no answer at all: allow all, so that the pages themselves report the network
/// error.
pub(crate) async fn fetch_robots(env: Arc<Env>, mut url: Url) -> Robots {
    for _ in 0..=5 {
        let (result, _) = send(&env, &url).await;
        let Ok(mut resp) = result else {
            return Robots::AllowAll;
        };
        let status = resp.status();
        if status.is_redirection() {
            let next = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| url.join(loc.trim()).ok())
                .and_then(normalize);
            match next {
                Some(next) => {
                    url = next;
                    continue;
                }
                None => return Robots::AllowAll,
            }
        }
        if status.is_server_error() {
            return Robots::DisallowAll;
        }
        if !status.is_success() {
            return Robots::AllowAll;
        }
        return match read_body(&mut resp, ROBOTS_MAX, true).await {
            Ok((mut body, _, truncated)) => {
                if truncated {
                    // A rule cut in half could mean something else (`Disallow: /a` of
                    // `/admin`): keep whole lines only.
                    let whole = memchr::memrchr(b'\n', &body).map_or(0, |at| at + 1);
                    body.truncate(whole);
                }
                Robots::parse(env.config.robots_agent(), &body)
            }
            Err(_) => Robots::AllowAll,
        };
    }
    Robots::AllowAll
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_detection_by_header_and_sniffing() {
        assert!(is_html(Some("text/html; charset=utf-8"), b""));
        assert!(is_html(Some("Application/XHTML+xml"), b""));
        assert!(!is_html(Some("application/octet-stream"), b"<html>"));
        assert!(is_html(None, b"  \n<!DOCTYPE html><html>"));
        assert!(!is_html(None, b"\x89PNG\r\n"));
    }

    #[test]
    fn backoff_doubles_within_jitter_and_respects_the_cap() {
        let config =
            CrawlConfig::new().retries(5, Duration::from_millis(100), Duration::from_secs(1));
        for attempt in 1..=3 {
            let full = Duration::from_millis(100) * (1 << (attempt - 1));
            let d = backoff(&config, attempt, None);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(&config, 10, None) <= Duration::from_secs(1));
        assert_eq!(
            backoff(&config, 1, Some(Duration::from_secs(7))),
            Duration::from_secs(1)
        );
    }
}
