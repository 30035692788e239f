//! Integration tests for `weft_core::chan`: Go's semantics (close with buffered values, send on
//! closed, try ops, rendezvous synchronisation), timeouts on tokio's paused clock, contexts,
//! batching, streams, and poll-level cancel safety of sends and receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FusedStream;
use tokio_test::{assert_pending, assert_ready, assert_ready_eq, task};
use weft_core::chan::{
    self, Receiver, RecvCtxError, RecvTimeoutError, SendCtxError, SendError, SendTimeoutError,
    Sender, TryRecvError, TrySendError,
};
use weft_core::context::{Context, ContextError};

type Pair = (Sender<u32>, Receiver<u32>);

fn flavours() -> Vec<(&'static str, Pair)> {
    vec![
        ("rendezvous", chan::rendezvous()),
        ("bounded(0)", chan::bounded(0)),
        ("bounded(1)", chan::bounded(1)),
        ("bounded(3)", chan::bounded(3)),
        ("unbounded", chan::unbounded()),
    ]
}

#[test]
fn capacity_len_and_flavours() {
    let (tx, rx) = chan::bounded::<u8>(3);
    assert_eq!((tx.capacity(), rx.capacity()), (Some(3), Some(3)));
    assert_eq!(chan::rendezvous::<u8>().0.capacity(), Some(0));
    assert_eq!(chan::bounded::<u8>(0).1.capacity(), Some(0));
    assert_eq!(chan::unbounded::<u8>().0.capacity(), None);
    assert!(tx.is_empty());
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!((tx.len(), rx.len()), (2, 2));
    assert_eq!((tx.sender_count(), tx.receiver_count()), (1, 1));
    let rx2 = rx.clone();
    let _tx2 = tx.clone();
    assert_eq!((rx2.sender_count(), rx2.receiver_count()), (2, 2));
    assert!(tx.same_channel(&_tx2) && rx.same_channel(&rx2));
}

#[tokio::test]
async fn close_delivers_buffered_values_then_ends() {
    for (name, (tx, rx)) in [
        ("bounded", chan::bounded(4)),
        ("unbounded", chan::unbounded()),
    ] {
        for i in 0..3 {
            tx.send(i).await.unwrap();
        }
        assert!(tx.close(), "{name}");
        assert!(rx.is_closed() && tx.is_closed(), "{name}");
        assert_eq!(tx.send(9).await, Err(SendError(9)), "{name}");
        assert_eq!(tx.try_send(9), Err(TrySendError::Closed(9)), "{name}");
        assert_eq!(rx.recv().await, Some(0), "{name}");
        assert_eq!(rx.try_recv(), Ok(1), "{name}");
        assert_eq!(rx.recv().await, Some(2), "{name}");
        assert_eq!(rx.recv().await, None, "{name}");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed), "{name}");
        assert!(!rx.close(), "closing twice is harmless and says so");
    }
}

#[tokio::test]
async fn send_on_closed_hands_the_value_back_for_every_flavour() {
    for (name, (tx, rx)) in flavours() {
        rx.close();
        assert_eq!(tx.send(7).await.unwrap_err().into_inner(), 7, "{name}");
    }
}

#[tokio::test]
async fn dropping_all_senders_closes_and_dropping_all_receivers_closes() {
    let (tx, rx) = chan::bounded::<u32>(2);
    let tx2 = tx.clone();
    drop(tx);
    assert!(!rx.is_closed(), "one sender is still alive");
    drop(tx2);
    assert!(rx.is_closed());
    assert_eq!(rx.recv().await, None);

    let (tx, rx) = chan::bounded::<u32>(2);
    let rx2 = rx.clone();
    drop(rx);
    assert_eq!(tx.try_send(1), Ok(()));
    drop(rx2);
    assert_eq!(tx.send(2).await, Err(SendError(2)));
}

#[test]
fn dropping_the_last_receiver_drops_buffered_values() {
    let tracker = Arc::new(());
    let (tx, rx) = chan::bounded(4);
    tx.try_send(Arc::clone(&tracker)).unwrap();
    tx.try_send(Arc::clone(&tracker)).unwrap();
    assert_eq!(Arc::strong_count(&tracker), 3);
    drop(rx);
    assert_eq!(
        Arc::strong_count(&tracker),
        1,
        "no one can receive them any more"
    );
}

