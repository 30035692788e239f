//! Counting the panels: per chunk on the workers ([`PanelChunk`]), then into the totals the
//! sink keeps under the budget ([`PanelTotals`]).

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use cardinality_estimator::CardinalityEstimator;

use super::agents::Classifier;
use super::{Panel, PanelSet, is_static};
use crate::aggregate::{ClientKey, key_hasher, mix};
use crate::heavy::{Counted, FastMap, Heavy, Room};
use crate::parse::Record;

type Hll = CardinalityEstimator<u64, std::hash::DefaultHasher, 14, 6>;

/// What every worker needs to know about the panels.
#[derive(Debug, Clone)]
pub(crate) struct PanelConfig {
    pub(crate) set: PanelSet,
    /// Lowercase extensions that make a request static.
    pub(crate) static_ext: Arc<[Box<[u8]>]>,
}

/// Fields the lines carried, so a panel whose field no line had says so instead of showing
/// zeros.
pub(crate) mod seen {
    pub(crate) const BYTES: u8 = 1;
    pub(crate) const REFERER: u8 = 2;
    pub(crate) const AGENT: u8 = 4;
    pub(crate) const VHOST: u8 = 8;
    pub(crate) const TIME: u8 = 16;
    pub(crate) const CLIENT: u8 = 32;
}

/// Per-chunk counts of texts: hash, count, bytes, and the text in one arena.
#[derive(Debug, Default)]
pub(crate) struct TextCounts {
    slots: FastMap<u64, u32>,
    items: Vec<(u64, u64, u64, u32, u32)>,
    text: Vec<u8>,
}

impl TextCounts {
    fn add(&mut self, hash: u64, text: &[u8], bytes: u64) {
        let slot = match self.slots.get(&hash) {
            Some(&s) => s as usize,
            None => {
                let s = self.items.len();
                let start = self.text.len() as u32;
                self.text.extend_from_slice(text);
                self.items.push((hash, 0, 0, start, text.len() as u32));
                self.slots.insert(hash, s as u32);
                s
            }
        };
        let item = &mut self.items[slot];
        item.1 += 1;
        item.2 += bytes;
    }

    fn iter(&self) -> impl Iterator<Item = (u64, u64, u64, &[u8])> {
        self.items.iter().map(|&(h, c, b, s, l)| {
            let (s, l) = (s as usize, l as usize);
            (h, c, b, &self.text[s..s + l])
        })
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.items.clear();
        self.text.clear();
    }
}

/// One path's panel figures in one chunk, by the chunk's path slot.
#[derive(Debug, Clone, Copy)]
struct PathExtra {
    hits: u64,
    bytes: u64,
    not_found: u64,
    is_static: bool,
}

/// The panels of one chunk.
#[derive(Debug)]
pub(crate) struct PanelChunk {
    config: PanelConfig,
    pub(crate) seen: u8,
    pub(crate) bytes: u64,
    pub(crate) sized: u64,
    pub(crate) static_requests: u64,
    pub(crate) static_bytes: u64,
    pub(crate) hours: [u64; 24],
    paths: Vec<PathExtra>,
    referers: TextCounts,
    agents: TextCounts,
    vhosts: TextCounts,
    visitors: FastMap<(i64, u64), ()>,
}

impl PanelChunk {
    pub(crate) fn new(config: PanelConfig) -> Self {
        PanelChunk {
            config,
            seen: 0,
            bytes: 0,
            sized: 0,
            static_requests: 0,
            static_bytes: 0,
            hours: [0; 24],
            paths: Vec::new(),
            referers: TextCounts::default(),
            agents: TextCounts::default(),
            vhosts: TextCounts::default(),
            visitors: FastMap::default(),
        }
    }

    pub(crate) fn set(&self) -> PanelSet {
        self.config.set
    }

