//! A web server that handles every request in its own task, with graceful shutdown.
//!
//! Translates the web server of section 1 of the Go material. What it fixes there: the Go
//! server has no shutdown at all (Ctrl-C drops requests mid-response) and no way to see that
//! requests really run concurrently. Here each connection is served on its own tokio task (as
//! Go's net/http gives each a goroutine), the server stops on a weft `Context` (Ctrl-C, or the
//! end of the built-in load) and finishes the requests in flight before it returns.
//!
//! Run: `cargo run --example web_server` (serves a built-in burst of requests, then stops), or
//! `cargo run --example web_server -- --serve --addr 127.0.0.1:8080` (until Ctrl-C).

#[path = "common/out.rs"]
mod out;
use out::outln;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use clap::Parser;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Simulated work per request, in milliseconds.
    #[arg(long, default_value_t = 100)]
    work_ms: u64,
    /// Requests in the built-in burst (all sent at once).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Keep serving until Ctrl-C instead of sending the built-in burst.
    #[arg(long)]
    serve: bool,
    /// Hold each request until this many are in flight together (at most 10 s): proves the
    /// requests run concurrently whatever the machine's load (the tests use it).
    #[arg(long)]
    hold: Option<usize>,
}

#[derive(Default)]
struct Stats {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    served: AtomicUsize,
    /// Wakes the held requests when the peak grows (`--hold`).
    peak_grew: Notify,
}

impl Stats {
    /// Waits until `n` requests have been in flight together, or 10 s (a server that handled
    /// requests one at a time would never get there).
    async fn hold_until_peak(&self, n: usize) {
        let reached = async {
            loop {
                // Created before the check, so a rise between the check and the await is seen.
                let grew = self.peak_grew.notified();
                if self.peak.load(Ordering::SeqCst) >= n {
                    return;
                }
                grew.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), reached).await;
    }
}

async fn handle(
    State((stats, work, hold)): State<(Arc<Stats>, Duration, Option<usize>)>,
    Path(path): Path<String>,
) -> String {
    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stats.peak.fetch_max(now, Ordering::SeqCst);
    stats.peak_grew.notify_waiters();
    if let Some(n) = hold {
        stats.hold_until_peak(n).await;
    }
    tokio::time::sleep(work).await; // the request's "work"; other requests run meanwhile
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    stats.served.fetch_add(1, Ordering::SeqCst);
    format!("processed /{path}\n")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stats = Arc::new(Stats::default());
    let app = Router::new().route("/{*path}", get(handle)).with_state((
        Arc::clone(&stats),
        Duration::from_millis(args.work_ms),
        args.hold,
    ));
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    outln!("listening on http://{addr}");

    // One Context stops the server: Ctrl-C, or the end of the burst below.
    let (ctx, cancel) = weft_core::signal::ctrl_c_context();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(ctx.done())
            .into_future(),
    );

    if !args.serve {
        let start = Instant::now();
        let client = reqwest::Client::new();
        let mut requests = JoinSet::new();
        for i in 0..args.requests {
            let (client, url) = (client.clone(), format!("http://{addr}/item/{i}"));
            requests.spawn(async move {
                client
                    .get(url)
                    .send()
                    .await?
                    .error_for_status()?
                    .text()
                    .await
            });
        }
        let mut ok = 0;
        while let Some(joined) = requests.join_next().await {
            match joined {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => eprintln!("request failed: {e}"),
                Err(e) => eprintln!("request task failed: {e}"),
            }
        }
        let elapsed = start.elapsed();
        outln!(
            "{ok}/{} requests of {} ms work each in {:.0} ms ({:.0}x faster than one at a time); peak concurrency {}",
            args.requests,
            args.work_ms,
            elapsed.as_secs_f64() * 1e3,
            (args.requests as f64 * args.work_ms as f64) / (elapsed.as_secs_f64() * 1e3).max(1.0),
            stats.peak.load(Ordering::SeqCst),
        );
        cancel.cancel_with("burst finished");
    }

    server
        .await
        .context("server task failed")?
        .context("server failed")?;
    outln!(
        "shut down ({}): served {}, in flight at exit {}",
        ctx.cause().map(|c| c.to_string()).unwrap_or_default(),
        stats.served.load(Ordering::SeqCst),
        stats.in_flight.load(Ordering::SeqCst),
    );
    Ok(())
}