#[test]
fn close_wakes_blocked_senders_with_their_values() {
    for (name, (tx, rx)) in [
        ("rendezvous", chan::rendezvous()),
        ("bounded(1)", chan::bounded(1)),
    ] {
        if name == "bounded(1)" {
            tx.try_send(0).unwrap();
        }
        let mut send = task::spawn(tx.send(5));
        assert_pending!(send.poll());
        rx.close();
        assert!(send.is_woken(), "{name}");
        assert_ready_eq!(send.poll(), Err(SendError(5)), "{name}");
        if name == "bounded(1)" {
            assert_eq!(rx.try_recv(), Ok(0), "buffered values still drain");
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed), "{name}");
    }
}

#[test]
fn close_wakes_blocked_receivers() {
    for (name, (tx, rx)) in flavours() {
        let mut recv = task::spawn(rx.recv());
        assert_pending!(recv.poll());
        tx.close();
        assert!(recv.is_woken(), "{name}");
        assert_ready_eq!(recv.poll(), None, "{name}");
    }
}

#[test]
fn try_send_and_try_recv() {
    let (tx, rx) = chan::bounded(1);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(tx.try_send(1), Ok(()));
    let err = tx.try_send(2).unwrap_err();
    assert!(err.is_full() && !err.is_closed());
    assert_eq!(err.into_inner(), 2);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(
        TrySendError::Full(1).to_string(),
        "sending on a full channel"
    );
    assert_eq!(
        TryRecvError::Empty.to_string(),
        "receiving on an empty channel"
    );
}

#[test]
fn rendezvous_try_send_never_buffers_and_try_recv_takes_from_a_waiting_sender() {
    let (tx, rx) = chan::rendezvous();
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    assert_eq!(rx.len(), 0);
    let mut send = task::spawn(tx.send(2));
    assert_pending!(send.poll());
    assert_eq!(rx.len(), 0, "a waiting sender's value is not buffered");
    assert_eq!(rx.try_recv(), Ok(2));
    assert!(send.is_woken());
    assert_ready_eq!(send.poll(), Ok(()));
}

#[test]
fn rendezvous_send_completes_only_once_a_receiver_took_the_value() {
    let (tx, rx) = chan::rendezvous();
    let mut send = task::spawn(tx.send("v"));
    assert_pending!(send.poll());
    assert_pending!(send.poll(), "still no receiver");
    let mut recv = task::spawn(rx.recv());
    assert_ready_eq!(recv.poll(), Some("v"));
    assert!(send.is_woken());
    assert_ready_eq!(send.poll(), Ok(()));
}

/// Go's direct hand-off: a send to a parked receiver completes at once (one wake-up).
#[test]
fn rendezvous_receiver_first_then_sender_completes_the_send_at_once() {
    let (tx, rx) = chan::rendezvous();
    let mut recv = task::spawn(rx.recv());
    assert_pending!(recv.poll());
    let mut send = task::spawn(tx.send(3));
    assert_ready_eq!(send.poll(), Ok(()), "handed to the parked receiver");
    assert!(recv.is_woken());
    assert_ready_eq!(recv.poll(), Some(3));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "received once");
}

/// The flaw reported against flume's and kanal's rendezvous channels: a receive that was
/// handed a value and then cancelled before taking it must not lose it.
#[test]
fn cancelled_rendezvous_receive_passes_its_handed_value_to_the_next_receiver() {
    let (tx, rx) = chan::rendezvous();
    let mut r1 = task::spawn(rx.recv());
    let mut r2 = task::spawn(rx.recv());
    assert_pending!(r1.poll());
    assert_pending!(r2.poll());
    let mut send = task::spawn(tx.send(42));
    assert_ready_eq!(send.poll(), Ok(()));
    assert!(r1.is_woken(), "the first waiting receiver gets the value");
    assert!(!r2.is_woken());
    drop(r1); // cancelled in a select! before it ran
    assert!(r2.is_woken(), "the value passes on with a wake-up");
    assert_ready_eq!(r2.poll(), Some(42));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "received once");
}

