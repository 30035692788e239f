//! Sources: [`Pipeline::from_iter`], [`Pipeline::from_stream`], [`Pipeline::generate`], and
//! the loops of their tasks.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;

use futures_core::Stream;
use futures_util::future::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use weft_core::{Context, Panicked};

use crate::chan::Sender;
use crate::counters::Meter;
use crate::emitter::Emitter;
use crate::pipeline::Pipeline;
use crate::policy::StageFailure;
use crate::report::Progress;
use crate::run::{Build, Env, Fatal, Opts, Shared, hand_off};

impl<T: Send + 'static> Pipeline<T> {
    fn source(
        name: &'static str,
        f: impl FnOnce(&mut Env, Sender<T>, Meter, Arc<str>) + Send + 'static,
    ) -> Self {
        Pipeline {
            build: Build::Chan(Box::new(move |env, tx| {
                let c = env.counters(name);
                env.register(&c);
                env.link(&c, tx.counters());
                f(env, tx, Meter::new(c.clone()), c.name.clone());
            })),
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
    /// let done = Pipeline::from_iter(vec!["a", "b"]).collect::<Vec<_>>(Context::background()).await?;
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
            let fut = iter_source(it, tx, meter, env.chunk::<I::Item>(), env.shared.clone());
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
    /// let done = Pipeline::from_stream(rx).map("inc", |x| x + 1).collect::<Vec<_>>(Context::background()).await?;
    /// assert_eq!(done.output, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Self::source("source", move |env, tx, meter, _| {
            let fut = stream_source(
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
    /// .collect::<Vec<_>>(Context::background())
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
            let fut = generator(gen_ctx, Emitter::new(item_tx));
            let task = generator_source(
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
}

async fn iter_source<I>(
    mut it: I,
    tx: Sender<I::Item>,
    mut meter: Meter,
    chunk: usize,
    shared: Arc<Shared>,
) where
    I: Iterator,
{
    let size = chunk.min(tx.capacity()).max(1);
    while !shared.stop.is_cancelled() {
        let t = Instant::now();
        let buf: Vec<I::Item> = it.by_ref().take(size).collect();
        meter.busy(t.elapsed());
        if buf.is_empty() {
            break;
        }
        let n = buf.len() as u64;
        meter.received(buf.len());
        if !hand_off(&tx, buf, n, true, &mut meter, &shared).await {
            break;
        }
    }
}

async fn stream_source<S>(
    stream: S,
    tx: Sender<S::Item>,
    mut meter: Meter,
    chunk: usize,
    shared: Arc<Shared>,
) where
    S: Stream,
{
    let size = chunk.min(tx.capacity()).max(1);
    let mut stream = std::pin::pin!(stream);
    let mut ended = false;
    while !ended {
        // Take what the stream has ready, up to a chunk; hand on a partial chunk as soon as
        // the stream would wait, so a slow source adds no latency.
        let mut buf = Vec::new();
        let fill = std::future::poll_fn(|cx| {
            loop {
                match stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(x)) => {
                        if buf.capacity() == 0 {
                            buf.reserve_exact(size);
                        }
                        buf.push(x);
                        if buf.len() >= size {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Ready(None) => {
                        ended = true;
                        return Poll::Ready(());
                    }
                    Poll::Pending if buf.is_empty() => return Poll::Pending,
                    Poll::Pending => return Poll::Ready(()),
                }
            }
        });
        let stopped = tokio::select! {
            biased;
            () = shared.stop.cancelled() => true,
            () = fill => false,
        };
        let n = buf.len() as u64;
        meter.received(buf.len());
        if !hand_off(&tx, buf, n, true, &mut meter, &shared).await || stopped {
            break;
        }
    }
}

/// Forwards what a generator sends through its [`Emitter`](crate::Emitter) channel. The
/// generator runs in a task of its own, so its timers and selects keep running while this
/// task waits for room downstream; it is aborted when the source stops or the run ends.
#[allow(clippy::too_many_arguments)]
async fn generator_source<T, Fut>(
    gen_fut: Fut,
    mut items: tokio::sync::mpsc::Receiver<T>,
    stop_generator: weft_core::context::CancelFn,
    tx: Sender<T>,
    mut meter: Meter,
    chunk: usize,
    name: Arc<str>,
    shared: Arc<Shared>,
) where
    Fut: Future<Output = ()> + Send + 'static,
{
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let size = chunk.min(tx.capacity()).max(1);
    let mut generator = tokio::spawn(AssertUnwindSafe(gen_fut).catch_unwind());
    let _abort = AbortOnDrop(generator.abort_handle());
    let mut gen_done = false;
    let mut stopping = false;
    loop {
        let mut buf = Vec::with_capacity(size);
        let got = tokio::select! {
            biased;
            () = shared.stop.cancelled(), if !stopping => {
                // Stop the generator (its context is done and its sends fail) and take what
                // it already sent: drain forwards it, abort counts it as cancelled.
                stopping = true;
                stop_generator.cancel();
                items.close();
                continue;
            }
            r = &mut generator, if !gen_done => {
                gen_done = true;
                if let Ok(Err(p)) = r {
                    shared.fail(Fatal::Stage(
                        name.clone(),
                        Box::new(StageFailure::<Infallible>::Panicked(Panicked::from_payload(&*p))),
                    ));
                    return;
                }
                continue;
            }
            n = items.recv_many(&mut buf, size) => n,
        };
        if got == 0 {
            break;
        }
        meter.received(got);
        if !hand_off(&tx, buf, got as u64, true, &mut meter, &shared).await {
            break;
        }
    }
}
