//! Sitemaps as extra seeds, against local fixture sites (loopback only): robots.txt `Sitemap:`
//! lines, the `/sitemap.xml` fallback, gzip indexes and url sets, scope, robots.txt and
//! per-host limits on sitemap fetches, and the documents that must not stop or sink a crawl
//! (gzip bombs, oversized and malformed documents, index loops, deep or long index chains).

mod crawl_fixture;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use crawl_fixture::{File, Site, Spec, gzip, start};
use futures::StreamExt;
use weft_core::context::Context;
use weft_crawl::{
    CrawlConfig, Crawler, PageRecord, SitemapError, SitemapLimits, StopReason, Summary,
};

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("not zero")
}

fn test_config() -> CrawlConfig {
    CrawlConfig::new()
        .timeouts(Duration::from_millis(500), Duration::from_millis(500))
        .retries(0, Duration::from_millis(1), Duration::from_millis(5))
        .sitemaps(true)
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

/// Pages by path, with the sitemap path that listed each (if one did).
fn crawled(pages: &[PageRecord], site: &Site) -> HashMap<String, Option<String>> {
    let base = site.base();
    let path = |url: &str| url.strip_prefix(&base).unwrap_or(url).to_owned();
    pages
        .iter()
        .map(|p| (path(&p.url), p.sitemap.as_deref().map(path)))
        .collect()
}

fn urlset(paths: &[&str]) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">"#,
    );
    for path in paths {
        let loc = if path.starts_with("http") {
            (*path).to_owned()
        } else {
            format!("{{base}}{path}")
        };
        xml.push_str(&format!("\n  <url><loc>{loc}</loc></url>"));
    }
    xml.push_str("\n</urlset>\n");
    xml
}

