//! Prometheus text exposition of the pool's stats and the store's job counts.

use std::fmt::Write as _;

use weft_pool::{Outcome, Stats};

use super::store::JobStatus;

/// This node's part of a shared queue (PostgreSQL), for the metrics page.
#[derive(Debug)]
pub(crate) struct NodeFigures {
    /// Jobs this node claimed since start.
    pub(crate) claimed: u64,
    /// Jobs it holds now (claimed, not yet recorded).
    pub(crate) held: usize,
    /// Statements it sent to the database since start.
    pub(crate) queries: u64,
    /// Queued jobs in the database per effective priority level (every node's queue).
    pub(crate) depth: Vec<(u8, u64)>,
}

/// Renders the metrics page (Prometheus text format 0.0.4).
pub(crate) fn render(
    stats: &Stats,
    stored: &[(JobStatus, u64)],
    accepted: u64,
    rejected: u64,
    node: Option<&NodeFigures>,
) -> String {
    let mut out = String::with_capacity(2048);
    let mut gauge = |name: &str, help: &str, kind: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    gauge(
        "weft_jobs_accepted_total",
        "Jobs accepted (202) since start.",
        "counter",
    );
    gauge(
        "weft_jobs_rejected_total",
        "Jobs refused with 503 because their queue was full.",
        "counter",
    );
    gauge("weft_pool_workers", "Workers in the pool.", "gauge");
    gauge("weft_pool_busy_workers", "Workers running a job.", "gauge");
    gauge(
        "weft_pool_queue_depth",
        "Jobs waiting, per priority level.",
        "gauge",
    );
    gauge(
        "weft_pool_jobs_total",
        "Jobs that ended in the pool, per outcome.",
        "counter",
    );
    gauge(
        "weft_pool_queue_wait_seconds",
        "Time from submission to start.",
        "summary",
    );
    gauge("weft_pool_run_seconds", "Time a job ran.", "summary");
    gauge(
        "weft_jobs_stored",
        "Jobs in the database, per status.",
        "gauge",
    );
    let _ = writeln!(out, "weft_jobs_accepted_total {accepted}");
    let _ = writeln!(out, "weft_jobs_rejected_total {rejected}");
    let _ = writeln!(out, "weft_pool_workers {}", stats.workers);
    let _ = writeln!(out, "weft_pool_busy_workers {}", stats.busy);
    for (level, depth) in stats.queued.iter().enumerate() {
        let _ = writeln!(out, "weft_pool_queue_depth{{priority=\"{level}\"}} {depth}");
    }
    for outcome in Outcome::all() {
        let name = outcome.to_string().replace(' ', "_");
        let _ = writeln!(
            out,
            "weft_pool_jobs_total{{outcome=\"{name}\"}} {}",
            stats.count(outcome)
        );
    }
    for (metric, lat) in [
        ("weft_pool_queue_wait_seconds", &stats.queue_wait),
        ("weft_pool_run_seconds", &stats.run_time),
    ] {
        for (q, v) in [("0.5", lat.p50), ("0.9", lat.p90), ("0.99", lat.p99)] {
            let _ = writeln!(out, "{metric}{{quantile=\"{q}\"}} {}", v.as_secs_f64());
        }
        let _ = writeln!(out, "{metric}_count {}", lat.count);
    }
    for (status, n) in stored {
        let _ = writeln!(
            out,
            "weft_jobs_stored{{status=\"{}\"}} {n}",
            status.as_str()
        );
    }
    if let Some(node) = node {
        let mut kind = |name: &str, help: &str, kind: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        kind(
            "weft_node_claimed_total",
            "Jobs this node claimed from the shared queue.",
            "counter",
        );
        kind(
            "weft_node_held_jobs",
            "Jobs this node holds under a lease now.",
            "gauge",
        );
        kind(
            "weft_node_db_queries_total",
            "Statements this node sent to the database.",
            "counter",
        );
        kind(
            "weft_db_queue_depth",
            "Queued jobs in the shared database, per effective priority level (all nodes).",
            "gauge",
        );
        let _ = writeln!(out, "weft_node_claimed_total {}", node.claimed);
        let _ = writeln!(out, "weft_node_held_jobs {}", node.held);
        let _ = writeln!(out, "weft_node_db_queries_total {}", node.queries);
        for level in 0..crate::PRIORITY_LEVELS {
            let depth = node
                .depth
                .iter()
                .find(|(l, _)| *l == level)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "weft_db_queue_depth{{priority=\"{level}\"}} {depth}");
        }
    }
    out
}
