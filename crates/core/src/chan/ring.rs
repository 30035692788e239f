//! The buffer of a bounded channel: a fixed ring of slots that senders and receivers use
//! without the channel's lock (Dmitry Vyukov's bounded MPMC queue, as in crossbeam's array
//! channel, with the close as a mark bit in `tail`).
//!
//! `head` and `tail` are positions: a lap count in the high bits, a mark bit (`tail` only:
//! closed), and a slot index in the low bits. Each slot has a `stamp`: equal to `tail` when
//! the slot is free for the push at that position, `tail + 1` once that push has written
//! its value (so equal to `head + 1` for the pop at that position), and `head + one_lap`
//! once that pop has read it (free for the push one lap later).
//!
//! # Invariants
//!
//! 1. A push owns a slot between its `tail` compare-and-swap and its `Release` stamp store;
//!    a pop owns it between its `head` compare-and-swap and its stamp store. Only the owner
//!    touches the slot's value, and ownership passes only through the stamp (`Acquire` on
//!    the next owner's side), so a value is written once, read once, and never torn.
//! 2. Once the mark bit is set in `tail` it stays set and every later push fails with
//!    [`Push::Closed`]: a push either moved `tail` before the mark (its value is in the ring
//!    and pops will reach it) or fails.
//! 3. `pop` returns `None` only when it saw `tail == head` after a `SeqCst` fence: no push
//!    had claimed the slot at `head`. A claimed slot whose value is not written yet makes it
//!    wait for the writer instead (the writer is between two instructions, no user code).
//! 4. [`Ring::force_push`] and [`Ring::close`] are called only under the channel's lock, so
//!    the plain `tail` store in `force_push` never races with the mark bit.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::mem::MaybeUninit;
use std::ops::Deref;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

use crate::loom::{AtomicUsize, UnsafeCell, fence, lost_race, wait_a_moment};

