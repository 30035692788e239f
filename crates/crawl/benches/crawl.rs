//! `weft crawl` throughput on a local 10,000-page site (loopback), at `-j 64`.
//!
//! Rows (all fetch the same 10,000 pages from the same server, 64 requests in flight):
//! - `weft_crawl`: the crawler: robots.txt, link discovery (scraper), normalisation, dedup,
//!   per-host scheduling, one JSON-able record per page;
//! - `weft_crawl_extract3_links`: the same, scraping: three `--extract` fields (a text, an
//!   attribute, a list) and `--links` (each page's ten links with their fate);
//! - `weft_crawl_sitemap_depth0`: the same pages found from the site's gzipped `/sitemap.xml`
//!   (all 10,000 listed) at depth 0, instead of by following links;
//! - `reqwest_parse_buffer_unordered`: a known URL list fetched with reqwest and
//!   `buffer_unordered(64)`, each page parsed with scraper (no discovery, no politeness);
//! - `reqwest_buffer_unordered`: the same without parsing: the HTTP ceiling on this machine.
//!
//! The server runs on its own 2-thread runtime, like a separate process would.
//!
//! `WEFT_CRAWL_SERVE=1 cargo bench -p weft-crawl --bench crawl` only serves the site (and
//! prints its URL) so that the `weft crawl` command can be timed against it.
#![allow(missing_docs)]

#[path = "../tests/crawl_fixture/mod.rs"]
mod crawl_fixture;

use std::num::NonZeroUsize;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use weft_core::context::Context;
use weft_crawl::{CrawlConfig, Crawler, Extract};

const PAGES: usize = 10_000;
const JOBS: usize = 64;

fn serve() -> (tokio::runtime::Runtime, crawl_fixture::Site) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let mut sitemap =
        String::from("<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">");
    for n in 0..PAGES {
        sitemap.push_str(&format!("<url><loc>{{base}}/p/{n}</loc></url>\n"));
    }
    sitemap.push_str("</urlset>");
    let mut files = std::collections::HashMap::new();
    files.insert(
        "/sitemap.xml".to_owned(),
        crawl_fixture::File {
            content_type: "application/xml",
            content_encoding: Some("gzip"),
            gzip: true,
            body: sitemap.into_bytes(),
        },
    );
    let site = rt.block_on(crawl_fixture::start(crawl_fixture::Spec {
        graph: PAGES,
        files,
        ..crawl_fixture::Spec::default()
    }));
    (rt, site)
}

fn bench(c: &mut Criterion) {
    let (_server_rt, site) = serve();
    if std::env::var_os("WEFT_CRAWL_SERVE").is_some() {
        println!("{}", site.url("/p/0"));
        loop {
            std::thread::park();
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let jobs = NonZeroUsize::new(JOBS).expect("not zero");
    let seed = site.url("/p/0");
    let urls: Vec<String> = (0..PAGES).map(|n| site.url(&format!("/p/{n}"))).collect();

    let mut group = c.benchmark_group("crawl_10k_pages_j64");
    group.sample_size(10);
    group.throughput(Throughput::Elements(PAGES as u64));

    let crawler = Crawler::new(
        CrawlConfig::new()
            .concurrency(jobs)
            .per_host(jobs)
            .timeouts(Duration::from_secs(30), Duration::from_secs(5)),
    )
    .expect("crawler");
    group.bench_function("weft_crawl", |b| {
        b.to_async(&rt).iter(|| async {
            let mut crawl = crawler
                .crawl(&Context::background(), [&seed])
                .expect("crawl");
            let mut pages = 0;
            while let Some(page) = crawl.next().await {
                assert_eq!(page.status, Some(200), "{page:?}");
                pages += 1;
            }
            assert_eq!(pages, PAGES);
        });
    });

    let scraper = Crawler::new(
        CrawlConfig::new()
            .concurrency(jobs)
            .per_host(jobs)
            .timeouts(Duration::from_secs(30), Duration::from_secs(5))
            .extract(Extract::parse("heading=h1").expect("selector"))
            .extract(Extract::parse("first_link=p a@href").expect("selector"))
            .extract(Extract::parse("paragraphs=p").expect("selector").all())
            .record_links(true),
    )
    .expect("crawler");
    group.bench_function("weft_crawl_extract3_links", |b| {
        b.to_async(&rt).iter(|| async {
            let mut crawl = scraper
                .crawl(&Context::background(), [&seed])
                .expect("crawl");
            let mut pages = 0;
            while let Some(page) = crawl.next().await {
                assert_eq!(page.status, Some(200), "{page:?}");
                assert!(page.fields["heading"].is_string(), "{page:?}");
                assert_eq!(page.out_links.as_ref().map(Vec::len), Some(page.links));
                pages += 1;
            }
            assert_eq!(pages, PAGES);
        });
    });

    let from_sitemap = Crawler::new(
        CrawlConfig::new()
            .concurrency(jobs)
            .per_host(jobs)
            .timeouts(Duration::from_secs(30), Duration::from_secs(5))
            .sitemaps(true)
            .max_depth(0),
    )
    .expect("crawler");
    group.bench_function("weft_crawl_sitemap_depth0", |b| {
        b.to_async(&rt).iter(|| async {
            let mut crawl = from_sitemap
                .crawl(&Context::background(), [&seed])
                .expect("crawl");
            let mut pages = 0;
            while let Some(page) = crawl.next().await {
                assert_eq!(page.status, Some(200), "{page:?}");
                pages += 1;
            }
            assert_eq!(pages, PAGES);
            let stats = crawl.summary().expect("summary").stats;
            assert_eq!((stats.sitemaps, stats.sitemap_errors), (1, 0));
        });
    });

    let client = reqwest::Client::new();
    group.bench_function("reqwest_parse_buffer_unordered", |b| {
        b.to_async(&rt).iter(|| async {
            let links: usize = futures::stream::iter(&urls)
                .map(|url| {
                    let client = &client;
                    async move {
                        let body = client
                            .get(url)
                            .send()
                            .await
                            .expect("get")
                            .bytes()
                            .await
                            .expect("body");
                        let doc = scraper::Html::parse_document(&String::from_utf8_lossy(&body));
                        let sel = scraper::Selector::parse("a[href]").expect("selector");
                        doc.select(&sel).count()
                    }
                })
                .buffer_unordered(JOBS)
                .fold(0, |acc, n| async move { acc + n })
                .await;
            assert_eq!(links, PAGES * 10);
        });
    });

    group.bench_function("reqwest_buffer_unordered", |b| {
        b.to_async(&rt).iter(|| async {
            let bytes: usize = futures::stream::iter(&urls)
                .map(|url| {
                    let client = &client;
                    async move {
                        client
                            .get(url)
                            .send()
                            .await
                            .expect("get")
                            .bytes()
                            .await
                            .expect("body")
                            .len()
                    }
                })
                .buffer_unordered(JOBS)
                .fold(0, |acc, n| async move { acc + n })
                .await;
            assert!(bytes > PAGES * 1000);
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
