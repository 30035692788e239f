//! The pool's clock: nanoseconds since the pool was built, read once per submit (the job's
//! stamp, for aging and queue wait) and once per job by its worker (its end, which is also the
//! next job's start).
//!
//! # Why not `Instant::now`
//!
//! Those two reads are the whole cost of the pool's latency statistics, and `perf` of the
//! 1M-job bench put `clock_gettime` and the `Instant` arithmetic around it (`Timespec`
//! subtraction, `u128` nanoseconds) at about a sixth of the pool's CPU time. quanta reads the
//! CPU's time-stamp counter (13 ns here, against 26 ns for `clock_gettime`) and scales a
//! difference with one multiply and shift; where the counter is not usable (no invariant
//! TSC), quanta itself falls back to the OS clock.
//!
//! # Paused tokio clock
//!
//! A pool built while tokio's clock is paused (tests with `start_paused`) reads tokio's clock
//! instead, so that advancing it drives aging and the latencies as it drives timeouts.

use std::time::Duration;

/// See the module docs.
pub(crate) enum Clock {
    Counter { clock: quanta::Clock, origin: u64 },
    Tokio { origin: tokio::time::Instant },
}

impl Clock {
    pub(crate) fn new() -> Self {
        if tokio_clock_paused() {
            Clock::Tokio {
                origin: tokio::time::Instant::now(),
            }
        } else {
            let clock = quanta::Clock::new();
            let origin = clock.raw();
            Clock::Counter { clock, origin }
        }
    }

    /// Nanoseconds since the pool was built.
    #[inline]
    pub(crate) fn now_ns(&self) -> i64 {
        match self {
            Clock::Counter { clock, origin } => {
                i64::try_from(clock.delta_as_nanos(*origin, clock.raw())).unwrap_or(i64::MAX)
            }
            Clock::Tokio { origin } => i64::try_from(
                tokio::time::Instant::now()
                    .saturating_duration_since(*origin)
                    .as_nanos(),
            )
            .unwrap_or(i64::MAX),
        }
    }
}

/// Whether tokio's clock is paused here: paused, it stands still while real time passes.
fn tokio_clock_paused() -> bool {
    let before = tokio::time::Instant::now();
    let real = std::time::Instant::now();
    while real.elapsed() < Duration::from_micros(2) {
        std::hint::spin_loop();
    }
    tokio::time::Instant::now() == before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_clock_advances_with_real_time() {
        let c = Clock::new();
        assert!(matches!(c, Clock::Counter { .. }));
        let a = c.now_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = c.now_ns();
        assert!(b - a >= 1_000_000, "{a} -> {b}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pool_built_under_a_paused_clock_follows_tokio_time() {
        let c = Clock::new();
        assert!(matches!(c, Clock::Tokio { .. }));
        let a = c.now_ns();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(c.now_ns() - a, 3_000_000_000);
    }
}