fn index(paths: &[&str]) -> String {
    let mut xml =
        String::from(r#"<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">"#);
    for path in paths {
        xml.push_str(&format!("<sitemap><loc>{{base}}{path}</loc></sitemap>"));
    }
    xml.push_str("</sitemapindex>");
    xml
}

/// A seed page that links nowhere, and pages only sitemaps lead to.
fn lonely_site() -> Spec {
    let mut spec = Spec::default();
    spec.pages.insert(
        "/lonely".to_owned(),
        "<title>Lonely</title>no links".to_owned(),
    );
    for page in ["/hidden/1", "/hidden/2", "/hidden/3", "/hidden/4"] {
        spec.pages
            .insert(page.to_owned(), format!("<title>{page}</title>"));
    }
    spec
}

#[tokio::test]
async fn a_robots_sitemap_line_leads_through_a_gzip_index_to_every_listed_page_in_scope() {
    let other = start(Spec {
        ip: [127, 0, 0, 2],
        ..Spec::default()
    })
    .await;
    let mut spec = lonely_site();
    spec.robots = Some(
        "User-agent: *\nDisallow: /private/\n\nSitemap: {base}/sitemaps/index.xml.gz\n".to_owned(),
    );
    // The index: gzip, served as application/x-gzip.
    spec.files.insert(
        "/sitemaps/index.xml.gz".to_owned(),
        File {
            content_type: "application/x-gzip",
            gzip: true,
            body: index(&["/sitemaps/a.xml.gz", "/sitemaps/b.xml"]).into_bytes(),
            ..File::default()
        },
    );
    // One url set gzip with `Content-Encoding: gzip`, one plain; entries with an escaped
    // query, whitespace, CDATA, another host, a disallowed page, the seed itself.
    spec.files.insert(
        "/sitemaps/a.xml.gz".to_owned(),
        File {
            content_type: "application/xml",
            content_encoding: Some("gzip"),
            gzip: true,
            body: format!(
                r#"<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
                     <url><loc>
                        {{base}}/hidden/1
                     </loc></url>
                     <url><loc>{{base}}/hidden/2?a=1&amp;b=2</loc></url>
                     <url><loc>{}/hidden/9</loc></url>
                   </urlset>"#,
                other.base()
            )
            .into_bytes(),
        },
    );
    spec.files.insert(
        "/sitemaps/b.xml".to_owned(),
        File::xml(urlset(&["/hidden/3", "/private/x", "/lonely"]).replace(
            "<url><loc>{base}/hidden/3</loc></url>",
            "<url><loc><![CDATA[{base}/hidden/3]]></loc></url>",
        )),
    );
    let site = start(spec).await;

    let (pages, summary) = crawl_all(test_config(), &[site.url("/lonely")]).await;

    let got = crawled(&pages, &site);
    let from = |s: &str| Some(s.to_owned());
    let expected = HashMap::from([
        ("/lonely".to_owned(), None),
        ("/hidden/1".to_owned(), from("/sitemaps/a.xml.gz")),
        ("/hidden/2?a=1&b=2".to_owned(), from("/sitemaps/a.xml.gz")),
        ("/hidden/3".to_owned(), from("/sitemaps/b.xml")),
    ]);
    assert_eq!(got, expected);
    assert!(pages.iter().all(|p| p.depth == 0 && p.error.is_none()));
    // Out of scope and disallowed entries are not fetched; each document is read once, and
    // robots.txt too (its `Sitemap:` line came from the crawl's own request).
    assert_eq!(
        other.seen.total.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert_eq!(site.seen.hits("/private/x"), 0);
    for path in [
        "/robots.txt",
        "/sitemaps/index.xml.gz",
        "/sitemaps/a.xml.gz",
        "/sitemaps/b.xml",
    ] {
        assert_eq!(site.seen.hits(path), 1, "{path}");
    }
    assert_eq!(
        site.seen.hits("/sitemap.xml"),
        0,
        "no fallback when robots names one"
    );
    let s = summary.stats;
    assert_eq!(
        (
            s.sitemaps,
            s.sitemap_urls,
            s.sitemap_out_of_scope,
            s.sitemap_errors
        ),
        (3, 6, 1, 0)
    );
    assert_eq!(s.robots_denied, 1);
    assert_eq!(summary.stop, StopReason::Finished);
    let line = summary.to_string();
    assert!(
        line.contains("3 sitemaps read (6 urls, 1 out of scope, 0 errors)"),
        "{line}"
    );
}

#[tokio::test]
async fn without_a_sitemap_line_the_origin_sitemap_xml_is_read() {
    let mut spec = lonely_site();
    spec.robots = Some("User-agent: *\nDisallow: /private/\n".to_owned());
    spec.files.insert(
        "/sitemap.xml".to_owned(),
        File::xml(urlset(&["/hidden/1", "/hidden/4"])),
    );
    let site = start(spec).await;
    let (pages, summary) = crawl_all(test_config(), &[site.url("/lonely")]).await;
    let got = crawled(&pages, &site);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got["/hidden/4"].as_deref(), Some("/sitemap.xml"));
    assert_eq!(summary.stats.sitemaps, 1);

    // The same when robots.txt is not read at all, and the include/exclude patterns filter
    // the listed pages like links (counted as out of scope).
    let config = test_config()
        .respect_robots(false)
        .exclude(vec![regex::Regex::new("/hidden/4$").expect("regex")]);
    let (pages, summary) = crawl_all(config, &[site.url("/lonely")]).await;
    let got = crawled(&pages, &site);
    assert!(got.contains_key("/hidden/1") && !got.contains_key("/hidden/4"));
    assert_eq!(summary.stats.sitemap_out_of_scope, 1);
    assert_eq!(
        site.seen.hits("/robots.txt"),
        1,
        "only the first crawl read it"
    );

    // And nothing of the kind without `sitemaps(true)`.
    let (pages, _) = crawl_all(test_config().sitemaps(false), &[site.url("/lonely")]).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(site.seen.hits("/sitemap.xml"), 2);
}

#[tokio::test]
async fn sitemap_fetches_obey_robots_txt_and_the_per_host_limit() {
    let mut spec = lonely_site();
    spec.robots = Some(
        "User-agent: *\nDisallow: /private/\nSitemap: {base}/private/sitemap.xml\n\
         Sitemap: {base}/s1.xml\nSitemap: {base}/s2.xml\nSitemap: {base}/s3.xml\n"
            .to_owned(),
    );
    spec.files.insert(
        "/private/sitemap.xml".to_owned(),
        File::xml(urlset(&["/hidden/4"])),
    );
    for (n, page) in [(1, "/hidden/1"), (2, "/hidden/2"), (3, "/hidden/3")] {
        spec.files
            .insert(format!("/s{n}.xml"), File::xml(urlset(&[page])));
    }
    // Each request waits for a second one, so a crawler that allowed two at once would have
    // two in flight.
    spec.hold_until = Some(2);
    spec.hold_max = Duration::from_millis(50);
    let site = start(spec).await;
    let config = test_config().concurrency(nz(8)).per_host(nz(1));
    let (pages, summary) = crawl_all(config, &[site.url("/lonely")]).await;
    assert_eq!(site.seen.hits("/private/sitemap.xml"), 0);
    assert_eq!(summary.stats.robots_denied, 1);
    assert_eq!(
        pages.len(),
        4,
        "the seed and the three allowed sitemaps' pages"
    );
    assert_eq!(site.seen.max_in_flight(), 1);
}

#[tokio::test]
async fn a_redirected_sitemap_is_followed_on_its_host_or_queued_on_the_other() {
    let mut other_spec = lonely_site();
    other_spec
        .files
        .insert("/s.xml".to_owned(), File::xml(urlset(&["/hidden/2"])));
    let other = start(Spec {
        ip: [127, 0, 0, 2],
        ..other_spec
    })
    .await;
    let mut spec = lonely_site();
    spec.robots = Some(
        "User-agent: *\nDisallow: /private/\nSitemap: {base}/old.xml\nSitemap: {base}/moved.xml\n\
         Sitemap: {base}/sneaky.xml\n"
            .to_owned(),
    );
    spec.redirects
        .insert("/old.xml".to_owned(), "/new.xml".to_owned());
    spec.redirects
        .insert("/moved.xml".to_owned(), format!("{}/s.xml", other.base()));
    spec.redirects
        .insert("/sneaky.xml".to_owned(), "/private/s.xml".to_owned());
    spec.files
        .insert("/new.xml".to_owned(), File::xml(urlset(&["/hidden/1"])));
    spec.files.insert(
        "/private/s.xml".to_owned(),
        File::xml(urlset(&["/hidden/3"])),
    );
    let site = start(spec).await;
    let config = test_config().allow_domains(["127.0.0.2"]);
    let (pages, summary) = crawl_all(config, &[site.url("/lonely")]).await;

    let listed: HashMap<&str, Option<&str>> = pages
        .iter()
        .map(|p| (p.url.as_str(), p.sitemap.as_deref()))
        .collect();
    let (new, moved) = (site.url("/new.xml"), other.url("/s.xml"));
    let expected = HashMap::from([
        (site.url("/lonely"), None),
        (site.url("/hidden/1"), Some(new.as_str())),
        (other.url("/hidden/2"), Some(moved.as_str())),
    ]);
    let expected: HashMap<&str, Option<&str>> =
        expected.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(listed, expected);
    // The other host's robots.txt came first, as for a page; the disallowed target was not
    // requested.
    assert_eq!(other.seen.hits("/robots.txt"), 1);
    assert_eq!(other.seen.hits("/s.xml"), 1);
    assert_eq!(site.seen.hits("/private/s.xml"), 0);
    assert_eq!(summary.stats.robots_denied, 1);
    assert_eq!(
        (summary.stats.sitemaps, summary.stats.sitemap_errors),
        (2, 0)
    );
}

/// A gzip bomb: a url set's first entry, then `n` gzip members of 1 MiB of spaces each, then
/// a last entry; some 70 KiB that decompress to `n` MiB. Its locs are relative (the fixture
/// cannot put the site's address inside compressed data), which the crawler reads as links.
fn gzip_bomb(n: usize) -> Vec<u8> {
    let mut body = gzip(b"<urlset><url><loc>/hidden/1</loc></url>");
    let mut padding = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut padding, &vec![b' '; 1 << 20]).expect("in memory");
    let padding = padding.finish().expect("in memory");
    for _ in 0..n {
        body.extend_from_slice(&padding);
    }
    body.extend(gzip(b"<url><loc>/hidden/2</loc></url></urlset>"));
    body
}

