use std::fmt;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_core::{FusedStream, Stream};
use futures_util::stream::SelectAll;

use crate::chan::Receiver;

/// Merges receivers into one stream (Go's fan-in), which ends once every input is closed and
/// drained.
///
/// Unlike Go's `merge`, which starts a goroutine per input to copy into a new channel, this
/// spawns nothing and adds no hop: the stream polls the inputs itself, fairly (an input that
/// always has values cannot starve the others). Each value is taken from its input only when
/// the stream yields it, so dropping the stream, or a `next()` on it, loses nothing.
///
/// ```
/// use futures::StreamExt;
/// use weft_core::{chan, select::merge};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx1, rx1) = chan::bounded(4);
/// let (tx2, rx2) = chan::bounded(4);
/// tx1.send(1).await.unwrap();
/// tx2.send(2).await.unwrap();
/// tx1.send(3).await.unwrap();
/// drop((tx1, tx2));
///
/// let mut all: Vec<i32> = merge([rx1, rx2]).collect().await;
/// all.sort();
/// assert_eq!(all, [1, 2, 3]);
/// # }
/// ```
pub fn merge<T, I>(receivers: I) -> Merge<T>
where
    I: IntoIterator<Item = Receiver<T>>,
{
    Merge {
        inner: futures_util::stream::select_all(receivers),
    }
}

/// Stream returned by [`merge`].
///
/// Polling it is cancel safe: a value leaves its channel only in the poll that yields it.
#[must_use = "streams do nothing unless polled"]
pub struct Merge<T> {
    inner: SelectAll<Receiver<T>>,
}

impl<T> Merge<T> {
    /// Adds another input.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weft_core::{chan, select::merge};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut merged = merge(Vec::new());
    /// let (tx, rx) = chan::bounded(1);
    /// merged.push(rx);
    /// tx.send(5).await.unwrap();
    /// assert_eq!(merged.next().await, Some(5));
    /// # }
    /// ```
    pub fn push(&mut self, receiver: Receiver<T>) {
        self.inner.push(receiver);
    }

    /// Returns the number of inputs not yet ended.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Returns `true` when no input is left.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<T> Stream for Merge<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl<T> FusedStream for Merge<T> {
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<T> fmt::Debug for Merge<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merge")
            .field("inputs", &self.inner.len())
            .finish()
    }
}
