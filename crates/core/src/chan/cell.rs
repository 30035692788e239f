//! Per-waiter cells outside the channel's lock: how a woken parked future learns its outcome
//! (and, for a receive, takes the value handed to it) without taking the channel's lock again.
//!
//! A cell belongs to one wait-list key (`waitlist.rs`). The channel writes the outcome under
//! its lock: for a receiver, the handed value into `handed`, then `state = DONE` (Release);
//! for a sender whose value a receiver took, `state = DONE`; on close, `DONE` (receivers) or
//! `CLOSED` (senders, whose values stay in the wait list for the owner to take back). The
//! owner reads `state` (Acquire), takes the value from `handed` if any, and stores `IDLE`
//! (Release) when it will not touch the cell again. A key whose cell is not `IDLE` is never
//! reused (`State::reclaim`), so an owner never reads another operation's outcome.
//!
//! The cells live in chunks that never move once allocated (chunk `c` holds `FIRST << c`
//! cells), so a parked future can hold `&Cell` through its borrow of the channel: no
//! reference counting on the hot path. Each cell fills a cache line of its own: the line
//! moves once from the side that completes the operation to the owner, and no other waiter's
//! cell shares it.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use crate::loom::{AtomicU8, Mutex};

/// Free: no operation uses the cell (the owner has let go of it).
pub(super) const IDLE: u8 = 0;
/// Linked in its wait list, no outcome yet.
pub(super) const WAITING: u8 = 1;
/// Unlinked by the other side: a receiver was handed a value (in `handed`) or woken without
/// one; a sender's value was taken.
pub(super) const DONE: u8 = 2;
/// A sender unlinked by a close: its value waits in the wait list to be handed back.
pub(super) const CLOSED: u8 = 3;

const FIRST: usize = 8;
const CHUNKS: usize = 40;

#[repr(align(64))]
pub(super) struct Cell<T> {
    state: AtomicU8,
    /// A value handed to a parked receiver (always `None` in a sender's cell).
    handed: Mutex<Option<T>>,
}

impl<T> Cell<T> {
    fn new() -> Self {
        Cell {
            state: AtomicU8::new(IDLE),
            handed: Mutex::new(None),
        }
    }

    /// The outcome, as the owner sees it (Acquire: pairs with the channel's `set`).
    pub(super) fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Publishes an outcome (or `WAITING`, or the owner's `IDLE`).
    pub(super) fn set(&self, state: u8) {
        self.state.store(state, Ordering::Release);
    }

    /// Puts a value into a parked receiver's cell (the caller then sets `DONE`).
    pub(super) fn hand(&self, value: T) {
        let previous = self.handed.lock().replace(value);
        debug_assert!(previous.is_none(), "a cell holds one handed value at most");
    }

    /// Takes the handed value, if it is still there.
    pub(super) fn take(&self) -> Option<T> {
        self.handed.lock().take()
    }
}

/// The cells of one wait list, by key.
pub(super) struct Cells<T> {
    chunks: [OnceLock<Box<[Cell<T>]>>; CHUNKS],
}

fn locate(key: usize) -> (usize, usize) {
    let n = key + FIRST;
    let chunk = (n.ilog2() - FIRST.ilog2()) as usize;
    (chunk, n - (FIRST << chunk))
}

impl<T> Cells<T> {
    pub(super) fn new() -> Self {
        Cells {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Makes sure the cell for `key` exists (called under the channel's lock, before the key
    /// is handed to its owner).
    pub(super) fn ensure(&self, key: usize) -> &Cell<T> {
        let (chunk, offset) = locate(key);
        let cells = self.chunks[chunk].get_or_init(|| {
            (0..FIRST << chunk)
                .map(|_| Cell::new())
                .collect::<Vec<_>>()
                .into_boxed_slice()
        });
        &cells[offset]
    }

    /// The cell for a key that [`Cells::ensure`] has made.
    pub(super) fn get(&self, key: usize) -> &Cell<T> {
        let (chunk, offset) = locate(key);
        &self.chunks[chunk]
            .get()
            .expect("a key's cell is made before the key is handed out")[offset]
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Cells, IDLE, locate};

    #[test]
    fn keys_map_to_distinct_cells_in_growing_chunks() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(7), (0, 7));
        assert_eq!(locate(8), (1, 0));
        assert_eq!(locate(23), (1, 15));
        assert_eq!(locate(24), (2, 0));
        let cells = Cells::<u32>::new();
        for key in [0, 7, 8, 100] {
            cells.ensure(key).hand(key as u32);
        }
        for key in [0, 7, 8, 100] {
            assert_eq!(cells.get(key).take(), Some(key as u32));
            assert_eq!(cells.get(key).state(), IDLE);
        }
    }
}
