//! The private core shared by every [`Sender`](super::Sender) and [`Receiver`](super::Receiver)
//! of one channel: a buffer, a queue of parked senders *with their values*, and a queue of
//! parked receivers *with a cell for a value handed to them*, all under one mutex.
//!
//! Every flavour is the same machine with a different capacity: `0` (rendezvous), `n`
//! (bounded) or `usize::MAX` (unbounded). It is Go's `hchan` (buffer + `sendq` + `recvq`),
//! including Go's direct hand-off: a sender that finds a receiver parked writes its value into
//! that receiver's cell, wakes it and completes at once (one wake-up per value, like Go and
//! kanal). What makes this cancel safe, where flume's and kanal's push loses the value: the
//! cell belongs to the channel (`cell.rs`), not to the receiver future's memory. A receive
//! future dropped before it took the value from its cell passes the value on, under the
//! channel's lock, to the next parked receiver or, with none parked, to the back of `buf`
//! (for a rendezvous, whose `buf` is otherwise empty: the next receive takes it before any
//! waiting sender's value). So a handed value is owned by the channel until exactly one
//! receive returns it.
//!
//! Why cells: a woken parked future learns its outcome (value handed, value taken, closed)
//! from its own cell (an atomic load, then for a receive a short lock on a cache line only it
//! and the sender touch) instead of taking the channel's lock a third time per value. On two
//! cores `perf` showed the channel lock's cache line dominating the rendezvous benchmarks.
//!
//! # Invariants
//!
//! 1. Values only move under the channel's lock, and only in these ways: a sender hands its
//!    value to the first *linked* receiver's cell, unlinking it; with no receiver linked, it
//!    pushes into `buf` (only if `buf.len() < cap`) or parks the value in its own wait-list
//!    entry; a receiver pops from `buf`, then from a parked sender; a released receiver
//!    cell's value moves to the next linked receiver's cell or to the back of `buf` (past
//!    `cap` if need be: it was already sent). The one move without the channel's lock: a
//!    receiver takes the value in its own cell (or in its `Receiver`'s stream cell, left there
//!    by an abandoned stream poll), under the cell's lock. A receive future returns `Ready`
//!    with a value in the same poll that takes it: there is no state in which a value belongs
//!    to a receiver future that might be dropped.
//! 2. A receiver is linked only while `buf` is empty and no sender is linked: it links itself
//!    only when it found no value, and from then on every value goes to a linked receiver
//!    first (Go's order). Also, `buf.len() < cap` implies no sender is linked: whenever a
//!    receiver pops from a full `buf` (exactly `cap` values), it moves the oldest parked
//!    sender's value into the freed slot (Go's semantics, and FIFO fairness among blocked
//!    senders).
//! 3. A key's cell state (`cell.rs`) is `WAITING` exactly while the key is linked; only the
//!    channel, under its lock, moves it on (`DONE`, or `CLOSED` for a sender), and only the
//!    owner sets it back to `IDLE`, once it will not touch the key again. A key is reused only
//!    when its cell is `IDLE` (`State::reclaim`). A parked sender's entry holds its value
//!    until a receiver takes it (`DONE`) or the owner takes it back (withdrawn, or `CLOSED`).
//! 4. Locks nest channel -> cell, never the other way: the owner reads its cell without the
//!    channel's lock, and releases the cell's lock before it takes the channel's.
//! 5. Once `closed` is set it is never cleared; on closing, every linked sender and receiver
//!    is unlinked and woken (senders keep their values, which their futures hand back). After
//!    that nothing enters a cell or `send_waiters`, and nothing but values passed on by
//!    dropped receives enters `buf`; receivers drain `buf`, then take over what is still in
//!    the cells of receivers that have not polled yet (so "closed and drained" is only
//!    reported once no value is left anywhere), then see the end.
//! 6. No lost wake-ups: a value that arrives while a receiver is linked is handed to one (and
//!    wakes it); one that arrives while none is linked stays where the next receive looks
//!    (`buf` or a parked sender). A woken receiver without a value that is dropped passes the
//!    wake-up on if a value is available. A sender only parks when no receiver is linked, and
//!    a receiver only parks when no value is available, so they never wait for each other.
//! 7. Wakers are called and values are dropped only after the locks are released (a waker or
//!    a user `Drop` may run arbitrary code, which must not run under our locks).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use super::cell::{CLOSED, Cells, DONE, IDLE, WAITING};
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
    /// The cells of `recv_waiters` and `send_waiters`, by key (outside the lock).
    recv_cells: Cells<T>,
    send_cells: Cells<T>,
}

