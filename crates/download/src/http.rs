//! The downloader's HTTP client (on hyper's connection API): HTTP/2 where a TLS server offers
//! it in ALPN (every download to the origin shares one connection, as streams), HTTP/1.1
//! otherwise (one request at a time per connection, idle connections kept per origin);
//! redirects followed with a limit.
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
//! An HTTP/1.1 connection has no task of its own: its I/O is driven by the download using it,
//! inside that download's task, while it waits for the response and reads the body (see
//! [`drive`]), so a body piece is received and written to the file by one thread. An idle
//! connection is driven by no one until it is taken again.
//!
//! HTTP/2: a TLS connection offers `h2` and `http/1.1` in ALPN (only `http/1.1` when HTTP/1.1
//! is forced; plain `http` is always HTTP/1.1, no h2c). When the server picks `h2`, the
//! connection is kept as the origin's shared one and every later request to the origin is a
//! stream on it: the number of streams at once is bounded by the downloads (and segments) the
//! per-host limit lets run, as connections are for HTTP/1.1. So that the downloads that start
//! together do not each open a connection before the first one learns the protocol, a new TLS
//! connection to an origin whose protocol is not known yet is opened by one download at a time
//! (the others wait and then find the shared connection, or open HTTP/1.1 connections of their
//! own once the origin is known to answer HTTP/1.1).
//!
//! Proxies (see [`Proxies`]): a plain `http` URL is requested from its proxy in absolute form;
//! an `https` one through a `CONNECT` tunnel. TLS is rustls with the Mozilla roots
//! (`webpki-roots`), as reqwest's `rustls-tls` does, plus any authorities from
//! [`ClientConfig::extra_roots`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_util::either::Either;
use url::Url;

use super::error::{DownloadError, HttpError, RedirectError};
use super::proxy::{Proxies, Proxy};

type H2 = http2::SendRequest<Empty<Bytes>>;

/// The I/O half of an HTTP/1.1 connection (hyper's dispatcher).
type H1Io = http1::Connection<TokioIo<Stream>, Empty<Bytes>>;

/// An HTTP/1.1 connection: the handle requests are sent on, and the connection's I/O, which
/// the download using the connection drives in its own task (see [`drive`]).
struct H1 {
    sender: http1::SendRequest<Empty<Bytes>>,
    /// `None` once the connection has ended.
    io: Option<H1Io>,
}

impl H1 {
    /// Whether the connection can take no more requests.
    fn is_closed(&self) -> bool {
        self.io.is_none() || self.sender.is_closed()
    }
}

/// Polls `fut` to completion while driving the connection's I/O `io` in the same task.
///
/// Why not a task of its own per connection (hyper's usual way, still the way of HTTP/2
/// connections, which many downloads share): with two runtime workers the connection task
/// and the download it wakes ran on different cores, so each body piece was read from the
/// socket on one core and copied to the file on the other, with a cross-thread wake-up per
/// piece. Driven here, the piece is read and written by one thread, still in its cache.
///
/// A connection that ends (closed, or failed) is dropped; `fut` then learns it through hyper's
/// channels: a response not yet received, or a body not read to its end, fails.
///
/// # Cancel safety
///
/// Cancel safe as far as the connection goes: its state stays in `io`; what dropping `fut`
/// loses is `fut`'s own business.
async fn drive<F: Future>(io: &mut Option<H1Io>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if let Some(conn) = io.as_mut()
            && let Poll::Ready(ended) = Pin::new(conn).poll(cx)
        {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            *io = None;
        }
        // The connection may have handed `fut` what it waited for (a body piece, the response
        // head, or the end of either): take it now rather than after a wake-up.
        fut.as_mut().poll(cx)
    })
    .await
}

/// The transport under an HTTP/1.1 connection: TCP (also through a proxy's CONNECT tunnel) or
/// TLS over it. An enum (tokio-util's `Either`, which forwards vectored writes too) rather than
/// a boxed trait object, so reads need no dynamic call.
type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// A new connection, by the protocol the server chose.
enum Sender {
    /// Boxed: hyper's HTTP/1 dispatcher is some 700 bytes.
    H1(Box<H1>),
    H2(H2),
}

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
    /// Certificate authorities trusted on top of the Mozilla roots.
    pub(crate) extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Offer only HTTP/1.1 in ALPN.
    pub(crate) http1_only: bool,
}

