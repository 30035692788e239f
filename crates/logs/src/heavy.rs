//! Counts per key under a memory budget: exact while the keys fit, a heavy-hitters summary with
//! a proven error bound past it.
//!
//! The summary is Misra-Gries with batched decrements, the form of it that is mergeable
//! (Agarwal, Cormode, Huang, Phillips, Wei, Yi: "Mergeable summaries", PODS 2012; it is
//! isomorphic to Space-Saving). Weighted updates (the per-chunk counts the workers produce) are
//! added to the key's counter, creating it if needed. When the table holds more than its
//! `max_len` keys (or its entries' heap bytes pass `max_heap`), it is pruned: `d` is the count
//! of the `(max_len / 2 + 1)`-th largest counter, every counter loses `d`, and the counters
//! that reach zero are removed (with their payload). `decremented` sums the `d`s.
//!
//! # Invariants
//!
//! 1. For every key `x` with true count `f(x)` and counter `c(x)` (0 when absent):
//!    `c(x) <= f(x) <= c(x) + decremented`. A counter only loses occurrences at a prune, and at
//!    most `d` each time.
//! 2. A prune the key count triggers takes `d` from at least `max_len / 2 + 1` counters, so
//!    `decremented <= N / (max_len / 2 + 1)` for `N` counted occurrences: the bound shrinks
//!    with the budget's room, and is `0` (exact) until the first prune. (A prune the heap bytes
//!    trigger keeps fewer counters, so its `d` can be larger; `decremented` still sums the
//!    actual `d`s, so invariant 1 holds with the reported figure.)
//!
//! Reported counts are `c(x) + decremented` (exact for a key tracked from its first occurrence),
//! so `decremented` is the largest possible over-count of any reported key.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The hash table of a [`Heavy`]: open addressing with linear probing, a tag byte per slot
/// (`0` empty, else `0x80` and seven bits of the hash) beside the slots, and the slot index
/// taken from the hash's top bits. It exists for one reason a `HashMap` cannot serve: a caller
/// that knows the keys it will look up next can compute their slots and [`Table::touch`] them
/// first, so the cache misses of a batch overlap instead of following one another. On
/// high-cardinality input the sink's tables (megabytes, far beyond a core's L2 cache) take a
/// miss or two per distinct key of a chunk, and those misses were most of the sink's time.
///
/// It grows by doubling at 7/8 load, as `hashbrown` does, so a [`Room`] spends the same memory.
#[derive(Clone)]
pub(crate) struct Table<K, V> {
    tags: Vec<u8>,
    slots: Vec<(K, V)>,
    len: usize,
    /// `64 - log2(capacity)`: the slot of hash `h` is `h >> shift`.
    shift: u32,
    hasher: foldhash::fast::RandomState,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            tags: Vec::new(),
            slots: Vec::new(),
            len: 0,
            shift: 64,
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<K, V> fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len)
            .field("capacity", &self.tags.len())
            .finish()
    }
}

fn tag(h: u64) -> u8 {
    0x80 | (h as u8 & 0x7f)
}

impl<K: Hash + Eq + Copy + Default, V: Default> Table<K, V> {
    /// The hash a lookup of `key` uses.
    #[inline]
    pub(crate) fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn home(&self, h: u64) -> usize {
        // `shift` is 64 only while the table is empty, where no lookup reaches this.
        (h >> self.shift) as usize
    }

    /// Loads the tag and key a lookup of hash `h` reads first, so that the lookup, a few keys
    /// later, finds them in cache. The loads are plain reads (no `unsafe` prefetch): the
    /// caller issues several before using any, and the CPU keeps their misses in flight
    /// together.
    #[inline]
    pub(crate) fn touch(&self, h: u64) -> Option<&(K, V)> {
        if self.len == 0 {
            return None;
        }
        let i = self.home(h);
        std::hint::black_box(self.tags[i]);
        let slot = &self.slots[i];
        std::hint::black_box(slot.0);
        Some(slot)
    }

    /// The value of `key` (whose hash is `h`), inserted with `new` if absent.
    pub(crate) fn entry_hashed(&mut self, h: u64, key: K, new: impl FnOnce() -> V) -> &mut V {
        if (self.len + 1) * 8 > self.tags.len() * 7 {
            self.grow();
        }
        let mask = self.tags.len() - 1;
        let t = tag(h);
        let mut i = self.home(h);
        loop {
            let s = self.tags[i];
            if s == 0 {
                self.tags[i] = t;
                self.slots[i] = (key, new());
                self.len += 1;
                return &mut self.slots[i].1;
            }
            if s == t && self.slots[i].0 == key {
                return &mut self.slots[i].1;
            }
            i = (i + 1) & mask;
        }
    }