#[tokio::test]
async fn a_gzip_bomb_or_an_oversized_sitemap_stops_at_the_cap_with_an_error_counted() {
    let cap = 256 * 1024;
    let mut spec = lonely_site();
    spec.robots = Some(
        "Sitemap: {base}/bomb.xml.gz
Sitemap: {base}/big.xml
"
        .to_owned(),
    );
    let bomb = gzip_bomb(64);
    assert!(
        bomb.len() < cap,
        "the compressed bomb fits the cap: {}",
        bomb.len()
    );
    spec.files.insert(
        "/bomb.xml.gz".to_owned(),
        File {
            content_type: "application/x-gzip",
            body: bomb,
            ..File::default()
        },
    );
    // Plain XML over the cap: cut while it downloads.
    spec.files.insert(
        "/big.xml".to_owned(),
        File::xml(format!(
            "<urlset><url><loc>{{base}}/hidden/3</loc></url>{}<url><loc>{{base}}/hidden/4</loc></url></urlset>",
            " ".repeat(2 * cap)
        )),
    );
    let site = start(spec).await;
    let limits = SitemapLimits::default().max_bytes(cap);
    let (pages, summary) =
        crawl_all(test_config().sitemap_limits(limits), &[site.url("/lonely")]).await;

    let got = crawled(&pages, &site);
    assert!(
        got.contains_key("/hidden/1") && got.contains_key("/hidden/3"),
        "{got:?}"
    );
    assert!(
        !got.contains_key("/hidden/2") && !got.contains_key("/hidden/4"),
        "entries past the cap are not read: {got:?}"
    );
    assert_eq!(summary.stop, StopReason::Finished);
    assert_eq!(
        (summary.stats.sitemaps, summary.stats.sitemap_errors),
        (2, 2)
    );
    let mut failures: Vec<(String, SitemapError)> = summary
        .sitemap_failures
        .iter()
        .map(|f| (f.url.replace(&site.base(), ""), f.error.clone()))
        .collect();
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    let too_large = SitemapError::TooLarge { limit: cap };
    assert_eq!(
        failures,
        [
            ("/big.xml".to_owned(), too_large.clone()),
            ("/bomb.xml.gz".to_owned(), too_large)
        ]
    );
}

