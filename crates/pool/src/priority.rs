//! [`Priority`]: which queue level a job goes to, and which end is high.

use std::fmt;

/// A job's priority level: **higher numbers run first**. A pool has
/// [`Builder::priorities`](crate::Builder::priorities) levels, `0` to `levels - 1`; `0` is the
/// lowest and the default.
///
/// Between levels the order is strict, softened by aging (a job that has waited long enough
/// passes newer jobs of higher levels, see [`Builder::aging`](crate::Builder::aging)); within a
/// level it is FIFO.
///
/// [`LOW`](Priority::LOW), [`NORMAL`](Priority::NORMAL) and [`HIGH`](Priority::HIGH) name the
/// levels of a 3-level pool; [`Priority::new`] names any level. Submitting at a level the pool
/// does not have panics (a programming error, like an index out of bounds).
///
/// ```
/// use std::convert::Infallible;
/// use weft_pool::{Pool, Priority};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert!(Priority::HIGH > Priority::NORMAL && Priority::NORMAL > Priority::LOW);
/// assert_eq!(Priority::new(2), Priority::HIGH);
/// assert_eq!(Priority::default(), Priority::LOW);
///
/// let pool = Pool::builder()
///     .workers(1)
///     .priorities(3)
///     .build_fn(|_ctx, s: &'static str| async move { Ok::<_, Infallible>(s) });
/// let h = pool.submit_at(Priority::HIGH, "urgent").await.unwrap();
/// assert_eq!(h.priority(), Priority::HIGH);
/// assert_eq!(h.await, Ok("urgent"));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Priority(u8);

impl Priority {
    /// Level 0: the lowest of any pool, and the default.
    pub const LOW: Priority = Priority(0);
    /// Level 1: the middle of a 3-level pool.
    pub const NORMAL: Priority = Priority(1);
    /// Level 2: the highest of a 3-level pool (a pool built with `.priorities(3)`).
    pub const HIGH: Priority = Priority(2);

    /// Level `level` (`0` lowest; the highest of a pool is its number of levels less one).
    pub const fn new(level: u8) -> Self {
        Priority(level)
    }

    /// The level as a number (the index into [`Stats::queued`](crate::Stats)).
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "priority {}", self.0)
    }
}
