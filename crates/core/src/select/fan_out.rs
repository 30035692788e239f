//! Fan-out: distributing one channel's values to `n` workers.
//!
//! Two ways, as in Go:
//!
//! - [`shared`]: the workers share the input queue (Go: several goroutines ranging over one
//!   channel). Each value goes to whichever worker asks first, so a slow worker never holds
//!   values up. Prefer this one.
//! - [`round_robin`]: value `i` goes to worker `i % n` (skipping workers that are gone). Use it
//!   when each worker must get an even share, e.g. to keep per-worker state balanced.

use std::num::NonZeroUsize;

use crate::chan::{Receiver, SendCtxError, Sender};
use crate::context::Context;

/// Returns `n` receivers sharing `input`'s queue: each value goes to exactly one of them,
/// whichever receives first. They are clones of `input` (the channel is MPMC), so there is no
/// copying task and no extra hop (and so no context to stop one: each worker stops when its
/// own work does).
///
/// ```
/// use std::num::NonZeroUsize;
/// use weft_core::{chan, select::fan_out};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = chan::bounded(8);
/// let workers = fan_out::shared(rx, NonZeroUsize::new(3).unwrap());
/// for i in 0..6 {
///     tx.send(i).await.unwrap();
/// }
/// drop(tx);
/// let mut sum = 0;
/// for w in &workers {
///     while let Ok(v) = w.try_recv() {
///         sum += v;
///     }
/// }
/// assert_eq!(sum, 15, "every value reached exactly one worker");
/// # }
/// ```
pub fn shared<T>(input: Receiver<T>, n: NonZeroUsize) -> Vec<Receiver<T>> {
    let mut out: Vec<Receiver<T>> = (1..n.get()).map(|_| input.clone()).collect();
    out.push(input);
    out
}

/// Returns `n` receivers that get `input`'s values in turn: value `i` goes to receiver
/// `i % n`, until `input` ends or `ctx` is done. A task, spawned on the current tokio
/// runtime, does the dealing; the outputs have `input`'s capacity, so a full output makes the
/// task wait (it does not skip ahead, to keep the order). A dropped output is skipped and its
/// turn goes to the next one; the value is not lost. Outputs close once `input` is closed and
/// drained; when every output is gone, the task ends and drops `input` (and the one value it
/// was dealing, which no one can take).
///
/// # Cancellation
///
/// Once `ctx` is done the task stops at once, even while it waits on a full output: it drops
/// the value it was dealing, closes every output (each still yields what it holds, then
/// `None`) and drops `input`, leaving unread values in it.
///
/// # Panics
///
/// Panics if called outside a tokio runtime.
///
/// ```
/// use std::num::NonZeroUsize;
/// use weft_core::{chan, context::Context, select::fan_out};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = chan::bounded(8);
/// let workers = fan_out::round_robin(rx, NonZeroUsize::new(2).unwrap(), &Context::background());
/// for i in 0..4 {
///     tx.send(i).await.unwrap();
/// }
/// drop(tx);
/// assert_eq!(workers[0].recv().await, Some(0));
/// assert_eq!(workers[0].recv().await, Some(2));
/// assert_eq!(workers[1].recv().await, Some(1));
/// assert_eq!(workers[1].recv().await, Some(3));
/// # }
/// ```
#[track_caller]
pub fn round_robin<T>(input: Receiver<T>, n: NonZeroUsize, ctx: &Context) -> Vec<Receiver<T>>
where
    T: Send + 'static,
{
    let (senders, receivers): (Vec<Sender<T>>, Vec<Receiver<T>>) =
        (0..n.get()).map(|_| super::tee::like(&input)).unzip();
    tokio::spawn(deal(input, senders, ctx.clone()));
    receivers
}

async fn deal<T>(input: Receiver<T>, mut outputs: Vec<Sender<T>>, ctx: Context) {
    let mut next = 0;
    // Ends on a closed input or a done context alike; the outputs close as they drop.
    while let Ok(mut value) = input.recv_ctx(&ctx).await {
        loop {
            if outputs.is_empty() {
                return;
            }
            next %= outputs.len();
            match outputs[next].send_ctx(value, &ctx).await {
                Ok(()) => {
                    next += 1;
                    break;
                }
                Err(SendCtxError::Closed(v)) => {
                    // That worker is gone: its turn (and the value) goes to the next one.
                    value = v;
                    outputs.remove(next);
                }
                Err(_) => return,
            }
        }
    }
}
