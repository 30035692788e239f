//! The private core shared by every [`Sender`](super::Sender) and [`Receiver`](super::Receiver)
//! of one channel: a buffer, a queue of parked senders *with their values*, and a queue of
//! parked receivers *with a slot for a value handed to them*, all under one mutex.
//!
//! Every flavour is the same machine with a different capacity: `0` (rendezvous), `n`
//! (bounded) or `usize::MAX` (unbounded). It is Go's `hchan` (buffer + `sendq` + `recvq`),
//! including Go's direct hand-off: a sender that finds the buffer full (always, for a
//! rendezvous) and a receiver parked writes its value into that receiver's slot, wakes it and
//! completes at once (one wake-up per value, like Go and kanal). What makes this cancel safe,
//! where flume's and kanal's push loses the value: the slot lives in the channel, under the
//! lock, not in the receiver future. A receive future dropped before it took the value from
//! its slot passes the value on, under the lock, to the next parked receiver or, with none
//! parked, to the back of `buf` (for a rendezvous, whose `buf` is otherwise empty: the next
//! receive takes it before any waiting sender's value). So a handed value is owned by the
//! channel until exactly one receive returns it.
//!
//! Why one lock and not a lock-free buffer: a ring with per-slot sequence numbers (crossbeam's
//! array channel) was built and measured for the bounded flavour (issue 18) and cost 30-80%
//! more CPU per message in every bounded shape on a 2-core machine: it lets both cores touch
//! the channel at once, so lines move between them on every message, where the napping lock
//! (`crate::loom::Mutex`) runs a contended channel on one core at a time. See `BENCHMARKS.md`,
//! `## Channels`, "A lock-free ring for the bounded buffer". Waking a parked receiver for every
//! value pushed into `buf` (invariant 6) looks costly in fan-out, but the woken receivers run
//! in bursts on the sender's worker and drain `buf` through the fast path; counting woken
//! receivers and chaining the wake-ups instead gained nothing there and cost the rendezvous
//! 6-11% (same section, "Chained wake-ups in fan-out").
//!
//! # Invariants
//!
//! 1. Values only move under the lock, and only in these ways: a sender pushes into `buf`
//!    (only if `buf.len() < cap`); a sender hands its value to a *linked* receiver's slot,
//!    unlinking it (only if `buf` is full: the receiver then was parked with nothing to take,
//!    see below); a sender parks its value in its own `send_waiters` entry; a receiver takes
//!    the value in its own slot (or in its `Receiver`'s stream slot, left there by an
//!    abandoned stream poll), or pops from `buf`, then from a parked sender; a released
//!    receiver slot's value moves to the next linked receiver's slot or to the back of `buf`
//!    (past `cap` if need be: it was already sent); `force_send` on a full buffer (`cap > 0`)
//!    pops the oldest value out of `buf` and hands it back to its caller, which is the one
//!    way a sent value leaves the channel other than by a receive.
//!    A receive future returns `Ready` with a value in the same poll that takes it: there is
//!    no state in which a value belongs to a receiver future that might be dropped.
//! 2. `buf.len() < cap` implies no sender is linked in `send_waiters`: whenever a receiver
//!    pops from a full `buf` (exactly `cap` values), it moves the oldest parked sender's value
//!    into the freed slot (Go's semantics, and FIFO fairness among blocked senders). So only
//!    that pop needs to look at `send_waiters`.
//! 3. A parked sender's entry holds `Some(value)` until a receiver takes it, and the receiver
//!    unlinks the entry as it takes it. For the first `SERVED` keys the receiver also frees
//!    the entry and bumps the key's `served` count (a `Release` store under the lock): the
//!    sender, which parked with the count it saw then, completes with `Ok` when the count
//!    differs (an `Acquire` load, without the lock; it never touches the key again). Beyond
//!    them the entry stays with `None`, which means "delivered", and only its sender frees it.
//!    Either way a dropped sender future whose value was taken counts as a completed send.
//! 4. A linked receiver's slot is empty; a receiver slot holding a value is unlinked, and
//!    `pending` counts those slots. A receiver slot is freed only by its owner, which first
//!    takes or passes on its value.
//! 5. Once `closed` is set it is never cleared; on closing, every linked sender is unlinked
//!    (keeping its value, which its future hands back) and every linked receiver is woken.
//!    Every parked `closed()` future is unlinked and woken too, and none links itself after.
//!    After that nothing enters `send_waiters` or a receiver slot, and nothing but values
//!    passed on by dropped receives enters `buf`; receivers drain `buf`, then steal what is
//!    still `pending` in slots whose owners have not polled yet (so "closed and drained" is
//!    only reported once no value is left anywhere), then see the end.
//! 6. No lost wake-ups: whenever a value becomes available (pushed into `buf`, parked by a
//!    sender, or handed to a slot), one linked receiver is unlinked and woken (for a slot:
//!    its owner). A woken (unlinked) receiver that is dropped without taking a value passes
//!    the wake-up on to the next linked receiver if a value is still available; one that
//!    finds nothing links itself again. A sender only parks when no receiver is linked, and a
//!    receiver only parks when no value is available, so they never wait for each other.
//! 7. Wakers are called and values are dropped only after the lock is released (a waker or a
//!    user `Drop` may run arbitrary code, which must not run under our lock).
//! 8. `senders` never rises from 0: a `Sender` is cloned only from a live one, and a
//!    `WeakSender` upgrades only while the count is above 0 (a compare-and-swap), so the
//!    close made by the last sender's drop is final: a weak sender never keeps a channel open.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use super::waitlist::WaitList;
use crate::loom::{AtomicU64, AtomicUsize, Mutex, MutexGuard};

