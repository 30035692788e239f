//! Metrics: a [`Stats`] snapshot summed from per-worker counters and histograms.
//!
//! Each worker owns its counters and histograms and is their only writer, so it updates them
//! with a plain load and store (no locked read-modify-write on the hot path); readers sum them.
//! Outcomes decided outside a worker (a queued job cancelled by its handle, a submit rejected)
//! go to shared counters with `fetch_add`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Outcome;

/// A snapshot of a pool's state and counters, from [`Pool::stats`](crate::Pool::stats).
///
/// Taken without stopping the pool: while jobs move, its parts are read at slightly different
/// moments. When the pool is idle (or shut down) the counters add up exactly:
/// `submitted == finished() + in_flight()`.
///
/// ```
/// use weft_pool::{Outcome, Pool};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder()
///     .workers(2)
///     .build_fn(|_ctx, n: u32| async move { if n % 2 == 0 { Ok(n) } else { Err("odd") } });
/// for n in 0..10 {
///     let _ = pool.submit(n).await.unwrap().await;
/// }
/// let stats = pool.stats();
/// assert_eq!(stats.submitted, 10);
/// assert_eq!(stats.count(Outcome::Completed), 5);
/// assert_eq!(stats.count(Outcome::Failed), 5);
/// assert_eq!(stats.submitted, stats.finished() + stats.in_flight());
/// assert_eq!(stats.run_time.count, 10);
/// # }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Workers alive.
    pub workers: usize,
    /// Workers running a job right now.
    pub busy: usize,
    /// Jobs waiting in the queue, per priority level (index = level).
    pub queued: Vec<usize>,
    /// Jobs a worker has taken from the queue in a batch but not started yet.
    pub claimed: usize,
    /// Jobs submitted, including those rejected or blacklisted at submission (but not those
    /// [`try_submit`](crate::Pool::try_submit) handed back as full).
    pub submitted: u64,
    /// Jobs finished, per [`Outcome`] (index = `Outcome as usize`; see [`Stats::count`]).
    pub outcomes: [u64; 7],
    /// Times a worker's handler was replaced by a fresh clone (after a panic under
    /// [`PanicPolicy::ReplaceWorker`](crate::PanicPolicy::ReplaceWorker), or when its
    /// `poll_ready` failed or panicked).
    pub restarts: u64,
    /// Time from submission to start, over the jobs that started. A worker reads the clock
    /// once per run of jobs that finish at their first poll (see `run_time`), so a job's start
    /// is the end of the last job that waited, or of its batch's run before it: short by at
    /// most a batch's work (a batch is sized to about 25 us of it).
    pub queue_wait: Latency,
    /// The same per priority level (index = level): what aging buys low levels.
    pub queue_wait_by_priority: Vec<Latency>,
    /// Time from start to end, over the jobs that started. A job that waits (its future
    /// returns `Pending`) is timed alone; jobs that finish at their first poll, claimed in one
    /// batch, are recorded together with their mean, at the end of the batch or before the
    /// next job that waits. Under tokio's paused clock, every figure is exact.
    pub run_time: Latency,
}

impl Stats {
    /// How many jobs ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome.index()]
    }

    /// Jobs that ended, in any outcome.
    pub fn finished(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    /// Jobs submitted that have not ended: queued, claimed or running.
    pub fn in_flight(&self) -> u64 {
        (self.queued.iter().sum::<usize>() + self.claimed + self.busy) as u64
    }
}

/// A latency distribution: count and percentiles.
///
/// Percentiles come from a log-linear histogram with 8 buckets per power of two and are the
/// upper bound of their bucket, so they overstate by at most 12.5%.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Upper bound of the largest sample's bucket.
    pub max: Duration,
}

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
const LINEAR: usize = 2 * SUB; // values below this get a bucket each
const BUCKETS: usize = LINEAR + (64 - (SUB_BITS as usize + 1)) * SUB;