    fn find(&self, key: &K) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let h = self.hash(key);
        let (mask, t) = (self.tags.len() - 1, tag(h));
        let mut i = self.home(h);
        loop {
            match self.tags[i] {
                0 => return None,
                s if s == t && self.slots[i].0 == *key => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.find(key).map(|i| &self.slots[i].1)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.find(key).map(|i| &mut self.slots[i].1)
    }

    #[cfg(test)]
    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Doubles the capacity (16 slots at first) and places every entry again.
    fn grow(&mut self) {
        let cap = (self.tags.len() * 2).max(16);
        let tags = std::mem::replace(&mut self.tags, vec![0; cap]);
        let mut slots = std::mem::take(&mut self.slots);
        self.slots.resize_with(cap, Default::default);
        self.shift = 64 - cap.trailing_zeros();
        let mask = cap - 1;
        for (t, slot) in tags.into_iter().zip(&mut slots) {
            if t != 0 {
                let mut i = self.home(self.hash(&slot.0));
                while self.tags[i] != 0 {
                    i = (i + 1) & mask;
                }
                self.tags[i] = t;
                self.slots[i] = std::mem::take(slot);
            }
        }
    }

    /// Keeps the entries `keep` returns true for, in place (no allocation): the others are
    /// emptied, then the survivors are placed again as `hashbrown`'s in-place rehash does.
    /// A survivor is pending (tag 1) until placed; it goes to the first slot from its home
    /// that holds no placed entry: its own, an empty one (it moves), or a pending one (they
    /// swap, and the one swapped in is placed next). Placed slots are never emptied again, so
    /// every placed entry's probe path stays unbroken.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        const PENDING: u8 = 1;
        for (t, slot) in self.tags.iter_mut().zip(&mut self.slots) {
            if *t == 0 {
                continue;
            }
            if keep(&slot.0, &mut slot.1) {
                *t = PENDING;
            } else {
                *t = 0;
                *slot = Default::default();
                self.len -= 1;
            }
        }
        let mask = self.tags.len().wrapping_sub(1);
        for i in 0..self.tags.len() {
            while self.tags[i] == PENDING {
                let h = self.hash(&self.slots[i].0);
                let mut j = self.home(h);
                while self.tags[j] & 0x80 != 0 {
                    j = (j + 1) & mask;
                }
                let was = self.tags[j];
                self.tags[j] = tag(h);
                if j == i {
                    break;
                }
                self.slots.swap(i, j);
                if was == 0 {
                    self.tags[i] = 0;
                }
            }
        }
    }

    /// Every entry, leaving the table empty.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (K, V)> + use<K, V> {
        std::mem::take(self).into_iter()
    }

    pub(crate) fn into_iter(self) -> impl Iterator<Item = (K, V)> {
        self.tags
            .into_iter()
            .zip(self.slots)
            .filter_map(|(t, slot)| (t != 0).then_some(slot))
    }

    pub(crate) fn into_values(self) -> impl Iterator<Item = V> {
        self.into_iter().map(|(_, v)| v)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.tags
            .iter()
            .zip(&self.slots)
            .filter_map(|(&t, (k, v))| (t != 0).then_some((k, v)))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.tags
            .iter()
            .zip(&mut self.slots)
            .filter_map(|(&t, (_, v))| (t != 0).then_some(v))
    }
}

/// What a table entry carries beside its counter.
pub(crate) trait Counted {
    /// The counter.
    fn count(&self) -> u64;
    /// Lowers the counter by `d` (at most the counter).
    fn decrement(&mut self, d: u64);
    /// Heap bytes held by the entry (its key text, its histogram).
    fn heap_bytes(&self) -> usize;
}

/// Room a table has: keys, and heap bytes of their payloads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    pub(crate) max_len: usize,
    pub(crate) max_heap: usize,
}

