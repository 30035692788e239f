//! Batching: [`Pipeline::batch`] (flush on size or time) and [`Pipeline::unbatch`].

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::Instant;

use crate::chan::{Receiver, Sender};
use crate::counters::Meter;
use crate::pipeline::Pipeline;
use crate::run::{Shared, hand_off, next_chunk};
use crate::stage::{Accepts, IntoStage};
use std::sync::Arc;

impl<T: Send + 'static> Pipeline<T> {
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
    /// .collect::<Vec<_>>(Context::background())
    /// .await?;
    /// // [0,1,2] fills up; [3,4] is flushed by the end of the input.
    /// assert_eq!(done.output, [vec![0, 1, 2], vec![3, 4]]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `max_items` is 0, or if the stage sets workers, `unordered`, `blocking` or an error
    /// policy: batching runs no closure of the user's, one item at a time.
    #[track_caller]
    pub fn batch(
        self,
        stage: impl IntoStage<T, Infallible>,
        max_items: usize,
        max_wait: Duration,
    ) -> Pipeline<Vec<T>> {
        let stage = stage.into_stage();
        stage.check(
            "batch",
            Accepts {
                workers: false,
                blocking: false,
                policy: false,
            },
        );
        assert!(
            max_items > 0,
            "Pipeline::batch needs max_items of at least 1 (stage `{}`)",
            stage.name
        );
        self.queued_stage(
            stage.name,
            stage.buffer,
            stage.overflow,
            move |env, rx, tx, meter, name, ()| {
                let fut = batch_stage(rx, tx, meter, max_items, max_wait, env.shared.clone());
                env.spawn(&name, fut);
            },
            (),
        )
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
    ///     .collect::<Vec<_>>(Context::background())
    ///     .await?;
    /// assert_eq!(done.output.len(), 10);
    /// # Ok(())
    /// # }
    /// ```
    pub fn unbatch(self, stage: impl IntoStage<C, Infallible>) -> Pipeline<T> {
        self.flat_map(stage, |c| c)
    }
}

async fn batch_stage<T>(
    mut rx: Receiver<T>,
    tx: Sender<Vec<T>>,
    mut meter: Meter,
    max_items: usize,
    max_wait: Duration,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<T> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut input_done = false;
    while !input_done {
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = shared.abort.cancelled() => return,
            c = next_chunk(&mut rx, &mut meter, &shared) => match c {
                Some(chunk) => {
                    let t = Instant::now();
                    for x in chunk {
                        if batch.is_empty() {
                            deadline = Some(Instant::now() + max_wait);
                            batch.reserve_exact(max_items);
                        }
                        batch.push(x);
                        if batch.len() >= max_items {
                            out.push(std::mem::take(&mut batch));
                            deadline = None;
                        }
                    }
                    meter.busy(t.elapsed());
                }
                None => {
                    input_done = true;
                    if !batch.is_empty() {
                        out.push(std::mem::take(&mut batch));
                    }
                }
            },
            () = timer => {
                out.push(std::mem::take(&mut batch));
                deadline = None;
            }
        }
        if !out.is_empty() {
            let inputs = out.iter().map(|b| b.len() as u64).sum();
            if !hand_off(
                &tx,
                std::mem::take(&mut out),
                inputs,
                false,
                &mut meter,
                &shared,
            )
            .await
            {
                return;
            }
        }
    }
}
