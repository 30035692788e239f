//! The loops that run inside stage tasks.
//!
//! Plan shared by every loop: take a chunk from the input queue (or the user's source), count
//! it `received`, do the stage's work on the whole chunk, count the outcomes, hand the output
//! chunk on. Counters are touched once per chunk. Whatever the loop received and did not
//! account for when it returns (abort, fail-fast, unwind) is counted `cancelled` by
//! [`Meter`]'s `Drop`.

use std::any::Any;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_core::Stream;
use futures_util::future::{Either, FutureExt, Ready, ready};
use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::chan::{Receiver, Sender};
use crate::error::Fatal;
use crate::pipeline::run::Shared;
use crate::policy::{DeadLetter, ErrorPolicy, StageFailure, Terminal};
use crate::report::Meter;

pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Takes the next chunk, or `None` at the end of input or on abort.
async fn next_chunk<T>(rx: &mut Receiver<T>, meter: &mut Meter, shared: &Shared) -> Option<Vec<T>> {
    // Fast path without touching the abort token's waiter list (a lock shared by every stage).
    if shared.abort.is_cancelled() {
        return None;
    }
    let chunk = match rx.try_recv() {
        Some(c) => c,
        None => tokio::select! {
            biased;
            () = shared.abort.cancelled() => None,
            c = rx.recv() => c,
        },
    }?;
    meter.received(chunk.len());
    Some(chunk)
}

/// Hands `out` on. `inputs` input items produced it; `one_to_one` says output `i` came from
/// input `i`, so a partial send can still credit the inputs whose outputs went through.
/// Returns `false` when the stage must stop (downstream closed or abort).
pub(crate) async fn hand_off<U>(
    tx: &Sender<U>,
    out: Vec<U>,
    inputs: u64,
    one_to_one: bool,
    meter: &mut Meter,
    shared: &Shared,
) -> bool {
    let n = out.len();
    if n == 0 {
        meter.emitted(inputs, 0);
        return true;
    }
    // Yield to the scheduler once per chunk: our queue is not part of tokio's coop budget, so
    // a stage whose queue never fills would otherwise never give its worker thread back.
    tokio::task::consume_budget().await;
    let unsent = tx.send(out, &shared.abort).await;
    if unsent == 0 {
        meter.emitted(inputs, n);
        true
    } else {
        let sent = n - unsent;
        let credited = if one_to_one { sent as u64 } else { 0 };
        meter.emitted(credited, sent);
        false
    }
}

// ---------------------------------------------------------------- sources

