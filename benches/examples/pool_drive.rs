//! The cases of `benches/pool.rs` (1M no-op jobs, 2 workers, 3 priority levels, capacity 1024),
//! run a fixed number of times, interleaved, one line per run, then each case's median. For
//! `perf stat`/`perf record` (CPU time and context switches per job) and for comparisons on a
//! machine whose speed drifts: interleaved runs see the same drift.
//!
//! ```text
//! cargo run --release -p weft-benches --example pool_drive -- weft,hand_rolled 10
//! ```
//!
//! Cases: `weft` (per-job submit, handles dropped), `weft_awaited`, `spawn` (per-job
//! `spawn_with`, no handles), `many` (`submit_many`),
//! `spawn_many`, `hand_rolled`. `WORKERS=n` and `BATCH=n` override the pool's settings.

use std::time::Instant;

#[path = "../benches/common/pool_cases.rs"]
mod cases;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn setup() -> cases::Setup {
    cases::Setup {
        workers: env("WORKERS").unwrap_or(cases::WORKERS),
        batch: env("BATCH"),
    }
}

fn print_queue_wait(s: &weft_pool::Stats) {
    eprintln!(
        "  queue wait p50 {:?} p99 {:?}",
        s.queue_wait.p50, s.queue_wait.p99
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cases: Vec<String> = args
        .next()
        .unwrap_or_else(|| "weft,hand_rolled".into())
        .split(',')
        .map(String::from)
        .collect();
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for r in 0..runs {
        for (case, times) in cases.iter().zip(&mut times) {
            let t = Instant::now();
            match case.as_str() {
                "weft" => print_queue_wait(&rt.block_on(cases::submit(setup(), false))),
                "weft_awaited" => drop(rt.block_on(cases::submit(setup(), true))),
                "spawn" => drop(rt.block_on(cases::spawn(setup()))),
                "many" => drop(rt.block_on(cases::many(setup(), true))),
                "spawn_many" => drop(rt.block_on(cases::many(setup(), false))),
                "hand_rolled" => rt.block_on(cases::hand_rolled(cases::WORKERS)),
                other => panic!("unknown case {other}"),
            }
            let ms = t.elapsed().as_secs_f64() * 1e3;
            times.push(ms);
            println!("run {r} {case}: {ms:.1} ms");
        }
    }
    for (case, mut t) in cases.iter().zip(times) {
        t.sort_by(f64::total_cmp);
        println!("median {case}: {:.1} ms", t[t.len() / 2]);
    }
}
