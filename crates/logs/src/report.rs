//! The report: built once from the merged stats, in a deterministic order, and rendered as text
//! (its `Display`), JSON (`serde`) or HTML ([`render_html`](super::render_html)).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::aggregate::{HLL_STD_ERROR, Totals, client_text};
use super::panels::Panels;
use super::time::{format_rfc3339, format_utc};
use super::{LogFormat, Options};

/// The result of an analysis. Line, request, status and minute counts are exact; percentiles
/// come from histograms and are within 0.05% (overall) or 3.1% (per path) of the exact
/// nearest-rank value.
///
/// Paths and client addresses are counted exactly while they fit the memory budget. Past it,
/// each table becomes a heavy-hitters summary: [`Report::top_paths_max_overcount`] and
/// [`Report::top_ips_max_overcount`] give the most a listed count can exceed the true one (0
/// while exact), and the distinct counts become HyperLogLog estimates
/// ([`Report::distinct_paths_exact`], [`Report::distinct_error`]). The figures a path lists
/// beside its count (errors, latencies) then cover the requests counted while it was tracked.
///
/// The line counters add up: `lines = blank_lines + other_lines + malformed_lines +
/// filtered_out + requests`. Its `Display` is the text report; it serializes to JSON with serde.
///
/// ```
/// use weft_logs::{Input, Options, analyze};
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let data = b"2024-03-01 12:00:00 path=/a status=200 time=8ms\n\nnonsense\n".to_vec();
/// let r = analyze(&Context::background(), vec![Input::Bytes { name: "a".into(), data }], Options::default()).await?;
/// assert_eq!(r.lines, r.blank_lines + r.other_lines + r.malformed_lines + r.filtered_out + r.requests);
/// assert!(r.to_string().contains("malformed lines: 1"));
/// let json = serde_json::to_value(&r)?;
/// assert_eq!(json["latency"]["p50_ms"], 8.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The analysis stopped early (its context was cancelled): the figures cover only part of
    /// the input.
    pub partial: bool,
    /// Why it stopped early (the context's cause), when `partial`.
    pub stopped_because: Option<String>,
    /// The inputs, in the order they were read.
    pub inputs: Vec<InputSummary>,
    /// Lines read.
    pub lines: u64,
    /// Empty lines.
    pub blank_lines: u64,
    /// Well-formed lines without request fields (application messages).
    pub other_lines: u64,
    /// Lines that could not be parsed.
    pub malformed_lines: u64,
    /// Malformed lines by reason, most frequent first.
    pub malformed_reasons: Vec<ReasonCount>,
    /// The first malformed lines, in input order.
    pub malformed_samples: Vec<MalformedSample>,
    /// Requests the filters left out.
    pub filtered_out: u64,
    /// Requests counted.
    pub requests: u64,
    /// Requests with status 400 or more.
    pub errors: u64,
    /// `errors / requests`, 0 when there are no requests.
    pub error_share: f64,
    /// The slow threshold, in milliseconds.
    pub slow_threshold_ms: u64,
    /// Requests slower than the threshold.
    pub slow: u64,
    /// Latency over the requests that have one; `None` if none has.
    pub latency: Option<LatencySummary>,
    /// Latency distribution in 1-2-5 bins, from the first to the last non-empty bin.
    pub latency_histogram: Vec<LatencyBin>,
    /// Requests per status code, by code.
    pub status_codes: Vec<StatusCount>,
    /// Number of distinct paths (targets without their query string).
    pub distinct_paths: usize,
    /// Whether `distinct_paths` is exact; else it is a HyperLogLog estimate.
    pub distinct_paths_exact: bool,
    /// The busiest paths: by count, then by path.
    pub top_paths: Vec<PathSummary>,
    /// The most a count in `top_paths` can exceed the true count: 0 while every path fits the
    /// memory budget, else the bound of the heavy-hitters summary (each listed count `c` is
    /// then an upper bound, and the true count is in `c - max_overcount ..= c`).
    pub top_paths_max_overcount: u64,
    /// Number of distinct client addresses.
    pub distinct_ips: usize,
    /// Whether `distinct_ips` is exact; else it is a HyperLogLog estimate.
    pub distinct_ips_exact: bool,
    /// The busiest client addresses: by count, then by address.
    pub top_ips: Vec<IpCount>,
    /// The most a count in `top_ips` can exceed the true count (see `top_paths_max_overcount`).
    pub top_ips_max_overcount: u64,
    /// The relative standard error of an estimated distinct count (HyperLogLog with 2^14
    /// registers: 0.81%); it applies where `distinct_*_exact` is false.
    pub distinct_error: f64,
    /// The memory budget the analysis ran under, in bytes.
    pub memory_budget: u64,
    /// Requests per minute over the minutes from the first to the last timestamped request.
    pub requests_per_minute: Option<RateSummary>,
    /// Requests per minute that has any, in time order.
    pub per_minute: Vec<MinuteCount>,
    /// Requests left out of `per_minute` (and the rate) because their minutes did not fit the
    /// memory budget (timestamps spread over years).
    pub per_minute_dropped: u64,
    /// Bandwidth, visitors, not-found paths, static files, referrers, user agents, hours and
    /// virtual hosts, as far as the format carries their fields and [`Options::panels`] asks.
    pub panels: Panels,
}

