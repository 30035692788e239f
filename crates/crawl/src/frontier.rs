//! The frontier: queued URLs per host, and which host may start a request next.
//!
//! # Invariants
//!
//! 1. A host's `in_flight` never exceeds `per_host`: `next` only hands out work for a host
//!    below its limit, and every hand-out is matched by exactly one `complete` or `robots_done`.
//! 2. Requests to one host start at least its delay apart: a hand-out moves `next_start` to
//!    `now + delay + jitter`, and `next` hands out nothing for a host before its `next_start`.
//! 3. No page of a host is handed out before its robots.txt verdict (when robots are obeyed):
//!    the first hand-out for a host is its robots.txt request, and its pages wait until
//!    `robots_done` (which drops the ones it disallows).
//! 4. `ready` holds each host at most once (`in_ready`); a host that is not in `ready` is
//!    idle, at its limit, waiting for robots, or waiting for a timer in `timers`.
//!
//! Only the crawl's scheduler (the pipeline's generator) touches the frontier, so it needs no
//! locks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use super::robots::Robots;

/// A URL waiting to be fetched.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) url: Url,
    pub(crate) depth: u32,
    /// Cross-host redirects already followed to reach this URL.
    pub(crate) redirects: u32,
    pub(crate) kind: JobKind,
}

/// What a queued URL is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// A page: a seed, a link, a redirect's target.
    Page,
    /// A page listed by the sitemap at this URL.
    Listed(Arc<str>),
    /// A sitemap document, `level` indexes below the one robots.txt (or `/sitemap.xml`) gave.
    Sitemap { level: u32 },
}

pub(crate) type HostId = usize;

/// What the scheduler should start next (the crawl pipeline's input item).
#[derive(Debug)]
pub(crate) enum Dispatch {
    /// Fetch robots.txt for the host.
    Robots(HostId, Url),
    /// Fetch a page, with the host's robots rules for same-host redirects.
    Page(HostId, Job, Arc<Robots>),
    /// Fetch a sitemap document, with the host's robots rules for same-host redirects.
    Sitemap(HostId, Job, Arc<Robots>),
}

/// The answer to `push`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    RobotsDenied,
}

#[derive(Debug)]
enum RobotsState {
    /// Not fetched yet (and not being fetched).
    Unknown,
    Fetching,
    Known(Arc<Robots>),
}

#[derive(Debug)]
struct Host {
    origin: Url,
    queue: VecDeque<Job>,
    in_flight: usize,
    next_start: Instant,
    delay: Duration,
    robots: RobotsState,
    in_ready: bool,
}

#[derive(Debug)]
pub(crate) struct Frontier {
    per_host: usize,
    delay: Duration,
    jitter: Duration,
    max_crawl_delay: Duration,
    ids: HashMap<String, HostId>,
    hosts: Vec<Host>,
    ready: VecDeque<HostId>,
    timers: BinaryHeap<Reverse<(Instant, HostId)>>,
    queued: usize,
}

impl Frontier {
    pub(crate) fn new(
        per_host: usize,
        delay: Duration,
        jitter: Duration,
        max_crawl_delay: Duration,
    ) -> Self {
        Frontier {
            per_host,
            delay,
            jitter,
            max_crawl_delay,
            ids: HashMap::new(),
            hosts: Vec::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            queued: 0,
        }
    }