impl Room {
    /// The room `bytes` give to a table whose entries (key and value) take `entry` bytes inline:
    /// half for the hash table (which grows by doubling, so its length is kept at 7/8 of a
    /// power of two), half for the entries' heap payloads.
    pub(crate) fn for_bytes(bytes: usize, entry: usize) -> Room {
        let slots = (bytes / 2 / (entry + 1)).max(64);
        let buckets = 1usize << (usize::BITS - 1 - slots.leading_zeros());
        Room {
            max_len: (buckets / 8 * 7).max(16),
            max_heap: bytes / 2,
        }
    }
}

/// A counter table under a [`Room`]; see the module docs for its bound.
#[derive(Debug, Clone)]
pub(crate) struct Heavy<K, V> {
    pub(crate) map: Table<K, V>,
    room: Room,
    heap: usize,
    decremented: u64,
    prunes: u64,
    /// The counters a prune ranks, kept between prunes: past the budget a table prunes every
    /// few chunks, and a fresh vector of its length each time showed in profiles.
    scratch: Vec<u64>,
}

impl<K: Hash + Eq + Copy + Default, V: Counted + Default> Heavy<K, V> {
    pub(crate) fn new(room: Room) -> Self {
        Heavy {
            map: Table::default(),
            room,
            heap: 0,
            decremented: 0,
            prunes: 0,
            scratch: Vec::new(),
        }
    }

    /// The entry of `key`, created with `new` if absent. Call [`Heavy::settle`] after a batch
    /// of updates.
    pub(crate) fn entry(&mut self, key: K, new: impl FnOnce() -> V) -> &mut V {
        self.map.entry_hashed(self.map.hash(&key), key, new)
    }

    /// [`Table::touch`] of the slot of hash `h`, and also of the value's fields an update
    /// reads (an entry can straddle two cache lines).
    #[inline]
    pub(crate) fn touch(&self, h: u64) {
        if let Some((_, v)) = self.map.touch(h) {
            std::hint::black_box(v.count());
            std::hint::black_box(v.heap_bytes());
        }
    }

    /// [`Heavy::entry`] with the key's [`Table::hash`] computed already (for [`Table::touch`]).
    pub(crate) fn entry_hashed(&mut self, h: u64, key: K, new: impl FnOnce() -> V) -> &mut V {
        self.map.entry_hashed(h, key, new)
    }

    /// Adds heap bytes an entry has taken (or gives them back when negative).
    pub(crate) fn add_heap(&mut self, bytes: isize) {
        self.heap = self.heap.saturating_add_signed(bytes);
    }

    /// Prunes until the table fits its room.
    pub(crate) fn settle(&mut self) {
        while self.map.len() > self.room.max_len
            || (self.heap > self.room.max_heap && !self.map.is_empty())
        {
            self.prune();
        }
    }

    /// One batched decrement: keeps at most half of `max_len` counters.
    fn prune(&mut self) {
        let keep = (self.room.max_len / 2).min(self.map.len().saturating_sub(1));
        let counts = &mut self.scratch;
        counts.clear();
        counts.extend(self.map.values().map(Counted::count));
        // The (keep+1)-th largest count: at least keep+1 counters are >= d.
        let (_, &mut d, _) = counts.select_nth_unstable_by(keep, |a, b| b.cmp(a));
        let mut heap = 0;
        self.map.retain(|_, v| {
            if v.count() <= d {
                return false;
            }
            v.decrement(d);
            heap += v.heap_bytes();
            true
        });
        self.heap = heap;
        self.decremented += d;
        self.prunes += 1;
    }

    /// How many times the table was pruned (entries were dropped).
    pub(crate) fn prunes(&self) -> u64 {
        self.prunes
    }

    /// The largest over-count of a reported count (0: every count is exact).
    pub(crate) fn max_overcount(&self) -> u64 {
        self.decremented
    }