#[test]
fn cancelled_rendezvous_receive_with_no_other_receiver_keeps_the_value_for_the_next() {
    let (tx, rx) = chan::rendezvous();
    let mut r1 = task::spawn(rx.recv());
    assert_pending!(r1.poll());
    let mut send = task::spawn(tx.send(1));
    assert_ready_eq!(send.poll(), Ok(()));
    drop(r1);
    assert_eq!(rx.len(), 1, "the sent value waits in the channel");
    let mut s2 = task::spawn(tx.send(2));
    assert_pending!(s2.poll(), "no receiver is parked now");
    assert_eq!(rx.try_recv(), Ok(1), "the handed value comes first");
    assert_eq!(rx.try_recv(), Ok(2));
    assert_ready_eq!(s2.poll(), Ok(()));
    assert_eq!(rx.len(), 0);
}

/// Go's `select { case ch <- v: default: }` succeeds when a receiver is ready.
#[test]
fn rendezvous_try_send_hands_the_value_to_a_parked_receiver() {
    let (tx, rx) = chan::rendezvous();
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)), "nobody waits");
    let mut recv = task::spawn(rx.recv());
    assert_pending!(recv.poll());
    assert_eq!(tx.try_send(2), Ok(()));
    assert!(recv.is_woken());
    assert_eq!(
        tx.try_send(3),
        Err(TrySendError::Full(3)),
        "the receiver that was waiting already has a value"
    );
    assert_ready_eq!(recv.poll(), Some(2));
    // The same when the receive is then cancelled: the value goes to the next receive.
    let mut recv = task::spawn(rx.recv());
    assert_pending!(recv.poll());
    assert_eq!(tx.try_send(4), Ok(()));
    drop(recv);
    assert_eq!(rx.try_recv(), Ok(4));
}

/// A receive must not report "closed and drained" while a value handed to another receive
/// (whose owner has not run yet) is still in the channel: it takes that value instead.
#[test]
fn close_with_a_pending_hand_off_delivers_it_before_the_end() {
    let (tx, rx) = chan::rendezvous();
    let mut r1 = task::spawn(rx.recv());
    assert_pending!(r1.poll());
    assert_eq!(tx.try_send(7), Ok(()));
    drop(tx); // closes
    assert_eq!(
        rx.try_recv(),
        Ok(7),
        "taken over from the receive that did not run"
    );
    assert_ready_eq!(
        r1.poll(),
        None,
        "its slot is empty now, and the channel drained"
    );
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn recv_many_takes_a_handed_value_and_what_else_is_ready() {
    let (tx, rx) = chan::rendezvous();
    let mut buf = Vec::new();
    {
        let mut many = task::spawn(rx.recv_many(&mut buf, 4));
        assert_pending!(many.poll());
        assert_eq!(tx.try_send(1), Ok(()));
        let mut s2 = task::spawn(tx.send(2));
        assert_pending!(s2.poll());
        assert_ready_eq!(many.poll(), 2);
        assert_ready_eq!(s2.poll(), Ok(()));
    }
    assert_eq!(buf, [1, 2]);
}

#[test]
fn dropped_send_withdraws_its_untaken_value() {
    for (name, (tx, rx)) in [
        ("rendezvous", chan::rendezvous()),
        ("bounded(1)", chan::bounded(1)),
    ] {
        let full = name == "bounded(1)";
        if full {
            tx.try_send(0).unwrap();
        }
        let tracker = Arc::new(AtomicUsize::new(0));
        #[derive(Debug)]
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (ctx, cx_rx) = chan::rendezvous::<Counted>();
        let mut send = task::spawn(ctx.send(Counted(Arc::clone(&tracker))));
        assert_pending!(send.poll());
        drop(send);
        assert_eq!(
            tracker.load(Ordering::SeqCst),
            1,
            "{name}: dropped with the future"
        );
        assert!(cx_rx.try_recv().is_err(), "{name}: not sent");

        let mut send = task::spawn(tx.send(1));
        assert_pending!(send.poll());
        assert_eq!(send.enter(|_, mut fut| fut.cancel()), Some(1), "{name}");
        if full {
            assert_eq!(rx.try_recv(), Ok(0));
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "{name}: withdrawn");
    }
}

#[test]
fn cancel_after_the_value_was_taken_reports_it_sent() {
    // Rendezvous: the receiver has the value.
    let (tx, rx) = chan::rendezvous();
    let mut send = task::spawn(tx.send(1));
    assert_pending!(send.poll());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(send.enter(|_, mut fut| fut.cancel()), None);

    // Bounded: a receiver moved the parked value into the buffer.
    let (tx, rx) = chan::bounded(1);
    tx.try_send(1).unwrap();
    let mut send = task::spawn(tx.send(2));
    assert_pending!(send.poll());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.len(), 1, "the parked value moved into the freed slot");
    drop(send); // counts as sent
    assert_eq!(rx.try_recv(), Ok(2));
}

