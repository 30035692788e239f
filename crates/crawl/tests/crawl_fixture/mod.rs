//! A local web site for the crawler's tests and bench: axum on a loopback port, counting every
//! request per path and how many are in flight at once.
//!
//! Paths:
//! - `/`: the hub, linking to everything below (relative, absolute, fragment and other-host
//!   links).
//! - `/chain/N` (N = 1..=10): links to `N+1` (relative), so `/chain/N` is at depth N.
//! - `/cycle/a` and `/cycle/b`: link to each other and back to `/`.
//! - `/broken`: 404. `/flaky`: 503 the first time, then a page.
//! - `/redirect/loop1` <-> `/redirect/loop2`: a redirect loop. `/redirect/far/N`: an endless
//!   redirect chain. `/redirect/chain`: redirects to `/chain/1` (already linked).
//! - `/private/...`: disallowed by `/robots.txt` (when the site has one).
//! - `/slow`: answers after a moment. `/stall`: never answers.
//! - `/huge`: 3 MiB of HTML, with a link at its end. `/binary.bin`: 100 kB of octets that
//!   contain an `<a href>`. `/malformed`: broken HTML with links.
//! - `/based/index`: `<base href="/chain/">` and a relative link to `5`.
//! - `/p/N` (N < graph size): a generated graph page with ten links (cycles included).
//! - `/inf/N`: an endless site (each page links to the next two).
//! - `/creds`: links to `/chain/10` with `user:secret@` credentials in the URL.
//! - `/redirect/other`: redirects to the other host's `/` (see [`Spec::other_host`]).
//! - `/robots.txt` redirects to [`Spec::robots_redirect`] when set.
//! - [`Spec::files`]: other responses (sitemaps), gzipped by the fixture if asked;
//!   [`Spec::redirects`]: more redirects.
//!
//! `{base}` in a robots.txt, a page or a file is replaced by the site's `http://ip:port`.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

/// How the site behaves.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The robots.txt body, or none (404).
    pub robots: Option<String>,
    /// Pages in the `/p/N` graph.
    pub graph: usize,
    /// Base URL of another host that the hub links to.
    pub other_host: Option<String>,
    /// Hold each request until this many are in flight (or `hold_max` passes), so that a
    /// concurrency limit is reached if the crawler allows it.
    pub hold_until: Option<usize>,
    pub hold_max: Duration,
    /// Address to bind (127.0.0.1 or another loopback address).
    pub ip: [u8; 4],
    /// Where `/robots.txt` redirects to, if anywhere.
    pub robots_redirect: Option<String>,
    /// Extra pages: path to HTML body.
    pub pages: HashMap<String, String>,
    /// Extra responses of any type: path to file.
    pub files: HashMap<String, File>,
    /// Extra redirects (302): path to `Location`.
    pub redirects: HashMap<String, String>,
}

/// A response that is not a generated page (a sitemap, say).
#[derive(Debug, Clone, Default)]
pub struct File {
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The `Content-Encoding` header, if any.
    pub content_encoding: Option<&'static str>,
    /// Whether the fixture gzips the body (after replacing `{base}`) before sending it.
    pub gzip: bool,
    pub body: Vec<u8>,
}

impl File {
    /// An XML file, sent as it is.
    pub fn xml(body: impl Into<String>) -> Self {
        File {
            content_type: "application/xml",
            body: body.into().into_bytes(),
            ..File::default()
        }
    }
}

/// `data` gzipped.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("fixture set-up");
    enc.finish().expect("fixture set-up")
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            robots: Some("User-agent: *\nDisallow: /private/\n".to_owned()),
            graph: 0,
            other_host: None,
            hold_until: None,
            hold_max: Duration::from_millis(100),
            ip: [127, 0, 0, 1],
            robots_redirect: None,
            pages: HashMap::new(),
            files: HashMap::new(),
            redirects: HashMap::new(),
        }
    }
}

/// What the site saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub hits: Mutex<HashMap<String, usize>>,
    pub total: AtomicUsize,
    /// Requests that carried an `Authorization` header.
    pub authorized: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Every request's path and arrival time, in arrival order.
    pub arrivals: Mutex<Vec<(String, std::time::Instant)>>,
    /// Notified on every request (after counting it).
    pub request: Notify,
    /// Notified whenever `in_flight` changes.
    in_flight_changed: Notify,
}

