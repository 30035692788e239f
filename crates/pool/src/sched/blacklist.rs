//! [`BlacklistState`]: the panic counts per job key and which keys are blacklisted (see
//! [`Blacklist`]). Submits check it before a job is queued, workers before a job starts; a
//! worker feeds it when a job panics.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

use crate::config::Blacklist;
use crate::lock;

pub(crate) struct BlacklistState {
    cfg: Blacklist,
    keys: Mutex<HashMap<String, KeyState>>,
}

#[derive(Default)]
struct KeyState {
    panics: u32,
    /// `Some(None)`: blacklisted for good; `Some(Some(t))`: until `t`.
    until: Option<Option<Instant>>,
}

impl BlacklistState {
    pub(crate) fn new(cfg: Blacklist) -> Self {
        BlacklistState {
            cfg,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` is blacklisted now; an expired cooldown clears the key (half-open: its
    /// count restarts from zero).
    pub(crate) fn is_blacklisted(&self, key: &str) -> bool {
        let mut keys = lock(&self.keys);
        let Some(st) = keys.get(key) else {
            return false;
        };
        match st.until {
            None => false,
            Some(None) => true,
            Some(Some(t)) if Instant::now() < t => true,
            Some(Some(_)) => {
                keys.remove(key);
                false
            }
        }
    }

    pub(crate) fn record_panic(&self, key: &str) {
        let mut keys = lock(&self.keys);
        let st = keys.entry(key.to_owned()).or_default();
        st.panics += 1;
        if st.panics >= self.cfg.after.get() && st.until.is_none() {
            st.until = Some(self.cfg.cooldown.map(|d| Instant::now() + d));
            tracing::warn!(key, panics = st.panics, "job key blacklisted");
        }
    }

    pub(crate) fn clear(&self, key: &str) -> bool {
        lock(&self.keys).remove(key).is_some()
    }
}
