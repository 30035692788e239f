//! A system monitor: collectors, a processor and stores joined as streams, one cycle per
//! interval, each cycle under a deadline of 0.9 x the interval. Section 5 of the Go material.
//!
//! What it fixes in the Go original:
//! - **Its collectors report made-up numbers**; these read the real CPU, memory, disk and
//!   network figures (sysinfo), on blocking threads so the async workers never stall on /proc.
//! - **A slow collector silently shortened the cycle's data**: here a cycle that hits its
//!   deadline says so (`partial`) and names the collectors that missed it.
//! - **Rates were impossible** (the processor kept no state between cycles): the processor here
//!   derives network bytes/s and disk growth from the previous cycle's totals.
//! - **`for err := range errCh` leaked when the store blocked**; stores here are plain stream
//!   consumers that finish when the stream ends, and the JSON-lines file is flushed per cycle.
//!
//! Run: `cargo run --example system_monitor [-- --interval-ms 500 --cycles 4 --jsonl metrics.jsonl]`

#[path = "common/out.rs"]
mod out;
use out::outln;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use serde::Serialize;
use sysinfo::{Disks, Networks, System};
use weft::core::chan::{self, Sender};
use weft::core::context::Context;
use weft::core::select::merge;
use weft::core::time::Ticker;

#[derive(Debug, Parser)]
struct Args {
    /// Time between cycles, in milliseconds (each cycle's deadline is 90% of it).
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
    /// Number of cycles to run (0 = until Ctrl-C).
    #[arg(long, default_value_t = 4)]
    cycles: u64,
    /// Append each cycle's processed metrics to this file as JSON lines.
    #[arg(long)]
    jsonl: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
struct Metric {
    name: &'static str,
    value: f64,
}

/// One collector: a name and a blocking read of some metrics.
type Collect = fn(&mut Sources) -> Vec<Metric>;

/// What the collectors read from; CPU usage needs the previous refresh, so it is kept.
struct Sources {
    system: System,
    disks: Disks,
    networks: Networks,
}

fn cpu(s: &mut Sources) -> Vec<Metric> {
    s.system.refresh_cpu_usage();
    vec![Metric {
        name: "cpu.usage_percent",
        value: f64::from(s.system.global_cpu_usage()),
    }]
}

fn memory(s: &mut Sources) -> Vec<Metric> {
    s.system.refresh_memory();
    vec![
        Metric {
            name: "memory.used_bytes",
            value: s.system.used_memory() as f64,
        },
        Metric {
            name: "memory.total_bytes",
            value: s.system.total_memory() as f64,
        },
    ]
}

fn disk(s: &mut Sources) -> Vec<Metric> {
    s.disks.refresh(true);
    let (total, avail) = s.disks.iter().fold((0u64, 0u64), |(t, a), d| {
        (t + d.total_space(), a + d.available_space())
    });
    vec![
        Metric {
            name: "disk.total_bytes",
            value: total as f64,
        },
        Metric {
            name: "disk.used_bytes",
            value: total.saturating_sub(avail) as f64,
        },
    ]
}

fn network(s: &mut Sources) -> Vec<Metric> {
    s.networks.refresh(true);
    let (rx, tx) = s.networks.iter().fold((0u64, 0u64), |(r, t), (_, n)| {
        (r + n.total_received(), t + n.total_transmitted())
    });
    vec![
        Metric {
            name: "net.received_bytes",
            value: rx as f64,
        },
        Metric {
            name: "net.transmitted_bytes",
            value: tx as f64,
        },
    ]
}

const COLLECTORS: [(&str, Collect); 4] = [
    ("cpu", cpu),
    ("memory", memory),
    ("disk", disk),
    ("network", network),
];

/// Runs one collector on a blocking thread and sends its metrics, unless the cycle ends first;
/// returns whether it delivered everything.
async fn run_collector(
    ctx: Context,
    sources: Arc<Mutex<Sources>>,
    collect: Collect,
    out: Sender<Metric>,
) -> bool {
    let read = tokio::task::spawn_blocking(move || {
        let mut sources = sources.lock().unwrap_or_else(|e| e.into_inner());
        collect(&mut sources)
    });
    let Ok(Ok(metrics)) = ctx.run(read).await else {
        return false;
    };
    for m in metrics {
        if out.send_ctx(m, &ctx).await.is_err() {
            return false;
        }
    }
    true
}

/// The processor's state across cycles: the previous totals, for rates.
#[derive(Default)]
struct Processor {
    previous: Option<(tokio::time::Instant, f64, f64)>,
}

#[derive(Debug, Default, Serialize)]
struct Cycle {
    cycle: u64,
    cpu_percent: Option<f64>,
    memory_used_percent: Option<f64>,
    disk_used_percent: Option<f64>,
    net_rx_bytes_per_sec: Option<f64>,
    net_tx_bytes_per_sec: Option<f64>,
    partial: bool,
    missing: Vec<&'static str>,
}

impl Processor {
    fn process(&mut self, cycle: u64, metrics: &[Metric], missing: Vec<&'static str>) -> Cycle {
        let get = |name: &str| metrics.iter().find(|m| m.name == name).map(|m| m.value);
        let ratio = |used: Option<f64>, total: Option<f64>| match (used, total) {
            (Some(u), Some(t)) if t > 0.0 => Some(100.0 * u / t),
            _ => None,
        };
        let mut out = Cycle {
            cycle,
            cpu_percent: get("cpu.usage_percent"),
            memory_used_percent: ratio(get("memory.used_bytes"), get("memory.total_bytes")),
            disk_used_percent: ratio(get("disk.used_bytes"), get("disk.total_bytes")),
            partial: !missing.is_empty(),
            missing,
            ..Cycle::default()
        };
        if let (Some(rx), Some(tx)) = (get("net.received_bytes"), get("net.transmitted_bytes")) {
            let now = tokio::time::Instant::now();
            if let Some((then, prx, ptx)) = self.previous {
                let secs = now.duration_since(then).as_secs_f64().max(1e-3);
                out.net_rx_bytes_per_sec = Some((rx - prx).max(0.0) / secs);
                out.net_tx_bytes_per_sec = Some((tx - ptx).max(0.0) / secs);
            }
            self.previous = Some((now, rx, tx));
        }
        out
    }
}

fn fmt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}{unit}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let interval = Duration::from_millis(args.interval_ms.max(10));
    let (ctx, _cancel) = weft_core::signal::ctrl_c_context();
    let sources = Arc::new(Mutex::new(Sources {
        system: System::new()?,
        disks: Disks::new_with_refreshed_list()?,
        networks: Networks::new_with_refreshed_list()?,
    }));
    let mut jsonl = match &args.jsonl {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    let mut processor = Processor::default();
    let mut ticker = Ticker::new(interval);
    outln!(
        "{:>5} {:>7} {:>7} {:>7} {:>12} {:>12}  note",
        "cycle",
        "cpu",
        "mem",
        "disk",
        "net rx/s",
        "net tx/s"
    );

    let mut cycle = 0;
    while args.cycles == 0 || cycle < args.cycles {
        tokio::select! {
            () = ctx.done() => break,
            _ = ticker.tick() => {}
        }
        cycle += 1;
        // Each cycle has its own deadline, so a stuck collector cannot delay the next one.
        let (cycle_ctx, _c) = ctx.with_timeout(interval.mul_f64(0.9));
        let mut inputs = Vec::new();
        let mut collectors = Vec::new();
        for (name, collect) in COLLECTORS {
            let (tx, rx) = chan::bounded(8);
            collectors.push((
                name,
                tokio::spawn(run_collector(
                    cycle_ctx.clone(),
                    Arc::clone(&sources),
                    collect,
                    tx,
                )),
            ));
            inputs.push(rx);
        }
        // Fan-in: the merged stream ends when every collector has closed its channel.
        let mut merged = merge(inputs);
        let mut metrics = Vec::new();
        while let Ok(Some(m)) = cycle_ctx.run(merged.next()).await {
            metrics.push(m);
        }
        // Every collector is joined before the cycle ends: none outlives its cycle.
        let mut missing = Vec::new();
        for (name, handle) in collectors {
            if !handle.await.unwrap_or(false) {
                missing.push(name);
            }
        }
        let row = processor.process(cycle, &metrics, missing);
        let note = if row.partial {
            format!("partial: deadline passed before {}", row.missing.join(", "))
        } else {
            String::new()
        };
        outln!(
            "{:>5} {:>7} {:>7} {:>7} {:>12} {:>12}  {note}",
            row.cycle,
            fmt(row.cpu_percent, "%"),
            fmt(row.memory_used_percent, "%"),
            fmt(row.disk_used_percent, "%"),
            fmt(row.net_rx_bytes_per_sec, "B"),
            fmt(row.net_tx_bytes_per_sec, "B"),
        );
        if let Some(f) = jsonl.as_mut() {
            serde_json::to_writer(&mut *f, &row)?;
            f.write_all(b"\n")?;
            f.flush()?;
        }
    }
    outln!(
        "monitored {cycle} cycles{}",
        ctx.cause()
            .map(|c| format!(" (stopped: {c})"))
            .unwrap_or_default()
    );
    Ok(())
}
