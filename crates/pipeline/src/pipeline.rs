//! The [`Pipeline`] builder type and its settings. The operators add their methods in
//! `ops/*` (one file per operator, each with its own `impl Pipeline` block).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use weft_core::Shutdown;

use crate::chan::{Receiver, Sender};
use crate::counters::Meter;
use crate::policy::Overflow;
use crate::report::Progress;
use crate::run::{Build, Env, Opts};

/// A pipeline under construction: a source and the stages after it, which will run in tasks
/// joined by bounded queues. Nothing runs until a sink method
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
///     .collect::<Vec<_>>(Context::background())
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
/// bounded by its [`buffer`](crate::Stage::buffer) (in items): a slow stage makes the stages before
/// it wait (backpressure) instead of filling memory.
///
/// Every stage runs in a task of its own, except one: a single-worker sync stage (`map`,
/// `filter`, `filter_map`, `flat_map`, `try_map`, `inspect`) with the default
/// [`buffer`](crate::Stage::buffer) and [`overflow`](crate::Stage::overflow), right after another sync stage,
/// runs in that stage's task, on each chunk it hands on, with no queue in between. Trivial
/// closures cost less than a hand-off between tasks, so a chain of them runs as one loop; the
/// report still lists each stage with its own counters. Give a CPU-heavy stage
/// [`workers`](crate::Stage::workers) (or its own `buffer`) to run it in tasks of its own.
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
    pub(crate) build: Build<T>,
    pub(crate) opts: Opts,
    pub(crate) progress: Progress,
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

impl<T: Send + 'static> Pipeline<T> {
    /// The most items moved per hand-off between stages. Larger chunks cost less per item (a
    /// hand-off that wakes a parked task costs microseconds on a busy machine); smaller ones
    /// use less memory and make load shedding finer. Latency does not depend on it: a source
    /// hands on a partial chunk as soon as its input would wait. By default it depends on the
    /// item type: 64 KiB worth of items, at least 256 and at most 8192 (8192 `u64`s, 2730
    /// `String`s); see `BENCHMARKS.md` for the effect on throughput.
    ///
    /// # Panics
    ///
    /// If `items` is 0.
    #[track_caller]
    pub fn chunk_size(mut self, items: usize) -> Self {
        assert!(items > 0, "Pipeline::chunk_size must be at least 1");
        self.opts.chunk = Some(items);
        self
    }

    /// The queue size of stages that do not set their own [`Stage::buffer`](crate::Stage::buffer). By default, two
    /// chunks of the stage's input type (`2 * chunk_size`), so one can be filled while the
    /// other is taken.
    ///
    /// # Panics
    ///
    /// If `items` is 0.
    #[track_caller]
    pub fn default_buffer(mut self, items: usize) -> Self {
        assert!(items > 0, "Pipeline::default_buffer must be at least 1");
        self.opts.default_buffer = Some(items);
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
    /// .collect::<Vec<_>>(ctx.clone())
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

    /// Adds a stage with an input queue of its own, run by `spawn` (which gets the queue's
    /// receiving end, the next stage's sender, the stage's meter and name, and `extra`).
    pub(crate) fn queued_stage<U: Send + 'static, P>(
        self,
        name: Cow<'static, str>,
        buffer: Option<usize>,
        overflow: Overflow,
        spawn: impl FnOnce(&mut Env, Receiver<T>, Sender<U>, Meter, Arc<str>, P) + Send + 'static,
        extra: P,
    ) -> Pipeline<U>
    where
        P: Send + 'static,
    {
        let build = Box::new(move |env: &mut Env, tx_out: Sender<U>| {
            let c = env.counters(&name);
            let (tx_in, rx_in) = env.channel(buffer, overflow == Overflow::DropNewest, &c);
            self.build.build(env, tx_in);
            env.register(&c);
            env.link(&c, tx_out.counters());
            let n = c.name.clone();
            spawn(env, rx_in, tx_out, Meter::new(c), n, extra);
        });
        Pipeline {
            build: Build::Chan(build),
            opts: self.opts,
            progress: self.progress,
        }
    }
}