/// Malformed lines with one reason.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ReasonCount {
    /// What is wrong with them.
    pub reason: String,
    /// How many lines.
    pub count: u64,
}

/// One input of the analysis.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct InputSummary {
    /// Path, `-` for stdin, or the given name.
    pub name: String,
    /// Format used (`None` if the input could not be opened).
    pub format: Option<LogFormat>,
    /// Whether the format was detected (rather than forced or assumed).
    pub detected: bool,
    /// Whether the input was gzip-compressed.
    pub gzip: bool,
    /// Bytes of log text read (after decompression).
    pub bytes: u64,
    /// Lines analyzed.
    pub lines: u64,
    /// Why the input could not be read (fully), if it could not.
    pub error: Option<String>,
}

impl InputSummary {
    pub(crate) fn new(name: String) -> Self {
        InputSummary {
            name,
            format: None,
            detected: false,
            gzip: false,
            bytes: 0,
            lines: 0,
            error: None,
        }
    }
}

/// A malformed line, quoted.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MalformedSample {
    /// The input it is in.
    pub input: String,
    /// Its line number (from 1), when known (it is not in a partial report with gaps).
    pub line: Option<u64>,
    /// What is wrong with it.
    pub reason: String,
    /// Its first 200 bytes, invalid UTF-8 replaced.
    pub text: String,
}

/// Latency figures, in milliseconds.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Requests with a latency.
    pub count: u64,
    /// Fastest.
    pub min_ms: f64,
    /// Mean.
    pub avg_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// A latency bin: requests with `lo_ms <= latency < hi_ms`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LatencyBin {
    /// Lower bound, inclusive.
    pub lo_ms: f64,
    /// Upper bound, exclusive.
    pub hi_ms: f64,
    /// Requests in the bin.
    pub count: u64,
}

/// Requests with one status code.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StatusCount {
    /// The code.
    pub status: u16,
    /// Requests.
    pub count: u64,
    /// Share of all requests (0 to 1).
    pub share: f64,
}

/// One path's figures.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PathSummary {
    /// The path (target without query string; invalid UTF-8 replaced).
    pub path: String,
    /// Requests (an upper bound when `Report::top_paths_max_overcount` is not 0).
    pub count: u64,
    /// Requests with status 400 or more.
    pub errors: u64,
    /// Mean latency, if any request has one.
    pub avg_ms: Option<f64>,
    /// 95th percentile latency, if any request has one.
    pub p95_ms: Option<f64>,
}

/// Requests from one client address.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct IpCount {
    /// The address as written in the log.
    pub ip: String,
    /// Requests.
    pub count: u64,
}

/// Requests in one minute.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MinuteCount {
    /// Start of the minute, RFC 3339 (UTC).
    pub minute: String,
    /// Requests.
    pub count: u64,
}

/// The request rate.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RateSummary {
    /// First timestamped request, `YYYY-MM-DD HH:MM:SS` UTC.
    pub first: String,
    /// Last timestamped request.
    pub last: String,
    /// Minutes from the first to the last request's minute, both included.
    pub minutes: u64,
    /// Mean requests per minute over those minutes.
    pub average: f64,
    /// The busiest minute's requests.
    pub peak: u64,
    /// The busiest minute (the earliest on ties), RFC 3339.
    pub peak_minute: String,
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Sorted by count descending, then key ascending, cut to `top`.
pub(crate) fn top_by_count<T>(
    items: Vec<(Box<[u8]>, T)>,
    count: impl Fn(&T) -> u64,
    top: usize,
) -> Vec<(Box<[u8]>, T)> {
    let mut items = items;
    // Only the items tied with the top-th count or above can be listed: sort those.
    if top > 0 && items.len() > top {
        let (_, nth, _) =
            items.select_nth_unstable_by(top - 1, |a, b| count(&b.1).cmp(&count(&a.1)));
        let bar = count(&nth.1);
        items.retain(|i| count(&i.1) >= bar);
    }
    items.sort_unstable_by(|a, b| count(&b.1).cmp(&count(&a.1)).then_with(|| a.0.cmp(&b.0)));
    items.truncate(top);
    items
}

