//! The [`Pipeline`] builder: sources, stages, fan-out/fan-in and sinks.

pub(crate) mod run;
pub(crate) mod tasks;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::Stream;
use futures_util::future::FutureExt;
use tokio::sync::mpsc;
use weft_core::Context;

use crate::chan::Sender;
use crate::error::{Fatal, PipelineError, SinkClosed};
use crate::policy::{Overflow, StageFailure};
use crate::report::{Meter, Progress};
use crate::stage::{IntoStage, Stage};
use run::{Build, Env, Finished, Opts, PipelineStream, Shutdown, SinkIn};
use tasks::{AsyncCfg, ItemDone, Op, SyncCfg};

/// A pipeline under construction: a source and the stages after it, each of which will run in
/// its own task, joined by bounded queues. Nothing runs until a sink method
/// ([`collect`](Pipeline::collect), [`for_each`](Pipeline::for_each), ...) is awaited or
/// [`into_stream`](Pipeline::into_stream) is called.
///
/// Go's pipeline, one line per stage:
///
/// ```
/// use weft_core::Context;
/// use weft_pipeline::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // generate -> square -> keep the odd ones
/// let done = Pipeline::from_iter(1..=5u64)
///     .map("square", |x| x * x)
///     .filter("odd", |x| x % 2 == 1)
///     .collect::<Vec<_>>(&Context::background())
///     .await?;
/// assert_eq!(done.output, [1, 9, 25]);
/// done.report.check()?; // every item accounted for, at every stage
/// # Ok(())
/// # }
/// ```
///
/// # How items move
///
/// Stages hand items on in chunks (a `Vec` per hand-off, up to
/// [`chunk_size`](Pipeline::chunk_size) items), so the cost of a queue operation and a task
/// wake-up is paid once per chunk instead of once per item. A source hands on a partial chunk
/// as soon as its input would wait, so a slow source adds no latency. Each stage's queue is
/// bounded by its [`buffer`](Stage::buffer) (in items): a slow stage makes the stages before
/// it wait (backpressure) instead of filling memory.
///
/// # Differences from Go
///
/// - No channel to close and no goroutine to leak: a stage ends when its input ends, and every
///   task of a run is joined before the run returns.
/// - Every item ends in exactly one counted outcome; see [`Report`](crate::Report).
/// - A panic in a stage closure does not crash the process: it goes to the stage's
///   [`ErrorPolicy`](crate::ErrorPolicy).
#[must_use = "a pipeline does nothing until it is run by a sink method"]
pub struct Pipeline<T> {
    build: Build<T>,
    opts: Opts,
    progress: Progress,
}

impl<T> fmt::Debug for Pipeline<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("chunk_size", &self.opts.chunk)
            .field("default_buffer", &self.opts.default_buffer)
            .field("shutdown", &self.opts.shutdown)
            .finish_non_exhaustive()
    }
}

/// The sending half a [generator](Pipeline::generate) gets.
///
/// Sends wait while the pipeline is full (backpressure) and fail once the pipeline stops its
/// source (the context is done, or a stage failed).
#[derive(Debug, Clone)]
pub struct Emitter<T> {
    tx: mpsc::Sender<T>,
}

/// The pipeline stopped its source; the item is handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("pipeline source stopped")]
pub struct Stopped<T>(pub T);

impl<T> Emitter<T> {
    /// Sends one item into the pipeline, waiting while it is full.
    ///
    /// # Errors
    ///
    /// [`Stopped`] with the item, once the pipeline stopped its source.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, the item was not sent (and
    /// is dropped with the future).
    pub async fn send(&self, item: T) -> Result<(), Stopped<T>> {
        self.tx.send(item).await.map_err(|e| Stopped(e.0))
    }
}

