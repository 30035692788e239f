//! Aggregation in two levels, so memory follows the budget and never the input:
//!
//! - a [`Stats`] counts one chunk, on the worker that parses it, with no lock per line. Its
//!   size follows the chunk's lines (keys are numbers or hashes; path texts go to one arena and
//!   latencies to one vector of bucket numbers, no allocation per key). The sink absorbs it and
//!   hands it back cleared: no key of one chunk stays in it for the next.
//! - the [`Totals`] the sink folds the chunks into keeps its keys in [`Heavy`] tables sized by
//!   the memory budget: exact while the keys fit, a heavy-hitters summary with its over-count
//!   bound past it; distinct paths and clients are also counted by HyperLogLog, which takes
//!   over once a table has dropped keys.

use std::fmt;
use std::hash::BuildHasher;

use cardinality_estimator::CardinalityEstimator;
use memchr::memchr_iter;

use super::budget::Plan;
use super::filter::Filter;
use super::heavy::{Counted, FastMap, Heavy};
use super::histogram::{Histogram, MAX_LATENCY_US, PathHistogram, path_bucket};
use super::panels::count::{PanelChunk, PanelConfig, PanelTotals};
use super::parse::{AccessFormat, LogFormat, Parsed, Record, TsCache, parse_line, trim_line};

/// Sub-bucket bits of the overall latency histogram (0.05% relative error).
pub(crate) const GLOBAL_SUB_BITS: u32 = 10;
/// Longest malformed-line sample kept, in bytes.
const SAMPLE_BYTES: usize = 200;
/// How many keys' slots the sink touches before updating them: about as many misses as a core
/// keeps in flight, few enough that the touched lines are still in L1 when updated.
const TOUCH_BATCH: usize = 24;
/// The last second accepted as a timestamp: 9999-12-31 23:59:59 UTC.
const MAX_TS: i64 = 253_402_300_799;
/// HyperLogLog precision: 2^14 registers, a standard error of 1.04 / 2^7 = 0.81%.
const HLL_P: usize = 14;
/// The relative standard error of a distinct count once it is estimated.
pub(crate) const HLL_STD_ERROR: f64 = 1.04 / 128.0;

type Hll = CardinalityEstimator<u64, std::hash::DefaultHasher, HLL_P, 6>;

/// A client address as a number: IPv6 as itself, IPv4 as its IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`), and any other text as [`TEXT_TAG`] plus a 64-bit hash of it.
pub(crate) type ClientKey = u128;
const V4_MAPPED: u128 = 0xffff << 32;
/// Keys of clients that are not IP addresses (host names, `-`): the `fffe:...` prefix is not
/// assigned to anything.
const TEXT_TAG: u128 = 0xfffe_0000_0000_0000 << 64;

/// Keys hashed the same way in every worker, so partial counts of one path meet in the total.
pub(crate) fn key_hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(0x243f_6a88_85a3_08d3)
}

/// splitmix64's finalizer: spreads a key over all 64 bits for HyperLogLog.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

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

/// The key of a client address, and whether it is text (not an IP address).
fn client_key(b: &[u8]) -> (ClientKey, bool) {
    if let Some(v4) = parse_ipv4(b) {
        return (V4_MAPPED | u128::from(v4), false);
    }
    if memchr::memchr(b':', b).is_some()
        && let Some(v6) = std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
    {
        return (u128::from(v6), false);
    }
    (TEXT_TAG | u128::from(key_hasher().hash_one(b)), true)
}

/// The text of a client key that is an IP address.
pub(crate) fn client_text(key: ClientKey) -> String {
    if key >> 32 == V4_MAPPED >> 32 {
        std::net::Ipv4Addr::from(key as u32).to_string()
    } else {
        std::net::Ipv6Addr::from(key).to_string()
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

/// One path in one chunk.
#[derive(Debug, Clone, Copy)]
struct PathPart {
    hash: u64,
    count: u64,
    errors: u64,
    latency_sum_us: u64,
    timed: u32,
    /// The path's text in `Stats::path_text`.
    text: (u32, u32),
    /// Its latency buckets in `Stats::buckets`, once `finish` sorted them.
    first: u32,
}

/// The counters every level keeps: they add up, and merge by addition.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) lines: u64,
    pub(crate) blank: u64,
    pub(crate) other: u64,
    pub(crate) malformed: u64,
    pub(crate) filtered: u64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) slow: u64,
    pub(crate) latency_sum_us: u128,
}

