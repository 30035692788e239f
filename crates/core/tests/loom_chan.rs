//! loom models of the channel core (`crates/core/src/chan/core.rs`): every interleaving of a
//! few threads, checking that a rendezvous or bounded hand-off with a cancelled receive or a
//! withdrawn send delivers each value exactly once and loses no wake-up, including the direct
//! hand-off of a value to a parked receiver (by `send` or `try_send`) whose receive is then
//! cancelled or overtaken by a close, and the per-key `served` counts through which a parked
//! sender learns without the lock that its value was taken; and the handles added for
//! parity with tokio and async-channel: `closed()` futures, weak senders racing the last
//! drop, `force_send` racing receives and blocked senders, and the blocking calls; and
//! fan-out wake-ups with the close held back until every value arrived (written for chained
//! wake-ups, tried and reverted in issue 18; they hold for any design).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p weft-core --test loom_chan --release`
//! (`LOOM_MAX_PREEMPTIONS=3` explores more).
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use weft_core::chan::{self, TryRecvError};

/// Runs a loom model, bounding preemptions to 2 unless `LOOM_MAX_PREEMPTIONS` says otherwise
/// (as tokio's loom suite does): the bugs these models look for need at most two.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(2);
    builder.check(f);
}

/// Polls a future once with a no-op waker, as a `select!` that then picks another branch.
fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// A rendezvous send races a receive that is polled once and cancelled, and a receive that
/// waits: the value reaches exactly one of them and the send completes.
#[test]
fn rendezvous_cancelled_receive_loses_nothing() {
    model(|| {
        let (tx, rx) = chan::rendezvous::<u32>();
        let got = Arc::new(AtomicUsize::new(0));

        let sender = thread::spawn(move || {
            block_on(tx.send(7)).unwrap();
            // Dropping the only sender closes the channel, so the waiting receiver ends.
        });
        let canceller = {
            let (rx, got) = (rx.clone(), got.clone());
            thread::spawn(move || {
                if let Some(Some(7)) = poll_once(rx.recv()) {
                    got.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        while let Some(v) = block_on(rx.recv()) {
            assert_eq!(v, 7);
            got.fetch_add(1, Ordering::SeqCst);
        }
        sender.join().unwrap();
        canceller.join().unwrap();
        assert_eq!(got.load(Ordering::SeqCst), 1, "received exactly once");
    });
}

/// A rendezvous send is withdrawn (polled once, then `cancel`) while a receiver waits: the
/// value is either taken (then `cancel` says so) or comes back, never both.
#[test]
fn rendezvous_withdrawn_send_is_either_sent_or_returned() {
    model(|| {
        let (tx, rx) = chan::rendezvous::<u32>();
        let receiver = thread::spawn(move || block_on(rx.recv()));
        let returned = {
            let mut send = tx.send(1);
            let first = poll_once(&mut send);
            match first {
                Some(res) => {
                    res.unwrap();
                    None
                }
                None => send.cancel(),
            }
        };
        drop(tx); // closes: a receiver that got nothing ends with None
        let received = receiver.join().unwrap();
        match returned {
            Some(v) => assert_eq!((v, received), (1, None)),
            None => assert_eq!(received, Some(1)),
        }
    });
}

/// Bounded(1), full: a blocked sender is withdrawn while a receiver drains. Every value ends
/// either received or returned, exactly once.
#[test]
fn bounded_withdrawn_send_is_either_sent_or_returned() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        tx.try_send(1).unwrap();
        let receiver = thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(v) = block_on(rx.recv()) {
                got.push(v);
            }
            got
        });
        let returned = {
            let mut send = tx.send(2);
            match poll_once(&mut send) {
                Some(res) => {
                    res.unwrap();
                    None
                }
                None => send.cancel(),
            }
        };
        drop(tx);
        let got = receiver.join().unwrap();
        match returned {
            Some(v) => assert_eq!((v, got), (2, vec![1])),
            None => assert_eq!(got, [1, 2]),
        }
    });
}

