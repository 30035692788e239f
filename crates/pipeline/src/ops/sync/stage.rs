//! The loop of a sync stage's task, the fused form that runs in the task of the sync stage
//! before it, and what both do with the items that failed.

use std::sync::Arc;

use futures_util::future::{BoxFuture, Either, Ready, ready};
use tokio::task::JoinHandle;
use weft_core::Panicked;

use super::op::{ChunkOut, Op, call_one, run_chunk};
use crate::chan::Receiver;
use crate::counters::{Counters, Meter};
use crate::ops::retry::{Resolved, retry, terminal};
use crate::policy::{ErrorPolicy, StageFailure};
use crate::run::{InFlight, Push, Shared, next_chunk};

type Job<T, U, E> =
    Either<Ready<Result<ChunkOut<T, U, E>, tokio::task::JoinError>>, JoinHandle<ChunkOut<T, U, E>>>;

pub(crate) struct SyncCfg<T, E> {
    pub(crate) name: Arc<str>,
    pub(crate) workers: usize,
    pub(crate) ordered: bool,
    pub(crate) blocking: bool,
    pub(crate) policy: ErrorPolicy<T, E>,
}

pub(crate) async fn sync_stage<T, O>(
    mut rx: Receiver<T>,
    mut tx: Box<dyn Push<O::Out>>,
    mut meter: Meter,
    op: Arc<O>,
    cfg: SyncCfg<T, O::Err>,
    shared: Arc<Shared>,
) where
    T: Send + 'static,
    O: Op<T>,
{
    let spawn = cfg.workers > 1 || cfg.blocking;
    let job = |chunk: Vec<T>| -> Job<T, O::Out, O::Err> {
        if cfg.blocking {
            let op = op.clone();
            Either::Right(tokio::task::spawn_blocking(move || run_chunk(&*op, chunk)))
        } else if spawn {
            let op = op.clone();
            Either::Right(tokio::spawn(async move { run_chunk(&*op, chunk) }))
        } else {
            Either::Left(ready(Ok(run_chunk(&*op, chunk))))
        }
    };
    if !spawn {
        // One worker on the stage's own task: no job queue at all.
        while let Some(chunk) = next_chunk(&mut rx, &mut meter, &shared).await {
            let co = run_chunk(&*op, chunk);
            if !finish_chunk(co, &mut *tx, &mut meter, &op, &cfg, &shared).await {
                return;
            }
        }
        return;
    }
    let mut inflight = InFlight::new(cfg.ordered);
    let mut input_done = false;
    loop {
        let done = if !input_done && inflight.len() < cfg.workers {
            tokio::select! {
                biased;
                () = shared.abort.cancelled() => return,
                r = inflight.next(), if inflight.len() > 0 => r,
                c = next_chunk(&mut rx, &mut meter, &shared) => {
                    match c {
                        Some(mut chunk) => {
                            // Idle workers: split the chunk so each gets a share (a slow stage
                            // fed a handful of items still runs them in parallel).
                            let idle = cfg.workers - inflight.len();
                            if spawn && idle > 1 && chunk.len() > 1 {
                                let per = chunk.len().div_ceil(idle.min(chunk.len()));
                                let mut pieces = Vec::new();
                                while chunk.len() > per {
                                    let rest = chunk.split_off(per);
                                    pieces.push(std::mem::replace(&mut chunk, rest));
                                }
                                pieces.push(chunk);
                                for p in pieces {
                                    inflight.push(job(p));
                                }
                            } else {
                                inflight.push(job(chunk));
                            }
                        }
                        None => input_done = true,
                    }
                    continue;
                }
            }
        } else if inflight.len() > 0 {
            tokio::select! {
                biased;
                () = shared.abort.cancelled() => return,
                r = inflight.next() => r,
            }
        } else {
            return;
        };
        let Some(done) = done else { continue };
        // A JoinError here means the runtime is shutting down (user panics are caught in
        // `run_chunk`); what the job held is counted as cancelled.
        let Ok(co) = done else { return };
        if !finish_chunk(co, &mut *tx, &mut meter, &op, &cfg, &shared).await {
            return;
        }
    }
}

