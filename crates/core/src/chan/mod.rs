//! Go's channels for tokio: bounded, rendezvous (unbuffered) and unbounded MPMC channels with
//! `close`, whose receives are cancel safe in `select!`, rendezvous included.
//!
//! | Go | weft |
//! |---|---|
//! | `make(chan T, n)` | [`bounded(n)`](bounded) (`bounded(0)` is a rendezvous, as in Go) |
//! | `make(chan T)` | [`rendezvous()`](rendezvous) |
//! | (none: a goroutine per value) | [`unbounded()`](unbounded) |
//! | `ch <- v` | [`tx.send(v).await`](Sender::send) |
//! | `select { case ch <- v: default: }` | [`tx.try_send(v)`](Sender::try_send) |
//! | `v, ok := <-ch` | [`rx.recv().await`](Receiver::recv) (`None` once closed and drained) |
//! | `for v := range ch` | `while let Some(v) = rx.recv().await`, or `rx` as a [`Stream`] |
//! | `close(ch)` | [`tx.close()`](Sender::close), [`rx.close()`](Receiver::close), or drop every `Sender` |
//! | `len(ch)`, `cap(ch)` | [`len`](Sender::len), [`capacity`](Sender::capacity) |
//! | `chan<- T`, `<-chan T` | [`Sender<T>`], [`Receiver<T>`] |
//! | a goroutine's plain `ch <- v` / `<-ch` from non-async code | [`send_blocking`](Sender::send_blocking), [`recv_blocking`](Receiver::recv_blocking) |
//! | (none: a `done` channel beside it) | [`tx.closed().await`](Sender::closed), [`rx.closed().await`](Receiver::closed) |
//! | (none: `select` with a receive of the oldest, then a send) | [`tx.force_send(v)`](Sender::force_send) |
//! | (none) | [`tx.downgrade()`](Sender::downgrade): a [`WeakSender`] that does not keep the channel open |
//!
//! Both halves are `Clone`: many senders and many receivers share one channel (Go's fan-in
//! and fan-out; each value goes to exactly one receiver). `select` is `tokio::select!`; see
//! [`crate::select`] for Go's select patterns and the fan-in/fan-out helpers.
//!
//! # Differences from Go, and why
//!
//! - **Sending on a closed channel returns the value** ([`SendError`]) instead of panicking,
//!   and either side may close. Closing twice is harmless (it returns `false`).
//! - **Closing wakes blocked senders with their values**: a send that was waiting when the
//!   channel closed returns [`SendError`] with its value (Go would panic). Values already in
//!   the buffer are still delivered: receivers drain them, then see the end.
//! - **Dropping every [`Sender`] closes the channel** (no goroutine leaks on a forgotten
//!   `close`); dropping every [`Receiver`] closes it too, and drops the buffered values, which
//!   no one can receive any more.
//! - **A goroutine blocks; async code awaits.** Go has one kind of send. Here
//!   [`send`](Sender::send) is for async code, and
//!   [`send_blocking`](Sender::send_blocking) / [`recv_blocking`](Receiver::recv_blocking)
//!   are for threads outside the runtime: they block the thread, so calling them from async
//!   code blocks a runtime worker (a deadlock on a current-thread runtime).
//! - **Waiting for the close is a method**, [`closed`](Sender::closed), where Go would use a
//!   second `done` channel; and a [`WeakSender`] can send without keeping the channel open,
//!   which Go, without reference counts, has no use for.
//! - **There is no nil channel.** To disable a `select!` branch, use a precondition
//!   (`, if cond`) or an `Option<Receiver<T>>` (see [`crate::select`]).
//!
//! # Cancel safety
//!
//! **Receiving** ([`recv`](Receiver::recv), [`recv_many`](Receiver::recv_many),
//! [`recv_timeout`](Receiver::recv_timeout), [`recv_ctx`](Receiver::recv_ctx), and the
//! `Stream`) is cancel safe for every flavour: a value leaves the channel only inside the poll
//! that returns it, so a receive dropped by `select!` never held a value. Like Go, a sender
//! that finds a receiver parked hands its value over directly (one wake-up instead of two),
//! but the value goes into a slot the *channel* keeps for that receive, not into the receive
//! future. If that receive is cancelled before it runs, its drop passes the value on to the
//! next waiting receiver, or leaves it in the channel, buffered, for the next receive (for a
//! rendezvous: ahead of every value still waiting with its sender). So a handed value is received exactly once: never lost, never
//! duplicated. (flume's and kanal's rendezvous channels push the value into the receive
//! future itself, which loses it if that receive is cancelled.)
//!
//! **Sending**: what a dropped [`send`](Sender::send) future means depends on how far it got:
//!
//! | flavour | send completes when | dropped while waiting means |
//! |---|---|---|
//! | unbounded | at once (first poll) | it never waits |
//! | bounded | the value is in the buffer | value dropped, not sent; unless a receiver had already moved it into the buffer, then it is sent |
//! | rendezvous | a receiver has taken the value, or the value was handed to a waiting receive | value dropped, not sent; unless a receiver had already taken it, then it is sent |
//!
//! Never both, never twice.
//!
//! **What "sent" means for a rendezvous.** A completed rendezvous send means a receiver was
//! *waiting* and was handed the value (or took it from the waiting sender). It does not
//! guarantee that the receive which was waiting returns it: if that receive is cancelled, the
//! value goes to the next receive on the channel, before any later value (never lost, never
//! duplicated; a receive never reports the end while such a value is left). So the
//! synchronisation is Go's: the send completes once a receiver has committed to receiving,
//! not after the receiving code has run. [`try_send`](Sender::try_send) succeeds the same way
//! when a receiver is waiting (Go's `select` with `default`). The cancel-safe way to send is to keep the [`Send`] future and call
//! [`Send::cancel`] when giving up: it returns the value if it was not sent. [`send_timeout`]
//! and [`send_ctx`] do exactly that and hand the value back in their errors.
//!
//! [`send_timeout`]: Sender::send_timeout
//! [`send_ctx`]: Sender::send_ctx
//!
//! # Fairness
//!
//! Blocked senders are served in FIFO order (a receiver that frees a slot moves the oldest
//! waiting sender's value into it), and waiting receivers are woken in FIFO order, one per
//! value. A receiver that finds a value ready takes it without queueing, so a busy receiver
//! may overtake a waiting one (as in Go).
//!
//! # Performance
//!
//! Every operation takes one short lock (no user code, allocation or wake-up runs under it)
//! and allocates nothing once the wait lists have grown to the peak number of waiters. A
//! rendezvous hand-off costs one wake-up, of whichever side arrived first and parked: a
//! sender hands its value straight to a parked receiver and completes, and a receiver takes
//! a parked sender's value and wakes it; the woken sender learns that its value was taken
//! from an atomic counter, without taking the lock again. A wake-up is sent only when someone
//! is parked, and to one waiter per value. An operation that finds the lock held spins a few
//! pauses and then sleeps its thread for 1-64 us until the lock is free (as kanal's lock does,
//! for up to 1 ms): when tasks on every worker hammer one channel, that runs them on one core
//! at a time instead of moving the lock's cache line between cores on every operation, which
//! costs several times the time and CPU; the price is that such a task holds its worker for
//! the nap. Measured beside a contended load, the nap delays the runtime's other tasks no
//! more than kanal's does. What does delay them is that an operation that completes at once
//! does not spend tokio's cooperative budget (tokio's own channels do): a loop that keeps
//! sending into a buffer with room, or receiving from a non-empty one, holds its worker
//! without yielding. Where other tasks' latency matters, call
//! `tokio::task::coop::consume_budget().await` in such a loop. See `BENCHMARKS.md`
//! (`## Channels`) for measurements against tokio, async-channel, flume and kanal.
//!
//! # Examples
//!
//! Go's unbuffered channel: the send completes only once the receiver has the value.
//!
//! ```
//! use weft_core::chan;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (tx, rx) = chan::rendezvous();
//! let producer = tokio::spawn(async move {
//!     for i in 0..3 {
//!         tx.send(i).await.unwrap(); // waits for a receiver each time
//!     }
//!     // Dropping the last sender closes the channel.
//! });
//! let mut got = Vec::new();
//! while let Some(v) = rx.recv().await {
//!     got.push(v);
//! }
//! producer.await.unwrap();
//! assert_eq!(got, [0, 1, 2]);
//! # }
//! ```
//!
//! A buffered channel drains after `close`:
//!
//! ```
//! use weft_core::chan;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (tx, rx) = chan::bounded(2);
//! tx.send("a").await.unwrap();
//! tx.send("b").await.unwrap();
//! tx.close();
//! assert!(tx.send("c").await.is_err());
//! assert_eq!(rx.recv().await, Some("a"));
//! assert_eq!(rx.recv().await, Some("b"));
//! assert_eq!(rx.recv().await, None);
//! # }
//! ```

