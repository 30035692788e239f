//! The memory budget, shared out between the parts of an analysis that hold memory: the chunk
//! buffers and partial counts in flight, and the tables of paths, clients and minutes.

use std::mem::size_of;

use super::LogsError;
use super::aggregate::{ClientEntry, ClientKey, PathEntry};
use super::heavy::Room;
use super::panels::PanelSet;
use super::panels::count::PanelPlan;

/// The default memory budget: 128 MiB for the whole process.
pub const DEFAULT_MEMORY_BUDGET: u64 = 128 << 20;
/// The smallest budget accepted.
pub const MIN_MEMORY_BUDGET: u64 = 32 << 20;
/// What the process holds whatever the input: code, the runtime, thread stacks, the overall
/// latency histograms (one per chunk in flight).
pub(crate) const FIXED: u64 = 20 << 20;
/// The smallest chunk read at once.
const MIN_CHUNK: usize = 64 << 10;

/// How an analysis spends its budget.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) chunk_size: usize,
    pub(crate) max_line: usize,
    pub(crate) paths: Room,
    pub(crate) clients: Room,
    pub(crate) minutes: usize,
    pub(crate) panel_set: PanelSet,
    pub(crate) panels: PanelPlan,
}

impl Plan {
    /// Shares `budget` bytes out for `workers` parse workers (see [`Plan`]): after the fixed
    /// part, 1/4 for the chunks in flight, 3/8 for paths, 3/16 for clients, 1/16 for minutes,
    /// and 1/8 left for the allocator's slack.
    #[cfg(test)]
    pub(crate) fn for_budget(budget: u64, workers: usize) -> Plan {
        Plan::with_panels(budget, workers, PanelSet::none())
    }

    /// The plan with `panels` counted too: they take a quarter of the budget after the fixed
    /// part, from the chunks in flight (3/16 instead of 1/4), paths (1/4 instead of 3/8) and
    /// clients (1/8 instead of 3/16); a chunk's partial counts are then taken as three times
    /// its size (referrer and agent texts).
    pub(crate) fn with_panels(budget: u64, workers: usize, panels: PanelSet) -> Plan {
        let rest = usize::try_from(budget.saturating_sub(FIXED)).unwrap_or(usize::MAX);
        if !panels.is_empty() {
            let chunks = 3 * workers + 3 + 3 * (2 * workers + 2);
            let minute_entry = size_of::<(i64, u64)>() + 1;
            return Plan {
                chunk_size: (rest / 16 * 3 / chunks).max(MIN_CHUNK),
                max_line: (rest / 8).max(MIN_CHUNK),
                paths: Room::for_bytes(rest / 4, size_of::<(u64, PathEntry)>()),
                clients: Room::for_bytes(rest / 8, size_of::<(ClientKey, ClientEntry)>()),
                minutes: rest / 16 / 2 / minute_entry,
                panel_set: panels,
                panels: PanelPlan::for_bytes(rest / 4),
            };
        }
        // In flight: a chunk per worker, one queued per worker, the emptied ones coming back
        // (workers + 1) and the reader's two; a chunk's partial counts take about twice its
        // size (keys, texts and latencies of every line), and there are 2 * workers + 2 of them.
        let chunks = 3 * workers + 3 + 2 * (2 * workers + 2);
        let chunk_size = (rest / 4 / chunks).max(MIN_CHUNK);
        let minute_entry = size_of::<(i64, u64)>() + 1;
        Plan {
            chunk_size,
            max_line: (rest / 8).max(MIN_CHUNK),
            paths: Room::for_bytes(rest / 8 * 3, size_of::<(u64, PathEntry)>()),
            clients: Room::for_bytes(rest / 16 * 3, size_of::<(ClientKey, ClientEntry)>()),
            // Half of the share: a hash map may hold twice its length while it grows.
            minutes: rest / 16 / 2 / minute_entry,
            panel_set: panels,
            panels: PanelPlan::for_bytes(0),
        }
    }
}

/// Parses a size such as `128M`, `1.5G`, `64MiB`, `500MB` or `1048576`: `K`, `M`, `G` (with or
/// without `iB`) are powers of 1024, `KB`, `MB`, `GB` powers of 1000; case is ignored.
///
/// ```
/// use weft_logs::parse_size;
/// assert_eq!(parse_size("128M")?, 128 << 20);
/// assert_eq!(parse_size("64MiB")?, 64 << 20);
/// assert_eq!(parse_size("1.5g")?, 3 << 29);
/// assert_eq!(parse_size("500MB")?, 500_000_000);
/// assert_eq!(parse_size("4096")?, 4096);
/// assert!(parse_size("lots").is_err());
/// # Ok::<(), weft_logs::LogsError>(())
/// ```
pub fn parse_size(s: &str) -> Result<u64, LogsError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        LogsError::InvalidArgument(format!(
            "unreadable size {s:?} (expected a number with an optional unit: 512M, 2G, 500MB)"
        ))
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return Err(bad()),
    };
    let v = n * mult;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_fits_its_budget() {
        let p = Plan::for_budget(DEFAULT_MEMORY_BUDGET, 3);
        assert!(p.chunk_size >= 512 << 10, "{p:?}");
        assert!(p.paths.max_len >= 50_000, "{p:?}");
        assert!(p.clients.max_len >= 100_000, "{p:?}");
        let small = Plan::for_budget(MIN_MEMORY_BUDGET, 3);
        assert!(small.paths.max_len < p.paths.max_len);
        assert!(small.chunk_size < p.chunk_size);
        let with = Plan::with_panels(DEFAULT_MEMORY_BUDGET, 3, PanelSet::all());
        assert!(with.paths.max_len >= 50_000, "{with:?}");
        assert!(with.panels.visitors_exact >= 100_000, "{with:?}");
        // The bandwidth tables are touched on every line: big enough for a useful top list,
        // small enough (entries under 512 KiB) to stay in a core's L2 cache, which their misses
        // otherwise made 80% of the panels' cost.
        let text_entry = size_of::<(u64, crate::panels::count::TextEntry)>();
        for room in [with.panels.bw_paths, with.panels.bw_clients] {
            assert!(room.max_len >= 2_000, "{with:?}");
        }
        assert!(
            with.panels.bw_paths.max_len * text_entry <= 512 << 10,
            "{with:?}"
        );
    }
}
