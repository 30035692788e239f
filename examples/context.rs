//! Go's context package, in weft: cancellation, timeouts, values, propagation and causes.
//!
//! Translates section 10 of the Go material. What it fixes there: every goroutine that takes a
//! context is joined before `main` returns (no `time.Sleep` to "let them finish"), a timeout
//! reports *why* work stopped (`DeadlineExceeded` and the cause), and values are keyed by type,
//! so two packages cannot collide on a string key.
//!
//! Run: `cargo run --example context [-- --timeout-ms 300 --workers 4]`

#[path = "common/out.rs"]
mod out;
use out::outln;
#[path = "common/runtime.rs"]
mod runtime;

use std::time::Duration;

use clap::Parser;
use tokio::task::JoinSet;
use tokio::time::Instant;
use weft::core::context::{Context, ContextError};

#[derive(Debug, Parser)]
struct Args {
    /// Deadline of the request context, in milliseconds.
    #[arg(long, default_value_t = 300)]
    timeout_ms: u64,
    /// Number of workers under the request context.
    #[arg(long, default_value_t = 4)]
    workers: u64,
    /// Run on one thread with tokio's clock paused: every timeout resolves the same way on any
    /// machine (used by the tests).
    #[arg(long)]
    paused_clock: bool,
}

/// A request-scoped value: found by type, through every child context.
#[derive(Debug, Clone)]
struct RequestId(String);

/// Work that takes a context, checks it between steps, and says why it stopped.
async fn worker(ctx: Context, id: u64) -> String {
    let request = ctx
        .value::<RequestId>()
        .map_or("-", |r| r.0.as_str())
        .to_owned();
    let step = Duration::from_millis(40 * (id + 1));
    let mut steps = 0;
    loop {
        match ctx.run(tokio::time::sleep(step)).await {
            Ok(()) => steps += 1,
            Err(err) => {
                let cause = ctx.cause().map(|c| c.to_string()).unwrap_or_default();
                return format!(
                    "[{request}] worker {id}: stopped after {steps} steps: {err} (cause: {cause})"
                );
            }
        }
        if steps == 3 {
            return format!("[{request}] worker {id}: finished 3 steps");
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    runtime::build(args.paused_clock)?.block_on(run(args));
    Ok(())
}

async fn run(args: Args) {
    let start = Instant::now();

    outln!("1. propagation: a parent's cancel reaches its children, never the reverse");
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (child, cancel_child) = parent.with_cancel();
    let (grandchild, _keep) = child.with_cancel();
    cancel_child.cancel();
    outln!(
        "   cancel child -> parent done: {}, child done: {}, grandchild done: {}",
        parent.is_done(),
        child.is_done(),
        grandchild.is_done()
    );
    cancel_parent.cancel_with("server shutting down");
    outln!(
        "   cancel parent with a cause -> parent: {:?} ({}); child keeps its own: {}",
        parent.err(),
        parent.cause().map(|c| c.to_string()).unwrap_or_default(),
        child.cause().map(|c| c.to_string()).unwrap_or_default()
    );

    outln!(
        "2. timeout: workers under a {} ms deadline",
        args.timeout_ms
    );
    let request = Context::background().with_value(RequestId("req-42".into()));
    let (ctx, _cancel) = request.with_timeout(Duration::from_millis(args.timeout_ms));
    let mut workers = JoinSet::new();
    for id in 0..args.workers {
        workers.spawn(worker(ctx.clone(), id));
    }
    let mut lines = Vec::new();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(line) => lines.push(line),
            Err(e) => lines.push(format!("worker failed: {e}")),
        }
    }
    lines.sort();
    for line in &lines {
        outln!("   {line}");
    }
    outln!("   request context: {:?}", ctx.err());

    outln!("3. values: looked up through parents, shadowed by children");
    let (inner, _c) = ctx.without_cancel().with_cancel();
    let shadow = inner.with_value(RequestId("req-42/retry".into()));
    outln!(
        "   without_cancel keeps values ({}) and is not done: {}; shadowed: {}",
        inner.value::<RequestId>().map_or("-", |r| r.0.as_str()),
        !inner.is_done(),
        shadow.value::<RequestId>().map_or("-", |r| r.0.as_str()),
    );

    outln!("4. after_func: cleanup that runs once the context ends");
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _cleanup = ctx.after_func(move || {
        let _ = tx.send("connection closed");
    });
    cancel.cancel();
    outln!("   {}", rx.await.unwrap_or("cleanup did not run"));

    assert_eq!(ctx.err(), Some(ContextError::Cancelled));
    outln!("done in {:?}", start.elapsed());
}