mod blocking;
mod core;
mod error;
mod future;
mod waitlist;

use std::fmt;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};

use self::core::{Shared, UNBOUNDED};
use crate::context::Context;
use crate::loom::Arc;

pub use error::{
    RecvCtxError, RecvTimeoutError, SendCtxError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
pub use future::{Closed, Recv, RecvCtx, RecvMany, RecvTimeout, Send, SendCtx, SendTimeout};

/// Creates a channel buffering up to `cap` values (Go's `make(chan T, cap)`).
///
/// `bounded(0)` is a [`rendezvous`] channel, as `make(chan T, 0)` is in Go: it never panics
/// (unlike tokio's mpsc and async-channel). A `send` waits while the buffer is full; blocked
/// senders are served in FIFO order.
///
/// ```
/// use weft_core::chan;
/// let (tx, rx) = chan::bounded(2);
/// tx.try_send(1).unwrap();
/// tx.try_send(2).unwrap();
/// assert!(tx.try_send(3).unwrap_err().is_full());
/// assert_eq!(tx.capacity(), Some(2));
/// assert_eq!(rx.try_recv(), Ok(1));
/// assert_eq!(chan::bounded::<u8>(0).0.capacity(), Some(0), "bounded(0) is a rendezvous");
/// ```
#[must_use]
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    // usize::MAX is our unbounded marker; no real buffer can hold that many values anyway.
    channel(cap.min(UNBOUNDED - 1))
}

