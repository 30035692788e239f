use crate::chan::{self, Receiver, Sender};

/// Copies every value of `input` to each of `n` new receivers (Go's `tee`, generalised to `n`).
///
/// A task, spawned on the current tokio runtime, receives each value and sends a clone to
/// every output in turn (the last gets the original). The outputs have `input`'s capacity
/// (rendezvous stays rendezvous, unbounded stays unbounded), so the slowest output sets the
/// pace for all, as in Go. Outputs close once `input` is closed and drained. An output that is
/// dropped is skipped from then on; when all are dropped, the task ends and drops `input`
/// (and the one value it was copying, which no one can take).
/// `n == 0` drops `input` and returns no receivers.
///
/// # Panics
///
/// Panics if called outside a tokio runtime.
///
/// ```
/// use weft_core::{chan, select::tee};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = chan::bounded(4);
/// let outs = tee(rx, 2);
/// tx.send("x").await.unwrap();
/// drop(tx);
/// for out in &outs {
///     assert_eq!(out.recv().await, Some("x"));
///     assert_eq!(out.recv().await, None);
/// }
/// # }
/// ```
#[track_caller]
pub fn tee<T>(input: Receiver<T>, n: usize) -> Vec<Receiver<T>>
where
    T: Clone + Send + 'static,
{
    if n == 0 {
        return Vec::new();
    }
    let (senders, receivers): (Vec<Sender<T>>, Vec<Receiver<T>>) =
        (0..n).map(|_| like(&input)).unzip();
    tokio::spawn(run(input, senders));
    receivers
}

/// A new channel with `input`'s capacity.
pub(super) fn like<T, U>(input: &Receiver<U>) -> (Sender<T>, Receiver<T>) {
    match input.capacity() {
        Some(cap) => chan::bounded(cap),
        None => chan::unbounded(),
    }
}

async fn run<T: Clone>(input: Receiver<T>, mut outputs: Vec<Sender<T>>) {
    while let Some(value) = input.recv().await {
        let last = outputs.len() - 1;
        let mut closed = Vec::new();
        for (i, out) in outputs[..last].iter().enumerate() {
            if out.send(value.clone()).await.is_err() {
                closed.push(i);
            }
        }
        if outputs[last].send(value).await.is_err() {
            closed.push(last);
        }
        for i in closed.into_iter().rev() {
            outputs.swap_remove(i);
        }
        if outputs.is_empty() {
            return;
        }
    }
}