/// Text from the input, made safe for a terminal: control characters (ESC, BEL, the C1 range
/// that starts OSC sequences, DEL) are written as `\x1b`-style escapes.
pub(crate) fn term(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let n = u32::from(c);
            if n < 0x100 {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// 1-2-5 bin edges in microseconds: 0, 1 ms, 2 ms, 5 ms, 10 ms, ...
fn bin_edge(i: usize) -> u64 {
    if i == 0 {
        return 0;
    }
    let k = i - 1;
    [1, 2, 5][k % 3] * 1000 * 10u64.saturating_pow((k / 3) as u32)
}

pub(crate) fn build(
    mut stats: Totals,
    mut inputs: Vec<InputSummary>,
    o: &Options,
    stopped: Option<String>,
) -> Report {
    // Lines per input, and the first line number of every chunk (while chunks are contiguous).
    stats.chunk_lines.sort_unstable();
    let mut first_line: HashMap<(usize, u64), u64> = HashMap::new();
    let mut cursor: Option<(usize, u64, u64)> = None; // (input, next seq, lines before it)
    for &((input, seq, _), n) in &stats.chunk_lines {
        if let Some(s) = inputs.get_mut(input) {
            s.lines += n;
        }
        let before = match cursor {
            Some((i, next, before)) if i == input && next == seq => Some(before),
            _ if seq == 0 => Some(0),
            _ => None,
        };
        match before {
            Some(b) => {
                first_line.insert((input, seq), b);
                cursor = Some((input, seq + 1, b + n));
            }
            None => cursor = None,
        }
    }
    let malformed_samples = stats
        .samples
        .iter()
        .map(|s| {
            let (input, seq, line) = s.at;
            MalformedSample {
                input: inputs
                    .get(input)
                    .map(|i| i.name.clone())
                    .unwrap_or_default(),
                line: first_line.get(&(input, seq)).map(|b| b + line),
                reason: s.reason.to_string(),
                text: s.text.clone(),
            }
        })
        .collect();

    let h = &stats.latency;
    let latency = h.min_max().map(|(min, max)| LatencySummary {
        count: h.total(),
        min_ms: ms(min as f64),
        avg_ms: ms(stats.c.latency_sum_us as f64 / h.total() as f64),
        max_ms: ms(max as f64),
        p50_ms: ms(h.quantile(0.5).unwrap_or(0.0)),
        p90_ms: ms(h.quantile(0.9).unwrap_or(0.0)),
        p99_ms: ms(h.quantile(0.99).unwrap_or(0.0)),
    });
    let mut latency_histogram: Vec<LatencyBin> = Vec::new();
    let mut bins: Vec<u64> = Vec::new();
    for (lo, _, c) in h.buckets() {
        let mut i = 0;
        while bin_edge(i + 1) <= lo && i < 40 {
            i += 1;
        }
        if bins.len() <= i {
            bins.resize(i + 1, 0);
        }
        bins[i] += c;
    }
    if let Some(first) = bins.iter().position(|&c| c > 0) {
        for (i, &count) in bins.iter().enumerate().skip(first) {
            latency_histogram.push(LatencyBin {
                lo_ms: ms(bin_edge(i) as f64),
                hi_ms: ms(bin_edge(i + 1) as f64),
                count,
            });
        }
    }

    let status_codes = stats
        .status
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(code, &count)| StatusCount {
            status: code as u16,
            count,
            share: share(count, stats.c.requests),
        })
        .collect();

    let (distinct_paths, distinct_paths_exact) = stats.distinct_paths();
    let (distinct_ips, distinct_ips_exact) = stats.distinct_clients();
    let top_paths_max_overcount = stats.paths.max_overcount();
    let top_ips_max_overcount = stats.clients.max_overcount();
    let paths: Vec<_> = std::mem::take(&mut stats.paths.map)
        .into_values()
        .map(|p| (Box::<[u8]>::from(stats.path_text(&p)), p))
        .collect();
    let top_paths = top_by_count(paths, |p| p.count, o.top)
        .into_iter()
        .map(|(path, p)| PathSummary {
            path: String::from_utf8_lossy(&path).into_owned(),
            count: p.count + top_paths_max_overcount,
            errors: p.errors,
            avg_ms: (p.timed > 0).then(|| ms(p.latency_sum_us as f64 / p.timed as f64)),
            p95_ms: p.latency.quantile(0.95).map(ms),
        })
        .collect();
    // Addresses are formatted only for the clients that can be listed.
    let mut clients: Vec<_> = stats.clients.map.drain().collect();
    if o.top > 0 && clients.len() > o.top {
        let (_, nth, _) =
            clients.select_nth_unstable_by(o.top - 1, |a, b| b.1.count.cmp(&a.1.count));
        let bar = nth.1.count;
        clients.retain(|c| c.1.count >= bar);
    }
    let ips: Vec<(Box<[u8]>, u64)> = clients
        .into_iter()
        .map(|(key, c)| {
            let text = c
                .text
                .unwrap_or_else(|| client_text(key).into_bytes().into_boxed_slice());
            (text, c.count)
        })
        .collect();
    let top_ips = top_by_count(ips, |c| *c, o.top)
        .into_iter()
        .map(|(ip, count)| IpCount {
            ip: String::from_utf8_lossy(&ip).into_owned(),
            count: count + top_ips_max_overcount,
        })
        .collect();
    let mut reasons = std::mem::take(&mut stats.reasons);
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let malformed_reasons = reasons
        .into_iter()
        .map(|(reason, count)| ReasonCount {
            reason: reason.to_string(),
            count,
        })
        .collect();

    let requests = stats.c.requests;
    let panels = std::mem::replace(
        &mut stats.panels,
        crate::panels::count::PanelTotals::new(
            crate::PanelSet::none(),
            crate::panels::count::PanelPlan::for_bytes(0),
        ),
    );
    let panels = crate::panels::report::build(panels, o.top, requests);
    let mut minutes: Vec<(i64, u64)> = stats.minutes.drain().collect();
    minutes.sort_unstable();
    let requests_per_minute = match (minutes.first(), minutes.last()) {
        (Some(&(first, _)), Some(&(last, _))) => {
            let span = (last - first + 1) as u64;
            let total: u64 = minutes.iter().map(|m| m.1).sum();
            // The earliest busiest minute: max_by_key keeps the last maximum, so compare
            // the reversed minute too.
            let &(peak_m, peak) = minutes
                .iter()
                .max_by_key(|(m, c)| (*c, std::cmp::Reverse(*m)))
                .unwrap_or(&(first, 0));
            Some(RateSummary {
                first: format_utc(first * 60),
                last: format_utc(last * 60 + 59),
                minutes: span,
                average: total as f64 / span as f64,
                peak,
                peak_minute: format_rfc3339(peak_m * 60),
            })
        }
        _ => None,
    };
    let per_minute = minutes
        .into_iter()
        .map(|(m, count)| MinuteCount {
            minute: format_rfc3339(m * 60),
            count,
        })
        .collect();

    Report {
        partial: stopped.is_some(),
        stopped_because: stopped,
        inputs,
        lines: stats.c.lines,
        blank_lines: stats.c.blank,
        other_lines: stats.c.other,
        malformed_lines: stats.c.malformed,
        malformed_reasons,
        malformed_samples,
        filtered_out: stats.c.filtered,
        requests: stats.c.requests,
        errors: stats.c.errors,
        error_share: share(stats.c.errors, stats.c.requests),
        slow_threshold_ms: o.slow_ms,
        slow: stats.c.slow,
        latency,
        latency_histogram,
        status_codes,
        distinct_paths: usize::try_from(distinct_paths).unwrap_or(usize::MAX),
        distinct_paths_exact,
        top_paths,
        top_paths_max_overcount,
        distinct_ips: usize::try_from(distinct_ips).unwrap_or(usize::MAX),
        distinct_ips_exact,
        top_ips,
        top_ips_max_overcount,
        distinct_error: HLL_STD_ERROR,
        memory_budget: o.memory_budget,
        requests_per_minute,
        per_minute,
        per_minute_dropped: stats.minutes_dropped,
        panels,
    }
}

/// Formats milliseconds with a precision that suits their size.
pub(crate) fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `123`, or `~123 (estimated, 0.81% standard error)`.
pub(crate) fn distinct(n: usize, exact: bool, error: f64) -> String {
    if exact {
        n.to_string()
    } else {
        format!("~{n} (estimated, {:.2}% standard error)", error * 100.0)
    }
}

/// The sentence that says a table's counts are bounds, and how loose.
pub(crate) fn overcount_sentence(max_overcount: u64, what: &str, budget: u64) -> Option<String> {
    (max_overcount > 0).then(|| {
        format!(
            "more distinct {what} than fit the memory budget ({}): counts are upper bounds, \
             each at most {max_overcount} above the true count (Misra-Gries/Space-Saving summary)",
            human_bytes(budget)
        )
    })
}

fn overcount_note(f: &mut fmt::Formatter<'_>, max: u64, what: &str, budget: u64) -> fmt::Result {
    match overcount_sentence(max, what, budget) {
        Some(s) => writeln!(f, "  {s}"),
        None => Ok(()),
    }
}

/// A panel as text: numbers right-aligned, the text column last and escaped for the terminal.
fn write_table(f: &mut fmt::Formatter<'_>, t: &crate::panels::Table) -> fmt::Result {
    writeln!(f, "\n{}", t.title.to_lowercase())?;
    if let Some(note) = &t.note {
        writeln!(f, "  {note}")?;
    }
    if t.rows.is_empty() {
        writeln!(f, "  (none)")?;
    }
    for row in &t.rows {
        // Quiet hours add nothing to a text report (the HTML chart shows all 24).
        if t.id == "hours" && row.first() == Some(&crate::panels::Cell::Count(0)) {
            continue;
        }
        write!(f, " ")?;
        for cell in row {
            match cell {
                crate::panels::Cell::Text(s) => write!(f, "  {}", term(s))?,
                other => write!(f, " {:>10}", other.to_string())?,
            }
        }
        writeln!(f)?;
    }
    Ok(())
}

/// The text report.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self;
        writeln!(f, "weft logs report")?;
        if r.partial {
            writeln!(
                f,
                "PARTIAL: stopped early ({}); the figures cover only the input read so far",
                r.stopped_because.as_deref().unwrap_or("cancelled")
            )?;
        }
        let bytes: u64 = r.inputs.iter().map(|i| i.bytes).sum();
        let failed = r.inputs.iter().filter(|i| i.error.is_some()).count();
        write!(f, "inputs: {} ({})", r.inputs.len(), human_bytes(bytes))?;
        if failed > 0 {
            write!(f, ", {failed} with errors")?;
        }
        writeln!(f)?;
        for i in &r.inputs {
            let fmt_name = i.format.map_or("-".to_string(), |f| f.to_string());
            let how = if i.detected {
                ""
            } else if i.format.is_some() {
                " (not detected)"
            } else {
                ""
            };
            let gz = if i.gzip { ", gzip" } else { "" };
            write!(
                f,
                "  {}: {fmt_name}{how}{gz}, {} lines, {}",
                term(&i.name),
                i.lines,
                human_bytes(i.bytes)
            )?;
            if let Some(e) = &i.error {
                write!(f, ", ERROR: {}", term(e))?;
            }
            writeln!(f)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "lines            {:>10}  (blank {}, non-request {}, malformed {}, filtered out {})",
            r.lines, r.blank_lines, r.other_lines, r.malformed_lines, r.filtered_out
        )?;
        writeln!(f, "requests         {:>10}", r.requests)?;
        if r.requests == 0 {
            writeln!(
                f,
                "\nno requests found{}",
                if r.lines == 0 {
                    " (the input is empty)"
                } else {
                    ""
                }
            )?;
        } else {
            writeln!(
                f,
                "errors (>= 400)  {:>10}  ({:.2}%)",
                r.errors,
                r.error_share * 100.0
            )?;
            let slow_share = r.latency.as_ref().map_or(0.0, |l| share(r.slow, l.count));
            writeln!(
                f,
                "{:<17}{:>10}  ({:.2}% of timed requests)",
                format!("slow (> {} ms)", r.slow_threshold_ms),
                r.slow,
                slow_share * 100.0
            )?;
            match &r.latency {
                Some(l) => {
                    writeln!(
                        f,
                        "latency (ms)     min {}  avg {}  max {}  p50 {}  p90 {}  p99 {}  ({} timed)",
                        fmt_ms(l.min_ms),
                        fmt_ms(l.avg_ms),
                        fmt_ms(l.max_ms),
                        fmt_ms(l.p50_ms),
                        fmt_ms(l.p90_ms),
                        fmt_ms(l.p99_ms),
                        l.count
                    )?;
                }
                None => writeln!(f, "latency          no request has a response time")?,
            }
            if let Some(rate) = &r.requests_per_minute {
                writeln!(
                    f,
                    "requests/minute  avg {:.1}, peak {} at {} ({} .. {} UTC, {} min)",
                    rate.average, rate.peak, rate.peak_minute, rate.first, rate.last, rate.minutes
                )?;
            }
            writeln!(f, "\nstatus codes")?;
            for s in &r.status_codes {
                writeln!(
                    f,
                    "  {}  {:>10}  {:>6.2}%",
                    s.status,
                    s.count,
                    s.share * 100.0
                )?;
            }
            writeln!(
                f,
                "\ntop paths ({} of {})",
                r.top_paths.len(),
                distinct(r.distinct_paths, r.distinct_paths_exact, r.distinct_error)
            )?;
            overcount_note(f, r.top_paths_max_overcount, "paths", r.memory_budget)?;
            writeln!(
                f,
                "  {:>10}  {:>8}  {:>9}  {:>9}  path",
                "requests", "errors", "avg ms", "p95 ms"
            )?;
            for p in &r.top_paths {
                let opt = |v: Option<f64>| v.map_or("-".to_string(), fmt_ms);
                writeln!(
                    f,
                    "  {:>10}  {:>8}  {:>9}  {:>9}  {}",
                    p.count,
                    p.errors,
                    opt(p.avg_ms),
                    opt(p.p95_ms),
                    term(&p.path)
                )?;
            }
            writeln!(
                f,
                "\ntop client addresses ({} of {})",
                r.top_ips.len(),
                distinct(r.distinct_ips, r.distinct_ips_exact, r.distinct_error)
            )?;
            overcount_note(f, r.top_ips_max_overcount, "clients", r.memory_budget)?;
            for ip in &r.top_ips {
                writeln!(f, "  {:>10}  {}", ip.count, term(&ip.ip))?;
            }
            for t in r.panels.tables() {
                write_table(f, &t)?;
            }
            if !r.panels.unavailable.is_empty() {
                writeln!(f, "\npanels without data")?;
                for u in &r.panels.unavailable {
                    writeln!(f, "  {u}")?;
                }
            }
            if r.per_minute_dropped > 0 {
                writeln!(
                    f,
                    "\nrequests/minute leaves out {} requests whose minutes did not fit the memory budget",
                    r.per_minute_dropped
                )?;
            }
        }
        if r.malformed_lines > 0 {
            writeln!(
                f,
                "\nmalformed lines: {} (first {} shown)",
                r.malformed_lines,
                r.malformed_samples.len()
            )?;
            for reason in &r.malformed_reasons {
                writeln!(f, "  {:>10}  {}", reason.count, reason.reason)?;
            }
            for s in &r.malformed_samples {
                let at = s.line.map_or(String::new(), |l| format!(":{l}"));
                writeln!(
                    f,
                    "  {}{at}: {}: {}",
                    term(&s.input),
                    s.reason,
                    term(&s.text)
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(term("/plain"), "/plain");
        assert_eq!(term("/a\x1b]0;pwned\x07b"), "/a\\x1b]0;pwned\\x07b");
        assert_eq!(term("\u{9b}31m"), "\\x9b31m");
        assert_eq!(term("x\u{7f}"), "x\\x7f");
    }

    #[test]
    fn bin_edges_follow_1_2_5() {
        let edges: Vec<u64> = (0..8).map(bin_edge).collect();
        assert_eq!(
            edges,
            [0, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000]
        );
    }

    #[test]
    fn top_ties_break_by_key() {
        let items = vec![
            (Box::from(&b"b"[..]), 2u64),
            (Box::from(&b"a"[..]), 2),
            (Box::from(&b"c"[..]), 3),
            (Box::from(&b"d"[..]), 1),
        ];
        let top = top_by_count(items, |c| *c, 3);
        let keys: Vec<&[u8]> = top.iter().map(|(k, _)| &**k).collect();
        assert_eq!(keys, [&b"c"[..], b"a", b"b"]);
    }

    #[test]
    fn empty_stats_make_a_clear_report() {
        let r = build(
            Totals::new(&crate::budget::Plan::for_budget(128 << 20, 3), 5),
            Vec::new(),
            &Options::default(),
            None,
        );
        assert_eq!(r.requests, 0);
        assert_eq!(r.error_share, 0.0);
        assert!(r.latency.is_none() && r.requests_per_minute.is_none());
        let text = r.to_string();
        assert!(
            text.contains("no requests found (the input is empty)"),
            "{text}"
        );
        assert!(!text.contains("NaN"));
    }
}
