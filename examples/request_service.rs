//! An HTTP service with a concurrency limit (503), a rate limit (429), a per-request timeout
//! (504), failures (500) and cancellation when the client goes away, plus a small load driver
//! that makes each status appear. Section 6 of the Go material (select with timeouts).
//!
//! What it fixes in the Go original:
//! - **Timed-out work kept running**: Go's `fetchData`/`processData` ignore the context, so a
//!   504 leaves goroutines sleeping on. Here the work runs under the request's `Context` and
//!   stops at the deadline; the `/stats` counters show nothing left running.
//! - **A client that disconnects is noticed**: hyper drops the handler's future, which cancels
//!   the work with it (a drop guard counts those), instead of finishing work nobody will read.
//! - **`time.Tick` leaks a ticker and allows no burst**; weft's `RateLimiter` (GCRA) allows a
//!   burst and is shared by all requests. The limits are tower layers, not a hand-made mutex
//!   counter, and a request shed by the concurrency limit does not use up a rate-limit token.
//!
//! Run: `cargo run --example request_service` (serves, drives each phase, prints the statuses),
//! or `cargo run --example request_service -- --serve` to try it with curl:
//! `curl 'http://127.0.0.1:8080/process?work_ms=300'`.

#[path = "common/out.rs"]
mod out;
use out::outln;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser;
use serde::Deserialize;
use tower::ServiceBuilder;
use weft::core::context::{Context, ContextError};
use weft::core::rate::RateLimiter;

#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Requests processed at once; more are shed with 503.
    #[arg(long, default_value_t = 4)]
    max_concurrent: usize,
    /// Requests per second (with a burst of the same size); more get 429.
    #[arg(long, default_value_t = 40)]
    rate: u32,
    /// Per-request timeout in milliseconds (504 after it).
    #[arg(long, default_value_t = 200)]
    timeout_ms: u64,
    /// Serve until Ctrl-C instead of running the load driver.
    #[arg(long)]
    serve: bool,
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    timed_out: AtomicU64,
    client_gone: AtomicU64,
    /// Handlers running now, and the most ever at once (never above `--max-concurrent`).
    in_progress: AtomicU64,
    peak: AtomicU64,
}

/// Counts a handler as in progress from its start until it ends or is dropped.
struct InProgress<'a>(&'a Counters);
impl<'a> InProgress<'a> {
    fn start(counters: &'a Counters) -> Self {
        let now = counters.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        counters.peak.fetch_max(now, Ordering::SeqCst);
        InProgress(counters)
    }
}
impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

struct AppState {
    limiter: RateLimiter,
    timeout: Duration,
    counters: Counters,
}

#[derive(Debug, Deserialize)]
struct Work {
    #[serde(default = "default_work")]
    work_ms: u64,
    #[serde(default)]
    fail: bool,
}

fn default_work() -> u64 {
    20
}

/// Counts a handler future dropped before it finished: the client went away.
struct ClientGone<'a>(&'a AtomicU64, bool);
impl Drop for ClientGone<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn process(
    State(app): State<Arc<AppState>>,
    Query(work): Query<Work>,
) -> (StatusCode, String) {
    let _in_progress = InProgress::start(&app.counters);
    if !app.limiter.try_acquire() {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded\n".into(),
        );
    }
    app.counters.started.fetch_add(1, Ordering::SeqCst);
    let mut guard = ClientGone(&app.counters.client_gone, false);
    // The request's context: the work below sees the deadline and stops with it.
    let (ctx, _cancel) = Context::background().with_timeout(app.timeout);
    let result = fetch_and_process(&ctx, &work).await;
    guard.1 = true;
    match result {
        Ok(v) => {
            app.counters.completed.fetch_add(1, Ordering::SeqCst);
            (StatusCode::OK, format!("{v}\n"))
        }
        Err(ProcessError::Context(ContextError::DeadlineExceeded)) => {
            app.counters.timed_out.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::GATEWAY_TIMEOUT,
                "request processing timed out\n".into(),
            )
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}\n")),
    }
}

#[derive(Debug, thiserror::Error)]
enum ProcessError {
    #[error("{0}")]
    Context(ContextError),
    #[error("data processing failed")]
    Failed,
}

