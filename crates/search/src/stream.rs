//! [`SearchStream`]: the async side of a search.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll, ready};

use futures::stream::{FusedStream, Stream};
use tokio::sync::mpsc;
use weft_core::context::Done;

use super::result::{Counters, FileResult, SearchStats};
use super::worker::{Shared, Slot};

pub(super) enum Inner {
    /// Results in the order the searcher threads finish them.
    Unordered(mpsc::Receiver<FileResult>),
    /// Reply slots in path order, one per chunk of files; `head` is the one being awaited,
    /// `ready` what is left of the last chunk's results.
    Ordered {
        slots: mpsc::Receiver<Slot>,
        head: Option<Slot>,
        ready: std::vec::IntoIter<FileResult>,
    },
}

/// The stream of per-file results returned by [`Search::run`](super::Search::run).
///
/// It yields one [`FileResult`] for every file that matched or could not be searched (files
/// without matches and binary files are counted in [`stats`](SearchStream::stats) but not
/// yielded). It ends when every file is searched, or as soon as the [`Context`] given to
/// [`Search::run`](super::Search::run) is done: then it yields `None` even if finished results
/// are waiting, and the search threads stop at their next check (between files, and between
/// matches within a file). Call `ctx.err()` to tell the two ends apart.
///
/// # Drop
///
/// Dropping the stream stops the search the same way: the threads notice at their next check,
/// or when they next try to send a result, and exit on their own (the drop does not wait for
/// them, unlike a scoped join).
///
/// # Cancel safety
///
/// `next()` (and `poll_next`) is cancel safe: whatever it has received and not yet returned
/// (in path order, the rest of a chunk of results) is kept by the stream itself, not by the
/// `next()` future, so dropping a pending `next()` loses nothing and the next call yields the
/// same result.
///
/// ```
/// use futures::StreamExt;
/// use weft_search::Search;
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// for i in 0..100 {
///     std::fs::write(dir.path().join(format!("{i}.txt")), "needle\n")?;
/// }
/// let (ctx, cancel) = Context::background().with_cancel();
/// let mut stream = Search::new("needle")?.run(&ctx, [dir.path()]);
/// assert!(stream.next().await.is_some());
/// cancel.cancel(); // e.g. the user pressed Ctrl-C
/// assert!(stream.next().await.is_none());
/// assert!(ctx.err().is_some());
/// # Ok(()) }
/// ```
///
/// [`Context`]: weft_core::context::Context
#[must_use = "streams do nothing unless polled"]
pub struct SearchStream {
    inner: Inner,
    done: Pin<Box<Done>>,
    shared: Arc<Shared>,
    /// A failure to start the search, yielded before the (then empty) channel ends.
    failure: Option<FileResult>,
    finished: bool,
}

impl SearchStream {
    pub(super) fn new(inner: Inner, shared: Arc<Shared>) -> SearchStream {
        SearchStream {
            inner,
            done: Box::pin(shared.ctx.done()),
            shared,
            failure: None,
            finished: false,
        }
    }

    pub(super) fn fail(&mut self, result: FileResult) {
        Counters::bump(&self.shared.counters.errors);
        self.failure = Some(result);
    }

    /// The counters so far (final once the stream has ended by itself).
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weft_search::Search;
    /// use weft_core::context::Context;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a.txt"), "needle\n")?;
    /// std::fs::write(dir.path().join("b.txt"), "hay\n")?;
    /// let mut stream = Search::new("needle")?.run(&Context::background(), [dir.path()]);
    /// while stream.next().await.is_some() {}
    /// let stats = stream.stats();
    /// assert_eq!((stats.files_searched, stats.files_matched), (2, 1));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn stats(&self) -> SearchStats {
        self.shared.counters.snapshot()
    }

    fn finish(&mut self) {
        self.finished = true;
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

impl Stream for SearchStream {
    type Item = FileResult;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<FileResult>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        // The context first: once it is done, buffered results are not handed out.
        if this.done.as_mut().poll(cx).is_ready() {
            this.finish();
            return Poll::Ready(None);
        }
        if let Some(failure) = this.failure.take() {
            return Poll::Ready(Some(failure));
        }
        let item = match &mut this.inner {
            Inner::Unordered(rx) => ready!(rx.poll_recv(cx)),
            Inner::Ordered { slots, head, ready } => loop {
                if let Some(result) = ready.next() {
                    break Some(result);
                }
                if let Some(slot) = head {
                    let results = ready!(Pin::new(slot).poll(cx));
                    *head = None;
                    // An error means a searcher stopped before filling the slot, which happens
                    // only when the search is stopping.
                    *ready = results.unwrap_or_default().into_iter();
                    continue;
                }
                match ready!(slots.poll_recv(cx)) {
                    Some(slot) => *head = Some(slot),
                    None => break None,
                }
            },
        };
        if item.is_none() {
            this.finish();
        }
        Poll::Ready(item)
    }
}

impl FusedStream for SearchStream {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

impl Drop for SearchStream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

impl fmt::Debug for SearchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchStream")
            .field("ordered", &matches!(self.inner, Inner::Ordered { .. }))
            .field("finished", &self.finished)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
