//! HTTP proxies for the downloader: which proxy a URL goes through, as curl and reqwest decide
//! it from the environment (`http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`, lower or
//! upper case).
//!
//! A plain `http` URL is requested from the proxy in absolute form (`GET http://host/path`); an
//! `https` URL goes through a `CONNECT host:port` tunnel, inside which TLS runs end to end. Only
//! `http://` proxies are supported (a `socks5://` one is reported as an error when the
//! downloader is set up, never silently ignored). Credentials in the proxy URL
//! (`http://user:pass@proxy:3128`) are sent as `Proxy-Authorization: Basic`.

use http::HeaderValue;
use url::Url;

use super::error::ClientError;

/// Which HTTP proxies the downloader uses.
///
/// A plain `http` URL is requested from its proxy in absolute form (`GET http://host/path`);
/// an `https` URL goes through a `CONNECT host:port` tunnel, inside which TLS runs end to end.
/// Only `http://` proxies are supported (any other scheme is an error when the proxy is set,
/// never silently ignored). Credentials in the proxy URL (`http://user:pass@proxy:3128`) are
/// sent as `Proxy-Authorization: Basic`.
///
/// By default ([`Config::new`](super::Config::new)), the ones the environment names; tests and
/// programs that must not depend on the environment use [`Proxies::none`].
///
/// # Examples
///
/// ```
/// use weft_download::Proxies;
///
/// let p = Proxies::none()
///     .http("http://proxy.local:3128")?
///     .no_proxy("localhost, .internal");
/// assert!(p.uses_proxy("http://example.com/a.bin"));
/// assert!(!p.uses_proxy("https://example.com/a.bin")); // no https proxy set
/// assert!(!p.uses_proxy("http://files.internal/a.bin"));
/// # Ok::<(), weft_download::ClientError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    http: Option<Proxy>,
    https: Option<Proxy>,
    /// Lower-case host names or domain suffixes that bypass the proxy; `*` bypasses it always.
    no_proxy: Vec<String>,
}

/// One proxy: where to connect and what to authenticate with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    /// `host:port`, as written (IPv6 in brackets).
    pub(crate) authority: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) auth: Option<HeaderValue>,
}

impl Proxies {
    /// No proxy at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// The proxies the environment names: `http_proxy` for `http` URLs, `https_proxy` for
    /// `https` ones, `all_proxy` for either when its own is unset (lower case first, then upper
    /// case, as curl does; `HTTP_PROXY` in upper case is ignored, as curl does, since CGI
    /// servers set it from a request header), and `no_proxy` / `NO_PROXY`. Empty values count
    /// as unset.
    ///
    /// # Errors
    ///
    /// A proxy URL that cannot be parsed or is not `http://`.
    pub fn from_env() -> Result<Self, ClientError> {
        let all = env_var(&["all_proxy", "ALL_PROXY"]);
        let mut p = Self::none();
        if let Some(u) = env_var(&["http_proxy"]).or_else(|| all.clone()) {
            p = p.http(&u)?;
        }
        if let Some(u) = env_var(&["https_proxy", "HTTPS_PROXY"]).or(all) {
            p = p.https(&u)?;
        }
        Ok(p.no_proxy_from_env())
    }

    /// Takes the hosts that bypass the proxies from `no_proxy` / `NO_PROXY`, when set (for a
    /// proxy given explicitly that should still honour the environment's exceptions).
    ///
    /// ```
    /// use weft_download::Proxies;
    ///
    /// let p = Proxies::none().http("http://proxy.local:3128")?.no_proxy_from_env();
    /// # let _ = p;
    /// # Ok::<(), weft_download::ClientError>(())
    /// ```
    pub fn no_proxy_from_env(self) -> Self {
        match env_var(&["no_proxy", "NO_PROXY"]) {
            Some(list) => self.no_proxy(&list),
            None => self,
        }
    }

    /// The proxy for `http` URLs (`http://[user:pass@]host[:port]`, port 80 by default; a URL
    /// without a scheme is taken as `http://`).
    ///
    /// # Errors
    ///
    /// The URL cannot be parsed, has no host, or is not `http://`.
    pub fn http(mut self, url: &str) -> Result<Self, ClientError> {
        self.http = Some(Proxy::parse(url)?);
        Ok(self)
    }

    /// The proxy for `https` URLs (tunnelled with `CONNECT`); same form as [`http`](Self::http).
    ///
    /// # Errors
    ///
    /// The URL cannot be parsed, has no host, or is not `http://`.
    pub fn https(mut self, url: &str) -> Result<Self, ClientError> {
        self.https = Some(Proxy::parse(url)?);
        Ok(self)
    }

