//! The private core shared by every [`Sender`](super::Sender) and [`Receiver`](super::Receiver)
//! of one channel: a buffer, a queue of parked senders *with their values*, and a queue of
//! parked receivers, all under one mutex.
//!
//! Every flavour is the same machine with a different capacity: `0` (rendezvous), `n`
//! (bounded) or `usize::MAX` (unbounded). It is Go's `hchan` (buffer + `sendq` + `recvq`) with
//! one change that makes receives cancel safe: a receiver never *gets pushed* a value, it
//! *pulls* one, inside the same `poll` that returns `Ready`. So a receive that is dropped can
//! never have held a value.
//!
//! # Invariants
//!
//! 1. Values only move under the lock, and only in three ways: a sender pushes into `buf`
//!    (only if `buf.len() < cap`); a sender parks its value in its own `send_waiters` entry;
//!    a receiver pops from `buf` or takes a parked value. A receiver that takes a value returns
//!    `Ready` with it before releasing the lock's result to anyone else: there is no state in
//!    which a value belongs to a receiver future that might be dropped.
//! 2. `buf.len() < cap` implies no sender is linked in `send_waiters`: whenever a receiver
//!    pops from a full `buf`, it moves the oldest parked sender's value into the freed slot
//!    (Go's semantics, and FIFO fairness among blocked senders).
//! 3. A parked sender's entry holds `Some(value)` until a receiver takes it, and the receiver
//!    unlinks the entry as it takes it. `None` in an entry therefore means "delivered": the
//!    sender's future completes with `Ok` when it sees it, and a dropped sender future whose
//!    value is `None` counts as a completed send. An entry is freed only by its sender.
//! 4. Once `closed` is set it is never cleared; on closing, every linked sender is unlinked
//!    (keeping its value, which its future hands back) and every linked receiver is woken.
//!    After that nothing enters `buf` or `send_waiters`; receivers drain `buf` and then see
//!    the end.
//! 5. No lost wake-ups: whenever a value becomes available (pushed into `buf`, or parked by a
//!    sender), one linked receiver is unlinked and woken. A woken (unlinked) receiver that is
//!    dropped without taking a value passes the wake-up on to the next linked receiver if a
//!    value is still available; one that finds nothing links itself again.
//! 6. Wakers are called and values are dropped only after the lock is released (a waker or a
//!    user `Drop` may run arbitrary code, which must not run under our lock).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use super::waitlist::WaitList;
use crate::loom::{AtomicUsize, Mutex, MutexGuard};

pub(super) const UNBOUNDED: usize = usize::MAX;

pub(super) struct Shared<T> {
    state: Mutex<State<T>>,
    /// Counts of live `Sender`s and `Receiver`s: the last one of either closes the channel.
    senders: AtomicUsize,
    receivers: AtomicUsize,
    cap: usize,
}

#[derive(Debug)]
struct State<T> {
    buf: VecDeque<T>,
    closed: bool,
    send_waiters: WaitList<SendWaiter<T>>,
    recv_waiters: WaitList<Option<Waker>>,
}

#[derive(Debug)]
struct SendWaiter<T> {
    /// `Some` until a receiver takes it (invariant 3).
    value: Option<T>,
    waker: Option<Waker>,
}

/// Where a send future is: not yet tried, parked under a key, or finished.
#[derive(Debug)]
pub(super) enum SendState<T> {
    Idle(T),
    Parked(usize),
    Done,
}

/// Wakers collected under the lock and called after it (invariant 6), without allocating.
pub(super) struct WakeList {
    wakers: [Option<Waker>; WakeList::CAP],
    len: usize,
}

impl WakeList {
    const CAP: usize = 32;