/// Creates a rendezvous (unbuffered) channel, Go's `make(chan T)`: a `send` completes only
/// once a receiver has the value, so the two sides synchronise.
///
/// "Has the value" means, exactly as in Go: either a receive took it from the waiting
/// sender, or a receive was waiting and the sender handed the value to it. In the second case,
/// if that receive is cancelled (dropped in `select!`) before it runs, the value is not lost:
/// it goes to the next waiting receive, or waits in the channel for the next receive, which
/// takes it before any value still waiting with its sender. Each value is received exactly once. See the
/// [module documentation](self#cancel-safety).
///
/// ```
/// use weft_core::chan;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, rx) = chan::rendezvous();
/// assert!(tx.try_send(1).unwrap_err().is_full(), "no receiver is waiting");
/// let (sent, got) = tokio::join!(tx.send(1), rx.recv());
/// assert_eq!((sent, got), (Ok(()), Some(1)));
///
/// // A receive that was handed a value and then cancelled passes it on.
/// tokio::select! {
///     biased;
///     v = rx.recv() => unreachable!("nothing was sent yet: {v:?}"),
///     () = async {
///         tokio::task::yield_now().await; // the receive is parked now
///         tx.try_send(2).unwrap(); // handed to it: sent
///     } => {} // the receive is dropped here, before it ran
/// }
/// assert_eq!(rx.try_recv(), Ok(2), "not lost");
/// # }
/// ```
#[must_use]
pub fn rendezvous<T>() -> (Sender<T>, Receiver<T>) {
    channel(0)
}

