//! The crawler as a scraper, against local fixture sites (loopback only): fields extracted with
//! CSS selectors, the links of each page with their fate, pagination by a follow selector, and
//! per-page handlers.
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

#[path = "../../crawl/tests/crawl_fixture/mod.rs"]
mod crawl_fixture;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use crawl_fixture::{Spec, start};
use futures::StreamExt;
use serde_json::{Value, json};
use weft_core::context::Context;
use weft_crawl::{CrawlConfig, Crawler, Extract, Link, PageRecord, Skip};

fn test_config() -> CrawlConfig {
    CrawlConfig::new()
        .timeouts(Duration::from_millis(500), Duration::from_millis(500))
        .retries(0, Duration::from_millis(1), Duration::from_millis(5))
}

async fn crawl_all(config: CrawlConfig, seeds: &[String]) -> Vec<PageRecord> {
    let crawler = Crawler::new(config).expect("client");
    let mut crawl = crawler
        .crawl(&Context::background(), seeds)
        .expect("valid seeds");
    let mut pages = Vec::new();
    while let Some(page) = crawl.next().await {
        pages.push(page);
    }
    assert!(crawl.summary().is_some());
    pages
}

fn by_url(pages: Vec<PageRecord>) -> HashMap<String, PageRecord> {
    pages.into_iter().map(|p| (p.url.clone(), p)).collect()
}

