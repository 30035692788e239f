//! Log-linear latency histograms with a fixed number of buckets: memory depends on neither the
//! number of values nor their size.
//!
//! Values below `2^(s+1)` get a bucket each (exact). Above, every power of two `[2^e, 2^(e+1))`
//! is split into `2^s` buckets of width `2^(e-s)`, so a bucket is at most `2^-s` of its lower
//! bound wide. A percentile is reported as the middle of its bucket, clamped to the observed
//! min and max, so it is within `2^-(s+1)` relative error of the exact nearest-rank value
//! (0.05% for `s = 10`, 3.1% for `s = 4`). Values go up to [`MAX_LATENCY_US`] (the parsers
//! treat a larger one as malformed), so the bucket count is fixed by `s`: [`Histogram`] holds
//! all of them (31,745 for the overall latency), a [`PathHistogram`] at most 593, only over the
//! range its path's values span.

/// The largest latency accepted, in microseconds (2^40 µs, about 12.7 days).
pub(crate) const MAX_LATENCY_US: u64 = 1 << 40;

/// Bucket index of `v` with `s` sub-bucket bits.
fn index(s: u32, v: u64) -> usize {
    if v < 1 << (s + 1) {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let mantissa = v >> (e - s); // in [2^s, 2^(s+1))
    (((e - s + 1) as usize) << s) + (mantissa as usize - (1 << s))
}

/// The inclusive value range of bucket `i` with `s` sub-bucket bits.
fn bounds(s: u32, i: usize) -> (u64, u64) {
    if i < 1 << (s + 1) {
        return (i as u64, i as u64);
    }
    let k = (i >> s) as u32; // e - s + 1
    let e = k + s - 1;
    let mantissa = (1u64 << s) + (i as u64 & ((1 << s) - 1));
    let lo = mantissa << (e - s);
    (lo, lo + (1u64 << (e - s)) - 1)
}

/// Sub-bucket bits of the per-path histograms: at most 3.1% relative error.
pub(crate) const PATH_SUB_BITS: u32 = 4;

/// The bucket of a latency in a [`PathHistogram`] (values above the maximum share the last).
pub(crate) fn path_bucket(us: u64) -> u16 {
    index(PATH_SUB_BITS, us.min(MAX_LATENCY_US)) as u16
}

/// A compact per-path latency histogram: `u32` counts over the buckets from the path's fastest
/// to its slowest value only (at most 593 buckets, 2.3 KiB). While every value of the path fell
/// in one bucket (the long tail of paths seen once or twice), it holds that bucket inline and
/// allocates nothing: the totals create and drop such paths at the rate of the input's lines.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathHistogram {
    lo: u16,
    /// The count of bucket `lo` while `counts` is empty.
    one: u32,
    counts: Vec<u32>,
}

impl PathHistogram {
    /// Counts one value, given as its [`path_bucket`].
    pub(crate) fn add(&mut self, b: u16) {
        if self.counts.is_empty() {
            if self.one == 0 || b == self.lo {
                self.lo = b;
                self.one = self.one.saturating_add(1);
                return;
            }
            // A second bucket: spread out to a vector over both, allocated once.
            let (lo, hi) = (self.lo.min(b), self.lo.max(b));
            let mut counts = vec![0; usize::from(hi - lo) + 1];
            counts[usize::from(self.lo - lo)] = self.one;
            self.counts = counts;
            self.lo = lo;
            self.one = 0;
        }
        if b < self.lo {
            let grow = usize::from(self.lo - b);
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.lo = b;
        }
        let i = usize::from(b - self.lo);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] = self.counts[i].saturating_add(1);
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.counts.capacity() * 4
    }

    /// The counts from bucket `lo` on.
    fn counts(&self) -> &[u32] {
        if self.counts.is_empty() {
            std::slice::from_ref(&self.one)
        } else {
            &self.counts
        }
    }

    /// The nearest-rank `q`-quantile in microseconds, as the middle of its bucket (within
    /// 3.1% of the exact value).
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let counts = self.counts();
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &c) in counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                let (lo, hi) = bounds(PATH_SUB_BITS, usize::from(self.lo) + i);
                return Some((lo as f64 + hi as f64) / 2.0);
            }
        }
        None
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    sub_bits: u32,
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
}

