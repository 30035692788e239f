//! URL normalisation and the crawl's scope (which links are followed).

use regex::Regex;
use url::{Host, Origin, Url};

use super::error::CrawlError;
use super::record::Skip;

/// Normalises a URL the way the crawler compares them: only `http` and `https` URLs with a host
/// are kept, the fragment and any credentials (`user:password@`) are dropped, and (by the `url`
/// crate's parsing) the scheme and host are lowercased, a default port is removed, `.`/`..`
/// path segments are resolved and an empty path becomes `/`.
///
/// Credentials are dropped so that a link like `http://user:pass@host/` is never requested with
/// them (a page must not make the crawler log in anywhere) and never printed.
///
/// Returns `None` for URLs the crawler never fetches (`mailto:`, `javascript:`, `data:`, ...).
///
/// ```
/// use weft_crawl::normalize;
/// use url::Url;
///
/// let url = Url::parse("HTTP://Example.COM:80/a/./b/../c?q=1#section")?;
/// assert_eq!(normalize(url).unwrap().as_str(), "http://example.com/a/c?q=1");
/// assert!(normalize(Url::parse("mailto:someone@example.com")?).is_none());
/// let url = Url::parse("http://user:secret@example.com/")?;
/// assert_eq!(normalize(url).unwrap().as_str(), "http://example.com/");
/// # Ok::<(), url::ParseError>(())
/// ```
pub fn normalize(mut url: Url) -> Option<Url> {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_fragment(None);
    if !url.username().is_empty() || url.password().is_some() {
        // Both cannot fail on an http(s) URL with a host (checked above).
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    Some(url)
}

/// Parses a seed URL as [`Crawler::crawl`](super::Crawler::crawl) does: an absolute http(s)
/// URL with a host, [normalised](normalize) (credentials dropped). A command line checks its
/// seeds with this before it touches any output.
///
/// ```
/// use weft_crawl::parse_seed;
///
/// assert_eq!(parse_seed(" http://Example.com ")?.as_str(), "http://example.com/");
/// assert!(parse_seed("ftp://example.com/").is_err());
/// # Ok::<(), weft_crawl::CrawlError>(())
/// ```
///
/// # Errors
///
/// [`CrawlError::InvalidSeed`] with the seed (its credentials, if any, removed) and why.
pub fn parse_seed(seed: &str) -> Result<Url, CrawlError> {
    let invalid = |reason: String| CrawlError::InvalidSeed {
        seed: redact(seed),
        reason,
    };
    let url = Url::parse(seed.trim()).map_err(|e| invalid(e.to_string()))?;
    normalize(url).ok_or_else(|| invalid("not an http(s) url with a host".to_owned()))
}

/// `seed` without the password of a `scheme://user:password@` prefix, for error messages.
fn redact(seed: &str) -> String {
    match Url::parse(seed.trim()) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("REDACTED"));
            url.to_string()
        }
        Ok(_) => seed.to_owned(),
        Err(_) => match (seed.find("://"), seed.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://REDACTED@{}", &seed[..scheme], &seed[at + 1..])
            }
            _ => seed.to_owned(),
        },
    }
}