    /// Counts one request: `slot` is its path's slot in the chunk (`created` when the path is
    /// new to the chunk), `client` its client key and whether that key is a hashed text.
    pub(crate) fn add(
        &mut self,
        r: &Record<'_>,
        slot: u32,
        created: bool,
        path: &[u8],
        client: Option<(ClientKey, bool)>,
    ) {
        let set = self.config.set;
        if created {
            self.paths.push(PathExtra {
                hits: 0,
                bytes: 0,
                not_found: 0,
                is_static: set.contains(Panel::Static) && is_static(path, &self.config.static_ext),
            });
        }
        let bytes = r.bytes.unwrap_or(0);
        if r.bytes.is_some() {
            self.seen |= seen::BYTES;
            self.bytes += bytes;
            self.sized += 1;
        }
        if let Some(p) = self.paths.get_mut(slot as usize) {
            p.hits += 1;
            p.bytes += bytes;
            p.not_found += u64::from(r.status == 404);
            if p.is_static {
                self.static_requests += 1;
                self.static_bytes += bytes;
            }
        }
        // Bytes per client are counted in the chunk's client table (`Stats::clients`).
        if client.is_some() {
            self.seen |= seen::CLIENT;
        }
        if let Some(ts) = r.ts {
            self.seen |= seen::TIME;
            self.hours[(ts.rem_euclid(86_400) / 3600) as usize] += 1;
        }
        if !r.referer.is_empty() {
            self.seen |= seen::REFERER;
            if set.contains(Panel::Referrers) && &*r.referer != b"-" {
                self.referers
                    .add(key_hasher().hash_one(&*r.referer), &r.referer, 0);
            }
        }
        let wants_agent = set.contains(Panel::Agents) || set.contains(Panel::Visitors);
        let agent_hash = if !r.agent.is_empty() && wants_agent {
            self.seen |= seen::AGENT;
            let h = key_hasher().hash_one(&*r.agent);
            if set.contains(Panel::Agents) {
                self.agents.add(h, &r.agent, 0);
            }
            h
        } else {
            0
        };
        // GoAccess's visitor: the same address, date and user agent; like GoAccess by default,
        // a 4xx response is not a visit (scans and broken links would inflate the figure).
        if set.contains(Panel::Visitors)
            && !(400..500).contains(&r.status)
            && let (Some(ts), Some((key, _))) = (r.ts, client)
        {
            let who = mix(key as u64 ^ (key >> 64) as u64 ^ agent_hash.rotate_left(17));
            self.visitors.insert((ts.div_euclid(86_400), who), ());
        }
        if !r.vhost.is_empty() {
            self.seen |= seen::VHOST;
            if set.contains(Panel::Vhosts) {
                self.vhosts
                    .add(key_hasher().hash_one(&*r.vhost), &r.vhost, bytes);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.seen = 0;
        self.bytes = 0;
        self.sized = 0;
        self.static_requests = 0;
        self.static_bytes = 0;
        self.hours = [0; 24];
        self.paths.clear();
        self.referers.clear();
        self.agents.clear();
        self.vhosts.clear();
        self.visitors.clear();
    }

    #[cfg(test)]
    pub(crate) fn is_clear(&self) -> bool {
        self.paths.is_empty()
            && self.referers.items.is_empty()
            && self.agents.items.is_empty()
            && self.visitors.is_empty()
    }
}

/// A key with its text in a totals table; `weight` is what the table ranks by.
#[derive(Debug, Clone, Default)]
pub(crate) struct TextEntry {
    pub(crate) weight: u64,
    pub(crate) hits: u64,
    pub(crate) bytes: u64,
    /// The text's range in its [`TextTable`]'s arena.
    text: (u32, u32),
}

impl Counted for TextEntry {
    fn count(&self) -> u64 {
        self.weight
    }
    fn decrement(&mut self, d: u64) {
        self.weight -= d.min(self.weight);
    }
    fn heap_bytes(&self) -> usize {
        // The text in the arena, which the compaction after each prune keeps at most about
        // twice the live texts.
        2 * self.text.1 as usize
    }
}

/// A heavy-hitters table of texts (paths, referrers, hosts) whose texts live in one arena
/// rather than in an allocation each: past the budget, keys are created and pruned at the rate
/// of the lines, and a `Box` per key made malloc and free a fifth of the sink's time on
/// high-cardinality input.
#[derive(Debug, Clone)]
pub(crate) struct TextTable {
    pub(crate) table: Heavy<u64, TextEntry>,
    arena: Vec<u8>,
    /// `table.prunes()` when `arena` was last compacted.
    compacted_at: u64,
}

impl TextTable {
    fn new(room: Room) -> Self {
        TextTable {
            table: Heavy::new(room),
            arena: Vec::new(),
            compacted_at: 0,
        }
    }

    /// Adds `weight`, `hits` and `bytes` to the entry of `hash`, created with `text` if absent.
    fn add(&mut self, hash: u64, text: &[u8], weight: u64, hits: u64, bytes: u64) {
        let mut created = false;
        let arena = &mut self.arena;
        let e = self.table.entry(hash, || {
            created = true;
            let at = arena.len() as u32;
            arena.extend_from_slice(text);
            TextEntry {
                weight: 0,
                hits: 0,
                bytes: 0,
                text: (at, text.len() as u32),
            }
        });
        e.weight += weight;
        e.hits += hits;
        e.bytes += bytes;
        if created {
            self.table.add_heap(2 * text.len() as isize);
        }
    }

    /// Prunes until the table fits its room, then drops the pruned keys' texts.
    fn settle(&mut self) {
        self.table.settle();
        if self.table.prunes() != self.compacted_at {
            let live: usize = self.table.map.values().map(|e| e.text.1 as usize).sum();
            let mut arena = Vec::with_capacity(live);
            for e in self.table.map.values_mut() {
                let (start, len) = (e.text.0 as usize, e.text.1 as usize);
                let at = arena.len() as u32;
                arena.extend_from_slice(&self.arena[start..start + len]);
                e.text.0 = at;
            }
            self.arena = arena;
            self.compacted_at = self.table.prunes();
        }
    }

    /// The text of an entry of this table.
    pub(crate) fn text(&self, e: &TextEntry) -> &[u8] {
        let (start, len) = (e.text.0 as usize, e.text.1 as usize);
        &self.arena[start..start + len]
    }
}

/// A client's bytes in the totals (`text` only for clients that are not IP addresses).
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientBytes {
    pub(crate) bytes: u64,
    pub(crate) hits: u64,
    pub(crate) text: Option<Box<[u8]>>,
}

impl Counted for ClientBytes {
    fn count(&self) -> u64 {
        self.bytes
    }
    fn decrement(&mut self, d: u64) {
        self.bytes -= d.min(self.bytes);
    }
    fn heap_bytes(&self) -> usize {
        self.text.as_ref().map_or(0, |t| t.len() + 16)
    }
}

/// The room the budget gives the panels' tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PanelPlan {
    pub(crate) bw_paths: Room,
    pub(crate) bw_clients: Room,
    pub(crate) not_found: Room,
    pub(crate) referrers: Room,
    pub(crate) sites: Room,
    pub(crate) vhosts: Room,
    /// Visitor keys kept exactly, over all days, before every day becomes an estimate.
    pub(crate) visitors_exact: usize,
    /// Days kept (each may hold a HyperLogLog sketch of 12 KiB).
    pub(crate) visitor_days: usize,
}

impl PanelPlan {
    /// Shares `bytes` out between the tables.
    pub(crate) fn for_bytes(bytes: usize) -> PanelPlan {
        let text = std::mem::size_of::<(u64, TextEntry)>();
        let client = std::mem::size_of::<(ClientKey, ClientBytes)>();
        let bytes = bytes.saturating_sub(Classifier::max_bytes());
        PanelPlan {
            // The bandwidth tables are touched on every line, at random keys on high-cardinality
            // input: 1/40 each (about 3,600 keys and 200 KB at the default budget) keeps them in
            // a core's L2 cache. At 1/5 each (1.3-1.5 MB) their cache misses were 80% of the
            // panels' cost (panels all/none 1.27x CPU against 1.11x; BENCHMARKS.md, "Panels'
            // cost and the sink, profiled again"). The price is a larger stated over-count once
            // the keys outgrow the room; counts stay exact while they fit.
            bw_paths: Room::for_bytes(bytes / 40, text),
            bw_clients: Room::for_bytes(bytes / 40, client),
            not_found: Room::for_bytes(bytes / 10, text),
            referrers: Room::for_bytes(bytes / 10, text),
            sites: Room::for_bytes(bytes / 20, text),
            vhosts: Room::for_bytes(bytes / 20, text),
            // A hash set entry: 8 bytes, its control byte, and a load factor of 7/8 at worst
            // half way through a doubling: about 20 bytes.
            visitors_exact: bytes / 8 / 20,
            visitor_days: (bytes / 8 / (14 << 10)).max(32),
        }
    }
}

/// Unique visitors of one day.
#[derive(Debug, Clone)]
pub(crate) struct Day {
    pub(crate) exact: FastMap<u64, ()>,
    pub(crate) hll: Hll,
}

/// The panels' totals (see the module docs). Cloned with the core totals for the live view's
/// snapshots.
#[derive(Clone)]
pub(crate) struct PanelTotals {
    pub(crate) set: PanelSet,
    pub(crate) seen: u8,
    pub(crate) bytes: u64,
    pub(crate) sized: u64,
    pub(crate) static_requests: u64,
    pub(crate) static_bytes: u64,
    pub(crate) hours: [u64; 24],
    pub(crate) bw_paths: TextTable,
    pub(crate) bw_clients: Heavy<ClientKey, ClientBytes>,
    pub(crate) not_found: TextTable,
    pub(crate) not_found_hits: u64,
    pub(crate) referrers: TextTable,
    pub(crate) sites: TextTable,
    pub(crate) vhosts: TextTable,
    pub(crate) classifier: Classifier,
    pub(crate) browsers: FastMap<u16, u64>,
    pub(crate) systems: FastMap<u16, u64>,
    pub(crate) categories: FastMap<u16, u64>,
    /// Requests per crawler name (category `crawler`).
    pub(crate) crawlers: FastMap<u16, u64>,
    pub(crate) days: BTreeMap<i64, Day>,
    /// Exact visitor keys held over all days; past the plan's room, every day is estimated.
    exact_keys: usize,
    pub(crate) visitors_exact: bool,
    /// Visitors left out because their day did not fit.
    pub(crate) days_dropped: u64,
    plan: PanelPlan,
}

impl std::fmt::Debug for PanelTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelTotals")
            .field("set", &self.set)
            .field("days", &self.days.len())
            .finish_non_exhaustive()
    }
}

