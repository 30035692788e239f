//! The crawler against a local fixture site (loopback only): limits, dedup, robots.txt,
//! politeness, failures, and cancellation.

mod crawl_fixture;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::time::Duration;

use crawl_fixture::{Spec, start};
use futures::StreamExt;
use weft_core::context::Context;
use weft_crawl::{CrawlConfig, Crawler, PageError, PageRecord, StopReason, Summary};

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("not zero")
}

/// Small timeouts and backoff so the failure paths run fast.
fn test_config() -> CrawlConfig {
    CrawlConfig::new()
        .timeouts(Duration::from_millis(500), Duration::from_millis(500))
        .retries(1, Duration::from_millis(1), Duration::from_millis(5))
        .max_redirects(5)
        .max_body(1 << 20)
}

async fn crawl_all(config: CrawlConfig, seeds: &[String]) -> (Vec<PageRecord>, Summary) {
    let crawler = Crawler::new(config).expect("client");
    let mut crawl = crawler
        .crawl(&Context::background(), seeds)
        .expect("valid seeds");
    let mut pages = Vec::new();
    while let Some(page) = crawl.next().await {
        pages.push(page);
    }
    let summary = crawl
        .summary()
        .cloned()
        .expect("a finished crawl has a summary");
    (pages, summary)
}

fn by_path<'a>(pages: &'a [PageRecord], base: &str) -> HashMap<String, &'a PageRecord> {
    pages
        .iter()
        .map(|p| (p.url.strip_prefix(base).unwrap_or(&p.url).to_owned(), p))
        .collect()
}