impl Counters {
    fn absorb(&mut self, o: &mut Counters) {
        let o = std::mem::take(o);
        self.lines += o.lines;
        self.blank += o.blank;
        self.other += o.other;
        self.malformed += o.malformed;
        self.filtered += o.filtered;
        self.requests += o.requests;
        self.errors += o.errors;
        self.slow += o.slow;
        self.latency_sum_us += o.latency_sum_us;
    }
}

/// What every worker needs besides the filter: the custom format, if any, and the panels to
/// count.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) custom: Option<AccessFormat>,
    pub(crate) panels: PanelConfig,
}

impl Setup {
    pub(crate) fn from_options(o: &crate::Options) -> Setup {
        Setup {
            custom: o.access_format.clone(),
            panels: PanelConfig {
                set: o.panels,
                static_ext: o
                    .static_extensions
                    .iter()
                    .map(|e| {
                        e.trim_start_matches('.')
                            .to_ascii_lowercase()
                            .into_bytes()
                            .into()
                    })
                    .collect(),
            },
        }
    }
}

/// The counts of one chunk (see the module docs).
pub(crate) struct Stats {
    pub(crate) c: Counters,
    pub(crate) latency: Histogram,
    pub(crate) status: Vec<u64>,
    /// Malformed lines by reason (a handful of reasons, so a short list).
    reasons: Vec<(&'static str, u64)>,
    paths: FastMap<u64, u32>,
    path_parts: Vec<PathPart>,
    path_text: Vec<u8>,
    /// `(path slot, latency bucket)` per timed request, in line order.
    events: Vec<(u32, u16)>,
    /// The latency buckets grouped by path slot (filled by `finish`).
    buckets: Vec<u16>,
    /// Requests and response bytes per client (the bytes for the bandwidth panel: one lookup
    /// a line serves both).
    clients: FastMap<ClientKey, (u64, u64)>,
    /// Texts of the clients that are not IP addresses: key, then the range in `client_text`.
    client_names: Vec<(ClientKey, u32, u32)>,
    client_text: Vec<u8>,
    minutes: FastMap<i64, u64>,
    samples: Vec<Sample>,
    chunk_lines: Vec<(Position, u64)>,
    slow_us: u64,
    max_samples: usize,
    ts_cache: TsCache,
    // The minute being counted: logs are mostly in time order, so the map is touched only when
    // the minute changes.
    cur_minute: i64,
    cur_count: u64,
    custom: Option<AccessFormat>,
    pub(crate) panels: PanelChunk,
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stats")
            .field("counters", &self.c)
            .field("paths", &self.paths.len())
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl Stats {
    pub(crate) fn new(slow_us: u64, max_samples: usize, setup: &Setup) -> Self {
        Stats {
            c: Counters::default(),
            latency: Histogram::new(GLOBAL_SUB_BITS),
            status: vec![0; 1000],
            reasons: Vec::new(),
            paths: FastMap::default(),
            path_parts: Vec::new(),
            path_text: Vec::new(),
            events: Vec::new(),
            buckets: Vec::new(),
            clients: FastMap::default(),
            client_names: Vec::new(),
            client_text: Vec::new(),
            minutes: FastMap::default(),
            samples: Vec::new(),
            chunk_lines: Vec::new(),
            slow_us,
            max_samples,
            ts_cache: TsCache::default(),
            cur_minute: i64::MIN,
            cur_count: 0,
            custom: setup.custom.clone(),
            panels: PanelChunk::new(setup.panels.clone()),
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
        self.c.lines += 1;
        self.malformed(reason, prefix, (input, seq, 1));
        self.chunk_lines.push(((input, seq, 0), 1));
    }

    fn line(&mut self, format: LogFormat, raw: &[u8], filter: &Filter, at: Position) {
        self.c.lines += 1;
        let line = trim_line(raw);
        if line.is_empty() {
            self.c.blank += 1;
            return;
        }
        match parse_line(format, self.custom.as_ref(), line, &mut self.ts_cache) {
            Ok(Parsed::Request(r)) => {
                // Out-of-range values are malformed here, once for every format, rather than
                // clamped into figures they would distort.
                if r.ts.is_some_and(|ts| !(0..=MAX_TS).contains(&ts)) {
                    self.malformed("timestamp out of range (1970 to 9999)", line, at);
                } else if r.latency_us.is_some_and(|us| us > MAX_LATENCY_US) {
                    self.malformed("response time out of range (over 12 days)", line, at);
                } else if filter.accepts(&r) {
                    self.add(&r);
                } else {
                    self.c.filtered += 1;
                }
            }
            Ok(Parsed::Other) => self.c.other += 1,
            Err(reason) => self.malformed(reason, line, at),
        }
    }

    fn malformed(&mut self, reason: &'static str, line: &[u8], at: Position) {
        self.c.malformed += 1;
        match self.reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.reasons.push((reason, 1)),
        }
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
        let c = &mut self.c;
        c.requests += 1;
        let error = r.status >= 400;
        c.errors += u64::from(error);
        self.status[usize::from(r.status)] += 1;
        let path = r.path();
        let hash = key_hasher().hash_one(path);
        let mut created = false;
        let slot = match self.paths.get(&hash) {
            Some(&s) => s,
            None => {
                created = true;
                let s = self.path_parts.len() as u32;
                let start = self.path_text.len() as u32;
                self.path_text.extend_from_slice(path);
                self.path_parts.push(PathPart {
                    hash,
                    count: 0,
                    errors: 0,
                    latency_sum_us: 0,
                    timed: 0,
                    text: (start, path.len() as u32),
                    first: 0,
                });
                self.paths.insert(hash, s);
                s
            }
        };
        let part = &mut self.path_parts[slot as usize];
        part.count += 1;
        part.errors += u64::from(error);
        if let Some(us) = r.latency_us {
            part.latency_sum_us += us;
            part.timed += 1;
            self.events.push((slot, path_bucket(us)));
            c.latency_sum_us += u128::from(us);
            self.latency.record(us);
            c.slow += u64::from(us > self.slow_us);
        }
        let client = (!r.ip.is_empty()).then(|| client_key(&r.ip));
        if !self.panels.set().is_empty() {
            self.panels.add(r, slot, created, path, client);
        }
        if let Some((key, text)) = client {
            // get_mut first: `entry` reserves room on every call, which showed in profiles.
            let bytes = r.bytes.unwrap_or(0);
            match self.clients.get_mut(&key) {
                Some(n) => *n = (n.0 + 1, n.1 + bytes),
                None => {
                    self.clients.insert(key, (1, bytes));
                    if text {
                        let start = self.client_text.len() as u32;
                        self.client_text.extend_from_slice(&r.ip);
                        self.client_names.push((key, start, r.ip.len() as u32));
                    }
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

    /// Call once after the last line of the chunk, on the worker: flushes the minute being
    /// counted and groups the latency buckets by path (a counting sort), so the sink reads each
    /// path's latencies as one slice.
    pub(crate) fn finish(&mut self) {
        self.flush_minute();
        self.cur_minute = i64::MIN;
        let mut next = 0u32;
        for p in &mut self.path_parts {
            p.first = next;
            next += p.timed;
        }
        self.buckets.clear();
        self.buckets.resize(next as usize, 0);
        let mut fill: Vec<u32> = self.path_parts.iter().map(|p| p.first).collect();
        for &(slot, b) in &self.events {
            let at = &mut fill[slot as usize];
            self.buckets[*at as usize] = b;
            *at += 1;
        }
        self.events.clear();
    }

    /// Empties the counts, keeping the allocations (the vectors and maps are sized by one
    /// chunk's lines, so they do not grow past that).
    fn clear(&mut self) {
        self.c = Counters::default();
        self.reasons.clear();
        self.paths.clear();
        self.path_parts.clear();
        self.path_text.clear();
        self.events.clear();
        self.buckets.clear();
        self.clients.clear();
        self.client_names.clear();
        self.client_text.clear();
        self.minutes.clear();
        self.samples.clear();
        self.chunk_lines.clear();
        self.cur_minute = i64::MIN;
        self.cur_count = 0;
        self.panels.clear();
    }
}

/// A path in the totals.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathEntry {
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) timed: u64,
    pub(crate) latency_sum_us: u64,
    pub(crate) latency: PathHistogram,
    /// The path's text in `Totals::path_text`: one arena instead of an allocation per path,
    /// since past the budget paths are created and dropped at the rate of the lines.
    text: (u32, u32),
}

impl Counted for PathEntry {
    fn count(&self) -> u64 {
        self.count
    }
    fn decrement(&mut self, d: u64) {
        self.count -= d.min(self.count);
    }
    fn heap_bytes(&self) -> usize {
        // Each allocation also costs the allocator's header, about 16 bytes.
        // Its text in the arena, which a compaction after each prune keeps at most about twice
        // the live texts; an allocation's header is about 16 bytes.
        2 * self.text.1 as usize + self.latency.heap_bytes() + 16
    }
}

/// A client in the totals; `text` only for clients that are not IP addresses.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientEntry {
    pub(crate) count: u64,
    pub(crate) text: Option<Box<[u8]>>,
}

impl Counted for ClientEntry {
    fn count(&self) -> u64 {
        self.count
    }
    fn decrement(&mut self, d: u64) {
        self.count -= d.min(self.count);
    }
    fn heap_bytes(&self) -> usize {
        self.text.as_ref().map_or(0, |t| t.len() + 16)
    }
}

/// Everything counted so far, within the budget's [`Plan`] (see the module docs). Cloned for
/// the live view's snapshots (`build` consumes what it reports).
#[derive(Clone)]
pub(crate) struct Totals {
    pub(crate) c: Counters,
    pub(crate) latency: Histogram,
    pub(crate) status: Vec<u64>,
    pub(crate) reasons: Vec<(&'static str, u64)>,
    pub(crate) paths: Heavy<u64, PathEntry>,
    path_text: Vec<u8>,
    /// `paths.prunes()` when `path_text` was last compacted.
    compacted_at: u64,
    pub(crate) path_hll: Hll,
    pub(crate) clients: Heavy<ClientKey, ClientEntry>,
    pub(crate) client_hll: Hll,
    pub(crate) minutes: FastMap<i64, u64>,
    max_minutes: usize,
    /// Requests whose minute was not kept because the per-minute table was full.
    pub(crate) minutes_dropped: u64,
    pub(crate) samples: Vec<Sample>,
    max_samples: usize,
    pub(crate) chunk_lines: Vec<(Position, u64)>,
    pub(crate) panels: PanelTotals,
}

impl fmt::Debug for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totals")
            .field("counters", &self.c)
            .field("paths", &self.paths.len())
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl Totals {
    pub(crate) fn new(plan: &Plan, max_samples: usize) -> Self {
        Totals {
            c: Counters::default(),
            latency: Histogram::new(GLOBAL_SUB_BITS),
            status: vec![0; 1000],
            reasons: Vec::new(),
            paths: Heavy::new(plan.paths),
            path_text: Vec::new(),
            compacted_at: 0,
            path_hll: Hll::new(),
            clients: Heavy::new(plan.clients),
            client_hll: Hll::new(),
            minutes: FastMap::default(),
            max_minutes: plan.minutes,
            minutes_dropped: 0,
            samples: Vec::new(),
            max_samples,
            chunk_lines: Vec::new(),
            panels: PanelTotals::new(plan.panel_set, plan.panels),
        }
    }

    /// Adds a chunk's counts (after its [`Stats::finish`]) and clears it for another chunk.
    pub(crate) fn absorb(&mut self, part: &mut Stats) {
        self.c.absorb(&mut part.c);
        self.latency.absorb(&mut part.latency);
        for (a, b) in self.status.iter_mut().zip(&mut part.status) {
            *a += std::mem::take(b);
        }
        for &(reason, n) in &part.reasons {
            match self.reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, m)) => *m += n,
                None => self.reasons.push((reason, n)),
            }
        }
        // The tables are megabytes, out of cache: a batch of keys' slots is touched first, in a
        // loop short enough that the CPU keeps all their misses in flight at once; the updates
        // that follow find the slots in cache (see `Table::touch`).
        let mut hashes = [0u64; TOUCH_BATCH];
        for batch in part.path_parts.chunks(TOUCH_BATCH) {
            for (h, p) in hashes.iter_mut().zip(batch) {
                *h = self.paths.map.hash(&p.hash);
                self.paths.touch(*h);
            }
            for (p, &h) in batch.iter().zip(&hashes) {
                self.path_hll.insert_hash(mix(p.hash));
                let mut created = false;
                let arena = &mut self.path_text;
                let entry = self.paths.entry_hashed(h, p.hash, || {
                    created = true;
                    let (start, len) = (p.text.0 as usize, p.text.1 as usize);
                    let at = arena.len() as u32;
                    arena.extend_from_slice(&part.path_text[start..start + len]);
                    PathEntry {
                        count: 0,
                        errors: 0,
                        timed: 0,
                        latency_sum_us: 0,
                        latency: PathHistogram::default(),
                        text: (at, len as u32),
                    }
                });
                let before = if created { 0 } else { entry.heap_bytes() };
                entry.count += p.count;
                entry.errors += p.errors;
                entry.timed += u64::from(p.timed);
                entry.latency_sum_us = entry.latency_sum_us.saturating_add(p.latency_sum_us);
                let first = p.first as usize;
                for &b in &part.buckets[first..first + p.timed as usize] {
                    entry.latency.add(b);
                }
                let grown = entry.heap_bytes() as isize - before as isize;
                self.paths.add_heap(grown);
            }
        }
        self.paths.settle();
        if self.paths.prunes() != self.compacted_at {
            self.compact_path_text();
        }
        let mut batch = [(0u64, 0 as ClientKey, 0u64); TOUCH_BATCH];
        let mut clients = part.clients.iter();
        loop {
            let mut n = 0;
            for (slot, (&key, &(count, _))) in batch.iter_mut().zip(clients.by_ref()) {
                let h = self.clients.map.hash(&key);
                self.clients.touch(h);
                *slot = (h, key, count);
                n += 1;
            }
            for &(h, key, count) in &batch[..n] {
                self.client_hll
                    .insert_hash(mix(key as u64 ^ (key >> 64) as u64 ^ 0x9e37));
                self.clients
                    .entry_hashed(h, key, ClientEntry::default)
                    .count += count;
            }
            if n < TOUCH_BATCH {
                break;
            }
        }
        for &(key, start, len) in &part.client_names {
            if let Some(e) = self.clients.map.get_mut(&key)
                && e.text.is_none()
            {
                let (start, len) = (start as usize, len as usize);
                e.text = Some(part.client_text[start..start + len].into());
                self.clients.add_heap(len as isize + 16);
            }
        }
        self.clients.settle();
        self.panels.absorb_clients(
            &part.clients,
            part.client_names.iter().map(|&(key, start, len)| {
                let (start, len) = (start as usize, len as usize);
                (key, &part.client_text[start..start + len])
            }),
        );
        for (&m, &n) in &part.minutes {
            let room = self.minutes.len() < self.max_minutes;
            match self.minutes.get_mut(&m) {
                Some(c) => *c += n,
                None if room => {
                    self.minutes.insert(m, n);
                }
                None => self.minutes_dropped += n,
            }
        }
        let (parts, text) = (&part.path_parts, &part.path_text);
        self.panels.absorb(&mut part.panels, |slot| {
            let p = &parts[slot];
            let (start, len) = (p.text.0 as usize, p.text.1 as usize);
            (p.hash, &text[start..start + len])
        });
        self.samples.append(&mut part.samples);
        self.samples.sort_by_key(|s| s.at);
        self.samples.truncate(self.max_samples);
        self.chunk_lines.append(&mut part.chunk_lines);
        part.clear();
    }

    /// Copies the texts of the paths still tracked into a new arena, leaving the dropped ones.
    fn compact_path_text(&mut self) {
        let live: usize = self.paths.map.values().map(|e| e.text.1 as usize).sum();
        let mut arena = Vec::with_capacity(live);
        for e in self.paths.map.values_mut() {
            let (start, len) = (e.text.0 as usize, e.text.1 as usize);
            let at = arena.len() as u32;
            arena.extend_from_slice(&self.path_text[start..start + len]);
            e.text.0 = at;
        }
        self.path_text = arena;
        self.compacted_at = self.paths.prunes();
    }

    /// The text of a tracked path.
    pub(crate) fn path_text(&self, e: &PathEntry) -> &[u8] {
        let (start, len) = (e.text.0 as usize, e.text.1 as usize);
        &self.path_text[start..start + len]
    }

    /// The number of distinct paths, and whether it is exact (else a HyperLogLog estimate).
    pub(crate) fn distinct_paths(&self) -> (u64, bool) {
        if self.paths.exact() {
            (self.paths.len() as u64, true)
        } else {
            (self.path_hll.estimate() as u64, false)
        }
    }

    /// The number of distinct clients, and whether it is exact.
    pub(crate) fn distinct_clients(&self) -> (u64, bool) {
        if self.clients.exact() {
            (self.clients.len() as u64, true)
        } else {
            (self.client_hll.estimate() as u64, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Plan;
    use std::sync::Arc;

    type Summary = (u64, u64, u64, u64, u64, Vec<(Vec<u8>, u64, u64)>, usize);

    fn summary(t: &Totals) -> Summary {
        let mut paths: Vec<_> = t
            .paths
            .map
            .values()
            .map(|a| (t.path_text(a).to_vec(), a.count, a.timed))
            .collect();
        paths.sort();
        (
            t.c.lines,
            t.c.requests,
            t.c.malformed,
            t.c.errors,
            t.latency.total(),
            paths,
            t.clients.len(),
        )
    }

    #[test]
    fn recycled_partials_keep_no_entries_and_add_up_to_one_pass() {
        let filter = Filter::new(&crate::Options::default()).expect("default filter");
        let chunks: [&[u8]; 3] = [
            b"2024-03-01 12:00:00 level=info ip=10.0.0.1 path=\"/a\" status=200 time=12ms\n\
              2024-03-01 12:00:01 level=error ip=10.0.0.2 path=\"/b\" status=500 time=900ms\n\
              garbage\n",
            b"2024-03-01 12:01:00 level=info ip=10.0.0.1 path=\"/a\" status=200 time=3ms\n",
            b"2024-03-01 12:02:00 level=info ip=host.example path=\"/c\" status=404 time=1s\n",
        ];
        let plan = Plan::with_panels(128 << 20, 3, crate::PanelSet::all());
        let setup = Setup {
            custom: None,
            panels: PanelConfig {
                set: crate::PanelSet::all(),
                static_ext: Arc::from(Vec::new()),
            },
        };
        let mut one = Stats::new(500_000, 5, &setup);
        let mut whole = Totals::new(&plan, 5);
        let mut total = Totals::new(&plan, 5);
        let mut part = Stats::new(500_000, 5, &setup);
        for (seq, chunk) in chunks.iter().enumerate() {
            one.process_chunk(0, seq as u64, LogFormat::Kv, chunk, &filter);
            part.process_chunk(0, seq as u64, LogFormat::Kv, chunk, &filter);
            part.finish();
            total.absorb(&mut part);
            assert!(
                part.paths.is_empty()
                    && part.path_parts.is_empty()
                    && part.clients.is_empty()
                    && part.minutes.is_empty()
                    && part.samples.is_empty()
                    && part.panels.is_clear()
                    && part.c.lines == 0,
                "absorb leaves no entry in the recycled partial: {part:?}"
            );
        }
        one.finish();
        whole.absorb(&mut one);
        assert_eq!(summary(&total), summary(&whole));
        assert_eq!(total.paths.len(), 3);
        assert_eq!(total.minutes, whole.minutes);
        assert_eq!(total.status, whole.status);
        assert_eq!(total.samples.len(), 1);
        assert_eq!(total.samples[0].text, "garbage");
        let named: Vec<_> = total
            .clients
            .map
            .values()
            .filter_map(|c| c.text.clone())
            .collect();
        assert_eq!(named, [Box::from(&b"host.example"[..])]);
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

    #[test]
    fn addresses_are_numbers_and_print_back() {
        let (k4, t4) = client_key(b"10.1.2.3");
        assert!(!t4);
        assert_eq!(client_text(k4), "10.1.2.3");
        let (k6, t6) = client_key(b"2001:db8::1");
        assert!(!t6);
        assert_eq!(client_text(k6), "2001:db8::1");
        assert_eq!(
            client_key(b"::ffff:10.1.2.3").0,
            k4,
            "v4-mapped is the same client"
        );
        let (kt, tt) = client_key(b"010.1.2.3");
        assert!(tt && kt >> 64 == TEXT_TAG >> 64);
    }
}
