//! Poll-level tests of the queue between stages: wake-ups, close and drop, capacity.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio_test::task;
use tokio_test::{assert_pending, assert_ready, assert_ready_eq};
use tokio_util::sync::CancellationToken;

use super::{Receiver, Sender, channel};
use crate::counters::Counters;

fn chan(cap: usize, drop_when_full: bool) -> (Sender<u32>, Receiver<u32>, Arc<Counters>) {
    let c = Counters::new(Arc::from("stage"));
    let (tx, rx) = channel(cap, drop_when_full, c.clone());
    (tx, rx, c)
}

#[test]
fn recv_parks_after_one_yield_and_a_send_wakes_it() {
    let (tx, mut rx, _) = chan(8, false);
    let abort = CancellationToken::new();
    let mut recv = task::spawn(rx.recv());
    // First poll yields once (the producer may be about to run on this worker) ...
    assert_pending!(recv.poll());
    assert!(recv.is_woken(), "a yield wakes itself");
    // ... the second parks.
    assert_pending!(recv.poll());
    assert!(!recv.is_woken());
    let mut send = task::spawn(tx.send(vec![1, 2], &abort));
    assert_ready_eq!(send.poll(), 0);
    assert!(recv.is_woken(), "a send wakes the parked receiver");
    assert_ready_eq!(recv.poll(), Some(vec![1, 2]));
}

#[test]
fn recv_ends_only_when_the_last_sender_is_gone_and_the_queue_is_empty() {
    let (tx, mut rx, _) = chan(8, false);
    let abort = CancellationToken::new();
    let tx2 = tx.clone();
    assert_ready_eq!(task::spawn(tx.send(vec![7], &abort)).poll(), 0);
    drop(tx);
    let mut recv = task::spawn(rx.recv());
    assert_ready_eq!(
        recv.poll(),
        Some(vec![7]),
        "queued items come before the end"
    );
    drop(recv);
    let mut recv = task::spawn(rx.recv());
    assert_pending!(recv.poll());
    assert_pending!(recv.poll());
    assert!(!recv.is_woken());
    drop(tx2);
    assert!(recv.is_woken(), "the last sender's drop wakes the receiver");
    assert_ready_eq!(recv.poll(), None);
    drop(recv);
    assert_eq!(rx.try_recv(), Some(None), "try_recv says the input ended");
}

#[test]
fn try_recv_takes_a_queued_chunk_or_says_it_would_wait() {
    let (tx, mut rx, _) = chan(8, false);
    let abort = CancellationToken::new();
    assert_eq!(rx.try_recv(), None);
    assert_ready_eq!(task::spawn(tx.send(vec![1], &abort)).poll(), 0);
    assert_eq!(rx.try_recv(), Some(Some(vec![1])));
    assert_eq!(rx.try_recv(), None);
}

#[test]
fn a_full_queue_makes_the_sender_wait_until_a_recv_makes_room() {
    let (tx, mut rx, c) = chan(4, false);
    let abort = CancellationToken::new();
    assert_ready_eq!(task::spawn(tx.send(vec![1, 2, 3], &abort)).poll(), 0);
    let mut send = task::spawn(tx.send(vec![4, 5], &abort));
    assert_pending!(send.poll(), "3 + 2 items do not fit in 4");
    assert!(!send.is_woken());
    assert_eq!(rx.try_recv(), Some(Some(vec![1, 2, 3])));
    assert!(send.is_woken(), "taking a chunk wakes the waiting sender");
    assert_ready_eq!(send.poll(), 0);
    assert_eq!(rx.try_recv(), Some(Some(vec![4, 5])));
    assert_eq!(
        c.queue_high.load(Relaxed),
        3,
        "the queue never held more than fit"
    );
    assert_eq!(c.queue_len.load(Relaxed), 0);
}

