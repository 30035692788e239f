//! The sync operators: [`Pipeline::map`], [`Pipeline::filter`], [`Pipeline::filter_map`],
//! [`Pipeline::flat_map`], [`Pipeline::try_map`], [`Pipeline::inspect`].
//!
//! Each is an [`Op`](op::Op) run a chunk at a time by the loop in [`stage`]. A single-worker
//! sync stage with the default queue settings right after another sync stage is *fused*: it
//! runs in that stage's task, on the chunks that stage hands on, with no queue between them
//! (a hand-off between tasks costs more than trivial closures do). Its counters stay its own.

mod op;
mod stage;

use std::convert::Infallible;
use std::sync::Arc;

use crate::counters::Meter;
use crate::pipeline::Pipeline;
use crate::policy::Overflow;
use crate::run::{Build, Env, Push};
use crate::stage::{IntoStage, Stage};
use op::Op;
use stage::{Fused, SyncCfg, sync_stage};

impl<T: Send + 'static> Pipeline<T> {
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
        // A stage that asked for a queue of its own (size or overflow) or for other threads
        // keeps its own task.
        let fusable =
            workers.get() == 1 && !blocking && buffer.is_none() && overflow == Overflow::Wait;
        let op = Arc::new(op);
        let build = match self.build {
            Build::Fusable(prev) if fusable => Build::Fusable(Box::new(
                move |env: &mut Env, down: Box<dyn Push<O::Out>>| {
                    let c = env.counters(&name);
                    env.link(&c, down.counters());
                    let cfg = SyncCfg {
                        name: c.name.clone(),
                        workers: 1,
                        ordered,
                        blocking,
                        policy,
                    };
                    let me = Fused::new(op, cfg, Meter::new(c.clone()), down);
                    prev(env, Box::new(me));
                    env.register(&c);
                },
            )),
            prev => Build::Fusable(Box::new(
                move |env: &mut Env, down: Box<dyn Push<O::Out>>| {
                    let c = env.counters(&name);
                    let (tx_in, rx_in) = env.channel(buffer, overflow == Overflow::DropNewest, &c);
                    prev.build(env, tx_in);
                    env.register(&c);
                    env.link(&c, down.counters());
                    let n = c.name.clone();
                    let cfg = SyncCfg {
                        name: n.clone(),
                        workers: workers.get(),
                        ordered,
                        blocking,
                        policy,
                    };
                    let fut = sync_stage(rx_in, down, Meter::new(c), op, cfg, env.shared.clone());
                    env.spawn(&n, fut);
                },
            )),
        };
        Pipeline {
            build,
            opts: self.opts,
            progress: self.progress,
        }
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
    ///     .collect::<Vec<_>>(Context::background())
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
        self.op_stage(stage.into_stage(), op::MapOp(f))
    }

    /// Keeps the items for which `pred` returns `true`; the others are counted `filtered`.
    ///
    /// ```
    /// use weft_core::Context;
    /// use weft_pipeline::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let done = Pipeline::from_iter(0..10u32).filter("big", |x| *x >= 7).collect::<Vec<_>>(Context::background()).await?;
    /// assert_eq!(done.output, [7, 8, 9]);
    /// assert_eq!(done.report.stage("big").map(|s| s.filtered), Some(7));
    /// # Ok(())
    /// # }
    /// ```
    pub fn filter<F>(self, stage: impl IntoStage<T, Infallible>, pred: F) -> Pipeline<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.op_stage(stage.into_stage(), op::FilterOp(pred))
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
    ///     .collect::<Vec<_>>(Context::background())
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
        self.op_stage(stage.into_stage(), op::FilterMapOp(f))
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
    ///     .collect::<Vec<_>>(Context::background())
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
        self.op_stage(stage.into_stage(), op::FlatMapOp(f))
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
    /// let err = src().try_map("check", check).collect::<Vec<_>>(ctx.clone()).await.unwrap_err();
    /// assert!(matches!(&err, PipelineError::Stage { stage, .. } if &**stage == "check"));
    ///
    /// // 2. Skip and count.
    /// let skip = Stage::new("check").on_error(ErrorPolicy::skip());
    /// let done = src().try_map(skip, check).collect::<Vec<_>>(ctx.clone()).await?;
    /// assert_eq!((done.output, done.report.failed()), (vec![0, 2, 4], 3));
    ///
    /// // 3. Retry with backoff (here the errors persist, so the items are skipped after 2 retries).
    /// let retry = Retry::new(2).backoff(Backoff::constant(Duration::from_millis(5)));
    /// let stage = Stage::new("check").on_error(ErrorPolicy::skip().with_retry(retry));
    /// let done = src().try_map(stage, check).collect::<Vec<_>>(ctx.clone()).await?;
    /// assert_eq!(done.report.stage("check").map(|s| s.retried), Some(6));
    ///
    /// // 4. Dead-letter channel: failed items come back with their error.
    /// let (dl_tx, mut dl_rx) = tokio::sync::mpsc::channel(16);
    /// let stage = Stage::new("check").on_error(ErrorPolicy::dead_letter(dl_tx));
    /// let done = src().try_map(stage, check).collect::<Vec<_>>(ctx.clone()).await?;
    /// assert_eq!(done.output, [0, 2, 4]);
    /// let letter = dl_rx.recv().await.expect("a dead letter");
    /// assert_eq!((letter.item, letter.error.to_string()), (Some(1), "odd number 1".to_string()));
    ///
    /// // 5. Errors as values: map to a Result and let a later stage decide.
    /// let done = src().map("check", |x| check(&x)).collect::<Vec<_>>(ctx.clone()).await?;
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
        self.op_stage(stage.into_stage(), op::TryMapOp(f))
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
    ///     .for_each(Context::background(), |_| {})
    ///     .await?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn inspect<F>(self, stage: impl IntoStage<T, Infallible>, f: F) -> Pipeline<T>
    where
        F: Fn(&T) + Send + Sync + 'static,
    {
        self.op_stage(stage.into_stage(), op::InspectOp(f))
    }
}
