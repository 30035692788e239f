//! The hand-off between two stages: a bounded queue of chunks (`Vec<T>`).
//!
//! # Invariants
//!
//! 1. Every item pushed into a channel is counted exactly once by the receiving stage's
//!    counters: either the receiving stage takes it (and counts `received` itself), or it is
//!    dropped by the overflow policy (`received` + `dropped`, counted here), or it is still
//!    queued when the receiver closes (`received` + `cancelled`, counted here).
//! 2. A send that fails hands the chunk back, so the sending stage counts it as cancelled.
//! 3. All state changes happen under one lock, so closing the receiver and draining the queue is
//!    atomic with respect to senders: a send either lands before the close (and is drained) or
//!    fails. This is why this is not a tokio mpsc channel: after `close()` a tokio sender may
//!    still hold a permit, so a synchronous drain in `Drop` could miss its value.
//!
//! The capacity is counted in items. A chunk larger than the capacity is split, and an empty
//! queue always accepts one piece, so a stage with `buffer(1)` holds at most one item.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::counters::Counters;

struct State<T> {
    queue: VecDeque<Vec<T>>,
    items: usize,
    rx_closed: bool,
    senders: usize,
    /// The receiver is (about to be) parked on `data`. Senders only notify when it is: a
    /// receiver that finds data never parks, so a busy stage costs its senders no wake-ups.
    rx_waiting: bool,
    /// Some sender is (about to be) parked on `space`; same idea for the receiver.
    tx_waiting: bool,
}

struct Chan<T> {
    state: Mutex<State<T>>,
    /// The receiver waits here for data or for the last sender to go.
    data: Notify,
    /// Senders wait here for space or for the receiver to close.
    space: Notify,
    cap: usize,
    drop_when_full: bool,
    counters: Arc<Counters>,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic never happens while the lock is held (only Vec/VecDeque moves), but recover
        // from poisoning anyway rather than propagate a panic into every stage.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct Sender<T> {
    chan: Arc<Chan<T>>,
}

pub(crate) struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// Creates a channel owned by the stage whose `counters` are given.
pub(crate) fn channel<T>(
    cap: usize,
    drop_when_full: bool,
    counters: Arc<Counters>,
) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            items: 0,
            rx_closed: false,
            senders: 1,
            rx_waiting: false,
            tx_waiting: false,
        }),
        data: Notify::new(),
        space: Notify::new(),
        cap: cap.max(1),
        drop_when_full,
        counters,
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut st = self.chan.lock();
            st.senders -= 1;
            st.senders == 0
        };
        if last {
            self.chan.data.notify_one();
        }
    }
}

