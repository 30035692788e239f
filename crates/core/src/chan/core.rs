//! The private core shared by every [`Sender`](super::Sender) and [`Receiver`](super::Receiver)
//! of one channel: a buffer, a queue of parked senders *with their values*, and a queue of
//! parked receivers, under one mutex, plus one cell per parked operation (`super::cells`)
//! through which a woken side learns its outcome *without* taking the lock again.
//!
//! Every flavour is the same machine with a different capacity: `0` (rendezvous), `n`
//! (bounded) or `usize::MAX` (unbounded). It is Go's `hchan` (buffer + `sendq` + `recvq`),
//! including Go's direct hand-off: a sender that finds a receiver parked writes its value into
//! that receiver's cell, wakes it and completes at once (one wake-up per value, like Go and
//! kanal); a receiver that finds a sender parked takes its value and marks the sender's cell
//! served. The woken side reads its cell with one atomic operation, not the lock: per
//! rendezvous value that is one lock round trip fewer than a design where the woken side
//! re-takes the lock (measured in `BENCHMARKS.md`, `## Channels`).
//!
//! What makes this cancel safe, where flume's and kanal's push loses the value: the cell lives
//! in the channel (at a stable address), not in the receive future, and a value in it is taken
//! only by whoever wins one compare-and-swap on the cell's state. A receive future dropped
//! before it took its value claims it and passes it on, under the lock, to the next parked
//! receiver or, with none parked, to the back of `buf` (for a rendezvous, whose `buf` is
//! otherwise empty: the next receive takes it before any waiting sender's value). A receive
//! that would report "closed and drained" first claims every value still sitting in a cell. So
//! a handed value is received exactly once.
//!
//! # Invariants
//!
//! 1. Values move under the lock, except that the winner of a cell's claim takes the value
//!    out of that cell without it. Under the lock: a sender pushes into `buf` (only if
//!    `buf.len() < cap` and no receiver is linked); a sender hands its value to a *linked*
//!    receiver's cell, unlinking it; a sender parks its value in its own `send_waiters` entry;
//!    a receiver pops from `buf`, then from a parked sender; a claimed value whose receive was
//!    dropped moves to the next linked receiver's cell or to the back of `buf` (past `cap` if
//!    need be: it was already sent). A receive future returns `Ready` with a value in the
//!    same poll that claims it.
//! 2. A linked receiver implies an empty `buf` and no linked sender: a receiver links only
//!    when it found neither, and while one is linked a sender hands its value over instead of
//!    buffering or parking. `buf.len() < cap` implies no sender is linked: whenever a receiver
//!    pops from a full `buf`, it moves the oldest parked sender's value into the freed slot
//!    (Go's semantics, and FIFO fairness among blocked senders).
//! 3. A parked sender's entry holds `Some(value)` until a receiver takes it; the receiver
//!    then releases the entry's key and marks the sender's cell served (`Seen::Gone` from then
//!    on, whatever the key is reused for), so the sender's future completes with `Ok` without
//!    the lock. A sender's cell still `Waiting` means its entry (and value) are its own.
//! 4. A receiver's key is released by its owner while its cell is `Waiting` (dropped, or done
//!    after a close), or, once a value was delivered into it, listed in `delivered` and
//!    released under the lock when its cell is `FREE` (the claimer is done with it).
//! 5. Once `closed` is set it is never cleared; on closing, every linked sender is unlinked
//!    (keeping its value, which its future hands back) and every linked receiver is woken.
//!    After that nothing enters `send_waiters` or a receiver cell, and nothing but values
//!    passed on by dropped receives enters `buf`; receivers drain `buf`, then claim what is
//!    still in delivered cells (so "closed and drained" is only reported once no value is
//!    left anywhere), then see the end.
//! 6. No lost wake-ups: a parked receiver is only unlinked by a sender that hands it a value
//!    (and wakes it) or by the close (which wakes it); a parked sender only by a receiver that
//!    takes its value (and wakes it) or by the close. A sender only parks when no receiver is
//!    linked, and a receiver only parks when no value is available.
//! 7. Wakers are called and values are dropped only after the lock is released (a waker or a
//!    user `Drop` may run arbitrary code, which must not run under our lock).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

