//! The named futures returned by [`Sender`](super::Sender) and [`Receiver`](super::Receiver).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::core::{SendState, Shared};
use super::error::{RecvCtxError, RecvTimeoutError, SendCtxError, SendError, SendTimeoutError};
use crate::context::{Context, ContextError, Done};

/// Future returned by [`Sender::send`](super::Sender::send); behaves like
/// `async fn send(&self, value: T) -> Result<(), SendError<T>>`.
///
/// # Cancel safety
///
/// Dropping it withdraws the value if no receiver has taken it yet: the value is then dropped
/// with the future and was **not** sent. If a receiver took it (for a bounded channel: moved it
/// into the buffer; for a rendezvous channel: took it from this waiting send), the send is done
/// even though the future never returned `Ready`. A value is never duplicated and never lost in
/// between.
///
/// To learn which, and to get an untaken value back, call [`Send::cancel`] instead of
/// dropping it (the cancel-safe way to send in `select!`).
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Send<'a, T> {
    shared: &'a Shared<T>,
    state: SendState<T>,
}

// `Send` never pins its value in place: the value moves in and out by value only.
impl<T> Unpin for Send<'_, T> {}

impl<'a, T> Send<'a, T> {
    pub(super) fn new(shared: &'a Shared<T>, value: T) -> Self {
        Send {
            shared,
            state: SendState::Idle(value),
        }
    }

    /// Withdraws the send: returns `Some(value)` if it was not sent, `None` if a receiver
    /// already took it (or the send had completed). The future must not be polled again.
    ///
    /// This is how to send cancel-safely in `select!`: keep the future outside the macro, and
    /// when another branch wins, take the value back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::chan;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, _rx) = chan::rendezvous::<String>();
    /// let mut send = tx.send("job".to_string());
    /// tokio::select! {
    ///     res = &mut send => res.unwrap(),
    ///     _ = tokio::time::sleep(Duration::from_millis(10)) => {
    ///         // Nobody received it: the value comes back instead of being dropped.
    ///         assert_eq!(send.cancel().as_deref(), Some("job"));
    ///     }
    /// }
    /// # }
    /// ```
    pub fn cancel(&mut self) -> Option<T> {
        self.shared.cancel_send(&mut self.state)
    }
}

impl<T> Future for Send<'_, T> {
    type Output = Result<(), SendError<T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.shared
            .poll_send(&mut this.state, cx)
            .map(|r| r.map_err(SendError))
    }
}

impl<T> Drop for Send<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if !matches!(self.state, SendState::Done) {
            // The withdrawn value (if any) is dropped here, after the lock is released.
            drop(self.shared.cancel_send(&mut self.state));
        }
    }
}

impl<T> fmt::Debug for Send<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            SendState::Idle(_) => "idle",
            SendState::Parked(..) => "parked",
            SendState::Done => "done",
        };
        f.debug_struct("Send").field("state", &state).finish()
    }
}

/// Future returned by [`Receiver::recv`](super::Receiver::recv); behaves like
/// `async fn recv(&self) -> Option<T>`.
///
/// # Cancel safety
///
/// Cancel safe, for every flavour: a value is taken only in the poll that returns it, so a
/// dropped `Recv` never held one. A value a sender handed to it while it waited (kept by the
/// channel, not the future) passes on to another waiting receive, or stays in the channel for
/// the next one; a wake-up it received but did not use passes on too. What is lost is its
/// place in the queue of waiting receivers.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Recv<'a, T> {
    shared: &'a Shared<T>,
    key: Option<usize>,
    /// The stream slot of the `Receiver` this borrows (it cannot change while borrowed).
    own: Option<usize>,
}

impl<'a, T> Recv<'a, T> {
    pub(super) fn new(shared: &'a Shared<T>, own: Option<usize>) -> Self {
        Recv {
            shared,
            key: None,
            own,
        }
    }
}

impl<T> Future for Recv<'_, T> {
    type Output = Option<T>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        this.shared.poll_recv(&mut this.key, this.own, cx)
    }
}

impl<T> Drop for Recv<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.shared.release_receiver(&mut self.key);
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("parked", &self.key.is_some())
            .finish()
    }
}

