//! A rate limiter for throttling senders (or any loop), on tokio's clock.
//!
//! [`RateLimiter`] is [governor](https://docs.rs/governor)'s GCRA limiter (the field's
//! standard, lock-free) driven by tokio's clock instead of its own timer thread, so waiting
//! is a tokio sleep and a paused test clock applies. It replaces Go's throttling pattern
//! `throttle := time.NewTicker(time.Second / n); <-throttle.C` with one that allows bursts and
//! that several senders can share.
//!
//! ```
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use weft_core::{chan, rate::RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limiter = RateLimiter::per_second(NonZeroU32::new(10).unwrap());
//! let (tx, rx) = chan::unbounded();
//! let start = tokio::time::Instant::now();
//! for i in 0..20 {
//!     limiter.until_ready().await; // throttle the sender
//!     tx.send(i).await.unwrap();
//! }
//! // A burst of 10 at once, then one every 100ms.
//! assert_eq!(start.elapsed(), Duration::from_millis(1000));
//! assert_eq!(rx.len(), 20);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use governor::Quota;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// governor's clock trait over tokio's clock: instants are durations since the limiter's start.
#[derive(Debug, Clone)]
struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }
}

type Inner = governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// A rate limiter allowing `burst` permits at once and one more every `period`: a
/// generic cell rate algorithm (GCRA) from governor, on tokio's clock.
///
/// Cloning is cheap; clones share the same budget, so one limiter can throttle many senders.
pub struct RateLimiter {
    inner: Arc<Inner>,
    clock: TokioClock,
}

impl RateLimiter {
    /// Allows `n` permits per second, in bursts of up to `n`.
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use weft_core::rate::RateLimiter;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::per_second(NonZeroU32::new(2).unwrap());
    /// assert!(limiter.try_acquire());
    /// assert!(limiter.try_acquire());
    /// assert!(!limiter.try_acquire(), "the burst is spent");
    /// # }
    /// ```
    pub fn per_second(n: NonZeroU32) -> RateLimiter {
        Self::from_quota(Quota::per_second(n))
    }

    /// Allows one permit every `period`, in bursts of up to `burst`.
    ///
    /// # Panics
    ///
    /// Panics if `period` is zero.
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use std::time::Duration;
    /// use weft_core::rate::RateLimiter;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Duration::from_millis(50), NonZeroU32::MIN);
    /// let start = tokio::time::Instant::now();
    /// limiter.until_ready().await;
    /// limiter.until_ready().await;
    /// assert_eq!(start.elapsed(), Duration::from_millis(50));
    /// # }
    /// ```
    #[track_caller]
    pub fn new(period: Duration, burst: NonZeroU32) -> RateLimiter {
        let quota = Quota::with_period(period).expect("a rate limiter's period must be positive");
        Self::from_quota(quota.allow_burst(burst))
    }

    fn from_quota(quota: Quota) -> RateLimiter {
        let clock = TokioClock {
            start: Instant::now(),
        };
        RateLimiter {
            inner: Arc::new(governor::RateLimiter::direct_with_clock(
                quota,
                clock.clone(),
            )),
            clock,
        }
    }

    /// Takes a permit if one is available now.
    pub fn try_acquire(&self) -> bool {
        self.inner.check().is_ok()
    }

    /// Waits until a permit is available and takes it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a permit is taken only in the poll that completes, so a cancelled wait
    /// spends nothing. (It keeps no place in a queue: waiters are not served in order.)
    pub fn until_ready(&self) -> UntilReady<'_> {
        UntilReady {
            limiter: self,
            sleep: None,
        }
    }
}

impl Clone for RateLimiter {
    fn clone(&self) -> Self {
        RateLimiter {
            inner: Arc::clone(&self.inner),
            clock: self.clock.clone(),
        }
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

pin_project! {
    /// Future returned by [`RateLimiter::until_ready`]; behaves like
    /// `async fn until_ready(&self)`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a permit is taken only in the poll that completes.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct UntilReady<'a> {
        limiter: &'a RateLimiter,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl Future for UntilReady<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
                if sleep.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep.set(None);
            }
            match this.limiter.inner.check() {
                Ok(()) => return Poll::Ready(()),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(this.limiter.clock.now());
                    this.sleep
                        .set(Some(tokio::time::sleep_until(Instant::now() + wait)));
                }
            }
        }
    }
}

impl fmt::Debug for UntilReady<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntilReady")
            .field("waiting", &self.sleep.is_some())
            .finish()
    }
}
