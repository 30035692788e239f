//! Sinks: the methods that run a pipeline ([`Pipeline::collect`], [`Pipeline::fold`],
//! [`Pipeline::for_each`], [`Pipeline::into_channel`], [`Pipeline::into_sink`]) and
//! [`Pipeline::into_stream`].
//!
//! Every sink takes its [`Context`] by value, as Go passes a `ctx`, and returns a future that
//! owns everything it uses: it can be given to `tokio::spawn` whenever the items, the output
//! and the closures are `Send + 'static`.

use tokio::sync::mpsc;
use weft_core::Context;

use crate::error::{PipelineError, SinkClosed};
use crate::finished::Finished;
use crate::pipeline::Pipeline;
use crate::run::{Fatal, SinkIn, run_to};
use crate::stream::PipelineStream;

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
    pub async fn collect<C>(self, ctx: Context) -> Result<Finished<C>, PipelineError>
    where
        C: Default + Extend<T>,
    {
        run_to(
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
        ctx: Context,
        init: A,
        mut f: F,
    ) -> Result<Finished<A>, PipelineError>
    where
        F: FnMut(A, T) -> A,
    {
        run_to(
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
    pub async fn for_each<F>(self, ctx: Context, mut f: F) -> Result<Finished<()>, PipelineError>
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
        run_to(
            self.build,
            self.opts,
            self.progress,
            ctx,
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

    /// Starts the pipeline under `ctx` and returns its output as a [`Stream`](futures_core::Stream). The stages run
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
    /// let mut out = Pipeline::from_iter(0..100u32).map("inc", |x| x + 1).into_stream(Context::background());
    /// let first: Vec<u32> = out.by_ref().take(3).collect().await;
    /// assert_eq!(first, [1, 2, 3]);
    /// // Stop early: the rest is counted as cancelled, and the sums still hold.
    /// let report = out.finish().await?;
    /// assert_eq!(report.stage("sink").map(|s| s.emitted), Some(3));
    /// report.check()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_stream(self, ctx: Context) -> PipelineStream<T> {
        PipelineStream::new(self.build, self.opts, self.progress, ctx)
    }
}
