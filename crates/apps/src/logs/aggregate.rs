//! Aggregation: each chunk is counted into a [`Stats`] of its own, on the worker that parses it,
//! with no lock per line; the sink absorbs each chunk's stats into the total and hands the
//! emptied stats back for another chunk. Memory is bounded by the number of distinct paths,
//! client addresses, status codes and minutes, never by the number of lines.

use std::collections::HashMap;

use memchr::memchr_iter;

use super::filter::Filter;
use super::histogram::Histogram;
use super::parse::{LogFormat, Parsed, Record, TsCache, parse_line, trim_line};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Sub-bucket bits of the overall latency histogram (0.05% relative error).
pub(crate) const GLOBAL_SUB_BITS: u32 = 10;
/// Sub-bucket bits of the per-path histograms (0.4% relative error, a few KiB per path).
pub(crate) const PATH_SUB_BITS: u32 = 7;
/// Longest malformed-line sample kept, in bytes.
const SAMPLE_BYTES: usize = 200;

/// Parses a canonical dotted IPv4 address (no leading zeros, each part at most 255), so that
/// formatting the number gives back the same text.
fn parse_ipv4(b: &[u8]) -> Option<u32> {
    if b.len() < 7 || b.len() > 15 {
        return None;
    }
    let (mut ip, mut part, mut digits, mut dots) = (0u32, 0u32, 0u32, 0);
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                if digits == 1 && part == 0 {
                    return None; // leading zero
                }
                part = part * 10 + u32::from(c - b'0');
                digits += 1;
                if part > 255 {
                    return None;
                }
            }
            b'.' if digits > 0 && dots < 3 && i + 1 < b.len() => {
                ip = ip << 8 | part;
                (part, digits) = (0, 0);
                dots += 1;
            }
            _ => return None,
        }
    }
    (dots == 3 && digits > 0).then_some(ip << 8 | part)
}

#[derive(Debug, Clone)]
pub(crate) struct PathAgg {
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) latency_sum_us: u128,
    pub(crate) latency: Histogram,
}

impl PathAgg {
    fn new() -> Self {
        PathAgg {
            count: 0,
            errors: 0,
            latency_sum_us: 0,
            latency: Histogram::new(PATH_SUB_BITS),
        }
    }

    /// Adds `o` into `self` and zeroes `o`.
    fn absorb(&mut self, o: &mut PathAgg) {
        self.count += std::mem::take(&mut o.count);
        self.errors += std::mem::take(&mut o.errors);
        self.latency_sum_us += std::mem::take(&mut o.latency_sum_us);
        self.latency.absorb(&mut o.latency);
    }
}

/// Where a line is: input index, chunk number within the input, line number within the chunk
/// (from 1). Ordered the way the lines appear in the input.
pub(crate) type Position = (usize, u64, u64);

#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) at: Position,
    pub(crate) reason: &'static str,
    pub(crate) text: String,
}

#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) lines: u64,
    pub(crate) blank: u64,
    pub(crate) other: u64,
    pub(crate) malformed: u64,
    pub(crate) filtered: u64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) slow: u64,
    pub(crate) latency_sum_us: u128,
    pub(crate) latency: Histogram,
    pub(crate) status: Vec<u64>,
    pub(crate) paths: FastMap<Box<[u8]>, PathAgg>,
    /// Client addresses that are not canonical dotted IPv4.
    pub(crate) ips: FastMap<Box<[u8]>, u64>,
    /// Canonical dotted IPv4 addresses, as numbers: no byte hashing or comparing per line.
    pub(crate) ipv4: FastMap<u32, u64>,
    pub(crate) minutes: FastMap<i64, u64>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) chunk_lines: Vec<(Position, u64)>,
    slow_us: u64,
    max_samples: usize,
    ts_cache: TsCache,
    // The minute being counted: logs are mostly in time order, so the map is touched only when
    // the minute changes.
    cur_minute: i64,
    cur_count: u64,
}

impl Stats {
    pub(crate) fn new(slow_us: u64, max_samples: usize) -> Self {
        Stats {
            lines: 0,
            blank: 0,
            other: 0,
            malformed: 0,
            filtered: 0,
            requests: 0,
            errors: 0,
            slow: 0,
            latency_sum_us: 0,
            latency: Histogram::new(GLOBAL_SUB_BITS),
            status: vec![0; 1000],
            paths: FastMap::default(),
            ips: FastMap::default(),
            ipv4: FastMap::default(),
            minutes: FastMap::default(),
            samples: Vec::new(),
            chunk_lines: Vec::new(),
            slow_us,
            max_samples,
            ts_cache: TsCache::default(),
            cur_minute: i64::MIN,
            cur_count: 0,
        }
    }