/// Two waiting receivers, one value: whichever is woken, the other must not sleep forever
/// once the channel closes, and the value is received once.
#[test]
fn two_receivers_one_value_no_lost_wakeup() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        let got = Arc::new(AtomicUsize::new(0));
        let other = {
            let (rx, got) = (rx.clone(), got.clone());
            thread::spawn(move || {
                while block_on(rx.recv()).is_some() {
                    got.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let sender = thread::spawn(move || {
            block_on(tx.send(3)).unwrap();
        });
        while block_on(rx.recv()).is_some() {
            got.fetch_add(1, Ordering::SeqCst);
        }
        sender.join().unwrap();
        other.join().unwrap();
        assert_eq!(got.load(Ordering::SeqCst), 1);
    });
}

/// `try_send` on a rendezvous races a receive that parks and is then cancelled, and a
/// receive that waits; then the channel closes. `try_send` succeeds only by handing the value
/// to a parked receive, and then the value is received exactly once (by the waiting receive,
/// or left in the channel by the cancelled one), never lost; if it fails, nobody gets it.
#[test]
fn rendezvous_try_send_hand_off_to_a_cancelled_receive() {
    model(|| {
        let (tx, rx) = chan::rendezvous::<u32>();
        let canceller = {
            let rx = rx.clone();
            // Completes at once only after the close: with the end, or with the value taken
            // over from the waiting receive's slot.
            thread::spawn(move || poll_once(rx.recv()).flatten())
        };
        let waiter = {
            let rx = rx.clone();
            thread::spawn(move || block_on(rx.recv()))
        };
        let sent = tx.try_send(5).is_ok();
        drop(tx); // closes: the waiting receive ends once nothing is left
        let mut got = usize::from(canceller.join().unwrap() == Some(5));
        got += usize::from(waiter.join().unwrap() == Some(5));
        got += usize::from(rx.try_recv() == Ok(5));
        assert_eq!(got, usize::from(sent), "received exactly once iff sent");
    });
}

/// A value is handed to a parked receive whose owner has not polled it again when the channel
/// closes: a second receive must not report "closed and drained" while that value is still in
/// the channel (it takes it over instead), so that cancelling the first receive afterwards
/// leaves nothing behind. Each value sent is received exactly once.
#[test]
fn close_with_a_pending_hand_off_delivers_exactly_once() {
    model(|| {
        let (tx, rx) = chan::rendezvous::<u32>();
        let sender = thread::spawn(move || {
            let mut send = tx.send(9);
            match poll_once(&mut send) {
                Some(res) => res.is_ok(),
                // Nobody was parked: withdraw it (a send that was taken meanwhile is sent).
                None => send.cancel().is_none(),
            }
            // Dropping the only sender closes the channel.
        });
        let second = {
            let rx = rx.clone();
            thread::spawn(move || block_on(rx.recv()))
        };
        let mut first = rx.recv();
        let first_got = poll_once(&mut first).flatten();
        let second_got = second.join().unwrap();
        drop(first); // cancelled after the second receive finished
        let sent = sender.join().unwrap();
        let left = rx.try_recv();
        if second_got.is_none() {
            assert_eq!(
                left,
                Err(TryRecvError::Closed),
                "the end was reported too early"
            );
        }
        let got = [first_got, second_got, left.ok()];
        let n = got.iter().filter(|v| **v == Some(9)).count();
        assert_eq!(
            n,
            usize::from(sent),
            "received exactly once iff sent: {got:?}"
        );
    });
}

/// Bounded(1) with receives parked: one `try_send` fills the buffer, a second one hands its
/// value straight to another parked receive, which may be cancelled (its value then goes back
/// into the buffer, past the capacity). Every value that was sent is received exactly once.
#[test]
fn bounded_hand_off_past_a_full_buffer_to_a_cancelled_receive() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        let canceller = {
            let rx = rx.clone();
            thread::spawn(move || poll_once(rx.recv()).flatten())
        };
        let waiter = {
            let rx = rx.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(v) = block_on(rx.recv()) {
                    got.push(v);
                }
                got
            })
        };
        let sent: Vec<u32> = [1, 2]
            .into_iter()
            .filter(|v| tx.try_send(*v).is_ok())
            .collect();
        drop(tx);
        let mut got = waiter.join().unwrap();
        got.extend(canceller.join().unwrap());
        while let Ok(v) = rx.try_recv() {
            got.push(v);
        }
        got.sort_unstable();
        assert_eq!(got, sent, "each value sent is received exactly once");
    });
}

