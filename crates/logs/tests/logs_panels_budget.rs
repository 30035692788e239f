//! The memory budget with every panel on: 120,000 Combined lines where every line has a
//! new client, path, referrer and user agent stay under the budget, and the panels' top tables
//! switch to their summaries and say so.
//!
//! One test per file: the peak RSS it reads (`VmHWM` of /proc/self/status) is the process's.

use std::io::{self, Read, Write};

use weft_core::context::Context;
use weft_logs::{Input, Options, PanelSet, analyze};

/// Streams `n` Combined lines without holding them; every 10th line is a hot 404 path.
struct Lines {
    next: u64,
    n: u64,
    line: Vec<u8>,
    at: usize,
}

impl Read for Lines {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.at == self.line.len() {
                if self.next == self.n {
                    break;
                }
                let i = self.next;
                self.next += 1;
                self.line.clear();
                let (path, status) = if i.is_multiple_of(10) {
                    ("/hot-missing".to_string(), 404)
                } else {
                    (
                        format!("/item/{i}"),
                        if i.is_multiple_of(7) { 404 } else { 200 },
                    )
                };
                writeln!(
                    self.line,
                    "10.{}.{}.{} - - [{:02}/Mar/2024:{:02}:00:00 +0000] \"GET {path} HTTP/1.1\" {status} {} \"https://site{}.example/p/{i}\" \"Mozilla/5.0 (X11; Linux x86_64) Agent/{i}\"",
                    i >> 16 & 255,
                    i >> 8 & 255,
                    i & 255,
                    1 + i % 28,
                    i % 24,
                    i % 5000,
                    i % 1000,
                )?;
                self.at = 0;
            }
            let k = (buf.len() - filled).min(self.line.len() - self.at);
            buf[filled..filled + k].copy_from_slice(&self.line[self.at..self.at + k]);
            self.at += k;
            filled += k;
        }
        Ok(filled)
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
async fn every_panel_stays_under_the_budget_on_distinct_everything() {
    const N: u64 = 120_000;
    const BUDGET: u64 = 48 << 20;
    let mut o = Options::default();
    o.memory_budget = BUDGET;
    o.panels = PanelSet::all();
    o.top = 3;
    let input = Input::Reader {
        name: "distinct".into(),
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
    eprintln!("peak RSS {} MiB", peak >> 20);
    assert_eq!((r.requests, r.malformed_lines), (N, 0));
    let p = &r.panels;
    let bw = p.bandwidth.as_ref().expect("bandwidth");
    let want: u64 = (0..N).map(|i| i % 5000).sum();
    assert_eq!(
        bw.total_bytes, want,
        "the total is exact whatever the budget"
    );
    assert!(
        bw.per_client.max_overcount > 0,
        "120,000 clients are summarized"
    );
    let nf = p.not_found.as_ref().expect("404s");
    assert_eq!(nf.rows[0].key, "/hot-missing");
    let hot = N / 10;
    assert!(nf.rows[0].requests >= hot && nf.rows[0].requests - hot <= nf.max_overcount);
    assert!(p.referrers.as_ref().is_some_and(|t| t.max_overcount > 0));
    let v = p.visitors.as_ref().expect("visitors");
    assert!(!v.exact, "distinct visitors past their room are estimated");
    let visits = N
        - N / 10
        - (0..N)
            .filter(|i| !i.is_multiple_of(10) && i.is_multiple_of(7))
            .count() as u64;
    let err = (v.total as f64 - visits as f64).abs() / visits as f64;
    assert!(err < 0.05, "visitors {} against {visits}", v.total);
    assert!(r.to_string().contains("figures are upper bounds"));
    assert!(
        peak < BUDGET,
        "peak RSS {} MiB over the {} MiB budget",
        peak >> 20,
        BUDGET >> 20
    );
}