/// Creates a channel without a bound: a `send` never waits. Use it only where the number of
/// values in flight is bounded by something else; every other queue should be [`bounded`].
///
/// ```
/// use weft_core::chan;
/// let (tx, rx) = chan::unbounded();
/// for i in 0..10_000 {
///     tx.try_send(i).unwrap();
/// }
/// assert_eq!(rx.len(), 10_000);
/// assert_eq!(rx.capacity(), None);
/// ```
#[must_use]
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    channel(UNBOUNDED)
}

fn channel<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared::new(cap));
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver {
            shared,
            stream_key: None,
            terminated: false,
        },
    )
}

/// The sending half of a channel (Go's `chan<- T`). Clone it for more senders.
///
/// Dropping the last `Sender` closes the channel.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half of a channel (Go's `<-chan T`). Clone it for more receivers: each value
/// goes to exactly one of them.
///
/// It is also a [`Stream`] of the values, ending once the channel is closed and drained.
/// Dropping the last `Receiver` closes the channel and drops the values still buffered.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The parking slot of the `Stream` implementation.
    stream_key: Option<usize>,
    terminated: bool,
}

/// Methods both halves share.
macro_rules! common_methods {
    () => {
        /// Closes the channel (Go's `close`). Returns `true` if this call closed it, `false`
        /// if it was already closed.
        ///
        /// Values already buffered are still received; after them receivers see the end.
        /// Senders waiting for room or for a receiver get their values back in a
        /// [`SendError`]; later sends fail the same way.
        ///
        /// ```
        /// use weft_core::chan;
        /// let (tx, rx) = chan::bounded(4);
        /// tx.try_send(1).unwrap();
        /// assert!(rx.close());
        /// assert!(!tx.close(), "already closed");
        /// assert!(tx.is_closed());
        /// assert_eq!(rx.try_recv(), Ok(1));
        /// assert!(rx.try_recv().is_err());
        /// ```
        pub fn close(&self) -> bool {
            self.shared.close()
        }

        /// Returns `true` once the channel is closed (values may still be buffered).
        pub fn is_closed(&self) -> bool {
            self.shared.is_closed()
        }

        /// Returns the number of values in the buffer (Go's `len`). 0 for a rendezvous
        /// channel (a waiting sender's value is not buffered), except for values that were
        /// handed to a receive which was cancelled before it took them: those wait in the
        /// channel for the next receive and are counted.
        ///
        /// ```
        /// use weft_core::chan;
        /// let (tx, rx) = chan::bounded(4);
        /// tx.try_send(1).unwrap();
        /// assert_eq!((tx.len(), rx.len()), (1, 1));
        /// ```
        pub fn len(&self) -> usize {
            self.shared.len()
        }

        /// Returns `true` if the buffer holds no value.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Returns the buffer's capacity (Go's `cap`): `Some(0)` for a rendezvous channel,
        /// `None` for an unbounded one.
        pub fn capacity(&self) -> Option<usize> {
            match self.shared.cap() {
                UNBOUNDED => None,
                cap => Some(cap),
            }
        }

        /// Returns the number of live [`Sender`]s.
        pub fn sender_count(&self) -> usize {
            self.shared.sender_count()
        }

        /// Returns the number of live [`Receiver`]s.
        pub fn receiver_count(&self) -> usize {
            self.shared.receiver_count()
        }
    };
}

impl<T> Sender<T> {
    common_methods!();