    fn new() -> Self {
        WakeList {
            wakers: Default::default(),
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == Self::CAP
    }

    fn push(&mut self, waker: Option<Waker>) {
        if let Some(w) = waker {
            self.wakers[self.len] = Some(w);
            self.len += 1;
        }
    }

    fn wake_all(mut self) {
        for w in &mut self.wakers[..self.len] {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

fn update_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl<T> State<T> {
    /// Unlinks the first parked receiver and returns its waker (invariant 5).
    fn notify_receiver(&mut self) -> Option<Waker> {
        let key = self.recv_waiters.pop_front()?;
        self.recv_waiters.get_mut(key).take()
    }

    fn has_value(&self) -> bool {
        !self.buf.is_empty() || !self.send_waiters.is_empty()
    }

    /// Takes the next value, in FIFO order; returns the parked sender to wake, if any.
    fn take_value(&mut self) -> Option<(T, Option<Waker>)> {
        if let Some(value) = self.buf.pop_front() {
            // Invariant 2: refill the freed slot from the oldest parked sender.
            let waker = match self.send_waiters.pop_front() {
                Some(key) => {
                    let waiter = self.send_waiters.get_mut(key);
                    if let Some(parked) = waiter.value.take() {
                        self.buf.push_back(parked);
                    }
                    waiter.waker.take()
                }
                None => None,
            };
            return Some((value, waker));
        }
        let key = self.send_waiters.pop_front()?;
        let waiter = self.send_waiters.get_mut(key);
        let value = waiter
            .value
            .take()
            .expect("a linked sender still holds its value (invariant 3)");
        Some((value, waiter.waker.take()))
    }

    /// Sets `closed` and unlinks every waiter (invariant 4); returns whom to wake.
    fn close(&mut self) -> Vec<Waker> {
        if self.closed {
            return Vec::new();
        }
        self.closed = true;
        let mut wakers = Vec::new();
        while let Some(key) = self.send_waiters.pop_front() {
            wakers.extend(self.send_waiters.get_mut(key).waker.take());
        }
        while let Some(key) = self.recv_waiters.pop_front() {
            wakers.extend(self.recv_waiters.get_mut(key).take());
        }
        wakers
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl<T> Shared<T> {
    pub(super) fn new(cap: usize) -> Self {
        let buf = if cap == UNBOUNDED {
            VecDeque::new()
        } else {
            // Preallocate small buffers; large ones grow on demand.
            VecDeque::with_capacity(cap.min(1024))
        };
        Shared {
            state: Mutex::new(State {
                buf,
                closed: false,
                send_waiters: WaitList::new(),
                recv_waiters: WaitList::new(),
            }),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A spin lock (see `crate::loom::Mutex` for why); nothing panics under it.
        self.state.lock()
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    pub(super) fn len(&self) -> usize {
        self.lock().buf.len()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(super) fn close(&self) -> bool {
        let wakers = {
            let mut state = self.lock();
            if state.closed {
                return false;
            }
            state.close()
        };
        wakers.into_iter().for_each(Waker::wake);
        true
    }

    pub(super) fn sender_count(&self) -> usize {
        self.senders.load(Ordering::Relaxed)
    }

    pub(super) fn receiver_count(&self) -> usize {
        self.receivers.load(Ordering::Relaxed)
    }

    pub(super) fn add_sender(&self) {
        // Relaxed: like `Arc::clone`, a new handle is made from an existing one, so the count
        // cannot be concurrently dropping to zero.
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_receiver(&self) {
        self.receivers.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops one sender; the last one closes the channel (Go's `close` by the producer side).
    pub(super) fn drop_sender(&self) {
        // AcqRel: the last dropper must see every other handle's effects before closing. The
        // close itself goes through the mutex, which orders it with every operation.
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }

    /// Drops one receiver; the last one closes the channel and drops the buffered values,
    /// which nobody can receive any more.
    pub(super) fn drop_receiver(&self) {
        if self.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            let (wakers, buf) = {
                let mut state = self.lock();
                let wakers = state.close();
                (wakers, std::mem::take(&mut state.buf))
            };
            drop(buf);
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// Tries to send without parking: `Err((value, closed))` when it cannot.
    pub(super) fn try_send(&self, value: T) -> Result<(), (T, bool)> {
        let mut state = self.lock();
        if state.closed {
            return Err((value, true));
        }
        if state.buf.len() < self.cap {
            state.buf.push_back(value);
            let waker = state.notify_receiver();
            drop(state);
            wake(waker);
            return Ok(());
        }
        // A rendezvous hands over only to a receiver that pulls; `try_send` cannot wait for
        // one, so it reports `Full` (like Go's `select` with a `default` on an unbuffered
        // channel when no receiver is ready to take the value at once).
        Err((value, false))
    }

    /// Polls a send (see `SendState`). `Err(value)` hands the value back: the channel closed
    /// before a receiver took it.
    pub(super) fn poll_send(
        &self,
        send: &mut SendState<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), T>> {
        match std::mem::replace(send, SendState::Done) {
            SendState::Idle(value) => {
                let mut state = self.lock();
                if state.closed {
                    return Poll::Ready(Err(value));
                }
                if state.buf.len() < self.cap {
                    // Fast path: room in the buffer, so no sender is parked (invariant 2).
                    state.buf.push_back(value);
                    let waker = state.notify_receiver();
                    drop(state);
                    wake(waker);
                    return Poll::Ready(Ok(()));
                }
                let key = state.send_waiters.push_back(SendWaiter {
                    value: Some(value),
                    waker: Some(cx.waker().clone()),
                });
                *send = SendState::Parked(key);
                let waker = state.notify_receiver();
                drop(state);
                wake(waker);
                Poll::Pending
            }
            SendState::Parked(key) => {
                let mut state = self.lock();
                let closed = state.closed;
                let waiter = state.send_waiters.get_mut(key);
                match &waiter.value {
                    None => {
                        state.send_waiters.release(key);
                        Poll::Ready(Ok(()))
                    }
                    Some(_) if closed => {
                        let (waiter, _) = state.send_waiters.release(key);
                        drop(state);
                        match waiter.value {
                            Some(value) => Poll::Ready(Err(value)),
                            None => Poll::Ready(Ok(())),
                        }
                    }
                    Some(_) => {
                        update_waker(&mut waiter.waker, cx);
                        *send = SendState::Parked(key);
                        Poll::Pending
                    }
                }
            }
            SendState::Done => panic!("a send future was polled after it completed"),
        }
    }

    /// Withdraws a send: returns the value unless a receiver already took it (invariant 3).
    pub(super) fn cancel_send(&self, send: &mut SendState<T>) -> Option<T> {
        match std::mem::replace(send, SendState::Done) {
            SendState::Idle(value) => Some(value),
            SendState::Parked(key) => {
                let (waiter, _) = self.lock().send_waiters.release(key);
                waiter.value
            }
            SendState::Done => None,
        }
    }

    /// Takes one value without parking: `Err(closed)` when there is none.
    pub(super) fn try_recv(&self) -> Result<T, bool> {
        let mut state = self.lock();
        match state.take_value() {
            Some((value, waker)) => {
                drop(state);
                wake(waker);
                Ok(value)
            }
            None => Err(state.closed),
        }
    }

    /// Polls a receive. `key` is the caller's parking slot: `None` until it first parks, and
    /// reset to `None` once it is released.
    pub(super) fn poll_recv(
        &self,
        key: &mut Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        let mut state = self.lock();
        if let Some((value, waker)) = state.take_value() {
            if let Some(key) = key.take() {
                state.recv_waiters.release(key);
            }
            drop(state);
            wake(waker);
            return Poll::Ready(Some(value));
        }
        self.park_receiver(state, key, cx)
    }

    /// Polls a batch receive: waits for at least one value, then appends up to `max`.
    pub(super) fn poll_recv_many(
        &self,
        key: &mut Option<usize>,
        out: &mut Vec<T>,
        max: usize,
        cx: &mut Context<'_>,
    ) -> Poll<usize> {
        let mut state = self.lock();
        let mut wakers = WakeList::new();
        let mut taken = 0;
        while taken < max && !wakers.is_full() {
            match state.take_value() {
                Some((value, waker)) => {
                    out.push(value);
                    wakers.push(waker);
                    taken += 1;
                }
                None => break,
            }
        }
        if taken > 0 {
            if let Some(key) = key.take() {
                state.recv_waiters.release(key);
            }
            drop(state);
            wakers.wake_all();
            return Poll::Ready(taken);
        }
        self.park_receiver(state, key, cx).map(|_| 0)
    }

    /// Parks a receiver that found no value: `Ready(None)` if closed (invariant 4).
    fn park_receiver(
        &self,
        mut state: MutexGuard<'_, State<T>>,
        key: &mut Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        if state.closed {
            if let Some(key) = key.take() {
                state.recv_waiters.release(key);
            }
            return Poll::Ready(None);
        }
        match *key {
            Some(k) => {
                update_waker(state.recv_waiters.get_mut(k), cx);
                if !state.recv_waiters.is_linked(k) {
                    // Woken, but another receiver got there first: queue again (invariant 5).
                    state.recv_waiters.link_back(k);
                }
            }
            None => *key = Some(state.recv_waiters.push_back(Some(cx.waker().clone()))),
        }
        Poll::Pending
    }

    /// Releases a receiver's parking slot when its future (or stream) is dropped, passing a
    /// wake-up it did not use to the next receiver (invariant 5).
    pub(super) fn release_receiver(&self, key: &mut Option<usize>) {
        let Some(k) = key.take() else { return };
        let mut state = self.lock();
        let (_, linked) = state.recv_waiters.release(k);
        let waker = if !linked && state.has_value() {
            state.notify_receiver()
        } else {
            None
        };
        drop(state);
        wake(waker);
    }
}
