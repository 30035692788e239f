//! Integration tests for the channel handles that users of tokio's mpsc and async-channel reach
//! for: `send_blocking` / `recv_blocking` from plain threads, `closed()` futures on both halves,
//! `force_send` ("latest value wins"), and weak senders that do not keep a channel open.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use tokio_test::{assert_pending, assert_ready, assert_ready_eq, task};
use weft_core::chan::{self, SendError, TryRecvError, TrySendError};

// ---- send_blocking / recv_blocking ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_blocking_from_a_plain_thread_waits_for_room_and_delivers_in_order() {
    let (tx, rx) = chan::bounded(1);
    let feeder = thread::spawn(move || {
        for i in 0..1_000u32 {
            tx.send_blocking(i).unwrap();
        }
    });
    let mut got = Vec::new();
    while let Some(v) = rx.recv().await {
        got.push(v);
    }
    feeder.join().unwrap();
    assert_eq!(got, (0..1_000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_blocking_on_a_plain_thread_drains_a_rendezvous_until_closed() {
    let (tx, rx) = chan::rendezvous();
    let drainer = thread::spawn(move || {
        let mut got = Vec::new();
        while let Some(v) = rx.recv_blocking() {
            got.push(v);
        }
        got
    });
    for i in 0..500u32 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    assert_eq!(drainer.join().unwrap(), (0..500).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_calls_work_on_spawn_blocking_threads() {
    // The documented way to call them from async code: they block that thread, not a worker.
    let (tx, rx) = chan::bounded(1);
    let feeder = tokio::task::spawn_blocking(move || {
        for i in 0..200u32 {
            tx.send_blocking(i).unwrap();
        }
    });
    let drainer = tokio::task::spawn_blocking(move || {
        std::iter::from_fn(|| rx.recv_blocking()).collect::<Vec<_>>()
    });
    feeder.await.unwrap();
    assert_eq!(drainer.await.unwrap(), (0..200).collect::<Vec<_>>());
}

#[test]
fn blocking_calls_need_no_runtime_at_all() {
    // Two plain threads over a rendezvous: each send completes only once the other has it.
    let (tx, rx) = chan::rendezvous();
    let receiver = thread::spawn(move || std::iter::from_fn(|| rx.recv_blocking()).sum::<u64>());
    for i in 1..=1_000u64 {
        tx.send_blocking(i).unwrap();
    }
    drop(tx);
    assert_eq!(receiver.join().unwrap(), 1_000 * 1_001 / 2);
}

#[test]
fn send_blocking_hands_the_value_back_when_the_channel_closes() {
    let (tx, rx) = chan::bounded(1);
    tx.send_blocking(1).unwrap();
    // Blocks (the buffer is full) until the receiver closes, or sees the close at once:
    // either way the value comes back.
    let sender = thread::spawn(move || tx.send_blocking(2));
    rx.close();
    assert_eq!(sender.join().unwrap(), Err(SendError(2)));
    assert_eq!(
        rx.try_recv(),
        Ok(1),
        "the buffered value is still delivered"
    );
}

#[test]
fn recv_blocking_ends_when_the_last_sender_is_dropped() {
    let (tx, rx) = chan::bounded::<u32>(1);
    let receiver = thread::spawn(move || rx.recv_blocking());
    drop(tx);
    assert_eq!(receiver.join().unwrap(), None);
}

#[test]
fn blocking_threads_many_producers_many_consumers_deliver_each_value_once() {
    let (tx, rx) = chan::bounded::<usize>(4);
    let seen = Arc::new((0..4_000).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..1_000 {
                    tx.send_blocking(p * 1_000 + i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let (rx, seen) = (rx.clone(), Arc::clone(&seen));
            thread::spawn(move || {
                while let Some(v) = rx.recv_blocking() {
                    seen[v].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    drop(rx);
    producers.into_iter().for_each(|p| p.join().unwrap());
    consumers.into_iter().for_each(|c| c.join().unwrap());
    assert!(seen.iter().all(|n| n.load(Ordering::Relaxed) == 1));
}

// ---- closed() ----

#[test]
fn sender_closed_completes_when_the_last_receiver_is_dropped() {
    let (tx, rx) = chan::bounded::<u32>(1);
    let rx2 = rx.clone();
    let mut closed = task::spawn(tx.closed());
    assert_pending!(closed.poll());
    drop(rx);
    assert!(!closed.is_woken(), "another receiver is still alive");
    assert_pending!(closed.poll());
    drop(rx2);
    assert!(closed.is_woken());
    assert_ready!(closed.poll());
}

#[test]
fn receiver_closed_completes_when_the_last_sender_is_dropped_and_values_stay() {
    let (tx, rx) = chan::bounded(2);
    tx.try_send(1).unwrap();
    let tx2 = tx.clone();
    let mut closed = task::spawn(rx.closed());
    assert_pending!(closed.poll());
    drop(tx);
    assert_pending!(closed.poll());
    drop(tx2);
    assert!(closed.is_woken());
    assert_ready!(closed.poll());
    drop(closed);
    assert_eq!(rx.try_recv(), Ok(1), "closing keeps what was buffered");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn closed_completes_on_an_explicit_close_from_either_half_and_at_once_after() {
    for close_from_sender in [true, false] {
        let (tx, rx) = chan::rendezvous::<u32>();
        let mut on_tx = task::spawn(tx.closed());
        let mut on_rx = task::spawn(rx.closed());
        assert_pending!(on_tx.poll());
        assert_pending!(on_rx.poll());
        if close_from_sender {
            tx.close();
        } else {
            rx.close();
        }
        assert!(on_tx.is_woken() && on_rx.is_woken());
        assert_ready!(on_tx.poll());
        assert_ready!(on_rx.poll());
        assert_ready!(task::spawn(tx.closed()).poll(), "already closed");
    }
}

#[test]
fn a_dropped_closed_future_does_not_keep_others_from_being_woken() {
    let (tx, rx) = chan::bounded::<u32>(1);
    let mut futures: Vec<_> = (0..5).map(|_| task::spawn(tx.closed())).collect();
    for f in &mut futures {
        assert_pending!(f.poll());
    }
    // Cancel the first, a middle and the last one, as `select!` would.
    drop(futures.remove(4));
    drop(futures.remove(2));
    drop(futures.remove(0));
    let mut late = task::spawn(tx.closed()); // reuses a released slot
    assert_pending!(late.poll());
    drop(rx);
    for f in &mut futures {
        assert!(f.is_woken());
        assert_ready!(f.poll());
    }
    assert_ready!(late.poll());
}

#[test]
fn closed_takes_nothing_from_the_channel() {
    let (tx, rx) = chan::rendezvous::<u32>();
    let mut recv = task::spawn(rx.recv());
    assert_pending!(recv.poll());
    let mut closed = task::spawn(rx.closed());
    assert_pending!(closed.poll());
    tx.try_send(7).unwrap();
    assert!(!closed.is_woken(), "a value is not a close");
    assert_ready_eq!(recv.poll(), Some(7));
    assert_pending!(closed.poll());
}

#[tokio::test(start_paused = true)]
async fn closed_in_select_stops_a_producer_whose_consumers_left() {
    let (tx, rx) = chan::bounded::<u32>(1);
    let producer = tokio::spawn(async move {
        let mut next = 0;
        loop {
            tokio::select! {
                () = tx.closed() => return next,
                res = tx.send(next) => match res {
                    Ok(()) => next += 1,
                    Err(_) => return next,
                },
            }
        }
    });
    assert_eq!(rx.recv().await, Some(0));
    assert_eq!(rx.recv().await, Some(1));
    drop(rx);
    // Without the close reaching it the producer would wait for room forever; on the paused
    // clock the timeout then fires at once.
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(60), producer).await;
    assert!(stopped.expect("the producer saw the close").unwrap() >= 1);
}

// ---- force_send ----

#[test]
fn force_send_overwrites_the_oldest_value_when_full_and_returns_it() {
    let (tx, rx) = chan::bounded(3);
    for i in 0..3 {
        assert_eq!(tx.force_send(i), Ok(None));
    }
    assert_eq!(tx.force_send(3), Ok(Some(0)));
    assert_eq!(tx.force_send(4), Ok(Some(1)));
    assert_eq!(tx.len(), 3);
    let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(got, [2, 3, 4], "the latest values, in order");
}

#[test]
fn force_send_wakes_a_waiting_receiver() {
    for (name, (tx, rx)) in [
        ("bounded(2)", chan::bounded(2)),
        ("rendezvous", chan::rendezvous()),
        ("unbounded", chan::unbounded()),
    ] {
        let mut recv = task::spawn(rx.recv());
        assert_pending!(recv.poll());
        assert_eq!(tx.force_send(1), Ok(None), "{name}");
        assert!(recv.is_woken(), "{name}");
        assert_ready_eq!(recv.poll(), Some(1), "{name}");
    }
}

#[test]
fn force_send_on_a_rendezvous_without_a_receiver_is_full_and_drops_nothing() {
    let (tx, rx) = chan::rendezvous();
    let mut blocked = task::spawn(tx.send(1));
    assert_pending!(blocked.poll());
    assert_eq!(tx.force_send(2), Err(TrySendError::Full(2)));
    assert_eq!(
        rx.try_recv(),
        Ok(1),
        "the blocked sender's value is untouched"
    );
    assert!(blocked.is_woken());
    assert_ready_eq!(blocked.poll(), Ok(()));
}

#[test]
fn force_send_on_a_closed_channel_hands_the_value_back() {
    for (name, (tx, rx)) in [
        ("bounded(1)", chan::bounded(1)),
        ("rendezvous", chan::rendezvous()),
        ("unbounded", chan::unbounded()),
    ] {
        rx.close();
        assert_eq!(tx.force_send(5), Err(TrySendError::Closed(5)), "{name}");
    }
}

#[test]
fn force_send_jumps_ahead_of_blocked_senders_who_keep_waiting() {
    let (tx, rx) = chan::bounded(1);
    tx.try_send(1).unwrap();
    let mut blocked = task::spawn(tx.send(2));
    assert_pending!(blocked.poll());
    assert_eq!(tx.force_send(3), Ok(Some(1)));
    assert!(!blocked.is_woken(), "still no room for it");
    assert_pending!(blocked.poll());
    // Receiving 3 frees the slot, which goes to the blocked sender's value.
    assert_eq!(rx.try_recv(), Ok(3));
    assert!(blocked.is_woken());
    assert_ready_eq!(blocked.poll(), Ok(()));
    assert_eq!(rx.try_recv(), Ok(2));
}

#[test]
fn force_send_on_an_unbounded_channel_never_overwrites() {
    let (tx, rx) = chan::unbounded();
    for i in 0..100 {
        assert_eq!(tx.force_send(i), Ok(None));
    }
    assert_eq!(rx.len(), 100);
}

#[test]
fn force_send_keeps_a_value_handed_to_a_cancelled_receive() {
    // bounded(1) full, a receiver parked anyway (it parked while empty and another receive
    // took the value meanwhile): force_send hands off to it rather than evicting.
    let (tx, rx) = chan::bounded(1);
    let mut recv = task::spawn(rx.recv());
    assert_pending!(recv.poll());
    let mut second = task::spawn(rx.recv());
    assert_pending!(second.poll());
    tx.try_send(1).unwrap(); // buffered, wakes `recv`
    assert_eq!(
        tx.force_send(2),
        Ok(None),
        "handed to the still-parked `second`"
    );
    drop(second); // cancelled before it took 2: passes it back into the channel
    assert_ready_eq!(recv.poll(), Some(1));
    assert_eq!(rx.try_recv(), Ok(2), "not lost");
}

// ---- weak senders ----

#[test]
fn a_weak_sender_upgrades_while_a_sender_lives_and_is_not_counted() {
    let (tx, rx) = chan::bounded(2);
    let weak = tx.downgrade();
    let weak2 = weak.clone();
    assert_eq!(tx.sender_count(), 1, "weak senders are not counted");
    let strong = weak2.upgrade().expect("a sender is alive");
    assert_eq!(tx.sender_count(), 2);
    strong.try_send(1).unwrap();
    drop(tx);
    assert!(!rx.is_closed(), "the upgraded sender keeps it open");
    drop(strong);
    assert!(rx.is_closed());
    assert!(weak.upgrade().is_none());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn a_weak_sender_does_not_keep_the_channel_open() {
    let (tx, rx) = chan::rendezvous::<u32>();
    let weak = tx.downgrade();
    let mut recv = task::spawn(rx.recv());
    assert_pending!(recv.poll());
    let mut closed = task::spawn(rx.closed());
    assert_pending!(closed.poll());
    drop(tx);
    assert!(recv.is_woken() && closed.is_woken());
    assert_ready_eq!(recv.poll(), None);
    assert_ready!(closed.poll());
    assert!(weak.upgrade().is_none(), "and it cannot reopen it");
    assert_eq!(format!("{weak:?}"), "WeakSender { sender_count: 0 }");
}

#[test]
fn upgrade_after_an_explicit_close_gives_a_sender_whose_sends_fail() {
    let (tx, _rx) = chan::bounded(1);
    let weak = tx.downgrade();
    tx.close();
    let again = weak.upgrade().expect("a sender is still alive");
    assert_eq!(again.try_send(1), Err(TrySendError::Closed(1)));
}

#[test]
fn upgrade_racing_the_last_drop_never_reopens_a_closed_channel() {
    for _ in 0..200 {
        let (tx, rx) = chan::unbounded::<u32>();
        let weak = tx.downgrade();
        let dropper = thread::spawn(move || drop(tx));
        if let Some(strong) = weak.upgrade() {
            assert!(!rx.is_closed(), "a live sender means an open channel");
            strong.try_send(1).unwrap();
        }
        dropper.join().unwrap();
        assert!(rx.is_closed());
        assert!(weak.upgrade().is_none());
    }
}
