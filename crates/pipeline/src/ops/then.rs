//! Async stages: [`Pipeline::then`] and [`Pipeline::try_then`], up to `workers` item futures
//! in flight in the stage's task, and the loop that drives them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::future::FutureExt;
use weft_core::Panicked;

use crate::chan::{Receiver, Sender};
use crate::counters::Meter;
use crate::ops::retry::{Resolved, retry, terminal};
use crate::pipeline::Pipeline;
use crate::policy::{StageFailure, Terminal};
use crate::run::{InFlight, Shared, hand_off, next_chunk};
use crate::stage::{Accepts, IntoStage};

impl<T: Send + 'static> Pipeline<T> {
    /// Applies an async `f` (I/O: a request, a query) to every item, with up to
    /// [`Stage::workers`](crate::Stage::workers) items in flight at once in this stage's task, output in input order
    /// unless [`Stage::unordered`](crate::Stage::unordered). Like futures' `buffered`, but as a stage with its own task,
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
    ///     .collect::<Vec<_>>(Context::background())
    ///     .await?;
    /// assert_eq!(done.output, [0, 10, 20, 30, 40, 50, 60, 70]);
    /// assert!(start.elapsed() < Duration::from_secs(2), "the 8 sleeps overlapped");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If the stage is [`blocking`](crate::Stage::blocking): an async closure has no blocking
    /// variant (run blocking work inside it with `tokio::task::spawn_blocking`).
    #[track_caller]
    pub fn then<U, F, Fut>(self, stage: impl IntoStage<T, Infallible>, f: F) -> Pipeline<U>
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = U> + Send + 'static,
        U: Send + 'static,
    {
        let stage = stage.into_stage();
        stage.check(
            "then",
            Accepts {
                workers: true,
                blocking: false,
                policy: true,
            },
        );
        let (workers, ordered, policy) = (stage.workers.get(), stage.ordered, stage.policy);
        self.queued_stage(
            stage.name,
            stage.buffer,
            stage.overflow,
            move |env, rx, tx, meter, name, f| {
                let make = move |x: T| {
                    AssertUnwindSafe(f(x)).catch_unwind().map(|r| match r {
                        Ok(u) => ItemDone::Ok(u, 0),
                        Err(p) => ItemDone::Failed(
                            None,
                            StageFailure::Panicked(Panicked::from_payload(&*p)),
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
                let fut = async_stage(rx, tx, meter, make, cfg, env.shared.clone());
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
    ///     .collect::<Vec<_>>(Context::background())
    ///     .await?;
    /// assert_eq!(done.output, [2, 5]);
    /// let fetch = done.report.stage("fetch").expect("stage listed");
    /// assert_eq!((fetch.emitted, fetch.failed), (2, 1));
    /// assert!(fetch.retried >= 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If the stage is [`blocking`](crate::Stage::blocking): an async closure has no blocking
    /// variant (run blocking work inside it with `tokio::task::spawn_blocking`).
    #[track_caller]
    pub fn try_then<U, E, F, Fut>(self, stage: impl IntoStage<T, E>, f: F) -> Pipeline<U>
    where
        T: Clone,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        U: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let stage = stage.into_stage();
        stage.check(
            "try_then",
            Accepts {
                workers: true,
                blocking: false,
                policy: true,
            },
        );
        let (workers, ordered, policy) = (stage.workers.get(), stage.ordered, stage.policy);
        self.queued_stage(
            stage.name,
            stage.buffer,
            stage.overflow,
            move |env, rx, tx, meter, name, f| {
                let f = Arc::new(f);
                let policy_retry = policy.retry;
                let make = move |x: T| {
                    let f = f.clone();
                    let policy_retry = policy_retry.clone();
                    // One attempt: the item comes back with the failure, for the next attempt
                    // or a dead letter.
                    let mut call = move |x: T| {
                        let f = f.clone();
                        async move {
                            match AssertUnwindSafe(f(x.clone())).catch_unwind().await {
                                Ok(Ok(u)) => Ok(u),
                                Ok(Err(e)) => Err((Some(x), StageFailure::Error(e))),
                                Err(p) => Err((
                                    Some(x),
                                    StageFailure::Panicked(Panicked::from_payload(&*p)),
                                )),
                            }
                        }
                    };
                    // Retries run inside the item's future, so they hold up no other item.
                    async move {
                        let (item, error) = match call(x).await {
                            Ok(u) => return ItemDone::Ok(u, 0),
                            Err(failed) => failed,
                        };
                        let r = retry(policy_retry.as_ref(), item, error, &mut call).await;
                        match r.result {
                            Ok(u) => ItemDone::Ok(u, r.retries),
                            Err((item, error)) => ItemDone::Failed(item, error, r.retries),
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
                let fut = async_stage(rx, tx, meter, make, cfg, env.shared.clone());
                env.spawn(&name, fut);
            },
            f,
        )
    }
}

enum ItemDone<T, U, E> {
    Ok(U, u32),
    Failed(Option<T>, StageFailure<E>, u32),
}

struct AsyncCfg<T, E> {
    name: Arc<str>,
    workers: usize,
    ordered: bool,
    chunk: usize,
    terminal: Terminal<T, E>,
}

/// Runs up to `workers` item futures at a time (like `buffered`/`buffer_unordered`), in this
/// stage's task. Retries happen inside each item's future, so they do not hold up the others.
async fn async_stage<T, U, E, G, Fut>(
    mut rx: Receiver<T>,
    tx: Sender<U>,
    mut meter: Meter,
    make: G,
    cfg: AsyncCfg<T, E>,
    shared: Arc<Shared>,
) where
    G: Fn(T) -> Fut,
    Fut: Future<Output = ItemDone<T, U, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut inflight = InFlight::new(cfg.ordered);
    // Results that finished while the stage waited to hand on a chunk, in output order.
    let mut ready: VecDeque<ItemDone<T, U, E>> = VecDeque::new();
    let mut pending = Vec::new().into_iter();
    let mut input_done = false;
    let mut out: Vec<U> = Vec::new();
    loop {
        while inflight.len() < cfg.workers {
            match pending.next() {
                Some(x) => inflight.push(make(x)),
                None => break,
            }
        }
        let can_recv = !input_done && pending.len() == 0 && inflight.len() < cfg.workers;
        if inflight.len() == 0 && ready.is_empty() && !can_recv {
            break;
        }
        // Results that are ready now go into the current output chunk; when it is full, or
        // nothing is ready, hand the chunk on before waiting.
        let ready_now = if out.len() >= cfg.chunk {
            None
        } else if let Some(r) = ready.pop_front() {
            Some(r)
        } else if inflight.len() > 0 {
            inflight.next().now_or_never().flatten()
        } else {
            None
        };
        let result = match ready_now {
            Some(r) => Some(r),
            None if !out.is_empty() => {
                let chunk = std::mem::take(&mut out);
                let sent =
                    hand_off_driving(&tx, chunk, &mut meter, &shared, &mut inflight, &mut ready);
                if !sent.await {
                    return;
                }
                continue;
            }
            None => {
                tokio::select! {
                    biased;
                    () = shared.abort.cancelled() => return,
                    r = inflight.next(), if inflight.len() > 0 => r,
                    c = next_chunk(&mut rx, &mut meter, &shared), if can_recv => {
                        match c {
                            Some(chunk) => pending = chunk.into_iter(),
                            None => input_done = true,
                        }
                        None
                    }
                }
            }
        };
        match result {
            Some(ItemDone::Ok(u, retries)) => {
                if retries > 0 {
                    meter.retried(u64::from(retries));
                }
                out.push(u);
            }
            Some(ItemDone::Failed(item, error, retries)) => {
                if retries > 0 {
                    meter.retried(u64::from(retries));
                }
                meter.failed(1);
                if let Resolved::Stop =
                    terminal(&cfg.terminal, &cfg.name, item, error, &shared).await
                {
                    return;
                }
            }
            None => {}
        }
    }
    if !out.is_empty() {
        let n = out.len() as u64;
        hand_off(&tx, out, n, true, &mut meter, &shared).await;
    }
}

/// Hands `out` on while still driving the futures in flight: a full queue downstream stops
/// new items from starting but never stalls work already started (a request that is not
/// polled makes no progress and can time out on the other side). What finishes meanwhile is
/// kept in `ready`, in output order.
async fn hand_off_driving<U, F: Future>(
    tx: &Sender<U>,
    out: Vec<U>,
    meter: &mut Meter,
    shared: &Shared,
    inflight: &mut InFlight<F>,
    ready: &mut VecDeque<F::Output>,
) -> bool {
    let n = out.len() as u64;
    let send = hand_off(tx, out, n, true, meter, shared);
    tokio::pin!(send);
    loop {
        tokio::select! {
            biased;
            sent = &mut send => return sent,
            r = inflight.next(), if inflight.len() > 0 => {
                if let Some(r) = r {
                    ready.push_back(r);
                }
            }
        }
    }
}