impl Seen {
    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("fixture set-up")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
    pub fn paths(&self) -> HashMap<String, usize> {
        self.hits.lock().expect("fixture set-up").clone()
    }
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
    /// Waits until no request is in flight (the server has answered or dropped them all).
    pub async fn wait_idle(&self) {
        loop {
            let changed = self.in_flight_changed.notified();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            changed.await;
        }
    }
    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for_requests(&self, n: usize) {
        loop {
            let notified = self.request.notified();
            if self.total.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }
}

/// A running fixture site; it stops when dropped.
#[derive(Debug)]
pub struct Site {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Site {
    /// `http://ip:port` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

struct App {
    spec: Spec,
    base: String,
    seen: Arc<Seen>,
    huge: Arc<String>,
}

pub async fn start(spec: Spec) -> Site {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::from(spec.ip), 0u16))
        .await
        .expect("fixture set-up");
    let addr = listener.local_addr().expect("fixture set-up");
    let seen = Arc::new(Seen::default());
    let mut huge = String::with_capacity(3 << 20);
    huge.push_str("<html><head><title>Huge</title></head><body>");
    while huge.len() < 3 << 20 {
        huge.push_str("<p>lorem ipsum dolor sit amet, consectetur adipiscing elit</p>\n");
    }
    huge.push_str("<a href=\"/after-huge\">end</a></body></html>");
    let app = Arc::new(App {
        spec,
        base: format!("http://{addr}"),
        seen: Arc::clone(&seen),
        huge: Arc::new(huge),
    });
    let router = Router::new().fallback(handle).with_state(app);
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("fixture set-up");
    });
    Site { addr, seen, server }
}

struct InFlight(Arc<Seen>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.in_flight_changed.notify_waiters();
    }
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

fn page(title: &str, links: &[String]) -> String {
    let mut s = format!("<!doctype html><html><head><title>{title}</title></head><body>");
    for l in links {
        s.push_str(&format!("<a href=\"{l}\">{l}</a>\n"));
    }
    s.push_str("</body></html>");
    s
}

