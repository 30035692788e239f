//! apalis-postgres side of weft serve's drain benchmark (benches/scripts/serve_pg_drain.sh).
//!
//! `apalis-compare prepare URL JOBS` creates apalis' schema (its own migrations) and queues JOBS
//! no-op jobs on the `drain` queue; `apalis-compare work URL WORKERS` runs one apalis worker whose
//! handler returns at once, with at most WORKERS jobs in flight (apalis' concurrency layer, the
//! counterpart of `weft serve --workers`), until it is killed. The script starts 1, 2 or 3 `work`
//! processes (weft's 1, 2, 3 nodes) and times them until every job is `Done`.
//!
//! The worker uses apalis' defaults (fetch batches of 10, locked tasks, results persisted) except
//! for the queue name and, with `APALIS_BATCH`, the fetch batch size.

use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PgPool, PostgresStorage};
use futures::stream::{self, StreamExt};

const QUEUE: &str = "drain";

fn usage() -> ! {
    eprintln!("usage: apalis-compare prepare URL JOBS | apalis-compare work URL WORKERS");
    std::process::exit(2)
}

fn config() -> Config {
    let mut config = Config::default().queue(QUEUE);
    if let Some(batch) = std::env::var("APALIS_BATCH").ok().and_then(|b| b.parse().ok()) {
        config = config.batch_size(batch);
    }
    config
}

async fn noop(_job: u64) -> Result<(), BoxDynError> {
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        usage();
    }
    let n: usize = args[3].parse().unwrap_or_else(|_| usage());
    let pool = PgPool::connect(&args[2]).await?;
    match args[1].as_str() {
        "prepare" => {
            PostgresStorage::setup(&pool).await?;
            let mut backend = PostgresStorage::<u64>::new(&pool).with_config(config());
            // Pushed in chunks so one statement's arrays stay small; not timed by the script.
            let mut next = 0u64;
            while (next as usize) < n {
                let chunk = (n - next as usize).min(5_000) as u64;
                let mut jobs = stream::iter(next..next + chunk).map(|i| TaskBuilder::new(i).build());
                backend.push_all(&mut jobs).await?;
                next += chunk;
            }
        }
        "work" => {
            let backend = PostgresStorage::<u64>::new(&pool).with_config(config());
            let worker = WorkerBuilder::new(format!("drain-{}", std::process::id()))
                .backend(backend)
                .concurrency(n)
                .parallelize(tokio::spawn)
                .build(noop);
            // Runs until the script kills the process; a worker that stops by itself is an error.
            worker.run().await?;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        _ => usage(),
    }
    Ok(())
}