    /// Sends a value, waiting while the buffer is full (bounded) or until a receiver takes it
    /// (rendezvous). A closed channel hands the value back in the error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes withdraws the value unless a receiver already
    /// took it; see the [module documentation](self#cancel-safety) for each flavour. Use
    /// [`Send::cancel`] to get an unsent value back.
    ///
    /// ```
    /// use weft_core::chan;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = chan::bounded(1);
    /// tx.send(1).await.unwrap();
    /// drop(rx);
    /// assert_eq!(tx.send(2).await.unwrap_err().into_inner(), 2);
    /// # }
    /// ```
    pub fn send(&self, value: T) -> Send<'_, T> {
        Send::new(&self.shared, value)
    }

    /// Sends a value if that is possible without waiting (Go's `select` with a `send` case
    /// and a `default`); otherwise hands it back in [`TrySendError::Full`] or
    /// [`TrySendError::Closed`].
    ///
    /// Possible means: there is room in the buffer, or (buffer full, always for a rendezvous)
    /// a receive is waiting, and then the value is handed to it, as a blocking
    /// [`send`](Sender::send) would (see [`rendezvous`] for what that guarantees).
    ///
    /// ```
    /// use weft_core::chan::{self, TrySendError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, _rx) = chan::bounded(1);
    /// assert_eq!(tx.try_send(1), Ok(()));
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    ///
    /// let (tx, rx) = chan::rendezvous();
    /// assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)), "no receiver is waiting");
    /// let receiver = tokio::spawn(async move { rx.recv().await });
    /// tokio::task::yield_now().await; // let the receiver park
    /// assert_eq!(tx.try_send(2), Ok(()), "handed to the waiting receiver");
    /// assert_eq!(receiver.await.unwrap(), Some(2));
    /// # }
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.shared.try_send(value).map_err(|(v, closed)| {
            if closed {
                TrySendError::Closed(v)
            } else {
                TrySendError::Full(v)
            }
        })
    }

    /// Sends a value, giving up after `timeout` (tokio's clock) and handing it back.
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Sender::send).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::chan::{self, SendTimeoutError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (tx, _rx) = chan::bounded(1);
    /// tx.send(1).await.unwrap();
    /// let err = tx.send_timeout(2, Duration::from_secs(1)).await.unwrap_err();
    /// assert_eq!(err, SendTimeoutError::Timeout(2));
    /// # }
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> SendTimeout<'_, T> {
        SendTimeout::new(self.send(value), tokio::time::sleep(timeout))
    }

    /// Sends a value unless `ctx` ends first; then the value comes back in
    /// [`SendCtxError::Done`] with the context's error. If the context is already done,
    /// nothing is sent.
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Sender::send).
    ///
    /// ```
    /// use weft_core::chan::{self, SendCtxError};
    /// use weft_core::context::{Context, ContextError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let (tx, _rx) = chan::rendezvous();
    /// cancel.cancel();
    /// let err = tx.send_ctx("job", &ctx).await.unwrap_err();
    /// assert_eq!(err, SendCtxError::Done("job", ContextError::Cancelled));
    /// # }
    /// ```
    pub fn send_ctx<'a>(&'a self, value: T, ctx: &'a Context) -> SendCtx<'a, T> {
        SendCtx::new(self.send(value), ctx)
    }

    /// Sends a value from synchronous code, blocking the thread until the send completes (as
    /// [`send`](Sender::send) would): for a thread outside the async runtime that feeds a
    /// channel (async-channel's `send_blocking`, tokio's `blocking_send`). A closed channel
    /// hands the value back in the error.
    ///
    /// # Blocking
    ///
    /// Do not call it from async code: it blocks the runtime's worker thread until a receiver
    /// makes room, and if that receiver needs the same worker (always, on a current-thread
    /// runtime) it never does, a deadlock. It does not panic there (unlike tokio's
    /// `blocking_send`, weft cannot tell a worker from a `spawn_blocking` thread, where it is
    /// fine). In async code use [`send`](Sender::send); from a blocking section of async code,
    /// [`tokio::task::spawn_blocking`].
    ///
    /// ```
    /// use weft_core::chan;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = chan::bounded(1);
    /// // A plain thread feeds the channel; the runtime drains it.
    /// let feeder = std::thread::spawn(move || {
    ///     for i in 0..3 {
    ///         tx.send_blocking(i).unwrap(); // waits while the buffer is full
    ///     }
    /// });
    /// let mut got = Vec::new();
    /// while let Some(v) = rx.recv().await {
    ///     got.push(v);
    /// }
    /// feeder.join().unwrap();
    /// assert_eq!(got, [0, 1, 2]);
    /// # }
    /// ```
    pub fn send_blocking(&self, value: T) -> Result<(), SendError<T>> {
        blocking::block_on(self.send(value))
    }

    /// Sends a value without waiting, overwriting the **oldest** buffered value if the buffer
    /// is full, and returns what it overwrote: the "latest value wins" pattern of telemetry
    /// and UI updates (async-channel's `force_send`).
    ///
    /// - Room in the buffer, or a receiver waiting: sent as [`try_send`](Sender::try_send)
    ///   would, `Ok(None)`.
    /// - Buffer full: the oldest value is taken out and returned, `Ok(Some(oldest))`; the new
    ///   value goes to the back. It does not queue behind senders blocked in
    ///   [`send`](Sender::send): they keep waiting for room, as before.
    /// - Closed: [`TrySendError::Closed`] with the value, as `try_send`.
    /// - Rendezvous channel with no receiver waiting: [`TrySendError::Full`] with the value,
    ///   as `try_send`. A rendezvous buffers nothing that could be overwritten; a value
    ///   waiting with a blocked sender belongs to that sender, and is never dropped by this.
    ///
    /// An unbounded channel is never full, so there it is `try_send`.
    ///
    /// ```
    /// use weft_core::chan::{self, TrySendError};
    /// let (tx, rx) = chan::bounded(2);
    /// assert_eq!(tx.force_send(1), Ok(None));
    /// assert_eq!(tx.force_send(2), Ok(None));
    /// assert_eq!(tx.force_send(3), Ok(Some(1)), "the oldest value makes room");
    /// assert_eq!((rx.try_recv(), rx.try_recv()), (Ok(2), Ok(3)));
    ///
    /// let (tx, _rx) = chan::rendezvous();
    /// assert_eq!(tx.force_send(1), Err(TrySendError::Full(1)), "nothing to overwrite");
    /// tx.close();
    /// assert_eq!(tx.force_send(2), Err(TrySendError::Closed(2)));
    /// ```
    pub fn force_send(&self, value: T) -> Result<Option<T>, TrySendError<T>> {
        self.shared.force_send(value).map_err(|(v, closed)| {
            if closed {
                TrySendError::Closed(v)
            } else {
                TrySendError::Full(v)
            }
        })
    }

    /// Waits until the channel is closed: by [`close`](Sender::close) on either half, or
    /// because every [`Receiver`] was dropped, so nobody will receive what is sent (tokio's
    /// `Sender::closed`). Use it to stop producing work that nobody wants any more.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it takes nothing from the channel; see [`Closed`].
    ///
    /// ```
    /// use weft_core::chan;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = chan::bounded::<u32>(1);
    /// let producer = tokio::spawn(async move {
    ///     tokio::select! {
    ///         () = tx.closed() => "stopped: no receiver left",
    ///         () = std::future::pending() => unreachable!(),
    ///     }
    /// });
    /// drop(rx);
    /// assert_eq!(producer.await.unwrap(), "stopped: no receiver left");
    /// # }
    /// ```
    pub fn closed(&self) -> Closed<'_, T> {
        Closed::new(&self.shared)
    }

    /// Returns a [`WeakSender`]: a handle that can become a `Sender` again while other
    /// senders are alive, but does not itself keep the channel open (tokio's
    /// `Sender::downgrade`). For a background task that should send only while someone else
    /// still does.
    ///
    /// ```
    /// use weft_core::chan::{self, TryRecvError};
    /// let (tx, rx) = chan::unbounded::<u32>();
    /// let weak = tx.downgrade();
    /// weak.upgrade().unwrap().try_send(1).unwrap();
    /// drop(tx); // the last (strong) sender: the channel closes
    /// assert!(weak.upgrade().is_none());
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    /// ```
    pub fn downgrade(&self) -> WeakSender<T> {
        WeakSender {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Returns `true` if both senders belong to the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Receiver<T> {
    common_methods!();

    /// Receives the next value, waiting until there is one; `None` once the channel is closed
    /// and drained (Go's `v, ok := <-ch` with `ok == false`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe for every flavour: if the future is dropped before it completes, no value
    /// is lost (a rendezvous value stays with its sender, or, if it had already been handed
    /// to this receive, goes to another receive). Only its place among waiting receivers is
    /// lost.
    ///
    /// ```
    /// use weft_core::chan;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = chan::unbounded();
    /// tx.send(1).await.unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv().await, Some(1));
    /// assert_eq!(rx.recv().await, None);
    /// # }
    /// ```
    pub fn recv(&self) -> Recv<'_, T> {
        Recv::new(&self.shared, self.stream_key)
    }

    /// Receives a value if one is ready now: buffered, or offered by a waiting rendezvous
    /// sender (whose send then completes).
    ///
    /// ```
    /// use weft_core::chan::{self, TryRecvError};
    /// let (tx, rx) = chan::bounded(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.try_send(5).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(5));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.shared.try_recv(self.stream_key).map_err(|closed| {
            if closed {
                TryRecvError::Closed
            } else {
                TryRecvError::Empty
            }
        })
    }

    /// Receives the next value, giving up after `timeout` (tokio's clock).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`recv`](Receiver::recv).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::chan::{self, RecvTimeoutError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (_tx, rx) = chan::bounded::<u8>(1);
    /// let res = rx.recv_timeout(Duration::from_secs(1)).await;
    /// assert_eq!(res, Err(RecvTimeoutError::Timeout));
    /// # }
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> RecvTimeout<'_, T> {
        RecvTimeout::new(self.recv(), tokio::time::sleep(timeout))
    }

    /// Receives the next value unless `ctx` ends first. If the context is already done, no
    /// value is taken.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`recv`](Receiver::recv).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::chan::{self, RecvCtxError};
    /// use weft_core::context::{Context, ContextError};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    /// let (_tx, rx) = chan::rendezvous::<u8>();
    /// let err = rx.recv_ctx(&ctx).await.unwrap_err();
    /// assert_eq!(err, RecvCtxError::Done(ContextError::DeadlineExceeded));
    /// # }
    /// ```
    pub fn recv_ctx<'a>(&'a self, ctx: &'a Context) -> RecvCtx<'a, T> {
        RecvCtx::new(self.recv(), ctx)
    }

    /// Waits for at least one value, then appends up to `max` values that are ready to `buf`
    /// in one step (one lock, one batch of wake-ups); returns how many. Returns 0 once the
    /// channel is closed and drained, or at once if `max` is 0.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: values are appended only in the poll that completes.
    ///
    /// ```
    /// use weft_core::chan;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = chan::bounded(8);
    /// for i in 0..5 {
    ///     tx.send(i).await.unwrap();
    /// }
    /// let mut batch = Vec::new();
    /// assert_eq!(rx.recv_many(&mut batch, 3).await, 3);
    /// assert_eq!(rx.recv_many(&mut batch, 3).await, 2);
    /// assert_eq!(batch, [0, 1, 2, 3, 4]);
    /// # }
    /// ```
    pub fn recv_many<'a>(&'a self, buf: &'a mut Vec<T>, max: usize) -> RecvMany<'a, T> {
        RecvMany::new(&self.shared, self.stream_key, buf, max)
    }

    /// Receives the next value from synchronous code, blocking the thread until there is one
    /// (as [`recv`](Receiver::recv) would); `None` once the channel is closed and drained. For
    /// a thread outside the async runtime that drains a channel (async-channel's
    /// `recv_blocking`, tokio's `blocking_recv`).
    ///
    /// # Blocking
    ///
    /// Do not call it from async code: it blocks the runtime's worker thread until a value
    /// arrives, and if the sender needs the same worker (always, on a current-thread runtime)
    /// none ever does, a deadlock. It does not panic there (unlike tokio's `blocking_recv`,
    /// weft cannot tell a worker from a `spawn_blocking` thread, where it is fine). In async
    /// code use [`recv`](Receiver::recv).
    ///
    /// ```
    /// use weft_core::chan;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = chan::rendezvous();
    /// // A plain thread drains the channel; the runtime feeds it.
    /// let drainer = std::thread::spawn(move || {
    ///     let mut sum = 0;
    ///     while let Some(v) = rx.recv_blocking() {
    ///         sum += v;
    ///     }
    ///     sum
    /// });
    /// for i in 1..=3 {
    ///     tx.send(i).await.unwrap(); // completes once the thread has the value
    /// }
    /// drop(tx);
    /// assert_eq!(drainer.join().unwrap(), 6);
    /// # }
    /// ```
    pub fn recv_blocking(&self) -> Option<T> {
        blocking::block_on(self.recv())
    }

    /// Waits until the channel is closed: by [`close`](Receiver::close) on either half, or
    /// because every [`Sender`] was dropped, so nothing more will arrive. Values sent before
    /// the close may still be buffered: [`recv`](Receiver::recv) returns them, then `None`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it takes nothing from the channel; see [`Closed`].
    ///
    /// ```
    /// use weft_core::chan;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = chan::bounded(4);
    /// tx.send("last words").await.unwrap();
    /// drop(tx);
    /// rx.closed().await; // the last sender is gone...
    /// assert_eq!(rx.recv().await, Some("last words")); // ...but its value is still here
    /// assert_eq!(rx.recv().await, None);
    /// # }
    /// ```
    pub fn closed(&self) -> Closed<'_, T> {
        Closed::new(&self.shared)
    }

    /// Returns `true` if both receivers belong to the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// A sender that does not keep the channel open (tokio's `WeakSender`): made by