#[test]
fn a_chunk_larger_than_the_capacity_goes_in_pieces_front_first() {
    let (tx, mut rx, c) = chan(3, false);
    let abort = CancellationToken::new();
    let mut send = task::spawn(tx.send((0..7).collect(), &abort));
    assert_pending!(send.poll());
    let mut got = Vec::new();
    let mut sent = None;
    for _ in 0..10 {
        if let Some(Some(piece)) = rx.try_recv() {
            got.push(piece);
        }
        if sent.is_none() && send.is_woken() {
            sent = match send.poll() {
                std::task::Poll::Ready(unsent) => Some(unsent),
                std::task::Poll::Pending => None,
            };
        }
    }
    assert_eq!(got, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    assert_eq!(
        sent,
        Some(0),
        "each piece waited for room, then all went in"
    );
    assert_eq!(c.queue_high.load(Relaxed), 3);
}

#[test]
fn closing_the_receiver_wakes_a_waiting_sender_and_hands_its_items_back() {
    let (tx, rx, c) = chan(2, false);
    let abort = CancellationToken::new();
    assert_ready_eq!(task::spawn(tx.send(vec![1, 2], &abort)).poll(), 0);
    let mut send = task::spawn(tx.send(vec![3, 4, 5], &abort));
    assert_pending!(send.poll());
    drop(rx);
    assert!(send.is_woken(), "the receiver's drop wakes waiting senders");
    assert_ready_eq!(send.poll(), 3, "every item of the failed send is unsent");
    // The two items still queued were drained: received and cancelled by this stage.
    assert_eq!(c.received.load(Relaxed), 2);
    assert_eq!(c.cancelled.load(Relaxed), 2);
    assert_eq!(c.queue_len.load(Relaxed), 0);
    // Later sends fail at once.
    assert_ready_eq!(task::spawn(tx.send(vec![6], &abort)).poll(), 1);
}

#[test]
fn close_drains_the_queue_and_counts_it_cancelled() {
    let (tx, mut rx, c) = chan(8, false);
    let abort = CancellationToken::new();
    assert_ready_eq!(task::spawn(tx.send(vec![1, 2, 3], &abort)).poll(), 0);
    assert_ready_eq!(task::spawn(tx.send(vec![4], &abort)).poll(), 0);
    assert_eq!(rx.close(), 4);
    assert_eq!(
        (c.received.load(Relaxed), c.cancelled.load(Relaxed)),
        (4, 4)
    );
    assert_eq!(
        rx.try_recv(),
        Some(None),
        "nothing comes out of a closed queue"
    );
    assert_ready_eq!(task::spawn(tx.send(vec![5], &abort)).poll(), 1);
}

#[test]
fn abort_ends_a_waiting_send_with_its_items_unsent() {
    let (tx, _rx, _) = chan(1, false);
    let abort = CancellationToken::new();
    assert_ready_eq!(task::spawn(tx.send(vec![1], &abort)).poll(), 0);
    let mut send = task::spawn(tx.send(vec![2, 3], &abort));
    assert_pending!(send.poll());
    abort.cancel();
    assert!(send.is_woken());
    assert_ready_eq!(send.poll(), 2);
}

#[test]
fn drop_when_full_counts_the_hand_off_received_and_dropped_without_waiting() {
    let (tx, mut rx, c) = chan(2, true);
    let abort = CancellationToken::new();
    assert_ready_eq!(task::spawn(tx.send(vec![1, 2], &abort)).poll(), 0);
    assert_ready_eq!(
        task::spawn(tx.send(vec![3], &abort)).poll(),
        0,
        "dropped, not unsent"
    );
    assert_eq!((c.received.load(Relaxed), c.dropped.load(Relaxed)), (1, 1));
    assert_eq!(rx.try_recv(), Some(Some(vec![1, 2])));
    assert_eq!(rx.try_recv(), None);
}

#[test]
fn a_recv_dropped_while_parked_loses_nothing() {
    let (tx, mut rx, _) = chan(8, false);
    let abort = CancellationToken::new();
    let mut recv = task::spawn(rx.recv());
    assert_pending!(recv.poll());
    assert_pending!(recv.poll());
    drop(recv);
    assert_ready_eq!(task::spawn(tx.send(vec![9], &abort)).poll(), 0);
    let mut recv = task::spawn(rx.recv());
    assert_ready_eq!(recv.poll(), Some(vec![9]));
}

#[test]
fn a_send_dropped_while_waiting_leaves_nothing_in_the_queue() {
    let (tx, mut rx, c) = chan(1, false);
    let abort = CancellationToken::new();
    assert_ready_eq!(task::spawn(tx.send(vec![1], &abort)).poll(), 0);
    let mut send = task::spawn(tx.send(vec![2], &abort));
    assert_pending!(send.poll());
    drop(send);
    assert_eq!(rx.try_recv(), Some(Some(vec![1])));
    assert_eq!(
        rx.try_recv(),
        None,
        "the dropped send's item never entered the queue"
    );
    assert_eq!(c.queue_high.load(Relaxed), 1);
}

#[test]
fn an_empty_send_completes_at_once_even_when_full_or_closed() {
    let (tx, rx, _) = chan(1, false);
    let abort = CancellationToken::new();
    assert_ready_eq!(task::spawn(tx.send(vec![1], &abort)).poll(), 0);
    assert_ready_eq!(task::spawn(tx.send(Vec::new(), &abort)).poll(), 0);
    drop(rx);
    let _ = assert_ready!(task::spawn(tx.send(Vec::new(), &abort)).poll());
}
