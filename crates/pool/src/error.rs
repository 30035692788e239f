//! Errors and outcomes: every submitted job ends in exactly one [`Outcome`].

use std::fmt;

/// The seven ways a submitted job can end. Every job that is submitted ends in exactly one of
/// them, and [`Stats`](crate::Stats) counts each.
///
/// ```
/// use weft_pool::{JobError, Outcome};
/// let err: JobError<std::io::Error> = JobError::TimedOut;
/// assert_eq!(err.outcome(), Outcome::TimedOut);
/// assert_eq!(Outcome::of(&Ok::<u8, JobError<std::io::Error>>(1)), Outcome::Completed);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The handler returned `Ok`.
    Completed,
    /// The handler returned `Err`.
    Failed,
    /// Cancelled through its [`JobHandle`](crate::JobHandle), by id, or by a cancelling shutdown.
    Cancelled,
    /// It ran longer than the pool's per-job timeout.
    TimedOut,
    /// The handler panicked.
    Panicked,
    /// The pool was closed when it was submitted.
    Rejected,
    /// Its job key had panicked too often and was blacklisted.
    Blacklisted,
}

/// Every outcome, in declaration order (the order `Outcome::index` follows).
const ALL: [Outcome; 7] = [
    Outcome::Completed,
    Outcome::Failed,
    Outcome::Cancelled,
    Outcome::TimedOut,
    Outcome::Panicked,
    Outcome::Rejected,
    Outcome::Blacklisted,
];

impl Outcome {
    /// Every outcome this version of weft-pool knows, in declaration order.
    ///
    /// An iterator rather than a fixed-size array: `Outcome` is `#[non_exhaustive]`, and a
    /// public `[Outcome; 7]` would make adding an outcome a breaking change. Code that indexes
    /// its own table by outcome should size it with `Outcome::all().len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_pool::Outcome;
    /// assert_eq!(Outcome::all().next(), Some(Outcome::Completed));
    /// assert!(Outcome::all().any(|o| o == Outcome::Blacklisted));
    /// ```
    pub fn all() -> impl ExactSizeIterator<Item = Outcome> + Clone {
        ALL.into_iter()
    }

    /// The outcome a job's result stands for.
    pub fn of<T, E>(result: &Result<T, JobError<E>>) -> Outcome {
        match result {
            Ok(_) => Outcome::Completed,
            Err(e) => e.outcome(),
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::TimedOut => "timed out",
            Outcome::Panicked => "panicked",
            Outcome::Rejected => "rejected",
            Outcome::Blacklisted => "blacklisted",
        })
    }
}

/// Why a job did not complete: the error of a [`JobHandle`](crate::JobHandle) and of the pool's
/// `tower::Service` response future.
///
/// `E` is the handler's own error. `JobError<E>` is a `std::error::Error` whenever `E` is
/// `Debug + Display` (so a `tower::BoxError` handler works too); the handler's error is part of
/// the message rather than a `source()`, because `BoxError` itself is not an `Error`.
///
/// ```
/// use weft_pool::JobError;
/// use weft_core::Panicked;
/// let err: JobError<&str> = JobError::Panicked(Panicked::new("boom"));
/// assert_eq!(err.to_string(), "job panicked: boom");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError<E> {
    /// The handler returned this error.
    #[error("job failed: {0}")]
    Failed(E),
    /// The job was cancelled before it finished.
    #[error("job cancelled")]
    Cancelled,
    /// The job ran longer than the pool's per-job timeout; its Context was cancelled and its
    /// future dropped.
    #[error("job timed out")]
    TimedOut,
    /// The handler panicked; the worker caught it and kept serving. The panic's message is
    /// in [`Panicked::message`](weft_core::Panicked::message) (weft's one panic error, which
    /// weft-core's and weft-pipeline's errors carry too).
    #[error("job {0}")]
    Panicked(weft_core::Panicked),
    /// The pool was closed (shut down) when the job arrived.
    #[error("job rejected: the pool is closed")]
    Rejected,
    /// The job's key panicked too often and is blacklisted.
    #[error("job key {key:?} is blacklisted")]
    Blacklisted {
        /// The job's key.
        key: String,
    },
}

