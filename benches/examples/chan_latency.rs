//! What a contended channel costs the *other* tasks of its runtime (issue 18): weft's channel
//! lock naps its worker thread when contended, so a task queued on that worker waits out the nap.
//!
//! A multi-thread runtime with 2 workers; everything is spawned from the main thread (outside
//! the workers). For each case a channel load runs for `SECONDS`: 4 producer and 4 consumer
//! tasks sending `u64`s as fast as they can over bounded(1024) or a rendezvous channel. Beside it
//! three probes measure scheduling delay:
//!
//! - *timer*: a task that sleeps until a deadline 1 ms ahead, over and over, and records how late
//!   it woke (`Instant::now() - deadline`; tokio's timer has a 1 ms granularity, so even an
//!   idle runtime wakes up to ~1 ms late: compare against the `idle` case);
//! - *wake*: an OS thread outside the runtime that, every 1 ms (`std::thread::sleep`), notifies
//!   a task through a `tokio::sync::Notify` and records how long until that task runs (the task
//!   sends its `Instant::now()` back; the thread waits for it before the next round). This is the
//!   scheduling delay of a task woken from outside, without the timer's granularity;
//! - *ping*: after each timer wake-up, one round trip to a second task over two
//!   `tokio::sync::Notify`s (notify the peer, wait for its reply), timed.
//!
//! Cases: `idle` (no channel load, the baseline), then weft, kanal and tokio's mpsc under load;
//! `bounded1024/weft+budget` is weft with a `tokio::task::coop::consume_budget()` before each
//! operation, to tell the nap's cost apart from that of tasks that never yield.
//! tokio's mpsc has one receiver, so its 4 consumers share it behind an
//! `Arc<tokio::sync::Mutex<_>>` (the usual worker-pool idiom), and it has no rendezvous (capacity
//! 0 panics). Rounds interleave the cases so drift in the machine's load hits all alike. Printed
//! per case and round: probe p50 / p99 / p99.9 / max in microseconds, channel throughput (ns per
//! message, wall) and CPU time per message (`getrusage`, user + system, whole process).
//!
//! ```text
//! cargo run --release -p weft-benches --example chan_latency -- [ROUNDS] [SECONDS] [FILTER]
//! ```
//!
//! `ROUNDS` defaults to 2, `SECONDS` (per case and round) to 3; `FILTER` keeps the cases whose
//! name (`bounded1024/weft`) contains it (`idle` is always run).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;

/// Spawns one channel's producers (sending until `stop`) and consumers (counting until the
/// channel closes); returns the consumers' tasks, whose outputs sum to the messages moved.
macro_rules! spawn_load {
    ($rt:expr, $stop:expr, $make:expr, |$tx:ident, $v:ident| $send:expr, |$rx:ident| $recv:expr) => {{
        let (tx, rx) = $make;
        for _ in 0..PRODUCERS {
            let $tx = tx.clone();
            let stop = Arc::clone(&$stop);
            $rt.spawn(async move {
                let mut $v = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    $send.await;
                    $v += 1;
                }
            });
        }
        drop(tx);
        let mut consumers: Vec<JoinHandle<u64>> = Vec::new();
        for _ in 0..CONSUMERS {
            let $rx = rx.clone();
            consumers.push($rt.spawn(async move {
                let mut n = 0u64;
                while let Some(v) = $recv {
                    std::hint::black_box(v);
                    n += 1;
                }
                n
            }));
        }
        drop(rx);
        consumers
    }};
}

#[derive(Clone, Copy, PartialEq)]
enum Chan {
    Idle,
    Weft,
    /// weft with a `tokio::task::coop::consume_budget` per operation: tells the nap's cost
    /// apart from that of tasks that run long streaks without yielding (weft's and kanal's
    /// operations do not spend tokio's cooperative budget; tokio's mpsc does).
    WeftBudget,
    Kanal,
    TokioMpsc,
}

impl Chan {
    fn name(self) -> &'static str {
        match self {
            Chan::Idle => "idle",
            Chan::Weft => "weft",
            Chan::WeftBudget => "weft+budget",
            Chan::Kanal => "kanal",
            Chan::TokioMpsc => "tokio-mpsc",
        }
    }
}

