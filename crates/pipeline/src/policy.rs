//! What a stage does with an item that fails: the error policies.
//!
//! A stage's policy applies to the errors its closure returns (`try_map`, `try_then`) and to
//! panics in any stage closure (caught with `catch_unwind`). The terminal policies are:
//!
//! | policy | the item | the run |
//! |---|---|---|
//! | [`ErrorPolicy::fail_fast`] (default) | counted `failed` | aborted; the first error is returned with the stage name |
//! | [`ErrorPolicy::skip`] | counted `failed` | goes on |
//! | [`ErrorPolicy::dead_letter`] | counted `failed` and sent, with its error, to a channel | goes on |
//!
//! Any of them can first retry with a backoff ([`ErrorPolicy::with_retry`]), optionally only
//! for errors a predicate accepts (for example the ones that say they are transient). Panics
//! are never retried: a panic is a bug, not a transient condition. The fifth strategy of the Go
//! material, errors as values, needs no policy: `map` to a `Result` and let the next stage
//! decide.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use weft_core::Panicked;

/// Why an item failed in a stage: its closure returned an error, or panicked.
#[derive(Debug)]
#[non_exhaustive]
pub enum StageFailure<E> {
    /// The stage closure returned this error.
    Error(E),
    /// The stage closure panicked; this is its message.
    Panicked(Panicked),
}

impl<E: fmt::Display> fmt::Display for StageFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageFailure::Error(e) => e.fmt(f),
            StageFailure::Panicked(p) => p.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for StageFailure<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StageFailure::Error(e) => Some(e),
            StageFailure::Panicked(_) => None,
        }
    }
}

/// An item that failed in a stage whose policy is [`ErrorPolicy::dead_letter`].
#[derive(Debug)]
#[non_exhaustive]
pub struct DeadLetter<T, E> {
    /// The stage it failed in.
    pub stage: Arc<str>,
    /// The item, handed back. `None` when a closure that takes its item by value (`map`,
    /// `filter`, `then`, ...) panicked with it.
    pub item: Option<T>,
    /// What went wrong.
    pub error: StageFailure<E>,
}

/// Exponential backoff between retries: `initial`, then doubled each attempt, capped at `max`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_pipeline::Backoff;
///
/// let b = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(50));
/// assert_eq!(b.delay(1), Duration::from_millis(10));
/// assert_eq!(b.delay(2), Duration::from_millis(20));
/// assert_eq!(b.delay(4), Duration::from_millis(50));
/// assert_eq!(Backoff::constant(Duration::from_millis(5)).delay(9), Duration::from_millis(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: u32,
}

impl Backoff {
    /// `initial`, doubled on each attempt, never more than `max`.
    #[must_use]
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            factor: 2,
        }
    }

    /// The same delay before every attempt.
    #[must_use]
    pub fn constant(delay: Duration) -> Self {
        Backoff {
            initial: delay,
            max: delay,
            factor: 1,
        }
    }

    /// The delay before retry number `attempt` (1 for the first retry).
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let mult = self
            .factor
            .checked_pow(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(mult).min(self.max)
    }
}

type Predicate<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// How often and when to retry a failed item, for [`ErrorPolicy::with_retry`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_pipeline::{Backoff, Retry};
///
/// #[derive(Debug)]
/// enum FetchError { Timeout, NotFound }
///
/// let retry = Retry::new(3)
///     .backoff(Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)))
///     .when(|e: &FetchError| matches!(e, FetchError::Timeout));
/// assert!(retry.applies_to(&FetchError::Timeout));
/// assert!(!retry.applies_to(&FetchError::NotFound));
/// ```
pub struct Retry<E> {
    pub(crate) max_retries: u32,
    pub(crate) backoff: Backoff,
    when: Option<Predicate<E>>,
}

impl<E> Clone for Retry<E> {
    fn clone(&self) -> Self {
        Retry {
            max_retries: self.max_retries,
            backoff: self.backoff,
            when: self.when.clone(),
        }
    }
}

impl<E> fmt::Debug for Retry<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("max_retries", &self.max_retries)
            .field("backoff", &self.backoff)
            .field("when", &self.when.as_ref().map(|_| "<predicate>"))
            .finish()
    }
}

