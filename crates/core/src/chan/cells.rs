//! Per-waiter cells at stable addresses, read by their owners *without* the channel lock.
//!
//! A parked send or receive is identified by a [`Ticket`]: its wait-list key and the
//! generation the key had when it was handed out. Cell `key` holds an atomic state word
//! (`generation << 2 | tag`) and, for receivers, a slot for a value handed over. The cells sit
//! in chunks that never move once allocated (chunk `c` holds `BASE << c` cells), so a ticket
//! reaches its cell without the lock, while the wait list itself (a `Vec`) may grow.
//!
//! # Protocol (what makes the one `unsafe` block below sound)
//!
//! Tags: `WAITING` (the ticket's operation is parked or was unlinked without an outcome,
//! e.g. by a close), `DONE` (a value was written into the slot), `TAKEN` (someone claimed the
//! value), `FREE` (the claimer is done with the slot; the key may be reused).
//!
//! 1. Every transition *to* `WAITING` (a key handed out: new generation) and to `DONE` (a
//!    sender writes the value, then stores `DONE` with `Release`) happens under the channel
//!    lock. A sender writes the slot only while the cell is `WAITING` for the ticket it
//!    unlinked, and nobody else touches the slot while it is `WAITING`.
//! 2. The value is taken only by whoever wins the `compare_exchange(DONE -> TAKEN)` for that
//!    generation (`Acquire`: it sees the sender's write): the owner (without the lock), another
//!    receive of the same `Receiver` looking at its stream slot, or a receive taking over
//!    values before reporting "closed" (under the lock). One winner, so a value is taken once.
//! 3. The winner alone reads the slot, then stores `FREE` (`Release`). A key whose cell was
//!    `DONE` is reused (rule 1) only once its cell is `FREE` (loaded with `Acquire`: the
//!    winner's read happened before); a key that never got a value is released by its owner
//!    under the lock. Reuse bumps the generation, so a stale ticket never matches its old cell
//!    again.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use crate::loom::{AtomicU64, UnsafeCell};

/// Identifies one parked operation: its wait-list key and the key's generation then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket {
    pub(super) key: usize,
    pub(super) generation: u64,
}

const WAITING: u64 = 0;
const DONE: u64 = 1;
const TAKEN: u64 = 2;
const FREE: u64 = 3;
const TAG: u64 = 3;

const LOG_BASE: u32 = 4;
const BASE: usize = 1 << LOG_BASE;
const CHUNKS: usize = 40;

/// What a ticket's cell says about its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Still this ticket's, without an outcome: parked, or unlinked by a close.
    Waiting,
    /// A value was handed to it and is not yet claimed.
    Done,
    /// The key moved on: the value was claimed (taken over) or, for a sender, taken.
    Gone,
}

// Each cell on its own cache line: the cells of two waiters are written from different cores.
#[repr(align(64))]
struct Cell<T> {
    state: AtomicU64,
    value: UnsafeCell<Option<T>>,
}

pub(super) struct Cells<T> {
    chunks: [OnceLock<Box<[Cell<T>]>>; CHUNKS],
}

// SAFETY: a cell's value is only accessed by the one party the protocol above gives it to
// (the sender writing it under the lock while `WAITING`, then the single winner of the
// `DONE -> TAKEN` exchange), with `Release`/`Acquire` ordering between them; so sharing
// `Cells` between threads moves `T` values between threads (`T: Send`) but never shares one.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Cells<T> {}

impl<T> std::fmt::Debug for Cells<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cells").finish_non_exhaustive()
    }
}

#[inline]
fn locate(key: usize) -> (usize, usize) {
    let n = key + BASE;
    let chunk = (usize::BITS - 1 - n.leading_zeros() - LOG_BASE) as usize;
    (chunk, n - (BASE << chunk))
}