    /// Hosts that bypass the proxies, comma-separated: a name matches itself and its
    /// subdomains (`example.com` and `.example.com` both match `a.example.com`), an address
    /// matches itself, `*` matches every host. Ports are ignored.
    pub fn no_proxy(mut self, list: &str) -> Self {
        self.no_proxy = list
            .split(',')
            .map(|h| h.trim().trim_start_matches('.').to_ascii_lowercase())
            .map(|h| {
                // `host:port` and `[v6]:port`: the port is ignored.
                match h.rsplit_once(':') {
                    Some((host, port))
                        if port.bytes().all(|b| b.is_ascii_digit())
                            && (!host.contains(':') || host.ends_with(']')) =>
                    {
                        host.to_owned()
                    }
                    _ => h,
                }
            })
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        self
    }

    /// Whether a request for `url` goes through a proxy.
    pub fn uses_proxy(&self, url: &str) -> bool {
        Url::parse(url).ok().is_some_and(|u| {
            u.host_str()
                .is_some_and(|h| self.for_target(u.scheme() == "https", h).is_some())
        })
    }

    /// The proxy for a request to `host` (as in a URL, IPv6 in brackets) over TLS or not.
    pub(crate) fn for_target(&self, tls: bool, host: &str) -> Option<&Proxy> {
        let proxy = if tls { &self.https } else { &self.http }.as_ref()?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let bypass = self.no_proxy.iter().any(|n| {
            n == "*"
                || host == *n
                || (host.len() > n.len()
                    && host.ends_with(n.as_str())
                    && host.as_bytes()[host.len() - n.len() - 1] == b'.')
        });
        (!bypass).then_some(proxy)
    }
}

/// The first of `names` set to a non-blank value in the environment.
fn env_var(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .find(|v| !v.trim().is_empty())
}

impl Proxy {
    fn parse(raw: &str) -> Result<Self, ClientError> {
        let invalid = |why: &str| ClientError(format!("invalid proxy {raw:?}: {why}").into());
        let raw = raw.trim();
        let with_scheme = if raw.contains("://") {
            raw.to_owned()
        } else {
            format!("http://{raw}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(invalid("only http:// proxies are supported"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no host"))?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let auth = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let user = decode(url.username());
            let pass = decode(url.password().unwrap_or(""));
            let token = base64(format!("{user}:{pass}").as_bytes());
            Some(
                HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| invalid("unusable credentials"))?,
            )
        };
        Ok(Self {
            authority: format!("{host}:{port}"),
            host,
            port,
            auth,
        })
    }
}

/// Standard base64 with padding (for `Proxy-Authorization: Basic`).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn proxy_urls_parse_with_defaults_and_credentials() {
        let p = Proxy::parse("proxy.local").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.local", 80));
        assert_eq!(p.authority, "proxy.local:80");
        assert!(p.auth.is_none());
        let p = Proxy::parse("http://al%40ice:s3cret@10.0.0.1:3128").unwrap();
        assert_eq!(p.authority, "10.0.0.1:3128");
        // "al@ice:s3cret"
        assert_eq!(p.auth.unwrap(), "Basic YWxAaWNlOnMzY3JldA==");
        let e = Proxy::parse("socks5://10.0.0.1:1080").unwrap_err();
        let why = std::error::Error::source(&e).unwrap().to_string();
        assert!(why.contains("only http://"), "{why}");
        assert!(Proxy::parse("http://").is_err());
    }

    #[test]
    fn no_proxy_matches_hosts_subdomains_addresses_and_star() {
        let p = Proxies::none()
            .http("p:1")
            .unwrap()
            .https("p:2")
            .unwrap()
            .no_proxy(" Example.COM , .internal,10.1.2.3:8080, [::1], localhost ");
        let via = |tls, h: &str| p.for_target(tls, h).map(|x| x.port);
        assert_eq!(via(false, "example.com"), None);
        assert_eq!(via(false, "a.b.example.com"), None);
        assert_eq!(via(false, "notexample.com"), Some(1));
        assert_eq!(via(true, "files.internal"), None);
        assert_eq!(via(true, "10.1.2.3"), None);
        assert_eq!(via(true, "[::1]"), None);
        assert_eq!(via(true, "LOCALHOST."), None);
        assert_eq!(via(true, "example.org"), Some(2));
        let all = Proxies::none().http("p:1").unwrap().no_proxy("*");
        assert_eq!(all.for_target(false, "anything"), None);
        // Without a proxy for the scheme, nothing is proxied.
        assert_eq!(Proxies::none().for_target(false, "example.com"), None);
    }
}