impl<E> JobError<E> {
    /// Which [`Outcome`] this error stands for.
    pub fn outcome(&self) -> Outcome {
        match self {
            JobError::Failed(_) => Outcome::Failed,
            JobError::Cancelled => Outcome::Cancelled,
            JobError::TimedOut => Outcome::TimedOut,
            JobError::Panicked(_) => Outcome::Panicked,
            JobError::Rejected => Outcome::Rejected,
            JobError::Blacklisted { .. } => Outcome::Blacklisted,
        }
    }
}

/// The error of [`Pool::submit`](crate::Pool::submit), [`Pool::submit_at`](crate::Pool::submit_at)
/// and the other submits that wait for room: the job was not accepted and is handed back.
///
/// The job still counts as submitted, with the outcome [`Outcome::Rejected`] or
/// [`Outcome::Blacklisted`].
///
/// ```
/// use weft_pool::SubmitError;
/// let err = SubmitError::Closed(7);
/// assert_eq!(err.to_string(), "pool is closed");
/// assert_eq!(err.into_inner(), 7);
/// ```
#[non_exhaustive]
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum SubmitError<Req> {
    /// The pool is closed.
    #[error("pool is closed")]
    Closed(Req),
    /// The job's key is blacklisted.
    #[error("job key {key:?} is blacklisted")]
    Blacklisted {
        /// The job, handed back.
        job: Req,
        /// Its key.
        key: String,
    },
}

impl<Req> SubmitError<Req> {
    /// Returns the job that was not accepted.
    pub fn into_inner(self) -> Req {
        match self {
            SubmitError::Closed(job) | SubmitError::Blacklisted { job, .. } => job,
        }
    }

    /// The outcome that was counted for the job.
    pub fn outcome(&self) -> Outcome {
        match self {
            SubmitError::Closed(_) => Outcome::Rejected,
            SubmitError::Blacklisted { .. } => Outcome::Blacklisted,
        }
    }
}

impl<Req> fmt::Debug for SubmitError<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Closed(_) => f.write_str("Closed(..)"),
            SubmitError::Blacklisted { key, .. } => f
                .debug_struct("Blacklisted")
                .field("key", key)
                .finish_non_exhaustive(),
        }
    }
}

/// The error of [`Pool::try_submit`](crate::Pool::try_submit): the job is handed back.
///
/// A job handed back as [`Full`](TrySubmitError::Full) was never submitted and counts nowhere;
/// [`Closed`](TrySubmitError::Closed) and [`Blacklisted`](TrySubmitError::Blacklisted) count as
/// submitted with the outcome `Rejected` or `Blacklisted`, as for [`SubmitError`].
///
/// ```
/// use weft_pool::TrySubmitError;
/// let err = TrySubmitError::Full("job");
/// assert!(err.is_full());
/// assert_eq!(err.to_string(), "queue is full");
/// assert_eq!(err.into_inner(), "job");
/// ```
#[non_exhaustive]
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum TrySubmitError<Req> {
    /// The job's queue is at capacity.
    #[error("queue is full")]
    Full(Req),
    /// The pool is closed.
    #[error("pool is closed")]
    Closed(Req),
    /// The job's key is blacklisted.
    #[error("job key {key:?} is blacklisted")]
    Blacklisted {
        /// The job, handed back.
        job: Req,
        /// Its key.
        key: String,
    },
}

impl<Req> TrySubmitError<Req> {
    /// Returns the job that was not accepted.
    pub fn into_inner(self) -> Req {
        match self {
            TrySubmitError::Full(job)
            | TrySubmitError::Closed(job)
            | TrySubmitError::Blacklisted { job, .. } => job,
        }
    }

    /// Whether the queue was full (the job may be retried later).
    pub fn is_full(&self) -> bool {
        matches!(self, TrySubmitError::Full(_))
    }
}

impl<Req> From<SubmitError<Req>> for TrySubmitError<Req> {
    fn from(e: SubmitError<Req>) -> Self {
        match e {
            SubmitError::Closed(job) => TrySubmitError::Closed(job),
            SubmitError::Blacklisted { job, key } => TrySubmitError::Blacklisted { job, key },
        }
    }
}

impl<Req> fmt::Debug for TrySubmitError<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => f.write_str("Full(..)"),
            TrySubmitError::Closed(_) => f.write_str("Closed(..)"),
            TrySubmitError::Blacklisted { key, .. } => f
                .debug_struct("Blacklisted")
                .field("key", key)
                .finish_non_exhaustive(),
        }
    }
}
