//! The worker pool demo: priorities, a panicking job, a timed-out job, blacklisting, resizing
//! and stats, on weft-pool. Section 9 of the Go material (worker pools).
//!
//! What it fixes in the Go original pools:
//! - **A panicking job killed its worker** (or the process); here it resolves
//!   `Panicked(Panicked)`, the worker keeps serving, and a job key that keeps panicking is
//!   blacklisted, like the material's ResilientWorkerPool but built in.
//! - **A timed-out job kept running**; here its Context is cancelled so the work stops.
//! - **No priorities** (ants refused them): strict levels with aging, FIFO within a level.
//! - **Shutdown lost queued jobs**: every job ends in exactly one outcome, and the stats show
//!   that the counters add up.
//!
//! Run: `cargo run --example worker_pool [-- --jobs 30 --workers 2]`

#[path = "common/out.rs"]
mod out;
use out::outln;
#[path = "common/runtime.rs"]
mod runtime;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clap::Parser;
use weft::pool::{Blacklist, JobError, Outcome, Pool, Priority, Shutdown};

#[derive(Debug, Parser)]
struct Args {
    /// Ordinary jobs to submit (spread over three priorities).
    #[arg(long, default_value_t = 30)]
    jobs: u32,
    /// Workers at the start (the demo grows the pool to twice this, then back).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Work per ordinary job, in milliseconds.
    #[arg(long, default_value_t = 10)]
    work_ms: u64,
    /// Run on one thread with tokio's clock paused: every timeout resolves the same way on any
    /// machine (used by the tests).
    #[arg(long)]
    paused_clock: bool,
}

#[derive(Debug, Clone)]
enum Job {
    Work { ms: u64 },
    Panic,
    Hang,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    runtime::build(args.paused_clock)?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    // The panics below are expected and caught by the pool: print one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| eprintln!("(job panicked: {info})")));
    let order = Arc::new(AtomicU32::new(0));
    let pool = Pool::builder()
        .workers(args.workers.max(1))
        .priorities(3)
        .capacity(1024)
        .timeout(Duration::from_millis(200))
        .job_key(|job: &Job| matches!(job, Job::Panic).then(|| "panicky".to_owned()))
        .blacklist(Blacklist::after_panics(2))
        .build_fn(move |ctx, job: Job| {
            let order = Arc::clone(&order);
            async move {
                match job {
                    Job::Work { ms } => {
                        let work = tokio::time::sleep(Duration::from_millis(ms));
                        ctx.run(work).await.map_err(|e| e.to_string())?;
                        // The job's place in the order of completion.
                        Ok(order.fetch_add(1, Ordering::SeqCst))
                    }
                    Job::Panic => panic!("corrupt input"),
                    Job::Hang => {
                        ctx.done().await; // stops when the pool's timeout cancels its Context
                        Err("hung job noticed its cancellation".to_owned())
                    }
                }
            }
        });

    // Hold every worker for a moment so that the queue fills and priorities decide the order.
    let mut blockers = Vec::new();
    for _ in 0..args.workers.max(1) {
        blockers.push(
            pool.submit_at(Priority::HIGH, Job::Work { ms: 100 })
                .await?,
        );
    }
    let mut handles = Vec::new();
    for id in 0..args.jobs {
        let priority = Priority::new((id % 3) as u8);
        let handle = pool
            .submit_at(priority, Job::Work { ms: args.work_ms })
            .await?;
        handles.push((priority, handle));
    }
    let panics = [
        pool.submit(Job::Panic).await?,
        pool.submit(Job::Panic).await?,
    ];
    let hang = pool.submit_at(Priority::HIGH, Job::Hang).await?;

    outln!(
        "resize: {} -> {} workers while the queue is full",
        args.workers,
        args.workers * 2
    );
    pool.resize(args.workers * 2);

    let mut completion = Vec::new();
    for (priority, handle) in handles {
        if let Ok(seq) = handle.await {
            completion.push((seq, priority));
        }
    }
    for b in blockers {
        let _ = b.await;
    }
    completion.sort_unstable();
    for p in panics {
        match p.await {
            Err(JobError::Panicked(p)) => outln!("panicked job resolved: {}", p.message()),
            other => outln!("panicked job: unexpected {other:?}"),
        }
    }
    match pool.submit(Job::Panic).await {
        Ok(h) => match h.await {
            Err(JobError::Blacklisted { key }) => {
                outln!("third panicky job rejected: key {key:?} is blacklisted")
            }
            other => outln!("third panicky job: {other:?}"),
        },
        Err(e) => outln!("third panicky job refused at submit: {e}"),
    }
    match hang.await {
        Err(JobError::TimedOut) => outln!("hung job resolved: timed out, its Context cancelled"),
        other => outln!("hung job: unexpected {other:?}"),
    }
    pool.resize(args.workers);
    let high_first = completion
        .iter()
        .take(args.jobs as usize / 3)
        .filter(|(_, p)| *p == Priority::HIGH)
        .count();
    outln!(
        "completed {} ordinary jobs; {} of the first {} completions were high priority",
        completion.len(),
        high_first,
        args.jobs / 3
    );

    let stats = pool.shutdown(Shutdown::drain(Duration::from_secs(5))).await;
    outln!(
        "stats: submitted {} = completed {} + failed {} + timed out {} + panicked {} + blacklisted {} + cancelled {} (in flight {})",
        stats.submitted,
        stats.count(Outcome::Completed),
        stats.count(Outcome::Failed),
        stats.count(Outcome::TimedOut),
        stats.count(Outcome::Panicked),
        stats.count(Outcome::Blacklisted),
        stats.count(Outcome::Cancelled),
        stats.in_flight()
    );
    outln!(
        "queue wait p50 {:?} p99 {:?}; run time p50 {:?} p99 {:?}",
        stats.queue_wait.p50,
        stats.queue_wait.p99,
        stats.run_time.p50,
        stats.run_time.p99
    );
    Ok(())
}