impl<T: Send + 'static> Pipeline<T> {
    fn source(
        name: &'static str,
        f: impl FnOnce(&mut Env, Sender<T>, Meter, Arc<str>) + Send + 'static,
    ) -> Self {
        Pipeline {
            build: Box::new(move |env, tx| {
                let c = env.counters(name);
                env.register(&c);
                env.link(&c, &tx);
                f(env, tx, Meter::new(c.clone()), c.name.clone());
            }),
            opts: Opts::default(),
            progress: Progress::default(),
        }
    }

    /// A pipeline over an iterator (Go's `gen(nums...)`). The iterator runs in the source
    /// task, a chunk at a time. The source stage is named `source`.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::from_iter(vec!["a", "b"]).collect::<Vec<_>>(&Context::background()).await?;
    /// assert_eq!(done.output, ["a", "b"]);
    /// assert_eq!(done.report.stage("source").map(|s| s.output), Some(2));
    /// # Ok(())
    /// # }
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I>(iter: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        let it = iter.into_iter();
        Self::source("source", move |env, tx, meter, _| {
            let fut = tasks::iter_source(it, tx, meter, env.chunk::<I::Item>(), env.shared.clone());
            env.spawn(&Arc::from("source"), fut);
        })
    }

    /// A pipeline over any [`Stream`]: a tokio or futures channel receiver, a weft channel
    /// receiver (it is a `Stream`), lines of a file, ... The source stage is named `source`
    /// and takes what the stream has ready, up to a chunk, per hand-off.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (tx, rx) = tokio::sync::mpsc::channel(8);
    /// tokio::spawn(async move {
    ///     for i in 0..3u32 {
    ///         tx.send(i).await.expect("pipeline running");
    ///     }
    /// });
    /// let rx = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|x| (x, rx)) });
    /// let done = Pipeline::from_stream(rx).map("inc", |x| x + 1).collect::<Vec<_>>(&Context::background()).await?;
    /// assert_eq!(done.output, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Self::source("source", move |env, tx, meter, _| {
            let fut = tasks::stream_source(
                stream,
                tx,
                meter,
                env.chunk::<S::Item>(),
                env.shared.clone(),
            );
            env.spawn(&Arc::from("source"), fut);
        })
    }

    /// A pipeline fed by a generator: an async closure that gets a [`Context`] and an
    /// [`Emitter`] and sends items until it is done (Go's generator goroutine). Its context is
    /// done, and its sends fail, once the pipeline stops its source; the generator future is
    /// dropped then. A panic in it fails the run (stage `source`).
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::generate(|ctx, tx| async move {
    ///     let mut n = 0u64;
    ///     while !ctx.is_done() && n < 4 {
    ///         if tx.send(n).await.is_err() {
    ///             return; // the pipeline stopped
    ///         }
    ///         n += 1;
    ///     }
    /// })
    /// .map("square", |x| x * x)
    /// .collect::<Vec<_>>(&Context::background())
    /// .await?;
    /// assert_eq!(done.output, [0, 1, 4, 9]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn generate<G, Fut>(generator: G) -> Self
    where
        G: FnOnce(Context, Emitter<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::source("source", move |env, tx, meter, name| {
            let (item_tx, item_rx) = mpsc::channel(env.chunk::<T>().min(tx.capacity()).max(1));
            let (gen_ctx, stop) = env.shared.ctx.without_cancel().with_cancel();
            let fut = generator(gen_ctx, Emitter { tx: item_tx });
            let task = tasks::generator_source(
                fut,
                item_rx,
                stop,
                tx,
                meter,
                env.chunk::<T>(),
                name.clone(),
                env.shared.clone(),
            );
            env.spawn(&name, task);
        })
    }

    /// Joins several pipelines into one (fan-in, Go's `merge`): their last stages all feed the
    /// next stage's queue, in whatever order items arrive. Settings (chunk size, buffer,
    /// shutdown) come from the first pipeline.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let evens = Pipeline::from_iter((0..100u64).step_by(2));
    /// let odds = Pipeline::from_iter((1..100u64).step_by(2));
    /// let done = Pipeline::merge([evens, odds]).fold(&Context::background(), 0, |a, x| a + x).await?;
    /// assert_eq!(done.output, 4950);
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge(pipelines: impl IntoIterator<Item = Pipeline<T>>) -> Self {
        let ps: Vec<Pipeline<T>> = pipelines.into_iter().collect();
        let (opts, progress) = ps
            .first()
            .map(|p| (p.opts, p.progress.clone()))
            .unwrap_or_default();
        Pipeline {
            build: Box::new(move |env, tx| {
                for p in ps {
                    (p.build)(env, tx.clone());
                }
            }),
            opts,
            progress,
        }
    }

    // ------------------------------------------------------------ settings

    /// The most items moved per hand-off between stages. Larger chunks cost less per item (a
    /// hand-off that wakes a parked task costs microseconds on a busy machine); smaller ones
    /// use less memory and make load shedding finer. Latency does not depend on it: a source
    /// hands on a partial chunk as soon as its input would wait. By default it depends on the
    /// item type: 64 KiB worth of items, at least 256 and at most 8192 (8192 `u64`s, 2730
    /// `String`s); see `BENCHMARKS.md` for the effect on throughput.
    pub fn chunk_size(mut self, items: usize) -> Self {
        self.opts.chunk = Some(items.max(1));
        self
    }

    /// The queue size of stages that do not set their own [`Stage::buffer`]. By default, two
    /// chunks of the stage's input type (`2 * chunk_size`), so one can be filled while the
    /// other is taken.
    pub fn default_buffer(mut self, items: usize) -> Self {
        self.opts.default_buffer = Some(items.max(1));
        self
    }

    /// What the run does when its context is done. By default, [`Shutdown::Abort`].
    ///
    /// Graceful shutdown, Go's "stop the generator, let the rest finish":
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use weft_core::Context;
    /// use weft_pipeline::{Pipeline, Shutdown, StopReason};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_millis(105)).await;
    ///     cancel.cancel(); // e.g. Ctrl-C
    /// });
    /// let produced = Arc::new(AtomicU64::new(0));
    /// let p = produced.clone();
    /// let done = Pipeline::generate(move |ctx, tx| async move {
    ///     let mut n = 0u64;
    ///     while !ctx.is_done() {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///         if tx.send(n).await.is_err() {
    ///             return;
    ///         }
    ///         p.fetch_add(1, Ordering::Relaxed);
    ///         n += 1;
    ///     }
    /// })
    /// .map("double", |x| x * 2)
    /// .shutdown(Shutdown::drain(Duration::from_secs(5)))
    /// .collect::<Vec<_>>(&ctx)
    /// .await?;
    /// assert_eq!(done.report.stop, StopReason::Drained);
    /// let produced = produced.load(Ordering::Relaxed);
    /// assert!(produced >= 10);
    /// assert_eq!(done.output.len() as u64, produced, "everything produced went through");
    /// done.report.check()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(mut self, mode: Shutdown) -> Self {
        self.opts.shutdown = mode;
        self
    }

    /// A live view of the counters of the run this pipeline will become. Take it before
    /// running; see [`Progress`].
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    // ------------------------------------------------------------ stages

    fn then_stage<U: Send + 'static, P>(
        self,
        name: std::borrow::Cow<'static, str>,
        buffer: Option<usize>,
        overflow: Overflow,
        spawn: impl FnOnce(&mut Env, crate::chan::Receiver<T>, Sender<U>, Meter, Arc<str>, P)
        + Send
        + 'static,
        extra: P,
    ) -> Pipeline<U>
    where
        P: Send + 'static,
    {
        let prev = self.build;
        Pipeline {
            build: Box::new(move |env, tx_out| {
                let c = env.counters(&name);
                let (tx_in, rx_in) = env.channel(buffer, overflow == Overflow::DropNewest, &c);
                prev(env, tx_in);
                env.register(&c);
                env.link(&c, &tx_out);
                let n = c.name.clone();
                spawn(env, rx_in, tx_out, Meter::new(c), n, extra);
            }),
            opts: self.opts,
            progress: self.progress,
        }
    }

    fn op_stage<O>(self, stage: Stage<T, O::Err>, op: O) -> Pipeline<O::Out>
    where
        O: Op<T>,
    {
        let Stage {
            name,
            workers,
            ordered,
            buffer,
            blocking,
            overflow,
            policy,
        } = stage;
        self.then_stage(
            name,
            buffer,
            overflow,
            move |env, rx, tx, meter, name, (op, policy)| {
                let cfg = SyncCfg {
                    name: name.clone(),
                    workers: workers.get(),
                    ordered,
                    blocking,
                    policy,
                };
                let fut = tasks::sync_stage(rx, tx, meter, Arc::new(op), cfg, env.shared.clone());
                env.spawn(&name, fut);
            },
            (op, policy),
        )
    }

    /// Applies `f` to every item (Go's `sq` stage).
    ///
    /// With [`Stage::workers`]`(n)` the chunks are processed by `n` tasks in parallel and the
    /// output order is kept (or not, with [`Stage::unordered`]). With [`Stage::blocking`] they
    /// run on tokio's blocking threads. A panic in `f` is handled by the stage's policy (the
    /// item is gone: it was moved into `f`).
    ///
    /// Parallel square, fanned out over 4 workers and merged back in order:
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::{Pipeline, Stage};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::from_iter(0..10_000u64)
    ///     .map(Stage::new("square").workers(4), |x| x * x)
    ///     .collect::<Vec<_>>(&Context::background())
    ///     .await?;
    /// assert!(done.output.iter().enumerate().all(|(i, &y)| y == (i * i) as u64));
    /// # Ok(())
    /// # }
    /// ```
    pub fn map<U, F>(self, stage: impl IntoStage<T, Infallible>, f: F) -> Pipeline<U>
    where
        F: Fn(T) -> U + Send + Sync + 'static,
        U: Send + 'static,
    {
        self.op_stage(stage.into_stage(), tasks::MapOp(f))
    }

    /// Keeps the items for which `pred` returns `true`; the others are counted `filtered`.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::from_iter(0..10u32).filter("big", |x| *x >= 7).collect::<Vec<_>>(&Context::background()).await?;
    /// assert_eq!(done.output, [7, 8, 9]);
    /// assert_eq!(done.report.stage("big").map(|s| s.filtered), Some(7));
    /// # Ok(())
    /// # }
    /// ```
    pub fn filter<F>(self, stage: impl IntoStage<T, Infallible>, pred: F) -> Pipeline<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.op_stage(stage.into_stage(), tasks::FilterOp(pred))
    }

    /// Maps and filters in one step: `None` is counted `filtered`.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::from_iter(["1", "x", "3"])
    ///     .filter_map("parse", |s| s.parse::<u8>().ok())
    ///     .collect::<Vec<_>>(&Context::background())
    ///     .await?;
    /// assert_eq!(done.output, [1, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn filter_map<U, F>(self, stage: impl IntoStage<T, Infallible>, f: F) -> Pipeline<U>
    where
        F: Fn(T) -> Option<U> + Send + Sync + 'static,
        U: Send + 'static,
    {
        self.op_stage(stage.into_stage(), tasks::FilterMapOp(f))
    }

    /// Replaces each item with the items of an iterator. The stage's `emitted` counts input
    /// items, its `output` the items produced.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::from_iter(["a b", "c"])
    ///     .flat_map("words", |s| s.split(' ').collect::<Vec<_>>())
    ///     .collect::<Vec<_>>(&Context::background())
    ///     .await?;
    /// assert_eq!(done.output, ["a", "b", "c"]);
    /// let words = done.report.stage("words").expect("stage listed");
    /// assert_eq!((words.emitted, words.output), (2, 3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn flat_map<I, F>(self, stage: impl IntoStage<T, Infallible>, f: F) -> Pipeline<I::Item>
    where
        F: Fn(T) -> I + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
    {
        self.op_stage(stage.into_stage(), tasks::FlatMapOp(f))
    }

    /// Applies a fallible `f`; failures (errors and panics) go to the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy). `f` borrows the item, so a failed item can be
    /// retried and handed back in a dead letter.
    ///
    /// The error strategies of the Go material, each in a line:
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::Context;
    /// use weft_pipeline::{Backoff, ErrorPolicy, Pipeline, PipelineError, Retry, Stage};
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("odd number {0}")]
    /// struct Odd(u32);
    ///
    /// fn check(x: &u32) -> Result<u32, Odd> {
    ///     if x % 2 == 1 { Err(Odd(*x)) } else { Ok(*x) }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ctx = Context::background();
    /// let src = || Pipeline::from_iter(0..6u32);
    ///
    /// // 1. Fail fast: the run is cancelled, the first error comes back with the stage name.
    /// let err = src().try_map("check", check).collect::<Vec<_>>(&ctx).await.unwrap_err();
    /// assert!(matches!(&err, PipelineError::Stage { stage, .. } if &**stage == "check"));
    ///
    /// // 2. Skip and count.
    /// let skip = Stage::new("check").on_error(ErrorPolicy::skip());
    /// let done = src().try_map(skip, check).collect::<Vec<_>>(&ctx).await?;
    /// assert_eq!((done.output, done.report.failed()), (vec![0, 2, 4], 3));
    ///
    /// // 3. Retry with backoff (here the errors persist, so the items are skipped after 2 retries).
    /// let retry = Retry::new(2).backoff(Backoff::constant(Duration::from_millis(5)));
    /// let stage = Stage::new("check").on_error(ErrorPolicy::skip().with_retry(retry));
    /// let done = src().try_map(stage, check).collect::<Vec<_>>(&ctx).await?;
    /// assert_eq!(done.report.stage("check").map(|s| s.retried), Some(6));
    ///
    /// // 4. Dead-letter channel: failed items come back with their error.
    /// let (dl_tx, mut dl_rx) = tokio::sync::mpsc::channel(16);
    /// let stage = Stage::new("check").on_error(ErrorPolicy::dead_letter(dl_tx));
    /// let done = src().try_map(stage, check).collect::<Vec<_>>(&ctx).await?;
    /// assert_eq!(done.output, [0, 2, 4]);
    /// let letter = dl_rx.recv().await.expect("a dead letter");
    /// assert_eq!((letter.item, letter.error.to_string()), (Some(1), "odd number 1".to_string()));
    ///
    /// // 5. Errors as values: map to a Result and let a later stage decide.
    /// let done = src().map("check", |x| check(&x)).collect::<Vec<_>>(&ctx).await?;
    /// assert_eq!(done.output.iter().filter(|r| r.is_err()).count(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_map<U, E, F>(self, stage: impl IntoStage<T, E>, f: F) -> Pipeline<U>
    where
        F: Fn(&T) -> Result<U, E> + Send + Sync + 'static,
        U: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.op_stage(stage.into_stage(), tasks::TryMapOp(f))
    }

    /// Calls `f` on each item and passes it on unchanged (logging, metrics).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let s = seen.clone();
    /// Pipeline::from_iter(0..5u64)
    ///     .inspect("count", move |_| { s.fetch_add(1, Ordering::Relaxed); })
    ///     .for_each(&Context::background(), |_| {})
    ///     .await?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn inspect<F>(self, stage: impl IntoStage<T, Infallible>, f: F) -> Pipeline<T>
    where
        F: Fn(&T) + Send + Sync + 'static,
    {
        self.op_stage(stage.into_stage(), tasks::InspectOp(f))
    }

    /// Applies an async `f` (I/O: a request, a query) to every item, with up to
    /// [`Stage::workers`] items in flight at once in this stage's task, output in input order
    /// unless [`Stage::unordered`]. Like futures' `buffered`, but as a stage with its own task,
    /// queue and counters. A panic in `f`'s future goes to the stage's policy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::Context;
    /// use weft_pipeline::{Pipeline, Stage};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let start = tokio::time::Instant::now();
    /// let done = Pipeline::from_iter(0..8u64)
    ///     .then(Stage::new("fetch").workers(8), |x| async move {
    ///         tokio::time::sleep(Duration::from_secs(1)).await;
    ///         x * 10
    ///     })
    ///     .collect::<Vec<_>>(&Context::background())
    ///     .await?;
    /// assert_eq!(done.output, [0, 10, 20, 30, 40, 50, 60, 70]);
    /// assert!(start.elapsed() < Duration::from_secs(2), "the 8 sleeps overlapped");
    /// # Ok(())
    /// # }
    /// ```
    pub fn then<U, F, Fut>(self, stage: impl IntoStage<T, Infallible>, f: F) -> Pipeline<U>
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = U> + Send + 'static,
        U: Send + 'static,
    {
        let stage = stage.into_stage();
        let (workers, ordered, policy) = (stage.workers.get(), stage.ordered, stage.policy);
        self.then_stage(
            stage.name,
            stage.buffer,
            stage.overflow,
            move |env, rx, tx, meter, name, f| {
                let make = move |x: T| {
                    AssertUnwindSafe(f(x)).catch_unwind().map(|r| match r {
                        Ok(u) => ItemDone::Ok(u, 0),
                        Err(p) => ItemDone::Failed(
                            None,
                            StageFailure::Panicked(tasks::panic_message(&*p)),
                            0,
                        ),
                    })
                };
                let cfg = AsyncCfg {
                    name: name.clone(),
                    workers,
                    ordered,
                    chunk: env.chunk::<U>(),
                    terminal: policy.terminal,
                };
                let fut = tasks::async_stage(rx, tx, meter, make, cfg, env.shared.clone());
                env.spawn(&name, fut);
            },
            f,
        )
    }

    /// A fallible [`then`](Pipeline::then): errors and panics go to the stage's
    /// [`ErrorPolicy`](crate::ErrorPolicy). Items must be `Clone` so a retry can call `f`
    /// again and a dead letter can hand the item back. Retries run inside the item's future,
    /// so they do not hold up the other items in flight.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use weft_core::Context;
    /// use weft_pipeline::{Backoff, ErrorPolicy, Pipeline, Retry, Stage};
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// enum FetchError {
    ///     #[error("timed out")]
    ///     Timeout,
    ///     #[error("not found")]
    ///     NotFound,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// // Only transient errors are retried; the rest are skipped and counted.
    /// let retry = Retry::new(3)
    ///     .backoff(Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)))
    ///     .when(|e: &FetchError| matches!(e, FetchError::Timeout));
    /// let stage = Stage::new("fetch").workers(4).on_error(ErrorPolicy::skip().with_retry(retry));
    /// let done = Pipeline::from_iter(["ok", "flaky", "missing"])
    ///     .try_then(stage, move |url: &'static str| {
    ///         let n = c.fetch_add(1, Ordering::Relaxed);
    ///         async move {
    ///             match url {
    ///                 "flaky" if n < 4 => Err(FetchError::Timeout),
    ///                 "missing" => Err(FetchError::NotFound),
    ///                 _ => Ok(url.len()),
    ///             }
    ///         }
    ///     })
    ///     .collect::<Vec<_>>(&Context::background())
    ///     .await?;
    /// assert_eq!(done.output, [2, 5]);
    /// let fetch = done.report.stage("fetch").expect("stage listed");
    /// assert_eq!((fetch.emitted, fetch.failed), (2, 1));
    /// assert!(fetch.retried >= 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_then<U, E, F, Fut>(self, stage: impl IntoStage<T, E>, f: F) -> Pipeline<U>
    where
        T: Clone,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        U: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let stage = stage.into_stage();
        let (workers, ordered, policy) = (stage.workers.get(), stage.ordered, stage.policy);
        self.then_stage(
            stage.name,
            stage.buffer,
            stage.overflow,
            move |env, rx, tx, meter, name, f| {
                let f = Arc::new(f);
                let retry = policy.retry.clone();
                let make = move |x: T| {
                    let f = f.clone();
                    let retry = retry.clone();
                    async move {
                        let mut attempt = 0u32;
                        loop {
                            let r = AssertUnwindSafe(f(x.clone())).catch_unwind().await;
                            match r {
                                Ok(Ok(u)) => return ItemDone::Ok(u, attempt),
                                Ok(Err(e)) => {
                                    if let Some(r) = retry
                                        .as_ref()
                                        .filter(|r| attempt < r.max_retries && r.applies_to(&e))
                                    {
                                        attempt += 1;
                                        tokio::time::sleep(r.backoff.delay(attempt)).await;
                                        continue;
                                    }
                                    return ItemDone::Failed(
                                        Some(x),
                                        StageFailure::Error(e),
                                        attempt,
                                    );
                                }
                                Err(p) => {
                                    return ItemDone::Failed(
                                        Some(x),
                                        StageFailure::Panicked(tasks::panic_message(&*p)),
                                        attempt,
                                    );
                                }
                            }
                        }
                    }
                };
                let cfg = AsyncCfg {
                    name: name.clone(),
                    workers,
                    ordered,
                    chunk: env.chunk::<U>(),
                    terminal: policy.terminal,
                };
                let fut = tasks::async_stage(rx, tx, meter, make, cfg, env.shared.clone());
                env.spawn(&name, fut);
            },
            f,
        )
    }

    /// Groups items into batches of `max_items`, handing on a partial batch once its first
    /// item has waited `max_wait` (flush on size or time), and at the end of the input.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A slow source: 5 items, one every 40 ms. Batches of up to 3, flushed after 100 ms.
    /// let done = Pipeline::generate(|_ctx, tx| async move {
    ///     for i in 0..5u32 {
    ///         tokio::time::sleep(Duration::from_millis(40)).await;
    ///         if tx.send(i).await.is_err() { return; }
    ///     }
    /// })
    /// .batch("rows", 3, Duration::from_millis(100))
    /// .collect::<Vec<_>>(&Context::background())
    /// .await?;
    /// // [0,1,2] fills up; [3,4] is flushed by the end of the input.
    /// assert_eq!(done.output, [vec![0, 1, 2], vec![3, 4]]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn batch(
        self,
        stage: impl IntoStage<T, Infallible>,
        max_items: usize,
        max_wait: Duration,
    ) -> Pipeline<Vec<T>> {
        let stage = stage.into_stage();
        self.then_stage(
            stage.name,
            stage.buffer,
            stage.overflow,
            move |env, rx, tx, meter, name, ()| {
                let fut = tasks::batch_stage(
                    rx,
                    tx,
                    meter,
                    max_items.max(1),
                    max_wait,
                    env.shared.clone(),
                );
                env.spawn(&name, fut);
            },
            (),
        )
    }

    /// Passes at most `count` items per `per`, evenly spaced (rate limiting). The queue in
    /// front of the stage fills up and slows the stages before it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let start = tokio::time::Instant::now();
    /// let done = Pipeline::from_iter(0..10u32)
    ///     .throttle("api", 5, Duration::from_secs(1))
    ///     .collect::<Vec<_>>(&Context::background())
    ///     .await?;
    /// assert_eq!(done.output.len(), 10);
    /// assert!(start.elapsed() >= Duration::from_millis(1800), "5 per second");
    /// # Ok(())
    /// # }
    /// ```
    pub fn throttle(
        self,
        stage: impl IntoStage<T, Infallible>,
        count: u32,
        per: Duration,
    ) -> Pipeline<T> {
        let stage = stage.into_stage();
        let period = per / count.max(1);
        self.then_stage(
            stage.name,
            stage.buffer,
            stage.overflow,
            move |env, rx, tx, meter, name, ()| {
                let fut = tasks::throttle_stage(rx, tx, meter, period, env.shared.clone());
                env.spawn(&name, fut);
            },
            (),
        )
    }

    /// Sends every item to each of `branches` branches (tee), built by `branch(i, input)`,
    /// and merges their outputs. Branch stages are named `{stage}[{i}]/{name}` in the report.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::from_iter(1..=3u64)
    ///     .broadcast("tee", 2, |i, branch| match i {
    ///         0 => branch.map("double", |x| x * 2),
    ///         _ => branch.map("negate", |x| x * 100),
    ///     })
    ///     .collect::<Vec<_>>(&Context::background())
    ///     .await?;
    /// let mut out = done.output;
    /// out.sort();
    /// assert_eq!(out, [2, 4, 6, 100, 200, 300]);
    /// assert_eq!(done.report.stage("tee[1]/negate").map(|s| s.received), Some(3));
    /// done.report.check()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast<U, F>(
        self,
        stage: impl IntoStage<T, Infallible>,
        branches: usize,
        branch: F,
    ) -> Pipeline<U>
    where
        T: Clone,
        U: Send + 'static,
        F: FnMut(usize, Pipeline<T>) -> Pipeline<U> + Send + 'static,
    {
        self.fan_out(
            stage.into_stage(),
            branches,
            branch,
            |rx, senders, meter, shared| tasks::broadcast_stage(rx, senders, meter, shared),
        )
    }

    /// Sends each item to one of `branches` branches, chosen by hashing `key(item)`, so items
    /// with the same key go through the same branch, in order. Branches are built by
    /// `branch(i, input)` and their outputs merged.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let events = vec![("alice", 1), ("bob", 1), ("alice", 2), ("bob", 2), ("alice", 3)];
    /// let done = Pipeline::from_iter(events)
    ///     .partition("by_user", 2, |e: &(&str, i32)| e.0, |_, branch| branch.map("tag", |e| e))
    ///     .collect::<Vec<_>>(&Context::background())
    ///     .await?;
    /// let alice: Vec<i32> = done.output.iter().filter(|e| e.0 == "alice").map(|e| e.1).collect();
    /// assert_eq!(alice, [1, 2, 3], "per-key order is kept");
    /// done.report.check()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn partition<U, K, KF, F>(
        self,
        stage: impl IntoStage<T, Infallible>,
        branches: usize,
        key: KF,
        branch: F,
    ) -> Pipeline<U>
    where
        U: Send + 'static,
        K: Hash + 'static,
        KF: Fn(&T) -> K + Send + Sync + 'static,
        F: FnMut(usize, Pipeline<T>) -> Pipeline<U> + Send + 'static,
    {
        self.fan_out(
            stage.into_stage(),
            branches,
            branch,
            move |rx, senders, meter, shared| {
                tasks::partition_stage(rx, senders, meter, key, shared)
            },
        )
    }

    fn fan_out<U, F, R, RF>(
        self,
        stage: Stage<T, Infallible>,
        branches: usize,
        mut branch: F,
        runner: R,
    ) -> Pipeline<U>
    where
        U: Send + 'static,
        F: FnMut(usize, Pipeline<T>) -> Pipeline<U> + Send + 'static,
        R: FnOnce(crate::chan::Receiver<T>, Vec<Sender<T>>, Meter, Arc<run::Shared>) -> RF
            + Send
            + 'static,
        RF: Future<Output = ()> + Send + 'static,
    {
        let branches = branches.max(1);
        let prev = self.build;
        let (opts, progress) = (self.opts, self.progress.clone());
        Pipeline {
            build: Box::new(move |env, tx_out| {
                let c = env.counters(&stage.name);
                let (tx_in, rx_in) =
                    env.channel(stage.buffer, stage.overflow == Overflow::DropNewest, &c);
                prev(env, tx_in);
                env.register(&c);
                let slots: Arc<Mutex<Vec<Option<Sender<T>>>>> =
                    Arc::new(Mutex::new((0..branches).map(|_| None).collect()));
                let name = c.name.clone();
                for i in 0..branches {
                    let slot = slots.clone();
                    let input = Pipeline {
                        build: Box::new(move |_env: &mut Env, tx: Sender<T>| {
                            slot.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(tx);
                        }),
                        opts,
                        progress: progress.clone(),
                    };
                    let p = branch(i, input);
                    let tx = tx_out.clone();
                    env.with_prefix(&format!("{}[{i}]/", stage.name), |env| (p.build)(env, tx));
                }
                drop(tx_out);
                let senders: Vec<Sender<T>> =
                    std::mem::take(&mut *slots.lock().unwrap_or_else(|e| e.into_inner()))
                        .into_iter()
                        .flatten()
                        .collect();
                for s in &senders {
                    env.link(&c, s);
                }
                let fut = runner(rx_in, senders, Meter::new(c), env.shared.clone());
                env.spawn(&name, fut);
            }),
            opts,
            progress: self.progress,
        }
    }
}

