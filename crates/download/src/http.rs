//! The downloader's HTTP/1.1 client (on hyper's connection API): one request at a time per
//! connection, idle connections kept per origin, redirects followed with a limit.
//!
//! Why not a pooled client such as reqwest (hyper-util's): there a connection goes back to its
//! pool from a task of its own, after the connection has seen the end of the body. A download
//! that starts right after another one finished therefore usually finds no idle connection and
//! opens a new one: about 150 connections for 1,000 small files at 64 at a time. Here the
//! download that read a body to its end puts the connection back itself, before it returns, so
//! the next download of its worker finds it; a connection not yet done with its last response
//! is waited for (`ready`) rather than replaced. So a batch opens at most one connection per
//! download running at once against a host.
//!
//! A connection is reused only after its response body was read to the end; a response dropped
//! earlier closes its connection (HTTP/1 cannot abandon a body otherwise). An idle connection
//! the server closed meanwhile is noticed when it is taken (or when the request could not be
//! written on it) and replaced by a new one without counting as a failed attempt.
//!
//! Proxies (see [`Proxies`]): a plain `http` URL is requested from its proxy in absolute form;
//! an `https` one through a `CONNECT` tunnel. TLS is rustls with the Mozilla roots
//! (`webpki-roots`), as reqwest's `rustls-tls` does.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use url::Url;

use super::error::{DownloadError, HttpError, RedirectError};
use super::proxy::{Proxies, Proxy};

type Sender = SendRequest<Empty<Bytes>>;

/// How long an idle connection is kept (servers close theirs after a similar time).
const IDLE_FOR: Duration = Duration::from_secs(60);

/// The largest redirect body read so that its connection can be reused; a larger one closes it.
const DRAIN_MAX: usize = 64 * 1024;

/// Where a connection goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    tls: bool,
    /// As in the URL (an IPv6 address in brackets).
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &Url) -> Result<Self, HttpError> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(HttpError::Url(url.to_string())),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| HttpError::Url(url.to_string()))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        Ok(Self { tls, host, port })
    }

    /// The host without IPv6 brackets, for resolving and TLS names.
    fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) user_agent: String,
    pub(crate) max_redirects: usize,
    /// Idle connections kept per origin.
    pub(crate) max_idle_per_host: usize,
    pub(crate) proxies: Proxies,
}