pub(super) use super::cells::Ticket;
use super::cells::{Cells, Seen};
use super::waitlist::WaitList;
use crate::loom::{AtomicUsize, Mutex, MutexGuard};

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
    /// The receivers' cells (a value handed over) and the senders' (served or not).
    recv_cells: Cells<T>,
    send_cells: Cells<()>,
}

#[derive(Debug)]
#[repr(C)]
struct State<T> {
    /// The buffered values; also the values claimed from a receive that was dropped before
    /// taking them while no other receiver was parked (already sent; they may take `buf` past
    /// `cap`).
    buf: VecDeque<T>,
    closed: bool,
    cap: usize,
    recv_waiters: WaitList<RecvWaiter>,
    send_waiters: WaitList<SendWaiter<T>>,
    /// Receivers a value was delivered to, whose keys are not yet released (invariant 4).
    delivered: Vec<Ticket>,
}

#[derive(Debug)]
struct RecvWaiter {
    generation: u64,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct SendWaiter<T> {
    generation: u64,
    /// `Some` until a receiver takes it (invariant 3).
    value: Option<T>,
    waker: Option<Waker>,
}

/// Where a send future is: not yet tried, parked with a ticket, or finished.
#[derive(Debug)]
pub(super) enum SendState<T> {
    Idle(T),
    Parked(Ticket),
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
    /// Hands `value` to the first parked receiver and returns its waker; without one, the
    /// value goes to the back of `buf` (invariants 1 and 2).
    #[inline]
    fn hand_off(&mut self, cells: &Cells<T>, value: T) -> Option<Waker> {
        match self.recv_waiters.pop_front() {
            Some(key) => {
                let waiter = self.recv_waiters.get_mut(key);
                let ticket = Ticket {
                    key,
                    generation: waiter.generation,
                };
                let waker = waiter.waker.take();
                cells.deliver(ticket, value);
                self.delivered.push(ticket);
                waker
            }
            None => {
                self.buf.push_back(value);
                None
            }
        }
    }

    /// Takes the oldest parked sender's value: releases its entry and marks its cell served
    /// (invariant 3). Returns the value and the sender's waker.
    #[inline]
    fn take_parked_sender(&mut self, cells: &Cells<()>) -> Option<(T, Option<Waker>)> {
        let key = self.send_waiters.pop_front()?;
        let (waiter, _) = self.send_waiters.release(key);
        cells.mark_taken(Ticket {
            key,
            generation: waiter.generation,
        });
        let value = waiter
            .value
            .expect("a linked sender still holds its value (invariant 3)");
        Some((value, waiter.waker))
    }

    /// Takes the next value, in FIFO order; returns the parked sender to wake, if any.
    #[inline]
    fn take_value(&mut self, shared: &Shared<T>) -> Option<(T, Option<Waker>)> {
        if let Some(value) = self.buf.pop_front() {
            // Invariant 2: if `buf` was full, refill the freed slot from the oldest parked
            // sender (only then can one be parked; for a rendezvous never: `cap` is 0).
            let mut waker = None;
            if self.buf.len() + 1 == self.cap
                && let Some((parked, w)) = self.take_parked_sender(&shared.send_cells)
            {
                self.buf.push_back(parked);
                waker = w;
            }
            return Some((value, waker));
        }
        if let Some(taken) = self.take_parked_sender(&shared.send_cells) {
            return Some(taken);
        }
        if self.closed {
            // Invariant 5: a value delivered to a receive whose owner has not claimed it yet.
            // After the close nothing else can arrive, so claim it rather than report the end
            // while a value is left (its owner will find its cell claimed). Rare: a scan is
            // fine.
            for ticket in &self.delivered {
                if let Some(value) = shared.recv_cells.claim(*ticket) {
                    return Some((value, None));
                }
            }
        }
        None
    }

