//! What to download: a URL and, optionally, the SHA-256 the file must have.

use std::fmt;

use url::Url;

use super::error::InputError;

/// A SHA-256 digest, parsed from (and shown as) `sha256:<64 lowercase hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parses `sha256:HEX` or bare `HEX` (64 hex digits, any case).
    ///
    /// ```
    /// use weft_download::Sha256Digest;
    /// let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    /// let d = Sha256Digest::parse(&format!("sha256:{empty}")).unwrap();
    /// assert_eq!(d.to_string(), format!("sha256:{empty}"));
    /// assert!(Sha256Digest::parse("sha256:abc").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text).as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            *byte = (hi * 16 + lo) as u8;
        }
        Some(Self(out))
    }

    /// The digest as 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One file to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where to fetch it (`http` or `https`).
    pub url: Url,
    /// The digest the complete file must have; a mismatch fails the download and deletes the
    /// partial file.
    pub sha256: Option<Sha256Digest>,
}

impl Request {
    /// Parses one URL (`http` or `https` only), without a checksum.
    ///
    /// ```
    /// use weft_download::Request;
    /// let r = Request::parse("http://127.0.0.1/a.bin").unwrap();
    /// assert_eq!(r.url.path(), "/a.bin");
    /// assert!(Request::parse("ftp://example.com/x").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, InputError> {
        parse_url(url.trim(), 1).map(|url| Self { url, sha256: None })
    }

    /// Sets the digest the complete file must have.
    pub fn with_sha256(mut self, digest: Sha256Digest) -> Self {
        self.sha256 = Some(digest);
        self
    }
}

fn parse_url(text: &str, line: usize) -> Result<Url, InputError> {
    let url = Url::parse(text).map_err(|source| InputError::Url {
        line,
        text: text.to_owned(),
        source,
    })?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        _ => Err(InputError::Scheme {
            line,
            text: text.to_owned(),
        }),
    }
}

/// Parses a URL list: one URL per line, optionally followed by whitespace and
/// `sha256:<hex>`; blank lines and lines starting with `#` are skipped, as is anything after
/// ` #` on a line.
///
/// ```
/// use weft_download::parse_list;
/// let list = "# mirrors\nhttp://127.0.0.1/a.bin\n\n  http://127.0.0.1/b.bin  # second\n";
/// let requests = parse_list(list).unwrap();
/// assert_eq!(requests.len(), 2);
/// assert_eq!(requests[1].url.path(), "/b.bin");
/// assert!(parse_list("http://127.0.0.1/a nonsense").is_err());
/// ```
pub fn parse_list(text: &str) -> Result<Vec<Request>, InputError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = match raw.find(" #").or_else(|| raw.find("\t#")) {
            Some(at) => &raw[..at],
            None => raw,
        };
        let content = content.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let mut fields = content.split_whitespace();
        let Some(url) = fields.next() else { continue };
        let url = parse_url(url, line)?;
        let sha256 = match fields.next() {
            None => None,
            Some(text) => Some(
                text.starts_with("sha256:")
                    .then(|| Sha256Digest::parse(text))
                    .flatten()
                    .ok_or_else(|| InputError::Checksum {
                        line,
                        text: text.to_owned(),
                    })?,
            ),
        };
        if let Some(extra) = fields.next() {
            return Err(InputError::Trailing {
                line,
                text: extra.to_owned(),
            });
        }
        out.push(Request { url, sha256 });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_keeps_order_and_checksums_and_skips_comments() {
        let hash = "ab".repeat(32);
        let text = format!("#c\nhttp://h/1\nhttp://h/2 sha256:{hash}\n\t\nhttp://h/3 # note\n");
        let reqs = parse_list(&text).unwrap();
        let paths: Vec<_> = reqs.iter().map(|r| r.url.path()).collect();
        assert_eq!(paths, ["/1", "/2", "/3"]);
        assert_eq!(reqs[1].sha256.unwrap().hex(), hash);
        assert!(reqs[0].sha256.is_none());
    }

    #[test]
    fn list_reports_the_bad_line() {
        let err = parse_list("http://h/1\nnot a url\n").unwrap_err();
        assert!(matches!(err, InputError::Url { line: 2, .. }), "{err:?}");
        let err = parse_list("http://h/1 md5:abc").unwrap_err();
        assert!(
            matches!(err, InputError::Checksum { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn digest_rejects_non_hex() {
        assert!(Sha256Digest::parse(&"zz".repeat(32)).is_none());
        assert!(Sha256Digest::parse(&"AB".repeat(32)).is_some());
    }
}
