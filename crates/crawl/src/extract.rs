//! Scraping: fields extracted from each page with CSS selectors, the selector that chooses which
//! links to follow, and per-page handlers given the parsed document (colly's `OnHTML`).

use std::sync::Arc;

use scraper::{ElementRef, Html, Selector};
use url::Url;

use super::error::CrawlError;
use super::record::PageRecord;

/// Names a [`PageRecord`] already uses in its JSON line; an extracted field may not take them.
const RESERVED: &[&str] = &[
    "url",
    "final_url",
    "status",
    "content_type",
    "title",
    "depth",
    "links",
    "bytes",
    "truncated",
    "attempts",
    "fetch_ms",
    "error",
    "not_followed",
    "out_links",
    "saved",
];

/// Parses a CSS selector, or says which one is wrong and why.
pub(crate) fn selector(text: &str) -> Result<Selector, CrawlError> {
    Selector::parse(text).map_err(|source| CrawlError::Selector {
        selector: text.to_owned(),
        source,
    })
}

/// A field to extract from every HTML page: `NAME=SELECTOR` (the text of the first match),
/// `NAME=SELECTOR@ATTR` (an attribute of the first match), or, made with
/// [`all`](Self::all), every match as a list. The value lands in [`PageRecord::fields`] under
/// `NAME` (`null`, or an empty list, when nothing matches).
///
/// ```
/// use weft_crawl::Extract;
///
/// let price = Extract::parse("price=.product .price")?;
/// assert_eq!(price.name(), "price");
/// let images = Extract::parse("images=img.gallery@src")?.all();
/// assert_eq!(images.attr(), Some("src"));
/// // A bad selector is an error that names it.
/// let err = Extract::parse("price=.product[").unwrap_err();
/// assert!(err.to_string().contains("\".product[\""), "{err}");
/// # Ok::<(), weft_crawl::CrawlError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Extract {
    name: String,
    selector: Selector,
    attr: Option<String>,
    all: bool,
}

impl Extract {
    /// Parses `NAME=SELECTOR` or `NAME=SELECTOR@ATTR`.
    ///
    /// # Errors
    ///
    /// [`CrawlError::Extract`] when there is no `=`, the name is empty or already a field of the
    /// record; [`CrawlError::Selector`] when the selector does not parse.
    pub fn parse(spec: &str) -> Result<Self, CrawlError> {
        let bad = |reason: &str| CrawlError::Extract {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=SELECTOR"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad("the field name is empty"));
        }
        if RESERVED.contains(&name) {
            return Err(bad("the field name is taken by the page record"));
        }
        let (css, attr) = match rest.rsplit_once('@') {
            Some((css, attr))
                if !attr.is_empty()
                    && attr
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':')) =>
            {
                (css, Some(attr.to_owned()))
            }
            _ => (rest, None),
        };
        Ok(Extract {
            name: name.to_owned(),
            selector: selector(css.trim())?,
            attr,
            all: false,
        })
    }

    /// Extracts every match, as a list, instead of the first.
    pub fn all(mut self) -> Self {
        self.all = true;
        self
    }

    /// The field name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The attribute extracted, if not the text.
    pub fn attr(&self) -> Option<&str> {
        self.attr.as_deref()
    }

    fn value(&self, element: ElementRef<'_>) -> Option<String> {
        match &self.attr {
            Some(attr) => element.value().attr(attr).map(str::to_owned),
            None => Some(text_of(element)),
        }
    }

    /// The field's value on `doc`.
    pub(crate) fn apply(&self, doc: &Html) -> serde_json::Value {
        use serde_json::Value;
        let mut matches = doc.select(&self.selector);
        if self.all {
            Value::Array(
                matches
                    .filter_map(|e| self.value(e))
                    .map(Value::String)
                    .collect(),
            )
        } else {
            matches
                .next()
                .and_then(|e| self.value(e))
                .map_or(Value::Null, Value::String)
        }
    }
}

/// The text of an element, its whitespace runs collapsed to single spaces.
fn text_of(element: ElementRef<'_>) -> String {
    let mut out = String::new();
    for piece in element.text() {
        for word in piece.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

/// What a per-page handler is given: the parsed document and the URL its links resolve against.
#[derive(Debug)]
#[non_exhaustive]
pub struct HtmlPage<'a> {
    /// The parsed document (html5ever, via `scraper`).
    pub doc: &'a Html,
    /// The page's final URL.
    pub url: &'a Url,
}

type HandlerFn = dyn Fn(ElementRef<'_>, &HtmlPage<'_>, &mut PageRecord) + Send + Sync;

/// A handler registered with [`CrawlConfig::on_html`](super::CrawlConfig::on_html).
#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) selector: Selector,
    pub(crate) run: Arc<HandlerFn>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").finish_non_exhaustive()
    }
}

impl Handler {
    pub(crate) fn new<F>(selector: Selector, handler: F) -> Self
    where
        F: Fn(ElementRef<'_>, &HtmlPage<'_>, &mut PageRecord) + Send + Sync + 'static,
    {
        Handler {
            selector,
            run: Arc::new(handler),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_take_the_first_match_an_attribute_or_every_match() {
        let doc = Html::parse_document(
            r#"<h1> Big
               title </h1><ul><li><a href="/a">A</a></li><li><a href="/b">B</a></li></ul>"#,
        );
        let f = |spec: &str| Extract::parse(spec).unwrap();
        assert_eq!(f("h=h1").apply(&doc), "Big title");
        assert_eq!(f("first=li a@href").apply(&doc), "/a");
        assert_eq!(
            f("all=li a@href").all().apply(&doc),
            serde_json::json!(["/a", "/b"])
        );
        assert_eq!(f("none=table").apply(&doc), serde_json::Value::Null);
        assert_eq!(f("none=table").all().apply(&doc), serde_json::json!([]));
        // An `@` inside the selector is not an attribute.
        assert_eq!(f(r#"m=a[href*="@"]"#).attr(), None);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("nameless", "expected NAME=SELECTOR"),
            ("=h1", "empty"),
            ("title=h1", "taken"),
            ("x=h1[", "\"h1[\""),
            ("x=::nope", "\"::nope\""),
        ] {
            let err = Extract::parse(spec).unwrap_err().to_string();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }
}