impl<E> Retry<E> {
    /// Retry a failed item up to `max_retries` times (so at most `max_retries + 1` calls), for
    /// every error, waiting 10 ms doubling up to 1 s between attempts.
    #[must_use]
    pub fn new(max_retries: u32) -> Self {
        Retry {
            max_retries,
            backoff: Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)),
            when: None,
        }
    }

    /// Sets the delay between attempts. By default, 10 ms doubling up to 1 s.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Retry only errors for which `pred` returns `true`; the others go straight to the
    /// terminal policy. By default, every error is retried.
    #[must_use]
    pub fn when(mut self, pred: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.when = Some(Arc::new(pred));
        self
    }

    /// Whether an error is one this policy retries.
    #[must_use]
    pub fn applies_to(&self, e: &E) -> bool {
        self.when.as_ref().is_none_or(|p| p(e))
    }
}

pub(crate) enum Terminal<T, E> {
    FailFast,
    Skip,
    DeadLetter(mpsc::Sender<DeadLetter<T, E>>),
}

/// A stage's error policy: a terminal policy (fail fast, skip, dead letter), optionally
/// preceded by retries. See the [module docs](crate::policy).
///
/// # Examples
///
/// ```
/// use weft_core::Context;
/// use weft_pipeline::{ErrorPolicy, Pipeline, Stage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let done = Pipeline::from_iter(["1", "x", "3"])
///     .try_map(Stage::new("parse").on_error(ErrorPolicy::skip()), |s: &&str| s.parse::<u32>())
///     .collect::<Vec<_>>(Context::background())
///     .await?;
/// assert_eq!(done.output, [1, 3]);
/// assert_eq!(done.report.stage("parse").map(|s| s.failed), Some(1));
/// # Ok(())
/// # }
/// ```
pub struct ErrorPolicy<T, E> {
    pub(crate) terminal: Terminal<T, E>,
    pub(crate) retry: Option<Retry<E>>,
}

impl<T, E> fmt::Debug for ErrorPolicy<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match &self.terminal {
            Terminal::FailFast => "fail_fast",
            Terminal::Skip => "skip",
            Terminal::DeadLetter(_) => "dead_letter",
        };
        f.debug_struct("ErrorPolicy")
            .field("terminal", &t)
            .field("retry", &self.retry)
            .finish()
    }
}

impl<T, E> Default for ErrorPolicy<T, E> {
    fn default() -> Self {
        Self::fail_fast()
    }
}

impl<T, E> ErrorPolicy<T, E> {
    /// Cancel the run on the first failure and return it, with the stage name, from the
    /// run. The default.
    #[must_use]
    pub fn fail_fast() -> Self {
        ErrorPolicy {
            terminal: Terminal::FailFast,
            retry: None,
        }
    }

    /// Count the failure and go on with the next item.
    #[must_use]
    pub fn skip() -> Self {
        ErrorPolicy {
            terminal: Terminal::Skip,
            retry: None,
        }
    }

    /// Count the failure and send the item with its error to `tx`, then go on. The stage waits
    /// when `tx` is full (backpressure); if its receiver is gone, the item is only counted.
    #[must_use]
    pub fn dead_letter(tx: mpsc::Sender<DeadLetter<T, E>>) -> Self {
        ErrorPolicy {
            terminal: Terminal::DeadLetter(tx),
            retry: None,
        }
    }

    /// Retry as `retry` says, then fail fast.
    #[must_use]
    pub fn retry(retry: Retry<E>) -> Self {
        Self::fail_fast().with_retry(retry)
    }

    /// Fail fast without retries: what a stage has unless told otherwise.
    pub(crate) fn is_default(&self) -> bool {
        matches!(self.terminal, Terminal::FailFast) && self.retry.is_none()
    }

    /// Retry as `retry` says before applying this policy.
    #[must_use]
    pub fn with_retry(mut self, retry: Retry<E>) -> Self {
        self.retry = Some(retry);
        self
    }
}

/// What a stage does when its input queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// The upstream stage waits for space: backpressure. The default.
    #[default]
    Wait,
    /// The hand-off that does not fit is dropped and counted in this stage's `dropped`
    /// (load shedding). Items move in chunks, so a whole chunk is dropped at once; use
    /// [`Pipeline::chunk_size`](crate::Pipeline::chunk_size)`(1)` to shed single items.
    DropNewest,
}