async fn handle(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_owned();
    let seen = &app.seen;
    if headers.contains_key(header::AUTHORIZATION) {
        seen.authorized.fetch_add(1, Ordering::SeqCst);
    }
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    seen.in_flight_changed.notify_waiters();
    let _guard = InFlight(Arc::clone(seen));
    *seen
        .hits
        .lock()
        .expect("fixture set-up")
        .entry(path.clone())
        .or_default() += 1;
    seen.arrivals
        .lock()
        .expect("fixture set-up")
        .push((path.clone(), std::time::Instant::now()));
    seen.total.fetch_add(1, Ordering::SeqCst);
    seen.request.notify_waiters();

    if let Some(n) = app.spec.hold_until {
        let wait = async {
            loop {
                let changed = seen.in_flight_changed.notified();
                if seen.in_flight.load(Ordering::SeqCst) >= n {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(app.spec.hold_max, wait).await;
    }

    let base = &app.base;
    if let Some(body) = app.spec.pages.get(&path) {
        return html(body.replace("{base}", base));
    }
    if let Some(to) = app.spec.redirects.get(&path) {
        return redirect(&to.replace("{base}", base));
    }
    if let Some(file) = app.spec.files.get(&path) {
        let mut body = match std::str::from_utf8(&file.body) {
            Ok(text) => text.replace("{base}", base).into_bytes(),
            Err(_) => file.body.clone(),
        };
        if file.gzip {
            body = gzip(&body);
        }
        let mut resp = ([(header::CONTENT_TYPE, file.content_type)], body).into_response();
        if let Some(encoding) = file.content_encoding {
            resp.headers_mut().insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static(encoding),
            );
        }
        return resp;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["robots.txt"] if app.spec.robots_redirect.is_some() => {
            redirect(app.spec.robots_redirect.as_deref().unwrap_or("/"))
        }
        ["robots.txt"] => match &app.spec.robots {
            Some(r) => (
                [(header::CONTENT_TYPE, "text/plain")],
                r.replace("{base}", base),
            )
                .into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        [""] => {
            let mut links: Vec<String> = [
                "chain/1",
                "/cycle/a#top",
                "/broken",
                "/flaky",
                "/redirect/loop1",
                "/redirect/far/0",
                "/redirect/chain",
                "/private/secret",
                "/slow",
                "/huge",
                "/binary.bin",
                "/malformed",
                "/based/index",
                "#fragment-only",
                "mailto:someone@example.com",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            links.push(format!("{base}/cycle/b"));
            links.push(format!("HTTP://{}/cycle/a#again", &base["http://".len()..]));
            if let Some(other) = &app.spec.other_host {
                links.push(format!("{other}/"));
            }
            html(page("Hub", &links))
        }
        ["chain", n] => match n.parse::<u32>() {
            Ok(n) if (1..=10).contains(&n) => {
                let links = if n < 10 {
                    vec![format!("{}", n + 1)]
                } else {
                    vec![]
                };
                html(page(&format!("Chain {n}"), &links))
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        },
        ["cycle", which @ ("a" | "b")] => {
            let other = if *which == "a" { "b" } else { "a" };
            html(page(
                &format!("Cycle {which}"),
                &[other.to_owned(), "/".to_owned()],
            ))
        }
        ["flaky"] => {
            if seen.hits("/flaky") == 1 {
                (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
            } else {
                html(page("Flaky", &[]))
            }
        }
        ["redirect", "loop1"] => redirect("/redirect/loop2"),
        ["redirect", "loop2"] => redirect(&format!("{base}/redirect/loop1")),
        ["redirect", "far", n] => {
            let n: u64 = n.parse().unwrap_or(0);
            redirect(&format!("/redirect/far/{}", n + 1))
        }
        ["redirect", "chain"] => redirect("/chain/1"),
        ["redirect", "other"] => match &app.spec.other_host {
            Some(other) => redirect(&format!("{other}/")),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        ["creds"] => {
            let host = &base["http://".len()..];
            html(page(
                "Creds",
                &[format!("http://user:secret@{host}/chain/10")],
            ))
        }
        ["private", rest @ ..] => html(page(
            &format!("Private {}", rest.join("/")),
            &["/private/deeper".to_owned()],
        )),
        ["slow"] => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            html(page("Slow", &[]))
        }
        ["stall"] => std::future::pending().await,
        ["huge"] => html(app.huge.as_str().to_owned()),
        ["binary.bin"] => {
            let mut body = vec![0u8; 100_000];
            let link = b"<html><a href=\"/from-binary\">x</a>";
            body[..link.len()].copy_from_slice(link);
            (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                Body::from(body),
            )
                .into_response()
        }
        ["malformed"] => html(
            "<title>Mal<b>formed</title><div><p><a href=chain/2>x<a href='/cycle/b'>y</table>\
             <a href=\"/broken\"\u{0}<<<"
                .to_owned(),
        ),
        ["based", "index"] => html(
            "<html><head><base href=\"/chain/\"><title>Based</title></head>\
             <body><a href=\"5\">five</a></body></html>"
                .to_owned(),
        ),
        ["p", n] => match n.parse::<usize>() {
            Ok(n) if n < app.spec.graph => html(graph_page(base, n, app.spec.graph)),
            _ => StatusCode::NOT_FOUND.into_response(),
        },
        ["inf", n] => {
            let n: u64 = n.parse().unwrap_or(0);
            html(page(
                &format!("Inf {n}"),
                &[format!("{}", n + 1), format!("{}", n + 2)],
            ))
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Page `n` of the generated graph: ten links (relative, absolute, with fragments; forward,
/// backward, to the root) and some filler text, about 1 KB.
fn graph_page(base: &str, n: usize, size: usize) -> String {
    let targets = [
        (n + 1) % size,
        (2 * n + 1) % size,
        (3 * n + 7) % size,
        (n * 7 + 3) % size,
        (n + size - 1) % size,
        (n * 31 + 11) % size,
        (n / 2) % size,
        (n * 13 + 5) % size,
        0,
        (n + 100) % size,
    ];
    let mut s = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Page {n}</title></head><body><h1>Page {n}</h1>"
    );
    for (i, t) in targets.iter().enumerate() {
        match i % 3 {
            0 => s.push_str(&format!("<p>Link <a href=\"{t}\">relative {t}</a></p>\n")),
            1 => s.push_str(&format!(
                "<p>Link <a href=\"{base}/p/{t}\">absolute {t}</a></p>\n"
            )),
            _ => s.push_str(&format!(
                "<p>Link <a href=\"/p/{t}#s{i}\">rooted {t}</a></p>\n"
            )),
        }
    }
    s.push_str("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.</p>");
    s.push_str("<p>Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum.</p>");
    s.push_str("</body></html>");
    s
}