pub(super) const UNBOUNDED: usize = usize::MAX;

// `repr(C)` and the alignment keep the lock and the fields every operation touches (`buf`,
// `closed`, `cap`, the head of `recv_waiters`) in one cache line: on two cores, each line an
// operation touches moves between them, and `perf` showed those misses dominating.
#[repr(C, align(64))]
pub(super) struct Shared<T> {
    state: Mutex<State<T>>,
    /// Counts of live `Sender`s and `Receiver`s: the last one of either closes the channel.
    senders: AtomicUsize,
    receivers: AtomicUsize,
    cap: usize,
    /// `served[key]` counts the parked senders at wait-list key `key` (for the first
    /// `SERVED` keys) whose value a receiver took (invariant 3): a woken sender compares it
    /// with the count it parked with and completes without taking the lock again.
    served: [AtomicU64; SERVED],
}

/// How many wait-list keys of parked senders have a `served` counter; senders parked beyond
/// them (more than this many at once) learn they were served under the lock.
const SERVED: usize = 16;

#[derive(Debug)]
#[repr(C)]
struct State<T> {
    /// The buffered values; also the values handed to a receive that was dropped before taking
    /// them while no other receiver was parked (already sent; they may take `buf` past `cap`).
    buf: VecDeque<T>,
    closed: bool,
    cap: usize,
    recv_waiters: WaitList<RecvWaiter<T>>,
    send_waiters: WaitList<SendWaiter<T>>,
    /// Receiver slots holding a handed value (invariant 4).
    pending: usize,
    /// Parked `closed()` futures (invariant 5: all woken on closing, none linked after).
    close_waiters: WaitList<Option<Waker>>,
}

#[derive(Debug)]
struct RecvWaiter<T> {
    /// A value handed over by a sender (invariant 4); taken by the owner's next poll.
    value: Option<T>,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct SendWaiter<T> {
    /// `Some` until a receiver takes it (invariant 3).
    value: Option<T>,
    waker: Option<Waker>,
}

/// Where a send future is: not yet tried, parked under a key (with its key's `served` count
/// then), or finished.
#[derive(Debug)]
pub(super) enum SendState<T> {
    Idle(T),
    Parked(usize, u64),
    Done,
}

/// Wakers collected under the lock and called after it (invariant 7), without allocating.
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

#[inline]
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
    /// Unlinks the first parked receiver and returns its waker (invariant 6).
    #[inline]
    fn notify_receiver(&mut self) -> Option<Waker> {
        let key = self.recv_waiters.pop_front()?;
        self.recv_waiters.get_mut(key).waker.take()
    }