/// Parked senders learn "taken" from a per-key `served` count without the lock, and a key
/// freed by the receiver that served its sender is reused by the next sender to park. Two
/// rendezvous sends park one after the other (the second may reuse the first's key) while a
/// receiver takes one value; then both are withdrawn. Exactly the values the receiver got are
/// reported sent; the others come back.
#[test]
fn served_senders_and_a_reused_key_are_told_apart() {
    model(|| {
        let (tx, rx) = chan::rendezvous::<u32>();
        let receiver = thread::spawn(move || block_on(rx.recv()));
        // `Some(v)`: not sent (withdrawn, or the channel closed when the receiver ended).
        let send = |v: u32| {
            let mut send = tx.send(v);
            match poll_once(&mut send) {
                Some(res) => res.err().map(|e| e.into_inner()),
                None => send.cancel(),
            }
        };
        let first_back = send(1);
        let second_back = send(2);
        drop(tx); // closes: a receiver that got nothing ends with None
        let got = receiver.join().unwrap();
        let sent: Vec<u32> = [(1, first_back), (2, second_back)]
            .into_iter()
            .filter(|(_, back)| back.is_none())
            .map(|(v, _)| v)
            .collect();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), sent);
        if let Some(v) = first_back {
            assert_eq!(v, 1);
        }
        if let Some(v) = second_back {
            assert_eq!(v, 2);
        }
    });
}

/// `Sender::closed` waits while the last receiver is dropped on another thread: the close
/// wakes it (no lost wake-up between its look at `closed` and its parking), and a second
/// `closed` future cancelled at the same time does not swallow the wake-up.
#[test]
fn closed_future_is_woken_by_the_last_receiver_drop() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        let dropper = thread::spawn(move || drop(rx));
        let canceller = {
            let tx = tx.clone();
            thread::spawn(move || {
                let _ = poll_once(tx.closed());
            })
        };
        block_on(tx.closed());
        assert!(tx.is_closed());
        dropper.join().unwrap();
        canceller.join().unwrap();
    });
}

/// A weak sender upgrades while the last strong sender is dropped on another thread: either
/// the upgrade wins (then the channel stays open until the upgraded sender is dropped, and a
/// send through it is received) or it sees no sender and the channel is closed for good.
#[test]
fn weak_upgrade_racing_the_last_drop_never_reopens_the_channel() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        let weak = tx.downgrade();
        let dropper = thread::spawn(move || drop(tx));
        let sent = match weak.upgrade() {
            Some(tx) => {
                assert!(!tx.is_closed(), "a live sender means an open channel");
                tx.try_send(1).unwrap();
                true
            }
            None => false,
        };
        dropper.join().unwrap();
        assert!(weak.upgrade().is_none(), "closed for good");
        assert_eq!(block_on(rx.recv()).is_some(), sent);
        assert_eq!(block_on(rx.recv()), None);
    });
}

/// `force_send` on a full bounded(1) channel races a receiver and a sender blocked for room:
/// every value ends exactly once, received or handed back as overwritten.
#[test]
fn force_send_racing_a_receive_and_a_blocked_send_accounts_for_every_value() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        tx.try_send(1).unwrap();
        let blocked = {
            let tx = tx.clone();
            thread::spawn(move || block_on(tx.send(2)).unwrap())
        };
        let receiver = thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(v) = block_on(rx.recv()) {
                got.push(v);
            }
            got
        });
        let evicted = tx.force_send(3).unwrap();
        drop(tx);
        blocked.join().unwrap();
        let mut all = receiver.join().unwrap();
        all.extend(evicted);
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3], "received or overwritten, exactly once");
    });
}

/// `send_blocking` and `recv_blocking` on a rendezvous between two threads: the value arrives
/// once and the send returns only after the receiver has it.
#[test]
fn blocking_send_and_receive_meet_on_a_rendezvous() {
    model(|| {
        let (tx, rx) = chan::rendezvous::<u32>();
        let receiver = thread::spawn(move || rx.recv_blocking());
        tx.send_blocking(4).unwrap();
        drop(tx);
        assert_eq!(receiver.join().unwrap(), Some(4));
    });
}

// Bounded(1) parking races (written for a lock-free ring buffer that was tried and reverted,
// see BENCHMARKS.md `## Channels`; they hold for any buffer): a receiver parking as a value
// arrives, a sender parking as a slot frees, two senders for one slot, a send racing the close.

/// A receiver parks on an empty buffer while a send arrives: the receiver is woken (a lost
/// wake-up deadlocks the model).
#[test]
fn bounded_send_wakes_a_parking_receiver() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        let receiver = thread::spawn(move || block_on(rx.recv()));
        block_on(tx.send(5)).unwrap();
        assert_eq!(receiver.join().unwrap(), Some(5));
        drop(tx);
    });
}

