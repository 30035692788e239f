//! The crawler: a coordinator task that owns the frontier and hands requests to page tasks,
//! and the [`Crawl`] handle that streams its pages.
//!
//! Go's scraper runs N workers reading one URL channel. A crawler that discovers its URLs as
//! it goes cannot close that channel safely (when is the last link found?) and cannot be polite
//! per host with it. Here one coordinator owns all scheduling state (the frontier, the
//! in-flight set) and decides, with no locks: it starts a task per request while the global
//! and per-host limits allow, and the crawl is over exactly when nothing is queued or in
//! flight.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, ready};

use futures::stream::FusedStream;
use futures::{FutureExt, Stream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use url::Url;
use weft_core::context::Context;

use super::config::CrawlConfig;
use super::error::CrawlError;
use super::fetch::{Env, PageOutcome, fetch_page, fetch_robots};
use super::frontier::{Dispatch, Frontier, HostId, Job, Pushed};
use super::record::{Counters, PageError, PageRecord, Progress, StopReason, Summary};
use super::robots::Robots;
use super::url::{Scope, normalize};

/// A configured crawler; [`crawl`](Crawler::crawl) starts crawls with it. Crawls started from
/// one crawler share its HTTP connection pool.
///
/// ```
/// use futures::StreamExt;
/// use weft_apps::crawl::{CrawlConfig, Crawler, StopReason};
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
}

