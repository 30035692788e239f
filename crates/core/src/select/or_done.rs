use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::context::{Context, Done};

/// Wraps a stream (a [`Receiver`](crate::chan::Receiver), a [`merge`](super::merge), ...) so
/// that it also ends when `ctx` is done: Go's `orDone(done, c)` pattern, without its extra
/// goroutine and channel.
///
/// The context has priority: once it is done, the stream ends even if values are still
/// ready, and they stay in their channel (nothing is taken and dropped).
///
/// ```
/// use futures::StreamExt;
/// use weft_core::{chan, context::Context, select::or_done};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (ctx, cancel) = Context::background().with_cancel();
/// let (tx, rx) = chan::bounded(8);
/// tx.send(1).await.unwrap();
/// tx.send(2).await.unwrap();
///
/// let mut values = or_done(rx.clone(), &ctx);
/// assert_eq!(values.next().await, Some(1));
/// cancel.cancel();
/// assert_eq!(values.next().await, None, "ends with the context");
/// assert_eq!(rx.try_recv(), Ok(2), "the value not taken stays in the channel");
/// # }
/// ```
pub fn or_done<S: Stream>(stream: S, ctx: &Context) -> OrDone<S> {
    OrDone {
        stream,
        done: Box::pin(ctx.done()),
        ended: false,
    }
}

pin_project! {
    /// Stream returned by [`or_done`]. Polling it is as cancel safe as the inner stream
    /// (for a weft `Receiver`: fully).
    #[must_use = "streams do nothing unless polled"]
    pub struct OrDone<S> {
        #[pin]
        stream: S,
        // Boxed so that `OrDone` is `Unpin` when `S` is: `.next()` then works without pinning.
        done: Pin<Box<Done>>,
        ended: bool,
    }
}

impl<S> OrDone<S> {
    /// Returns the inner stream.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

impl<S: Stream> Stream for OrDone<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if this.done.as_mut().poll(cx).is_ready() {
            *this.ended = true;
            return Poll::Ready(None);
        }
        let next = this.stream.poll_next(cx);
        if let Poll::Ready(None) = next {
            *this.ended = true;
        }
        next
    }
}

impl<S: Stream> FusedStream for OrDone<S> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl<S: fmt::Debug> fmt::Debug for OrDone<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrDone")
            .field("stream", &self.stream)
            .field("ended", &self.ended)
            .finish()
    }
}