/// The connections to one origin.
#[derive(Default)]
struct Conns {
    /// Idle HTTP/1.1 connections, the most recently used last.
    idle: Mutex<Vec<(H1, Instant)>>,
    /// The HTTP/2 connection every request shares, and when a request last started on it.
    shared: Mutex<Option<(H2, Instant)>>,
    /// Whether the origin answered a TLS connection with HTTP/1.1 (so new connections need not
    /// wait for one another to learn the protocol).
    http1: AtomicBool,
    /// Held while a TLS connection to the origin is opened when its protocol is not known.
    probing: tokio::sync::Mutex<()>,
}

impl Conns {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(H1, Instant)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_shared(&self) -> std::sync::MutexGuard<'_, Option<(H2, Instant)>> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared HTTP/2 connection, if it is still open and was used recently.
    fn take_shared(&self) -> Option<H2> {
        let mut shared = self.lock_shared();
        let now = Instant::now();
        match shared.as_mut() {
            Some((h2, since)) if !h2.is_closed() && now.duration_since(*since) < IDLE_FOR => {
                *since = now;
                Some(h2.clone())
            }
            _ => {
                *shared = None;
                None
            }
        }
    }

    fn set_shared(&self, h2: H2) {
        *self.lock_shared() = Some((h2, Instant::now()));
        // Relaxed: a hint that only decides whether a new connection waits for `probing`.
        self.http1.store(false, Ordering::Relaxed);
    }

    /// Forgets the shared connection if it is `h2` (the server closed it).
    fn drop_shared(&self) {
        let mut shared = self.lock_shared();
        if shared.as_ref().is_some_and(|(h2, _)| h2.is_closed()) {
            *shared = None;
        }
    }

    /// The most recently used idle connection that is still open.
    fn take_idle(&self) -> Option<H1> {
        let mut list = self.lock_idle();
        let now = Instant::now();
        while let Some((conn, since)) = list.pop() {
            if !conn.is_closed() && now.duration_since(since) < IDLE_FOR {
                return Some(conn);
            }
        }
        None
    }
}

/// An HTTP/2 and HTTP/1.1 client with a connection pool that downloads hand their HTTP/1.1
/// connections back to (see the [module docs](self)).
pub(crate) struct Client {
    origins: Mutex<HashMap<Origin, Arc<Conns>>>,
    config: ClientConfig,
    user_agent: HeaderValue,
    tls: TlsConnector,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
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
        for cert in &config.extra_roots {
            roots.add(cert.clone())?;
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = if config.http1_only {
            vec![b"http/1.1".to_vec()]
        } else {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        };
        Ok(Self {
            origins: Mutex::default(),
            user_agent,
            tls: TlsConnector::from(Arc::new(tls)),
            h1: {
                let mut h1 = http1::Builder::new();
                // Reads of up to 1 MiB (hyper's default stops at about 400 KiB) when a large
                // body keeps the socket full: fewer reads, and fewer wake-ups of the download.
                h1.max_buf_size(1 << 20);
                h1
            },
            h2: http2::Builder::new(TokioExecutor::new()),
            config,
        })
    }