#[repr(C)]
struct State<T> {
    /// The buffered values; also the values handed to a receive that was dropped before taking
    /// them while no other receiver was parked (already sent; they may take `buf` past `cap`).
    buf: VecDeque<T>,
    closed: bool,
    cap: usize,
    recv_waiters: WaitList<RecvWaiter>,
    send_waiters: WaitList<SendWaiter<T>>,
    /// Keys unlinked by the other side whose owner may not have read the outcome yet: freed
    /// once their cell is `IDLE` (invariant 3).
    recv_popped: Vec<usize>,
    send_popped: Vec<usize>,
}

struct RecvWaiter {
    waker: Option<Waker>,
}

struct SendWaiter<T> {
    /// `Some` until a receiver takes it or the owner takes it back (invariant 3).
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

/// Frees the popped keys whose owner has let go of them (invariant 3).
fn reclaim<E, T>(list: &mut WaitList<E>, popped: &mut Vec<usize>, cells: &Cells<T>) {
    let mut i = 0;
    while i < popped.len() {
        let key = popped[i];
        if cells.get(key).state() == IDLE {
            popped.swap_remove(i);
            drop(list.release(key));
        } else {
            i += 1;
        }
    }
}

impl<T> State<T> {
    /// Unlinks the first parked receiver, handing it `value`; returns its waker, or the value
    /// back if no receiver is parked.
    fn pop_receiver(
        &mut self,
        cells: &Cells<T>,
        value: Option<T>,
    ) -> Result<Option<Waker>, Option<T>> {
        let Some(key) = self.recv_waiters.pop_front() else {
            return Err(value);
        };
        self.recv_popped.push(key);
        let cell = cells.get(key);
        if let Some(value) = value {
            cell.hand(value);
        }
        cell.set(DONE);
        Ok(self.recv_waiters.get_mut(key).waker.take())
    }

    /// Wakes the first parked receiver without a value (invariant 6).
    fn notify_receiver(&mut self, cells: &Cells<T>) -> Option<Waker> {
        self.pop_receiver(cells, None).ok().flatten()
    }

    /// Hands `value` to the first parked receiver and returns its waker; without one, the
    /// value waits in `buf` for the next receive (invariant 1).
    fn hand_off(&mut self, cells: &Cells<T>, value: T) -> Option<Waker> {
        match self.pop_receiver(cells, Some(value)) {
            Ok(waker) => waker,
            Err(value) => {
                self.buf.extend(value);
                None
            }
        }
    }

    fn has_value(&self) -> bool {
        !self.buf.is_empty() || !self.send_waiters.is_empty()
    }

    /// Takes the oldest parked sender's value, unlinking it; returns it with its waker.
    fn pop_sender(&mut self, cells: &Cells<T>) -> Option<(T, Option<Waker>)> {
        let key = self.send_waiters.pop_front()?;
        self.send_popped.push(key);
        let waiter = self.send_waiters.get_mut(key);
        let value = waiter
            .value
            .take()
            .expect("a linked sender still holds its value (invariant 3)");
        let waker = waiter.waker.take();
        cells.get(key).set(DONE);
        Some((value, waker))
    }

    /// Takes the next value, in FIFO order; returns the parked sender to wake, if any.
    fn take_value(
        &mut self,
        recv_cells: &Cells<T>,
        send_cells: &Cells<T>,
    ) -> Option<(T, Option<Waker>)> {
        if let Some(value) = self.buf.pop_front() {
            // Invariant 2: if `buf` was full, refill the freed slot from the oldest parked
            // sender (only then can one be parked; for a rendezvous never: `cap` is 0).
            let waker = if self.buf.len() + 1 == self.cap {
                self.pop_sender(send_cells).and_then(|(parked, waker)| {
                    self.buf.push_back(parked);
                    waker
                })
            } else {
                None
            };
            return Some((value, waker));
        }
        if let Some(taken) = self.pop_sender(send_cells) {
            return Some(taken);
        }
        if self.closed {
            // Invariant 5: a value handed to a receive whose owner has not polled yet. After
            // the close nothing else can arrive, so take it rather than report the end while a
            // value is left (its owner will find its cell empty). Rare: a scan is fine.
            let value = self
                .recv_popped
                .iter()
                .find_map(|&key| recv_cells.get(key).take())?;
            return Some((value, None));
        }
        None
    }