/// [`Sender::downgrade`], it becomes a [`Sender`] again with [`upgrade`](WeakSender::upgrade)
/// while at least one `Sender` is alive. It is not counted by
/// [`sender_count`](Sender::sender_count), so dropping the last `Sender` closes the channel
/// even while weak senders exist; after that, `upgrade` returns `None` for good.
pub struct WeakSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> WeakSender<T> {
    /// Returns a [`Sender`] if any `Sender` is still alive, `None` once the last one was
    /// dropped. The channel may still have been closed by [`close`](Sender::close): sends on
    /// the returned `Sender` then fail with [`SendError`], as for any sender.
    ///
    /// ```
    /// use weft_core::chan;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (tx, rx) = chan::bounded::<&str>(8);
    /// let weak = tx.downgrade();
    /// let reporter = tokio::spawn(async move {
    ///     // Reports only while the channel's real producers are still at work.
    ///     while let Some(tx) = weak.upgrade() {
    ///         if tx.send("still here").await.is_err() {
    ///             break;
    ///         }
    ///         drop(tx); // do not hold the channel open between reports
    ///         tokio::task::yield_now().await;
    ///     }
    /// });
    /// tokio::task::yield_now().await;
    /// drop(tx);
    /// reporter.await.unwrap(); // ends: nothing else keeps the channel open
    /// let reports: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    /// assert!(!reports.is_empty());
    /// # }
    /// ```
    pub fn upgrade(&self) -> Option<Sender<T>> {
        self.shared.try_add_sender().then(|| Sender {
            shared: Arc::clone(&self.shared),
        })
    }
}

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        WeakSender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for WeakSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakSender")
            .field("sender_count", &self.shared.sender_count())
            .finish()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.add_sender();
        Sender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.drop_sender();
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.add_receiver();
        Receiver {
            shared: Arc::clone(&self.shared),
            stream_key: None,
            terminated: false,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.release_receiver(&mut self.stream_key);
        self.shared.drop_receiver();
    }
}

/// The values, in order, until the channel is closed and drained. Polling it is cancel safe
/// like [`Receiver::recv`]: a value handed to a stream poll that is then abandoned (say,
/// `rx.next()` losing a `select!`) stays with this receiver, and its next stream poll,
/// [`recv`](Receiver::recv), [`try_recv`](Receiver::try_recv) or
/// [`recv_many`](Receiver::recv_many) takes it first (dropping the receiver passes it on).
impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        if this.terminated {
            return Poll::Ready(None);
        }
        let next = this.shared.poll_recv(&mut this.stream_key, None, cx);
        if let Poll::Ready(None) = next {
            this.terminated = true;
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.terminated {
            (0, Some(0))
        } else {
            (self.shared.len(), None)
        }
    }
}

impl<T> FusedStream for Receiver<T> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}