    /// Releases the keys of delivered receivers whose cells their claimers are done with
    /// (invariant 4), so that parking reuses keys instead of growing the list. Looks at the
    /// most recent ones (claimed soonest, usually), and scans the whole list only when it has
    /// grown.
    #[inline]
    fn reclaim(&mut self, cells: &Cells<T>) {
        while let Some(ticket) = self.delivered.last()
            && cells.is_free(ticket.key)
        {
            self.recv_waiters.release(ticket.key);
            self.delivered.pop();
        }
        if self.delivered.len() >= 16 {
            let waiters = &mut self.recv_waiters;
            self.delivered.retain(|ticket| {
                let free = cells.is_free(ticket.key);
                if free {
                    waiters.release(ticket.key);
                }
                !free
            });
        }
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
                cap,
                closed: false,
                send_waiters: WaitList::new(),
                recv_waiters: WaitList::new(),
                delivered: Vec::new(),
            }),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            cap,
            recv_cells: Cells::new(),
            send_cells: Cells::new(),
        }
    }

    #[inline]
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
        let waker = if !state.recv_waiters.is_empty() {
            // A receiver is parked (Go's "a receiver is ready"): hand the value to it.
            state.hand_off(&self.recv_cells, value)
        } else if state.buf.len() < state.cap {
            state.buf.push_back(value);
            None
        } else {
            return Err((value, false));
        };
        drop(state);
        wake(waker);
        Ok(())
    }

    /// Polls a send (see `SendState`). `Err(value)` hands the value back: the channel closed
    /// before a receiver took it.
    #[inline]
    pub(super) fn poll_send(
        &self,
        send: &mut SendState<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), T>> {
        match send {
            SendState::Idle(_) => {
                // Fast path, inlined into the caller: room in the buffer and nobody parked
                // (the common case of a bounded channel). The rest is out of line.
                let mut state = self.lock();
                if !state.closed && state.buf.len() < state.cap && state.recv_waiters.is_empty() {
                    if let SendState::Idle(value) = std::mem::replace(send, SendState::Done) {
                        state.buf.push_back(value);
                    }
                    return Poll::Ready(Ok(()));
                }
                self.poll_send_slow(Some(state), send, cx)
            }
            SendState::Parked(ticket) => {
                // Woken: a receiver that took the value marked our cell, no lock needed.
                if self.send_cells.seen(*ticket) == Seen::Gone {
                    *send = SendState::Done;
                    return Poll::Ready(Ok(()));
                }
                self.poll_send_slow(None, send, cx)
            }
            SendState::Done => panic!("a send future was polled after it completed"),
        }
    }

    /// The rest of [`Shared::poll_send`]; `locked` is the lock when the fast path took it.
    #[inline(never)]
    fn poll_send_slow(
        &self,
        locked: Option<MutexGuard<'_, State<T>>>,
        send: &mut SendState<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), T>> {
        let mut state = locked.unwrap_or_else(|| self.lock());
        match std::mem::replace(send, SendState::Done) {
            SendState::Idle(value) => {
                if state.closed {
                    return Poll::Ready(Err(value));
                }
                let waker = if !state.recv_waiters.is_empty() {
                    // A receiver is parked with nothing to take: hand the value over and
                    // complete now (one wake-up per value, invariant 1).
                    state.hand_off(&self.recv_cells, value)
                } else if state.buf.len() < state.cap {
                    state.buf.push_back(value);
                    None
                } else {
                    // No receiver is parked (invariant 6), so there is nobody to notify.
                    let key = state.send_waiters.push_back(SendWaiter {
                        generation: 0,
                        value: Some(value),
                        waker: Some(cx.waker().clone()),
                    });
                    let ticket = self.send_cells.issue(key);
                    state.send_waiters.get_mut(key).generation = ticket.generation;
                    *send = SendState::Parked(ticket);
                    return Poll::Pending;
                };
                drop(state);
                wake(waker);
                Poll::Ready(Ok(()))
            }
            SendState::Parked(ticket) => {
                if self.send_cells.seen(ticket) == Seen::Gone {
                    // Taken between the check without the lock and this one.
                    return Poll::Ready(Ok(()));
                }
                // Still ours (invariant 3): parked, or unlinked by the close.
                if state.closed {
                    let (waiter, _) = state.send_waiters.release(ticket.key);
                    drop(state);
                    return match waiter.value {
                        Some(value) => Poll::Ready(Err(value)),
                        None => Poll::Ready(Ok(())),
                    };
                }
                update_waker(&mut state.send_waiters.get_mut(ticket.key).waker, cx);
                *send = SendState::Parked(ticket);
                Poll::Pending
            }
            SendState::Done => panic!("a send future was polled after it completed"),
        }
    }

    /// Withdraws a send: returns the value unless a receiver already took it (invariant 3).
    pub(super) fn cancel_send(&self, send: &mut SendState<T>) -> Option<T> {
        match std::mem::replace(send, SendState::Done) {
            SendState::Idle(value) => Some(value),
            SendState::Parked(ticket) => {
                if self.send_cells.seen(ticket) == Seen::Gone {
                    return None;
                }
                let mut state = self.lock();
                if self.send_cells.seen(ticket) == Seen::Gone {
                    return None;
                }
                let (waiter, _) = state.send_waiters.release(ticket.key);
                waiter.value
            }
            SendState::Done => None,
        }
    }

    /// Takes one value without parking: `Err(closed)` when there is none. `own` is the
    /// calling `Receiver`'s stream ticket, whose cell may hold a value handed to it.
    pub(super) fn try_recv(&self, own: Option<Ticket>) -> Result<T, bool> {
        if let Some(value) = own.and_then(|t| self.recv_cells.claim(t)) {
            return Ok(value);
        }
        let mut state = self.lock();
        match state.take_value(self) {
            Some((value, waker)) => {
                drop(state);
                wake(waker);
                Ok(value)
            }
            None => Err(state.closed),
        }
    }

    /// Polls a receive. `ticket` is the caller's parking ticket: `None` until it first parks,
    /// and reset to `None` once it is done with it. `own` is the stream ticket of the
    /// `Receiver` the receive was made from (if it has one): a value handed to it while the
    /// stream was polled, and left there when that poll was abandoned, is this receiver's to
    /// take first.
    #[inline]
    pub(super) fn poll_recv(
        &self,
        ticket: &mut Option<Ticket>,
        own: Option<Ticket>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        match *ticket {
            None if own.is_none() => {
                // Fast path, inlined into the caller: a value buffered and the buffer not
                // full, so no parked sender to move in (invariant 2).
                let mut state = self.lock();
                if state.buf.len() < state.cap
                    && let Some(value) = state.buf.pop_front()
                {
                    return Poll::Ready(Some(value));
                }
                self.poll_recv_slow(state, ticket, own, cx)
            }
            Some(t) => {
                // Woken: a sender delivered into our cell; claim it without the lock.
                if let Some(value) = self.recv_cells.claim(t) {
                    *ticket = None;
                    return Poll::Ready(Some(value));
                }
                self.poll_recv_slow(self.lock(), ticket, own, cx)
            }
            None => self.poll_recv_slow(self.lock(), ticket, own, cx),
        }
    }

    /// Settles the caller's ticket under the lock: the value delivered to it, if any (the
    /// ticket is then done), or `None` with the ticket kept if it is still parked (or unlinked
    /// by the close), or reset if it is gone (its value was claimed by a receive before the
    /// end).
    fn settle(&self, ticket: &mut Option<Ticket>) -> Option<T> {
        let t = (*ticket)?;
        match self.recv_cells.seen(t) {
            Seen::Waiting => None,
            Seen::Done | Seen::Gone => {
                *ticket = None;
                self.recv_cells.claim(t)
            }
        }
    }

    /// The rest of [`Shared::poll_recv`], under the lock.
    #[inline(never)]
    fn poll_recv_slow(
        &self,
        mut state: MutexGuard<'_, State<T>>,
        ticket: &mut Option<Ticket>,
        own: Option<Ticket>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        let handed = match self.settle(ticket) {
            Some(value) => Some(value),
            None => own.and_then(|t| self.recv_cells.claim(t)),
        };
        let (value, waker) = match handed {
            Some(value) => (value, None),
            None => match state.take_value(self) {
                Some(taken) => taken,
                None => return self.park_receiver(state, ticket, cx),
            },
        };
        let released = ticket.take().map(|t| state.recv_waiters.release(t.key).0);
        drop(state);
        drop(released);
        wake(waker);
        Poll::Ready(Some(value))
    }

    /// Polls a batch receive: waits for at least one value, then appends up to `max`.
    pub(super) fn poll_recv_many(
        &self,
        ticket: &mut Option<Ticket>,
        own: Option<Ticket>,
        out: &mut Vec<T>,
        max: usize,
        cx: &mut Context<'_>,
    ) -> Poll<usize> {
        let mut state = self.lock();
        let mut wakers = WakeList::new();
        let mut taken = 0;
        if let Some(value) = self.settle(ticket) {
            out.push(value);
            taken += 1;
        }
        if taken < max
            && let Some(value) = own.and_then(|t| self.recv_cells.claim(t))
        {
            out.push(value);
            taken += 1;
        }
        while taken < max && !wakers.is_full() {
            match state.take_value(self) {
                Some((value, waker)) => {
                    out.push(value);
                    wakers.push(waker);
                    taken += 1;
                }
                None => break,
            }
        }
        if taken > 0 {
            let released = ticket.take().map(|t| state.recv_waiters.release(t.key).0);
            drop(state);
            drop(released);
            wakers.wake_all();
            return Poll::Ready(taken);
        }
        self.park_receiver(state, ticket, cx).map(|_| 0)
    }

    /// Parks a receiver that found no value (its ticket, if any, is still `Waiting`):
    /// `Ready(None)` if closed (invariant 5).
    fn park_receiver(
        &self,
        mut state: MutexGuard<'_, State<T>>,
        ticket: &mut Option<Ticket>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        if state.closed {
            let released = ticket.take().map(|t| state.recv_waiters.release(t.key).0);
            drop(state);
            drop(released);
            return Poll::Ready(None);
        }
        match *ticket {
            Some(t) => {
                // Still linked: only a hand-off or the close unlinks a receiver (invariant 6).
                update_waker(&mut state.recv_waiters.get_mut(t.key).waker, cx);
            }
            None => {
                if !state.delivered.is_empty() {
                    state.reclaim(&self.recv_cells);
                }
                let key = state.recv_waiters.push_back(RecvWaiter {
                    generation: 0,
                    waker: Some(cx.waker().clone()),
                });
                let t = self.recv_cells.issue(key);
                state.recv_waiters.get_mut(key).generation = t.generation;
                *ticket = Some(t);
            }
        }
        Poll::Pending
    }

    /// Releases a receiver's ticket when its future (or stream) is dropped: a value delivered
    /// to it goes to the next parked receiver or to `buf` (invariant 1).
    #[inline]
    pub(super) fn release_receiver(&self, ticket: &mut Option<Ticket>) {
        // Every receive future calls this on drop; most never parked.
        if let Some(t) = ticket.take() {
            self.release_receiver_ticket(t);
        }
    }

    fn release_receiver_ticket(&self, t: Ticket) {
        let claimed = self.recv_cells.claim(t);
        let mut state = self.lock();
        let (waker, released) = match claimed {
            Some(value) => (state.hand_off(&self.recv_cells, value), None),
            None => match self.recv_cells.seen(t) {
                Seen::Waiting => (None, Some(state.recv_waiters.release(t.key).0)),
                // Delivered since the claim above (under the lock now, so it stays).
                Seen::Done => match self.recv_cells.claim(t) {
                    Some(value) => (state.hand_off(&self.recv_cells, value), None),
                    None => (None, None),
                },
                Seen::Gone => (None, None),
            },
        };
        drop(state);
        drop(released);
        wake(waker);
    }
}