impl PanelTotals {
    pub(crate) fn new(set: PanelSet, plan: PanelPlan) -> Self {
        PanelTotals {
            set,
            seen: 0,
            bytes: 0,
            sized: 0,
            static_requests: 0,
            static_bytes: 0,
            hours: [0; 24],
            bw_paths: TextTable::new(plan.bw_paths),
            bw_clients: Heavy::new(plan.bw_clients),
            not_found: TextTable::new(plan.not_found),
            not_found_hits: 0,
            referrers: TextTable::new(plan.referrers),
            sites: TextTable::new(plan.sites),
            vhosts: TextTable::new(plan.vhosts),
            classifier: Classifier::new(),
            browsers: FastMap::default(),
            systems: FastMap::default(),
            categories: FastMap::default(),
            crawlers: FastMap::default(),
            days: BTreeMap::new(),
            exact_keys: 0,
            visitors_exact: true,
            days_dropped: 0,
            plan,
        }
    }

    /// Adds a chunk's panels and clears them; `path(slot)` gives the hash and text of the
    /// chunk's path `slot`.
    pub(crate) fn absorb<'p>(
        &mut self,
        part: &mut PanelChunk,
        path: impl Fn(usize) -> (u64, &'p [u8]),
    ) {
        if self.set.is_empty() {
            part.clear();
            return;
        }
        self.seen |= part.seen;
        self.bytes = self.bytes.saturating_add(part.bytes);
        self.sized += part.sized;
        self.static_requests += part.static_requests;
        self.static_bytes = self.static_bytes.saturating_add(part.static_bytes);
        for (a, b) in self.hours.iter_mut().zip(part.hours) {
            *a += b;
        }
        for (slot, p) in part.paths.iter().enumerate() {
            if p.bytes == 0 && p.not_found == 0 {
                continue;
            }
            let (hash, text) = path(slot);
            if p.bytes > 0 && self.set.contains(Panel::Bandwidth) {
                self.bw_paths.add(hash, text, p.bytes, p.hits, p.bytes);
            }
            if p.not_found > 0 && self.set.contains(Panel::NotFound) {
                self.not_found_hits += p.not_found;
                self.not_found.add(hash, text, p.not_found, p.not_found, 0);
            }
        }
        self.bw_paths.settle();
        self.not_found.settle();
        for (hash, count, _, text) in part.referers.iter() {
            self.referrers.add(hash, text, count, count, 0);
            let host = referrer_host(text);
            if !host.is_empty() {
                let h = key_hasher().hash_one(host);
                self.sites.add(h, host, count, count, 0);
            }
        }
        self.referrers.settle();
        self.sites.settle();
        for (hash, count, _, text) in part.agents.iter() {
            let c = self.classifier.classify(hash, text);
            *self.browsers.entry(c.browser).or_default() += count;
            *self.systems.entry(c.os).or_default() += count;
            *self.categories.entry(c.category).or_default() += count;
            if self.classifier.name(c.category) == "crawler" {
                *self.crawlers.entry(c.browser).or_default() += count;
            }
        }
        for (hash, count, bytes, text) in part.vhosts.iter() {
            self.vhosts.add(hash, text, count, count, bytes);
        }
        self.vhosts.settle();
        for &(day, who) in part.visitors.keys() {
            self.visitor(day, who);
        }
        part.clear();
    }