    /// Sets `closed` and unlinks every waiter (invariant 5); returns whom to wake.
    fn close(&mut self, recv_cells: &Cells<T>, send_cells: &Cells<T>) -> Vec<Waker> {
        if self.closed {
            return Vec::new();
        }
        self.closed = true;
        let mut wakers = Vec::new();
        while let Some(key) = self.send_waiters.pop_front() {
            self.send_popped.push(key);
            wakers.extend(self.send_waiters.get_mut(key).waker.take());
            send_cells.get(key).set(CLOSED);
        }
        while let Some(key) = self.recv_waiters.pop_front() {
            self.recv_popped.push(key);
            wakers.extend(self.recv_waiters.get_mut(key).waker.take());
            recv_cells.get(key).set(DONE);
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
                recv_popped: Vec::new(),
                send_popped: Vec::new(),
            }),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            cap,
            recv_cells: Cells::new(),
            send_cells: Cells::new(),
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
            state.close(&self.recv_cells, &self.send_cells)
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
                let wakers = state.close(&self.recv_cells, &self.send_cells);
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
        let waker = match state.pop_receiver(&self.recv_cells, Some(value)) {
            // A receiver is parked (Go's "a receiver is ready"): it has the value.
            Ok(waker) => waker,
            Err(value) => {
                let value = value.expect("the value comes back when no receiver is parked");
                if state.buf.len() < state.cap {
                    state.buf.push_back(value);
                    None
                } else {
                    return Err((value, false));
                }
            }
        };
        drop(state);
        wake(waker);
        Ok(())
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
                let waker = match state.pop_receiver(&self.recv_cells, Some(value)) {
                    // A receiver is parked (so `buf` is empty, invariant 2): hand the value
                    // over and complete now (one wake-up per value, invariant 1).
                    Ok(waker) => waker,
                    Err(value) => {
                        let value = value.expect("the value comes back when no receiver is parked");
                        if state.buf.len() < state.cap {
                            state.buf.push_back(value);
                            None
                        } else {
                            // No receiver is parked (invariant 6), so nobody to notify.
                            let state = &mut *state;
                            if !state.send_popped.is_empty() {
                                reclaim(
                                    &mut state.send_waiters,
                                    &mut state.send_popped,
                                    &self.send_cells,
                                );
                            }
                            let key = state.send_waiters.push_back(SendWaiter {
                                value: Some(value),
                                waker: Some(cx.waker().clone()),
                            });
                            self.send_cells.ensure(key).set(WAITING);
                            *send = SendState::Parked(key);
                            return Poll::Pending;
                        }
                    }
                };
                drop(state);
                wake(waker);
                Poll::Ready(Ok(()))
            }
            SendState::Parked(key) => {
                let cell = self.send_cells.get(key);
                if cell.state() == DONE {
                    // Taken by a receiver: sent, learnt without the channel's lock.
                    cell.set(IDLE);
                    return Poll::Ready(Ok(()));
                }
                let mut state = self.lock();
                match cell.state() {
                    WAITING => {
                        update_waker(&mut state.send_waiters.get_mut(key).waker, cx);
                        *send = SendState::Parked(key);
                        Poll::Pending
                    }
                    DONE => {
                        drop(state);
                        cell.set(IDLE);
                        Poll::Ready(Ok(()))
                    }
                    _ => {
                        // Released by a close, with the value.
                        let value = state.send_waiters.get_mut(key).value.take();
                        cell.set(IDLE);
                        drop(state);
                        match value {
                            Some(value) => Poll::Ready(Err(value)),
                            None => Poll::Ready(Ok(())),
                        }
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
                let cell = self.send_cells.get(key);
                let mut state = self.lock();
                let value = match cell.state() {
                    WAITING => {
                        let (waiter, _) = state.send_waiters.release(key);
                        cell.set(IDLE);
                        drop(state);
                        return waiter.value;
                    }
                    // DONE: taken; CLOSED: the value is still in the entry.
                    _ => state.send_waiters.get_mut(key).value.take(),
                };
                cell.set(IDLE);
                drop(state);
                value
            }
            SendState::Done => None,
        }
    }

    /// The value handed to the stream cell `own` of the calling `Receiver`, if any.
    fn take_own(&self, own: Option<usize>) -> Option<T> {
        let cell = self.recv_cells.get(own?);
        if cell.state() == DONE {
            cell.take()
        } else {
            None
        }
    }

    /// Takes one value without parking: `Err(closed)` when there is none. `own` is the
    /// calling `Receiver`'s stream key, whose cell may hold a value handed to it.
    pub(super) fn try_recv(&self, own: Option<usize>) -> Result<T, bool> {
        if let Some(value) = self.take_own(own) {
            return Ok(value);
        }
        let mut state = self.lock();
        match state.take_value(&self.recv_cells, &self.send_cells) {
            Some((value, waker)) => {
                drop(state);
                wake(waker);
                Ok(value)
            }
            None => Err(state.closed),
        }
    }

