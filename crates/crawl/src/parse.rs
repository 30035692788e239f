//! HTML parsing with `scraper` (html5ever): the title and the page's links.

use std::collections::HashSet;
use std::sync::LazyLock;

use scraper::{Html, Selector};
use url::Url;

use super::url::normalize;

static TITLE: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("title").expect("static selector is valid"));
static BASE: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("base[href]").expect("static selector is valid"));
static LINKS: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("a[href], area[href]").expect("static selector is valid"));

#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) title: Option<String>,
    /// Distinct normalised http(s) links, sorted.
    pub(crate) links: Vec<Url>,
    /// The document, for extraction and handlers.
    pub(crate) doc: Html,
    /// What relative links resolve against.
    pub(crate) base: Url,
}

/// Parses a page fetched from `page_url` (its final URL). Links resolve against the first
/// `<base href>` (itself resolved against the page URL) or else the page URL.
pub(crate) fn parse_html(body: &[u8], page_url: &Url) -> Parsed {
    let text = String::from_utf8_lossy(body);
    let doc = Html::parse_document(&text);
    let title = doc.select(&TITLE).next().and_then(|t| {
        let text = t.text().collect::<Vec<_>>().join(" ");
        let words: Vec<&str> = text.split_whitespace().collect();
        (!words.is_empty()).then(|| words.join(" "))
    });
    let base = doc
        .select(&BASE)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|href| page_url.join(href.trim()).ok())
        .unwrap_or_else(|| page_url.clone());
    let mut links: Vec<Url> = doc
        .select(&LINKS)
        .filter_map(|a| a.value().attr("href"))
        .filter_map(|href| base.join(href.trim()).ok())
        .filter_map(normalize)
        .collect();
    links.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    links.dedup_by(|a, b| a.as_str() == b.as_str());
    Parsed {
        title,
        links,
        doc,
        base,
    }
}

/// The normalised links of the elements `follow` matches: an element's own `href`, or the
/// links inside it.
pub(crate) fn followable(parsed: &Parsed, follow: &Selector) -> HashSet<String> {
    let mut out = HashSet::new();
    for element in parsed.doc.select(follow) {
        let own = element.value().attr("href").map(|href| vec![href]);
        let hrefs = own.unwrap_or_else(|| {
            element
                .select(&LINKS)
                .filter_map(|a| a.value().attr("href"))
                .collect()
        });
        for href in hrefs {
            if let Some(url) = parsed.base.join(href.trim()).ok().and_then(normalize) {
                out.insert(url.into());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(p: &Parsed) -> Vec<&str> {
        p.links.iter().map(Url::as_str).collect()
    }

    #[test]
    fn resolves_relative_and_absolute_links_and_drops_fragments() {
        let page = Url::parse("http://h.test/dir/page.html").unwrap();
        let html = br##"<html><head><title>
              Hello   world </title></head><body>
            <a href="other.html#x">rel</a> <a href="/root">abs path</a>
            <a href="../up">up</a> <a href="HTTP://H.TEST:80/root">same as abs path</a>
            <a href="https://elsewhere.test/">other host</a>
            <a href="mailto:x@y">mail</a> <a href="javascript:void(0)">js</a>
            <a href="#top">fragment only</a> <a>no href</a>
            </body></html>"##;
        let p = parse_html(html, &page);
        assert_eq!(p.title.as_deref(), Some("Hello world"));
        assert_eq!(
            strs(&p),
            [
                "http://h.test/dir/other.html",
                "http://h.test/dir/page.html",
                "http://h.test/root",
                "http://h.test/up",
                "https://elsewhere.test/",
            ]
        );
    }

    #[test]
    fn base_href_changes_where_relative_links_point() {
        let page = Url::parse("http://h.test/a/b/c.html").unwrap();
        let html =
            br#"<head><base href="/docs/v2/"></head><a href="intro">i</a><a href="/x">x</a>"#;
        let p = parse_html(html, &page);
        assert_eq!(strs(&p), ["http://h.test/docs/v2/intro", "http://h.test/x"]);
    }

    #[test]
    fn malformed_html_still_yields_links() {
        let page = Url::parse("http://h.test/").unwrap();
        let html = b"<title>t<a href=ignored></title><div><p><a href=one>1<a href='two'>2</table><a href=\"three\"\xff\xfe";
        let p = parse_html(html, &page);
        assert_eq!(p.title.as_deref(), Some("t<a href=ignored>"));
        assert_eq!(strs(&p), ["http://h.test/one", "http://h.test/two"]);
    }
}
