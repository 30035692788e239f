use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Why a [`Context`](super::Context) is done: Go's `context.Canceled` and
/// `context.DeadlineExceeded`.
///
/// [`Cancelled`](ContextError::Cancelled) is Go's `context.Canceled`, spelled as tokio and the
/// rest of weft spell it (`JoinError::is_cancelled`, `CancellationToken::is_cancelled`,
/// `TaskError::Cancelled`), so one word means one thing across the crates.
///
/// Returned by [`Context::err`](super::Context::err) and
/// [`Context::run`](super::Context::run). It is `Copy` and cheap to compare; the
/// richer reason, if the canceller gave one, is the [`Cause`] returned by
/// [`Context::cause`](super::Context::cause).
///
/// # Examples
///
/// ```
/// use weft_core::context::{Context, ContextError};
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// assert_eq!(ctx.err(), None);
/// cancel.cancel();
/// assert_eq!(ctx.err(), Some(ContextError::Cancelled));
/// assert_eq!(ContextError::Cancelled.to_string(), "context cancelled");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The context, or one of its parents, was cancelled (Go's `context.Canceled`).
    #[error("context cancelled")]
    Cancelled,
    /// The deadline of the context, or of one of its parents, passed.
    #[error("context deadline exceeded")]
    DeadlineExceeded,
}

impl ContextError {
    /// Returns `true` for [`ContextError::Cancelled`].
    ///
    /// ```
    /// use weft_core::context::ContextError;
    /// assert!(ContextError::Cancelled.is_cancelled());
    /// ```
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ContextError::Cancelled)
    }

    /// Returns `true` for [`ContextError::DeadlineExceeded`].
    ///
    /// ```
    /// use weft_core::context::ContextError;
    /// assert!(ContextError::DeadlineExceeded.is_deadline_exceeded());
    /// ```
    #[must_use]
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, ContextError::DeadlineExceeded)
    }
}

/// The reason a context was cancelled (Go 1.20's `context.Cause`).
///
/// A cause is any error, shared: a [`CancelFn::cancel_with`](super::CancelFn::cancel_with)
/// call sets it, and every child of the cancelled context sees the same cause. When a context
/// is cancelled without a cause, its cause is its [`ContextError`], as in Go.
///
/// Use [`Cause::downcast_ref`] to get the original error type back.
///
/// # Examples
///
/// ```
/// use weft_core::context::{Context, ContextError};
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel_with("disk full");
/// assert_eq!(ctx.cause().unwrap().to_string(), "disk full");
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel();
/// assert_eq!(ctx.cause().unwrap().downcast_ref::<ContextError>(), Some(&ContextError::Cancelled));
/// ```
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps an error (or a message: `&str` and `String` convert) as a cause.
    ///
    /// ```
    /// use weft_core::context::Cause;
    /// let cause = Cause::new("shutting down");
    /// assert_eq!(cause.to_string(), "shutting down");
    /// ```
    pub fn new(error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        match error.into().downcast::<Cause>() {
            // Passing a cause along (say, a parent's to a child) keeps it as it is, so
            // `downcast_ref` still finds the original error.
            Ok(cause) => *cause,
            Err(error) => Cause(Arc::from(error)),
        }
    }

    /// Returns the cause as its original error type, if it is one.
    ///
    /// ```
    /// use weft_core::context::Cause;
    /// let cause = Cause::new(std::io::Error::other("gone"));
    /// assert!(cause.downcast_ref::<std::io::Error>().is_some());
    /// ```
    #[must_use]
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// Returns the shared error.
    ///
    /// ```
    /// use weft_core::context::Cause;
    /// let err = Cause::new("x").into_inner();
    /// assert_eq!(err.to_string(), "x");
    /// ```
    #[must_use]
    pub fn into_inner(self) -> Arc<dyn Error + Send + Sync + 'static> {
        self.0
    }
}

/// Shares the error: the cause and every other holder of the `Arc` see the same value.
///
/// ```
/// use std::sync::Arc;
/// use weft_core::context::Cause;
/// let err: Arc<dyn std::error::Error + Send + Sync> = Arc::new(std::io::Error::other("gone"));
/// let cause = Cause::from(Arc::clone(&err));
/// assert!(Arc::ptr_eq(&cause.into_inner(), &err));
/// ```
impl From<Arc<dyn Error + Send + Sync + 'static>> for Cause {
    fn from(error: Arc<dyn Error + Send + Sync + 'static>) -> Self {
        Cause(error)
    }
}

impl From<ContextError> for Cause {
    fn from(err: ContextError) -> Self {
        Cause(Arc::new(err))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}
