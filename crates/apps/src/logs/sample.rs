//! Deterministic sample logs: the built-in input of `weft logs` and the files of
//! `weft gen-logs` (benchmarks, demos).
//!
//! The traffic looks like a web service's: a few hot paths and a long tail, a pool of clients
//! with heavy hitters, mostly 2xx with some 3xx/4xx/5xx, log-normal latencies with slow
//! outliers, application messages between requests, and about one malformed (truncated) line in
//! 20 000. The same seed always gives the same bytes.

use std::io::{self, Write};

use super::time::{civil_from_days, format_rfc3339, format_utc};
use super::{Input, LogFormat};

/// 2024-03-01 12:00:00 UTC, where samples start.
pub const SAMPLE_START: i64 = 1_709_294_400;

const PATHS: [(&str, u32); 24] = [
    ("/api/v1/orders", 20),
    ("/api/v1/users/me", 25),
    ("/api/v1/products", 40),
    ("/api/v1/cart", 30),
    ("/", 15),
    ("/static/app.js", 5),
    ("/static/app.css", 4),
    ("/api/v1/search", 120),
    ("/api/v1/checkout", 350),
    ("/api/v1/login", 80),
    ("/api/v1/logout", 10),
    ("/health", 1),
    ("/metrics", 3),
    ("/api/v1/products/reviews", 60),
    ("/api/v1/recommendations", 200),
    ("/api/v2/orders", 18),
    ("/api/v1/inventory", 45),
    ("/api/v1/payments", 300),
    ("/images/logo.png", 2),
    ("/api/v1/notifications", 25),
    ("/api/v1/settings", 15),
    ("/admin", 50),
    ("/api/v1/export", 900),
    ("/favicon.ico", 1),
];

const MESSAGES: [&str; 6] = [
    "request completed",
    "served from cache",
    "upstream responded",
    "request completed after retry",
    "handler finished",
    "response sent",
];

const OTHER: [(&str, &str); 4] = [
    ("debug", "cache refreshed"),
    ("info", "worker pool resized"),
    ("warn", "slow database query"),
    ("debug", "config reloaded"),
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A seeded generator of log lines in one format.
///
/// ```
/// use weft_apps::logs::LogFormat;
/// use weft_apps::logs::sample::Generator;
/// let mut a = Vec::new();
/// let mut b = Vec::new();
/// Generator::new(LogFormat::Kv, 7).write_lines(&mut a, 100)?;
/// Generator::new(LogFormat::Kv, 7).write_lines(&mut b, 100)?;
/// assert_eq!(a, b);
/// assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 100);
/// assert!(a.starts_with(b"2024-03-01 12:00:"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Generator {
    format: LogFormat,
    state: u64,
    /// Milliseconds since [`SAMPLE_START`].
    clock_ms: u64,
    line: u64,
}

impl Generator {
    /// A generator for `format`, starting at [`SAMPLE_START`].
    #[must_use]
    pub fn new(format: LogFormat, seed: u64) -> Self {
        Generator {
            format,
            state: seed ^ 0x5851_f42d_4c95_7f2d,
            clock_ms: 0,
            line: 0,
        }
    }

    /// splitmix64: small, fast, and the same on every platform and version.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Writes `n` lines.
    ///
    /// # Errors
    ///
    /// Any error of `out`.
    pub fn write_lines(&mut self, out: &mut impl Write, n: u64) -> io::Result<()> {
        let mut line = Vec::with_capacity(256);
        for _ in 0..n {
            line.clear();
            self.one(&mut line);
            out.write_all(&line)?;
        }
        Ok(())
    }

    fn one(&mut self, out: &mut Vec<u8>) {
        self.line += 1;
        // About 50 requests per second, unevenly.
        self.clock_ms += self.below(40);
        let secs = SAMPLE_START + (self.clock_ms / 1000) as i64;
        if self.line % 20_000 == 7_777 {
            // A truncated line, as a crash or a rotated file leaves it.
            let mut full = Vec::new();
            self.request(&mut full, secs);
            let cut = full.len() / 3;
            out.extend_from_slice(&full[..cut]);
            out.push(b'\n');
            return;
        }
        if self.below(100) < 2 {
            self.other(out, secs);
        } else {
            self.request(out, secs);
        }
    }