/// Future returned by [`Receiver::recv_many`](super::Receiver::recv_many); behaves like
/// `async fn recv_many(&self, buf: &mut Vec<T>, max: usize) -> usize`.
///
/// # Cancel safety
///
/// Cancel safe: values are appended to the `Vec` only in the poll that returns `Ready`.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct RecvMany<'a, T> {
    shared: &'a Shared<T>,
    key: Option<usize>,
    /// As in [`Recv`].
    own: Option<usize>,
    buf: &'a mut Vec<T>,
    max: usize,
}

impl<'a, T> RecvMany<'a, T> {
    pub(super) fn new(
        shared: &'a Shared<T>,
        own: Option<usize>,
        buf: &'a mut Vec<T>,
        max: usize,
    ) -> Self {
        RecvMany {
            shared,
            key: None,
            own,
            buf,
            max,
        }
    }
}

impl<T> Future for RecvMany<'_, T> {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<usize> {
        let this = self.get_mut();
        if this.max == 0 {
            return Poll::Ready(0);
        }
        this.shared
            .poll_recv_many(&mut this.key, this.own, this.buf, this.max, cx)
    }
}

impl<T> Drop for RecvMany<'_, T> {
    fn drop(&mut self) {
        self.shared.release_receiver(&mut self.key);
    }
}

impl<T> fmt::Debug for RecvMany<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvMany")
            .field("parked", &self.key.is_some())
            .field("max", &self.max)
            .finish()
    }
}

/// Future returned by [`Sender::closed`](super::Sender::closed) and
/// [`Receiver::closed`](super::Receiver::closed); behaves like `async fn closed(&self)`.
///
/// It completes once the channel is closed: by [`close`](super::Sender::close) on either
/// half, by the last [`Receiver`](super::Receiver) being dropped (for a sender: nobody will
/// receive any more), or by the last [`Sender`](super::Sender) being dropped (for a receiver:
/// nothing more will arrive; values still buffered can still be received). Once closed, a
/// channel stays closed, so it then completes at once, however often it is created.
///
/// # Cancel safety
///
/// Cancel safe: it takes nothing from the channel. Dropping it only gives up its place among
/// the futures waiting for the close.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Closed<'a, T> {
    shared: &'a Shared<T>,
    key: Option<usize>,
}

impl<'a, T> Closed<'a, T> {
    pub(super) fn new(shared: &'a Shared<T>) -> Self {
        Closed { shared, key: None }
    }
}

impl<T> Future for Closed<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.shared.poll_closed(&mut this.key, cx)
    }
}

impl<T> Drop for Closed<'_, T> {
    fn drop(&mut self) {
        self.shared.release_closed(&mut self.key);
    }
}

impl<T> fmt::Debug for Closed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closed")
            .field("parked", &self.key.is_some())
            .finish()
    }
}

pin_project! {
    /// Future returned by [`Sender::send_timeout`](super::Sender::send_timeout); behaves like
    /// `async fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>>`.
    ///
    /// # Cancel safety
    ///
    /// As [`Send`]: dropping it withdraws the value unless a receiver already took it.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct SendTimeout<'a, T> {
        send: Send<'a, T>,
        #[pin]
        sleep: Sleep,
    }
}

impl<'a, T> SendTimeout<'a, T> {
    pub(super) fn new(send: Send<'a, T>, sleep: Sleep) -> Self {
        SendTimeout { send, sleep }
    }
}

impl<T> Future for SendTimeout<'_, T> {
    type Output = Result<(), SendTimeoutError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The send first: a send that can complete now wins over an expired timer.
        if let Poll::Ready(res) = Pin::new(&mut *this.send).poll(cx) {
            return Poll::Ready(res.map_err(|SendError(v)| SendTimeoutError::Closed(v)));
        }
        if this.sleep.poll(cx).is_ready() {
            // A receiver may have taken the value since the poll above: then it was sent.
            return Poll::Ready(match this.send.cancel() {
                Some(v) => Err(SendTimeoutError::Timeout(v)),
                None => Ok(()),
            });
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for SendTimeout<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendTimeout")
            .field("send", &self.send)
            .field("deadline", &self.sleep.deadline())
            .finish()
    }
}