impl<T> Cells<T> {
    pub(super) fn new() -> Self {
        Cells {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    #[inline]
    fn cell(&self, key: usize) -> &Cell<T> {
        let (chunk, offset) = locate(key);
        &self.chunks[chunk]
            .get()
            .expect("a ticket's cell was allocated when the ticket was handed out")[offset]
    }

    /// Hands out `key` (under the lock): the next generation of its cell, `WAITING`. The cell
    /// must be unused: new, `FREE`, or released by the lock holder.
    #[inline]
    pub(super) fn issue(&self, key: usize) -> Ticket {
        let (chunk, offset) = locate(key);
        let cell = &self.chunks[chunk].get_or_init(|| {
            (0..(BASE << chunk))
                .map(|_| Cell {
                    state: AtomicU64::new(FREE),
                    value: UnsafeCell::new(None),
                })
                .collect()
        })[offset];
        // Acquire: pairs with the `Release` of the last claimer's `FREE`.
        let generation = (cell.state.load(Ordering::Acquire) >> 2) + 1;
        cell.state
            .store(generation << 2 | WAITING, Ordering::Relaxed);
        Ticket { key, generation }
    }

    /// Whether the cell of `key` may be handed out again (its last claimer stored `FREE`).
    #[inline]
    pub(super) fn is_free(&self, key: usize) -> bool {
        self.cell(key).state.load(Ordering::Acquire) & TAG == FREE
    }

    /// Reads the state of `ticket`'s operation.
    #[inline]
    pub(super) fn seen(&self, ticket: Ticket) -> Seen {
        let state = self.cell(ticket.key).state.load(Ordering::Acquire);
        if state == ticket.generation << 2 | WAITING {
            Seen::Waiting
        } else if state == ticket.generation << 2 | DONE {
            Seen::Done
        } else {
            Seen::Gone
        }
    }

    /// Marks a sender's ticket as served (under the lock): its value was taken.
    #[inline]
    pub(super) fn mark_taken(&self, ticket: Ticket) {
        self.cell(ticket.key)
            .state
            .store(ticket.generation << 2 | TAKEN, Ordering::Release);
    }

    /// Writes `value` into a receiver's cell and publishes it (under the lock; the ticket is
    /// `WAITING` and was just unlinked by the caller).
    #[inline]
    pub(super) fn deliver(&self, ticket: Ticket, value: T) {
        let cell = self.cell(ticket.key);
        debug_assert_eq!(
            cell.state.load(Ordering::Relaxed),
            ticket.generation << 2 | WAITING
        );
        cell.value.with_mut(|slot| {
            // SAFETY: the cell is `WAITING` for `ticket`, which the caller unlinked under the
            // lock it holds: by protocol rule 1 nobody else reads or writes the slot now (the
            // owner only reads it after winning `DONE -> TAKEN`, which needs the `DONE` stored
            // below), and the last claimer of this key finished with it before `FREE`.
            #[allow(unsafe_code)]
            unsafe {
                *slot = Some(value);
            }
        });
        cell.state
            .store(ticket.generation << 2 | DONE, Ordering::Release);
    }

    /// Claims and takes the value handed to `ticket`, if there is one and nobody claimed it,
    /// then marks the cell `FREE` (its key is released under the lock later, invariant 4 of
    /// `core`).
    #[inline]
    pub(super) fn claim(&self, ticket: Ticket) -> Option<T> {
        let cell = self.cell(ticket.key);
        cell.state
            .compare_exchange(
                ticket.generation << 2 | DONE,
                ticket.generation << 2 | TAKEN,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        let value = cell.value.with_mut(|slot| {
            // SAFETY: we won `DONE -> TAKEN` for this generation (rule 2): the sender's write
            // happened before (its `Release` store of `DONE`, our `Acquire`), no one else can
            // win it, and the key is not reused before we store `FREE` below (rule 3).
            #[allow(unsafe_code)]
            unsafe {
                (*slot).take()
            }
        });
        cell.state
            .store(ticket.generation << 2 | FREE, Ordering::Release);
        value
    }
}