fn bucket_of(ns: u64) -> usize {
    if ns < LINEAR as u64 {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros(); // >= SUB_BITS + 1
    let sub = ((ns >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    LINEAR + (exp - SUB_BITS - 1) as usize * SUB + sub
}

fn bucket_upper(b: usize) -> u64 {
    if b < LINEAR {
        return b as u64;
    }
    let exp = (b - LINEAR) / SUB + SUB_BITS as usize + 1;
    let sub = ((b - LINEAR) % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS as usize);
    // Lower bound is (SUB + sub) * width; the bucket holds width values.
    ((SUB as u64 + sub) * width).saturating_add(width - 1)
}

/// A fixed log-linear histogram of nanoseconds, written by one thread.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records one sample of `ns` nanoseconds (a negative one counts as zero). Only the owning
    /// worker calls this: a load and a store, not a locked add. Relaxed: readers only need each
    /// bucket's value to be a value it had.
    pub(crate) fn record_ns_single_writer(&self, ns: i64) {
        self.record_u64_single_writer(u64::try_from(ns).unwrap_or(0));
    }

    fn record_u64_single_writer(&self, ns: u64) {
        self.record_many_single_writer(ns, 1);
    }

    /// Records `n` samples of `ns` nanoseconds each (the owning worker only, as above).
    pub(crate) fn record_many_single_writer(&self, ns: u64, n: u64) {
        let b = &self.buckets[bucket_of(ns)];
        b.store(b.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Adds `other` into `self` (any thread; used when a worker retires).
    pub(crate) fn absorb(&self, other: &Histogram) {
        for (a, b) in self.buckets.iter().zip(other.buckets.iter()) {
            let v = b.load(Ordering::Relaxed);
            if v != 0 {
                a.fetch_add(v, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn add_to(&self, acc: &mut [u64]) {
        for (a, b) in acc.iter_mut().zip(self.buckets.iter()) {
            *a += b.load(Ordering::Relaxed);
        }
    }

    pub(crate) fn zeroed_acc() -> Vec<u64> {
        vec![0; BUCKETS]
    }

    pub(crate) fn latency(acc: &[u64]) -> Latency {
        let count: u64 = acc.iter().sum();
        if count == 0 {
            return Latency::default();
        }
        let at = |q: f64| {
            // The rank of the q-quantile, 1-based, at least 1.
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (b, &n) in acc.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Duration::from_nanos(bucket_upper(b));
                }
            }
            Duration::from_nanos(u64::MAX)
        };
        Latency {
            count,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// One worker's counters (or the shared ones, or the sum of retired workers').
pub(crate) struct Counters {
    outcomes: [AtomicU64; 7],
    restarts: AtomicU64,
    /// Per priority level; the overall distribution is their sum.
    pub(crate) queue_wait: Box<[Histogram]>,
    pub(crate) run_time: Histogram,
}

impl Counters {
    pub(crate) fn new(levels: usize) -> Self {
        Counters {
            outcomes: Default::default(),
            restarts: AtomicU64::new(0),
            queue_wait: (0..levels).map(|_| Histogram::new()).collect(),
            run_time: Histogram::new(),
        }
    }

    /// Single-writer increment (the owning worker only).
    pub(crate) fn bump_single_writer(&self, outcome: Outcome) {
        let c = &self.outcomes[outcome.index()];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Increment from any thread.
    pub(crate) fn bump_shared(&self, outcome: Outcome, n: u64) {
        self.outcomes[outcome.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn restart_single_writer(&self) {
        self.restarts
            .store(self.restarts.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    pub(crate) fn absorb(&self, other: &Counters) {
        for (a, b) in self.outcomes.iter().zip(other.outcomes.iter()) {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.restarts
            .fetch_add(other.restarts.load(Ordering::Relaxed), Ordering::Relaxed);
        for (a, b) in self.queue_wait.iter().zip(other.queue_wait.iter()) {
            a.absorb(b);
        }
        self.run_time.absorb(&other.run_time);
    }

    pub(crate) fn add_to(&self, acc: &mut Acc) {
        for (a, b) in acc.outcomes.iter_mut().zip(self.outcomes.iter()) {
            *a += b.load(Ordering::Relaxed);
        }
        acc.restarts += self.restarts.load(Ordering::Relaxed);
        for (h, acc) in self.queue_wait.iter().zip(acc.queue_wait.iter_mut()) {
            h.add_to(acc);
        }
        self.run_time.add_to(&mut acc.run_time);
    }
}

/// Sums while taking a snapshot.
pub(crate) struct Acc {
    pub(crate) outcomes: [u64; 7],
    pub(crate) restarts: u64,
    pub(crate) queue_wait: Vec<Vec<u64>>,
    pub(crate) run_time: Vec<u64>,
}

impl Acc {
    pub(crate) fn new(levels: usize) -> Self {
        Acc {
            outcomes: [0; 7],
            restarts: 0,
            queue_wait: (0..levels).map(|_| Histogram::zeroed_acc()).collect(),
            run_time: Histogram::zeroed_acc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_bound_their_values() {
        let mut last = 0;
        for ns in (0..5000u64).chain([1 << 20, 123_456_789, u64::MAX / 3, u64::MAX]) {
            let b = bucket_of(ns);
            assert!(b < BUCKETS);
            assert!(b >= last || ns > 5000, "bucket index must not decrease");
            last = b;
            assert!(
                bucket_upper(b) >= ns,
                "upper bound {} < {ns}",
                bucket_upper(b)
            );
            // Within 12.5% (plus one for the small linear range).
            assert!(bucket_upper(b) as f64 <= ns as f64 * 1.125 + 1.0);
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let h = Histogram::new();
        for i in 1..=100u64 {
            h.record_ns_single_writer(i64::try_from(i * 1000).unwrap());
        }
        let mut acc = Histogram::zeroed_acc();
        h.add_to(&mut acc);
        let l = Histogram::latency(&acc);
        assert_eq!(l.count, 100);
        let within = |d: Duration, us: u64| {
            let ns = d.as_nanos() as f64;
            ns >= (us * 1000) as f64 && ns <= (us * 1000) as f64 * 1.125
        };
        assert!(within(l.p50, 50), "{:?}", l.p50);
        assert!(within(l.p90, 90), "{:?}", l.p90);
        assert!(within(l.p99, 99), "{:?}", l.p99);
        assert!(within(l.max, 100), "{:?}", l.max);
    }
}