pin_project! {
    /// Future returned by [`Sender::send_ctx`](super::Sender::send_ctx); behaves like
    /// `async fn send_ctx(&self, value: T, ctx: &Context) -> Result<(), SendCtxError<T>>`.
    ///
    /// # Cancel safety
    ///
    /// As [`Send`]: dropping it withdraws the value unless a receiver already took it.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct SendCtx<'a, T> {
        send: Send<'a, T>,
        ctx: &'a Context,
        #[pin]
        done: Done,
    }
}

impl<'a, T> SendCtx<'a, T> {
    pub(super) fn new(send: Send<'a, T>, ctx: &'a Context) -> Self {
        SendCtx {
            send,
            ctx,
            done: ctx.done(),
        }
    }
}

impl<T> Future for SendCtx<'_, T> {
    type Output = Result<(), SendCtxError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The context first: once it is done, nothing more is sent.
        if this.done.poll(cx).is_ready() {
            let err = this.ctx.err().unwrap_or(ContextError::Cancelled);
            return Poll::Ready(match this.send.cancel() {
                Some(v) => Err(SendCtxError::Done(v, err)),
                None => Ok(()),
            });
        }
        Pin::new(&mut *this.send)
            .poll(cx)
            .map(|res| res.map_err(|SendError(v)| SendCtxError::Closed(v)))
    }
}

impl<T> fmt::Debug for SendCtx<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendCtx")
            .field("send", &self.send)
            .field("ctx_done", &self.ctx.is_done())
            .finish()
    }
}

pin_project! {
    /// Future returned by [`Receiver::recv_timeout`](super::Receiver::recv_timeout); behaves
    /// like `async fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError>`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Recv`].
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct RecvTimeout<'a, T> {
        recv: Recv<'a, T>,
        #[pin]
        sleep: Sleep,
    }
}

impl<'a, T> RecvTimeout<'a, T> {
    pub(super) fn new(recv: Recv<'a, T>, sleep: Sleep) -> Self {
        RecvTimeout { recv, sleep }
    }
}

impl<T> Future for RecvTimeout<'_, T> {
    type Output = Result<T, RecvTimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The value first: a value that is ready wins over an expired timer.
        if let Poll::Ready(v) = Pin::new(&mut *this.recv).poll(cx) {
            return Poll::Ready(v.ok_or(RecvTimeoutError::Closed));
        }
        if this.sleep.poll(cx).is_ready() {
            return Poll::Ready(Err(RecvTimeoutError::Timeout));
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for RecvTimeout<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvTimeout")
            .field("recv", &self.recv)
            .field("deadline", &self.sleep.deadline())
            .finish()
    }
}

pin_project! {
    /// Future returned by [`Receiver::recv_ctx`](super::Receiver::recv_ctx); behaves like
    /// `async fn recv_ctx(&self, ctx: &Context) -> Result<T, RecvCtxError>`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Recv`].
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct RecvCtx<'a, T> {
        recv: Recv<'a, T>,
        ctx: &'a Context,
        #[pin]
        done: Done,
    }
}

impl<'a, T> RecvCtx<'a, T> {
    pub(super) fn new(recv: Recv<'a, T>, ctx: &'a Context) -> Self {
        RecvCtx {
            recv,
            ctx,
            done: ctx.done(),
        }
    }
}

impl<T> Future for RecvCtx<'_, T> {
    type Output = Result<T, RecvCtxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The context first: once it is done, no more values are taken.
        if this.done.poll(cx).is_ready() {
            let err = this.ctx.err().unwrap_or(ContextError::Cancelled);
            return Poll::Ready(Err(RecvCtxError::Done(err)));
        }
        Pin::new(&mut *this.recv)
            .poll(cx)
            .map(|v| v.ok_or(RecvCtxError::Closed))
    }
}

impl<T> fmt::Debug for RecvCtx<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvCtx")
            .field("recv", &self.recv)
            .field("ctx_done", &self.ctx.is_done())
            .finish()
    }
}
