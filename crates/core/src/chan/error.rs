use crate::context::ContextError;

/// The channel was closed: [`Sender::send`](super::Sender::send) hands the value back.
///
/// Unlike Go, where sending on a closed channel panics, a weft send on a closed channel
/// returns the value, so nothing is lost and nothing panics.
///
/// ```
/// use weft_core::chan::{self, SendError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = chan::bounded::<String>(1);
/// rx.close();
/// let SendError(value) = tx.send("hello".to_string()).await.unwrap_err();
/// assert_eq!(value, "hello");
/// assert_eq!(SendError(1).to_string(), "sending on a closed channel");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sending on a closed channel")]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// Returns the value that was not sent.
    ///
    /// ```
    /// assert_eq!(weft_core::chan::SendError(7).into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Why [`Sender::try_send`](super::Sender::try_send) did not send; either way the value is
/// handed back.
///
/// ```
/// use weft_core::chan::{self, TrySendError};
/// let (tx, rx) = chan::bounded(1);
/// tx.try_send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
/// rx.close();
/// assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The buffer is full (for a rendezvous channel: no buffer, so always, since a value is
    /// only handed over to a receiver that is waiting for it as the send waits).
    #[error("sending on a full channel")]
    Full(T),
    /// The channel is closed.
    #[error("sending on a closed channel")]
    Closed(T),
}

impl<T> TrySendError<T> {
    /// Returns the value that was not sent.
    ///
    /// ```
    /// use weft_core::chan::TrySendError;
    /// assert_eq!(TrySendError::Full(1).into_inner(), 1);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }

    /// Returns `true` if the send failed because the channel was full.
    ///
    /// ```
    /// use weft_core::chan::TrySendError;
    /// assert!(TrySendError::Full(1).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Returns `true` if the send failed because the channel was closed.
    ///
    /// ```
    /// use weft_core::chan::TrySendError;
    /// assert!(TrySendError::Closed(1).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

/// Why [`Sender::send_timeout`](super::Sender::send_timeout) did not send; either way the
/// value is handed back.
///
/// ```
/// use weft_core::chan::SendTimeoutError;
/// assert_eq!(SendTimeoutError::Timeout(1).to_string(), "timed out sending on a channel");
/// assert_eq!(SendTimeoutError::Timeout(1).into_inner(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendTimeoutError<T> {
    /// No room (or, for a rendezvous channel, no receiver took the value) before the timeout.
    #[error("timed out sending on a channel")]
    Timeout(T),
    /// The channel is closed.
    #[error("sending on a closed channel")]
    Closed(T),
}

impl<T> SendTimeoutError<T> {
    /// Returns the value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Closed(v) => v,
        }
    }
}

/// Why [`Sender::send_ctx`](super::Sender::send_ctx) did not send; either way the value is
/// handed back.
///
/// ```
/// use weft_core::chan::SendCtxError;
/// use weft_core::context::ContextError;
/// let err = SendCtxError::Done(1, ContextError::Cancelled);
/// assert_eq!(err.to_string(), "context done before the send: context cancelled");
/// assert_eq!(err.into_inner(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendCtxError<T> {
    /// The context ended first; the error says why.
    #[error("context done before the send: {1}")]
    Done(T, ContextError),
    /// The channel is closed.
    #[error("sending on a closed channel")]
    Closed(T),
}

impl<T> SendCtxError<T> {
    /// Returns the value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendCtxError::Done(v, _) | SendCtxError::Closed(v) => v,
        }
    }
}

/// Why [`Receiver::try_recv`](super::Receiver::try_recv) returned no value.
///
/// ```
/// use weft_core::chan::{self, TryRecvError};
/// let (tx, rx) = chan::bounded::<u8>(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No value is ready now (for a rendezvous channel: no sender is waiting).
    #[error("receiving on an empty channel")]
    Empty,
    /// The channel is closed and drained.
    #[error("receiving on a closed channel")]
    Closed,
}

/// Why [`Receiver::recv_timeout`](super::Receiver::recv_timeout) returned no value.
///
/// ```
/// use weft_core::chan::RecvTimeoutError;
/// assert_eq!(RecvTimeoutError::Timeout.to_string(), "timed out receiving on a channel");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// No value arrived before the timeout.
    #[error("timed out receiving on a channel")]
    Timeout,
    /// The channel is closed and drained.
    #[error("receiving on a closed channel")]
    Closed,
}

/// Why [`Receiver::recv_ctx`](super::Receiver::recv_ctx) returned no value.
///
/// ```
/// use weft_core::chan::RecvCtxError;
/// use weft_core::context::ContextError;
/// let err = RecvCtxError::Done(ContextError::DeadlineExceeded);
/// assert_eq!(err.to_string(), "context done before the receive: context deadline exceeded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RecvCtxError {
    /// The context ended first; the error says why.
    #[error("context done before the receive: {0}")]
    Done(ContextError),
    /// The channel is closed and drained.
    #[error("receiving on a closed channel")]
    Closed,
}
