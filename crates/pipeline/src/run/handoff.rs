//! How chunks move between stages: taking one from a queue ([`next_chunk`]), handing one on
//! ([`hand_off`], or [`Push`] when the next stage may run in the same task), and the futures a
//! stage has in flight ([`InFlight`]).
//!
//! Plan shared by every stage loop: take a chunk, count it `received`, do the stage's work on
//! the whole chunk, count the outcomes, hand the output chunk on. Counters are touched once
//! per chunk. Whatever a loop received and did not account for when it returns (abort,
//! fail-fast, unwind) is counted `cancelled` by [`Meter`]'s `Drop`.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};

use super::Shared;
use crate::chan::{Receiver, Sender};
use crate::counters::{Counters, Meter};

/// Takes the next chunk, or `None` at the end of input or on abort.
pub(crate) async fn next_chunk<T>(
    rx: &mut Receiver<T>,
    meter: &mut Meter,
    shared: &Shared,
) -> Option<Vec<T>> {
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

/// Where a stage hands its output chunks: the next stage's queue, or the next stage itself
/// when that stage runs fused in this stage's task (see `ops::sync::fuse`).
pub(crate) trait Push<T>: Send {
    /// Hands `chunk` on, as [`hand_off`] does: `inputs` items counted by `meter` produced it.
    /// Returns `false` when the pushing stage must stop.
    fn push<'a>(
        &'a mut self,
        chunk: Vec<T>,
        inputs: u64,
        one_to_one: bool,
        meter: &'a mut Meter,
        shared: &'a Shared,
    ) -> BoxFuture<'a, bool>;

    /// The receiving stage's counters, for the report's links.
    fn counters(&self) -> &Arc<Counters>;
}

impl<T: Send> Push<T> for Sender<T> {
    fn push<'a>(
        &'a mut self,
        chunk: Vec<T>,
        inputs: u64,
        one_to_one: bool,
        meter: &'a mut Meter,
        shared: &'a Shared,
    ) -> BoxFuture<'a, bool> {
        Box::pin(hand_off(self, chunk, inputs, one_to_one, meter, shared))
    }

    fn counters(&self) -> &Arc<Counters> {
        Sender::counters(self)
    }
}

/// The futures a stage has in flight, yielded in order or as they complete.
pub(crate) enum InFlight<F: Future> {
    Ordered(FuturesOrdered<F>),
    Unordered(FuturesUnordered<F>),
}

impl<F: Future> InFlight<F> {
    pub(crate) fn new(ordered: bool) -> Self {
        if ordered {
            InFlight::Ordered(FuturesOrdered::new())
        } else {
            InFlight::Unordered(FuturesUnordered::new())
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            InFlight::Ordered(f) => f.len(),
            InFlight::Unordered(f) => f.len(),
        }
    }

    pub(crate) fn push(&mut self, fut: F) {
        match self {
            InFlight::Ordered(f) => f.push_back(fut),
            InFlight::Unordered(f) => f.push(fut),
        }
    }

    pub(crate) async fn next(&mut self) -> Option<F::Output> {
        match self {
            InFlight::Ordered(f) => f.next().await,
            InFlight::Unordered(f) => f.next().await,
        }
    }
}
