//! A FIFO of parked operations, stored in a slab so that parking allocates nothing once the
//! slab has grown to the peak number of waiters.
//!
//! Each entry has a stable key (its slot index) for as long as its owner (one `Send` or `Recv`
//! future, or a `Receiver`'s stream slot) holds it, and is *linked* (queued) or *unlinked*
//! (popped by the other side, or never queued again). Only the owner frees its entry
//! ([`WaitList::release`]), so a key is never reused while someone still holds it.

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Slot<E> {
    entry: Option<E>,
    prev: usize,
    next: usize,
    linked: bool,
}

// `repr(C)`, `head` first: the channel's hot path reads only `head` (see `Shared`'s layout).
#[derive(Debug)]
#[repr(C)]
pub(super) struct WaitList<E> {
    head: usize,
    tail: usize,
    slots: Vec<Slot<E>>,
    /// Head of the free slots, chained through their `next` (a free slot is never linked).
    free: usize,
}

impl<E> WaitList<E> {
    pub(super) const fn new() -> Self {
        WaitList {
            head: NIL,
            tail: NIL,
            slots: Vec::new(),
            free: NIL,
        }
    }

    /// Returns `true` when no entry is linked.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.head == NIL
    }

    /// Stores `entry` and links it at the back; returns its key.
    #[inline(always)]
    pub(super) fn push_back(&mut self, entry: E) -> usize {
        let key = if self.free == NIL {
            self.slots.push(Slot {
                entry: Some(entry),
                prev: NIL,
                next: NIL,
                linked: false,
            });
            self.slots.len() - 1
        } else {
            let key = self.free;
            let slot = &mut self.slots[key];
            self.free = slot.next;
            slot.entry = Some(entry);
            key
        };
        self.link_back(key);
        key
    }

    /// Links an unlinked entry at the back again.
    #[inline]
    pub(super) fn link_back(&mut self, key: usize) {
        debug_assert!(!self.slots[key].linked);
        let slot = &mut self.slots[key];
        slot.linked = true;
        slot.prev = self.tail;
        slot.next = NIL;
        if self.tail == NIL {
            self.head = key;
        } else {
            self.slots[self.tail].next = key;
        }
        self.tail = key;
    }

    /// Unlinks the front entry and returns its key; the entry stays stored for its owner.
    #[inline]
    pub(super) fn pop_front(&mut self) -> Option<usize> {
        if self.head == NIL {
            return None;
        }
        let key = self.head;
        self.unlink(key);
        Some(key)
    }

    #[inline]
    pub(super) fn is_linked(&self, key: usize) -> bool {
        self.slots[key].linked
    }

    /// Unlinks `key` if it is linked.
    #[inline]
    pub(super) fn unlink(&mut self, key: usize) {
        let Slot {
            prev, next, linked, ..
        } = self.slots[key];
        if !linked {
            return;
        }
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next].prev = prev;
        }
        let slot = &mut self.slots[key];
        slot.linked = false;
        slot.prev = NIL;
        slot.next = NIL;
    }

    #[inline]
    pub(super) fn get_mut(&mut self, key: usize) -> &mut E {
        self.slots[key]
            .entry
            .as_mut()
            .expect("a wait-list key is only used by its owner, before it releases it")
    }

    /// Every stored entry, linked or not (a linear scan of the slab: for rare paths only).
    pub(super) fn entries_mut(&mut self) -> impl Iterator<Item = &mut E> {
        self.slots.iter_mut().filter_map(|slot| slot.entry.as_mut())
    }

    /// Unlinks (if needed) and frees `key`, returning its entry and whether it was still linked.
    #[inline(always)]
    pub(super) fn release(&mut self, key: usize) -> (E, bool) {
        let linked = self.slots[key].linked;
        self.unlink(key);
        let slot = &mut self.slots[key];
        slot.next = self.free;
        self.free = key;
        let entry = slot
            .entry
            .take()
            .expect("a wait-list key is released once, by its owner");
        (entry, linked)
    }
}

#[cfg(test)]
mod tests {
    use super::WaitList;

    #[test]
    fn fifo_order_survives_unlink_in_the_middle_and_reuses_slots() {
        let mut list = WaitList::new();
        let a = list.push_back('a');
        let b = list.push_back('b');
        let c = list.push_back('c');
        list.unlink(b);
        assert_eq!(list.pop_front(), Some(a));
        assert_eq!(list.release(a), ('a', false));
        assert_eq!(list.release(b), ('b', false));
        let d = list.push_back('d');
        assert!(d == a || d == b, "a freed slot is reused");
        assert_eq!(list.pop_front(), Some(c));
        list.link_back(c);
        assert_eq!(list.pop_front(), Some(d));
        assert_eq!(list.pop_front(), Some(c));
        assert!(list.is_empty());
        assert_eq!(list.release(c), ('c', false));
        assert_eq!(list.release(d), ('d', false));
    }
}