fn spawn_load(
    rt: &Runtime,
    chan: Chan,
    cap: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<u64>> {
    match chan {
        Chan::Idle => Vec::new(),
        Chan::Weft => spawn_load!(
            rt,
            stop,
            weft_core::chan::bounded::<u64>(cap),
            |tx, v| async { tx.send(v).await.expect("receivers outlive senders") },
            |rx| rx.recv().await
        ),
        Chan::WeftBudget => spawn_load!(
            rt,
            stop,
            weft_core::chan::bounded::<u64>(cap),
            |tx, v| async {
                tokio::task::coop::consume_budget().await;
                tx.send(v).await.expect("receivers outlive senders")
            },
            |rx| {
                tokio::task::coop::consume_budget().await;
                rx.recv().await
            }
        ),
        Chan::Kanal => spawn_load!(
            rt,
            stop,
            kanal::bounded_async::<u64>(cap),
            |tx, v| async { tx.send(v).await.expect("receivers outlive senders") },
            |rx| rx.recv().await.ok()
        ),
        Chan::TokioMpsc => {
            let (tx, rx) = tokio::sync::mpsc::channel::<u64>(cap);
            spawn_load!(
                rt,
                stop,
                (tx, Arc::new(tokio::sync::Mutex::new(rx))),
                |tx, v| async { tx.send(v).await.expect("receivers outlive senders") },
                |rx| rx.lock().await.recv().await
            )
        }
    }
}

/// The probes' samples: timer lateness and ping round trips.
struct Probe {
    late: Vec<Duration>,
    ping: Vec<Duration>,
}

/// Runs the wake probe until `stop`; its thread returns the samples.
fn spawn_wake_probe(
    rt: &Runtime,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Duration>> {
    let wake = Arc::new(Notify::new());
    let (ran_tx, ran_rx) = std::sync::mpsc::channel::<Instant>();
    {
        let wake = Arc::clone(&wake);
        rt.spawn(async move {
            loop {
                wake.notified().await;
                if ran_tx.send(Instant::now()).is_err() {
                    break;
                }
            }
        });
    }
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        let mut samples = Vec::with_capacity(8192);
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
            let t0 = Instant::now();
            wake.notify_one();
            match ran_rx.recv() {
                Ok(ran) => samples.push(ran.saturating_duration_since(t0)),
                Err(_) => break,
            }
        }
        // Dropping the receiver ends the task at its next wake-up.
        drop(ran_rx);
        wake.notify_one();
        samples
    })
}

/// Runs the timer and ping probes until `stop`.
fn spawn_probe(rt: &Runtime, stop: &Arc<AtomicBool>) -> JoinHandle<Probe> {
    let (ping, pong) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let stop_pong = Arc::new(AtomicBool::new(false));
    {
        let (ping, pong, stop_pong) =
            (Arc::clone(&ping), Arc::clone(&pong), Arc::clone(&stop_pong));
        rt.spawn(async move {
            loop {
                ping.notified().await;
                pong.notify_one();
                if stop_pong.load(Ordering::Relaxed) {
                    break;
                }
            }
        });
    }
    let stop = Arc::clone(stop);
    rt.spawn(async move {
        let mut probe = Probe {
            late: Vec::with_capacity(8192),
            ping: Vec::with_capacity(8192),
        };
        while !stop.load(Ordering::Relaxed) {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(1);
            tokio::time::sleep_until(deadline).await;
            probe.late.push(tokio::time::Instant::now() - deadline);
            let t0 = Instant::now();
            ping.notify_one();
            pong.notified().await;
            probe.ping.push(t0.elapsed());
        }
        stop_pong.store(true, Ordering::Relaxed);
        ping.notify_one();
        probe
    })
}

/// p50 / p99 / p99.9 / max in microseconds.
fn quantiles(samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).map_or(0.0, |d| d.as_nanos() as f64 / 1e3)
    };
    format!(
        "{:.0} / {:.0} / {:.0} / {:.0}",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2).max(1);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let filter = args.next().unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut cases = vec![("idle".to_owned(), Chan::Idle, 0)];
    for (flavour, cap) in [("bounded1024", 1024), ("rendezvous", 0)] {
        for chan in [Chan::Weft, Chan::WeftBudget, Chan::Kanal, Chan::TokioMpsc] {
            if cap == 0 && matches!(chan, Chan::TokioMpsc | Chan::WeftBudget) {
                continue;
            }
            let name = format!("{flavour}/{}", chan.name());
            if name.contains(&filter) {
                cases.push((name, chan, cap));
            }
        }
    }
    println!(
        "| round | case | timer lateness p50 / p99 / p99.9 / max us | wake delay p50 / p99 / p99.9 / max us | ping RTT p50 / p99 / p99.9 / max us | samples | wall ns/msg | cpu ns/msg |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for round in 0..rounds {
        for (name, chan, cap) in &cases {
            let stop = Arc::new(AtomicBool::new(false));
            let (wall0, cpu0) = (Instant::now(), weft_benches::process_cpu_time());
            let consumers = spawn_load(&rt, *chan, *cap, &stop);
            let probe = spawn_probe(&rt, &stop);
            let wake = spawn_wake_probe(&rt, &stop);
            std::thread::sleep(Duration::from_secs_f64(seconds));
            stop.store(true, Ordering::Relaxed);
            let (mut probe, msgs) = rt.block_on(async {
                let mut msgs = 0;
                for c in consumers {
                    msgs += c.await.expect("consumer task");
                }
                (probe.await.expect("probe task"), msgs)
            });
            let (wall, cpu) = (wall0.elapsed(), weft_benches::process_cpu_time() - cpu0);
            let mut wake = wake.join().expect("wake probe thread");
            let per = |d: Duration| {
                if msgs == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.1}", d.as_nanos() as f64 / msgs as f64)
                }
            };
            println!(
                "| {round} | {name} | {} | {} | {} | {} | {} | {} |",
                quantiles(&mut probe.late),
                quantiles(&mut wake),
                quantiles(&mut probe.ping),
                probe.late.len(),
                per(wall),
                per(cpu)
            );
        }
    }
}