/// Keeps `head` and `tail` on cache lines of their own (128 bytes: adjacent-line prefetch), so
/// that receivers moving `head` and senders moving `tail` do not invalidate each other's line.
#[repr(align(128))]
#[derive(Debug)]
pub(super) struct Padded<T>(pub(super) T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// Why a push failed; the value comes back.
#[derive(Debug)]
pub(super) enum Push<T> {
    Full(T),
    Closed(T),
}

pub(super) struct Ring<T> {
    head: Padded<AtomicUsize>,
    tail: Padded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    /// The smallest power of two above the capacity: the "closed" bit of `tail`.
    mark_bit: usize,
    /// `2 * mark_bit`: adding it to a position moves it one lap on.
    one_lap: usize,
}

// SAFETY: a `Ring` moves `T` values between threads (so `T: Send`) and gives each value to
// exactly one thread at a time, by invariant 1: no `&T` is ever shared, so `T: Sync` is not
// needed.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; every shared access to a slot's value is ordered by its stamp.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("cap", &self.slots.len())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T> Ring<T> {
    /// The largest capacity a ring is used for; a larger bounded channel keeps its buffer
    /// under the lock, allocated as it fills (a ring allocates every slot up front).
    pub(super) const MAX_CAP: usize = 1 << 16;

    pub(super) fn new(cap: usize) -> Self {
        assert!(
            cap > 0 && cap <= Self::MAX_CAP,
            "a ring holds 1..=MAX_CAP values"
        );
        let mark_bit = (cap + 1).next_power_of_two();
        Ring {
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            slots: (0..cap)
                .map(|i| Slot {
                    stamp: AtomicUsize::new(i),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
            mark_bit,
            one_lap: mark_bit * 2,
        }
    }

    /// The position after `pos` (which has no mark bit).
    #[inline(always)]
    fn next(&self, pos: usize) -> usize {
        let index = pos & (self.mark_bit - 1);
        if index + 1 < self.slots.len() {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        &self.slots[pos & (self.mark_bit - 1)]
    }

    /// Appends `value` unless the ring is full or closed.
    #[inline]
    pub(super) fn push(&self, value: T) -> Result<(), Push<T>> {
        let (mut step, mut losses) = (0, 0);
        let mut tail = self.tail.load(Relaxed);
        loop {
            if tail & self.mark_bit != 0 {
                return Err(Push::Closed(value));
            }
            let slot = self.slot(tail);
            let stamp = slot.stamp.load(Acquire);
            if stamp == tail {
                // Free for this position: claim it.
                match self
                    .tail
                    .compare_exchange_weak(tail, self.next(tail), SeqCst, Relaxed)
                {
                    Ok(_) => {
                        // SAFETY: the compare-and-swap made this push the slot's only owner
                        // (invariant 1), and the `Acquire` stamp load above ordered the
                        // previous owner's read of the slot before this write.
                        slot.value
                            .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
                        slot.stamp.store(tail + 1, Release);
                        return Ok(());
                    }
                    Err(now) => {
                        tail = now;
                        lost_race(&mut losses);
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds last lap's value: full, unless a pop has claimed it and
                // not yet released it.
                fence(SeqCst);
                let head = self.head.load(Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return Err(Push::Full(value));
                }
                wait_a_moment(&mut step);
                tail = self.tail.load(Relaxed);
            } else {
                // Another push claimed this position and has moved on: look again.
                wait_a_moment(&mut step);
                tail = self.tail.load(Relaxed);
            }
        }
    }

    /// Appends `value`, replacing the oldest value if the ring is full: returns that one.
    /// `Err(value)` if closed. Only under the channel's lock (invariant 4).
    pub(super) fn force_push(&self, mut value: T) -> Result<Option<T>, T> {
        let mut step = 0;
        loop {
            value = match self.push(value) {
                Ok(()) => return Ok(None),
                Err(Push::Closed(value)) => return Err(value),
                Err(Push::Full(value)) => value,
            };
            let tail = self.tail.load(Relaxed);
            if tail & self.mark_bit != 0 {
                return Err(value);
            }
            let slot = self.slot(tail);
            let stamp = slot.stamp.load(Acquire);
            let head = tail.wrapping_sub(self.one_lap);
            // Full with the oldest value written (its stamp is `head + 1`): claim the pop of
            // `head` and the push of `tail` (the same slot) at once, by moving `head` first.
            if stamp == head.wrapping_add(1)
                && self
                    .head
                    .compare_exchange(
                        head,
                        self.next(tail).wrapping_sub(self.one_lap),
                        SeqCst,
                        Relaxed,
                    )
                    .is_ok()
            {
                // No push can claim `tail` meanwhile: the slot's stamp says "full".
                self.tail.store(self.next(tail), SeqCst);
                // SAFETY: moving `head` past this slot made this call its owner as the pop
                // (no pop can claim it: `head` moved on) and as the push (no push can: its
                // stamp is not `tail`), invariant 1; the `Acquire` stamp load ordered the
                // writer's value before this read.
                let oldest = slot
                    .value
                    .with_mut(|p| unsafe { p.replace(MaybeUninit::new(value)).assume_init() });
                slot.stamp.store(tail + 1, Release);
                return Ok(Some(oldest));
            }
            wait_a_moment(&mut step);
        }
    }

    /// Takes the oldest value; `None` if the ring is empty (invariant 3).
    #[inline]
    pub(super) fn pop(&self) -> Option<T> {
        let (mut step, mut losses) = (0, 0);
        let mut head = self.head.load(Relaxed);
        loop {
            let slot = self.slot(head);
            let stamp = slot.stamp.load(Acquire);
            if head + 1 == stamp {
                match self
                    .head
                    .compare_exchange_weak(head, self.next(head), SeqCst, Relaxed)
                {
                    Ok(_) => {
                        // SAFETY: the compare-and-swap made this pop the slot's only owner
                        // (invariant 1); the `Acquire` stamp load ordered the push's write of
                        // the value before this read, which moves it out exactly once.
                        let value = slot.value.with_mut(|p| unsafe { p.read().assume_init() });
                        slot.stamp.store(head.wrapping_add(self.one_lap), Release);
                        return Some(value);
                    }
                    Err(now) => {
                        head = now;
                        lost_race(&mut losses);
                    }
                }
            } else if stamp == head {
                // Not written at this position: empty, unless a push claimed it already.
                fence(SeqCst);
                let tail = self.tail.load(Relaxed);
                if tail & !self.mark_bit == head {
                    return None;
                }
                wait_a_moment(&mut step);
                head = self.head.load(Relaxed);
            } else {
                // Another pop took this position: look again.
                wait_a_moment(&mut step);
                head = self.head.load(Relaxed);
            }
        }
    }

    /// Sets the mark bit: every later push fails (invariant 2). Only under the channel's lock.
    pub(super) fn close(&self) {
        self.tail.fetch_or(self.mark_bit, SeqCst);
    }

    /// The number of values, at one moment during the call.
    pub(super) fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(SeqCst);
            let head = self.head.load(SeqCst);
            if self.tail.load(SeqCst) == tail {
                let tail = tail & !self.mark_bit;
                let (hix, tix) = (head & (self.mark_bit - 1), tail & (self.mark_bit - 1));
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    self.slots.len() - hix + tix
                } else if tail == head {
                    0
                } else {
                    self.slots.len()
                };
            }
        }
    }

    /// Whether the ring looked empty (a snapshot, as [`Ring::len`]).
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Exclusive access: no operation is in progress, so `pop` never waits.
        while self.pop().is_some() {}
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Push, Ring};

    #[test]
    fn fifo_full_close_and_wrap_around() {
        let ring = Ring::new(3);
        for lap in 0..5 {
            for i in 0..3 {
                ring.push(lap * 10 + i).unwrap();
            }
            assert!(matches!(ring.push(99), Err(Push::Full(99))));
            assert_eq!(ring.len(), 3);
            for i in 0..3 {
                assert_eq!(ring.pop(), Some(lap * 10 + i));
            }
            assert_eq!(ring.pop(), None);
            assert_eq!(ring.len(), 0);
        }
        ring.push(1).unwrap();
        ring.close();
        assert!(matches!(ring.push(2), Err(Push::Closed(2))));
        assert_eq!(ring.len(), 1, "a close keeps the values");
        assert_eq!(ring.pop(), Some(1));
        assert_eq!(ring.pop(), None);
    }

    #[test]
    fn force_push_replaces_the_oldest_only_when_full() {
        let ring = Ring::new(2);
        assert_eq!(ring.force_push(1).unwrap(), None);
        assert_eq!(ring.force_push(2).unwrap(), None);
        for i in 3..8 {
            assert_eq!(ring.force_push(i).unwrap(), Some(i - 2));
            assert_eq!(ring.len(), 2);
        }
        assert_eq!(ring.pop(), Some(6));
        assert_eq!(ring.pop(), Some(7));
        ring.close();
        assert_eq!(ring.force_push(9).unwrap_err(), 9);
    }

    #[test]
    fn dropping_a_ring_drops_its_values() {
        let value = std::sync::Arc::new(());
        let ring = Ring::new(4);
        for _ in 0..3 {
            ring.push(value.clone()).unwrap();
        }
        drop(ring);
        assert_eq!(std::sync::Arc::strong_count(&value), 1);
    }
}
