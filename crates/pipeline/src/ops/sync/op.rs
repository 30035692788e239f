//! The sync operators as values: [`Op`] and one type per operator (`map`, `filter`,
//! `filter_map`, `flat_map`, `try_map`, `inspect`), each running a whole chunk with one
//! `catch_unwind`.

use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use tokio::time::Instant;
use weft_core::Panicked;

use crate::policy::StageFailure;

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
                    error: StageFailure::Panicked(Panicked::from_payload(&*p)),
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
                        error: StageFailure::Panicked(Panicked::from_payload(&*p)),
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
                        error: StageFailure::Panicked(Panicked::from_payload(&*p)),
                    });
                }
            }
        }
        res.emitted += v.len() as u64;
        res.out = v;
    }
}

/// An item that failed in [`Op::run`], for the stage's error policy.
pub(crate) struct Failure<T, E> {
    /// Position in the output chunk where a recovered item's outputs go.
    pub(crate) at: usize,
    pub(crate) item: Option<T>,
    pub(crate) error: StageFailure<E>,
}

/// What [`Op::run`] made of a chunk.
pub(crate) struct ChunkOut<T, U, E> {
    pub(crate) out: Vec<U>,
    pub(crate) emitted: u64,
    pub(crate) filtered: u64,
    pub(crate) failures: Vec<Failure<T, E>>,
    pub(crate) busy: Duration,
}

/// Runs `op` over a chunk and times it.
pub(crate) fn run_chunk<T, O: Op<T>>(op: &O, chunk: Vec<T>) -> ChunkOut<T, O::Out, O::Err> {
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
                error: StageFailure::Panicked(Panicked::from_payload(&*p)),
            }),
        }
    }
}

/// Calls `op` on one item, catching a panic: the item if the op left it (a failure of an op
/// that borrows its item), the result, and the outputs.
#[allow(clippy::type_complexity)]
pub(crate) fn call_one<T, O: Op<T>>(
    op: &O,
    x: T,
) -> (Option<T>, Result<bool, StageFailure<O::Err>>, Vec<O::Out>) {
    let mut slot = Some(x);
    let mut out = Vec::new();
    let r = catch_unwind(AssertUnwindSafe(|| op.call(&mut slot, &mut out)));
    let r = match r {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(StageFailure::Error(e)),
        Err(p) => Err(StageFailure::Panicked(Panicked::from_payload(&*p))),
    };
    (slot, r, out)
}
