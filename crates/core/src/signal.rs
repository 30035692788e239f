//! Ctrl-C and SIGTERM as a [`Context`]: the one shutdown signal every `weft` tool and example uses.
//!
//! Behind the `signal` feature (it needs tokio's `signal`).

use crate::context::{CancelFn, Context};

/// Returns a context that is cancelled, with the cause `"interrupted"`, on the first Ctrl-C
/// (SIGINT) or SIGTERM, and the function to cancel it early.
///
/// A second Ctrl-C is not caught here: the default handler ends the process, which is what a
/// user pressing Ctrl-C twice wants.
///
/// # Panics
///
/// Panics if called outside a tokio runtime.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// let (ctx, _cancel) = weft_core::signal::ctrl_c_context();
/// ctx.done().await;
/// eprintln!("stopping: {}", ctx.cause().map(|c| c.to_string()).unwrap_or_default());
/// # }
/// ```
pub fn ctrl_c_context() -> (Context, CancelFn) {
    let (ctx, cancel) = Context::background().with_cancel();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        on_signal.cancel_with("interrupted");
    });
    (ctx, cancel)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
