//! Go's `time.Ticker` for tokio.
//!
//! A [`Ticker`] ticks every `period`, starting one period after it is created (like Go's
//! `time.NewTicker`, unlike `tokio::time::interval`, whose first tick is immediate).
//!
//! # Missed ticks
//!
//! Go's ticker has a one-slot buffer: if the receiver is slow, one tick waits in the buffer
//! and the others are dropped; the schedule itself never drifts. weft's ticker does the same
//! (it is a tokio [`Interval`] with [`MissedTickBehavior::Skip`]): after a delay, the next
//! [`tick`](Ticker::tick) completes at once (the tick that waited), the ticks missed after it
//! are dropped, and the following tick comes at the next multiple of `period` from the start.
//!
//! ```
//! use std::time::Duration;
//! use tokio::time::Instant;
//! use weft_core::time::Ticker;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let start = Instant::now();
//! let ms = |n| start + Duration::from_millis(n);
//! let mut ticker = Ticker::new(Duration::from_millis(100));
//! assert_eq!(ticker.tick().await, ms(100));
//!
//! tokio::time::sleep(Duration::from_millis(250)).await; // slow work: now at 350
//! assert_eq!(ticker.tick().await, ms(200), "the waiting tick, at once");
//! assert_eq!(Instant::now(), ms(350));
//! assert_eq!(ticker.tick().await, ms(400), "300 was dropped; back on schedule");
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Go's `time.Ticker`: ticks every `period`, first one period after creation; see the
/// [module documentation](self) for missed ticks.
///
/// Unlike Go, there is no channel: [`tick`](Ticker::tick) waits for the next tick (it also is a
/// [`Stream`] of tick instants). Dropping the ticker stops it; nothing leaks either way.
pub struct Ticker {
    interval: Interval,
    stopped: bool,
}

impl Ticker {
    /// Creates a ticker with the given period (Go's `time.NewTicker`).
    ///
    /// # Panics
    ///
    /// Panics if `period` is zero (as Go does), or if called outside a tokio runtime.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::time::Ticker;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut ticker = Ticker::new(Duration::from_secs(1));
    /// assert_eq!(ticker.period(), Duration::from_secs(1));
    /// let before = tokio::time::Instant::now();
    /// ticker.tick().await;
    /// assert_eq!(before.elapsed(), Duration::from_secs(1));
    /// # }
    /// ```
    #[track_caller]
    pub fn new(period: Duration) -> Ticker {
        assert!(
            period > Duration::ZERO,
            "a ticker's period must be positive"
        );
        Ticker {
            interval: Self::interval(period),
            stopped: false,
        }
    }

    #[track_caller]
    fn interval(period: Duration) -> Interval {
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        interval
    }

    /// Waits for the next tick and returns the instant it was scheduled for. After
    /// [`stop`](Ticker::stop) it never completes (like receiving from a stopped Go ticker's
    /// channel) until [`reset`](Ticker::reset).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a tick is consumed only when `tick` returns it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::time::Ticker;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut ticker = Ticker::new(Duration::from_millis(10));
    /// let first = ticker.tick().await;
    /// let second = ticker.tick().await;
    /// assert_eq!(second - first, Duration::from_millis(10));
    /// # }
    /// ```
    pub fn tick(&mut self) -> Tick<'_> {
        Tick { ticker: self }
    }

    /// Polls for the next tick (the building block of [`tick`](Ticker::tick) and the `Stream`).
    pub fn poll_tick(&mut self, cx: &mut TaskContext<'_>) -> Poll<Instant> {
        if self.stopped {
            return Poll::Pending;
        }
        self.interval.poll_tick(cx)
    }

    /// Stops the ticker (Go's `Ticker.Stop`): no more ticks until [`reset`](Ticker::reset).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::time::Ticker;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut ticker = Ticker::new(Duration::from_millis(10));
    /// ticker.stop();
    /// let res = tokio::time::timeout(Duration::from_secs(1), ticker.tick()).await;
    /// assert!(res.is_err(), "a stopped ticker does not tick");
    /// # }
    /// ```
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Stops the ticker and restarts it with a new period (Go's `Ticker.Reset`): the next tick
    /// comes `period` from now.
    ///
    /// # Panics
    ///
    /// Panics if `period` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::time::Ticker;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut ticker = Ticker::new(Duration::from_secs(10));
    /// ticker.reset(Duration::from_millis(5));
    /// let before = tokio::time::Instant::now();
    /// ticker.tick().await;
    /// assert_eq!(before.elapsed(), Duration::from_millis(5));
    /// # }
    /// ```
    #[track_caller]
    pub fn reset(&mut self, period: Duration) {
        assert!(
            period > Duration::ZERO,
            "a ticker's period must be positive"
        );
        self.interval = Self::interval(period);
        self.stopped = false;
    }

    /// Returns the period.
    pub fn period(&self) -> Duration {
        self.interval.period()
    }

    /// Returns `true` if [`stop`](Ticker::stop) was called (and no `reset` since).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}

impl Stream for Ticker {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker")
            .field("period", &self.period())
            .field("stopped", &self.stopped)
            .finish()
    }
}

/// Future returned by [`Ticker::tick`]; behaves like `async fn tick(&mut self) -> Instant`.
///
/// # Cancel safety
///
/// Cancel safe: a tick is consumed only when the future returns it.
#[must_use = "futures do nothing unless you `.await` or poll them"]
#[derive(Debug)]
pub struct Tick<'a> {
    ticker: &'a mut Ticker,
}

impl Future for Tick<'_> {
    type Output = Instant;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Instant> {
        self.get_mut().ticker.poll_tick(cx)
    }
}