/// The key that politeness (per-host concurrency, delay) and robots.txt are tracked by: the
/// URL's origin, `scheme://host:port`.
pub(crate) fn host_key(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Which discovered links the crawler follows: the seeds' origins (scheme, host and port) or
/// an allowed domain, then the include and exclude patterns over the normalised URL.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    origins: Vec<Origin>,
    domains: Vec<String>,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Scope {
    /// `origins` are always in scope; `domains` widen it to those hosts and their subdomains
    /// (any port, http or https).
    pub(crate) fn new(
        origins: Vec<Origin>,
        domains: Vec<String>,
        include: Vec<Regex>,
        exclude: Vec<Regex>,
    ) -> Self {
        let domains = domains
            .into_iter()
            .map(|d| {
                d.trim()
                    .trim_end_matches('.')
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .filter(|d| !d.is_empty())
            .collect();
        Scope {
            origins,
            domains,
            include,
            exclude,
        }
    }

    /// Whether the URL is on a seed's origin, or its host is one of the allowed domains or (for
    /// names, not addresses) a subdomain of one.
    pub(crate) fn allows_host(&self, url: &Url) -> bool {
        if self.origins.contains(&url.origin()) {
            return true;
        }
        match url.host() {
            Some(Host::Domain(host)) => self.domains.iter().any(|d| {
                host == d
                    || (host.len() > d.len()
                        && host.ends_with(d.as_str())
                        && host.as_bytes()[host.len() - d.len() - 1] == b'.')
            }),
            Some(Host::Ipv4(ip)) => self.domains.iter().any(|d| *d == ip.to_string()),
            Some(Host::Ipv6(ip)) => self.domains.iter().any(|d| *d == ip.to_string()),
            None => false,
        }
    }

    /// Whether a discovered link is followed: in scope (see [`allows_host`](Self::allows_host)),
    /// matching an include pattern (when there are any) and no exclude pattern; else why not.
    pub(crate) fn check(&self, url: &Url) -> Result<(), Skip> {
        if !self.allows_host(url) {
            return Err(Skip::Scope);
        }
        let s = url.as_str();
        if (self.include.is_empty() || self.include.iter().any(|r| r.is_match(s)))
            && !self.exclude.iter().any(|r| r.is_match(s))
        {
            Ok(())
        } else {
            Err(Skip::Filter)
        }
    }

    #[cfg(test)]
    pub(crate) fn allows(&self, url: &Url) -> bool {
        self.check(url).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn normalize_drops_fragment_default_port_and_lowercases_host() {
        let n = normalize(url("https://WWW.Example.org:443/X/#top")).unwrap();
        assert_eq!(n.as_str(), "https://www.example.org/X/");
        let n = normalize(url("http://127.0.0.1:8080/a#b")).unwrap();
        assert_eq!(n.as_str(), "http://127.0.0.1:8080/a");
    }

    #[test]
    fn normalize_rejects_non_http_schemes() {
        for s in [
            "ftp://a.b/",
            "javascript:void(0)",
            "data:text/plain,hi",
            "file:///etc",
        ] {
            assert!(normalize(url(s)).is_none(), "{s}");
        }
    }

    #[test]
    fn host_key_separates_ports_and_schemes() {
        assert_ne!(
            host_key(&url("http://a.b/")),
            host_key(&url("http://a.b:81/"))
        );
        assert_ne!(
            host_key(&url("http://a.b/")),
            host_key(&url("https://a.b/"))
        );
        assert_eq!(
            host_key(&url("http://a.b/x")),
            host_key(&url("http://A.B:80/y"))
        );
    }

    #[test]
    fn normalize_strips_credentials() {
        let n = normalize(url("http://user:pa%20ss@h.test:81/x")).unwrap();
        assert_eq!(n.as_str(), "http://h.test:81/x");
        let n = normalize(url("https://user@h.test/")).unwrap();
        assert_eq!(n.as_str(), "https://h.test/");
    }

    #[test]
    fn scope_by_default_is_the_seed_origin_not_the_host() {
        let scope = Scope::new(
            vec![url("http://127.0.0.1:8080/").origin()],
            vec![],
            vec![],
            vec![],
        );
        assert!(scope.allows(&url("http://127.0.0.1:8080/a")));
        assert_eq!(
            scope.check(&url("http://127.0.0.1:8081/a")),
            Err(Skip::Scope)
        );
        assert_eq!(
            scope.check(&url("https://127.0.0.1:8080/a")),
            Err(Skip::Scope)
        );
        assert_eq!(
            scope.check(&url("http://127.0.0.2:8080/a")),
            Err(Skip::Scope)
        );
    }

    #[test]
    fn scope_matches_domains_and_subdomains_only() {
        let scope = Scope::new(
            vec![],
            vec!["example.com".into(), "127.0.0.1".into(), "[::1]".into()],
            vec![],
            vec![],
        );
        assert!(scope.allows(&url("http://[::1]:9/")));
        assert!(scope.allows(&url("http://example.com/")));
        assert!(scope.allows(&url("http://docs.example.com/")));
        assert!(!scope.allows(&url("http://badexample.com/")));
        assert!(!scope.allows(&url("http://example.com.evil.net/")));
        assert!(scope.allows(&url("http://127.0.0.1:9/")));
        assert!(!scope.allows(&url("http://127.0.0.2/")));
    }

    #[test]
    fn scope_applies_include_then_exclude() {
        let scope = Scope::new(
            vec![],
            vec!["a.b".into()],
            vec![Regex::new("/docs/").unwrap()],
            vec![Regex::new(r"\.pdf$").unwrap()],
        );
        assert!(scope.allows(&url("http://a.b/docs/x.html")));
        assert_eq!(
            scope.check(&url("http://a.b/blog/x.html")),
            Err(Skip::Filter)
        );
        assert_eq!(
            scope.check(&url("http://a.b/docs/x.pdf")),
            Err(Skip::Filter)
        );
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// URL-ish text: schemes, credentials, hosts, ports, dot segments, escapes, fragments.
        fn url_text() -> impl Strategy<Value = String> {
            (
                "(http://|HTTPS://|ftp://|)",
                "(|user:pa%40ss@|u@|:@)",
                "(example\\.com|EXAMPLE\\.com\\.|127\\.0\\.0\\.1|\\[::1\\]|169\\.254\\.169\\.254|xn--nxasmq6b\\.test|[a-z0-9.-]{0,12})",
                "(|:80|:443|:8080|:0)",
                "(/|\\.|\\.\\.|%2e|%2F|[a-z]|\\?|#|&|=| ){0,20}",
            )
                .prop_map(|(s, c, h, p, rest)| format!("{s}{c}{h}{p}{rest}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn normalized_urls_are_fetchable_credential_free_and_stable(text in url_text()) {
                let _ = parse_seed(&text);
                let Ok(url) = Url::parse(&text) else { return Ok(()) };
                let Some(n) = normalize(url) else { return Ok(()) };
                prop_assert!(matches!(n.scheme(), "http" | "https"));
                prop_assert!(n.host().is_some());
                prop_assert!(n.fragment().is_none());
                prop_assert!(n.username().is_empty() && n.password().is_none());
                // Idempotent, and what is printed parses back to the same URL.
                let again = normalize(n.clone());
                prop_assert_eq!(again.as_ref(), Some(&n));
                let reparsed = Url::parse(n.as_str()).ok();
                prop_assert_eq!(reparsed.as_ref(), Some(&n));
            }

            #[test]
            fn the_default_scope_is_exactly_the_seed_origins(seed in url_text(), link in url_text()) {
                let (Ok(seed), Ok(link)) = (Url::parse(&seed), Url::parse(&link)) else {
                    return Ok(());
                };
                let (Some(seed), Some(link)) = (normalize(seed), normalize(link)) else {
                    return Ok(());
                };
                let scope = Scope::new(vec![seed.origin()], vec![], vec![], vec![]);
                prop_assert_eq!(scope.allows(&link), link.origin() == seed.origin());
            }
        }
    }
}