    /// URLs waiting (not yet handed out).
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Queues a URL (already deduplicated and in scope). With `obey_robots` false, hosts start
    /// with allow-all rules and no robots.txt request.
    pub(crate) fn push(&mut self, job: Job, obey_robots: bool, now: Instant) -> Pushed {
        let key = super::url::host_key(&job.url);
        let id = match self.ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.hosts.len();
                let mut origin = job.url.clone();
                origin.set_path("/");
                origin.set_query(None);
                self.hosts.push(Host {
                    origin,
                    queue: VecDeque::new(),
                    in_flight: 0,
                    next_start: now,
                    delay: self.delay,
                    robots: if obey_robots {
                        RobotsState::Unknown
                    } else {
                        RobotsState::Known(Arc::new(Robots::AllowAll))
                    },
                    in_ready: false,
                });
                self.ids.insert(key, id);
                id
            }
        };
        let host = &mut self.hosts[id];
        if let RobotsState::Known(robots) = &host.robots
            && !robots.allows(&job.url)
        {
            return Pushed::RobotsDenied;
        }
        host.queue.push_back(job);
        self.queued += 1;
        self.make_ready(id);
        Pushed::Queued
    }

    fn make_ready(&mut self, id: HostId) {
        let host = &mut self.hosts[id];
        if !host.in_ready {
            host.in_ready = true;
            self.ready.push_back(id);
        }
    }

    fn start(&mut self, id: HostId, now: Instant) {
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            use rand::Rng;
            self.jitter.mul_f64(rand::rng().random_range(0.0..=1.0))
        };
        let host = &mut self.hosts[id];
        host.in_flight += 1;
        host.next_start = now + host.delay + jitter;
    }

    /// The next request to start, round robin over the hosts that may start one now.
    pub(crate) fn next(&mut self, now: Instant) -> Option<Dispatch> {
        // Each turn either hands out work (and puts the host back at the end of the ring) or
        // takes a host off the ring, so the loop ends.
        while let Some(id) = self.ready.pop_front() {
            let per_host = self.per_host;
            let host = &mut self.hosts[id];
            host.in_ready = false;
            if host.queue.is_empty() || host.in_flight >= per_host {
                // Idle, or `complete` puts it back.
                continue;
            }
            if matches!(host.robots, RobotsState::Fetching) {
                // `robots_done` puts it back.
                continue;
            }
            if host.next_start > now {
                self.timers.push(Reverse((host.next_start, id)));
                continue;
            }
            if matches!(host.robots, RobotsState::Unknown) {
                host.robots = RobotsState::Fetching;
                let url = host
                    .origin
                    .join("/robots.txt")
                    .unwrap_or_else(|_| host.origin.clone());
                self.start(id, now);
                return Some(Dispatch::Robots(id, url));
            }
            let RobotsState::Known(robots) = &host.robots else {
                unreachable!("unknown and fetching were handled above");
            };
            let robots = Arc::clone(robots);
            let job = host.queue.pop_front()?;
            self.queued -= 1;
            self.start(id, now);
            self.make_ready(id);
            return Some(if matches!(job.kind, JobKind::Sitemap { .. }) {
                Dispatch::Sitemap(id, job, robots)
            } else {
                Dispatch::Page(id, job, robots)
            });
        }
        None
    }

    /// The host's origin (`scheme://host:port/`).
    pub(crate) fn origin(&self, id: HostId) -> &Url {
        &self.hosts[id].origin
    }

    /// A page or sitemap request of the host ended.
    pub(crate) fn complete(&mut self, id: HostId) {
        self.hosts[id].in_flight -= 1;
        self.make_ready(id);
    }

    /// The host's robots.txt request ended with this verdict. Returns how many queued URLs
    /// it disallowed (they are dropped).
    pub(crate) fn robots_done(&mut self, id: HostId, robots: Robots) -> usize {
        let host = &mut self.hosts[id];
        host.in_flight -= 1;
        if let Some(secs) = robots.crawl_delay() {
            let asked = Duration::try_from_secs_f32(secs).unwrap_or(self.max_crawl_delay);
            host.delay = host.delay.max(asked.min(self.max_crawl_delay));
        }
        let before = host.queue.len();
        host.queue.retain(|job| robots.allows(&job.url));
        let denied = before - host.queue.len();
        self.queued -= denied;
        host.robots = RobotsState::Known(Arc::new(robots));
        self.make_ready(id);
        denied
    }

    /// When the earliest waiting host may start again, if any waits.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Moves the hosts whose wait is over back to the ready ring.
    pub(crate) fn wake(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.make_ready(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(s: &str) -> Job {
        Job {
            url: Url::parse(s).unwrap(),
            depth: 0,
            redirects: 0,
            kind: JobKind::Page,
        }
    }

    fn page(d: Option<Dispatch>) -> (HostId, String) {
        match d {
            Some(Dispatch::Page(id, job, _)) => (id, job.url.to_string()),
            other => panic!("expected a page, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_host_limit_holds_until_a_request_completes() {
        let mut f = Frontier::new(2, Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let now = Instant::now();
        for i in 0..5 {
            f.push(job(&format!("http://a.test/{i}")), false, now);
        }
        let (a, _) = page(f.next(now));
        page(f.next(now));
        assert!(
            f.next(now).is_none(),
            "a third request would exceed per_host = 2"
        );
        f.complete(a);
        assert_eq!(page(f.next(now)).1, "http://a.test/2");
        assert_eq!(f.queued(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn hosts_take_turns() {
        let mut f = Frontier::new(8, Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let now = Instant::now();
        for i in 0..3 {
            f.push(job(&format!("http://a.test/{i}")), false, now);
            f.push(job(&format!("http://b.test/{i}")), false, now);
        }
        let hosts: Vec<String> = (0..6)
            .map(|_| page(f.next(now)).1[7..13].to_owned())
            .collect();
        assert_eq!(
            hosts,
            ["a.test", "b.test", "a.test", "b.test", "a.test", "b.test"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delay_spaces_request_starts_per_host() {
        let delay = Duration::from_millis(100);
        let mut f = Frontier::new(8, delay, Duration::ZERO, Duration::ZERO);
        let t0 = Instant::now();
        f.push(job("http://a.test/1"), false, t0);
        f.push(job("http://a.test/2"), false, t0);
        f.push(job("http://b.test/1"), false, t0);
        page(f.next(t0));
        page(f.next(t0));
        assert!(f.next(t0).is_none(), "a.test must wait for its delay");
        assert_eq!(f.next_wake(), Some(t0 + delay));
        tokio::time::advance(Duration::from_millis(99)).await;
        f.wake(Instant::now());
        assert!(f.next(Instant::now()).is_none(), "still 1 ms early");
        tokio::time::advance(Duration::from_millis(1)).await;
        f.wake(Instant::now());
        assert_eq!(page(f.next(Instant::now())).1, "http://a.test/2");
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_adds_at_most_its_bound() {
        let delay = Duration::from_millis(100);
        let jitter = Duration::from_millis(50);
        let mut f = Frontier::new(8, delay, jitter, Duration::ZERO);
        let t0 = Instant::now();
        f.push(job("http://a.test/1"), false, t0);
        f.push(job("http://a.test/2"), false, t0);
        page(f.next(t0));
        assert!(f.next(t0).is_none());
        let wake = f.next_wake().unwrap();
        assert!(
            wake >= t0 + delay && wake <= t0 + delay + jitter,
            "{:?}",
            wake - t0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn robots_first_then_pages_it_allows() {
        let mut f = Frontier::new(4, Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let now = Instant::now();
        f.push(job("http://a.test/ok"), true, now);
        f.push(job("http://a.test/private/x"), true, now);
        let Some(Dispatch::Robots(id, url)) = f.next(now) else {
            panic!("the first request to a host must be robots.txt");
        };
        assert_eq!(url.as_str(), "http://a.test/robots.txt");
        assert!(f.next(now).is_none(), "pages wait for the robots verdict");
        let robots = Robots::parse("weft", b"User-agent: *\nDisallow: /private/");
        assert_eq!(f.robots_done(id, robots), 1);
        assert_eq!(page(f.next(now)).1, "http://a.test/ok");
        assert!(f.next(now).is_none());
        assert_eq!(
            f.push(job("http://a.test/private/y"), true, now),
            Pushed::RobotsDenied
        );
    }

    #[tokio::test(start_paused = true)]
    async fn crawl_delay_raises_the_host_delay_up_to_the_cap() {
        let cap = Duration::from_secs(2);
        let mut f = Frontier::new(4, Duration::ZERO, Duration::ZERO, cap);
        let now = Instant::now();
        f.push(job("http://a.test/1"), true, now);
        f.push(job("http://a.test/2"), true, now);
        let Some(Dispatch::Robots(id, _)) = f.next(now) else {
            panic!("robots first");
        };
        f.robots_done(id, Robots::parse("weft", b"User-agent: *\nCrawl-delay: 60"));
        // The robots request itself started at `now` with no delay, so the first page may go.
        page(f.next(now));
        assert!(f.next(now).is_none());
        assert_eq!(f.next_wake(), Some(now + cap));
    }
}