#[tokio::test]
async fn full_crawl_fetches_each_url_once_and_records_every_kind_of_page() {
    let other = start(Spec {
        ip: [127, 0, 0, 2],
        ..Spec::default()
    })
    .await;
    let site = start(Spec {
        other_host: Some(other.base()),
        ..Spec::default()
    })
    .await;
    let (pages, summary) = crawl_all(test_config(), &[site.url("/")]).await;
    let base = site.base();
    let pages_by_path = by_path(&pages, &base);

    // Dedup: one record per URL, and the server saw each path at most once (robots.txt too).
    assert_eq!(pages_by_path.len(), pages.len(), "a URL was reported twice");
    for (path, hits) in site.seen.paths() {
        let expected = if path == "/flaky" { 2 } else { 1 };
        assert_eq!(hits, expected, "{path} requested {hits} times");
    }
    // Cycles, relative links, absolute links, case and fragment variants all led to the same
    // pages, and the whole chain was reached.
    for path in ["/", "/cycle/a", "/cycle/b", "/chain/10", "/chain/5"] {
        assert!(pages_by_path.contains_key(path), "{path} not crawled");
    }
    assert_eq!(pages_by_path["/"].title.as_deref(), Some("Hub"));
    assert_eq!(pages_by_path["/chain/3"].depth, 3);

    // Other hosts are not followed by default.
    assert_eq!(
        other.seen.total.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // robots.txt: the private subtree was never requested.
    assert_eq!(site.seen.hits("/private/secret"), 0);
    assert!(summary.stats.robots_denied >= 1);

    // Broken link.
    let broken = pages_by_path["/broken"];
    assert_eq!(
        (broken.status, broken.error.clone()),
        (Some(404), Some(PageError::Status(404)))
    );
    // Transient 503, retried once.
    let flaky = pages_by_path["/flaky"];
    assert_eq!(
        (flaky.status, flaky.attempts, &flaky.error),
        (Some(200), 2, &None)
    );
    // Redirect loop: each hop requested once, ending at the already-seen URL.
    let lp = pages_by_path["/redirect/loop1"];
    assert_eq!(lp.status, Some(302));
    assert_eq!(lp.final_url, format!("{base}/redirect/loop1"));
    assert!(
        !pages_by_path.contains_key("/redirect/loop2"),
        "the hop is part of loop1's record"
    );
    // Endless redirects stop at the limit.
    let far = pages_by_path["/redirect/far/0"];
    assert_eq!(far.error, Some(PageError::TooManyRedirects(5)));
    assert_eq!(site.seen.hits("/redirect/far/5"), 1);
    assert_eq!(site.seen.hits("/redirect/far/6"), 0);
    // Huge page: cut at the cap, the link past it never seen.
    let huge = pages_by_path["/huge"];
    assert_eq!((huge.bytes, huge.truncated), (1 << 20, true));
    assert_eq!(huge.title.as_deref(), Some("Huge"));
    assert_eq!(site.seen.hits("/after-huge"), 0);
    // Binary: recorded, not parsed.
    let bin = pages_by_path["/binary.bin"];
    assert_eq!(
        bin.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        (bin.bytes, bin.links, bin.title.as_deref()),
        (100_000, 0, None)
    );
    assert_eq!(site.seen.hits("/from-binary"), 0);
    // Malformed HTML still parses.
    let mal = pages_by_path["/malformed"];
    assert_eq!(mal.links, 2);
    assert_eq!(mal.title.as_deref(), Some("Mal<b>formed"));
    // <base href> moved the relative link.
    assert_eq!(pages_by_path["/based/index"].links, 1);
    assert!(pages_by_path.contains_key("/chain/5"));
    // Slow pages are simply slower.
    assert_eq!(pages_by_path["/slow"].status, Some(200));

    assert_eq!(summary.stop, StopReason::Finished);
    assert_eq!(summary.stats.pages, pages.len() as u64);
    let errors = pages.iter().filter(|p| p.error.is_some()).count() as u64;
    assert_eq!(summary.stats.errors, errors);
}

#[tokio::test]
async fn depth_limit_stops_following_links() {
    let site = start(Spec::default()).await;
    let (pages, _) = crawl_all(test_config().max_depth(2), &[site.url("/chain/1")]).await;
    let urls: Vec<(&str, u32)> = pages.iter().map(|p| (p.url.as_str(), p.depth)).collect();
    assert_eq!(
        urls.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
        [0, 1, 2],
        "{urls:?}"
    );
    assert_eq!(
        site.seen.hits("/chain/3"),
        1,
        "depth 2 page parsed, its link seen"
    );
    assert_eq!(site.seen.hits("/chain/4"), 0, "depth 3 not followed");
}

#[tokio::test]
async fn depth_zero_fetches_only_the_seeds() {
    let site = start(Spec::default()).await;
    let seeds = [site.url("/"), site.url("/cycle/a")];
    let (pages, summary) = crawl_all(test_config().max_depth(0), &seeds).await;
    let got: HashSet<&str> = pages.iter().map(|p| p.url.as_str()).collect();
    let want: HashSet<&str> = seeds.iter().map(String::as_str).collect();
    assert_eq!(got, want);
    assert_eq!(summary.stop, StopReason::Finished);
}

#[tokio::test]
async fn page_limit_is_exact_on_an_endless_site() {
    let site = start(Spec::default()).await;
    let config = test_config().max_pages(25).concurrency(nz(8));
    let (pages, summary) = crawl_all(config, &[site.url("/inf/0")]).await;
    assert_eq!(pages.len(), 25);
    assert_eq!(summary.stop, StopReason::PageLimit);
    // robots.txt plus 25 pages were requested, nothing else.
    assert_eq!(
        site.seen.total.load(std::sync::atomic::Ordering::SeqCst),
        26
    );
}

#[tokio::test]
async fn ignore_robots_fetches_the_disallowed_subtree() {
    let site = start(Spec::default()).await;
    let config = test_config().respect_robots(false).max_depth(1);
    let (_, summary) = crawl_all(config, &[site.url("/")]).await;
    assert_eq!(site.seen.hits("/private/secret"), 1);
    assert_eq!(site.seen.hits("/robots.txt"), 0);
    assert_eq!(summary.stats.robots_denied, 0);
}

#[tokio::test]
async fn robots_txt_disallowing_a_seed_fetches_nothing_but_robots() {
    let site = start(Spec::default()).await;
    let (pages, summary) = crawl_all(test_config(), &[site.url("/private/a")]).await;
    assert!(pages.is_empty());
    assert_eq!(summary.stats.robots_denied, 1);
    assert_eq!(
        site.seen.paths().keys().collect::<Vec<_>>(),
        ["/robots.txt"]
    );
}

#[tokio::test]
async fn allowed_domains_and_patterns_choose_the_links() {
    let other = start(Spec {
        ip: [127, 0, 0, 2],
        robots: None,
        ..Spec::default()
    })
    .await;
    let site = start(Spec {
        other_host: Some(other.base()),
        ..Spec::default()
    })
    .await;
    let config = test_config()
        .max_depth(1)
        .allow_domains(["127.0.0.1", "127.0.0.2"])
        .include(vec![
            regex::Regex::new(r"/(cycle|chain)/|127\.0\.0\.2").unwrap(),
        ])
        .exclude(vec![regex::Regex::new(r"/cycle/b").unwrap()]);
    let (pages, _) = crawl_all(config, &[site.url("/")]).await;
    let mut urls: Vec<String> = pages.iter().map(|p| p.url.clone()).collect();
    urls.sort();
    let mut want = vec![
        site.url("/"),
        site.url("/chain/1"),
        site.url("/cycle/a"),
        other.url("/"),
    ];
    want.sort();
    assert_eq!(urls, want);
    // The other host got its own robots.txt request (404 there) before its page.
    assert_eq!(other.seen.hits("/robots.txt"), 1);
}

#[tokio::test]
async fn per_host_concurrency_is_never_exceeded() {
    // The site holds each request until 4 are in flight (or 25 ms pass): a crawler that
    // allowed 4 at once would be caught.
    let site = start(Spec {
        graph: 60,
        hold_until: Some(4),
        hold_max: Duration::from_millis(25),
        ..Spec::default()
    })
    .await;
    let config = test_config()
        .concurrency(nz(32))
        .per_host(nz(3))
        .timeouts(Duration::from_secs(5), Duration::from_secs(5));
    let (pages, _) = crawl_all(config, &[site.url("/p/0")]).await;
    assert_eq!(pages.len(), 60);
    assert!(
        site.seen.max_in_flight() <= 3,
        "max {}",
        site.seen.max_in_flight()
    );
}

#[tokio::test]
async fn delay_spaces_the_requests_to_a_host_on_the_server_clock() {
    // The scheduler emits a request only when the host's delay has passed, and with fewer
    // requests outstanding than fetch workers it starts at once; so the server must see them
    // at least `delay` apart (robots.txt included), with workers to spare. The bound is one
    // sided, with half the delay as slack for scheduling noise between two arrivals: a crawler
    // that ignored the delay (or queued requests and released them together) would show gaps
    // of about a millisecond.
    let site = start(Spec {
        graph: 4,
        ..Spec::default()
    })
    .await;
    let delay = Duration::from_millis(200);
    let config = test_config()
        .concurrency(nz(8))
        .per_host(nz(8))
        .delay(delay, Duration::ZERO)
        .timeouts(Duration::from_secs(5), Duration::from_secs(5));
    let (pages, _) = crawl_all(config, &[site.url("/p/0")]).await;
    assert_eq!(pages.len(), 4);
    let arrivals = site.seen.arrivals.lock().unwrap().clone();
    let paths: Vec<&str> = arrivals.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths.len(), 5, "robots.txt and 4 pages: {paths:?}");
    assert_eq!(paths[0], "/robots.txt");
    for pair in arrivals.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= delay / 2,
            "{} came {gap:?} after {}",
            pair[1].0,
            pair[0].0
        );
    }
    let span = arrivals[4].1 - arrivals[0].1;
    assert!(span >= delay * 4 - delay / 2, "4 gaps took {span:?}");
}