/// A sender parks on a full buffer while a receive frees the slot: the parked sender's value
/// moves into the freed slot, in FIFO order, and the sender is woken.
#[test]
fn bounded_receive_moves_a_parking_sender_in() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        tx.try_send(1).unwrap();
        let sender = {
            let tx = tx.clone();
            thread::spawn(move || block_on(tx.send(2)).unwrap())
        };
        assert_eq!(rx.try_recv(), Ok(1));
        sender.join().unwrap();
        drop(tx);
        assert_eq!(block_on(rx.recv()), Some(2));
        assert_eq!(block_on(rx.recv()), None);
    });
}

/// Two senders race for one slot while the receiver drains: every value arrives exactly once
/// and both senders complete (a sender left parked deadlocks the model).
#[test]
fn bounded_two_senders_one_slot_every_value_once() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        let senders: Vec<_> = [10, 20]
            .into_iter()
            .map(|v| {
                let tx = tx.clone();
                thread::spawn(move || block_on(tx.send(v)).unwrap())
            })
            .collect();
        drop(tx);
        let mut got = [block_on(rx.recv()), block_on(rx.recv())];
        got.sort_unstable();
        assert_eq!(got, [Some(10), Some(20)]);
        senders.into_iter().for_each(|s| s.join().unwrap());
    });
}

/// A send races the close: it either lands before it (and the receiver drains it after the
/// close) or fails with its value; never both, never lost.
#[test]
fn bounded_send_racing_close_is_received_or_returned() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(1);
        let sender = {
            let tx = tx.clone();
            thread::spawn(move || tx.try_send(9).is_ok())
        };
        let receiver = thread::spawn(move || block_on(rx.recv()));
        tx.close();
        let sent = sender.join().unwrap();
        assert_eq!(receiver.join().unwrap(), sent.then_some(9));
    });
}

// Fan-out wake-ups (written for chained wake-ups, tried for issue 18 and reverted, see
// BENCHMARKS.md `## Channels`: a send into the buffer left parked receivers asleep while a
// receiver it already woke had not polled, and that receiver woke the next; they hold for
// any design). The sender closes the channel only after every value was received, so a lost
// wake-up leaves every thread blocked and loom reports the deadlock (a close would otherwise
// wake everyone and hide it).

/// Two receivers park on an empty bounded channel and two values arrive: whichever receiver
/// is woken, the second value reaches a receiver, and each value is received exactly once.
#[test]
fn fan_out_chained_wake_up_delivers_every_value() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(2);
        let got = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(loom::sync::Notify::new());
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let (rx, got, done) = (rx.clone(), got.clone(), done.clone());
                thread::spawn(move || {
                    while let Some(v) = block_on(rx.recv()) {
                        // Values 1 and 2: the sum tells a duplicate or a loss apart.
                        if got.fetch_add(v as usize, Ordering::SeqCst) + v as usize == 3 {
                            done.notify();
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        done.wait();
        drop(tx);
        receivers.into_iter().for_each(|r| r.join().unwrap());
        assert_eq!(got.load(Ordering::SeqCst), 3, "each value received once");
    });
}

/// As above, with one receive polled once and then cancelled (as by a `select!`): if it was
/// the one woken, its drop passes the wake-up on, so the waiting receiver gets what is left.
#[test]
fn fan_out_cancelled_woken_receive_passes_the_chain_on() {
    model(|| {
        let (tx, rx) = chan::bounded::<u32>(2);
        let got = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(loom::sync::Notify::new());
        let count = {
            let (got, done) = (got.clone(), done.clone());
            move |v: u32| {
                if got.fetch_add(v as usize, Ordering::SeqCst) + v as usize == 3 {
                    done.notify();
                }
            }
        };
        let canceller = {
            let (rx, count) = (rx.clone(), count.clone());
            thread::spawn(move || {
                if let Some(Some(v)) = poll_once(rx.recv()) {
                    count(v);
                }
            })
        };
        let waiter = thread::spawn(move || {
            while let Some(v) = block_on(rx.recv()) {
                count(v);
            }
        });
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        done.wait();
        drop(tx);
        canceller.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(got.load(Ordering::SeqCst), 3, "each value received once");
    });
}
