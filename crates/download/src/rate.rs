//! `--limit-rate`: token buckets on tokio's clock, one for all transfers and one per host.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket of bytes: `rate` bytes a second, holding at most a tenth of a second's worth.
///
/// A caller takes the bytes it has just received and sleeps for the debt it ran into, so a
/// transfer runs at the rate on average while the socket reads stay as large as they come.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    /// Tokens left (negative: owed) and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub(crate) fn new(rate: NonZeroU64) -> Self {
        let rate = rate.get() as f64;
        let burst = rate / 10.0;
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes `n` bytes; gives how long to wait before taking more.
    pub(crate) fn take(&self, n: u64) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, at) = *state;
        let refilled = (tokens + now.duration_since(at).as_secs_f64() * self.rate).min(self.burst);
        let left = refilled - n as f64;
        *state = (left, now);
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.rate)
        }
    }
}

/// One bucket per host, made when the host is first seen.
type HostBuckets = Mutex<HashMap<String, Arc<Bucket>>>;

/// The buckets of one batch: all transfers together, and each host (`host:port`).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    global: Option<Arc<Bucket>>,
    per_host: Option<(NonZeroU64, HostBuckets)>,
}

impl Limits {
    pub(crate) fn new(global: Option<NonZeroU64>, per_host: Option<NonZeroU64>) -> Self {
        Self {
            global: global.map(|r| Arc::new(Bucket::new(r))),
            per_host: per_host.map(|r| (r, Mutex::default())),
        }
    }

    /// The limiter for one download from `host`.
    pub(crate) fn for_host(&self, host: &str) -> Limiter {
        let host = self.per_host.as_ref().map(|(rate, map)| {
            map.lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(Bucket::new(*rate)))
                .clone()
        });
        Limiter {
            global: self.global.clone(),
            host,
        }
    }
}

/// The buckets one download draws from (none when no limit is set).
#[derive(Debug, Clone, Default)]
pub(crate) struct Limiter {
    global: Option<Arc<Bucket>>,
    host: Option<Arc<Bucket>>,
}

impl Limiter {
    /// Accounts for `n` bytes received and waits out the debt, if any.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the bytes are accounted for at once; only the wait is cut short.
    pub(crate) async fn consume(&self, n: u64) {
        let wait = [&self.global, &self.host]
            .into_iter()
            .flatten()
            .map(|b| b.take(n))
            .max()
            .unwrap_or(Duration::ZERO);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_paces_to_its_rate_after_the_burst() {
        let bucket = Bucket::new(NonZeroU64::new(1000).unwrap_or(NonZeroU64::MIN));
        // The burst (100 bytes) goes through at once; the next 1000 bytes cost a second.
        assert_eq!(bucket.take(100), Duration::ZERO);
        assert_eq!(bucket.take(1000), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        // The debt is paid off: nothing more is owed, and the bucket refills from zero.
        assert_eq!(bucket.take(0), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(10)).await;
        // It never holds more than the burst, however long it was idle.
        assert_eq!(bucket.take(200), Duration::from_millis(100));
    }
}
