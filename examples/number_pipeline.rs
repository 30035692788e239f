//! Go's number pipeline (generate -> square -> filter), then the parallel square with merge,
//! on weft-pipeline. Section 8 of the Go material (and the fan-out/fan-in of section 7).
//!
//! What it fixes in the Go original:
//! - **Goroutines leaked when the consumer stopped early** (each stage blocked forever on its
//!   send); here a stage stops with the run's Context, and `--take` shows an early stop that
//!   leaves nothing running.
//! - **Fan-in lost order** and **nothing told you what each stage did**: here the parallel
//!   stage keeps order unless asked not to, and every run returns per-stage counters that add
//!   up (`received == emitted + filtered + failed + dropped + cancelled`), checked below.
//! - **One channel send per item** made the Go version's hand-offs cost more than the work;
//!   weft moves items between stages in chunks.
//!
//! Run: `cargo run --example number_pipeline [-- --count 100000 --workers 4 --take 10]`

#[path = "common/out.rs"]
mod out;
use out::outln;

use clap::Parser;
use futures::StreamExt;
use weft::core::context::Context;
use weft::pipeline::{Pipeline, Report, Stage};

#[derive(Debug, Parser)]
struct Args {
    /// How many numbers to generate.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Workers in the parallel square stage (and branches in the fan-out).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// How many results the early-stopping consumer takes.
    #[arg(long, default_value_t = 10)]
    take: usize,
}

fn print_report(title: &str, report: &Report) -> anyhow::Result<()> {
    outln!(
        "   {title}: stopped {:?} after {:.1?}",
        report.stop,
        report.elapsed
    );
    for s in &report.stages {
        outln!(
            "     {:<10} received {:>7} emitted {:>7} filtered {:>7} cancelled {:>5}",
            s.name,
            s.received,
            s.emitted,
            s.filtered,
            s.cancelled
        );
    }
    report.check()?; // the counters add up, or this says which stage does not
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ctx = Context::background();
    let expected: u64 = (1..=args.count).map(|x| x * x).filter(|x| x % 2 == 1).sum();

    outln!("1. generate -> square -> keep odd squares, one task per stage");
    let done = Pipeline::generate(move |ctx, out| async move {
        for x in 1..=args.count {
            // A generator gets the run's Context and stops when the run does.
            if ctx.is_done() || out.send(x).await.is_err() {
                return;
            }
        }
    })
    .map("square", |x: u64| x * x)
    .filter("odd", |x| x % 2 == 1)
    .fold(ctx.clone(), 0u64, |sum, x| sum + x)
    .await?;
    outln!(
        "   sum of odd squares up to {}: {} (expected {expected})",
        args.count,
        done.output
    );
    print_report("report", &done.report)?;

    outln!(
        "2. parallel square: {} workers in one stage, order kept",
        args.workers
    );
    let done = Pipeline::from_iter(1..=args.count)
        .map(Stage::new("square").workers(args.workers), |x: u64| x * x)
        .collect::<Vec<u64>>(ctx.clone())
        .await?;
    let ordered = done.output.windows(2).all(|w| w[0] < w[1]);
    outln!("   {} squares, in order: {ordered}", done.output.len());
    print_report("report", &done.report)?;

    outln!(
        "3. fan-out to {} square branches, fan-in by merge (Go's shape)",
        args.workers
    );
    let done = Pipeline::from_iter(1..=args.count)
        .partition(
            "fan-out",
            args.workers,
            |x: &u64| *x,
            |_, branch| branch.map("square", |x: u64| x * x),
        )
        .filter("odd", |x| x % 2 == 1)
        .fold(ctx.clone(), 0u64, |sum, x| sum + x)
        .await?;
    outln!(
        "   merged sum: {} (same as 1: {})",
        done.output,
        done.output == expected
    );
    print_report("report", &done.report)?;

    outln!(
        "4. a consumer that stops after {} results: the stages stop with it",
        args.take
    );
    let (run_ctx, stop) = ctx.with_cancel();
    let mut stream = Pipeline::from_iter(1..=u64::MAX)
        .map("square", |x: u64| x.wrapping_mul(x))
        .into_stream(run_ctx.clone());
    let first: Vec<u64> = stream.by_ref().take(args.take).collect().await;
    stop.cancel_with("consumer has enough");
    let report = stream.finish().await?;
    outln!("   took {:?}", first);
    print_report("report", &report)?;
    Ok(())
}