impl Histogram {
    pub(crate) fn new(sub_bits: u32) -> Self {
        Histogram {
            sub_bits,
            // Zeroed pages cost no memory until a bucket in them is counted.
            counts: vec![0; index(sub_bits, MAX_LATENCY_US) + 1],
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    fn index(&self, v: u64) -> usize {
        index(self.sub_bits, v)
    }

    fn bounds(&self, i: usize) -> (u64, u64) {
        bounds(self.sub_bits, i)
    }

    /// Counts `v`; a value above [`MAX_LATENCY_US`] counts in the last bucket (the parsers
    /// reject them, so this is only a guard).
    pub(crate) fn record(&mut self, v: u64) {
        let v = v.min(MAX_LATENCY_US);
        let i = self.index(v);
        self.counts[i] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds `other`'s counts to `self` and empties `other`, keeping its allocation so it can
    /// count again. Only the buckets between `other`'s smallest and largest value can be
    /// non-zero, so only those are visited.
    pub(crate) fn absorb(&mut self, other: &mut Histogram) {
        debug_assert_eq!(self.sub_bits, other.sub_bits);
        if other.total == 0 {
            return;
        }
        let (lo, hi) = (other.index(other.min), other.index(other.max));
        for (a, b) in self.counts[lo..=hi]
            .iter_mut()
            .zip(&mut other.counts[lo..=hi])
        {
            *a += std::mem::take(b);
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        other.total = 0;
        other.min = u64::MAX;
        other.max = 0;
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The smallest and largest recorded values (exact).
    pub(crate) fn min_max(&self) -> Option<(u64, u64)> {
        (self.total > 0).then_some((self.min, self.max))
    }

    /// The nearest-rank `q`-quantile (`0 < q <= 1`): the smallest recorded value with at least
    /// `ceil(q * total)` values at or below it, to within the documented accuracy.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = self.bounds(i);
                let mid = (lo as f64 + hi as f64) / 2.0;
                return Some(mid.clamp(self.min as f64, self.max as f64));
            }
        }
        Some(self.max as f64)
    }

    /// Non-empty buckets as `(lo, hi, count)`, in order.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, &c)| {
                let (lo, hi) = self.bounds(i);
                (lo, hi, c)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        let h = Histogram::new(3);
        let mut next = 0;
        for i in 0..200 {
            let (lo, hi) = h.bounds(i);
            assert_eq!(lo, next, "bucket {i}");
            assert!(hi >= lo);
            assert_eq!(h.index(lo), i);
            assert_eq!(h.index(hi), i);
            next = hi + 1;
        }
        assert!(h.index(u64::MAX) > 0);
    }

    #[test]
    fn sizes_are_fixed_whatever_the_values() {
        let mut h = Histogram::new(10);
        let before = h.counts.len();
        h.record(u64::MAX);
        h.record(0);
        assert_eq!(h.counts.len(), before, "no growth with huge values");
        assert_eq!(before, 31_745);
        let mut p = PathHistogram::default();
        p.add(path_bucket(u64::MAX));
        p.add(path_bucket(0));
        assert_eq!(
            p.counts.len(),
            593,
            "a path's histogram spans at most 593 buckets"
        );
        let mut one = PathHistogram::default();
        one.add(path_bucket(12_345));
        one.add(path_bucket(12_346));
        assert_eq!(one.heap_bytes(), 0, "one bucket is held inline");
        assert_eq!(
            one.quantile(1.0),
            Some(12_543.5),
            "the middle of 12,288..=12,799"
        );
        one.add(path_bucket(1));
        assert!(one.heap_bytes() > 0);
        assert_eq!(one.quantile(0.1), Some(1.0));
    }

    #[test]
    fn path_quantiles_are_within_3_percent() {
        let mut p = PathHistogram::default();
        let mut values: Vec<u64> = (1..=10_000u64).map(|i| i * i % 99_991 + 1).collect();
        for &v in &values {
            p.add(path_bucket(v));
        }
        values.sort_unstable();
        for q in [0.5, 0.95, 0.99] {
            let want = exact(&values, q) as f64;
            let got = p.quantile(q).expect("values were added");
            assert!(
                (got - want).abs() <= want / 32.0 + 0.5,
                "q={q}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn quantiles_match_exact_within_documented_error() {
        for sub_bits in [7, 10] {
            // A deterministic heavy-tailed sample (xorshift), spanning microseconds to minutes.
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut values = Vec::new();
            let mut h = Histogram::new(sub_bits);
            for _ in 0..50_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = (x % 1000) * (1 << (x >> 60)) + (x >> 40) % 7;
                values.push(v);
                h.record(v);
            }
            values.sort_unstable();
            let tolerance = 1.0 / f64::from(1u32 << (sub_bits + 1));
            for q in [0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                let want = exact(&values, q) as f64;
                let got = h.quantile(q).unwrap();
                assert!(
                    (got - want).abs() <= want * tolerance + 0.5,
                    "s={sub_bits} q={q}: got {got}, exact {want}"
                );
            }
        }
    }

    #[test]
    fn small_values_are_exact_and_absorb_moves_the_counts() {
        let mut a = Histogram::new(7);
        let mut b = Histogram::new(7);
        for v in 1..=100 {
            if v % 2 == 0 { a.record(v) } else { b.record(v) }
        }
        a.absorb(&mut b);
        assert_eq!(a.total(), 100);
        assert_eq!(
            (b.total(), b.min_max(), b.buckets().count()),
            (0, None, 0),
            "b is emptied"
        );
        assert_eq!(a.quantile(0.5), Some(50.0));
        assert_eq!(a.quantile(0.99), Some(99.0));
        assert_eq!(a.quantile(1.0), Some(100.0));
        assert_eq!(Histogram::new(7).quantile(0.5), None);
        assert_eq!(a.buckets().map(|b| b.2).sum::<u64>(), 100);
        // An emptied histogram counts again from scratch, and absorbing it again adds only that.
        b.record(1_000_000);
        a.absorb(&mut b);
        assert_eq!((a.total(), a.min_max()), (101, Some((1, 1_000_000))));
        assert_eq!(a.quantile(1.0), Some(1_000_000.0));
    }
}