    /// Hands `value` to the first parked receiver and returns its waker; without one, the
    /// value waits in `buf` for the next receive (invariants 1 and 4).
    #[inline(always)]
    fn hand_off(&mut self, value: T) -> Option<Waker> {
        match self.recv_waiters.pop_front() {
            Some(key) => {
                let waiter = self.recv_waiters.get_mut(key);
                waiter.value = Some(value);
                self.pending += 1;
                waiter.waker.take()
            }
            None => {
                self.buf.push_back(value);
                None
            }
        }
    }

    #[inline]
    fn has_value(&self) -> bool {
        !self.buf.is_empty() || !self.send_waiters.is_empty()
    }

    /// Takes the value handed to the receiver slot `key`, if any.
    #[inline]
    fn take_slot(&mut self, key: Option<usize>) -> Option<T> {
        let value = self.recv_waiters.get_mut(key?).value.take()?;
        self.pending -= 1;
        Some(value)
    }

    /// Takes the oldest parked sender's value and its waker (invariant 3). A sender with a
    /// `served` counter is released and counted as served at once, so that it completes
    /// without the lock; one without keeps its (now empty) entry until it looks.
    #[inline(always)]
    fn take_parked_sender(&mut self, served: &[AtomicU64; SERVED]) -> Option<(T, Option<Waker>)> {
        let key = self.send_waiters.pop_front()?;
        let (value, waker) = if key < SERVED {
            let (waiter, _) = self.send_waiters.release(key);
            // Under the lock, the only writer: a plain increment. Release: pairs with the
            // sender's Acquire, after which it never touches the key again.
            let count = served[key].load(Ordering::Relaxed);
            served[key].store(count + 1, Ordering::Release);
            (waiter.value, waiter.waker)
        } else {
            let waiter = self.send_waiters.get_mut(key);
            (waiter.value.take(), waiter.waker.take())
        };
        let value = value.expect("a linked sender still holds its value (invariant 3)");
        Some((value, waker))
    }

    /// Takes the next value, in FIFO order; returns the parked sender to wake, if any.
    #[inline]
    fn take_value(&mut self, served: &[AtomicU64; SERVED]) -> Option<(T, Option<Waker>)> {
        if let Some(value) = self.buf.pop_front() {
            // Invariant 2: if `buf` was full, refill the freed slot from the oldest parked
            // sender (only then can one be parked; for a rendezvous never: `cap` is 0).
            let mut waker = None;
            if self.buf.len() + 1 == self.cap
                && let Some((parked, w)) = self.take_parked_sender(served)
            {
                self.buf.push_back(parked);
                waker = w;
            }
            return Some((value, waker));
        }
        if let Some(taken) = self.take_parked_sender(served) {
            return Some(taken);
        }
        if self.closed && self.pending > 0 {
            // Invariant 5: a value handed to a receive whose owner has not polled yet. After
            // the close nothing else can arrive, so take it rather than report the end while a
            // value is left (its owner will find its slot empty). Rare: a scan is fine.
            let value = self
                .recv_waiters
                .entries_mut()
                .find_map(|w| w.value.take())?;
            self.pending -= 1;
            return Some((value, None));
        }
        None
    }