async fn finish_chunk<T, O>(
    co: ChunkOut<T, O::Out, O::Err>,
    tx: &mut dyn Push<O::Out>,
    meter: &mut Meter,
    op: &Arc<O>,
    cfg: &SyncCfg<T, O::Err>,
    shared: &Shared,
) -> bool
where
    T: Send + 'static,
    O: Op<T>,
{
    meter.busy(co.busy);
    meter.filtered(co.filtered);
    let mut out = co.out;
    let mut emitted = co.emitted;
    if !co.failures.is_empty() {
        let mut inserts: Vec<(usize, Vec<O::Out>)> = Vec::new();
        for f in co.failures {
            match resolve(f.item, f.error, meter, op, cfg, shared).await {
                Some(Ok((outs, true))) => {
                    emitted += 1;
                    inserts.push((f.at, outs));
                }
                Some(Ok((_, false))) => meter.filtered(1),
                Some(Err(Resolved::Done)) => {}
                Some(Err(Resolved::Stop)) | None => return false,
            }
        }
        if !inserts.is_empty() {
            // Put recovered outputs back where their input was, so ordered stages stay ordered.
            let mut merged = Vec::with_capacity(out.len() + inserts.len());
            let mut rest = out.into_iter();
            let mut pos = 0;
            for (at, outs) in inserts {
                merged.extend(rest.by_ref().take(at - pos));
                pos = at;
                merged.extend(outs);
            }
            merged.extend(rest);
            out = merged;
        }
    }
    tx.push(out, emitted, O::ONE_TO_ONE, meter, shared).await
}

/// Applies the stage's policy to one failed item: retries first (a success comes back as
/// its outputs and whether they were emitted), then the terminal policy. `None`: the run was
/// aborted during the retries.
#[allow(clippy::type_complexity)]
async fn resolve<T, O>(
    item: Option<T>,
    error: StageFailure<O::Err>,
    meter: &mut Meter,
    op: &Arc<O>,
    cfg: &SyncCfg<T, O::Err>,
    shared: &Shared,
) -> Option<Result<(Vec<O::Out>, bool), Resolved>>
where
    T: Send + 'static,
    O: Op<T>,
{
    let blocking = cfg.blocking;
    let call = |x: T| {
        let op = op.clone();
        async move {
            let (slot, r, outs) = if blocking {
                match tokio::task::spawn_blocking(move || call_one(&*op, x)).await {
                    Ok(v) => v,
                    // `call_one` catches panics, so this is the runtime shutting down.
                    Err(e) => (
                        None,
                        Err(StageFailure::Panicked(Panicked::new(e.to_string()))),
                        Vec::new(),
                    ),
                }
            } else {
                call_one(&*op, x)
            };
            r.map(|emitted| (outs, emitted)).map_err(|e| (slot, e))
        }
    };
    let retried = tokio::select! {
        biased;
        () = shared.abort.cancelled() => return None,
        r = retry(cfg.policy.retry.as_ref(), item, error, call) => r,
    };
    meter.retried(u64::from(retried.retries));
    match retried.result {
        Ok(v) => Some(Ok(v)),
        Err((item, error)) => {
            meter.failed(1);
            Some(Err(terminal(
                &cfg.policy.terminal,
                &cfg.name,
                item,
                error,
                shared,
            )
            .await))
        }
    }
}

/// A single-worker sync stage running in the task of the sync stage before it: that stage
/// pushes its output chunks here instead of into a queue, and this one runs its op on them
/// and pushes on in turn. Its counters are its own, as if it had a task of its own.
pub(crate) struct Fused<T, O: Op<T>> {
    op: Arc<O>,
    cfg: SyncCfg<T, O::Err>,
    meter: Meter,
    down: Box<dyn Push<O::Out>>,
}

impl<T, O: Op<T>> Fused<T, O> {
    pub(crate) fn new(
        op: Arc<O>,
        cfg: SyncCfg<T, O::Err>,
        meter: Meter,
        down: Box<dyn Push<O::Out>>,
    ) -> Self {
        Fused {
            op,
            cfg,
            meter,
            down,
        }
    }
}

impl<T, O> Push<T> for Fused<T, O>
where
    T: Send + 'static,
    O: Op<T>,
{
    fn push<'a>(
        &'a mut self,
        chunk: Vec<T>,
        inputs: u64,
        _one_to_one: bool,
        up: &'a mut Meter,
        shared: &'a Shared,
    ) -> BoxFuture<'a, bool> {
        // The whole chunk is taken: the stage before has handed on all of it.
        up.emitted(inputs, chunk.len());
        Box::pin(async move {
            if chunk.is_empty() {
                return true;
            }
            self.meter.received(chunk.len());
            let co = run_chunk(&*self.op, chunk);
            finish_chunk(
                co,
                &mut *self.down,
                &mut self.meter,
                &self.op,
                &self.cfg,
                shared,
            )
            .await
        })
    }

    fn counters(&self) -> &Arc<Counters> {
        &self.meter.c
    }
}