    fn other(&mut self, out: &mut Vec<u8>, secs: i64) {
        let (level, msg) = OTHER[self.below(OTHER.len() as u64) as usize];
        let _ = match self.format {
            LogFormat::Json => writeln!(
                out,
                r#"{{"ts":"{}","level":"{level}","msg":"{msg}"}}"#,
                format_rfc3339(secs)
            ),
            // The combined format has no application messages: write a request instead.
            LogFormat::Combined => {
                self.request(out, secs);
                Ok(())
            }
            _ => writeln!(out, "{} level={level} msg=\"{msg}\"", format_utc(secs)),
        };
    }

    fn request(&mut self, out: &mut Vec<u8>, secs: i64) {
        // Zipf-like choice of path: the square of a uniform favours low indexes.
        let u = self.unit();
        let (path, base_ms) = PATHS[((u * u) * PATHS.len() as f64) as usize % PATHS.len()];
        let u = self.unit();
        let ip_n = ((u * u * u) * 3000.0) as u64;
        let ip = format!(
            "10.{}.{}.{}",
            ip_n / 1000,
            (ip_n / 10) % 100 + 1,
            ip_n % 250 + 2
        );
        let status = match self.below(1000) {
            0..=899 => 200,
            900..=919 => 201,
            920..=939 => 304,
            940..=949 => 301,
            950..=974 => 404,
            975..=979 => 401,
            980..=984 => 403,
            985..=992 => 500,
            993..=996 => 502,
            _ => 503,
        };
        // Log-normal-ish latency around the path's base, with 1% slow outliers.
        let g = self.unit() + self.unit() + self.unit() - 1.5;
        let mut latency = f64::from(base_ms) * (g * 1.2).exp();
        if self.below(100) == 0 {
            latency *= 8.0;
        }
        let latency_ms = latency.round().max(1.0) as u64;
        let level = match status {
            500.. => "error",
            400..500 => "warn",
            _ => "info",
        };
        let method =
            if path.contains("checkout") || path.contains("login") || path.contains("payments") {
                "POST"
            } else {
                "GET"
            };
        let query = if self.below(10) == 0 { "?page=2" } else { "" };
        let msg = MESSAGES[self.below(MESSAGES.len() as u64) as usize];
        let _ = match self.format {
            LogFormat::Combined => {
                let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
                let s = secs.rem_euclid(86_400);
                let size = 200 + self.below(20_000);
                writeln!(
                    out,
                    "{ip} - - [{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000] \"{method} {path}{query} HTTP/1.1\" {status} {size} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" {}.{:03}",
                    MONTHS[(mo - 1) as usize],
                    s / 3600,
                    s / 60 % 60,
                    s % 60,
                    latency_ms / 1000,
                    latency_ms % 1000
                )
            }
            LogFormat::Json => writeln!(
                out,
                r#"{{"ts":"{}","level":"{level}","ip":"{ip}","method":"{method}","path":"{path}{query}","status":{status},"time_ms":{latency_ms},"msg":"{msg}"}}"#,
                format_rfc3339(secs)
            ),
            _ => writeln!(
                out,
                "{} level={level} ip={ip} path=\"{path}{query}\" status={status} time={latency_ms}ms msg=\"{msg}\"",
                format_utc(secs)
            ),
        };
    }
}

/// The built-in sample `weft logs` analyzes when given no path: three inputs, one per format
/// (60 000 kv lines, 30 000 combined, 10 000 JSON), generated in memory.
///
/// ```
/// let inputs = weft_apps::logs::sample::builtin();
/// assert_eq!(inputs.len(), 3);
/// ```
#[must_use]
pub fn builtin() -> Vec<Input> {
    [
        ("sample/app.log", LogFormat::Kv, 60_000, 1),
        ("sample/access.log", LogFormat::Combined, 30_000, 2),
        ("sample/events.jsonl", LogFormat::Json, 10_000, 3),
    ]
    .into_iter()
    .map(|(name, format, lines, seed)| {
        let mut data = Vec::with_capacity(lines as usize * 128);
        // Writing to a Vec cannot fail.
        let _ = Generator::new(format, seed).write_lines(&mut data, lines);
        Input::Bytes {
            name: name.into(),
            data,
        }
    })
    .collect()
}