    /// Adds a chunk's bytes per client: `clients` maps a client to its requests and bytes,
    /// `names` gives the text of the clients that are not IP addresses.
    pub(crate) fn absorb_clients<'n>(
        &mut self,
        clients: &FastMap<ClientKey, (u64, u64)>,
        names: impl Iterator<Item = (ClientKey, &'n [u8])>,
    ) {
        if !self.set.contains(Panel::Bandwidth) {
            return;
        }
        for (&key, &(hits, bytes)) in clients {
            // A client that was sent nothing cannot rank by bytes.
            if bytes == 0 {
                continue;
            }
            let e = self.bw_clients.entry(key, || ClientBytes {
                bytes: 0,
                hits: 0,
                text: None,
            });
            e.bytes += bytes;
            e.hits += hits;
        }
        for (key, name) in names {
            if let Some(e) = self.bw_clients.map.get_mut(&key)
                && e.text.is_none()
            {
                e.text = Some(name.into());
                self.bw_clients.add_heap(name.len() as isize + 16);
            }
        }
        self.bw_clients.settle();
    }

    fn visitor(&mut self, day: i64, who: u64) {
        if !self.days.contains_key(&day) {
            if self.days.len() >= self.plan.visitor_days {
                self.days_dropped += 1;
                return;
            }
            self.days.insert(
                day,
                Day {
                    exact: FastMap::default(),
                    hll: Hll::new(),
                },
            );
        }
        let Some(d) = self.days.get_mut(&day) else {
            return;
        };
        d.hll.insert_hash(who);
        if self.visitors_exact && d.exact.insert(who, ()).is_none() {
            self.exact_keys += 1;
            if self.exact_keys > self.plan.visitors_exact {
                // Past the room, every day is an estimate, so the figures stay comparable.
                self.visitors_exact = false;
                for d in self.days.values_mut() {
                    d.exact = FastMap::default();
                }
            }
        }
    }

