//! The run-time plumbing: what every stage task of a run shares ([`Shared`]), the build-time
//! environment stages register in ([`Env`]), and starting a run ([`start`], [`run_to`]).
//!
//! Operators (in `ops`) depend on this module; it depends on none of them.

mod handoff;
mod shutdown;

use std::error::Error;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_core::{Context, Panicked, Shutdown};

use crate::chan::{self, Receiver, Sender};
use crate::counters::{Counters, Meter};
use crate::error::PipelineError;
use crate::finished::Finished;
use crate::report::{Progress, Report};

pub(crate) use handoff::{InFlight, Push, hand_off, next_chunk};
pub(crate) use shutdown::Control;

/// The first failure that ends a run.
pub(crate) enum Fatal {
    Stage(Arc<str>, Box<dyn Error + Send + Sync>),
    Sink(Box<dyn Error + Send + Sync>),
}

impl Fatal {
    pub(crate) fn into_error(self, report: Report) -> PipelineError {
        let report = Box::new(report);
        match self {
            Fatal::Stage(stage, source) => PipelineError::Stage {
                stage,
                source,
                report,
            },
            Fatal::Sink(source) => PipelineError::Sink { source, report },
        }
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

/// Builds a stage that sends into the given queue.
pub(crate) type BuildChan<T> = Box<dyn FnOnce(&mut Env, Sender<T>) + Send>;
/// Builds a stage that hands its chunks to the given [`Push`].
pub(crate) type BuildFusable<T> = Box<dyn FnOnce(&mut Env, Box<dyn Push<T>>) + Send>;

/// How a stage is built once the run starts, given where its output goes.
pub(crate) enum Build<T> {
    /// A stage that sends its output into the next stage's queue.
    Chan(BuildChan<T>),
    /// A sync stage that can run the single-worker sync stages after it in its own loop:
    /// given the first of them (which hands on to the rest), or the next stage's queue.
    Fusable(BuildFusable<T>),
}

impl<T: Send + 'static> Build<T> {
    /// Builds the stage with its output going into `tx`.
    pub(crate) fn build(self, env: &mut Env, tx: Sender<T>) {
        match self {
            Build::Chan(f) => f(env, tx),
            Build::Fusable(f) => f(env, Box::new(tx)),
        }
    }
}

/// Build-time state: the stages register here and queue their tasks.
pub(crate) struct Env {
    pub(crate) shared: Arc<Shared>,
    registry: Arc<crate::counters::Registry>,
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

    /// Records that the stage with counters `from` hands on to the stage with counters `to`.
    pub(crate) fn link(&self, from: &Arc<Counters>, to: &Arc<Counters>) {
        self.registry.link(from, to);
    }

    /// The input queue of a stage whose counters are `c`.
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

/// A pipeline's settings, from its builder methods.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Opts {
    /// `None`: [`auto_chunk`] for each stage's item type.
    pub(crate) chunk: Option<usize>,
    pub(crate) default_buffer: Option<usize>,
    pub(crate) shutdown: Shutdown,
}

/// The sink's end of a started run.
pub(crate) struct SinkIn<T> {
    pub(crate) rx: Receiver<T>,
    pub(crate) meter: Meter,
    pub(crate) shared: Arc<Shared>,
}

impl<T> SinkIn<T> {
    /// The next chunk for the sink, counted received; `None` at the end or on abort.
    pub(crate) async fn next(&mut self) -> Option<Vec<T>> {
        next_chunk(&mut self.rx, &mut self.meter, &self.shared).await
    }
}

/// Builds the stages and spawns their tasks.
pub(crate) fn start<T: Send + 'static>(
    build: Build<T>,
    opts: Opts,
    progress: Progress,
    ctx: Context,
) -> (SinkIn<T>, Control) {
    let abort = CancellationToken::new();
    let shared = Arc::new(Shared {
        stop: abort.child_token(),
        abort,
        fatal: Mutex::new(None),
        ctx,
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
    build.build(&mut env, tx);
    env.register(&sink);
    let mut tasks = JoinSet::new();
    for (name, fut) in std::mem::take(&mut env.tasks) {
        let shared = shared.clone();
        tasks.spawn(async move {
            // User closures are caught where they run; this catches a panic in weft's own
            // stage code, so it still fails the run with the stage's name instead of hanging.
            if let Err(p) = AssertUnwindSafe(fut).catch_unwind().await {
                shared.fail(Fatal::Stage(name, Box::new(Panicked::from_payload(&*p))));
            }
        });
    }
    let control = Control::new(
        shared.clone(),
        tasks,
        opts.shutdown,
        progress,
        Instant::now(),
    );
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
    ctx: Context,
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
