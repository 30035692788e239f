//! URL normalisation and the crawl's scope (which links are followed).

use regex::Regex;
use url::{Host, Url};

/// Normalises a URL the way the crawler compares them: only `http` and `https` URLs with a host
/// are kept, the fragment is dropped, and (by the `url` crate's parsing) the scheme and host are
/// lowercased, a default port is removed, `.`/`..` path segments are resolved and an empty path
/// becomes `/`.
///
/// Returns `None` for URLs the crawler never fetches (`mailto:`, `javascript:`, `data:`, ...).
///
/// ```
/// use weft_apps::crawl::normalize;
/// use url::Url;
///
/// let url = Url::parse("HTTP://Example.COM:80/a/./b/../c?q=1#section")?;
/// assert_eq!(normalize(url).unwrap().as_str(), "http://example.com/a/c?q=1");
/// assert!(normalize(Url::parse("mailto:someone@example.com")?).is_none());
/// # Ok::<(), url::ParseError>(())
/// ```
pub fn normalize(mut url: Url) -> Option<Url> {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_fragment(None);
    Some(url)
}

/// The key that politeness (per-host concurrency, delay) and robots.txt are tracked by: the
/// URL's origin, `scheme://host:port`.
pub(crate) fn host_key(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Which discovered links the crawler follows: allowed domains plus include and exclude
/// patterns over the normalised URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    domains: Vec<String>,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Scope {
    pub(crate) fn new(domains: Vec<String>, include: Vec<Regex>, exclude: Vec<Regex>) -> Self {
        let domains = domains
            .into_iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        Scope {
            domains,
            include,
            exclude,
        }
    }

    /// Whether the host is one of the allowed domains or (for names, not addresses) a
    /// subdomain of one.
    pub(crate) fn allows_host(&self, url: &Url) -> bool {
        match url.host() {
            Some(Host::Domain(host)) => self.domains.iter().any(|d| {
                host == d
                    || (host.len() > d.len()
                        && host.ends_with(d.as_str())
                        && host.as_bytes()[host.len() - d.len() - 1] == b'.')
            }),
            Some(host @ (Host::Ipv4(_) | Host::Ipv6(_))) => {
                let host = host.to_string();
                self.domains.contains(&host)
            }
            None => false,
        }
    }

    /// Whether a discovered link is followed: its host is allowed, it matches an include
    /// pattern (when there are any) and no exclude pattern.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        let s = url.as_str();
        self.allows_host(url)
            && (self.include.is_empty() || self.include.iter().any(|r| r.is_match(s)))
            && !self.exclude.iter().any(|r| r.is_match(s))
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
    fn scope_matches_domains_and_subdomains_only() {
        let scope = Scope::new(
            vec!["example.com".into(), "127.0.0.1".into()],
            vec![],
            vec![],
        );
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
            vec!["a.b".into()],
            vec![Regex::new("/docs/").unwrap()],
            vec![Regex::new(r"\.pdf$").unwrap()],
        );
        assert!(scope.allows(&url("http://a.b/docs/x.html")));
        assert!(!scope.allows(&url("http://a.b/blog/x.html")));
        assert!(!scope.allows(&url("http://a.b/docs/x.pdf")));
    }
}
