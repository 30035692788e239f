//! The crawler, wired onto a [`weft_pipeline`] run, and the [`Crawl`] handle that streams its
//! pages.
//!
//! Go's scraper runs N workers reading one URL channel. A crawler that discovers its URLs as
//! it goes cannot close that channel safely (when is the last link found?) and cannot be polite
//! per host with it. Here the crawl is one pipeline whose sink feeds its source: the scheduler
//! (`schedule`, the pipeline's generator) owns the frontier, `fetch` and `parse` are stages,
//! and the `Sink` reports every result back to the scheduler before handing the page to the
//! reader. The module docs of `crawl` draw it; the invariants that keep it correct:
//!
//! 1. One report per emitted request: `fetch` and `parse` turn panics into page errors, so
//!    nothing is filtered or lost inside the pipeline except by an abort, which ends the crawl.
//! 2. At most `concurrency` requests outstanding (emitted, not yet reported), so `fetch` always
//!    has an idle worker for the next one and a request starts when it is emitted.
//! 3. The sink never waits on the scheduler (the report channel is unbounded, and by 2 holds
//!    at most `concurrency` reports), so the feedback loop cannot deadlock.
//! 4. The scheduler returns (ending the run) only with nothing outstanding and nothing its
//!    timers could release; the verdict it leaves says why.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context as TaskContext, Poll, ready};

use futures::stream::FusedStream;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;
use weft_core::context::Context;
use weft_pipeline::{Emitter, Pipeline, PipelineStream, Stage};

use super::config::CrawlConfig;
use super::error::CrawlError;
use super::fetch::{Env, FetchedPage, PageOutcome, fetch_page, fetch_robots, parse_page};
use super::frontier::{Dispatch, Frontier, HostId, Job, JobKind, Pushed};
use super::guard::{Guard, GuardedResolver};
use super::record::{Counters, PageRecord, Progress, StopReason, Summary};
use super::robots::Robots;
use super::save::Saver;
use super::sitemap::{Sources, stage as sitemap};
use super::url::{Scope, parse_seed};

/// A configured crawler; [`crawl`](Crawler::crawl) starts crawls with it. Crawls started from
/// one crawler share its HTTP connection pool.
///
/// ```
/// use futures::StreamExt;
/// use weft_crawl::{CrawlConfig, Crawler, StopReason};
/// use weft_core::context::Context;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // A two-page site on loopback.
/// # use axum::{Router, response::Html, routing::get};
/// # let app = Router::new()
/// #     .route("/", get(|| async { Html(r#"<title>Home</title><a href="about#team">us</a>"#) }))
/// #     .route("/about", get(|| async { Html(r#"<title>About</title><a href="/">home</a>"#) }));
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let site = format!("http://{}/", listener.local_addr()?);
/// # tokio::spawn(async move { axum::serve(listener, app).await });
/// let crawler = Crawler::new(CrawlConfig::new().max_depth(3))?;
/// let mut crawl = crawler.crawl(&Context::background(), [&site])?;
/// let mut titles = Vec::new();
/// while let Some(page) = crawl.next().await {
///     titles.push(page.title.unwrap_or_default());
/// }
/// titles.sort();
/// assert_eq!(titles, ["About", "Home"]); // the cycle back to "/" is not fetched again
/// let summary = crawl.summary().unwrap();
/// assert_eq!((summary.stats.pages, &summary.stop), (2, &StopReason::Finished));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Crawler {
    client: reqwest::Client,
    config: CrawlConfig,
    guard: Guard,
}

impl Crawler {
    /// Builds a crawler (and its HTTP client: rustls, no automatic redirects, the configured
    /// timeouts and user agent, a resolver that drops link-local and cloud metadata
    /// addresses).
    ///
    /// # Errors
    ///
    /// [`CrawlError::Client`] if the HTTP client cannot be built.
    pub fn new(config: CrawlConfig) -> Result<Self, CrawlError> {
        let guard = Guard::default();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .user_agent(config.user_agent.clone())
            // Redirects are followed by hand: each hop is checked against scope, robots.txt
            // and the set of URLs already seen.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.per_host.get())
            .build()
            .map_err(CrawlError::Client)?;
        Ok(Crawler {
            client,
            config,
            guard,
        })
    }