#[test]
fn blocked_senders_are_served_in_fifo_order() {
    let (tx, rx) = chan::bounded(1);
    tx.try_send(0).unwrap();
    let mut sends: Vec<_> = (1..=3).map(|i| task::spawn(tx.send(i))).collect();
    for s in &mut sends {
        assert_pending!(s.poll());
    }
    let got: Vec<u32> = (0..4).map(|_| rx.try_recv().unwrap()).collect();
    assert_eq!(got, [0, 1, 2, 3]);
    for s in &mut sends {
        assert_ready_eq!(s.poll(), Ok(()));
    }
}

#[test]
fn a_woken_receiver_that_is_dropped_passes_the_wake_up_on() {
    let (tx, rx) = chan::bounded(4);
    let mut r1 = task::spawn(rx.recv());
    let mut r2 = task::spawn(rx.recv());
    assert_pending!(r1.poll());
    assert_pending!(r2.poll());
    tx.try_send(1).unwrap();
    assert!(r1.is_woken() && !r2.is_woken());
    drop(r1);
    assert!(r2.is_woken());
    assert_ready_eq!(r2.poll(), Some(1));
}

#[test]
fn a_receiver_that_loses_the_race_waits_again() {
    let (tx, rx) = chan::bounded(4);
    let mut r1 = task::spawn(rx.recv());
    assert_pending!(r1.poll());
    tx.try_send(1).unwrap();
    assert!(r1.is_woken());
    assert_eq!(rx.try_recv(), Ok(1), "someone else took it first");
    assert_pending!(r1.poll());
    tx.try_send(2).unwrap();
    assert!(r1.is_woken(), "re-queued, so woken for the next value");
    assert_ready_eq!(r1.poll(), Some(2));
}

#[tokio::test(start_paused = true)]
async fn send_timeout_times_out_and_hands_the_value_back() {
    let (tx, rx) = chan::bounded(1);
    tx.send(1).await.unwrap();
    let start = tokio::time::Instant::now();
    let err = tx
        .send_timeout(2, Duration::from_secs(3))
        .await
        .unwrap_err();
    assert_eq!(err, SendTimeoutError::Timeout(2));
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(rx.len(), 1);

    let (tx, rx) = chan::rendezvous();
    let err = tx
        .send_timeout(5, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.into_inner(), 5);
    rx.close();
    let err = tx
        .send_timeout(6, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err, SendTimeoutError::Closed(6));
}

#[tokio::test(start_paused = true)]
async fn send_timeout_succeeds_when_a_receiver_comes_in_time() {
    let (tx, rx) = chan::rendezvous();
    let receiver = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rx.recv().await
    });
    assert_eq!(tx.send_timeout(8, Duration::from_secs(2)).await, Ok(()));
    assert_eq!(receiver.await.unwrap(), Some(8));
}

#[tokio::test(start_paused = true)]
async fn recv_timeout_times_out_or_receives() {
    let (tx, rx) = chan::bounded::<u32>(1);
    let start = tokio::time::Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(500)).await,
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(4).await
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(1)).await, Ok(4));
    sender.await.unwrap().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)).await,
        Err(RecvTimeoutError::Closed)
    );
}

#[tokio::test(start_paused = true)]
async fn send_ctx_returns_the_value_when_the_context_ends() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = chan::rendezvous();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
    });
    let err = tx.send_ctx(String::from("v"), &ctx).await.unwrap_err();
    assert_eq!(
        err,
        SendCtxError::Done("v".to_string(), ContextError::Cancelled)
    );
    canceller.await.unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "nothing was sent");

    let (ctx, _c) = Context::background().with_timeout(Duration::from_secs(1));
    let (tx, _rx) = chan::bounded(1);
    tx.send_ctx(1, &ctx).await.unwrap();
    let err = tx.send_ctx(2, &ctx).await.unwrap_err();
    assert_eq!(err, SendCtxError::Done(2, ContextError::DeadlineExceeded));

    let (tx, rx) = chan::bounded(1);
    rx.close();
    let live = Context::background();
    assert_eq!(tx.send_ctx(3, &live).await, Err(SendCtxError::Closed(3)));
}