    /// Reads the outcome of a parked receive `key` (invariant 3): `Err(())` while it is still
    /// linked (its waker refreshed), else the value handed to it, if any, after which the key
    /// is given up (`*key = None`).
    fn check_parked(&self, key: &mut Option<usize>, cx: &Context<'_>) -> Result<Option<T>, ()> {
        let Some(k) = *key else { return Ok(None) };
        let cell = self.recv_cells.get(k);
        if cell.state() == WAITING {
            let mut state = self.lock();
            if cell.state() == WAITING {
                update_waker(&mut state.recv_waiters.get_mut(k).waker, cx);
                return Err(());
            }
        }
        // `DONE`: the value handed to it, if it is still there (see invariant 5).
        let value = cell.take();
        cell.set(IDLE);
        *key = None;
        Ok(value)
    }

    /// Polls a receive. `key` is the caller's parking key: `None` until it parks, and reset
    /// to `None` once it has its outcome. `own` is the stream key of the `Receiver` the
    /// receive was made from (if it has one): a value handed to it while the stream was
    /// polled, and left there when that poll was abandoned, is this receiver's to take first.
    pub(super) fn poll_recv(
        &self,
        key: &mut Option<usize>,
        own: Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        match self.check_parked(key, cx) {
            Err(()) => return Poll::Pending,
            Ok(Some(value)) => return Poll::Ready(Some(value)),
            Ok(None) => {}
        }
        if let Some(value) = self.take_own(own) {
            return Poll::Ready(Some(value));
        }
        let mut state = self.lock();
        match state.take_value(&self.recv_cells, &self.send_cells) {
            Some((value, waker)) => {
                drop(state);
                wake(waker);
                Poll::Ready(Some(value))
            }
            None => self.park_receiver(state, key, cx),
        }
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
        let mut taken = 0;
        match self.check_parked(key, cx) {
            Err(()) => return Poll::Pending,
            Ok(Some(value)) => {
                out.push(value);
                taken += 1;
            }
            Ok(None) => {}
        }
        if taken < max
            && let Some(value) = self.take_own(own)
        {
            out.push(value);
            taken += 1;
        }
        if taken == max {
            return Poll::Ready(taken);
        }
        let mut state = self.lock();
        let mut wakers = WakeList::new();
        while taken < max && !wakers.is_full() {
            match state.take_value(&self.recv_cells, &self.send_cells) {
                Some((value, waker)) => {
                    out.push(value);
                    wakers.push(waker);
                    taken += 1;
                }
                None => break,
            }
        }
        if taken > 0 {
            drop(state);
            wakers.wake_all();
            return Poll::Ready(taken);
        }
        self.park_receiver(state, key, cx).map(|_| 0)
    }

    /// Parks a receiver that found no value: `Ready(None)` if closed (invariant 5).
    fn park_receiver(
        &self,
        mut state: MutexGuard<'_, State<T>>,
        key: &mut Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        debug_assert!(key.is_none(), "a parked receive looks in its cell first");
        if state.closed {
            return Poll::Ready(None);
        }
        let state = &mut *state;
        if !state.recv_popped.is_empty() {
            reclaim(
                &mut state.recv_waiters,
                &mut state.recv_popped,
                &self.recv_cells,
            );
        }
        let k = state.recv_waiters.push_back(RecvWaiter {
            waker: Some(cx.waker().clone()),
        });
        self.recv_cells.ensure(k).set(WAITING);
        *key = Some(k);
        Poll::Pending
    }

    /// Releases a receiver's parking key when its future (or stream) is dropped: a value
    /// handed to it goes to the next parked receiver or to `buf` (invariant 1), and a
    /// wake-up it did not use goes to the next receiver (invariant 6).
    #[inline]
    pub(super) fn release_receiver(&self, key: &mut Option<usize>) {
        // Every receive future calls this on drop; most never parked or already finished.
        if let Some(k) = key.take() {
            self.release_receiver_key(k);
        }
    }

    fn release_receiver_key(&self, k: usize) {
        let cell = self.recv_cells.get(k);
        let mut state = self.lock();
        let waker = if cell.state() == WAITING {
            let (waiter, _) = state.recv_waiters.release(k);
            cell.set(IDLE);
            drop(state);
            drop(waiter);
            return;
        } else {
            let value = cell.take();
            cell.set(IDLE);
            match value {
                Some(value) => state.hand_off(&self.recv_cells, value),
                None if state.has_value() => state.notify_receiver(&self.recv_cells),
                None => None,
            }
        };
        drop(state);
        wake(waker);
    }
}