impl Crawler {
    /// Builds a crawler (and its HTTP client: rustls, no automatic redirects, the configured
    /// timeouts and user agent).
    ///
    /// # Errors
    ///
    /// [`CrawlError::Client`] if the HTTP client cannot be built.
    pub fn new(config: CrawlConfig) -> Result<Self, CrawlError> {
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            // Redirects are followed by hand: each hop is checked against scope, robots.txt
            // and the set of URLs already seen.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.per_host.get())
            .build()
            .map_err(CrawlError::Client)?;
        Ok(Crawler { client, config })
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
    /// robots.txt allows); links are followed if they are in scope (allowed domains, include
    /// and exclude patterns), within the depth limit, and not seen before.
    ///
    /// # Errors
    ///
    /// [`CrawlError::NoSeeds`], or [`CrawlError::InvalidSeed`] for a seed that is not an
    /// absolute http(s) URL.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    pub fn crawl<I, S>(&self, ctx: &Context, seeds: I) -> Result<Crawl, CrawlError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut urls = Vec::new();
        for seed in seeds {
            let seed = seed.as_ref();
            let url = Url::parse(seed.trim()).map_err(|e| CrawlError::InvalidSeed {
                seed: seed.to_owned(),
                reason: e.to_string(),
            })?;
            let url = normalize(url).ok_or_else(|| CrawlError::InvalidSeed {
                seed: seed.to_owned(),
                reason: "not an http(s) url with a host".to_owned(),
            })?;
            urls.push(url);
        }
        if urls.is_empty() {
            return Err(CrawlError::NoSeeds);
        }
        let domains = if self.config.allowed_domains.is_empty() {
            urls.iter()
                .filter_map(|u| u.host_str().map(str::to_owned))
                .collect()
        } else {
            self.config.allowed_domains.clone()
        };
        let scope = Scope::new(
            domains,
            self.config.include.clone(),
            self.config.exclude.clone(),
        );
        let env = Arc::new(Env {
            client: self.client.clone(),
            config: self.config.clone(),
            scope,
            seen: Mutex::new(HashSet::new()),
        });
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let task = tokio::spawn(coordinate(
            env,
            ctx.clone(),
            urls,
            tx,
            Arc::clone(&counters),
        ));
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
    /// use weft_apps::crawl::{CrawlConfig, Crawler};
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

    /// The totals, once the stream has ended (`None` before, or if the crawl task panicked).
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

enum TaskDone {
    // Boxed: a page outcome is ~300 bytes, a robots verdict far less.
    Page(HostId, Box<PageOutcome>),
    Robots(HostId, Robots),
}

/// What the coordinator's wait ended with.
enum Woke {
    Cancelled,
    Task(TaskDone),
    Timer,
}

async fn coordinate(
    env: Arc<Env>,
    ctx: Context,
    seeds: Vec<Url>,
    tx: mpsc::Sender<Event>,
    counters: Arc<Counters>,
) {
    let started = Instant::now();
    let config = &env.config;
    let obey_robots = config.respect_robots;
    let mut frontier = Frontier::new(
        config.per_host.get(),
        config.delay,
        config.jitter,
        config.max_crawl_delay,
    );
    let mut tasks: JoinSet<TaskDone> = JoinSet::new();
    let mut dispatched: u64 = 0;
    let budget_spent = |dispatched: u64| config.max_pages.is_some_and(|max| dispatched >= max);
    // Relaxed everywhere: the counters are for display and the summary; the summary is read
    // after the channel hand-off, which orders it.
    let add = |counter: &std::sync::atomic::AtomicU64, n: u64| {
        counter.fetch_add(n, Ordering::Relaxed);
    };

    let now = Instant::now();
    for seed in seeds {
        if env.mark_seen(&seed) {
            let job = Job {
                url: seed,
                depth: 0,
                redirects: 0,
            };
            if frontier.push(job, obey_robots, now) == Pushed::RobotsDenied {
                add(&counters.robots_denied, 1);
            }
        }
    }

    let done = ctx.done();
    tokio::pin!(done);
    let mut stop = StopReason::Finished;
    loop {
        // Start as many requests as the limits allow.
        let now = Instant::now();
        frontier.wake(now);
        while tasks.len() < config.concurrency.get() && !budget_spent(dispatched) {
            match frontier.next(now) {
                Some(Dispatch::Robots(host, url)) => {
                    let env = Arc::clone(&env);
                    tasks.spawn(async move {
                        let robots = AssertUnwindSafe(fetch_robots(env, url))
                            .catch_unwind()
                            .await
                            .unwrap_or(Robots::AllowAll);
                        TaskDone::Robots(host, robots)
                    });
                }
                Some(Dispatch::Page(host, job, robots)) => {
                    dispatched += 1;
                    let env = Arc::clone(&env);
                    tasks.spawn(async move {
                        let (url, depth) = (job.url.to_string(), job.depth);
                        let outcome = AssertUnwindSafe(fetch_page(env, job, robots))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| {
                                let mut record = PageRecord::new(url, depth);
                                record.error = Some(PageError::Panicked);
                                PageOutcome {
                                    record,
                                    follow: Vec::new(),
                                    redirect: None,
                                }
                            });
                        TaskDone::Page(host, Box::new(outcome))
                    });
                }
                None => break,
            }
        }
        let queued = if budget_spent(dispatched) {
            0
        } else {
            frontier.queued()
        };
        counters.queued.store(queued as u64, Ordering::Relaxed);
        counters
            .in_flight
            .store(tasks.len() as u64, Ordering::Relaxed);
        let wake = frontier.next_wake();
        if tasks.is_empty() && (queued == 0 || wake.is_none()) {
            // Nothing in flight and nothing that a timer will release: the crawl is over.
            debug_assert!(queued == 0, "queued work with nothing to release it");
            if budget_spent(dispatched) {
                stop = StopReason::PageLimit;
            }
            break;
        }

        let woke = tokio::select! {
            biased;
            () = &mut done => Woke::Cancelled,
            Some(joined) = tasks.join_next() => match joined {
                Ok(task) => Woke::Task(task),
                // Tasks catch their panics and are aborted only when the JoinSet is dropped.
                Err(_) => continue,
            },
            () = tokio::time::sleep_until(wake.unwrap_or(now)), if wake.is_some() => Woke::Timer,
        };
        let page = match woke {
            Woke::Cancelled => {
                stop = StopReason::Cancelled(ctx.cause().map(|c| c.to_string()));
                break;
            }
            Woke::Timer => continue,
            Woke::Task(TaskDone::Robots(host, robots)) => {
                let denied = frontier.robots_done(host, robots);
                add(&counters.robots_denied, denied as u64);
                continue;
            }
            Woke::Task(TaskDone::Page(host, outcome)) => {
                frontier.complete(host);
                let PageOutcome {
                    record,
                    follow,
                    redirect,
                } = *outcome;
                add(&counters.pages, 1);
                add(&counters.bytes, record.bytes);
                if record.error.is_some() {
                    add(&counters.errors, 1);
                }
                let now = Instant::now();
                let next_depth = record.depth + 1;
                let mut jobs: Vec<Job> = Vec::new();
                if !budget_spent(dispatched) {
                    if config.max_depth.is_none_or(|max| next_depth <= max) {
                        jobs.extend(follow.into_iter().map(|url| Job {
                            url,
                            depth: next_depth,
                            redirects: 0,
                        }));
                    }
                    jobs.extend(redirect);
                }
                if !jobs.is_empty() {
                    let mut seen = env
                        .seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    jobs.retain(|job| seen.insert(job.url.as_str().into()));
                }
                for job in jobs {
                    if frontier.push(job, obey_robots, now) == Pushed::RobotsDenied {
                        add(&counters.robots_denied, 1);
                    }
                }
                record
            }
        };
        // Hand the page to the reader; a slow reader holds the crawl here (backpressure).
        let sent = tokio::select! {
            biased;
            () = &mut done => None,
            sent = tx.send(Event::Page(page)) => Some(sent.is_ok()),
        };
        match sent {
            Some(true) => {}
            Some(false) => return, // The Crawl handle is gone; nobody to report to.
            None => {
                stop = StopReason::Cancelled(ctx.cause().map(|c| c.to_string()));
                break;
            }
        }
    }

    let abandoned = tasks.len() as u64;
    tasks.abort_all();
    counters.in_flight.store(0, Ordering::Relaxed);
    let summary = Summary {
        stats: Progress(Arc::clone(&counters)).snapshot(),
        abandoned,
        elapsed: started.elapsed(),
        stop,
    };
    let _ = tx.send(Event::Done(summary)).await;
}
