//! Spawns a million tasks and measures what each one costs: Go's goroutine benchmark, on tokio.
//!
//! Translates the "how many goroutines can I create" benchmark of section 1 of the Go material.
//! What it fixes there: the Go version measures `runtime.NumGoroutine` while goroutines are
//! already exiting (each sleeps 1 ms), so its count and memory figures are a race. Here every
//! task parks on one shared signal until all are spawned, so the live count is exact, memory is
//! read from the OS (resident set size) at each step, and every task is joined at the end.
//!
//! Run: `cargo run --release --example million_tasks [-- --tasks 1000000 --every 100000]`

#[path = "common/out.rs"]
mod out;
use out::outln;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use weft::core::Context;

#[derive(Debug, Parser)]
struct Args {
    /// How many tasks to spawn.
    #[arg(long, default_value_t = 1_000_000)]
    tasks: usize,
    /// Print the live count and memory every this many tasks.
    #[arg(long, default_value_t = 100_000)]
    every: usize,
}

/// Resident set size in bytes, from /proc (Linux); `None` elsewhere.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let every = args.every.max(1);
    let before = rss_bytes().unwrap_or(0);
    let live = Arc::new(AtomicUsize::new(0));
    // Every task waits on this context, so none exits before we have counted them all.
    let (release, release_all) = Context::background().with_cancel();
    let tracker = TaskTracker::new();
    let start = Instant::now();

    for i in 1..=args.tasks {
        let (live, release) = (Arc::clone(&live), release.clone());
        tracker.spawn(async move {
            live.fetch_add(1, Ordering::Relaxed);
            release.done().await;
            live.fetch_sub(1, Ordering::Relaxed);
        });
        if i % every == 0 {
            // Let the spawned tasks run their first poll so that they are really live.
            tokio::task::yield_now().await;
            outln!(
                "spawned {i:>9}  live tasks {:>9}  rss {:>8.1} MiB",
                tracker.len(),
                mib(rss_bytes().unwrap_or(0))
            );
        }
    }
    let spawned_in = start.elapsed();
    let peak = rss_bytes().unwrap_or(0);
    release_all.cancel();
    tracker.close();
    tracker.wait().await;

    let per_task = peak.saturating_sub(before) as f64 / args.tasks.max(1) as f64;
    outln!(
        "{} tasks spawned in {:.2?}, all joined in {:.2?}; live after join: {}",
        args.tasks,
        spawned_in,
        start.elapsed(),
        live.load(Ordering::Relaxed)
    );
    outln!(
        "memory: {per_task:.0} bytes per task (rss {:.1} MiB -> {:.1} MiB)",
        mib(before),
        mib(peak)
    );
}
