//! Starting a run: building the stages, spawning their tasks, watching the context.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_core::Context;

use crate::chan::{self, Receiver, Sender};
use crate::error::{Fatal, Panicked, PipelineError};
use crate::pipeline::tasks::panic_message;
use crate::report::{Counters, Meter, Progress, Registry, Report, StopReason};

/// What a run does when its [`Context`] is done.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weft_pipeline::Shutdown;
///
/// assert_eq!(Shutdown::default(), Shutdown::Abort);
/// let drain = Shutdown::drain(Duration::from_secs(5));
/// assert_eq!(drain, Shutdown::Drain { timeout: Duration::from_secs(5) });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Shutdown {
    /// Stop every stage at once; the items in flight are counted `cancelled`. The default,
    /// as in Go, where a done context stops every stage.
    #[default]
    Abort,
    /// Stop the source (a generator's context is done, its sends fail) and let the items
    /// already in the pipeline go through to the sink; abort if that takes longer than
    /// `timeout`.
    Drain {
        /// How long the drain may take before the run is aborted.
        timeout: Duration,
    },
}

impl Shutdown {
    /// [`Shutdown::Drain`] with this timeout.
    #[must_use]
    pub fn drain(timeout: Duration) -> Self {
        Shutdown::Drain { timeout }
    }
}

/// State every task of one run shares.
pub(crate) struct Shared {
    /// Every stage stops at its next check.
    pub(crate) abort: CancellationToken,
    /// Sources stop taking new items (a child of `abort`).
    pub(crate) stop: CancellationToken,
    fatal: Mutex<Option<Fatal>>,
    pub(crate) ctx: Context,
}

impl Shared {
    /// Records the first fatal failure and aborts the run.
    pub(crate) fn fail(&self, f: Fatal) {
        let mut slot = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(f);
        }
        drop(slot);
        self.abort.cancel();
    }

    fn take_fatal(&self) -> Option<Fatal> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn failed(&self) -> bool {
        self.fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

/// Build-time state: the stages register here and queue their tasks.
pub(crate) struct Env {
    pub(crate) shared: Arc<Shared>,
    registry: Arc<Registry>,
    chunk: Option<usize>,
    default_buffer: Option<usize>,
    prefix: String,
    tasks: Vec<(Arc<str>, BoxFuture<'static, ()>)>,
}

/// The bytes of items a chunk aims at when the user did not set a chunk size: large enough that
/// the per-hand-off cost (a queue operation, often a task wake-up) is small beside the work on
/// the items, small enough to stay in a core's cache.
const CHUNK_BYTES: usize = 64 * 1024;
/// Bounds of the automatic chunk size, in items.
const CHUNK_ITEMS: std::ops::RangeInclusive<usize> = 256..=8192;

/// The automatic chunk size for items of type `T`: [`CHUNK_BYTES`] worth, within
/// [`CHUNK_ITEMS`].
pub(crate) fn auto_chunk<T>() -> usize {
    (CHUNK_BYTES / std::mem::size_of::<T>().max(1)).clamp(*CHUNK_ITEMS.start(), *CHUNK_ITEMS.end())
}

impl Env {
    /// Items per hand-off for a stage producing `T`.
    pub(crate) fn chunk<T>(&self) -> usize {
        self.chunk.unwrap_or_else(auto_chunk::<T>)
    }

    /// Counters for a stage about to be built (registered later, by `register`, so the report
    /// lists stages in build order: sources first).
    pub(crate) fn counters(&self, name: &str) -> Arc<Counters> {
        Counters::new(Arc::from(format!("{}{name}", self.prefix)))
    }

    pub(crate) fn register(&self, c: &Arc<Counters>) {
        self.registry.push(c.clone());
    }

    /// Records that the stage with counters `from` sends into `to`.
    pub(crate) fn link<T>(&self, from: &Arc<Counters>, to: &Sender<T>) {
        self.registry.link(from, to.counters());
    }

    pub(crate) fn channel<T>(
        &self,
        buffer: Option<usize>,
        drop_when_full: bool,
        c: &Arc<Counters>,
    ) -> (Sender<T>, Receiver<T>) {
        let default = || self.default_buffer.unwrap_or(2 * self.chunk::<T>());
        chan::channel(buffer.unwrap_or_else(default), drop_when_full, c.clone())
    }

    pub(crate) fn spawn(
        &mut self,
        name: &Arc<str>,
        fut: impl Future<Output = ()> + Send + 'static,
    ) {
        self.tasks.push((name.clone(), Box::pin(fut)));
    }

    /// Runs `f` with stage names prefixed by `prefix` (branches of a fan-out).
    pub(crate) fn with_prefix<R>(&mut self, prefix: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let saved = self.prefix.len();
        self.prefix.push_str(prefix);
        let r = f(self);
        self.prefix.truncate(saved);
        r
    }
}

pub(crate) type Build<T> = Box<dyn FnOnce(&mut Env, Sender<T>) + Send>;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Opts {
    /// `None`: [`auto_chunk`] for each stage's item type.
    pub(crate) chunk: Option<usize>,
    pub(crate) default_buffer: Option<usize>,
    pub(crate) shutdown: Shutdown,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            chunk: None,
            default_buffer: None,
            shutdown: Shutdown::Abort,
        }
    }
}