#[tokio::test]
async fn malformed_missing_or_foreign_sitemaps_are_counted_and_the_crawl_goes_on() {
    let mut spec = lonely_site();
    spec.robots = Some(
        "Sitemap: {base}/broken.xml
Sitemap: {base}/page.xml
Sitemap: {base}/missing.xml
         Sitemap: {base}/cut.xml.gz
Sitemap: {base}/good.xml
"
        .to_owned(),
    );
    // Malformed after its first entry.
    spec.files.insert(
        "/broken.xml".to_owned(),
        File::xml(
            "<urlset><url><loc>{base}/hidden/1</loc></url><url><loc>{base}/hidden/2</url></urlset>",
        ),
    );
    // An HTML page where a sitemap should be.
    spec.files.insert(
        "/page.xml".to_owned(),
        File {
            content_type: "text/html",
            body: b"<!doctype html><html><body>Not here</body></html>".to_vec(),
            ..File::default()
        },
    );
    // Gzip cut in the middle.
    let mut entries = String::from("<urlset>");
    for i in 0..3000 {
        entries.push_str(&format!("<url><loc>/cut/{i}</loc></url>"));
    }
    entries.push_str("</urlset>");
    let compressed = gzip(entries.as_bytes());
    spec.files.insert(
        "/cut.xml.gz".to_owned(),
        File {
            content_type: "application/x-gzip",
            body: compressed[..compressed.len() / 2].to_vec(),
            ..File::default()
        },
    );
    spec.files
        .insert("/good.xml".to_owned(), File::xml(urlset(&["/hidden/3"])));
    let site = start(spec).await;
    let (pages, summary) = crawl_all(test_config().max_depth(0), &[site.url("/lonely")]).await;

    let got = crawled(&pages, &site);
    assert!(got.contains_key("/lonely"));
    assert!(
        got.contains_key("/hidden/3"),
        "a good sitemap after bad ones is read"
    );
    assert!(
        got.contains_key("/hidden/1"),
        "entries before the damage are used"
    );
    assert!(!got.contains_key("/hidden/2"));
    assert!(got.contains_key("/cut/0"));
    assert_eq!(summary.stop, StopReason::Finished);
    let s = summary.stats;
    assert_eq!((s.sitemaps, s.sitemap_errors), (4, 4), "{summary}");
    let mut kinds: Vec<(String, &'static str)> = summary
        .sitemap_failures
        .iter()
        .map(|f| {
            let kind = match &f.error {
                SitemapError::Xml { .. } => "xml",
                SitemapError::NotASitemap { .. } => "not a sitemap",
                SitemapError::Fetch(_) => "fetch",
                SitemapError::Gzip(_) => "gzip",
                _ => "other",
            };
            (f.url.replace(&site.base(), ""), kind)
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("/broken.xml".to_owned(), "xml"),
            ("/cut.xml.gz".to_owned(), "gzip"),
            ("/missing.xml".to_owned(), "fetch"),
            ("/page.xml".to_owned(), "not a sitemap"),
        ]
    );
    assert_eq!(
        summary
            .sitemap_failures
            .iter()
            .find(|f| f.url.ends_with("/missing.xml"))
            .map(|f| f.to_string().replace(&site.base(), "")),
        Some("sitemap /missing.xml: cannot fetch it: http status 404".to_owned())
    );
}

#[tokio::test]
async fn an_index_that_lists_itself_or_its_parent_is_read_once_and_the_crawl_ends() {
    let mut spec = lonely_site();
    spec.robots = Some(
        "Sitemap: {base}/index.xml
"
        .to_owned(),
    );
    spec.files.insert(
        "/index.xml".to_owned(),
        File::xml(index(&["/index.xml", "/index2.xml"])),
    );
    spec.files.insert(
        "/index2.xml".to_owned(),
        File::xml(index(&["/index.xml", "/index2.xml", "/pages.xml"])),
    );
    spec.files
        .insert("/pages.xml".to_owned(), File::xml(urlset(&["/hidden/1"])));
    let site = start(spec).await;
    let (pages, summary) = crawl_all(test_config(), &[site.url("/lonely")]).await;
    for path in ["/index.xml", "/index2.xml", "/pages.xml"] {
        assert_eq!(site.seen.hits(path), 1, "{path}");
    }
    assert_eq!(pages.len(), 2);
    assert_eq!(summary.stop, StopReason::Finished);
    assert_eq!(
        (summary.stats.sitemaps, summary.stats.sitemap_errors),
        (3, 0)
    );
}

#[tokio::test]
async fn indexes_are_followed_within_the_nesting_limit() {
    let mut spec = lonely_site();
    spec.robots = Some("Sitemap: {base}/chain/0.xml\n".to_owned());
    // An endless chain of indexes, each listing the next.
    for n in 0..10 {
        spec.files.insert(
            format!("/chain/{n}.xml"),
            File::xml(index(&[&format!("/chain/{}.xml", n + 1)])),
        );
    }
    let site = start(spec).await;
    let limits = SitemapLimits::default().nesting(2);
    let (_, summary) =
        crawl_all(test_config().sitemap_limits(limits), &[site.url("/lonely")]).await;
    // Levels 0, 1 and 2, never 3.
    for n in 0..3 {
        assert_eq!(site.seen.hits(&format!("/chain/{n}.xml")), 1, "chain {n}");
    }
    assert_eq!(site.seen.hits("/chain/3.xml"), 0);
    let failures: Vec<(String, SitemapError)> = summary
        .sitemap_failures
        .iter()
        .map(|f| (f.url.replace(&site.base(), ""), f.error.clone()))
        .collect();
    assert_eq!(
        failures,
        [(
            "/chain/2.xml".to_owned(),
            SitemapError::TooDeep {
                limit: 2,
                skipped: 1
            }
        )]
    );
}

#[tokio::test]
async fn at_most_the_document_limit_of_sitemaps_is_read() {
    let mut spec = lonely_site();
    spec.robots = Some("Sitemap: {base}/wide.xml\n".to_owned());
    spec.files.insert(
        "/wide.xml".to_owned(),
        File::xml(index(&["/w/1.xml", "/w/2.xml", "/w/3.xml", "/w/4.xml"])),
    );
    for n in 1..=4 {
        spec.files.insert(
            format!("/w/{n}.xml"),
            File::xml(urlset(&[&format!("/hidden/{n}")])),
        );
    }
    let site = start(spec).await;
    let limits = SitemapLimits::default().documents(nz(3));
    let (pages, summary) =
        crawl_all(test_config().sitemap_limits(limits), &[site.url("/lonely")]).await;
    // The index and two of its url sets.
    let read: usize = (1..=4)
        .map(|n| site.seen.hits(&format!("/w/{n}.xml")))
        .sum();
    assert_eq!(read, 2);
    assert_eq!(pages.len(), 3, "the seed and two url sets' pages");
    assert_eq!(
        (summary.stats.sitemaps, summary.stats.sitemap_errors),
        (3, 1)
    );
    assert_eq!(
        summary.sitemap_failures[0].error,
        SitemapError::DocumentLimit {
            limit: 3,
            skipped: 2
        }
    );
}
