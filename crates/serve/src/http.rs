//! The HTTP/1.1 listener: a bounded number of connections, each with a header read timeout.
//!
//! A client that opens a connection and sends its request slowly (or never) holds a file
//! descriptor. Without limits, a few hundred such clients exhaust the process's descriptors and
//! the server stops accepting anyone. So: at most `max_connections` are served at once (past
//! that, new ones wait in the kernel's backlog rather than fail), headers must arrive within
//! `header_timeout` (also while a kept-alive connection sits idle), and the body within the
//! body timeout the submit handler applies.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use weft_core::context::Context;

/// How long the listener waits after an accept error (out of descriptors, mostly) before it
/// tries again: the condition clears only as connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// At most this long to let open connections finish their requests once the server stops.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The default connection limit: what the descriptor limit leaves after a reserve for the
/// database, its WAL, logs and the runtime, within `16..=10_000`.
pub(crate) fn default_max_connections() -> usize {
    const RESERVE: u64 = 64;
    let soft = fd_limit().unwrap_or(1024);
    usize::try_from(soft.saturating_sub(RESERVE).clamp(16, 10_000)).unwrap_or(10_000)
}

#[cfg(target_os = "linux")]
fn fd_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(target_os = "linux"))]
fn fd_limit() -> Option<u64> {
    None
}

/// Serves `app` on `listener` until `stop` ends, then lets open connections finish (for at
/// most [`CLOSE_GRACE`]).
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    max_connections: usize,
    header_timeout: Duration,
    stop: Context,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    loop {
        // A slot first, so a full server stops accepting instead of running out of descriptors.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = stop.done() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        () = stop.done() => break,
                    }
                }
            },
            () = stop.done() => break,
        };
        // Small responses: send them now rather than wait for a delayed ACK.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A broken or timed-out connection is the client's problem, not the server's.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(CLOSE_GRACE, graceful.shutdown()).await;
}