#[tokio::test(start_paused = true)]
async fn recv_ctx_ends_with_the_context_and_takes_nothing_after() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = chan::bounded(2);
    tx.send(1).await.unwrap();
    assert_eq!(rx.recv_ctx(&ctx).await, Ok(1));
    tx.send(2).await.unwrap();
    cancel.cancel();
    assert_eq!(
        rx.recv_ctx(&ctx).await,
        Err(RecvCtxError::Done(ContextError::Cancelled))
    );
    assert_eq!(
        rx.try_recv(),
        Ok(2),
        "the context has priority; the value stays"
    );
    drop(tx);
    assert_eq!(
        rx.recv_ctx(&Context::background()).await,
        Err(RecvCtxError::Closed)
    );
}

#[tokio::test]
async fn recv_many_takes_a_batch_and_waits_for_at_least_one() {
    let (tx, rx) = chan::bounded(8);
    let mut buf = Vec::new();
    assert_eq!(rx.recv_many(&mut buf, 0).await, 0);
    for i in 0..6 {
        tx.send(i).await.unwrap();
    }
    assert_eq!(rx.recv_many(&mut buf, 4).await, 4);
    assert_eq!(rx.recv_many(&mut buf, 4).await, 2);
    assert_eq!(buf, [0, 1, 2, 3, 4, 5]);
    let mut waiting = task::spawn(rx.recv_many(&mut buf, 4));
    assert_pending!(waiting.poll());
    tx.try_send(6).unwrap();
    assert!(waiting.is_woken());
    assert_ready_eq!(waiting.poll(), 1);
    drop(waiting);
    drop(tx);
    assert_eq!(rx.recv_many(&mut buf, 4).await, 0, "closed and drained");
    assert_eq!(buf.len(), 7);
}

#[test]
fn recv_many_on_a_rendezvous_takes_from_every_waiting_sender() {
    let (tx, rx) = chan::rendezvous();
    let mut sends: Vec<_> = (0..3).map(|i| task::spawn(tx.send(i))).collect();
    for s in &mut sends {
        assert_pending!(s.poll());
    }
    let mut buf = Vec::new();
    let mut recv = task::spawn(rx.recv_many(&mut buf, 10));
    assert_ready_eq!(recv.poll(), 3);
    drop(recv);
    assert_eq!(buf, [0, 1, 2]);
    for s in &mut sends {
        assert!(s.is_woken());
        assert_ready_eq!(s.poll(), Ok(()));
    }
}

#[test]
fn recv_many_on_a_full_bounded_channel_refills_from_blocked_senders() {
    let (tx, rx) = chan::bounded(2);
    tx.try_send(0).unwrap();
    tx.try_send(1).unwrap();
    let mut sends: Vec<_> = (2..4).map(|i| task::spawn(tx.send(i))).collect();
    for s in &mut sends {
        assert_pending!(s.poll());
    }
    let mut buf = Vec::new();
    assert_ready_eq!(task::spawn(rx.recv_many(&mut buf, 10)).poll(), 4);
    assert_eq!(buf, [0, 1, 2, 3]);
    for s in &mut sends {
        assert_ready_eq!(s.poll(), Ok(()));
    }
}

#[tokio::test]
async fn receiver_is_a_fused_stream() {
    let (tx, mut rx) = chan::bounded(4);
    tokio::spawn(async move {
        for i in 0..10 {
            tx.send(i).await.unwrap();
        }
    });
    let got: Vec<u32> = (&mut rx).collect().await;
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert!(rx.is_terminated());
    assert_eq!(rx.next().await, None);
}

#[test]
fn stream_poll_is_cancel_safe_and_its_wake_up_passes_on_when_dropped() {
    let (tx, rx) = chan::rendezvous::<u8>();
    let mut stream_rx = rx.clone();
    let mut other = task::spawn(rx.recv());
    let mut next = task::spawn(stream_rx.next());
    assert_pending!(next.poll(), "the stream's slot parks first");
    assert_pending!(other.poll());
    let mut send = task::spawn(tx.send(1));
    assert_ready_eq!(send.poll(), Ok(()), "handed to the stream's slot");
    assert!(next.is_woken(), "the stream's slot was first in line");
    drop(next);
    assert!(
        !other.is_woken(),
        "the value stays in the receiver's stream slot"
    );
    drop(stream_rx); // a dropped receiver passes on the value handed to its stream slot
    assert!(other.is_woken());
    assert_ready_eq!(other.poll(), Some(1));
}