    /// Parses and counts every line of `data` (chunk `seq` of input `input`).
    pub(crate) fn process_chunk(
        &mut self,
        input: usize,
        seq: u64,
        format: LogFormat,
        data: &[u8],
        filter: &Filter,
    ) {
        let mut start = 0;
        let mut n = 0;
        for nl in memchr_iter(b'\n', data) {
            n += 1;
            self.line(format, &data[start..nl], filter, (input, seq, n));
            start = nl + 1;
        }
        if start < data.len() {
            n += 1;
            self.line(format, &data[start..], filter, (input, seq, n));
        }
        self.chunk_lines.push(((input, seq, 0), n));
    }

    /// Counts a line that was too long to buffer, as malformed.
    pub(crate) fn long_line(
        &mut self,
        input: usize,
        seq: u64,
        prefix: &[u8],
        reason: &'static str,
    ) {
        self.lines += 1;
        self.malformed(reason, prefix, (input, seq, 1));
        self.chunk_lines.push(((input, seq, 0), 1));
    }

    fn line(&mut self, format: LogFormat, raw: &[u8], filter: &Filter, at: Position) {
        self.lines += 1;
        let line = trim_line(raw);
        if line.is_empty() {
            self.blank += 1;
            return;
        }
        match parse_line(format, line, &mut self.ts_cache) {
            Ok(Parsed::Request(r)) => {
                if filter.accepts(&r) {
                    self.add(&r);
                } else {
                    self.filtered += 1;
                }
            }
            Ok(Parsed::Other) => self.other += 1,
            Err(reason) => self.malformed(reason, line, at),
        }
    }

    fn malformed(&mut self, reason: &'static str, line: &[u8], at: Position) {
        self.malformed += 1;
        // Lines are counted in order within a chunk, so its first samples are its earliest;
        // `absorb` keeps the earliest over all chunks.
        if self.samples.len() < self.max_samples {
            let cut = &line[..line.len().min(SAMPLE_BYTES)];
            self.samples.push(Sample {
                at,
                reason,
                text: String::from_utf8_lossy(cut).into_owned(),
            });
        }
    }

    fn add(&mut self, r: &Record<'_>) {
        self.requests += 1;
        let error = r.status >= 400;
        self.errors += u64::from(error);
        self.status[usize::from(r.status)] += 1;
        let path = r.path();
        let agg = match self.paths.get_mut(path) {
            Some(a) => a,
            None => self.paths.entry(path.into()).or_insert_with(PathAgg::new),
        };
        agg.count += 1;
        agg.errors += u64::from(error);
        if let Some(us) = r.latency_us {
            agg.latency_sum_us += u128::from(us);
            agg.latency.record(us);
            self.latency_sum_us += u128::from(us);
            self.latency.record(us);
            self.slow += u64::from(us > self.slow_us);
        }
        if let Some(v4) = parse_ipv4(&r.ip) {
            // get_mut first: `entry` reserves room on every call, which showed in profiles.
            match self.ipv4.get_mut(&v4) {
                Some(c) => *c += 1,
                None => {
                    self.ipv4.insert(v4, 1);
                }
            }
        } else if !r.ip.is_empty() {
            match self.ips.get_mut(&*r.ip) {
                Some(c) => *c += 1,
                None => {
                    self.ips.insert(r.ip.as_ref().into(), 1);
                }
            }
        }
        if let Some(ts) = r.ts {
            let minute = ts.div_euclid(60);
            if minute == self.cur_minute {
                self.cur_count += 1;
            } else {
                self.flush_minute();
                self.cur_minute = minute;
                self.cur_count = 1;
            }
        }
    }

    fn flush_minute(&mut self) {
        if self.cur_count > 0 {
            *self.minutes.entry(self.cur_minute).or_insert(0) += self.cur_count;
            self.cur_count = 0;
        }
    }

    /// Adds `other` into `self` and leaves `other` empty, with its allocations kept so it can
    /// count another chunk (the analyzer recycles its partial stats).
    ///
    /// An emptied `other` keeps its path entries with zero counts (their histograms are the
    /// bulk of its memory); they are skipped here, so a path reaches `self` only if it was
    /// counted.
    pub(crate) fn absorb(&mut self, other: &mut Stats) {
        self.flush_minute();
        other.flush_minute();
        other.cur_minute = i64::MIN;
        self.lines += std::mem::take(&mut other.lines);
        self.blank += std::mem::take(&mut other.blank);
        self.other += std::mem::take(&mut other.other);
        self.malformed += std::mem::take(&mut other.malformed);
        self.filtered += std::mem::take(&mut other.filtered);
        self.requests += std::mem::take(&mut other.requests);
        self.errors += std::mem::take(&mut other.errors);
        self.slow += std::mem::take(&mut other.slow);
        self.latency_sum_us += std::mem::take(&mut other.latency_sum_us);
        self.latency.absorb(&mut other.latency);
        for (a, b) in self.status.iter_mut().zip(&mut other.status) {
            *a += std::mem::take(b);
        }
        for (k, v) in &mut other.paths {
            if v.count == 0 {
                continue;
            }
            match self.paths.get_mut(k) {
                Some(a) => a.absorb(v),
                None => {
                    let mut a = PathAgg::new();
                    a.absorb(v);
                    self.paths.insert(k.clone(), a);
                }
            }
        }
        for (k, v) in other.ips.drain() {
            *self.ips.entry(k).or_insert(0) += v;
        }
        for (k, v) in other.ipv4.drain() {
            match self.ipv4.get_mut(&k) {
                Some(c) => *c += v,
                None => {
                    self.ipv4.insert(k, v);
                }
            }
        }
        for (k, v) in other.minutes.drain() {
            *self.minutes.entry(k).or_insert(0) += v;
        }
        self.samples.append(&mut other.samples);
        self.samples.sort_by_key(|s| s.at);
        self.samples.truncate(self.max_samples);
        self.chunk_lines.append(&mut other.chunk_lines);
    }

