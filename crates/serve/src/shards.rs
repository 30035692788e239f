//! A map keyed by job id, split into shards that each have their own lock and grow alone.
//!
//! One `HashMap` holding every queued job rehashes all of them at once when it grows, under
//! its lock, while requests wait (hundreds of thousands of jobs: tens of milliseconds). With
//! [`SHARDS`] shards a growth moves a sixty-fourth of the entries, and requests for other
//! shards do not wait for it at all.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard};

use foldhash::fast::RandomState;

/// How many shards: a power of two, well above the number of cores that contend.
pub(crate) const SHARDS: usize = 64;

/// A map split into [`SHARDS`] independently locked maps. Keys go to a shard by a hash with
/// its own random seed, so the shard's own table still sees well-spread hashes.
#[derive(Debug)]
pub(crate) struct Sharded<K, V> {
    shards: Box<[Mutex<HashMap<K, V, RandomState>>]>,
    pick: RandomState,
}

impl<K: Hash + Eq, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            pick: RandomState::default(),
        }
    }
}

impl<K: Hash + Eq + Borrow<str>, V> Sharded<K, V> {
    /// The locked shard that holds (or would hold) `key`.
    pub(crate) fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<K, V, RandomState>> {
        let i = (self.pick.hash_one(key) as usize) & (SHARDS - 1);
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every shard in turn, locked one at a time.
    pub(crate) fn each(&self) -> impl Iterator<Item = MutexGuard<'_, HashMap<K, V, RandomState>>> {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_found_in_the_shard_it_was_put_in() {
        let map: Sharded<String, u32> = Sharded::default();
        for i in 0..1000u32 {
            map.shard(&i.to_string()).insert(i.to_string(), i);
        }
        for i in 0..1000u32 {
            assert_eq!(
                map.shard(&i.to_string()).get(i.to_string().as_str()),
                Some(&i)
            );
        }
        let total: usize = map.each().map(|s| s.len()).sum();
        assert_eq!(total, 1000);
        // Spread over many shards, not piled into one.
        assert!(map.each().filter(|s| !s.is_empty()).count() > SHARDS / 2);
    }
}
