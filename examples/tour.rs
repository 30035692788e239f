//! A quick tour of weft: a Context tree with a deadline, a cause, and typed values.
//!
//! Run with `cargo run --example tour`.

#[path = "common/out.rs"]
mod out;
use out::outln;

use std::time::Duration;

use weft::core::context::{Context, ContextError};

#[derive(Debug)]
struct RequestId(u64);

#[tokio::main]
async fn main() {
    let root = Context::background().with_value(RequestId(42));
    let (ctx, cancel) = root.with_timeout(Duration::from_millis(200));

    let mut workers = Vec::new();
    for id in 0..3_u64 {
        let ctx = ctx.clone();
        workers.push(tokio::spawn(async move {
            let work = tokio::time::sleep(Duration::from_millis(50 * (id + 1)));
            match ctx.run(work).await {
                Ok(()) => format!("worker {id}: finished"),
                Err(e) => format!("worker {id}: stopped ({e})"),
            }
        }));
    }
    // Worker 1 finishes at 100 ms; cancel the rest with a cause before worker 2 (150 ms).
    tokio::time::sleep(Duration::from_millis(120)).await;
    cancel.cancel_with("tour over");

    for w in workers {
        match w.await {
            Ok(line) => outln!("{line}"),
            Err(e) => outln!("worker failed: {e}"),
        }
    }
    let request = ctx.value::<RequestId>().map_or(0, |r| r.0);
    outln!(
        "request {request}: err={:?} cause={}",
        ctx.err(),
        ctx.cause().map(|c| c.to_string()).unwrap_or_default()
    );
    assert_eq!(ctx.err(), Some(ContextError::Cancelled));
}