/// An HTTP/1.1 client with a connection pool that downloads hand their connections back to
/// (see the [module docs](self)).
pub(crate) struct Client {
    idle: Mutex<HashMap<Origin, Vec<(Sender, Instant)>>>,
    config: ClientConfig,
    user_agent: HeaderValue,
    tls: TlsConnector,
    h1: http1::Builder,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(
        config: ClientConfig,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let user_agent = HeaderValue::from_str(&config.user_agent)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            idle: Mutex::default(),
            user_agent,
            tls: TlsConnector::from(Arc::new(tls)),
            h1: http1::Builder::new(),
            config,
        })
    }

    /// Sends `GET url` with `headers` added, following redirects (with the same headers).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the connection in use (if any); nothing else is lost.
    pub(crate) async fn get(
        &self,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<Response<'_>, DownloadError> {
        let mut url = url.clone();
        let mut previous: Vec<Url> = Vec::new();
        loop {
            let origin = Origin::of(&url).map_err(DownloadError::Http)?;
            let (parts, body, sender) = self
                .send(&url, &origin, headers)
                .await
                .map_err(DownloadError::Http)?;
            let mut response = Response {
                client: self,
                status: parts.status,
                headers: parts.headers,
                body,
                conn: Some((origin, sender)),
            };
            let Some(location) = redirect_location(&response) else {
                return Ok(response);
            };
            let next = url
                .join(&location)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or(DownloadError::Redirect(RedirectError::Location(location)))?;
            previous.push(url);
            if previous.len() > self.config.max_redirects {
                return Err(DownloadError::Redirect(RedirectError::TooMany(
                    self.config.max_redirects,
                )));
            }
            if previous.contains(&next) {
                return Err(DownloadError::Redirect(RedirectError::Loop(next)));
            }
            response.drain().await;
            url = next;
        }
    }

    /// One request on an idle connection to `origin`, or a new one. Gives the response head,
    /// its body, and the connection to hand back once the body is read.
    async fn send(
        &self,
        url: &Url,
        origin: &Origin,
        headers: &HeaderMap,
    ) -> Result<(http::response::Parts, Incoming, Sender), HttpError> {
        // Decided once: connections to `origin` (idle ones too) all go the same way.
        let proxy = self.config.proxies.for_target(origin.tls, &origin.host);
        loop {
            let (mut sender, reused) = match self.take_idle(origin) {
                Some(sender) => (sender, true),
                None => (self.connect(origin, proxy).await?, false),
            };
            // An idle connection may still be finishing its last response (it is ready once
            // it has seen the end of it), or be closed by now.
            if let Err(e) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(HttpError::Exchange(e));
            }
            let request = self.request(url, origin, proxy, headers)?;
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    return Ok((parts, body, sender));
                }
                // Not written: the server closed the reused connection first. Try another.
                Err(e) if reused && e.message().is_some() => continue,
                Err(e) => return Err(HttpError::Exchange(e.into_error())),
            }
        }
    }

    /// The request for `url`; `proxy` is the one the connection goes through, if any.
    fn request(
        &self,
        url: &Url,
        origin: &Origin,
        proxy: Option<&Proxy>,
        headers: &HeaderMap,
    ) -> Result<Request<Empty<Bytes>>, HttpError> {
        // Through a proxy, a plain request names the whole URL (absolute form); inside a
        // CONNECT tunnel (https) it is a request like any other.
        let proxy = proxy.filter(|_| !origin.tls);
        let target = match proxy {
            Some(_) => &url[..url::Position::AfterQuery],
            None => &url[url::Position::BeforePath..url::Position::AfterQuery],
        };
        let host = match url.port() {
            Some(port) => format!("{}:{port}", origin.host),
            None => origin.host.clone(),
        };
        let mut request = Request::get(target)
            .header(header::HOST, host)
            .header(header::USER_AGENT, self.user_agent.clone())
            .header(header::ACCEPT, HeaderValue::from_static("*/*"))
            .body(Empty::new())
            .map_err(|_| HttpError::Url(url.to_string()))?;
        request
            .headers_mut()
            .extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(auth) = proxy.and_then(|p| p.auth.clone()) {
            request
                .headers_mut()
                .insert(header::PROXY_AUTHORIZATION, auth);
        }
        Ok(request)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, HashMap<Origin, Vec<(Sender, Instant)>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used idle connection to `origin` that is still open.
    fn take_idle(&self, origin: &Origin) -> Option<Sender> {
        let mut idle = self.lock_idle();
        let list = idle.get_mut(origin)?;
        let now = Instant::now();
        while let Some((sender, since)) = list.pop() {
            if !sender.is_closed() && now.duration_since(since) < IDLE_FOR {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, origin: Origin, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock_idle();
        let list = idle.entry(origin).or_default();
        if list.len() < self.config.max_idle_per_host {
            list.push((sender, Instant::now()));
        }
    }

    /// A new connection, within the connect timeout.
    async fn connect(&self, origin: &Origin, proxy: Option<&Proxy>) -> Result<Sender, HttpError> {
        let timeout = self.config.connect_timeout;
        match tokio::time::timeout(timeout, self.connect_within(origin, proxy)).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::ConnectTimeout {
                host: origin.host.clone(),
                timeout,
            }),
        }
    }

    async fn connect_within(
        &self,
        origin: &Origin,
        proxy: Option<&Proxy>,
    ) -> Result<Sender, HttpError> {
        let tcp = match proxy {
            Some(p) => {
                let via = Origin {
                    tls: false,
                    host: p.host.clone(),
                    port: p.port,
                };
                let mut tcp = tcp_connect(&via).await.map_err(|e| HttpError::Proxy {
                    proxy: p.authority.clone(),
                    source: Box::new(e),
                })?;
                if origin.tls {
                    tunnel(&mut tcp, p, origin).await?;
                }
                tcp
            }
            None => tcp_connect(origin).await?,
        };
        if !origin.tls {
            return self.handshake(tcp).await;
        }
        let tls_error = |source| HttpError::Tls {
            host: origin.host.clone(),
            source,
        };
        let name = rustls::pki_types::ServerName::try_from(origin.bare_host().to_owned())
            .map_err(|e| tls_error(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let stream = self.tls.connect(name, tcp).await.map_err(tls_error)?;
        self.handshake(stream).await
    }

    /// HTTP/1 on `io`; the connection runs as a task of its own until it closes.
    async fn handshake<T>(&self, io: T) -> Result<Sender, HttpError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = self
            .h1
            .handshake(TokioIo::new(io))
            .await
            .map_err(HttpError::Exchange)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Asks `proxy` (connected on `tcp`) for a tunnel to `origin` with `CONNECT`, and reads its
/// answer up to the end of the head (a proxy sends nothing more until the client speaks).
async fn tunnel(tcp: &mut TcpStream, proxy: &Proxy, origin: &Origin) -> Result<(), HttpError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let failed = |source: io::Error| HttpError::Proxy {
        proxy: proxy.authority.clone(),
        source: Box::new(source),
    };
    let target = format!("{}:{}", origin.host, origin.port);
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = proxy.auth.as_ref().and_then(|a| a.to_str().ok()) {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.map_err(failed)?;
    let mut answer = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > 16 * 1024 {
            return Err(failed(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer to CONNECT longer than 16 KiB",
            )));
        }
        // One byte at a time once the head may be ending, so nothing after it is consumed.
        let want = if answer.is_empty() { 12 } else { 1 };
        let n = tcp.read(&mut buf[..want]).await.map_err(failed)?;
        if n == 0 {
            return Err(failed(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "proxy closed the connection during CONNECT",
            )));
        }
        answer.extend_from_slice(&buf[..n]);
    }
    // `HTTP/1.1 200 Connection established`
    let status = answer
        .split(|b| *b == b' ')
        .nth(1)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            failed(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed answer to CONNECT",
            ))
        })?;
    if !(200..300).contains(&status) {
        return Err(HttpError::ProxyRefused {
            proxy: proxy.authority.clone(),
            target,
            status,
        });
    }
    Ok(())
}