/// The sink's end of a started run.
pub(crate) struct SinkIn<T> {
    rx: Receiver<T>,
    pub(crate) meter: Meter,
    pub(crate) shared: Arc<Shared>,
}

impl<T> SinkIn<T> {
    /// The next chunk for the sink, counted received; `None` at the end or on abort.
    pub(crate) async fn next(&mut self) -> Option<Vec<T>> {
        let c = tokio::select! {
            biased;
            () = self.shared.abort.cancelled() => None,
            c = self.rx.recv() => c,
        }?;
        self.meter.received(c.len());
        Some(c)
    }
}

/// The control side of a started run: the stage tasks and the context watcher.
pub(crate) struct Control {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    shutdown: Shutdown,
    progress: Progress,
    started: Instant,
}

impl Drop for Control {
    fn drop(&mut self) {
        // Dropping a run before it finished (its future cancelled) stops every stage; the
        // JoinSet's drop then aborts the tasks.
        self.shared.abort.cancel();
    }
}

impl Control {
    /// Waits for every stage task, applying the shutdown mode when the context is done.
    pub(crate) async fn supervise(&mut self) -> StopReason {
        let ctx = self.shared.ctx.clone();
        let mut reason = StopReason::Completed;
        tokio::select! {
            biased;
            () = join_all(&mut self.tasks) => {}
            () = ctx.done() => {
                match self.shutdown {
                    Shutdown::Abort => {
                        reason = StopReason::Aborted;
                        self.shared.abort.cancel();
                    }
                    Shutdown::Drain { timeout } => {
                        reason = StopReason::Drained;
                        self.shared.stop.cancel();
                        tokio::select! {
                            biased;
                            () = join_all(&mut self.tasks) => {}
                            () = tokio::time::sleep(timeout) => {
                                reason = StopReason::DrainTimedOut;
                                self.shared.abort.cancel();
                            }
                        }
                    }
                }
                join_all(&mut self.tasks).await;
            }
        }
        if self.shared.failed() {
            StopReason::Failed
        } else {
            reason
        }
    }

    /// The report, once the sink and every task are done.
    pub(crate) fn finish<R>(
        &self,
        output: R,
        stop: StopReason,
    ) -> Result<Finished<R>, PipelineError> {
        let report = Report {
            stages: self.progress.stages(),
            stop,
            elapsed: self.started.elapsed(),
            links: self.progress.links(),
        };
        match self.shared.take_fatal() {
            Some(f) => Err(f.into_error(report)),
            None => Ok(Finished { output, report }),
        }
    }
}

async fn join_all(set: &mut JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

/// Builds the stages and spawns their tasks.
pub(crate) fn start<T: Send + 'static>(
    build: Build<T>,
    opts: Opts,
    progress: Progress,
    ctx: &Context,
) -> (SinkIn<T>, Control) {
    let abort = CancellationToken::new();
    let shared = Arc::new(Shared {
        stop: abort.child_token(),
        abort,
        fatal: Mutex::new(None),
        ctx: ctx.clone(),
    });
    let mut env = Env {
        shared: shared.clone(),
        registry: progress.registry.clone(),
        chunk: opts.chunk,
        default_buffer: opts.default_buffer,
        prefix: String::new(),
        tasks: Vec::new(),
    };
    let sink = env.counters("sink");
    let (tx, rx) = env.channel(None, false, &sink);
    build(&mut env, tx);
    env.register(&sink);
    let mut tasks = JoinSet::new();
    for (name, fut) in std::mem::take(&mut env.tasks) {
        let shared = shared.clone();
        tasks.spawn(async move {
            // User closures are caught where they run; this catches a panic in weft's own
            // stage code, so it still fails the run with the stage's name instead of hanging.
            if let Err(p) = AssertUnwindSafe(fut).catch_unwind().await {
                let msg = panic_message(&*p);
                shared.fail(Fatal::Stage(name, Box::new(Panicked(msg))));
            }
        });
    }
    let control = Control {
        shared: shared.clone(),
        tasks,
        shutdown: opts.shutdown,
        progress,
        started: Instant::now(),
    };
    (
        SinkIn {
            rx,
            meter: Meter::new(sink),
            shared,
        },
        control,
    )
}

/// Runs a pipeline to a sink future in the caller's task.
pub(crate) async fn run_to<T, R, S, F>(
    build: Build<T>,
    opts: Opts,
    progress: Progress,
    ctx: &Context,
    sink: S,
) -> Result<Finished<R>, PipelineError>
where
    T: Send + 'static,
    S: FnOnce(SinkIn<T>) -> F,
    F: Future<Output = R>,
{
    let (sink_in, mut control) = start(build, opts, progress, ctx);
    let (output, stop) = tokio::join!(sink(sink_in), control.supervise());
    control.finish(output, stop)
}

/// What a completed (or cancelled) run returns: the sink's output and the [`Report`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished<R> {
    /// What the sink produced (`()` for `for_each` and the channel sinks).
    pub output: R,
    /// The run's counters, and why it stopped.
    pub report: Report,
}

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
    pub(crate) fn new(build: Build<T>, opts: Opts, progress: Progress, ctx: &Context) -> Self {
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
