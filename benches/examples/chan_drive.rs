//! Channels under real cross-thread contention (issue #18's shape), weft against kanal, flume
//! and async-channel in one process: a multi-thread runtime with 2 workers; P producer and C
//! consumer tasks spawned from the main thread, outside the workers (so they spread over both
//! workers from the start, as under `#[tokio::main]`); a long steady run of `u64`s per case;
//! wall time and CPU time (`getrusage`, user + system, of the whole process) per message.
//!
//! Cases: bounded(1024) and rendezvous, 1x1, 4x4, 16x1 (fan-in) and 1x16 (fan-out).
//! async-channel panics on capacity 0, so it is absent from the rendezvous cases. Each round
//! runs every case and every channel once, interleaved, so drift in the machine's load hits
//! all of them alike; per case and channel the best round's wall time is reported, with the
//! CPU time of that round.
//!
//! ```text
//! cargo run --release -p weft-benches --example chan_drive -- [ROUNDS] [MESSAGES] [FILTER]
//! ```
//!
//! `ROUNDS` defaults to 3, `MESSAGES` (per case, split over the producers) to 1,000,000;
//! `FILTER` keeps the cases whose name (`bounded1024/4x4/weft`) contains it.

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

/// Spawns one channel's producers and consumers; returns their tasks.
macro_rules! spawn_mpmc {
    ($rt:expr, $p:expr, $c:expr, $msgs:expr, $make:expr,
     |$tx:ident, $v:ident| $send:expr, |$rx:ident| $recv:expr) => {{
        let (tx, rx) = $make;
        let per = $msgs / $p as u64;
        let mut tasks: Vec<tokio::task::JoinHandle<u64>> = Vec::new();
        for _ in 0..$p {
            let $tx = tx.clone();
            tasks.push($rt.spawn(async move {
                for $v in 0..per {
                    $send.await;
                }
                0
            }));
        }
        drop(tx);
        for _ in 0..$c {
            let $rx = rx.clone();
            tasks.push($rt.spawn(async move {
                let mut n = 0u64;
                while let Some(v) = $recv {
                    n += v & 1;
                }
                n
            }));
        }
        drop(rx);
        tasks
    }};
}

#[derive(Clone, Copy, PartialEq)]
enum Chan {
    Weft,
    Kanal,
    Flume,
    AsyncChannel,
}

impl Chan {
    fn name(self) -> &'static str {
        match self {
            Chan::Weft => "weft",
            Chan::Kanal => "kanal",
            Chan::Flume => "flume",
            Chan::AsyncChannel => "async-channel",
        }
    }
}

fn spawn(
    rt: &Runtime,
    chan: Chan,
    cap: usize,
    p: usize,
    c: usize,
    msgs: u64,
) -> Vec<tokio::task::JoinHandle<u64>> {
    match chan {
        Chan::Weft => spawn_mpmc!(
            rt,
            p,
            c,
            msgs,
            weft_core::chan::bounded::<u64>(cap),
            |tx, v| async { tx.send(v).await.expect("receivers outlive senders") },
            |rx| rx.recv().await
        ),
        Chan::Kanal => spawn_mpmc!(
            rt,
            p,
            c,
            msgs,
            kanal::bounded_async::<u64>(cap),
            |tx, v| async { tx.send(v).await.expect("receivers outlive senders") },
            |rx| rx.recv().await.ok()
        ),
        Chan::Flume => spawn_mpmc!(
            rt,
            p,
            c,
            msgs,
            flume::bounded::<u64>(cap),
            |tx, v| async { tx.send_async(v).await.expect("receivers outlive senders") },
            |rx| rx.recv_async().await.ok()
        ),
        Chan::AsyncChannel => spawn_mpmc!(
            rt,
            p,
            c,
            msgs,
            async_channel::bounded::<u64>(cap),
            |tx, v| async { tx.send(v).await.expect("receivers outlive senders") },
            |rx| rx.recv().await.ok()
        ),
    }
}

/// One run: (wall, cpu) for `msgs` messages.
fn run(
    rt: &Runtime,
    chan: Chan,
    cap: usize,
    p: usize,
    c: usize,
    msgs: u64,
) -> (Duration, Duration) {
    let (wall0, cpu0) = (Instant::now(), weft_benches::process_cpu_time());
    let tasks = spawn(rt, chan, cap, p, c, msgs);
    let total = rt.block_on(async {
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("channel task");
        }
        total
    });
    std::hint::black_box(total);
    (wall0.elapsed(), weft_benches::process_cpu_time() - cpu0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let msgs: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let filter = args.next().unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut cases = Vec::new();
    for (flavour, cap) in [("bounded1024", 1024), ("rendezvous", 0)] {
        for (p, c) in [(1, 1), (4, 4), (16, 1), (1, 16)] {
            for chan in [Chan::Weft, Chan::Kanal, Chan::Flume, Chan::AsyncChannel] {
                if cap == 0 && chan == Chan::AsyncChannel {
                    continue;
                }
                let name = format!("{flavour}/{p}x{c}/{}", chan.name());
                if name.contains(&filter) {
                    cases.push((name, chan, cap, p, c));
                }
            }
        }
    }
    // Per case: the best round's (wall, cpu).
    let mut best: Vec<Option<(Duration, Duration)>> = vec![None; cases.len()];
    for round in 0..rounds {
        for ((name, chan, cap, p, c), best) in cases.iter().zip(&mut best) {
            let msgs = msgs / *p as u64 * *p as u64;
            let (wall, cpu) = run(&rt, *chan, *cap, *p, *c, msgs);
            let per = |d: Duration| d.as_nanos() as f64 / msgs as f64;
            eprintln!(
                "round {round} {name}: wall {:.1} ns/msg, cpu {:.1} ns/msg",
                per(wall),
                per(cpu)
            );
            if best.is_none_or(|(w, _)| wall < w) {
                *best = Some((wall, cpu));
            }
        }
    }
    println!("| case | channel | wall ns/msg | cpu ns/msg |");
    println!("|---|---|---:|---:|");
    for ((name, _, _, p, _), best) in cases.iter().zip(&best) {
        if let Some((wall, cpu)) = best {
            let msgs = (msgs / *p as u64 * *p as u64) as f64;
            let (case, chan) = name.rsplit_once('/').unwrap_or((name, ""));
            println!(
                "| {case} | {chan} | {:.1} | {:.1} |",
                wall.as_nanos() as f64 / msgs,
                cpu.as_nanos() as f64 / msgs
            );
        }
    }
}
