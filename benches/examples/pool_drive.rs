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
//! `submit_detached_at`, no handles), `many` (`submit_many`),
//! `spawn_many` (`submit_many_detached`), `hand_rolled`. `WORKERS=n` and `BATCH=n` override the pool's settings.
//!
//! Concurrent submitters (2 workers, `N` submitting tasks spawned from the thread in
//! `block_on`, 1M jobs that each add one to an atomic): `ff_weft_N` / `ff_hand_N`
//! (fire-and-forget: `submit_detached` against the hand-rolled pool's `send`) and `aw_weft_N` /
//! `aw_hand_N` (submit and await, 64 in flight per submitter: `submit` and its handle against
//! `send` and a oneshot). Each run prints wall and CPU time (all threads, from
//! `/proc/self/task/*/schedstat`). A suffix `_in` (`aw_weft_4_in`) spawns the submitters from a
//! task inside the runtime instead of from the thread in `block_on`.
//!
//! ```text
//! cargo run --release -p weft-benches --example pool_drive -- ff_weft_4,ff_hand_4,aw_weft_4,aw_hand_4 5
//! ```

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
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for r in 0..runs {
        for ((case, times), cpu) in cases.iter().zip(&mut times).zip(&mut cpu) {
            let t = Instant::now();
            let c = cases::cpu_ns();
            if let Some((shape, who, n, inside)) = concurrent(case) {
                let awaited = shape == "aw";
                match who {
                    "weft" => rt.block_on(cases::concurrent_weft(n, awaited, inside)),
                    _ => rt.block_on(cases::concurrent_hand_rolled(n, awaited, inside)),
                }
            } else {
                match case.as_str() {
                    "weft" => print_queue_wait(&rt.block_on(cases::submit(setup(), false))),
                    "weft_awaited" => drop(rt.block_on(cases::submit(setup(), true))),
                    "spawn" => drop(rt.block_on(cases::spawn(setup()))),
                    "many" => drop(rt.block_on(cases::many(setup(), true))),
                    "spawn_many" => drop(rt.block_on(cases::many(setup(), false))),
                    "hand_rolled" => rt.block_on(cases::hand_rolled(cases::WORKERS)),
                    other => panic!("unknown case {other}"),
                }
            }
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let cpu_ms = match (c, cases::cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 / 1e6,
                _ => f64::NAN,
            };
            times.push(ms);
            cpu.push(cpu_ms);
            println!("run {r} {case}: {ms:.1} ms wall, {cpu_ms:.1} ms CPU");
        }
    }
    for ((case, mut t), mut c) in cases.iter().zip(times).zip(cpu) {
        t.sort_by(f64::total_cmp);
        c.sort_by(f64::total_cmp);
        let (wall, cpu) = (t[t.len() / 2], c[c.len() / 2]);
        let per_job = |ms: f64| ms * 1e6 / cases::JOBS as f64;
        println!(
            "median {case}: {wall:.1} ms wall ({:.0} ns/job), {cpu:.1} ms CPU ({:.0} ns/job)",
            per_job(wall),
            per_job(cpu)
        );
    }
}

/// `ff_weft_4` -> `("ff", "weft", 4, false)`; `ff_weft_4_in` -> `(.., true)`.
fn concurrent(case: &str) -> Option<(&str, &str, usize, bool)> {
    let mut parts = case.split('_');
    let shape = parts.next().filter(|s| *s == "ff" || *s == "aw")?;
    let who = parts.next().filter(|s| *s == "weft" || *s == "hand")?;
    let n = parts.next()?.parse().ok().filter(|n| *n > 0)?;
    let inside = match parts.next() {
        None => false,
        Some("in") => true,
        Some(_) => return None,
    };
    Some((shape, who, n, inside))
}