#[test]
fn stream_slot_wake_up_without_a_value_passes_on_when_dropped() {
    let (tx, rx) = chan::bounded::<u8>(1);
    let mut stream_rx = rx.clone();
    let mut other = task::spawn(rx.recv());
    let mut next = task::spawn(stream_rx.next());
    assert_pending!(next.poll());
    assert_pending!(other.poll());
    tx.try_send(1).unwrap();
    assert!(next.is_woken(), "the stream's slot was first in line");
    drop(next);
    drop(stream_rx); // a dropped receiver forwards its unused wake-up
    assert!(other.is_woken());
    assert_ready_eq!(other.poll(), Some(1));
}

#[tokio::test]
async fn mpmc_every_value_reaches_exactly_one_receiver() {
    for (name, (tx, rx)) in flavours() {
        let n = 2000u32;
        let mut producers = Vec::new();
        for p in 0..4 {
            let tx = tx.clone();
            producers.push(tokio::spawn(async move {
                for i in (p..n).step_by(4) {
                    tx.send(i).await.unwrap();
                }
            }));
        }
        drop(tx);
        let mut consumers = Vec::new();
        for _ in 0..3 {
            let rx = rx.clone();
            consumers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(v) = rx.recv().await {
                    got.push(v);
                }
                got
            }));
        }
        drop(rx);
        for p in producers {
            p.await.unwrap();
        }
        let mut all = Vec::new();
        for c in consumers {
            all.extend(c.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn errors_display_lowercase_without_period() {
    let msgs = [
        SendError(()).to_string(),
        TrySendError::Closed(()).to_string(),
        SendTimeoutError::Closed(()).to_string(),
        SendCtxError::Closed(()).to_string(),
        TryRecvError::Closed.to_string(),
        RecvTimeoutError::Closed.to_string(),
        RecvCtxError::Done(ContextError::Cancelled).to_string(),
    ];
    for m in msgs {
        assert!(
            m.chars().next().unwrap().is_lowercase() && !m.ends_with('.'),
            "{m}"
        );
    }
}

#[test]
fn send_future_is_debug_and_reports_its_state() {
    let (tx, _rx) = chan::rendezvous::<u8>();
    let mut send = task::spawn(tx.send(1));
    assert!(format!("{:?}", tx.send(2)).contains("idle"));
    assert_pending!(send.poll());
    send.enter(|_, fut| assert!(format!("{fut:?}").contains("parked")));
    let _ = assert_ready!(task::spawn(async { 1 }).poll());
}

#[tokio::test(start_paused = true)]
async fn every_receive_future_cancelled_mid_flight_loses_nothing() {
    let ctx = Context::background();
    let (tx, rx) = chan::rendezvous::<u32>();
    let mut buf = Vec::new();
    {
        let mut a = task::spawn(rx.recv_many(&mut buf, 4));
        let mut b = task::spawn(rx.recv_timeout(Duration::from_secs(5)));
        let mut c = task::spawn(rx.recv_ctx(&ctx));
        assert_pending!(a.poll());
        assert_pending!(b.poll());
        assert_pending!(c.poll());
        let mut send = task::spawn(tx.send(1));
        assert_ready_eq!(send.poll(), Ok(()), "handed to `a`");
        assert!(a.is_woken());
        drop(a); // cancelled after being handed the value: passes it to `b`
        assert!(b.is_woken());
        drop(b); // and `b` to `c`
        assert!(c.is_woken());
        drop(c); // and `c`, with nobody waiting, to the channel
    }
    assert!(buf.is_empty());
    assert_eq!(rx.try_recv(), Ok(1), "the value was never lost");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "nor duplicated");
}

#[tokio::test(start_paused = true)]
async fn send_timeout_and_send_ctx_cancelled_mid_flight_withdraw_their_value() {
    let ctx = Context::background();
    let (tx, rx) = chan::bounded::<u32>(1);
    tx.try_send(0).unwrap();
    let mut a = task::spawn(tx.send_timeout(1, Duration::from_secs(5)));
    let mut b = task::spawn(tx.send_ctx(2, &ctx));
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    drop(a);
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(
        rx.try_recv(),
        Ok(2),
        "b's value moved into the buffer: sent"
    );
    assert!(b.is_woken());
    assert_ready_eq!(b.poll(), Ok(()));
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "a's value was withdrawn"
    );
}

