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

/// Templates of id-bearing paths (the long tail of `--paths`), with their base latency in ms.
const ID_PATHS: [(&str, u32); 6] = [
    ("/api/v1/users/", 20),
    ("/order/", 60),
    ("/api/v1/products/", 30),
    ("/static/build/", 2),
    ("/api/v2/sessions/", 8),
    ("/export/", 700),
];

/// Who sends the requests in a [`Shape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Clients {
    /// The built-in pool: about 3,000 private addresses with heavy hitters.
    #[default]
    Builtin,
    /// `N` distinct addresses (IPv4, one in ten IPv6), with a Zipf-like popularity: a few
    /// very busy clients and a long tail.
    Pool(u64),
    /// Every request from a new address (a scan, a crawler storm, a large public site).
    Unique,
}

/// The cardinality of generated logs: how many clients and paths, and how popular each is.
/// The default is the built-in shape (few clients, 24 paths).
///
/// ```
/// use weft_logs::LogFormat;
/// use weft_logs::sample::{Clients, Generator, Shape};
/// let mut shape = Shape::default();
/// shape.clients = Clients::Unique;
/// shape.paths = 100_000;
/// let mut out = Vec::new();
/// Generator::with_shape(LogFormat::Kv, 1, shape).write_lines(&mut out, 1000)?;
/// let text = String::from_utf8(out)?;
/// let ips: std::collections::HashSet<&str> = text
///     .lines()
///     .filter_map(|l| l.split(" ip=").nth(1)?.split(' ').next())
///     .collect();
/// assert!(ips.len() > 980, "nearly one client per line");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Shape {
    /// Who sends the requests.
    pub clients: Clients,
    /// Distinct paths: 0 for the built-in 24; else the 24 built-in ones as the busiest, then
    /// id-bearing paths (`/api/v1/users/123456`, `/order/9f3a...`) in a Zipf-like long tail.
    /// Latencies then spread over five orders of magnitude (tens of microseconds to a
    /// minute), written with microsecond precision.
    pub paths: u64,
}

/// A seeded generator of log lines in one format.
///
/// ```
/// use weft_logs::LogFormat;
/// use weft_logs::sample::Generator;
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
    shape: Shape,
    state: u64,
    /// Milliseconds since [`SAMPLE_START`].
    clock_ms: u64,
    line: u64,
}

impl Generator {
    /// A generator for `format`, starting at [`SAMPLE_START`].
    #[must_use]
    pub fn new(format: LogFormat, seed: u64) -> Self {
        Self::with_shape(format, seed, Shape::default())
    }

    /// A generator for `format` with the cardinality of `shape`.
    #[must_use]
    pub fn with_shape(format: LogFormat, seed: u64, shape: Shape) -> Self {
        Generator {
            format,
            shape,
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

    /// A Zipf-like rank in `0..n`: the cube of a uniform puts most draws on the first ranks
    /// and spreads the rest over all of them.
    fn rank(&mut self, n: u64) -> u64 {
        let u = self.unit();
        ((u * u * u) * n as f64) as u64 % n.max(1)
    }

    /// The address of client `r` of a pool: a bijective scramble of `r`, so neighbours in rank
    /// are not neighbours in address; one in ten is IPv6.
    fn client_address(r: u64) -> String {
        let x = (r as u32).wrapping_mul(0x9e37_79b1) ^ ((r >> 32) as u32);
        let x = x ^ (x >> 15);
        if r % 10 == 9 {
            format!("2001:db8:{:x}:{:x}::{:x}", x >> 16, x & 0xffff, r >> 32)
        } else {
            let [a, b, c, d] = x.to_be_bytes();
            format!("{}.{b}.{c}.{d}", a.max(1))
        }
    }

    fn request(&mut self, out: &mut Vec<u8>, secs: i64) {
        let shaped = self.shape.paths > 0;
        let mut id_path = String::new();
        let (path, base_ms) = if shaped {
            let r = self.rank(self.shape.paths);
            if (r as usize) < PATHS.len() {
                PATHS[r as usize]
            } else {
                let (prefix, base) = ID_PATHS[(r % ID_PATHS.len() as u64) as usize];
                id_path.push_str(prefix);
                if prefix == "/order/" {
                    id_path.push_str(&format!(
                        "{:012x}",
                        r.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16
                    ));
                } else {
                    id_path.push_str(&(100_000 + r).to_string());
                }
                (id_path.as_str(), base)
            }
        } else {
            // Zipf-like choice of path: the square of a uniform favours low indexes.
            let u = self.unit();
            PATHS[((u * u) * PATHS.len() as f64) as usize % PATHS.len()]
        };
        let path = path.to_string();
        let path = path.as_str();
        let ip = match self.shape.clients {
            Clients::Builtin => {
                let u = self.unit();
                let ip_n = ((u * u * u) * 3000.0) as u64;
                format!(
                    "10.{}.{}.{}",
                    ip_n / 1000,
                    (ip_n / 10) % 100 + 1,
                    ip_n % 250 + 2
                )
            }
            Clients::Pool(n) => {
                let r = self.rank(n);
                Self::client_address(r)
            }
            Clients::Unique => Self::client_address(self.line),
        };
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
        // The shaped logs spread latencies over five orders of magnitude: a cache hit in tens
        // of microseconds to an export of a minute.
        let latency_us = if shaped {
            let spread = [0.02, 0.1, 1.0, 1.0, 1.0, 3.0][self.below(6) as usize];
            ((latency * spread * 1000.0).round() as u64).clamp(20, 60_000_000)
        } else {
            latency_ms * 1000
        };
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
                    "{ip} - - [{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000] \"{method} {path}{query} HTTP/1.1\" {status} {size} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" {}.{:0width$}",
                    MONTHS[(mo - 1) as usize],
                    s / 3600,
                    s / 60 % 60,
                    s % 60,
                    latency_us / 1_000_000,
                    if shaped {
                        latency_us % 1_000_000
                    } else {
                        latency_us / 1000 % 1000
                    },
                    width = if shaped { 6 } else { 3 }
                )
            }
            LogFormat::Json if shaped => writeln!(
                out,
                r#"{{"ts":"{}","level":"{level}","ip":"{ip}","method":"{method}","path":"{path}{query}","status":{status},"time_ms":{}.{:03},"msg":"{msg}"}}"#,
                format_rfc3339(secs),
                latency_us / 1000,
                latency_us % 1000
            ),
            LogFormat::Json => writeln!(
                out,
                r#"{{"ts":"{}","level":"{level}","ip":"{ip}","method":"{method}","path":"{path}{query}","status":{status},"time_ms":{latency_ms},"msg":"{msg}"}}"#,
                format_rfc3339(secs)
            ),
            _ if shaped => writeln!(
                out,
                "{} level={level} ip={ip} path=\"{path}{query}\" status={status} time={latency_us}us msg=\"{msg}\"",
                format_utc(secs)
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
/// let inputs = weft_logs::sample::builtin();
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