/// Two stages (fetch, then process), each a cancellable wait on the request's context.
async fn fetch_and_process(ctx: &Context, work: &Work) -> Result<String, ProcessError> {
    let half = Duration::from_millis(work.work_ms / 2);
    ctx.run(tokio::time::sleep(half))
        .await
        .map_err(ProcessError::Context)?;
    if work.fail {
        return Err(ProcessError::Failed);
    }
    ctx.run(tokio::time::sleep(half))
        .await
        .map_err(ProcessError::Context)?;
    Ok(format!("processed ({} ms of work)", work.work_ms))
}

async fn stats(State(app): State<Arc<AppState>>) -> String {
    let c = &app.counters;
    format!(
        "started={} completed={} timed_out={} client_gone={} peak_in_progress={}",
        c.started.load(Ordering::SeqCst),
        c.completed.load(Ordering::SeqCst),
        c.timed_out.load(Ordering::SeqCst),
        c.client_gone.load(Ordering::SeqCst),
        c.peak.load(Ordering::SeqCst)
    )
}

fn app(args: &Args) -> Router {
    let rate = NonZeroU32::new(args.rate.max(1)).unwrap_or(NonZeroU32::MIN);
    let state = Arc::new(AppState {
        limiter: RateLimiter::per_second(rate),
        timeout: Duration::from_millis(args.timeout_ms),
        counters: Counters::default(),
    });
    // Shed (503) rather than queue when `max_concurrent` requests are already in progress.
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "server is at capacity, try again later\n",
            )
        }))
        .load_shed()
        .concurrency_limit(args.max_concurrent.max(1));
    Router::new()
        .route("/process", get(process).route_layer(limits))
        .route("/stats", get(stats))
        .with_state(state)
}

/// Sends `n` requests at once and counts the statuses (or "client gave up").
async fn burst(client: &reqwest::Client, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.spawn(async move {
            match client.get(&url).send().await {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) if e.is_timeout() => "client gave up".to_owned(),
                Err(e) => format!("error: {e}"),
            }
        });
    }
    let mut counts = BTreeMap::new();
    while let Some(Ok(status)) = tasks.join_next().await {
        *counts.entry(status).or_insert(0) += 1;
    }
    counts
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    let (ctx, cancel) = weft_core::signal::ctrl_c_context();
    let server = tokio::spawn(
        axum::serve(listener, app(&args))
            .with_graceful_shutdown(ctx.done())
            .into_future(),
    );
    outln!("listening on http://{addr}");
    if args.serve {
        server.await??;
        return Ok(());
    }

    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let t = args.timeout_ms;
    let phases: [(&str, String, usize); 4] = [
        ("ok", format!("{base}/process?work_ms=20"), 3),
        ("failure", format!("{base}/process?work_ms=20&fail=true"), 1),
        ("timeout", format!("{base}/process?work_ms={}", t * 5), 1),
        (
            "overload",
            format!("{base}/process?work_ms={}", t / 2),
            args.max_concurrent * 3,
        ),
    ];
    for (name, url, n) in &phases {
        outln!("{name:>12}: {:?}", burst(&client, url, *n).await);
    }
    // A client that gives up after 30 ms on work of 150 ms: the server stops that work.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(30))
        .build()?;
    outln!(
        "{:>12}: {:?}",
        "client gone",
        burst(&impatient, &format!("{base}/process?work_ms=150"), 1).await
    );
    // Far more requests than the rate allows, sequentially so the concurrency limit is idle.
    let mut limited = BTreeMap::new();
    let start = tokio::time::Instant::now();
    for _ in 0..(args.rate as usize * 2) {
        let status = client
            .get(format!("{base}/process?work_ms=0"))
            .send()
            .await?
            .status();
        *limited.entry(status.as_u16().to_string()).or_insert(0) += 1;
    }
    outln!(
        "{:>12}: {limited:?} in {} ms",
        "rate limit",
        start.elapsed().as_millis()
    );

    // Wait until the server has seen the impatient client leave (it notices on its next poll).
    let mut line = String::new();
    for _ in 0..200 {
        line = client
            .get(format!("{base}/stats"))
            .send()
            .await?
            .text()
            .await?;
        if !line.contains("client_gone=0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    outln!("server: {line}");
    cancel.cancel_with("load driver finished");
    server.await??;
    Ok(())
}
