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
use std::hash::Hash;

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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
    pub(crate) map: FastMap<K, V>,
    room: Room,
    heap: usize,
    decremented: u64,
    prunes: u64,
    /// The counters a prune ranks, kept between prunes: past the budget a table prunes every
    /// few chunks, and a fresh vector of its length each time showed in profiles.
    scratch: Vec<u64>,
}

impl<K: Hash + Eq, V: Counted> Heavy<K, V> {
    pub(crate) fn new(room: Room) -> Self {
        Heavy {
            map: FastMap::default(),
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
        self.map.entry(key).or_insert_with(new)
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

    #[derive(Debug)]
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
}
