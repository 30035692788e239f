//! Why a download failed, and why an input list could not be read.

use std::path::PathBuf;
use std::time::Duration;

/// Why one download failed.
///
/// [`is_retryable`](Self::is_retryable) says whether the downloader retries it (with backoff):
/// connection errors, timeouts, 5xx, 408 and 429 are; other 4xx, oversize files, checksum
/// mismatches and redirect problems are not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The server answered with a status that is not a success.
    #[error("server answered {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The wait the server asked for with `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The request could not be sent or its response read (connection refused or reset, TLS,
    /// connect timeout, body cut short).
    #[error("request failed")]
    Http(#[source] HttpError),
    /// Redirects looped, exceeded the configured limit, or pointed nowhere usable.
    #[error("redirect not followed")]
    Redirect(#[source] RedirectError),
    /// No byte arrived for the idle timeout (before the headers or within the body).
    #[error("no data for {0:?}")]
    IdleTimeout(Duration),
    /// The body ended before, or ran past, the length the server announced.
    #[error("body length {actual} does not match the announced {expected} bytes")]
    LengthMismatch {
        /// Bytes the server announced (Content-Length or Content-Range).
        expected: u64,
        /// Bytes received in total (including a resumed prefix).
        actual: u64,
    },
    /// The file is larger than the configured maximum size.
    #[error("file is larger than the {limit}-byte limit")]
    TooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The SHA-256 of the complete file differs from the expected one.
    #[error("sha256 mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The expected digest (lowercase hex).
        expected: String,
        /// The digest of what was received (lowercase hex).
        actual: String,
    },
    /// The server asked to retry later than the configured maximum wait.
    #[error("server asked to retry after {0:?}, longer than allowed")]
    RetryAfterTooLong(Duration),
    /// Reading or writing a local file failed.
    #[error("cannot write {path}")]
    File {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The task running the download panicked (a bug).
    #[error("download task panicked")]
    Panicked,
}

impl DownloadError {
    /// Whether the downloader retries after this error.
    ///
    /// ```
    /// use weft_download::DownloadError;
    /// let busy = DownloadError::Status { status: 503, retry_after: None };
    /// let missing = DownloadError::Status { status: 404, retry_after: None };
    /// assert!(busy.is_retryable());
    /// assert!(!missing.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            // A proxy that refuses with a 4xx (403, 407) refuses again.
            Self::Http(e) => !matches!(
                e,
                HttpError::Url(_)
                    | HttpError::UntrustedCertificate { .. }
                    | HttpError::ProxyRefused {
                        status: 400..=499,
                        ..
                    }
            ),
            Self::IdleTimeout(_) | Self::LengthMismatch { .. } => true,
            Self::Redirect(_)
            | Self::TooLarge { .. }
            | Self::ChecksumMismatch { .. }
            | Self::RetryAfterTooLong(_)
            | Self::File { .. }
            | Self::Panicked => false,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File {
            path: path.into(),
            source,
        }
    }
}

/// Why an HTTP exchange failed (the source of [`DownloadError::Http`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL cannot be requested (no host, or not http or https).
    #[error("cannot request {0}")]
    Url(String),
    /// The host name could not be resolved.
    #[error("cannot resolve {host}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// No address of the host accepted a connection.
    #[error("cannot connect to {host}")]
    Connect {
        /// The host.
        host: String,
        /// The error of the last address tried.
        #[source]
        source: std::io::Error,
    },
    /// Connecting (TCP and TLS) took longer than the connect timeout.
    #[error("connecting to {host} took longer than {timeout:?}")]
    ConnectTimeout {
        /// The host.
        host: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The TLS handshake failed (for example, an untrusted certificate).
    #[error("tls handshake with {host} failed")]
    Tls {
        /// The host.
        host: String,
        /// The TLS error.
        #[source]
        source: std::io::Error,
    },
    /// The server's certificate is not signed by an authority this client trusts (a
    /// self-signed certificate, or one from a private CA): trust that authority with
    /// [`Config::cacert`](crate::Config::cacert) (`--cacert FILE` on the command line).
    #[error(
        "the certificate of {host} is not signed by a trusted authority (trust its CA with --cacert FILE)"
    )]
    UntrustedCertificate {
        /// The host.
        host: String,
        /// The TLS error.
        #[source]
        source: std::io::Error,
    },
    /// The proxy could not be reached, or its answer to `CONNECT` was unreadable.
    #[error("cannot use proxy {proxy}")]
    Proxy {
        /// The proxy, `host:port`.
        proxy: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The proxy refused to open a tunnel (`CONNECT`) to the target; 407 means it wants
    /// credentials (`http://user:pass@proxy:port`).
    #[error("proxy {proxy} refused a tunnel to {target} with status {status}")]
    ProxyRefused {
        /// The proxy, `host:port`.
        proxy: String,
        /// The `host:port` asked for.
        target: String,
        /// The proxy's status code.
        status: u16,
    },
    /// The request or its response failed on the connection (reset, closed before the end,
    /// malformed).
    #[error("http exchange failed")]
    Exchange(#[source] hyper::Error),
}

/// Why a redirect was not followed (the source of [`DownloadError::Redirect`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// More redirects than the configured limit.
    #[error("more than {0} redirects")]
    TooMany(usize),
    /// The redirect leads back to a URL already requested.
    #[error("redirect loop back to {0}")]
    Loop(url::Url),
    /// The `Location` is not a valid http or https URL.
    #[error("invalid redirect location {0:?}")]
    Location(String),
}

/// A line of a URL list that could not be parsed (see [`parse_list`](super::parse_list)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The URL is malformed.
    #[error("line {line}: invalid url {text:?}")]
    Url {
        /// 1-based line number (1 for a single argument).
        line: usize,
        /// The offending text.
        text: String,
        /// Why it is invalid.
        #[source]
        source: url::ParseError,
    },
    /// The URL's scheme is not `http` or `https`.
    #[error("line {line}: unsupported scheme in {text:?} (only http and https)")]
    Scheme {
        /// 1-based line number.
        line: usize,
        /// The offending text.
        text: String,
    },
    /// The checksum is not `sha256:` followed by 64 hex digits.
    #[error("line {line}: invalid checksum {text:?} (expected sha256:<64 hex digits>)")]
    Checksum {
        /// 1-based line number.
        line: usize,
        /// The offending text.
        text: String,
    },
    /// The line has more fields than a URL and a checksum.
    #[error("line {line}: unexpected text {text:?} after the url and checksum")]
    Trailing {
        /// 1-based line number.
        line: usize,
        /// The offending text.
        text: String,
    },
}

/// The HTTP client could not be set up (for example, the TLS backend failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the http client")]
pub struct ClientError(#[source] pub(crate) Box<dyn std::error::Error + Send + Sync>);