/// Go hands a value to a waiting receiver even when the buffer is full; a cancelled receive
/// then puts it back into the buffer (past the capacity: it was already sent).
#[test]
fn bounded_try_send_hands_off_past_a_full_buffer_and_a_cancelled_receive_gives_it_back() {
    let (tx, rx) = chan::bounded(1);
    let mut r1 = task::spawn(rx.recv());
    let mut r2 = task::spawn(rx.recv());
    assert_pending!(r1.poll());
    assert_pending!(r2.poll());
    assert_eq!(tx.try_send(1), Ok(()), "into the buffer, waking r1");
    assert_eq!(
        tx.try_send(2),
        Ok(()),
        "buffer full, handed to the waiting r2"
    );
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    drop(r2);
    assert_eq!(rx.len(), 2, "r2's value went back to the channel");
    assert_eq!(tx.try_send(4), Err(TrySendError::Full(4)));
    assert_ready_eq!(r1.poll(), Some(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

/// A value handed to a receiver's stream slot stays that receiver's when the stream poll is
/// abandoned (e.g. `rx.next()` lost a `select!`): `recv`, `try_recv` and `recv_many` on the
/// same receiver take it, instead of waiting while it sits in the slot.
#[test]
fn value_handed_to_an_abandoned_stream_poll_is_taken_by_the_same_receivers_recv() {
    let (tx, mut rx) = chan::rendezvous::<u8>();
    for way in ["recv", "try_recv", "recv_many"] {
        {
            let mut next = task::spawn(rx.next());
            assert_pending!(next.poll(), "{way}");
        } // abandoned: the stream slot stays parked in the receiver
        assert_eq!(tx.try_send(5), Ok(()), "{way}: handed to the stream slot");
        match way {
            "recv" => {
                assert_ready_eq!(task::spawn(rx.recv()).poll(), Some(5));
            }
            "try_recv" => assert_eq!(rx.try_recv(), Ok(5)),
            _ => {
                let mut buf = Vec::new();
                assert_ready_eq!(task::spawn(rx.recv_many(&mut buf, 4)).poll(), 1);
                assert_eq!(buf, [5]);
            }
        }
        assert_eq!(
            rx.try_recv(),
            Err(TryRecvError::Empty),
            "{way}: received once"
        );
    }
    // The stream still works afterwards: its slot parks again.
    let mut next = task::spawn(rx.next());
    assert_pending!(next.poll());
    assert_eq!(tx.try_send(6), Ok(()));
    assert!(next.is_woken());
    assert_ready_eq!(next.poll(), Some(6));
}

/// A receiver's stream slot woken for a value that the same receiver's `recv` or `try_recv`
/// then takes (the stream poll abandoned): the next send still wakes the other parked
/// receiver, rather than waiting for a stream poll that may never come. (Written for the
/// chained wake-ups tried for issue 18, which must count that wake-up as used; it holds for
/// any design.)
#[test]
fn a_stream_slots_wake_up_used_by_the_same_receivers_recv_lets_sends_wake_others() {
    for way in ["recv", "try_recv"] {
        let (tx, mut rx) = chan::bounded::<u8>(4);
        let other_rx = rx.clone();
        {
            let mut next = task::spawn(rx.next());
            assert_pending!(next.poll(), "{way}");
        } // abandoned: the stream slot stays parked in the receiver
        let mut other = task::spawn(other_rx.recv());
        assert_pending!(other.poll());
        tx.try_send(1).unwrap(); // wakes the stream slot, first in line
        match way {
            "recv" => {
                assert_ready_eq!(task::spawn(rx.recv()).poll(), Some(1));
            }
            _ => assert_eq!(rx.try_recv(), Ok(1)),
        }
        assert!(!other.is_woken(), "{way}: nothing was left to wake it for");
        tx.try_send(2).unwrap();
        assert!(
            other.is_woken(),
            "{way}: no woken receiver on its way any more"
        );
        assert_ready_eq!(other.poll(), Some(2));
    }
}