/// A TCP connection to the first address of `origin` that accepts, with Nagle off.
async fn tcp_connect(origin: &Origin) -> Result<TcpStream, HttpError> {
    let host = origin.bare_host();
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, origin.port)],
        Err(_) => tokio::net::lookup_host((host, origin.port))
            .await
            .map_err(|source| HttpError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .collect(),
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(HttpError::Connect {
        host: origin.host.clone(),
        source: last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")),
    })
}

/// Where a redirect response points, if it is one.
fn redirect_location(response: &Response<'_>) -> Option<String> {
    let redirect = matches!(
        response.status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    );
    if !redirect {
        return None;
    }
    let value = response.headers.get(header::LOCATION)?;
    Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// A response whose body is read with [`chunk`](Self::chunk); reading it to the end hands the
/// connection back to the client.
pub(crate) struct Response<'a> {
    client: &'a Client,
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    conn: Option<(Origin, Sender)>,
}

impl Response<'_> {
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body length, when the response announces it.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.body.size_hint().exact()
    }

    /// The next piece of the body; `None` at its end, when the connection goes back to the
    /// client for reuse.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no body byte is lost if the future is dropped before it completes.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Ok(Some(data)),
                    // Empty data or trailers.
                    _ => {}
                },
                Some(Err(e)) => {
                    self.conn = None;
                    return Err(HttpError::Exchange(e));
                }
                None => {
                    if let Some((origin, sender)) = self.conn.take() {
                        self.client.put_idle(origin, sender);
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Reads and drops a short body so that the connection can be reused; a long or failing one
    /// just closes it.
    async fn drain(&mut self) {
        let mut read = 0;
        while let Ok(Some(piece)) = self.chunk().await {
            read += piece.len();
            if read > DRAIN_MAX {
                self.conn = None;
                return;
            }
        }
    }
}