impl<T> Sender<T> {
    /// The receiving stage's counters.
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.chan.counters
    }

    /// The capacity in items, so producers can size their chunks.
    pub(crate) fn capacity(&self) -> usize {
        self.chan.cap
    }

    /// Sends a chunk, waiting for space (or dropping it when full, if the receiving stage asked
    /// for that). Returns the number of items that could not be sent because the receiver is
    /// closed (0 on success).
    ///
    /// Waiting for space ends early when `abort` is cancelled: the items not pushed yet are
    /// counted as unsent, so the caller's count of what it handed on stays exact.
    pub(crate) async fn send(&self, mut chunk: Vec<T>, abort: &CancellationToken) -> usize {
        if chunk.is_empty() {
            return 0;
        }
        let cap = self.chan.cap;
        if chunk.len() <= cap {
            return self.send_piece(chunk, abort).await;
        }
        // Split into pieces of at most `cap` items, front first.
        let mut rest = chunk.split_off(cap);
        let mut piece = chunk;
        loop {
            let n = self.send_piece(piece, abort).await;
            if n > 0 {
                return n + rest.len();
            }
            if rest.is_empty() {
                return 0;
            }
            let tail = if rest.len() > cap {
                rest.split_off(cap)
            } else {
                Vec::new()
            };
            piece = std::mem::replace(&mut rest, tail);
        }
    }

    async fn send_piece(&self, piece: Vec<T>, abort: &CancellationToken) -> usize {
        let chan = &*self.chan;
        let n = piece.len();
        let mut piece = Some(piece);
        loop {
            let notified = chan.space.notified();
            tokio::pin!(notified);
            {
                let mut st = chan.lock();
                if st.rx_closed {
                    return n;
                }
                if st.items == 0 || st.items + n <= chan.cap {
                    if let Some(p) = piece.take() {
                        st.queue.push_back(p);
                    }
                    st.items += n;
                    let depth = st.items;
                    let wake = std::mem::take(&mut st.rx_waiting);
                    drop(st);
                    chan.counters.queue_len.store(depth, Relaxed);
                    chan.counters.queue_high.fetch_max(depth, Relaxed);
                    if wake {
                        chan.data.notify_one();
                    }
                    return 0;
                }
                if chan.drop_when_full {
                    drop(st);
                    // Invariant 1: a dropped hand-off is received and dropped by policy.
                    chan.counters.received.fetch_add(n as u64, Relaxed);
                    chan.counters.dropped.fetch_add(n as u64, Relaxed);
                    return 0;
                }
                // Register before unlocking so a wake-up between unlock and await is not lost.
                st.tx_waiting = true;
                notified.as_mut().enable();
            }
            tokio::select! {
                biased;
                () = abort.cancelled() => return n,
                () = &mut notified => {}
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Receives the next chunk, or `None` once every sender is gone and the queue is empty.
    ///
    /// Cancel safe: the chunk is taken from the queue inside the poll that returns it.
    pub(crate) async fn recv(&mut self) -> Option<Vec<T>> {
        let chan = &*self.chan;
        let mut yielded = false;
        loop {
            let notified = chan.data.notified();
            tokio::pin!(notified);
            let park = {
                let mut st = chan.lock();
                if let Some(chunk) = Self::pop(chan, &mut st) {
                    return Some(chunk);
                }
                if st.senders == 0 || st.rx_closed {
                    return None;
                }
                if yielded {
                    st.rx_waiting = true;
                    notified.as_mut().enable();
                }
                yielded
            };
            if park {
                notified.await;
            } else {
                // Before parking, let the other tasks on this worker run once: the producer
                // is often one of them, and finding its chunk now avoids a park/unpark of the
                // worker thread, which costs microseconds.
                yielded = true;
                tokio::task::yield_now().await;
            }
        }
    }

    /// Takes a chunk if one is queued (`Some(Some)`), says the input ended (`Some(None)`), or
    /// that the caller would have to wait (`None`).
    pub(crate) fn try_recv(&mut self) -> Option<Option<Vec<T>>> {
        let chan = &*self.chan;
        let mut st = chan.lock();
        if let Some(chunk) = Self::pop(chan, &mut st) {
            return Some(Some(chunk));
        }
        if st.senders == 0 || st.rx_closed {
            return Some(None);
        }
        None
    }

    fn pop(chan: &Chan<T>, st: &mut MutexGuard<'_, State<T>>) -> Option<Vec<T>> {
        let chunk = st.queue.pop_front()?;
        st.items -= chunk.len();
        st.rx_waiting = false;
        chan.counters.queue_len.store(st.items, Relaxed);
        if std::mem::take(&mut st.tx_waiting) {
            // Wakes every parked sender; each re-checks under the lock and parks again
            // (setting the flag again) if there is still no room.
            chan.space.notify_waiters();
        }
        Some(chunk)
    }

    /// Closes the channel and counts what was still queued as received and cancelled.
    /// Later sends fail. Returns the number of items drained.
    pub(crate) fn close(&mut self) -> usize {
        let drained: usize = {
            let mut st = self.chan.lock();
            st.rx_closed = true;
            st.tx_waiting = false;
            st.items = 0;
            st.queue.drain(..).map(|c| c.len()).sum()
        };
        self.chan.space.notify_waiters();
        let c = &self.chan.counters;
        c.queue_len.store(0, Relaxed);
        c.received.fetch_add(drained as u64, Relaxed);
        c.cancelled.fetch_add(drained as u64, Relaxed);
        drained
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("stage", &self.chan.counters.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
