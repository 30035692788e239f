//! What the crawler refuses to do, against local fixture sites (loopback only): leave the seeds'
//! origin, reach link-local or cloud metadata addresses, send or print credentials, read an
//! unbounded robots.txt; and that it says why it did not follow a redirect.
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

mod crawl_fixture;

use std::sync::atomic::Ordering;
use std::time::Duration;

use crawl_fixture::{Spec, start};
use futures::StreamExt;
use weft_core::context::Context;
use weft_crawl::{CrawlConfig, Crawler, Link, PageError, PageRecord, Skip, Summary};

fn test_config() -> CrawlConfig {
    CrawlConfig::new()
        .timeouts(Duration::from_millis(500), Duration::from_millis(500))
        .retries(0, Duration::from_millis(1), Duration::from_millis(5))
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
    let summary = crawl.summary().cloned().expect("a summary");
    (pages, summary)
}

fn page<'a>(pages: &'a [PageRecord], url: &str) -> &'a PageRecord {
    pages
        .iter()
        .find(|p| p.url == url)
        .unwrap_or_else(|| panic!("{url} not crawled: {pages:#?}"))
}

#[tokio::test]
async fn a_link_to_the_same_host_on_another_port_is_not_crawled() {
    let other = start(Spec::default()).await;
    let site = start(Spec {
        other_host: Some(other.base()),
        ..Spec::default()
    })
    .await;
    assert_eq!(site.addr.ip(), other.addr.ip(), "same host, two ports");
    let (pages, _) = crawl_all(test_config().max_depth(1), &[site.url("/")]).await;
    assert!(pages.len() > 5, "the seed's own origin is crawled");
    assert_eq!(
        other.seen.total.load(Ordering::SeqCst),
        0,
        "another port is another origin"
    );
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed_and_says_why() {
    let other = start(Spec::default()).await;
    let site = start(Spec {
        other_host: Some(other.base()),
        ..Spec::default()
    })
    .await;
    let (pages, _) = crawl_all(test_config(), &[site.url("/redirect/other")]).await;
    let redirect = page(&pages, &site.url("/redirect/other"));
    assert_eq!(redirect.status, Some(302));
    assert_eq!(redirect.final_url, other.url("/"));
    assert_eq!(redirect.not_followed, Some(Skip::Scope));
    let line = serde_json::to_value(redirect).unwrap();
    assert_eq!(line["not_followed"], "scope");
    assert_eq!(other.seen.total.load(Ordering::SeqCst), 0);

    // A same-origin redirect to a page already crawled says so too.
    let (pages, _) = crawl_all(
        test_config().max_depth(0),
        &[site.url("/chain/1"), site.url("/redirect/chain")],
    )
    .await;
    assert_eq!(
        page(&pages, &site.url("/redirect/chain")).not_followed,
        Some(Skip::Seen)
    );
}

#[tokio::test]
async fn allow_domain_widens_the_scope_to_other_ports() {
    let other = start(Spec::default()).await;
    let site = start(Spec {
        other_host: Some(other.base()),
        ..Spec::default()
    })
    .await;
    let config = test_config().max_depth(1).allow_domains(["127.0.0.1"]);
    let (pages, _) = crawl_all(config, &[site.url("/redirect/other")]).await;
    assert_eq!(
        page(&pages, &site.url("/redirect/other")).not_followed,
        None
    );
    assert_eq!(page(&pages, &other.url("/")).status, Some(200));
}

#[tokio::test]
async fn a_robots_txt_redirect_to_a_metadata_address_is_never_requested() {
    let site = start(Spec {
        robots_redirect: Some("http://169.254.169.254/latest/meta-data/iam".to_owned()),
        ..Spec::default()
    })
    .await;
    let (pages, summary) = crawl_all(test_config().max_depth(1), &[site.url("/chain/1")]).await;
    assert_eq!(
        summary.stats.blocked, 1,
        "the redirect was refused without a request"
    );
    // Robots.txt counts as unavailable: the crawl goes on.
    assert_eq!(pages.len(), 2, "{pages:#?}");
    assert!(
        summary.to_string().contains("1 requests refused"),
        "{summary}"
    );
}

#[tokio::test]
async fn a_robots_txt_redirect_to_another_host_is_followed() {
    let other = start(Spec {
        ip: [127, 0, 0, 2],
        robots: Some("User-agent: *\nDisallow: /chain/\n".to_owned()),
        ..Spec::default()
    })
    .await;
    let site = start(Spec {
        robots_redirect: Some(other.url("/robots.txt")),
        ..Spec::default()
    })
    .await;
    let (pages, summary) = crawl_all(test_config(), &[site.url("/chain/1")]).await;
    assert!(pages.is_empty(), "the other host's rules apply: {pages:#?}");
    assert_eq!(summary.stats.robots_denied, 1);
    assert_eq!(other.seen.hits("/robots.txt"), 1);
}

#[tokio::test]
async fn a_link_or_redirect_to_a_link_local_address_is_not_requested_even_in_scope() {
    let mut spec = Spec {
        other_host: Some("http://169.254.169.254".to_owned()),
        ..Spec::default()
    };
    spec.pages.insert(
        "/to-metadata".to_owned(),
        r#"<a href="http://169.254.169.254/latest/meta-data/">x</a>"#.to_owned(),
    );
    let site = start(spec).await;
    let config = test_config()
        .max_depth(1)
        .record_links(true)
        .allow_domains(["169.254.169.254"]);
    let (pages, summary) = crawl_all(
        config,
        &[site.url("/to-metadata"), site.url("/redirect/other")],
    )
    .await;
    let links = page(&pages, &site.url("/to-metadata"))
        .out_links
        .clone()
        .unwrap();
    assert_eq!(
        links,
        [Link::new(
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            Some(Skip::Blocked)
        )]
    );
    // The redirect is queued as a page of its own (it is in scope), which is refused.
    let blocked = page(&pages, "http://169.254.169.254/");
    assert_eq!(blocked.error, Some(PageError::Blocked));
    assert_eq!((blocked.status, blocked.attempts), (None, 0));
    // Its robots.txt and the page itself.
    assert_eq!(summary.stats.blocked, 2);
    assert_eq!(pages.len(), 3);
}

#[tokio::test]
async fn robots_txt_is_read_up_to_500_kib_in_whole_lines() {
    const CAP: usize = 500 * 1024;
    let mut robots = String::from("User-agent: *\nDisallow: /private/\n");
    while robots.len() < CAP - 40 {
        robots.push_str("# padding padding padding padding\n");
    }
    // A rule cut by the cap: read up to the cap it would say `Disallow: /chain`. It starts a
    // line of its own (a comment line ends just before it), so only the whole-line trim keeps
    // it from being read as a rule: the parser takes a last line without its newline as a
    // line.
    let cut = "Disallow: /chain";
    robots.push_str(&"#".repeat(CAP - robots.len() - cut.len() - 1));
    robots.push('\n');
    assert_eq!(robots.len(), CAP - cut.len());
    robots.push_str(cut);
    robots.push_str("-not-this\n");
    assert_eq!(&robots[CAP - cut.len() - 1..CAP], format!("\n{cut}"));
    // A rule past the cap (but within 512 KiB).
    robots.push_str("Disallow: /cycle/\n");
    assert!(robots.len() < 512 * 1024);
    let site = start(Spec {
        robots: Some(robots),
        ..Spec::default()
    })
    .await;
    let (pages, summary) = crawl_all(
        test_config().max_depth(0),
        &[
            site.url("/chain/1"),
            site.url("/cycle/a"),
            site.url("/private/x"),
        ],
    )
    .await;
    let mut urls: Vec<&str> = pages.iter().map(|p| p.url.as_str()).collect();
    urls.sort();
    assert_eq!(urls, [site.url("/chain/1"), site.url("/cycle/a")]);
    assert_eq!(
        summary.stats.robots_denied, 1,
        "the rules before the cap hold"
    );
}

#[tokio::test]
async fn credentials_in_links_are_neither_sent_nor_printed() {
    let site = start(Spec::default()).await;
    let (pages, _) = crawl_all(test_config().max_depth(1), &[site.url("/creds")]).await;
    assert_eq!(site.seen.hits("/chain/10"), 1, "the link is followed");
    assert_eq!(site.seen.authorized.load(Ordering::SeqCst), 0);
    let text = serde_json::to_string(&pages).unwrap();
    assert!(
        !text.contains("secret") && !text.contains("user@"),
        "{text}"
    );
    assert!(page(&pages, &site.url("/chain/10")).error.is_none());
}
