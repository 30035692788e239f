//! Reading one sitemap document: gzip if it is gzip, then a streaming XML parse that keeps
//! only the `<loc>` of each entry.
//!
//! The document is never decompressed whole: the decompressor feeds the XML reader through a
//! cap of `max_bytes`, so a gzip bomb stops there, and only the entries are kept (at most
//! `max_urls` of them). The XML reader expands no entities but the five predefined ones and
//! character references, so a DTD cannot blow it up either.

use std::io::{BufReader, Read};

use flate2::read::MultiGzDecoder;
use quick_xml::Reader;
use quick_xml::events::Event;

use super::{SitemapError, SitemapLimits};

/// What a document is, by its root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `<urlset>`: pages.
    Urlset,
    /// `<sitemapindex>`: more sitemaps.
    Index,
}

/// A document read as far as it could be.
#[derive(Debug)]
pub(crate) struct Document {
    /// `None` if no root element was read.
    pub(crate) kind: Option<Kind>,
    /// The entries' `<loc>` text: entities resolved, whitespace around it trimmed.
    pub(crate) locs: Vec<String>,
    /// Why reading stopped early, if it did (the entries before are kept).
    pub(crate) error: Option<SitemapError>,
}

/// A `<loc>` longer than this is dropped: the protocol allows 2,048 characters, and the cap
/// keeps one runaway text node from holding the whole document in memory twice.
const MAX_LOC: usize = 8 * 1024;

/// Reads a document's entries. `cut` says the body was already cut at the size cap while it
/// was downloaded. Gzip is recognised by its magic number, whatever the URL or headers say
/// (`.xml.gz`, `Content-Encoding: gzip`, `application/x-gzip` and plain XML served under any
/// of them all occur).
pub(crate) fn read(body: &[u8], cut: bool, limits: &SitemapLimits) -> Document {
    let max_bytes = limits.get_max_bytes();
    let source: Box<dyn Read + '_> = if body.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: `cat a.gz b.gz` is a valid gzip file, and some servers write them.
        Box::new(MultiGzDecoder::new(body))
    } else {
        Box::new(body)
    };
    let mut capped = Capped {
        inner: source,
        left: max_bytes,
        over: false,
    };
    let mut doc = entries(&mut capped, limits.get_max_urls());
    if capped.over || cut {
        // The cut, not the broken XML it leaves, is what went wrong.
        doc.error = Some(SitemapError::TooLarge { limit: max_bytes });
    }
    doc
}

/// The streaming parse. Structure, not namespaces, decides what an entry is: the root's
/// local name gives the kind, and only a `loc` that is a child of a root's `url` or `sitemap`
/// child counts, so prefixed documents (`<sm:urlset>`) work, and the `<image:loc>` of an
/// image sitemap (one level deeper) is not taken for a page.
fn entries(source: &mut dyn Read, max_urls: usize) -> Document {
    let mut reader = Reader::from_reader(BufReader::new(source));
    let mut doc = Document {
        kind: None,
        locs: Vec::new(),
        error: None,
    };
    let mut buf = Vec::new();
    // Elements open; 1 is the root.
    let mut depth = 0usize;
    // The open depth-2 element is an entry (`url` in a url set, `sitemap` in an index).
    let mut in_entry = false;
    // Inside a depth-3 `loc` of an entry: its text so far, and whether it went past MAX_LOC.
    let mut loc: Option<String> = None;
    let mut loc_too_long = false;
    loop {
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(e) => {
                doc.error = Some(match e {
                    // Only the gzip decoder under the reader fails with I/O errors.
                    quick_xml::Error::Io(io) => SitemapError::Gzip(io.to_string()),
                    other => SitemapError::Xml {
                        position: reader.error_position(),
                        message: other.to_string(),
                    },
                });
                return doc;
            }
        };
        match event {
            Event::Start(e) => {
                depth += 1;
                let name = e.local_name();
                let name = name.as_ref();
                match depth {
                    1 => {
                        if let Err(error) = root(&mut doc, name) {
                            doc.error = Some(error);
                            return doc;
                        }
                    }
                    2 => {
                        in_entry = matches!(
                            (doc.kind, name),
                            (Some(Kind::Urlset), "url") | (Some(Kind::Index), "sitemap")
                        );
                    }
                    3 if in_entry && name == "loc" => {
                        loc = Some(String::new());
                        loc_too_long = false;
                    }
                    _ => {}
                }
            }
            Event::Empty(e) if depth == 0 => {
                // `<urlset/>`: a sitemap with no entries.
                if let Err(error) = root(&mut doc, e.local_name().as_ref()) {
                    doc.error = Some(error);
                    return doc;
                }
            }
            Event::End(_) => {
                if let Some(text) = loc.take().filter(|_| depth == 3 && !loc_too_long) {
                    let text = text.trim();
                    if !text.is_empty() {
                        if doc.locs.len() >= max_urls {
                            doc.error = Some(SitemapError::TooManyUrls { limit: max_urls });
                            return doc;
                        }
                        doc.locs.push(text.to_owned());
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                if let Some(text) = &mut loc {
                    push_bounded(text, &t.xml10_content(), &mut loc_too_long);
                }
            }
            Event::CData(c) => {
                if let Some(text) = &mut loc {
                    push_bounded(text, &c.xml10_content(), &mut loc_too_long);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(text) = &mut loc {
                    // `&amp;` in a URL is the common case; the protocol requires it.
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c.to_string()),
                        Ok(None) => {
                            quick_xml::escape::resolve_predefined_entity(&r).map(str::to_owned)
                        }
                        Err(_) => None,
                    };
                    match resolved {
                        Some(s) => push_bounded(text, &s, &mut loc_too_long),
                        None => {
                            doc.error = Some(SitemapError::Xml {
                                position: reader.buffer_position(),
                                message: format!("unknown entity &{};", &*r),
                            });
                            return doc;
                        }
                    }
                }
            }
            Event::Eof => {
                if depth > 0 {
                    doc.error = Some(SitemapError::Xml {
                        position: reader.buffer_position(),
                        message: format!("the document ends inside {depth} open elements"),
                    });
                } else if doc.kind.is_none() {
                    doc.error = Some(SitemapError::NotASitemap {
                        root: String::new(),
                    });
                }
                return doc;
            }
            _ => {}
        }
        buf.clear();
    }
}

