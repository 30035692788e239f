//! How something that runs many tasks ends: one vocabulary for pipelines and pools.

use std::time::Duration;

/// How a pipeline run or a worker pool ends when it is told to stop.
///
/// weft-pipeline takes it for a run whose [`Context`](crate::Context) is done; weft-pool's
/// `Pool::shutdown` takes it. Both mean the same by each word:
///
/// | word | new work | work already in | after `timeout` |
/// |---|---|---|---|
/// | [`Drain`](Shutdown::Drain) | refused | finishes | what is left is aborted |
/// | [`Abort`](Shutdown::Abort) | refused | cancelled at once (counted, never lost) | – |
///
/// Go has no such type: a done `context` stops everything (`Abort`), and draining is written
/// by hand with a `WaitGroup` and a timer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_core::Shutdown;
///
/// assert_eq!(Shutdown::default(), Shutdown::Abort);
/// let drain = Shutdown::drain(Duration::from_secs(5));
/// assert_eq!(drain, Shutdown::Drain { timeout: Duration::from_secs(5) });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Shutdown {
    /// Stop at once: refuse new work and cancel the work in flight (its Contexts are
    /// cancelled and its futures dropped). The default, as in Go, where a done context stops
    /// every goroutine that watches it.
    #[default]
    Abort,
    /// Refuse new work and let the work already accepted finish; abort whatever is left
    /// after `timeout`.
    Drain {
        /// How long the drain may take before the rest is aborted.
        timeout: Duration,
    },
}

impl Shutdown {
    /// [`Shutdown::Drain`] with this timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::Shutdown;
    /// assert!(matches!(Shutdown::drain(Duration::from_secs(1)), Shutdown::Drain { .. }));
    /// ```
    #[must_use]
    pub const fn drain(timeout: Duration) -> Self {
        Shutdown::Drain { timeout }
    }
}
