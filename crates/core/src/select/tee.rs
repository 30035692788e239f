use std::num::NonZeroUsize;

use crate::chan::{self, Receiver, SendCtxError, Sender};
use crate::context::Context;

/// Copies every value of `input` to each of `n` new receivers (Go's `tee`, generalised to `n`),
/// until `input` ends or `ctx` is done.
///
/// A task, spawned on the current tokio runtime, receives each value and sends a clone to
/// every output in turn (the last gets the original). The outputs have `input`'s capacity
/// (rendezvous stays rendezvous, unbounded stays unbounded), so the slowest output sets the
/// pace for all, as in Go. Outputs close once `input` is closed and drained. An output that is
/// dropped is skipped from then on; when all are dropped, the task ends and drops `input`
/// (and the one value it was copying, which no one can take).
///
/// # Cancellation
///
/// Once `ctx` is done the task stops at once, even while it waits on a slow output: it drops
/// the value it was copying (outputs that already got it keep it), closes every output (each
/// still yields what it holds, then `None`) and drops `input`, leaving unread values in it.
///
/// # Panics
///
/// Panics if called outside a tokio runtime.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use weft_core::{chan, context::Context, select::tee};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = chan::bounded(4);
/// let outs = tee(rx, NonZeroUsize::new(2).unwrap(), &Context::background());
/// tx.send("x").await.unwrap();
/// drop(tx);
/// for out in &outs {
///     assert_eq!(out.recv().await, Some("x"));
///     assert_eq!(out.recv().await, None);
/// }
/// # }
/// ```
#[track_caller]
pub fn tee<T>(input: Receiver<T>, n: NonZeroUsize, ctx: &Context) -> Vec<Receiver<T>>
where
    T: Clone + Send + 'static,
{
    let (senders, receivers): (Vec<Sender<T>>, Vec<Receiver<T>>) =
        (0..n.get()).map(|_| like(&input)).unzip();
    tokio::spawn(run(input, senders, ctx.clone()));
    receivers
}

/// A new channel with `input`'s capacity.
pub(super) fn like<T, U>(input: &Receiver<U>) -> (Sender<T>, Receiver<T>) {
    match input.capacity() {
        Some(cap) => chan::bounded(cap),
        None => chan::unbounded(),
    }
}

async fn run<T: Clone>(input: Receiver<T>, mut outputs: Vec<Sender<T>>, ctx: Context) {
    // Ends on a closed input or a done context alike; the outputs close as they drop.
    while let Ok(value) = input.recv_ctx(&ctx).await {
        let last = outputs.len() - 1;
        let mut closed = Vec::new();
        for (i, out) in outputs[..last].iter().enumerate() {
            match out.send_ctx(value.clone(), &ctx).await {
                Ok(()) => {}
                Err(SendCtxError::Closed(_)) => closed.push(i),
                Err(_) => return,
            }
        }
        match outputs[last].send_ctx(value, &ctx).await {
            Ok(()) => {}
            Err(SendCtxError::Closed(_)) => closed.push(last),
            Err(_) => return,
        }
        for i in closed.into_iter().rev() {
            outputs.swap_remove(i);
        }
        if outputs.is_empty() {
            return;
        }
    }
}