impl<C, T> Pipeline<C>
where
    C: IntoIterator<Item = T> + Send + 'static,
    T: Send + 'static,
{
    /// Flattens batches (or any collections) back into items.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::from_iter(0..10u32)
    ///     .batch("batch", 4, Duration::from_millis(10))
    ///     .map("sum", |b: Vec<u32>| vec![b.iter().sum::<u32>(); b.len()])
    ///     .unbatch("unbatch")
    ///     .collect::<Vec<_>>(&Context::background())
    ///     .await?;
    /// assert_eq!(done.output.len(), 10);
    /// # Ok(())
    /// # }
    /// ```
    pub fn unbatch(self, stage: impl IntoStage<C, Infallible>) -> Pipeline<T> {
        self.flat_map(stage, |c| c)
    }
}

// ---------------------------------------------------------------- sinks

impl<T: Send + 'static> Pipeline<T> {
    /// Runs the pipeline under `ctx` and collects its output.
    ///
    /// A done context is not an error: the items collected so far come back, and
    /// [`Report::stop`](crate::Report::stop) says why the run stopped.
    ///
    /// # Errors
    ///
    /// [`PipelineError::Stage`] for the first failure of a fail-fast stage (the run was
    /// cancelled).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future aborts the run (every stage task is stopped) and
    /// loses the items in flight and the report.
    pub async fn collect<C>(self, ctx: &Context) -> Result<Finished<C>, PipelineError>
    where
        C: Default + Extend<T>,
    {
        run::run_to(
            self.build,
            self.opts,
            self.progress,
            ctx,
            |mut sink: SinkIn<T>| async move {
                let mut out = C::default();
                while let Some(chunk) = sink.next().await {
                    let n = chunk.len();
                    out.extend(chunk);
                    sink.meter.emitted(n as u64, n);
                }
                out
            },
        )
        .await
    }

    /// Runs the pipeline under `ctx`, folding its output into one value.
    ///
    /// # Errors
    ///
    /// As [`collect`](Pipeline::collect).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`collect`](Pipeline::collect).
    pub async fn fold<A, F>(
        self,
        ctx: &Context,
        init: A,
        mut f: F,
    ) -> Result<Finished<A>, PipelineError>
    where
        F: FnMut(A, T) -> A,
    {
        run::run_to(
            self.build,
            self.opts,
            self.progress,
            ctx,
            |mut sink: SinkIn<T>| async move {
                let mut acc = init;
                while let Some(chunk) = sink.next().await {
                    let n = chunk.len();
                    // `Iterator::fold` keeps the accumulator in a local of its own: written
                    // as a loop here, it lives in this future's state, which the compiler
                    // cannot keep in a register while reading the chunk (they might alias).
                    acc = chunk.into_iter().fold(acc, &mut f);
                    sink.meter.emitted(n as u64, n);
                }
                acc
            },
        )
        .await
    }

    /// Runs the pipeline under `ctx`, calling `f` on each output item in the caller's task.
    ///
    /// # Errors
    ///
    /// As [`collect`](Pipeline::collect).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`collect`](Pipeline::collect).
    pub async fn for_each<F>(self, ctx: &Context, mut f: F) -> Result<Finished<()>, PipelineError>
    where
        F: FnMut(T),
    {
        self.fold(ctx, (), move |(), x| f(x)).await
    }

    /// Runs the pipeline under `ctx`, sending each output item into a tokio channel, one item
    /// at a time (the channel's own backpressure applies).
    ///
    /// # Errors
    ///
    /// [`PipelineError::Sink`] with [`SinkClosed`] if the channel's receiver is dropped (the
    /// item that could not be sent is counted `failed` in the `sink` stage), and the errors
    /// of [`collect`](Pipeline::collect).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`collect`](Pipeline::collect).
    ///
    /// # Examples
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    /// let run = tokio::spawn(Pipeline::from_iter(0..3u8).into_channel(Context::background(), tx));
    /// let mut got = Vec::new();
    /// while let Some(x) = rx.recv().await {
    ///     got.push(x);
    /// }
    /// assert_eq!(got, [0, 1, 2]);
    /// run.await??;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn into_channel(
        self,
        ctx: Context,
        tx: mpsc::Sender<T>,
    ) -> Result<Finished<()>, PipelineError> {
        self.into_sink(
            ctx,
            futures_util::sink::unfold(tx, |tx, x: T| async move {
                tx.send(x).await.map_err(|_| SinkClosed)?;
                Ok::<_, SinkClosed>(tx)
            }),
        )
        .await
    }

    /// Runs the pipeline under `ctx`, feeding its output into any [`futures_util::Sink`]
    /// (flushed once per chunk and at the end).
    ///
    /// # Errors
    ///
    /// [`PipelineError::Sink`] with the sink's error (the item being sent is counted
    /// `failed`), and the errors of [`collect`](Pipeline::collect).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`collect`](Pipeline::collect).
    pub async fn into_sink<S>(self, ctx: Context, sink: S) -> Result<Finished<()>, PipelineError>
    where
        S: futures_util::Sink<T>,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        use futures_util::SinkExt;
        run::run_to(
            self.build,
            self.opts,
            self.progress,
            &ctx,
            |mut si: SinkIn<T>| async move {
                let mut sink = std::pin::pin!(sink);
                while let Some(chunk) = si.next().await {
                    let mut sent = 0usize;
                    for x in chunk {
                        let r = tokio::select! {
                            biased;
                            () = si.shared.abort.cancelled() => None,
                            r = sink.feed(x) => Some(r),
                        };
                        match r {
                            Some(Ok(())) => sent += 1,
                            Some(Err(e)) => {
                                si.meter.emitted(sent as u64, sent);
                                si.meter.failed(1);
                                si.shared.fail(Fatal::Sink(Box::new(e)));
                                return;
                            }
                            None => {
                                si.meter.emitted(sent as u64, sent);
                                return;
                            }
                        }
                    }
                    si.meter.emitted(sent as u64, sent);
                    if let Err(e) = sink.flush().await {
                        si.shared.fail(Fatal::Sink(Box::new(e)));
                        return;
                    }
                }
                if let Err(e) = sink.close().await {
                    si.shared.fail(Fatal::Sink(Box::new(e)));
                }
            },
        )
        .await
        .map(|f| Finished {
            output: (),
            report: f.report,
        })
    }

    /// Starts the pipeline under `ctx` and returns its output as a [`Stream`]. The stages run
    /// in their own tasks while the stream is read; [`PipelineStream::finish`] returns the
    /// report. Must be called inside a tokio runtime.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut out = Pipeline::from_iter(0..100u32).map("inc", |x| x + 1).into_stream(&Context::background());
    /// let first: Vec<u32> = out.by_ref().take(3).collect().await;
    /// assert_eq!(first, [1, 2, 3]);
    /// // Stop early: the rest is counted as cancelled, and the sums still hold.
    /// let report = out.finish().await?;
    /// assert_eq!(report.stage("sink").map(|s| s.emitted), Some(3));
    /// report.check()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_stream(self, ctx: &Context) -> PipelineStream<T> {
        PipelineStream::new(self.build, self.opts, self.progress, ctx)
    }
}