    /// Unique visitors of a day, and whether the figure is exact.
    pub(crate) fn day_visitors(&self, d: &Day) -> u64 {
        if self.visitors_exact {
            d.exact.len() as u64
        } else {
            d.hll.estimate() as u64
        }
    }
}

/// The host part of a referrer URL: `https://www.example.com:8080/a?b` gives
/// `www.example.com:8080`; text without a scheme gives itself up to the first `/`.
pub(crate) fn referrer_host(url: &[u8]) -> &[u8] {
    let rest = match memchr::memmem::find(url, b"://") {
        Some(i) => &url[i + 3..],
        None => url,
    };
    let end = rest
        .iter()
        .position(|&c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let host = &rest[..end];
    // Credentials (`user:pass@host`) are not part of the site.
    match host.iter().rposition(|&c| c == b'@') {
        Some(at) => &host[at + 1..],
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts live in one arena; a prune drops the pruned keys' texts and the kept keys still
    /// read theirs.
    #[test]
    fn text_tables_keep_the_right_texts_and_drop_pruned_ones_from_the_arena() {
        let mut t = TextTable::new(Room {
            max_len: 16,
            max_heap: usize::MAX,
        });
        for i in 0..4u64 {
            let text = format!("/heavy/{i}");
            t.add(mix(i), text.as_bytes(), 100 + i, 1, 0);
        }
        t.settle();
        assert_eq!(t.table.prunes(), 0);
        for i in 0..1000u64 {
            let text = format!("/tail/{i}/with/a/long/id/0123456789abcdef");
            t.add(mix(1000 + i), text.as_bytes(), 1, 1, 0);
            t.settle();
        }
        assert!(t.table.prunes() > 0);
        let live: usize = t.table.map.values().map(|e| t.text(e).len()).sum();
        assert!(
            t.arena.len() <= 2 * live + 64 * 16,
            "arena {} for {live} live bytes",
            t.arena.len()
        );
        for i in 0..4u64 {
            let e = t.table.map.get(&mix(i)).expect("a heavy path is kept");
            assert_eq!(t.text(e), format!("/heavy/{i}").as_bytes());
        }
    }

    #[test]
    fn referrer_hosts() {
        assert_eq!(
            referrer_host(b"https://www.example.com:8080/a?b"),
            b"www.example.com:8080"
        );
        assert_eq!(referrer_host(b"http://u:p@ex.com"), b"ex.com");
        assert_eq!(referrer_host(b"android-app://com.google"), b"com.google");
        assert_eq!(referrer_host(b"ex.org/x"), b"ex.org");
        assert_eq!(referrer_host(b""), b"");
    }

    #[test]
    fn visitors_turn_into_estimates_past_their_room_and_stay_close() {
        let mut plan = PanelPlan::for_bytes(4 << 20);
        plan.visitors_exact = 1000;
        let mut t = PanelTotals::new(PanelSet::all(), plan);
        for i in 0..500u64 {
            t.visitor(0, mix(i));
            t.visitor(0, mix(i));
        }
        assert!(t.visitors_exact);
        assert_eq!(t.day_visitors(&t.days[&0]), 500);
        for i in 0..20_000u64 {
            t.visitor(1, mix(i + 1_000_000));
        }
        assert!(!t.visitors_exact);
        let est = t.day_visitors(&t.days[&1]) as f64;
        assert!((est - 20_000.0).abs() / 20_000.0 < 0.05, "{est}");
        let est0 = t.day_visitors(&t.days[&0]) as f64;
        assert!((est0 - 500.0).abs() / 500.0 < 0.05, "{est0}");
    }
}