pub(crate) async fn iter_source<I>(
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

pub(crate) async fn stream_source<S>(
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
pub(crate) async fn generator_source<T, Fut>(
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
                    let msg = panic_message(&*p);
                    shared.fail(Fatal::Stage(
                        name.clone(),
                        Box::new(StageFailure::<Infallible>::Panicked(msg)),
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

// ---------------------------------------------------------------- sync stages

/// A synchronous per-item operation. `slot` holds the item; an op that consumes the item takes
/// it, one that only borrows it (`try_map`) leaves it there so a failure or a panic can hand
/// it back for a retry or a dead letter.
pub(crate) trait Op<T>: Send + Sync + 'static {
    type Out: Send + 'static;
    type Err: std::error::Error + Send + Sync + 'static;
    /// Output `i` comes from input `i` (no fan-out, no fan-in).
    const ONE_TO_ONE: bool;
    /// `Ok(true)`: emitted, `Ok(false)`: filtered.
    fn call(&self, slot: &mut Option<T>, out: &mut Vec<Self::Out>) -> Result<bool, Self::Err>;

    /// Runs the op over a whole chunk, catching panics. The default calls [`Op::call`] item by
    /// item; ops that can run as one tight loop (no per-item counter or capacity check kept in
    /// memory) override it. Either way the tallies in `res` must come out as if every item had
    /// gone through `call`.
    fn run(&self, chunk: Vec<T>, res: &mut ChunkOut<T, Self::Out, Self::Err>)
    where
        Self: Sized,
    {
        run_items(self, chunk, res);
    }
}

pub(crate) struct MapOp<F>(pub(crate) F);
impl<T, U, F> Op<T> for MapOp<F>
where
    F: Fn(T) -> U + Send + Sync + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Err = Infallible;
    const ONE_TO_ONE: bool = true;
    #[inline]
    fn call(&self, slot: &mut Option<T>, out: &mut Vec<U>) -> Result<bool, Infallible> {
        if let Some(x) = slot.take() {
            out.push((self.0)(x));
        }
        Ok(true)
    }

    fn run(&self, chunk: Vec<T>, res: &mut ChunkOut<T, U, Infallible>) {
        // `extend` from a `TrustedLen` iterator writes into reserved space with no per-item
        // capacity check, so the loop keeps its state in registers. On a panic, the iterator
        // has moved past the item that panicked (it was moved into `f`, so it is gone, as with
        // `call`) and `out` holds every output made before it.
        let mut items = chunk.into_iter();
        loop {
            let before = res.out.len();
            let r = catch_unwind(AssertUnwindSafe(|| {
                res.out.extend((&mut items).map(&self.0));
            }));
            res.emitted += (res.out.len() - before) as u64;
            match r {
                Ok(()) => return,
                Err(p) => res.failures.push(Failure {
                    at: res.out.len(),
                    item: None,
                    error: StageFailure::Panicked(panic_message(&*p)),
                }),
            }
        }
    }
}

pub(crate) struct FilterOp<F>(pub(crate) F);
impl<T, F> Op<T> for FilterOp<F>
where
    F: Fn(&T) -> bool + Send + Sync + 'static,
    T: Send + 'static,
{
    type Out = T;
    type Err = Infallible;
    const ONE_TO_ONE: bool = true;
    #[inline]
    fn call(&self, slot: &mut Option<T>, out: &mut Vec<T>) -> Result<bool, Infallible> {
        match slot.take() {
            Some(x) if (self.0)(&x) => {
                out.push(x);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn run(&self, chunk: Vec<T>, res: &mut ChunkOut<T, T, Infallible>) {
        // Filter in place: the chunk becomes the output, no second buffer and no per-item
        // push. `decided` items at the front are already kept; the predicate is not asked
        // about them again after a panic.
        let total = chunk.len();
        let mut v = chunk;
        let mut decided = 0;
        loop {
            let len = v.len();
            let mut calls = 0;
            let r = catch_unwind(AssertUnwindSafe(|| {
                v.retain(|x| {
                    calls += 1;
                    calls <= decided || (self.0)(x)
                });
            }));
            match r {
                Ok(()) => break,
                Err(p) => {
                    // `retain` keeps the item whose predicate panicked and everything after
                    // it: `len - calls + 1` items, behind the items kept so far.
                    let at = v.len() - (len - calls + 1);
                    let item = v.remove(at);
                    res.failures.push(Failure {
                        at,
                        item: Some(item),
                        error: StageFailure::Panicked(panic_message(&*p)),
                    });
                    decided = at;
                }
            }
        }
        res.emitted += v.len() as u64;
        res.filtered += (total - v.len() - res.failures.len()) as u64;
        res.out = v;
    }
}

pub(crate) struct FilterMapOp<F>(pub(crate) F);
impl<T, U, F> Op<T> for FilterMapOp<F>
where
    F: Fn(T) -> Option<U> + Send + Sync + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Err = Infallible;
    const ONE_TO_ONE: bool = true;
    #[inline]
    fn call(&self, slot: &mut Option<T>, out: &mut Vec<U>) -> Result<bool, Infallible> {
        match slot.take().and_then(&self.0) {
            Some(u) => {
                out.push(u);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

pub(crate) struct FlatMapOp<F>(pub(crate) F);
impl<T, I, F> Op<T> for FlatMapOp<F>
where
    F: Fn(T) -> I + Send + Sync + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type Out = I::Item;
    type Err = Infallible;
    const ONE_TO_ONE: bool = false;
    #[inline]
    fn call(&self, slot: &mut Option<T>, out: &mut Vec<I::Item>) -> Result<bool, Infallible> {
        if let Some(x) = slot.take() {
            out.extend((self.0)(x));
        }
        Ok(true)
    }
}

pub(crate) struct TryMapOp<F>(pub(crate) F);
impl<T, U, E, F> Op<T> for TryMapOp<F>
where
    F: Fn(&T) -> Result<U, E> + Send + Sync + 'static,
    U: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    type Out = U;
    type Err = E;
    const ONE_TO_ONE: bool = true;
    #[inline]
    fn call(&self, slot: &mut Option<T>, out: &mut Vec<U>) -> Result<bool, E> {
        let Some(x) = slot.as_ref() else {
            return Ok(false);
        };
        let u = (self.0)(x)?;
        *slot = None;
        out.push(u);
        Ok(true)
    }
}

pub(crate) struct InspectOp<F>(pub(crate) F);
impl<T, F> Op<T> for InspectOp<F>
where
    F: Fn(&T) + Send + Sync + 'static,
    T: Send + 'static,
{
    type Out = T;
    type Err = Infallible;
    const ONE_TO_ONE: bool = true;
    #[inline]
    fn call(&self, slot: &mut Option<T>, out: &mut Vec<T>) -> Result<bool, Infallible> {
        if let Some(x) = slot.take() {
            (self.0)(&x);
            out.push(x);
        }
        Ok(true)
    }

    fn run(&self, chunk: Vec<T>, res: &mut ChunkOut<T, T, Infallible>) {
        // Look at the items in place; the chunk itself is the output.
        let mut v = chunk;
        let mut done = 0;
        loop {
            let r = catch_unwind(AssertUnwindSafe(|| {
                for x in &v[done..] {
                    (self.0)(x);
                    done += 1;
                }
            }));
            match r {
                Ok(()) => break,
                Err(p) => {
                    let item = v.remove(done);
                    res.failures.push(Failure {
                        at: done,
                        item: Some(item),
                        error: StageFailure::Panicked(panic_message(&*p)),
                    });
                }
            }
        }
        res.emitted += v.len() as u64;
        res.out = v;
    }
}

pub(crate) struct Failure<T, E> {
    /// Position in the output chunk where a recovered item's outputs go.
    at: usize,
    item: Option<T>,
    error: StageFailure<E>,
}

pub(crate) struct ChunkOut<T, U, E> {
    out: Vec<U>,
    emitted: u64,
    filtered: u64,
    failures: Vec<Failure<T, E>>,
    busy: Duration,
}

/// Runs `op` over a chunk and times it.
fn run_chunk<T, O: Op<T>>(op: &O, chunk: Vec<T>) -> ChunkOut<T, O::Out, O::Err> {
    let start = Instant::now();
    let mut res = ChunkOut {
        out: Vec::new(),
        emitted: 0,
        filtered: 0,
        failures: Vec::new(),
        busy: Duration::ZERO,
    };
    op.run(chunk, &mut res);
    res.busy = start.elapsed();
    res
}

/// [`Op::run`]'s default: one `catch_unwind` per chunk, not per item; after a panic the loop
/// records the failure and resumes with the next item.
fn run_items<T, O: Op<T>>(op: &O, chunk: Vec<T>, res: &mut ChunkOut<T, O::Out, O::Err>) {
    if res.out.capacity() == 0 {
        res.out.reserve(chunk.len());
    }
    let mut iter = chunk.into_iter();
    let mut slot: Option<T> = None;
    loop {
        let r = catch_unwind(AssertUnwindSafe(|| {
            for item in &mut iter {
                slot = Some(item);
                match op.call(&mut slot, &mut res.out) {
                    Ok(true) => res.emitted += 1,
                    Ok(false) => res.filtered += 1,
                    Err(e) => res.failures.push(Failure {
                        at: res.out.len(),
                        item: slot.take(),
                        error: StageFailure::Error(e),
                    }),
                }
            }
        }));
        match r {
            Ok(()) => break,
            Err(p) => res.failures.push(Failure {
                at: res.out.len(),
                item: slot.take(),
                error: StageFailure::Panicked(panic_message(&*p)),
            }),
        }
    }
}

type Job<T, U, E> =
    Either<Ready<Result<ChunkOut<T, U, E>, tokio::task::JoinError>>, JoinHandle<ChunkOut<T, U, E>>>;

pub(crate) struct SyncCfg<T, E> {
    pub(crate) name: Arc<str>,
    pub(crate) workers: usize,
    pub(crate) ordered: bool,
    pub(crate) blocking: bool,
    pub(crate) policy: ErrorPolicy<T, E>,
}

enum InFlight<F: Future> {
    Ordered(FuturesOrdered<F>),
    Unordered(FuturesUnordered<F>),
}

impl<F: Future> InFlight<F> {
    fn new(ordered: bool) -> Self {
        if ordered {
            InFlight::Ordered(FuturesOrdered::new())
        } else {
            InFlight::Unordered(FuturesUnordered::new())
        }
    }
    fn len(&self) -> usize {
        match self {
            InFlight::Ordered(f) => f.len(),
            InFlight::Unordered(f) => f.len(),
        }
    }
    fn push(&mut self, fut: F) {
        match self {
            InFlight::Ordered(f) => f.push_back(fut),
            InFlight::Unordered(f) => f.push(fut),
        }
    }
    async fn next(&mut self) -> Option<F::Output> {
        match self {
            InFlight::Ordered(f) => f.next().await,
            InFlight::Unordered(f) => f.next().await,
        }
    }
}

pub(crate) async fn sync_stage<T, O>(
    mut rx: Receiver<T>,
    tx: Sender<O::Out>,
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
            if !finish_chunk(co, &tx, &mut meter, &op, &cfg, &shared).await {
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
        if !finish_chunk(co, &tx, &mut meter, &op, &cfg, &shared).await {
            return;
        }
    }
}

async fn finish_chunk<T, O>(
    co: ChunkOut<T, O::Out, O::Err>,
    tx: &Sender<O::Out>,
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
                Resolved::Recovered(outs, true) => {
                    emitted += 1;
                    inserts.push((f.at, outs));
                }
                Resolved::Recovered(_, false) => meter.filtered(1),
                Resolved::Done => {}
                Resolved::Stop => return false,
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
    hand_off(tx, out, emitted, O::ONE_TO_ONE, meter, shared).await
}

enum Resolved<U> {
    /// A retry succeeded: its outputs, and whether it was emitted (`false`: filtered).
    Recovered(Vec<U>, bool),
    /// Counted failed; the stage goes on.
    Done,
    /// The stage must stop (fail fast or abort).
    Stop,
}

/// Applies the stage's policy to one failed item: retries first, then the terminal policy.
async fn resolve<T, O>(
    mut item: Option<T>,
    mut error: StageFailure<O::Err>,
    meter: &mut Meter,
    op: &Arc<O>,
    cfg: &SyncCfg<T, O::Err>,
    shared: &Shared,
) -> Resolved<O::Out>
where
    T: Send + 'static,
    O: Op<T>,
{
    let mut attempt = 0;
    while let Some(retry) = cfg.policy.retries(&error) {
        if attempt >= retry.max_retries {
            break;
        }
        let Some(x) = item.take() else { break };
        attempt += 1;
        meter.retried(1);
        tokio::select! {
            biased;
            () = shared.abort.cancelled() => return Resolved::Stop,
            () = tokio::time::sleep(retry.backoff.delay(attempt)) => {}
        }
        let (slot, r, outs) = if cfg.blocking {
            let op = op.clone();
            match tokio::task::spawn_blocking(move || call_one(&*op, x)).await {
                Ok(v) => v,
                Err(_) => return Resolved::Stop,
            }
        } else {
            call_one(&**op, x)
        };
        match r {
            Ok(emitted) => return Resolved::Recovered(outs, emitted),
            Err(e) => {
                item = slot;
                error = e;
            }
        }
    }
    meter.failed(1);
    terminal(&cfg.policy.terminal, &cfg.name, item, error, shared).await
}

#[allow(clippy::type_complexity)]
fn call_one<T, O: Op<T>>(
    op: &O,
    x: T,
) -> (Option<T>, Result<bool, StageFailure<O::Err>>, Vec<O::Out>) {
    let mut slot = Some(x);
    let mut out = Vec::new();
    let r = catch_unwind(AssertUnwindSafe(|| op.call(&mut slot, &mut out)));
    let r = match r {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(StageFailure::Error(e)),
        Err(p) => Err(StageFailure::Panicked(panic_message(&*p))),
    };
    (slot, r, out)
}

/// The terminal policy for one failed item (already counted `failed`).
async fn terminal<T, E, U>(
    terminal: &Terminal<T, E>,
    name: &Arc<str>,
    item: Option<T>,
    error: StageFailure<E>,
    shared: &Shared,
) -> Resolved<U>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match terminal {
        Terminal::Skip => Resolved::Done,
        Terminal::DeadLetter(dl) => {
            let letter = DeadLetter {
                stage: name.clone(),
                item,
                error,
            };
            tokio::select! {
                biased;
                () = shared.abort.cancelled() => Resolved::Stop,
                _ = dl.send(letter) => Resolved::Done,
            }
        }
        Terminal::FailFast => {
            shared.fail(Fatal::Stage(name.clone(), Box::new(error)));
            Resolved::Stop
        }
    }
}

// ---------------------------------------------------------------- async stages

pub(crate) enum ItemDone<T, U, E> {
    Ok(U, u32),
    Failed(Option<T>, StageFailure<E>, u32),
}

pub(crate) struct AsyncCfg<T, E> {
    pub(crate) name: Arc<str>,
    pub(crate) workers: usize,
    pub(crate) ordered: bool,
    pub(crate) chunk: usize,
    pub(crate) terminal: Terminal<T, E>,
}

/// Runs up to `workers` item futures at a time (like `buffered`/`buffer_unordered`), in this
/// stage's task. Retries happen inside each item's future, so they do not hold up the others.
pub(crate) async fn async_stage<T, U, E, G, Fut>(
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
                if let Resolved::<U>::Stop =
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

// ---------------------------------------------------------------- batch, throttle, fan-out

pub(crate) async fn batch_stage<T>(
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

pub(crate) async fn throttle_stage<T>(
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

pub(crate) async fn broadcast_stage<T: Clone>(
    mut rx: Receiver<T>,
    branches: Vec<Sender<T>>,
    mut meter: Meter,
    shared: Arc<Shared>,
) {
    while let Some(chunk) = next_chunk(&mut rx, &mut meter, &shared).await {
        let n = chunk.len();
        let mut delivered = 0;
        let mut all = true;
        let last = branches.len().saturating_sub(1);
        let mut chunk = Some(chunk);
        for (i, b) in branches.iter().enumerate() {
            let part = if i == last {
                chunk.take().unwrap_or_default()
            } else {
                chunk.clone().unwrap_or_default()
            };
            let unsent = b.send(part, &shared.abort).await;
            delivered += n - unsent;
            all &= unsent == 0;
        }
        // Input items count as emitted only when every branch got them; `output` counts every
        // copy delivered, which is what the branches received between them.
        meter.emitted(if all { n as u64 } else { 0 }, delivered);
        if !all {
            return;
        }
    }
}

pub(crate) async fn partition_stage<T, K, F>(
    mut rx: Receiver<T>,
    branches: Vec<Sender<T>>,
    mut meter: Meter,
    key: F,
    shared: Arc<Shared>,
) where
    K: Hash,
    F: Fn(&T) -> K,
{
    let n_branches = branches.len().max(1);
    while let Some(chunk) = next_chunk(&mut rx, &mut meter, &shared).await {
        let t = Instant::now();
        let mut parts: Vec<Vec<T>> = (0..n_branches).map(|_| Vec::new()).collect();
        for x in chunk {
            // A fixed-key SipHash: the same key goes to the same branch in every run.
            let mut h = std::hash::DefaultHasher::new();
            key(&x).hash(&mut h);
            let i = (h.finish() % n_branches as u64) as usize;
            parts[i].push(x);
        }
        meter.busy(t.elapsed());
        for (part, b) in parts.into_iter().zip(&branches) {
            let n = part.len();
            let unsent = b.send(part, &shared.abort).await;
            meter.emitted((n - unsent) as u64, n - unsent);
            if unsent > 0 {
                return;
            }
        }
    }
}