    /// Whether no key has been dropped (the table holds every key counted).
    pub(crate) fn exact(&self) -> bool {
        self.decremented == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct C(u64);

    impl Counted for C {
        fn count(&self) -> u64 {
            self.0
        }
        fn decrement(&mut self, d: u64) {
            self.0 -= d;
        }
        fn heap_bytes(&self) -> usize {
            0
        }
    }

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Zipf-like keys: squares of uniforms favour small keys; with a long tail of unique ones.
    fn stream(seed: u64, n: usize, tail: bool) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|i| {
                let u = (xorshift(&mut x) >> 11) as f64 / (1u64 << 53) as f64;
                if tail && i.is_multiple_of(2) {
                    1_000_000 + i as u64
                } else {
                    (u * u * u * 5_000.0) as u64
                }
            })
            .collect()
    }

    #[test]
    fn every_count_is_within_the_reported_bound_of_the_exact_count() {
        for seed in 1..=12u64 {
            let tail = seed.is_multiple_of(2);
            let keys = stream(seed, 40_000, tail);
            let room = Room {
                max_len: 64 + (seed as usize % 5) * 50,
                max_heap: usize::MAX,
            };
            let mut h: Heavy<u64, C> = Heavy::new(room);
            let mut exact: HashMap<u64, u64> = HashMap::new();
            // Merged in batches of per-chunk counts, as the analyzer does.
            for chunk in keys.chunks(1 + (seed as usize * 997) % 3000) {
                let mut part: HashMap<u64, u64> = HashMap::new();
                for &k in chunk {
                    *part.entry(k).or_default() += 1;
                    *exact.entry(k).or_default() += 1;
                }
                for (k, w) in part {
                    h.entry(k, || C(0)).0 += w;
                }
                h.settle();
                assert!(h.len() <= room.max_len);
            }
            let d = h.max_overcount();
            let n = keys.len() as u64;
            assert!(
                d <= n / (room.max_len as u64 / 2 + 1),
                "seed {seed}: bound {d} above N/(k+1)"
            );
            for (k, &f) in &exact {
                let c = h.map.get(k).map_or(0, |c| c.0);
                assert!(
                    c <= f && f <= c + d,
                    "seed {seed} key {k}: c {c} f {f} d {d}"
                );
            }
            // Any key more frequent than the bound is still in the table.
            for (k, &f) in &exact {
                if f > d {
                    assert!(h.map.contains_key(k), "seed {seed}: heavy key {k} lost");
                }
            }
        }
    }

    #[test]
    fn exact_until_the_room_is_full() {
        let mut h: Heavy<u64, C> = Heavy::new(Room {
            max_len: 100,
            max_heap: usize::MAX,
        });
        for k in 0..100 {
            h.entry(k, || C(0)).0 += k + 1;
        }
        h.settle();
        assert!(h.exact() && h.len() == 100);
        h.entry(1000, || C(0)).0 += 1;
        h.settle();
        assert!(!h.exact() && h.len() <= 50);
    }

    #[test]
    fn room_keeps_the_table_below_its_next_growth() {
        let r = Room::for_bytes(1 << 20, 47);
        // 512 KiB / 48 bytes = 10,922 slots -> 8,192 buckets, 7,168 keys.
        assert_eq!((r.max_len, r.max_heap), (7_168, 512 << 10));
    }

    /// The table holds what a `HashMap` holds through inserts, updates and the prunes'
    /// in-place `retain` (the step that moves survivors back along their probe paths), with
    /// keys clustered so that probe chains are long and wrap around the end of the table.
    #[test]
    fn table_matches_a_hash_map_through_inserts_and_retains() {
        for seed in 1..=20u64 {
            let mut x = seed * 0x9e37_79b9;
            let mut t: Table<u64, C> = Table::default();
            let mut m: HashMap<u64, u64> = HashMap::new();
            for round in 0..40 {
                for _ in 0..1 + xorshift(&mut x) % 300 {
                    let k = xorshift(&mut x) % (50 + seed * 40);
                    let h = t.hash(&k);
                    t.touch(h);
                    t.entry_hashed(h, k, || C(0)).0 += 1;
                    *m.entry(k).or_default() += 1;
                }
                let cut = round % 4;
                t.retain(|_, v| v.0 > cut);
                m.retain(|_, v| *v > cut);
                assert_eq!(t.len(), m.len(), "seed {seed} round {round}");
                for (k, v) in &m {
                    assert_eq!(t.get(k).map(|c| c.0), Some(*v), "seed {seed} key {k}");
                }
                assert_eq!(t.iter().count(), m.len());
                assert!(!t.contains_key(&u64::MAX));
            }
            let mut all: Vec<(u64, u64)> = t.drain().map(|(k, v)| (k, v.0)).collect();
            let mut want: Vec<(u64, u64)> = m.into_iter().collect();
            all.sort_unstable();
            want.sort_unstable();
            assert_eq!(all, want);
            assert!(t.is_empty());
        }
    }
}