    /// The connections to `origin`.
    fn conns(&self, origin: &Origin) -> Arc<Conns> {
        let mut origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        match origins.get(origin) {
            Some(conns) => conns.clone(),
            None => origins.entry(origin.clone()).or_default().clone(),
        }
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
            let (parts, body, conn) = self
                .send(&url, &origin, headers)
                .await
                .map_err(DownloadError::Http)?;
            let mut response = Response {
                client: self,
                status: parts.status,
                headers: parts.headers,
                body,
                conn,
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

    /// One request on the origin's shared HTTP/2 connection, an idle HTTP/1.1 one, or a new
    /// one. Gives the response head, its body, and the HTTP/1.1 connection to hand back once
    /// the body is read (none for HTTP/2, whose connection stays shared).
    async fn send(
        &self,
        url: &Url,
        origin: &Origin,
        headers: &HeaderMap,
    ) -> Result<(http::response::Parts, Incoming, Option<(Arc<Conns>, H1)>), HttpError> {
        // Decided once: connections to `origin` (idle ones too) all go the same way.
        let proxy = self.config.proxies.for_target(origin.tls, &origin.host);
        let conns = self.conns(origin);
        loop {
            if let Some(h2) = conns.take_shared() {
                match self.send_h2(h2, url, origin, headers).await {
                    Ok(Some(response)) => return Ok((response.0, response.1, None)),
                    // The server closed it before the request went out: open another.
                    Ok(None) => {
                        conns.drop_shared();
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let (mut conn, reused) = match conns.take_idle() {
                Some(conn) => (conn, true),
                None => match self.connect_for(&conns, origin, proxy).await? {
                    // An HTTP/2 connection, now the shared one: the loop sends on it.
                    None => continue,
                    Some(h1) => (h1, false),
                },
            };
            // An idle connection may still be finishing its last response (it is ready once
            // it has seen the end of it), or be closed by now (driving it notices: nothing
            // read it while it was idle).
            if let Err(e) = drive(&mut conn.io, conn.sender.ready()).await {
                if reused {
                    continue;
                }
                return Err(HttpError::Exchange(e));
            }
            let request = self.request(url, origin, proxy, headers, false)?;
            match drive(&mut conn.io, conn.sender.try_send_request(request)).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    return Ok((parts, body, Some((conns, conn))));
                }
                // Not written: the server closed the reused connection first. Try another.
                Err(e) if reused && e.message().is_some() => continue,
                Err(e) => return Err(HttpError::Exchange(e.into_error())),
            }
        }
    }

    /// One stream on a shared HTTP/2 connection; `None` when the connection closed before
    /// the request was sent.
    async fn send_h2(
        &self,
        mut h2: H2,
        url: &Url,
        origin: &Origin,
        headers: &HeaderMap,
    ) -> Result<Option<(http::response::Parts, Incoming)>, HttpError> {
        if h2.ready().await.is_err() {
            return Ok(None);
        }
        let request = self.request(url, origin, None, headers, true)?;
        match h2.try_send_request(request).await {
            Ok(response) => Ok(Some(response.into_parts())),
            Err(e) if e.message().is_some() && h2.is_closed() => Ok(None),
            Err(e) => Err(HttpError::Exchange(e.into_error())),
        }
    }

    /// A new connection to `origin`: an HTTP/1.1 one to use, or `None` when the origin's
    /// shared HTTP/2 connection is there to use (this one, or one another download made while
    /// this one waited). When it is a TLS origin whose protocol is not known yet, one download
    /// at a time connects (see the [module docs](self)).
    async fn connect_for(
        &self,
        conns: &Conns,
        origin: &Origin,
        proxy: Option<&Proxy>,
    ) -> Result<Option<H1>, HttpError> {
        // Relaxed: a stale value only makes this download wait for the probe or not.
        let known = !origin.tls || self.config.http1_only || conns.http1.load(Ordering::Relaxed);
        let _probing = if known {
            None
        } else {
            let guard = conns.probing.lock().await;
            if conns
                .lock_shared()
                .as_ref()
                .is_some_and(|(h2, _)| !h2.is_closed())
            {
                return Ok(None);
            }
            Some(guard)
        };
        match self.connect(origin, proxy).await? {
            // Shared before the probe is released, so that the downloads waiting for it find
            // the connection rather than open their own.
            Sender::H2(h2) => {
                conns.set_shared(h2);
                Ok(None)
            }
            Sender::H1(h1) => {
                if origin.tls {
                    conns.http1.store(true, Ordering::Relaxed);
                }
                Ok(Some(*h1))
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
        h2: bool,
    ) -> Result<Request<Empty<Bytes>>, HttpError> {
        // Through a proxy, a plain request names the whole URL (absolute form); inside a
        // CONNECT tunnel (https) it is a request like any other. HTTP/2 takes the scheme and
        // authority from the absolute form (`:scheme`, `:authority`) instead of `Host`.
        let proxy = proxy.filter(|_| !origin.tls);
        let target = if proxy.is_some() || h2 {
            &url[..url::Position::AfterQuery]
        } else {
            &url[url::Position::BeforePath..url::Position::AfterQuery]
        };
        let mut request = Request::get(target);
        if !h2 {
            let host = match url.port() {
                Some(port) => format!("{}:{port}", origin.host),
                None => origin.host.clone(),
            };
            request = request.header(header::HOST, host);
        }
        let mut request = request
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

    fn put_idle(&self, conns: &Conns, conn: H1) {
        if conn.is_closed() {
            return;
        }
        let mut list = conns.lock_idle();
        if list.len() < self.config.max_idle_per_host {
            list.push((conn, Instant::now()));
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
            return self.handshake(Either::Left(tcp)).await;
        }
        let tls_error = |source| HttpError::Tls {
            host: origin.host.clone(),
            source,
        };
        let name = rustls::pki_types::ServerName::try_from(origin.bare_host().to_owned())
            .map_err(|e| tls_error(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let stream = self.tls.connect(name, tcp).await.map_err(|e| {
            if is_unknown_issuer(&e) {
                HttpError::UntrustedCertificate {
                    host: origin.host.clone(),
                    source: e,
                }
            } else {
                tls_error(e)
            }
        })?;
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            let (sender, conn) = self
                .h2
                .handshake(TokioIo::new(stream))
                .await
                .map_err(HttpError::Exchange)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "http/2 connection ended with an error");
                }
            });
            return Ok(Sender::H2(sender));
        }
        self.handshake(Either::Right(Box::new(stream))).await
    }

    /// HTTP/1 on `io`; the connection's I/O is driven by whichever download uses it (see
    /// [`drive`]).
    async fn handshake(&self, io: Stream) -> Result<Sender, HttpError> {
        let (sender, io) = self
            .h1
            .handshake(TokioIo::new(io))
            .await
            .map_err(HttpError::Exchange)?;
        Ok(Sender::H1(Box::new(H1 {
            sender,
            io: Some(io),
        })))
    }
}

/// The certificates in the PEM file at `path` (at least one).
pub(crate) fn read_pem_certificates(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Box<dyn std::error::Error + Send + Sync>>
{
    use rustls::pki_types::pem::PemObject;
    let failed = |e: &dyn std::fmt::Display| {
        io::Error::other(format!(
            "cannot read certificates from {}: {e}",
            path.display()
        ))
    };
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(&e))?;
    if certs.is_empty() {
        return Err(failed(&"no PEM certificate in it").into());
    }
    Ok(certs)
}

/// ring's provider for rustls: a process-wide default the application installed wins.
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    if let Some(installed) = rustls::crypto::CryptoProvider::get_default() {
        return installed.clone();
    }
    // rustls 0.23.48 deprecates this in favour of aws-lc-rs (post-quantum key exchange), which
    // needs cmake and a C compiler to build; the locked 0.23.46 has no other way to name ring.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether a TLS handshake failed because no trusted authority signed the certificate (a
/// self-signed or private CA's certificate).
fn is_unknown_issuer(e: &io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    )
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
    /// The HTTP/1.1 connection to hand back at the end of the body (`None` for HTTP/2).
    conn: Option<(Arc<Conns>, H1)>,
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
            let frame = match self.conn.as_mut() {
                Some((_, conn)) => drive(&mut conn.io, self.body.frame()).await,
                None => self.body.frame().await,
            };
            match frame {
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
                    if let Some((conns, conn)) = self.conn.take() {
                        self.client.put_idle(&conns, conn);
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Reads and drops a short body so that the connection can be reused; a long or failing one
    /// just closes it.
    async fn drain(&mut self) {
        // An HTTP/2 stream is reset when its body is dropped; only HTTP/1.1 needs the read.
        if self.conn.is_none() {
            return;
        }
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