    /// Sets `closed` and unlinks every waiter (invariant 5); returns whom to wake.
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
            wakers.extend(self.recv_waiters.get_mut(key).waker.take());
        }
        while let Some(key) = self.close_waiters.pop_front() {
            wakers.extend(self.close_waiters.get_mut(key).take());
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
                pending: 0,
                cap,
                closed: false,
                send_waiters: WaitList::new(),
                recv_waiters: WaitList::new(),
                close_waiters: WaitList::new(),
            }),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            cap,
            served: std::array::from_fn(|_| AtomicU64::new(0)),
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

    /// Adds a sender unless none is left (a weak sender's upgrade): once the count has reached
    /// zero the channel is closed for good, so it must never rise again.
    pub(super) fn try_add_sender(&self) -> bool {
        let mut count = self.senders.load(Ordering::Relaxed);
        loop {
            if count == 0 {
                return false;
            }
            // Acquire on success, as `Weak::upgrade`: pairs with the AcqRel decrement of a
            // sender dropped before, so this handle starts after everything that one did.
            match self.senders.compare_exchange_weak(
                count,
                count + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => count = now,
            }
        }
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
        let waker = if state.buf.len() < state.cap {
            state.buf.push_back(value);
            state.notify_receiver()
        } else if !state.recv_waiters.is_empty() {
            // A receiver is parked (Go's "a receiver is ready"): hand the value to it.
            state.hand_off(value)
        } else {
            return Err((value, false));
        };
        drop(state);
        wake(waker);
        Ok(())
    }

    /// Sends without parking, overwriting the oldest buffered value when the buffer is full:
    /// `Ok(Some(oldest))` then. `Err((value, closed))` when closed, or for a rendezvous with no
    /// receiver waiting (nothing buffered to overwrite).
    pub(super) fn force_send(&self, value: T) -> Result<Option<T>, (T, bool)> {
        let mut state = self.lock();
        if state.closed {
            return Err((value, true));
        }
        let (waker, evicted) = if state.buf.len() < state.cap {
            state.buf.push_back(value);
            (state.notify_receiver(), None)
        } else if !state.recv_waiters.is_empty() {
            // Exactly as `try_send`: a parked receiver takes the value, nothing is evicted.
            (state.hand_off(value), None)
        } else if state.cap == 0 {
            // A rendezvous buffers nothing that could be overwritten (what `buf` holds there
            // was handed to a receive already: sent, not to be dropped).
            return Err((value, false));
        } else {
            // Full: drop the oldest, keep the length. The buffer stays full, so parked
            // senders stay parked (invariant 2) and no receiver is linked (invariant 6).
            let oldest = state.buf.pop_front();
            state.buf.push_back(value);
            (None, oldest)
        };
        drop(state);
        wake(waker);
        Ok(evicted)
    }

    /// Polls a `closed()` future: `Ready` once the channel is closed. `key` is its parking
    /// slot, as for a receive.
    pub(super) fn poll_closed(&self, key: &mut Option<usize>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if state.closed {
            let released = key.take().map(|k| state.close_waiters.release(k).0);
            drop(state);
            drop(released);
            return Poll::Ready(());
        }
        match *key {
            // Not closed, so still linked: only `close` unlinks them (invariant 5).
            Some(k) => update_waker(state.close_waiters.get_mut(k), cx),
            None => *key = Some(state.close_waiters.push_back(Some(cx.waker().clone()))),
        }
        Poll::Pending
    }

    /// Releases a `closed()` future's parking slot when it is dropped.
    pub(super) fn release_closed(&self, key: &mut Option<usize>) {
        if let Some(k) = key.take() {
            let (waker, _) = self.lock().close_waiters.release(k);
            drop(waker);
        }
    }

    /// Polls a send (see `SendState`). `Err(value)` hands the value back: the channel closed
    /// before a receiver took it.
    #[inline]
    pub(super) fn poll_send(
        &self,
        send: &mut SendState<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), T>> {
        if let SendState::Idle(_) = send
            && self.cap != 0
        {
            // Fast path, inlined into the caller: room in the buffer and nobody parked (the
            // common case of a buffered channel; never the case for a rendezvous, which goes
            // straight to the rest, out of line).
            let mut state = self.lock();
            if !state.closed && state.buf.len() < state.cap && state.recv_waiters.is_empty() {
                if let SendState::Idle(value) = std::mem::replace(send, SendState::Done) {
                    state.buf.push_back(value);
                }
                return Poll::Ready(Ok(()));
            }
            return self.poll_send_slow(Some(state), send, cx);
        }
        if let SendState::Parked(key, count) = *send
            && self.was_served(key, count)
        {
            // Woken by the receiver that took the value: no lock needed (invariant 3).
            *send = SendState::Done;
            return Poll::Ready(Ok(()));
        }
        self.poll_send_slow(None, send, cx)
    }

    /// The `served` count of a sender parking at `key` (under the lock).
    #[inline]
    fn served_count(&self, key: usize) -> u64 {
        self.served
            .get(key)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// Whether the sender parked at `key` with `served_count` has been served since.
    #[inline]
    fn was_served(&self, key: usize, served_count: u64) -> bool {
        self.served
            .get(key)
            .is_some_and(|count| count.load(Ordering::Acquire) != served_count)
    }

    /// The rest of [`Shared::poll_send`]; `locked` is the lock when the fast path took it.
    #[inline(never)]
    fn poll_send_slow(
        &self,
        locked: Option<MutexGuard<'_, State<T>>>,
        send: &mut SendState<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), T>> {
        match std::mem::replace(send, SendState::Done) {
            SendState::Idle(value) => {
                let mut state = locked.unwrap_or_else(|| self.lock());
                if state.closed {
                    return Poll::Ready(Err(value));
                }
                let waker = if state.buf.len() < state.cap {
                    // Fast path: room in the buffer, so no sender is parked (invariant 2).
                    state.buf.push_back(value);
                    state.notify_receiver()
                } else if !state.recv_waiters.is_empty() {
                    // A receiver is parked with nothing to take: hand the value over and
                    // complete now (one wake-up per value, invariant 1).
                    state.hand_off(value)
                } else {
                    // No receiver is parked (invariant 6), so there is nobody to notify.
                    let key = state.send_waiters.push_back(SendWaiter {
                        value: Some(value),
                        waker: Some(cx.waker().clone()),
                    });
                    *send = SendState::Parked(key, self.served_count(key));
                    return Poll::Pending;
                };
                drop(state);
                wake(waker);
                Poll::Ready(Ok(()))
            }
            SendState::Parked(key, count) => {
                let mut state = locked.unwrap_or_else(|| self.lock());
                if self.was_served(key, count) {
                    // Served between the look without the lock and now; the key is not ours.
                    return Poll::Ready(Ok(()));
                }
                let closed = state.closed;
                let waiter = state.send_waiters.get_mut(key);
                match &waiter.value {
                    None => {
                        let (waiter, _) = state.send_waiters.release(key);
                        drop(state);
                        drop(waiter);
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
                        *send = SendState::Parked(key, count);
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
            SendState::Parked(key, count) => {
                if self.was_served(key, count) {
                    return None;
                }
                let mut state = self.lock();
                if self.was_served(key, count) {
                    return None;
                }
                let (waiter, _) = state.send_waiters.release(key);
                drop(state);
                waiter.value
            }
            SendState::Done => None,
        }
    }

    /// Takes one value without parking: `Err(closed)` when there is none. `own` is the
    /// calling `Receiver`'s stream slot, which may hold a value handed to it.
    pub(super) fn try_recv(&self, own: Option<usize>) -> Result<T, bool> {
        let mut state = self.lock();
        if let Some(value) = state.take_slot(own) {
            return Ok(value);
        }
        match state.take_value(&self.served) {
            Some((value, waker)) => {
                drop(state);
                wake(waker);
                Ok(value)
            }
            None => Err(state.closed),
        }
    }

    /// Polls a receive. `key` is the caller's parking slot: `None` until it first parks, and
    /// reset to `None` once it is released. `own` is the stream slot of the `Receiver` the
    /// receive was made from (if it has one): a value handed to it while the stream was polled,
    /// and left there when that poll was abandoned, is this receiver's to take first.
    #[inline]
    pub(super) fn poll_recv(
        &self,
        key: &mut Option<usize>,
        own: Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        if key.is_none() && own.is_none() && self.cap != 0 {
            // Fast path, inlined into the caller: a value buffered and the buffer not full, so
            // no parked sender to move in (invariant 2) and no slot of ours to look at (never
            // the case for a rendezvous, which goes straight to the rest).
            let mut state = self.lock();
            if state.buf.len() < state.cap
                && let Some(value) = state.buf.pop_front()
            {
                return Poll::Ready(Some(value));
            }
            return self.poll_recv_slow(state, key, own, cx);
        }
        self.poll_recv_slow(self.lock(), key, own, cx)
    }

    /// The rest of [`Shared::poll_recv`], under the lock.
    #[inline(never)]
    fn poll_recv_slow(
        &self,
        mut state: MutexGuard<'_, State<T>>,
        key: &mut Option<usize>,
        own: Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        let handed = match state.take_slot(*key) {
            Some(value) => Some(value),
            None => state.take_slot(own),
        };
        let (value, waker) = match handed {
            // A sender handed this receive a value (invariant 4).
            Some(value) => (value, None),
            None => match state.take_value(&self.served) {
                Some(taken) => taken,
                None => return self.park_receiver(state, key, cx),
            },
        };
        let released = key.take().map(|k| state.recv_waiters.release(k).0);
        drop(state);
        drop(released);
        wake(waker);
        Poll::Ready(Some(value))
    }

    /// Polls a batch receive: waits for at least one value, then appends up to `max`.
    pub(super) fn poll_recv_many(
        &self,
        key: &mut Option<usize>,
        own: Option<usize>,
        out: &mut Vec<T>,
        max: usize,
        cx: &mut Context<'_>,
    ) -> Poll<usize> {
        let mut state = self.lock();
        let mut wakers = WakeList::new();
        let mut taken = 0;
        for slot in [*key, own] {
            if taken < max
                && let Some(value) = state.take_slot(slot)
            {
                out.push(value);
                taken += 1;
            }
        }
        while taken < max && !wakers.is_full() {
            match state.take_value(&self.served) {
                Some((value, waker)) => {
                    out.push(value);
                    wakers.push(waker);
                    taken += 1;
                }
                None => break,
            }
        }
        if taken > 0 {
            let released = key.take().map(|k| state.recv_waiters.release(k).0);
            drop(state);
            drop(released);
            wakers.wake_all();
            return Poll::Ready(taken);
        }
        self.park_receiver(state, key, cx).map(|_| 0)
    }

    /// Parks a receiver that found no value (its slot is empty): `Ready(None)` if closed
    /// (invariant 5).
    fn park_receiver(
        &self,
        mut state: MutexGuard<'_, State<T>>,
        key: &mut Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        if state.closed {
            let released = key.take().map(|k| state.recv_waiters.release(k).0);
            drop(state);
            drop(released);
            return Poll::Ready(None);
        }
        match *key {
            Some(k) => {
                update_waker(&mut state.recv_waiters.get_mut(k).waker, cx);
                if !state.recv_waiters.is_linked(k) {
                    // Woken, but another receiver got there first: queue again (invariant 6).
                    state.recv_waiters.link_back(k);
                }
            }
            None => {
                *key = Some(state.recv_waiters.push_back(RecvWaiter {
                    value: None,
                    waker: Some(cx.waker().clone()),
                }));
            }
        }
        Poll::Pending
    }

    /// Releases a receiver's parking slot when its future (or stream) is dropped: a value
    /// handed to it goes to the next parked receiver or to `buf` (invariant 1), and a
    /// wake-up it did not use goes to the next receiver (invariant 6).
    #[inline]
    pub(super) fn release_receiver(&self, key: &mut Option<usize>) {
        // Every receive future calls this on drop; most never parked.
        if let Some(k) = key.take() {
            self.release_receiver_slot(k);
        }
    }

    fn release_receiver_slot(&self, k: usize) {
        let mut state = self.lock();
        let (mut waiter, linked) = state.recv_waiters.release(k);
        let waker = if let Some(value) = waiter.value.take() {
            state.pending -= 1;
            state.hand_off(value)
        } else if !linked && state.has_value() {
            state.notify_receiver()
        } else {
            None
        };
        drop(state);
        drop(waiter);
        wake(waker);
    }
}