#[tokio::test]
async fn global_concurrency_is_never_exceeded_across_hosts() {
    let a = start(Spec {
        graph: 30,
        hold_until: Some(3),
        hold_max: Duration::from_millis(25),
        ..Spec::default()
    })
    .await;
    let b = start(Spec {
        graph: 30,
        hold_until: Some(3),
        hold_max: Duration::from_millis(25),
        ..Spec::default()
    })
    .await;
    let config = test_config()
        .concurrency(nz(2))
        .per_host(nz(8))
        .allow_domains(["127.0.0.1"])
        .timeouts(Duration::from_secs(5), Duration::from_secs(5));
    let (pages, _) = crawl_all(config, &[a.url("/p/0"), b.url("/p/0")]).await;
    assert_eq!(pages.len(), 60);
    // Each site alone stays within 2; if the global limit leaked, one site would see 3.
    assert!(a.seen.max_in_flight() <= 2 && b.seen.max_in_flight() <= 2);
}

#[tokio::test]
async fn a_stalled_page_times_out_after_its_retries() {
    let site = start(Spec::default()).await;
    let config = test_config().timeouts(Duration::from_millis(100), Duration::from_millis(100));
    let (pages, summary) = crawl_all(config, &[site.url("/stall")]).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].error, Some(PageError::Timeout));
    assert_eq!(pages[0].attempts, 2);
    assert_eq!(site.seen.hits("/stall"), 2);
    assert_eq!(summary.stats.errors, 1);
}

#[tokio::test]
async fn unreachable_host_is_reported_not_hung() {
    // Bind then drop a listener: nothing listens on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (pages, _) = crawl_all(test_config(), &[format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(pages.len(), 1);
    assert!(
        matches!(pages[0].error, Some(PageError::Connect(_))),
        "{:?}",
        pages[0].error
    );
}

#[tokio::test]
async fn cancelling_ends_the_stream_after_the_pages_crawled_so_far() {
    let site = start(Spec::default()).await;
    let (ctx, cancel) = Context::background().with_cancel();
    let crawler = Crawler::new(test_config().concurrency(nz(4))).unwrap();
    let mut crawl = crawler.crawl(&ctx, [site.url("/inf/0")]).unwrap();
    let mut pages = Vec::new();
    while let Some(page) = crawl.next().await {
        pages.push(page);
        if pages.len() == 20 {
            cancel.cancel_with("enough");
        }
    }
    let summary = crawl.summary().cloned().unwrap();
    assert_eq!(
        summary.stop,
        StopReason::Cancelled(Some("enough".to_owned()))
    );
    assert!(pages.len() >= 20);
    assert_eq!(
        summary.stats.pages,
        pages.len() as u64,
        "every crawled page was delivered"
    );
    let distinct: HashSet<&str> = pages.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(distinct.len(), pages.len());
}

