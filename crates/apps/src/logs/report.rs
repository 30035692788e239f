//! The report: built once from the merged stats, in a deterministic order, and rendered as text
//! (its `Display`), JSON (`serde`) or HTML ([`render_html`](super::render_html)).

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::aggregate::Stats;
use super::time::{format_rfc3339, format_utc};
use super::{LogFormat, Options};

/// The result of an analysis. Every count is exact; percentiles come from a histogram and are
/// within 0.05% (overall) or 0.4% (per path) of the exact nearest-rank value.
///
/// The line counters add up: `lines = blank_lines + other_lines + malformed_lines +
/// filtered_out + requests`. Its `Display` is the text report; it serializes to JSON with serde.
///
/// ```
/// use weft_apps::logs::{Input, Options, analyze};
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
    /// The busiest paths: by count, then by path.
    pub top_paths: Vec<PathSummary>,
    /// Number of distinct client addresses.
    pub distinct_ips: usize,
    /// The busiest client addresses: by count, then by address.
    pub top_ips: Vec<IpCount>,
    /// Requests per minute over the minutes from the first to the last timestamped request.
    pub requests_per_minute: Option<RateSummary>,
    /// Requests per minute that has any, in time order.
    pub per_minute: Vec<MinuteCount>,
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
    /// Requests.
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
fn top_by_count<T>(
    items: Vec<(Box<[u8]>, T)>,
    count: impl Fn(&T) -> u64,
    top: usize,
) -> Vec<(Box<[u8]>, T)> {
    let mut items = items;
    items.sort_unstable_by(|a, b| count(&b.1).cmp(&count(&a.1)).then_with(|| a.0.cmp(&b.0)));
    items.truncate(top);
    items
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
    mut stats: Stats,
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
        avg_ms: ms(stats.latency_sum_us as f64 / h.total() as f64),
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
            share: share(count, stats.requests),
        })
        .collect();

    let distinct_paths = stats.paths.len();
    let paths = top_by_count(stats.paths.drain().collect(), |p| p.count, o.top);
    let top_paths = paths
        .into_iter()
        .map(|(path, p)| {
            let timed = p.latency.total();
            PathSummary {
                path: String::from_utf8_lossy(&path).into_owned(),
                count: p.count,
                errors: p.errors,
                avg_ms: (timed > 0).then(|| ms(p.latency_sum_us as f64 / timed as f64)),
                p95_ms: p.latency.quantile(0.95).map(ms),
            }
        })
        .collect();
    let ips = stats.take_ips();
    let distinct_ips = ips.len();
    let top_ips = top_by_count(ips, |c| *c, o.top)
        .into_iter()
        .map(|(ip, count)| IpCount {
            ip: String::from_utf8_lossy(&ip).into_owned(),
            count,
        })
        .collect();

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
        lines: stats.lines,
        blank_lines: stats.blank,
        other_lines: stats.other,
        malformed_lines: stats.malformed,
        malformed_samples,
        filtered_out: stats.filtered,
        requests: stats.requests,
        errors: stats.errors,
        error_share: share(stats.errors, stats.requests),
        slow_threshold_ms: o.slow_ms,
        slow: stats.slow,
        latency,
        latency_histogram,
        status_codes,
        distinct_paths,
        top_paths,
        distinct_ips,
        top_ips,
        requests_per_minute,
        per_minute,
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

fn human_bytes(n: u64) -> String {
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
                i.name,
                i.lines,
                human_bytes(i.bytes)
            )?;
            if let Some(e) = &i.error {
                write!(f, ", ERROR: {e}")?;
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
                r.distinct_paths
            )?;
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
                    p.path
                )?;
            }
            writeln!(
                f,
                "\ntop client addresses ({} of {})",
                r.top_ips.len(),
                r.distinct_ips
            )?;
            for ip in &r.top_ips {
                writeln!(f, "  {:>10}  {}", ip.count, ip.ip)?;
            }
        }
        if r.malformed_lines > 0 {
            writeln!(
                f,
                "\nmalformed lines: {} (first {} shown)",
                r.malformed_lines,
                r.malformed_samples.len()
            )?;
            for s in &r.malformed_samples {
                let at = s.line.map_or(String::new(), |l| format!(":{l}"));
                writeln!(f, "  {}{at}: {}: {}", s.input, s.reason, s.text)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Stats::new(500_000, 5),
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