    /// The settings.
    pub fn config(&self) -> &CrawlConfig {
        &self.config
    }

    /// Starts crawling from `seeds` and returns the stream of crawled pages. The crawl runs
    /// in its own task until every reachable page within the limits is crawled, `ctx` is
    /// done, or the returned [`Crawl`] is dropped (which stops it).
    ///
    /// Pages are produced as they finish, in no fixed order. Seeds are always fetched (if
    /// robots.txt allows); links are followed if they are in scope (the seeds' origins, that is
    /// scheme, host and port, or an allowed domain; the include and exclude patterns), within
    /// the depth limit, and not seen before. With [`sitemaps`](CrawlConfig::sitemaps), the
    /// in-scope pages that the seeds' sitemaps list are crawled as seeds too.
    ///
    /// No request ever goes to a link-local or cloud metadata address (`169.254.0.0/16`,
    /// `fe80::/10`, `metadata.google.internal`, ...) unless a seed names that host: such pages
    /// fail with [`PageError::Blocked`](super::PageError::Blocked).
    ///
    /// # Errors
    ///
    /// [`CrawlError::NoSeeds`], [`CrawlError::InvalidSeed`] for a seed that is not an
    /// absolute http(s) URL, or [`CrawlError::Save`] when the save directory cannot be used.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    pub fn crawl<I, S>(&self, ctx: &Context, seeds: I) -> Result<Crawl, CrawlError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls = seeds
            .into_iter()
            .map(|seed| parse_seed(seed.as_ref()))
            .collect::<Result<Vec<Url>, _>>()?;
        if urls.is_empty() {
            return Err(CrawlError::NoSeeds);
        }
        self.guard.exempt_seeds(&urls);
        let scope = Scope::new(
            urls.iter().map(Url::origin).collect(),
            self.config.allowed_domains.clone(),
            self.config.include.clone(),
            self.config.exclude.clone(),
        );
        let saver =
            match &self.config.save {
                Some(dir) => Some(Saver::open(dir, self.config.resume).map_err(|source| {
                    CrawlError::Save {
                        dir: dir.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        let counters = Arc::new(Counters::default());
        let env = Arc::new(Env {
            saver,
            client: self.client.clone(),
            config: self.config.clone(),
            scope,
            seen: Mutex::new(HashSet::new()),
            guard: self.guard.clone(),
            counters: Arc::clone(&counters),
            budget_spent: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let verdict = Arc::new(OnceLock::new());
        let pipeline = crawl_pipeline(
            env,
            urls,
            report_rx,
            Arc::clone(&counters),
            Arc::clone(&verdict),
        );
        let sink = Sink {
            tx,
            reports: report_tx,
            counters: Arc::clone(&counters),
            verdict,
            started: Instant::now(),
        };
        let ctx = ctx.clone();
        let task = tokio::spawn(async move {
            let pages = pipeline.into_stream(ctx.clone());
            sink.run(pages, ctx).await;
        });
        Ok(Crawl {
            rx,
            task,
            progress: Progress(counters),
            summary: None,
            ended: false,
        })
    }
}

/// Pages buffered between the crawl and a slow reader; when full, the crawl waits (no new
/// requests start) until the reader catches up.
const CHANNEL_CAPACITY: usize = 256;

enum Event {
    Page(PageRecord),
    Done(Summary),
}

/// A running crawl: a [`Stream`] of [`PageRecord`]s, then its [`Summary`].
///
/// Dropping it stops the crawl (requests in flight are aborted), unlike dropping a tokio
/// `JoinHandle`, which lets its task run on.
#[must_use = "a crawl stops when its handle is dropped"]
pub struct Crawl {
    rx: mpsc::Receiver<Event>,
    task: JoinHandle<()>,
    progress: Progress,
    summary: Option<Summary>,
    ended: bool,
}

impl std::fmt::Debug for Crawl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crawl")
            .field("stats", &self.progress.snapshot())
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Drop for Crawl {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Crawl {
    /// Waits for the next crawled page; `None` once the crawl has ended (then
    /// [`summary`](Self::summary) is set).
    ///
    /// Equivalent to `StreamExt::next`.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: a page is taken from the crawl only in the poll that
    /// returns it, so a cancelled call loses nothing and the crawl goes on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_crawl::{CrawlConfig, Crawler};
    /// use weft_core::context::Context;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use axum::{Router, response::Html, routing::get};
    /// # let app = Router::new().route("/", get(|| async { Html("<title>Home</title>") }));
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let site = format!("http://{}/", listener.local_addr()?);
    /// # tokio::spawn(async move { axum::serve(listener, app).await });
    /// let mut crawl = Crawler::new(CrawlConfig::new())?.crawl(&Context::background(), [&site])?;
    /// let progress = crawl.progress();
    /// let mut pages = 0;
    /// loop {
    ///     tokio::select! {
    ///         page = crawl.next_page() => match page {
    ///             Some(_) => pages += 1,
    ///             None => break,
    ///         },
    ///         // Losing this race drops a pending `next_page`, which loses no page.
    ///         _ = tokio::time::sleep(Duration::from_millis(1)) => {
    ///             let _now = progress.snapshot();
    ///         }
    ///     }
    /// }
    /// assert_eq!(pages, 1);
    /// assert_eq!(progress.snapshot().pages, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_page(&mut self) -> Option<PageRecord> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// A cloneable view of the live counters (pages, errors, queued, in flight), for a
    /// progress display running beside the reader.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// The totals, once the stream has ended (`None` before, or if the run failed: a bug in a
    /// stage or the crawl task panicked).
    pub fn summary(&self) -> Option<&Summary> {
        self.summary.as_ref()
    }
}

impl Stream for Crawl {
    type Item = PageRecord;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<PageRecord>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match ready!(self.rx.poll_recv(cx)) {
            Some(Event::Page(page)) => Poll::Ready(Some(page)),
            Some(Event::Done(summary)) => {
                self.summary = Some(summary);
                self.ended = true;
                Poll::Ready(None)
            }
            None => {
                self.ended = true;
                Poll::Ready(None)
            }
        }
    }
}

impl FusedStream for Crawl {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

/// What `fetch` hands to `parse`.
#[derive(Debug)]
enum Fetched {
    Robots(HostId, Robots),
    // Boxed: a fetched page is a few hundred bytes, a robots verdict far less.
    Page(HostId, Box<FetchedPage>),
    Sitemap(HostId, Box<sitemap::Fetched>),
}

/// What `parse` hands to the sink.
#[derive(Debug)]
enum Done {
    Robots(HostId, Robots),
    Page(HostId, Box<PageOutcome>),
    Sitemap(HostId, Box<sitemap::Outcome>),
}

/// What the sink tells the scheduler: exactly one report per request the scheduler emitted.
#[derive(Debug)]
enum Report {
    Robots(HostId, Robots),
    Page {
        host: HostId,
        depth: u32,
        follow: Vec<Url>,
        redirect: Option<Job>,
    },
    Sitemap(HostId, Box<sitemap::Outcome>),
}

/// The crawl as a pipeline: scheduler (source), fetch, parse. See the module docs.
fn crawl_pipeline(
    env: Arc<Env>,
    seeds: Vec<Url>,
    reports: mpsc::UnboundedReceiver<Report>,
    counters: Arc<Counters>,
    verdict: Arc<OnceLock<StopReason>>,
) -> Pipeline<Done> {
    let workers = env.config.concurrency.get();
    let parsers = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
    let fetch_env = Arc::clone(&env);
    let parse_env = Arc::clone(&env);
    Pipeline::generate(move |ctx, emitter| {
        schedule(ctx, emitter, env, seeds, reports, counters, verdict)
    })
    // Every queue holds all `workers` outstanding requests, so no stage ever waits to hand
    // on (and `fetch` keeps polling its requests), whatever the pipeline's default sizes.
    .default_buffer(workers)
    .then(
        Stage::new("fetch").workers(workers).unordered(),
        move |request: Dispatch| {
            let env = Arc::clone(&fetch_env);
            async move {
                match request {
                    Dispatch::Robots(host, url) => {
                        let robots = AssertUnwindSafe(fetch_robots(env, url))
                            .catch_unwind()
                            .await
                            .unwrap_or(Robots::AllowAll);
                        Fetched::Robots(host, robots)
                    }
                    Dispatch::Page(host, job, robots) => {
                        let (url, depth) = (job.url.to_string(), job.depth);
                        let page = AssertUnwindSafe(fetch_page(env, job, robots))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| FetchedPage::panicked(url, depth));
                        Fetched::Page(host, Box::new(page))
                    }
                    Dispatch::Sitemap(host, job, robots) => {
                        let fallback = job.clone();
                        let fetched = AssertUnwindSafe(sitemap::fetch(env, job, robots))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| sitemap::Fetched::panicked(fallback));
                        Fetched::Sitemap(host, Box::new(fetched))
                    }
                }
            }
        },
    )
    .map(
        Stage::new("parse").workers(parsers).unordered().blocking(),
        move |fetched| match fetched {
            Fetched::Robots(host, robots) => Done::Robots(host, robots),
            Fetched::Page(host, page) => Done::Page(host, Box::new(parse_page(&parse_env, *page))),
            Fetched::Sitemap(host, fetched) => {
                let url = fetched.url.clone();
                let level = match fetched.job.kind {
                    JobKind::Sitemap { level } => level,
                    _ => 0,
                };
                // A panic here is a bug in the XML or gzip reader: the document fails, the
                // crawl goes on.
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    sitemap::digest(&parse_env, *fetched)
                }))
                .unwrap_or_else(|_| sitemap::Outcome::panicked(&parse_env, url, level));
                Done::Sitemap(host, Box::new(outcome))
            }
        },
    )
}

/// The pipeline's source: owns the frontier, emits requests as the limits allow, applies the
/// sink's reports, and returns when the crawl is over (recording why in `verdict`) or its
/// context is done (the run is stopping).
async fn schedule(
    ctx: Context,
    emitter: Emitter<Dispatch>,
    env: Arc<Env>,
    seeds: Vec<Url>,
    mut reports: mpsc::UnboundedReceiver<Report>,
    counters: Arc<Counters>,
    verdict: Arc<OnceLock<StopReason>>,
) {
    let config = &env.config;
    let obey_robots = config.respect_robots;
    let mut frontier = Frontier::new(
        config.per_host.get(),
        config.delay,
        config.jitter,
        config.max_crawl_delay,
    );
    // Requests emitted and not yet reported back by the sink, wherever they are.
    let mut outstanding: usize = 0;
    let mut dispatched: u64 = 0;
    let budget_spent = |dispatched: u64| config.max_pages.is_some_and(|max| dispatched >= max);
    // Relaxed everywhere: the counters are for display and the summary; the summary is read
    // after the sink's hand-off, which orders it.
    let add = |counter: &AtomicU64, n: u64| {
        counter.fetch_add(n, Ordering::Relaxed);
    };

    // Queues jobs that are in scope and deduplicated already.
    let push = |frontier: &mut Frontier, jobs: Vec<Job>| {
        let now = Instant::now();
        for job in jobs {
            if frontier.push(job, obey_robots, now) == Pushed::RobotsDenied {
                add(&counters.robots_denied, 1);
            }
        }
    };

    let mut sitemaps = Sources::new(config.sitemaps, &seeds, config.sitemap_limits);
    let seeds = seeds
        .into_iter()
        .filter(|seed| env.mark_seen(seed))
        .map(|url| Job {
            url,
            depth: 0,
            redirects: 0,
            kind: JobKind::Page,
        })
        .collect();
    push(&mut frontier, seeds);
    if !obey_robots {
        // No robots.txt to read `Sitemap:` lines from: `/sitemap.xml` of each seed host.
        let (jobs, failures) = sitemaps.without_robots();
        push(&mut frontier, jobs);
        failures
            .into_iter()
            .for_each(|failure| counters.sitemap_failed(failure));
    }

    // Applies one report from the sink.
    let mut apply = |frontier: &mut Frontier, report: Report, dispatched: u64| match report {
        Report::Robots(host, robots) => {
            // A seed host's sitemaps are known with its robots.txt; they are queued after the
            // verdict, which then applies to them as to pages.
            let origin = frontier.origin(host).clone();
            let (jobs, failure) = if budget_spent(dispatched) {
                (Vec::new(), None)
            } else {
                sitemaps.for_host(&origin, Some(&robots))
            };
            let denied = frontier.robots_done(host, robots);
            add(&counters.robots_denied, denied as u64);
            push(frontier, jobs);
            failure.into_iter().for_each(|f| counters.sitemap_failed(f));
        }
        Report::Sitemap(host, outcome) => {
            frontier.complete(host);
            if budget_spent(dispatched) {
                return;
            }
            let sitemap::Outcome {
                level,
                url,
                pages,
                sitemaps: listed,
                redirect,
            } = *outcome;
            // `parse` filtered the pages and marked them seen; they are seeds, at depth 0.
            let listed_by: Arc<str> = url.as_str().into();
            let mut jobs: Vec<Job> = pages
                .into_iter()
                .map(|url| Job {
                    url,
                    depth: 0,
                    redirects: 0,
                    kind: JobKind::Listed(Arc::clone(&listed_by)),
                })
                .collect();
            jobs.extend(redirect.and_then(|job| sitemaps.redirect(job)));
            let (more, failure) = if listed.is_empty() {
                (Vec::new(), None)
            } else {
                sitemaps.listed_by_index(&url, level, listed)
            };
            jobs.extend(more);
            push(frontier, jobs);
            failure.into_iter().for_each(|f| counters.sitemap_failed(f));
        }
        Report::Page {
            host,
            depth,
            follow,
            redirect,
        } => {
            frontier.complete(host);
            if budget_spent(dispatched) {
                return;
            }
            // `parse` checked the links' depth and marked them seen; a redirect target is
            // checked here.
            let mut jobs: Vec<Job> = follow
                .into_iter()
                .map(|url| Job {
                    url,
                    depth: depth + 1,
                    redirects: 0,
                    kind: JobKind::Page,
                })
                .collect();
            if let Some(job) = redirect
                && env.mark_seen(&job.url)
            {
                jobs.push(job);
            }
            push(frontier, jobs);
        }
    };

    let done = ctx.done();
    tokio::pin!(done);
    loop {
        while let Ok(report) = reports.try_recv() {
            outstanding -= 1;
            apply(&mut frontier, report, dispatched);
        }
        // Start as many requests as the limits allow.
        let now = Instant::now();
        frontier.wake(now);
        while outstanding < config.concurrency.get() && !budget_spent(dispatched) {
            let Some(request) = frontier.next(now) else {
                break;
            };
            if matches!(request, Dispatch::Page(..)) {
                dispatched += 1;
                if budget_spent(dispatched) {
                    // Relaxed: `parse` only uses it to stop marking links followed.
                    env.budget_spent.store(true, Ordering::Relaxed);
                }
            }
            outstanding += 1;
            add(&counters.in_flight, 1);
            if emitter.send(request).await.is_err() {
                // The run is stopping.
                counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
        let queued = if budget_spent(dispatched) {
            0
        } else {
            frontier.queued()
        };
        counters.queued.store(queued as u64, Ordering::Relaxed);
        let wake = frontier.next_wake();
        if outstanding == 0 && (queued == 0 || wake.is_none()) {
            // Nothing outstanding and nothing that a timer will release: the crawl is over.
            debug_assert!(queued == 0, "queued work with nothing to release it");
            let _ = verdict.set(if budget_spent(dispatched) {
                StopReason::PageLimit
            } else {
                StopReason::Finished
            });
            return;
        }
        tokio::select! {
            biased;
            () = &mut done => return,
            Some(report) = reports.recv() => {
                outstanding -= 1;
                apply(&mut frontier, report, dispatched);
            }
            () = tokio::time::sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
        }
    }
}

/// The pipeline's consumer: reports each result to the scheduler, hands pages to the reader.
struct Sink {
    tx: mpsc::Sender<Event>,
    reports: mpsc::UnboundedSender<Report>,
    counters: Arc<Counters>,
    verdict: Arc<OnceLock<StopReason>>,
    started: Instant,
}

impl Sink {
    async fn run(self, mut pages: PipelineStream<Done>, ctx: Context) {
        let Sink {
            tx,
            reports,
            counters,
            verdict,
            started,
        } = self;
        let add = |counter: &AtomicU64, n: u64| {
            counter.fetch_add(n, Ordering::Relaxed);
        };
        let done = ctx.done();
        tokio::pin!(done);
        let mut dropped_page = false;
        while let Some(result) = pages.next().await {
            counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            // Report first, so the scheduler can start the next requests while the reader
            // takes this page. The send fails only once the scheduler has returned, when
            // nothing needs the report.
            let record = match result {
                Done::Robots(host, robots) => {
                    let _ = reports.send(Report::Robots(host, robots));
                    continue;
                }
                Done::Sitemap(host, outcome) => {
                    let _ = reports.send(Report::Sitemap(host, outcome));
                    continue;
                }
                Done::Page(host, outcome) => {
                    let PageOutcome {
                        record,
                        follow,
                        redirect,
                    } = *outcome;
                    let _ = reports.send(Report::Page {
                        host,
                        depth: record.depth,
                        follow,
                        redirect,
                    });
                    record
                }
            };
            let (bytes, failed) = (record.bytes, record.error.is_some());
            // A slow reader holds the crawl here (backpressure).
            let sent = tokio::select! {
                biased;
                () = &mut done => None,
                sent = tx.send(Event::Page(record)) => Some(sent.is_ok()),
            };
            match sent {
                Some(true) => {
                    add(&counters.pages, 1);
                    add(&counters.bytes, bytes);
                    if failed {
                        add(&counters.errors, 1);
                    }
                }
                // The Crawl handle is gone; nobody to report to (dropping `pages` stops
                // the run).
                Some(false) => return,
                None => {
                    // Cancelled while the reader was busy: this page is not delivered.
                    dropped_page = true;
                    break;
                }
            }
        }
        // Joins every stage task.
        let failed_run = pages.finish().await.is_err();
        let stop = match verdict.get() {
            // The scheduler saw every request come back, and every page went to the reader.
            Some(verdict) if !dropped_page && !failed_run => verdict.clone(),
            _ if ctx.is_done() => StopReason::Cancelled(ctx.cause().map(|c| c.to_string())),
            // The run failed (a bug in weft's stage code: the crawl's own closures catch their
            // panics): no summary; the reader sees the stream end without one.
            _ => return,
        };
        let abandoned = if matches!(stop, StopReason::Cancelled(_)) {
            counters.in_flight.load(Ordering::Relaxed) + u64::from(dropped_page)
        } else {
            0
        };
        counters.in_flight.store(0, Ordering::Relaxed);
        let summary = Summary {
            stats: Progress(Arc::clone(&counters)).snapshot(),
            abandoned,
            elapsed: started.elapsed(),
            stop,
            sitemap_failures: counters.sitemap_failures(),
        };
        let _ = tx.send(Event::Done(summary)).await;
    }
}
