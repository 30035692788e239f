//! Rate limiting: [`Pipeline::throttle`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::chan::{Receiver, Sender};
use crate::counters::Meter;
use crate::pipeline::Pipeline;
use crate::run::{Shared, hand_off, next_chunk};
use crate::stage::{Accepts, IntoStage};

impl<T: Send + 'static> Pipeline<T> {
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
    ///     .collect::<Vec<_>>(Context::background())
    ///     .await?;
    /// assert_eq!(done.output.len(), 10);
    /// assert!(start.elapsed() >= Duration::from_millis(1800), "5 per second");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `count` or `per` is 0, or if the stage sets workers, `unordered`, `blocking` or an
    /// error policy: throttling runs no closure of the user's, one item at a time.
    #[track_caller]
    pub fn throttle(
        self,
        stage: impl IntoStage<T, Infallible>,
        count: u32,
        per: Duration,
    ) -> Pipeline<T> {
        let stage = stage.into_stage();
        stage.check(
            "throttle",
            Accepts {
                workers: false,
                blocking: false,
                policy: false,
            },
        );
        assert!(
            count > 0 && !per.is_zero(),
            "Pipeline::throttle needs a count and a period above 0 (stage `{}`)",
            stage.name
        );
        let period = per / count;
        self.queued_stage(
            stage.name,
            stage.buffer,
            stage.overflow,
            move |env, rx, tx, meter, name, ()| {
                let fut = throttle_stage(rx, tx, meter, period, env.shared.clone());
                env.spawn(&name, fut);
            },
            (),
        )
    }
}

async fn throttle_stage<T>(
    mut rx: Receiver<T>,
    tx: Sender<T>,
    mut meter: Meter,
    period: Duration,
    shared: Arc<Shared>,
) {
    let mut interval = tokio::time::interval(period.max(Duration::from_nanos(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while let Some(chunk) = next_chunk(&mut rx, &mut meter, &shared).await {
        for x in chunk {
            tokio::select! {
                biased;
                () = shared.abort.cancelled() => return,
                _ = interval.tick() => {}
            }
            if !hand_off(&tx, vec![x], 1, true, &mut meter, &shared).await {
                return;
            }
        }
    }
}