#[tokio::test]
async fn a_stalled_reader_holds_the_crawl_and_it_resumes_without_deadlock() {
    // The sink feeds links back to the scheduler and waits on the reader: with the reader
    // idle, the crawl may fill the reader's channel (256 pages), hold one more page in the
    // sink and finish its 64 outstanding requests, and then must start nothing new; once the
    // reader reads again, the feedback loop must pick up where it stopped and finish.
    const READER_CHANNEL: usize = 256;
    const JOBS: usize = 64;
    let site = start(Spec {
        graph: 600,
        ..Spec::default()
    })
    .await;
    let config = test_config()
        .concurrency(nz(JOBS))
        .per_host(nz(JOBS))
        .timeouts(Duration::from_secs(5), Duration::from_secs(5));
    let crawler = Crawler::new(config).unwrap();
    let mut crawl = crawler
        .crawl(&Context::background(), [site.url("/p/0")])
        .unwrap();
    // With the reader idle the crawl makes exactly robots.txt + 256 + 1 + 64 = 322 requests
    // (the site has far more pages) and then stops: wait for them to arrive and be answered,
    // and no request may follow.
    let cap = 1 + READER_CHANNEL + 1 + JOBS;
    tokio::time::timeout(Duration::from_secs(10), async {
        site.seen.wait_for_requests(cap).await;
        site.seen.wait_idle().await;
    })
    .await
    .expect("the crawl stalled before filling the reader's channel");
    let requested = site.seen.total.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(requested, cap, "requests made with the reader idle");
    let mut urls = HashSet::new();
    while let Some(page) = crawl.next().await {
        assert_eq!(page.status, Some(200), "{page:?}");
        assert!(urls.insert(page.url.clone()), "{} twice", page.url);
    }
    assert_eq!(urls.len(), 600);
    let summary = crawl.summary().unwrap();
    assert_eq!(
        (summary.stats.pages, &summary.stop),
        (600, &StopReason::Finished)
    );
}

#[tokio::test]
async fn next_page_is_cancel_safe() {
    let site = start(Spec::default()).await;
    let crawler = Crawler::new(test_config().max_depth(3)).unwrap();
    let mut crawl = crawler
        .crawl(&Context::background(), [site.url("/chain/1")])
        .unwrap();
    let mut pages = Vec::new();
    loop {
        // Race every receive against an immediately ready future, so many calls are
        // cancelled mid-wait; no page may be lost.
        tokio::select! {
            biased;
            page = crawl.next_page() => match page {
                Some(p) => pages.push(p.url),
                None => break,
            },
            () = tokio::task::yield_now() => {}
        }
    }
    assert_eq!(
        pages,
        (1..=4)
            .map(|n| site.url(&format!("/chain/{n}")))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn dropping_the_crawl_aborts_requests_in_flight() {
    let site = start(Spec::default()).await;
    let config = test_config().timeouts(Duration::from_secs(60), Duration::from_secs(5));
    let crawler = Crawler::new(config).unwrap();
    let crawl = crawler
        .crawl(&Context::background(), [site.url("/stall")])
        .unwrap();
    // robots.txt, then the page that never answers.
    site.seen.wait_for_requests(2).await;
    assert_eq!(site.seen.hits("/stall"), 1);
    drop(crawl);
    // Only an aborted request (its connection closed) leaves the server idle before the
    // 60 s timeout.
    tokio::time::timeout(Duration::from_secs(5), site.seen.wait_idle())
        .await
        .expect("the stalled request was not aborted");
}

#[tokio::test]
async fn invalid_seeds_are_handed_back() {
    let crawler = Crawler::new(CrawlConfig::new()).unwrap();
    let ctx = Context::background();
    let err = crawler.crawl(&ctx, ["not a url"]).unwrap_err();
    assert!(
        matches!(err, weft_crawl::CrawlError::InvalidSeed { ref seed, .. } if seed == "not a url")
    );
    let err = crawler.crawl(&ctx, ["ftp://example.com/"]).unwrap_err();
    assert!(matches!(err, weft_crawl::CrawlError::InvalidSeed { .. }));
    let err = crawler.crawl(&ctx, Vec::<String>::new()).unwrap_err();
    assert!(matches!(err, weft_crawl::CrawlError::NoSeeds));
}