/// A shop: a product page, and a listing paginated over three pages, each with product links.
fn shop() -> Spec {
    let mut spec = Spec::default();
    spec.pages.insert(
        "/product".to_owned(),
        r#"<html><head><title>Tea</title></head><body>
           <h1 class="name">  Green
              tea </h1>
           <span class="price">4.20</span>
           <img class="main" src="/img/tea.jpg">
           <ul><li class="tag">green</li><li class="tag">loose</li></ul>
           </body></html>"#
            .to_owned(),
    );
    for n in 1..=3 {
        let next = if n < 3 {
            format!(r#"<a class="next" href="/list/{}">next</a>"#, n + 1)
        } else {
            String::new()
        };
        spec.pages.insert(
            format!("/list/{n}"),
            format!(
                r#"<title>List {n}</title><a href="/item/{n}a">a</a><a href="/item/{n}b">b</a>
                   <nav class="pagination">{next}</nav><a href="/">home</a>"#
            ),
        );
        for item in ["a", "b"] {
            spec.pages.insert(
                format!("/item/{n}{item}"),
                format!("<title>Item {n}{item}</title>"),
            );
        }
    }
    spec
}

#[tokio::test]
async fn fields_are_extracted_by_selector_as_text_attribute_or_list() {
    let site = start(shop()).await;
    let config = test_config()
        .max_depth(0)
        .extract(Extract::parse("name=h1.name").unwrap())
        .extract(Extract::parse("price=.price").unwrap())
        .extract(Extract::parse("image=img.main@src").unwrap())
        .extract(Extract::parse("tags=.tag").unwrap().all())
        .extract(Extract::parse("missing=.nothing").unwrap())
        .extract(Extract::parse("none=.nothing").unwrap().all());
    let pages = crawl_all(config, &[site.url("/product")]).await;
    let page = &pages[0];
    let line = serde_json::to_value(page).unwrap();
    assert_eq!(line["title"], "Tea");
    assert_eq!(line["name"], "Green tea");
    assert_eq!(line["price"], "4.20");
    assert_eq!(line["image"], "/img/tea.jpg");
    assert_eq!(line["tags"], json!(["green", "loose"]));
    assert_eq!(line["missing"], Value::Null);
    assert_eq!(line["none"], json!([]));
}

#[tokio::test]
async fn links_are_listed_with_whether_they_were_followed_and_why_not() {
    let other = start(Spec::default()).await;
    let mut spec = Spec {
        other_host: Some(other.base()),
        ..Spec::default()
    };
    spec.pages.insert(
        "/links".to_owned(),
        r#"<a href="/chain/1">in scope</a>
           <a href="/chain/1#again">same, with a fragment</a>
           <a href="/private/x">robots</a>
           <a href="/cycle/a">excluded</a>
           <a href="{base}/links">itself</a>
           <a href="OTHER/">other port</a>"#
            .replace("OTHER", &other.base()),
    );
    let site = start(spec).await;
    let config = test_config()
        .max_depth(1)
        .record_links(true)
        .exclude(vec![regex::Regex::new("/cycle/").unwrap()]);
    let pages = by_url(crawl_all(config, &[site.url("/links")]).await);
    let links = pages[&site.url("/links")].out_links.clone().unwrap();
    let mut want = vec![
        Link::new(site.url("/chain/1"), None),
        Link::new(site.url("/cycle/a"), Some(Skip::Filter)),
        Link::new(site.url("/links"), Some(Skip::Seen)),
        Link::new(site.url("/private/x"), Some(Skip::Robots)),
        Link::new(other.url("/"), Some(Skip::Scope)),
    ];
    want.sort_by(|a, b| a.url.cmp(&b.url));
    assert_eq!(links, want);
    // At the depth limit, the next page's links are not followed.
    let chain = pages[&site.url("/chain/1")].out_links.clone().unwrap();
    assert_eq!(chain, [Link::new(site.url("/chain/2"), Some(Skip::Depth))]);
    assert_eq!(site.seen.hits("/chain/2"), 0);
    // Without the option, no list.
    let pages = crawl_all(test_config().max_depth(0), &[site.url("/links")]).await;
    assert_eq!(pages[0].out_links, None);
    assert!(
        !serde_json::to_string(&pages[0])
            .unwrap()
            .contains("out_links")
    );
}

#[tokio::test]
async fn a_follow_selector_walks_the_pagination_only() {
    let site = start(shop()).await;
    let config = test_config().follow("a.next").unwrap();
    let pages = by_url(crawl_all(config, &[site.url("/list/1")]).await);
    let mut urls: Vec<String> = pages.keys().cloned().collect();
    urls.sort();
    assert_eq!(
        urls,
        [
            site.url("/list/1"),
            site.url("/list/2"),
            site.url("/list/3")
        ]
    );
    // A container matches the links inside it.
    let config = test_config()
        .follow(".pagination, a[href^=\"/item/\"]")
        .unwrap();
    let pages = crawl_all(config, &[site.url("/list/1")]).await;
    assert_eq!(pages.len(), 9, "3 list pages and 6 items");
    assert_eq!(site.seen.hits("/"), 0, "the home link is not followed");
}

#[tokio::test]
async fn a_handler_sees_every_matching_element_of_every_page() {
    let site = start(shop()).await;
    let config = test_config()
        .follow("a.next")
        .unwrap()
        .on_html("a[href^=\"/item/\"]", |a, page, record| {
            let href = a.value().attr("href").unwrap_or_default();
            let url = page.url.join(href).map(String::from).unwrap_or_default();
            let items = record.fields.entry("items").or_insert_with(|| json!([]));
            items.as_array_mut().unwrap().push(url.into());
        })
        .unwrap();
    let mut items: Vec<String> = crawl_all(config, &[site.url("/list/1")])
        .await
        .into_iter()
        .flat_map(|p| p.fields["items"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    items.sort();
    let want: Vec<String> = ["1a", "1b", "2a", "2b", "3a", "3b"]
        .iter()
        .map(|i| site.url(&format!("/item/{i}")))
        .collect();
    assert_eq!(items, want);
}

#[tokio::test]
async fn a_panicking_handler_fails_its_page_and_the_crawl_goes_on() {
    let site = start(shop()).await;
    let config = test_config()
        .max_depth(1)
        .on_html("a.next", |_, _, _| panic!("handler bug"))
        .unwrap();
    let pages = by_url(crawl_all(config, &[site.url("/list/3"), site.url("/list/2")]).await);
    assert_eq!(
        pages[&site.url("/list/2")].error,
        Some(weft_crawl::PageError::Panicked)
    );
    assert_eq!(pages[&site.url("/list/3")].error, None);
}

fn weft() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn a_bad_selector_is_an_error_at_start_that_points_at_it() {
    let site = start(shop()).await;
    for (flag, value, says) in [
        ("--extract", "price=.price[", "\".price[\""),
        ("--extract-all", "tags", "expected NAME=SELECTOR"),
        ("--follow", "a..next", "\"a..next\""),
    ] {
        let out = weft()
            .args(["crawl", "-q", flag, value])
            .arg(site.url("/product"))
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
        assert!(
            flag == "--follow" || stderr.contains(flag),
            "names the flag: {stderr}"
        );
    }
    assert_eq!(site.seen.total.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_command_writes_extracted_fields_and_links_on_each_line() {
    let site = start(shop()).await;
    let out = weft()
        .args([
            "crawl",
            "-q",
            "--extract",
            "name=h1.name",
            "--extract",
            "image=img.main@src",
            "--extract-all",
            "tags=.tag",
            "--links",
            "--depth",
            "0",
        ])
        .arg(site.url("/product"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["name"], "Green tea");
    assert_eq!(line["image"], "/img/tea.jpg");
    assert_eq!(line["tags"], json!(["green", "loose"]));
    assert_eq!(line["out_links"], json!([]));
}

#[tokio::test]
async fn an_interrupted_crawl_resumes_from_its_saved_pages_without_fetching_them_again() {
    let site = start(Spec::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = || test_config().save(dir.path());

    // The first crawl is cancelled after two pages.
    let crawler = Crawler::new(config()).unwrap();
    let (ctx, cancel) = Context::background().with_cancel();
    let mut crawl = crawler.crawl(&ctx, [site.url("/chain/1")]).unwrap();
    for _ in 0..2 {
        let page = crawl.next().await.unwrap();
        assert!(page.saved.is_some(), "{page:?}");
    }
    cancel.cancel();
    while crawl.next().await.is_some() {}
    drop(crawl);
    site.seen.wait_idle().await;
    let index = std::fs::read_to_string(dir.path().join("index.jsonl")).unwrap();
    let saved_first = index.lines().count();
    assert!(saved_first >= 2, "{index}");
    let saved_urls: Vec<String> = index
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["url"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // A request in flight when the crawl was cancelled may have reached the server without its
    // page being saved: count the hits of the first crawl instead of assuming none.
    let hits_before: Vec<usize> = (1..=10)
        .map(|n| site.seen.hits(&format!("/chain/{n}")))
        .collect();

    // The second reads what was saved (no request) and fetches the rest (one request each).
    let pages = by_url(crawl_all(config().resume(true), &[site.url("/chain/1")]).await);
    assert_eq!(pages.len(), 10);
    for n in 1..=10 {
        let url = site.url(&format!("/chain/{n}"));
        let fetched_again = site.seen.hits(&format!("/chain/{n}")) - hits_before[n - 1];
        let was_saved = saved_urls.contains(&url);
        assert_eq!(
            fetched_again,
            usize::from(!was_saved),
            "/chain/{n} (saved: {was_saved})"
        );
        let page = &pages[&site.url(&format!("/chain/{n}"))];
        assert_eq!(page.title.as_deref(), Some(format!("Chain {n}").as_str()));
    }
    let from_disk = pages.values().filter(|p| p.attempts == 0).count();
    assert_eq!(from_disk, saved_first);

    // Every page is indexed once, and its file is there, whole.
    let index = std::fs::read_to_string(dir.path().join("index.jsonl")).unwrap();
    assert_eq!(index.lines().count(), 10, "{index}");
    for line in index.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let file = dir.path().join(entry["file"].as_str().unwrap());
        let body = std::fs::read_to_string(&file).unwrap();
        assert!(body.ends_with("</html>"), "{}", file.display());
        assert_eq!(entry["status"], 200);
        assert!(
            entry["content_type"]
                .as_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(entry["fetched_at"].as_f64().unwrap() > 1e9);
    }
    // Nothing but the bodies and the index.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 11);
}

#[tokio::test]
async fn resume_needs_save() {
    let out = weft()
        .args(["crawl", "-q", "--resume", "http://127.0.0.1:9/"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--save"));
}
