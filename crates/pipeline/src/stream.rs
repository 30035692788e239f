//! The output of a run as a [`Stream`](futures_core::Stream): [`PipelineStream`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use weft_core::Context;

use crate::counters::Meter;
use crate::error::PipelineError;
use crate::report::{Progress, Report, StopReason};
use crate::run::{Build, Control, Opts, Shared, SinkIn, start};

/// The output of a pipeline as a [`Stream`](futures_core::Stream), from
/// [`Pipeline::into_stream`](crate::Pipeline::into_stream).
///
/// The stages run in their own tasks while the stream is read. Call
/// [`finish`](PipelineStream::finish) for the [`Report`]. Dropping the stream aborts the run;
/// the items it had not yielded are counted `cancelled` in the `sink` stage.
///
/// # Cancel safety
///
/// `next()` (from `StreamExt`) is cancel safe: an item is only taken from the stream's buffer
/// in the poll that returns it, so cancelling a pending `next()` in a `select!` loses nothing.
#[must_use = "streams do nothing unless polled"]
pub struct PipelineStream<T> {
    chunks: Pin<Box<dyn futures_core::Stream<Item = Vec<T>> + Send>>,
    current: std::vec::IntoIter<T>,
    taken: usize,
    meter: Option<Meter>,
    control: Option<tokio::task::JoinHandle<(Control, StopReason)>>,
    shared: Arc<Shared>,
    ended: bool,
}

impl<T> PipelineStream<T> {
    /// Publishes the items yielded from the current chunk.
    fn settle(&mut self) {
        if let Some(m) = self.meter.as_mut()
            && self.taken > 0
        {
            m.emitted(self.taken as u64, self.taken);
            self.taken = 0;
        }
    }
}

// Nothing in the stream is pinned in place (the chunk stream is boxed), whatever `T` is.
impl<T> Unpin for PipelineStream<T> {}

impl<T> Drop for PipelineStream<T> {
    fn drop(&mut self) {
        self.shared.abort.cancel();
        self.settle();
    }
}

impl<T> fmt::Debug for PipelineStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineStream")
            .field("buffered", &self.current.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> PipelineStream<T> {
    pub(crate) fn new(build: Build<T>, opts: Opts, progress: Progress, ctx: Context) -> Self {
        let (sink_in, mut control) = start(build, opts, progress, ctx);
        let shared = sink_in.shared.clone();
        let SinkIn {
            rx,
            meter,
            shared: s2,
        } = sink_in;
        let chunks = futures_util::stream::unfold((rx, s2), |(mut rx, s)| async move {
            let c = tokio::select! {
                biased;
                () = s.abort.cancelled() => None,
                c = rx.recv() => c,
            }?;
            Some((c, (rx, s)))
        });
        let control = tokio::spawn(async move {
            let stop = control.supervise().await;
            (control, stop)
        });
        PipelineStream {
            chunks: Box::pin(chunks),
            current: Vec::new().into_iter(),
            taken: 0,
            meter: Some(meter),
            control: Some(control),
            shared,
            ended: false,
        }
    }

    /// Stops the run if it is still going, waits for its tasks and returns its report: the
    /// items this stream did not yield are counted `cancelled` in the `sink` stage, and a run
    /// stopped before its end reports [`StopReason::Aborted`].
    ///
    /// # Errors
    ///
    /// The first fatal stage error, as the other sinks return it.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if the future is dropped, the run is still stopped but the report is
    /// lost.
    pub async fn finish(mut self) -> Result<Report, PipelineError> {
        let stopped_early = !self.ended;
        if stopped_early {
            self.shared.abort.cancel();
        }
        // Items received but not yielded stay open in the meter and are counted cancelled
        // when it drops.
        self.settle();
        drop(self.meter.take());
        // Closing the queue counts what is still in it as cancelled.
        self.chunks = Box::pin(futures_util::stream::empty());
        let handle = self.control.take();
        let (control, stop) = match handle {
            Some(h) => match h.await {
                Ok(v) => v,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            },
            None => unreachable_control(),
        };
        let stop = if stopped_early && stop == StopReason::Completed {
            StopReason::Aborted
        } else {
            stop
        };
        control.finish((), stop).map(|f| f.report)
    }
}

#[cold]
fn unreachable_control() -> ! {
    // `control` is only taken by `finish`, which consumes the stream.
    panic!("PipelineStream::finish called twice")
}

impl<T> futures_core::Stream for PipelineStream<T> {
    type Item = T;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        let this = self.get_mut();
        loop {
            if let Some(x) = this.current.next() {
                this.taken += 1;
                return std::task::Poll::Ready(Some(x));
            }
            this.settle();
            if this.ended {
                return std::task::Poll::Ready(None);
            }
            match std::task::ready!(this.chunks.as_mut().poll_next(cx)) {
                Some(c) => {
                    if let Some(m) = this.meter.as_mut() {
                        m.received(c.len());
                    }
                    this.current = c.into_iter();
                }
                None => this.ended = true,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            self.current.len(),
            if self.ended {
                Some(self.current.len())
            } else {
                None
            },
        )
    }
}

impl<T> futures_core::FusedStream for PipelineStream<T> {
    fn is_terminated(&self) -> bool {
        self.ended && self.current.len() == 0
    }
}
