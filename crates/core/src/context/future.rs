use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::node::Node;

pin_project! {
    /// Future returned by [`Context::done`](super::Context::done): completes once the context is
    /// done, by cancellation or by its deadline.
    ///
    /// It behaves like `async fn done(self) -> ()`. It owns what it needs (it is `'static` and
    /// `Send`), so it can be moved into spawned tasks. A deadline costs one timer, created on the
    /// first poll; a context without a deadline needs no timer at all.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing, and a new `done()` future sees the same state.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Done {
        node: Arc<Node>,
        #[pin]
        cancelled: WaitForCancellationFutureOwned,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl Done {
    pub(super) fn new(node: Arc<Node>) -> Done {
        Done {
            cancelled: node.token.clone().cancelled_owned(),
            node,
            sleep: None,
        }
    }
}

impl Future for Done {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.cancelled.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if let Some(deadline) = this.node.deadline {
            if this.sleep.is_none() {
                // Created lazily so that `done()` may be called outside a runtime.
                this.sleep.set(Some(tokio::time::sleep_until(deadline)));
            }
            if let Some(sleep) = this.sleep.as_pin_mut()
                && sleep.poll(cx).is_ready()
            {
                // We noticed the deadline first: end the deadline's owner so that every
                // context below it (and every other waiter) sees it too.
                this.node.expire();
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done")
            .field("is_done", &self.node.is_done())
            .field("deadline", &self.node.deadline)
            .finish()
    }
}
