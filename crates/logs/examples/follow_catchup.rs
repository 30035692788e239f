//! How fast the live view catches up with a file it follows from its start, against the batch
//! analysis of the same file (BENCHMARKS.md, "weft logs", live view). Run one mode per process
//! so that `/usr/bin/time` gives each its own CPU time:
//!
//! ```sh
//! cargo build --release -p weft-logs --example follow_catchup
//! target/release/weft gen-logs --lines 1000000 --files 1 /tmp/lf-bench/kv   # or a debug weft
//! for mode in follow batch1 batch; do
//!   /usr/bin/time -f "$mode: wall %e s, user %U s, sys %S s" \
//!     target/release/examples/follow_catchup $mode /tmp/lf-bench/kv/sample-000.log
//! done
//! ```
//!
//! `follow` polls a [`Follower`] started at the file's beginning until it has caught up;
//! `batch1` is [`analyze`] with one parse worker, `batch` with the default (one per core, plus
//! one). Each prints the lines and requests it counted, which must agree.

use std::path::PathBuf;
use std::time::Instant;

use weft_core::context::Context;
use weft_logs::follow::{Follower, Start};
use weft_logs::{Input, Options, analyze};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(path)) = (args.next(), args.next()) else {
        return Err("usage: follow_catchup follow|batch1|batch FILE".into());
    };
    let path = PathBuf::from(path);
    let started = Instant::now();
    let report = match mode.as_str() {
        "follow" => {
            let mut f = Follower::new([&path], Options::default(), Start::Beginning)?;
            f.poll()?;
            while f.is_behind() {
                f.poll()?;
            }
            f.into_report()
        }
        "batch1" | "batch" => {
            let mut o = Options::default();
            o.workers = usize::from(mode == "batch1");
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(analyze(&Context::background(), vec![Input::Path(path)], o))?
        }
        other => return Err(format!("unknown mode {other:?}").into()),
    };
    let secs = started.elapsed().as_secs_f64();
    let bytes: u64 = report.inputs.iter().map(|i| i.bytes).sum();
    println!(
        "{mode}: {} lines, {} requests, {:.1} MB in {secs:.2} s ({:.0} MB/s wall)",
        report.lines,
        report.requests,
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    );
    Ok(())
}