    /// All client addresses with their counts, as written in the logs.
    pub(crate) fn take_ips(&mut self) -> Vec<(Box<[u8]>, u64)> {
        let mut all: Vec<(Box<[u8]>, u64)> = self.ips.drain().collect();
        all.extend(self.ipv4.drain().map(|(ip, c)| {
            let [a, b, c2, d] = ip.to_be_bytes();
            (
                format!("{a}.{b}.{c2}.{d}").into_bytes().into_boxed_slice(),
                c,
            )
        }));
        all
    }

    /// Call once after the last line: flushes the minute being counted.
    pub(crate) fn finish(&mut self) {
        self.flush_minute();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines, requests, malformed, errors, latencies, counted paths, IPv4 clients.
    type Summary = (u64, u64, u64, u64, u64, Vec<(Vec<u8>, u64, u64)>, usize);

    fn summary(s: &Stats) -> Summary {
        let mut paths: Vec<_> = s
            .paths
            .iter()
            .filter(|(_, a)| a.count > 0)
            .map(|(k, a)| (k.to_vec(), a.count, a.latency.total()))
            .collect();
        paths.sort();
        (
            s.lines,
            s.requests,
            s.malformed,
            s.errors,
            s.latency.total(),
            paths,
            s.ipv4.len(),
        )
    }

    #[test]
    fn absorbing_recycled_partials_equals_counting_everything_in_one() {
        let filter = Filter::new(&crate::logs::Options::default()).expect("default filter");
        let chunks: [&[u8]; 3] = [
            b"2024-03-01 12:00:00 level=info ip=10.0.0.1 path=\"/a\" status=200 time=12ms\n\
              2024-03-01 12:00:01 level=error ip=10.0.0.2 path=\"/b\" status=500 time=900ms\n\
              garbage\n",
            // Only /a: the recycled partial still holds an emptied /b entry.
            b"2024-03-01 12:01:00 level=info ip=10.0.0.1 path=\"/a\" status=200 time=3ms\n",
            b"2024-03-01 12:02:00 level=info ip=10.0.0.3 path=\"/c\" status=404 time=1s\n",
        ];
        let mut whole = Stats::new(500_000, 5);
        let mut total = Stats::new(500_000, 5);
        let mut part = Stats::new(500_000, 5);
        for (seq, chunk) in chunks.iter().enumerate() {
            whole.process_chunk(0, seq as u64, LogFormat::Kv, chunk, &filter);
            part.process_chunk(0, seq as u64, LogFormat::Kv, chunk, &filter);
            total.absorb(&mut part);
            let emptied = summary(&part);
            assert_eq!(
                emptied,
                (0, 0, 0, 0, 0, vec![], 0),
                "absorb empties the partial"
            );
            assert!(part.samples.is_empty() && part.minutes.is_empty());
        }
        whole.finish();
        total.finish();
        assert_eq!(summary(&total), summary(&whole));
        assert_eq!(total.paths.len(), 3, "no zero-count path reaches the total");
        assert_eq!(total.minutes, whole.minutes);
        assert_eq!(total.status, whole.status);
        assert_eq!(total.samples.len(), 1);
        assert_eq!(total.samples[0].text, "garbage");
    }

    #[test]
    fn only_canonical_ipv4_becomes_a_number() {
        assert_eq!(parse_ipv4(b"10.1.2.3"), Some(0x0a01_0203));
        assert_eq!(parse_ipv4(b"255.255.255.255"), Some(u32::MAX));
        assert_eq!(parse_ipv4(b"0.0.0.0"), Some(0));
        for other in [
            &b"010.1.2.3"[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"256.1.1.1",
            b"1..2.3",
            b"1.2.3.",
            b"::1",
            b"a.b.c.d",
            b"",
        ] {
            assert_eq!(parse_ipv4(other), None, "{other:?}");
        }
    }
}