fn root(doc: &mut Document, name: &str) -> Result<(), SitemapError> {
    doc.kind = match name {
        "urlset" => Some(Kind::Urlset),
        "sitemapindex" => Some(Kind::Index),
        other => {
            return Err(SitemapError::NotASitemap {
                root: other.to_owned(),
            });
        }
    };
    Ok(())
}

fn push_bounded(text: &mut String, more: &str, too_long: &mut bool) {
    if text.len() + more.len() > MAX_LOC {
        *too_long = true;
    } else {
        text.push_str(more);
    }
}

/// A reader that ends after `left` bytes, noting whether there was more.
struct Capped<R> {
    inner: R,
    left: usize,
    over: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            if !self.over {
                // One byte more tells a document of exactly the cap from a longer one.
                let mut probe = [0u8; 1];
                self.over = self.inner.read(&mut probe)? > 0;
            }
            return Ok(0);
        }
        let room = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..room])?;
        self.left -= n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn limits() -> SitemapLimits {
        SitemapLimits::default()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).expect("in memory");
        enc.finish().expect("in memory")
    }

    #[test]
    fn a_urlset_gives_its_locs_trimmed_with_entities_and_cdata_resolved() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
            <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
                    xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
              <url>
                <loc>
                   http://a.test/one?x=1&amp;y=2
                </loc>
                <lastmod>2026-01-01</lastmod>
                <image:image><image:loc>http://a.test/pic.jpg</image:loc></image:image>
              </url>
              <url><loc><![CDATA[http://a.test/two?a&b]]></loc></url>
              <url><loc>http://a.test/&#x74;hree</loc></url>
              <url><loc>   </loc></url>
            </urlset>"#;
        let doc = read(xml, false, &limits());
        assert_eq!(doc.kind, Some(Kind::Urlset));
        assert_eq!(doc.error, None);
        assert_eq!(
            doc.locs,
            [
                "http://a.test/one?x=1&y=2",
                "http://a.test/two?a&b",
                "http://a.test/three"
            ]
        );
    }

    #[test]
    fn prefixed_elements_and_indexes_are_recognised_by_local_name() {
        let xml = br#"<sm:sitemapindex xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9">
              <sm:sitemap><sm:loc>http://a.test/s1.xml.gz</sm:loc></sm:sitemap>
              <sm:sitemap><sm:loc>http://a.test/s2.xml</sm:loc></sm:sitemap>
            </sm:sitemapindex>"#;
        let doc = read(xml, false, &limits());
        assert_eq!(doc.kind, Some(Kind::Index));
        assert_eq!(
            doc.locs,
            ["http://a.test/s1.xml.gz", "http://a.test/s2.xml"]
        );
        // A `loc` of the wrong entry kind is not an entry.
        let mixed = b"<urlset><sitemap><loc>http://a.test/x</loc></sitemap></urlset>";
        assert!(read(mixed, false, &limits()).locs.is_empty());
    }

    #[test]
    fn gzip_is_recognised_by_its_magic_number_and_may_have_several_members() {
        let mut body = gzip(b"<urlset><url><loc>http://a.test/1</loc></url>");
        body.extend(gzip(b"<url><loc>http://a.test/2</loc></url></urlset>"));
        let doc = read(&body, false, &limits());
        assert_eq!(doc.error, None);
        assert_eq!(doc.locs, ["http://a.test/1", "http://a.test/2"]);
    }

    #[test]
    fn truncated_gzip_keeps_the_entries_before_and_says_so() {
        let mut xml = String::from("<urlset>");
        for i in 0..2000 {
            xml.push_str(&format!("<url><loc>http://a.test/{i}</loc></url>"));
        }
        xml.push_str("</urlset>");
        let body = gzip(xml.as_bytes());
        let doc = read(&body[..body.len() / 2], false, &limits());
        assert!(
            matches!(doc.error, Some(SitemapError::Gzip(_))),
            "{:?}",
            doc.error
        );
        assert!(!doc.locs.is_empty() && doc.locs.len() < 2000);
        assert_eq!(doc.locs[0], "http://a.test/0");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_byte_cap() {
        // 64 MiB of spaces inside a url set, from a few hundred KiB of gzip.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(b"<urlset><url><loc>http://a.test/first</loc></url>")
            .expect("in memory");
        let spaces = vec![b' '; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&spaces).expect("in memory");
        }
        enc.write_all(b"<url><loc>http://a.test/last</loc></url></urlset>")
            .expect("in memory");
        let bomb = enc.finish().expect("in memory");
        let doc = read(&bomb, false, &limits().max_bytes(1 << 20));
        assert_eq!(doc.error, Some(SitemapError::TooLarge { limit: 1 << 20 }));
        assert_eq!(doc.locs, ["http://a.test/first"]);
        // Exactly at the cap is not over it.
        let exact = b"<urlset/>";
        let doc = read(exact, false, &limits().max_bytes(exact.len()));
        assert_eq!((doc.kind, doc.error), (Some(Kind::Urlset), None));
    }

    #[test]
    fn entries_past_the_url_cap_are_ignored_with_an_error() {
        let xml =
            b"<urlset><url><loc>http://a.test/1</loc></url><url><loc>http://a.test/2</loc></url>\
                    <url><loc>http://a.test/3</loc></url></urlset>";
        let doc = read(xml, false, &limits().max_urls(2));
        assert_eq!(doc.locs, ["http://a.test/1", "http://a.test/2"]);
        assert_eq!(doc.error, Some(SitemapError::TooManyUrls { limit: 2 }));
    }

    #[test]
    fn malformed_or_foreign_documents_are_errors_not_panics() {
        type Expected = fn(&SitemapError) -> bool;
        let cases: [(&[u8], Expected); 5] = [
            (
                b"<urlset><url><loc>http://a.test/1</loc></url><url></urlset>",
                |e| matches!(e, SitemapError::Xml { .. }),
            ),
            (b"<urlset><url><loc>http://a.test/1</loc></url>", |e| {
                matches!(e, SitemapError::Xml { .. })
            }),
            (
                b"<!doctype html><html><body>Not found</body></html>",
                |e| matches!(e, SitemapError::NotASitemap { root } if root == "html"),
            ),
            (b"", |e| matches!(e, SitemapError::NotASitemap { .. })),
            (
                b"<urlset><url><loc>http://a.test/&bogus;</loc></url></urlset>",
                |e| matches!(e, SitemapError::Xml { message, .. } if message.contains("bogus")),
            ),
        ];
        for (body, expected) in cases {
            let doc = read(body, false, &limits());
            let error = doc.error.expect("an error");
            assert!(
                expected(&error),
                "{}: {error:?}",
                String::from_utf8_lossy(body)
            );
        }
        // The entries before the damage are kept.
        let doc = read(
            b"<urlset><url><loc>http://a.test/1</loc></url><url></urlset>",
            false,
            &limits(),
        );
        assert_eq!(doc.locs, ["http://a.test/1"]);
    }

    /// Sitemap-ish fragments, well formed or not, to glue together.
    fn fragments() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                Just(b"<urlset>".to_vec()),
                Just(b"</urlset>".to_vec()),
                Just(b"<sitemapindex><sitemap>".to_vec()),
                Just(b"<url><loc>".to_vec()),
                Just(b"</loc></url>".to_vec()),
                Just(b"<![CDATA[x]]>".to_vec()),
                Just(b"&amp;&#x41;&#0;&#xFFFFFFFF;&bogus;&".to_vec()),
                Just(b"<!DOCTYPE x [<!ENTITY a \"aaaa\">]>".to_vec()),
                Just(vec![0x1f, 0x8b, 8, 0]),
                "[ -~]{0,20}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..20),
            ],
            0..20,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_body_plain_or_gzip_reads_within_the_limits_without_panicking(
            body in fragments(),
            compress in proptest::prelude::any::<bool>(),
            cut in proptest::prelude::any::<bool>(),
        ) {
            let body = if compress { gzip(&body) } else { body };
            let limits = limits().max_urls(3).max_bytes(64);
            let doc = read(&body, cut, &limits);
            proptest::prop_assert!(doc.locs.len() <= 3);
            proptest::prop_assert!(doc.locs.iter().all(|l| !l.is_empty() && l.trim() == l));
        }
    }

    #[test]
    fn a_body_cut_while_downloading_is_too_large() {
        let doc = read(
            b"<urlset><url><loc>http://a.test/1</loc></url><u",
            true,
            &limits(),
        );
        assert_eq!(doc.locs, ["http://a.test/1"]);
        assert!(matches!(doc.error, Some(SitemapError::TooLarge { .. })));
    }
}
