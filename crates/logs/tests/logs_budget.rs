//! The memory budget: a million distinct paths and clients stay under it, and the top-N that
//! comes out of the heavy-hitters summary is within its stated bound of the exact counts.
//!
//! One test per file: the peak RSS it reads (`VmHWM` of /proc/self/status) is the process's.

use std::collections::HashMap;
use std::io::{self, Read};

use weft_core::context::Context;
use weft_logs::{Input, Options, analyze};

/// Streams `n` kv lines without holding them: every line a new path and a new client, except
/// every 8th, which goes to one of 8 hot paths (weights 1 to 8) from one of 4 hot clients.
struct Lines {
    next: u64,
    n: u64,
    line: Vec<u8>,
    at: usize,
}

fn hot(i: u64) -> Option<u64> {
    // Hot path k gets a share proportional to k + 1.
    i.is_multiple_of(8).then(|| {
        let r = (i / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15) % 36;
        (0..8).find(|&k| r < (k + 1) * (k + 2) / 2).unwrap_or(7)
    })
}

impl Read for Lines {
    /// Fills `buf` as a file would, so the analyzer sees large reads.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let k = self.read_some(&mut buf[filled..])?;
            if k == 0 {
                break;
            }
            filled += k;
        }
        Ok(filled)
    }
}

impl Lines {
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.line.len() {
            if self.next == self.n {
                return Ok(0);
            }
            let i = self.next;
            self.next += 1;
            self.line.clear();
            let (path, ip) = match hot(i) {
                Some(k) => (format!("/hot/{k}"), format!("192.168.0.{}", k % 4 + 1)),
                None => (
                    format!("/item/{i}"),
                    format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
                ),
            };
            use std::io::Write;
            writeln!(
                self.line,
                "2024-03-01 12:00:00 ip={ip} path={path} status=200 time={}us",
                (i * 7919) % 10_000_000 + 1
            )?;
            self.at = 0;
        }
        let k = buf.len().min(self.line.len() - self.at);
        buf[..k].copy_from_slice(&self.line[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb << 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_distinct_paths_stay_under_the_budget_with_bounded_top_counts() {
    const N: u64 = 1_000_000;
    const BUDGET: u64 = 48 << 20;
    let mut o = Options::default();
    o.memory_budget = BUDGET;
    o.top = 8;
    let input = Input::Reader {
        name: "million".into(),
        reader: Box::new(Lines {
            next: 0,
            n: N,
            line: Vec::new(),
            at: 0,
        }),
    };
    let r = analyze(&Context::background(), vec![input], o)
        .await
        .expect("analysis");
    let peak = peak_rss();
    assert_eq!(r.requests, N);

    // Exact counts of the hot paths, to hold the summary to its bound.
    let mut exact: HashMap<String, u64> = HashMap::new();
    for i in 0..N {
        if let Some(k) = hot(i) {
            *exact.entry(format!("/hot/{k}")).or_default() += 1;
        }
    }
    let d = r.top_paths_max_overcount;
    assert!(
        d > 0,
        "a million paths do not fit 48 MiB: the summary is used"
    );
    assert!(
        d < N / 1000,
        "the bound is small beside the heavy hitters: {d}"
    );
    assert!(!r.distinct_paths_exact && !r.distinct_ips_exact);
    let listed: Vec<&str> = r.top_paths.iter().map(|p| p.path.as_str()).collect();
    let mut want: Vec<(&String, &u64)> = exact.iter().collect();
    want.sort_by(|a, b| b.1.cmp(a.1));
    let want: Vec<&str> = want.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(listed, want, "the 8 hot paths, in order");
    for p in &r.top_paths {
        let f = exact[&p.path];
        assert!(
            p.count >= f && p.count - f <= d,
            "{}: listed {} exact {f} bound {d}",
            p.path,
            p.count
        );
    }
    // HyperLogLog: 7/8 of a million distinct items plus 8, within 4 standard errors.
    let distinct = (N - N / 8 + 8) as f64;
    let err = (r.distinct_paths as f64 - distinct).abs() / distinct;
    assert!(
        err < 4.0 * r.distinct_error,
        "distinct paths {} vs {distinct}",
        r.distinct_paths
    );
    let text = r.to_string();
    assert!(text.contains("counts are upper bounds"), "{text}");
    assert!(text.contains("estimated"), "{text}");
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["top_paths_max_overcount"], d);

    assert!(
        peak < BUDGET,
        "peak RSS {} MiB over the {} MiB budget",
        peak >> 20,
        BUDGET >> 20
    );
}
