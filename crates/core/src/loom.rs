//! The synchronization primitives weft writes its own code with, swapped for loom's under
//! `cfg(loom)` so that `crates/core/tests/loom_*.rs` can check every interleaving
//! (`RUSTFLAGS="--cfg loom" cargo test -p weft-core --test loom_chan`).

#[cfg(not(loom))]
pub(crate) use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize},
};

#[cfg(loom)]
pub(crate) use loom::sync::{
    Arc, MutexGuard,
    atomic::{AtomicU64, AtomicUsize},
};

/// The channel's lock: a test-and-test-and-set spin lock (`spin`'s `SpinMutex`) that spins
/// briefly and then yields the thread.
///
/// Why not `std::sync::Mutex` or parking_lot's: both unlock with an atomic read-modify-write
/// (to find out whether to wake a parked thread), and profiling `benches/benches/chan.rs`
/// showed those two locked instructions per operation dominating a channel operation. This
/// lock releases with a plain store. It never parks: critical sections here are a few
/// dozen instructions (no allocation in the common case, no user code, no wake-ups: see
/// `chan/core.rs` invariant 6), and waiters yield the thread after spinning (exponential
/// back-off, 2^11 - 1 pauses in all, tens of microseconds) so that a holder preempted on a
/// busy machine gets the CPU back.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct Mutex<T>(spin::mutex::SpinMutex<T>);

#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T>;

#[cfg(not(loom))]
impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Mutex(spin::mutex::SpinMutex::new(value))
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        match self.0.try_lock() {
            Some(guard) => guard,
            None => self.lock_contended(),
        }
    }

    #[cold]
    fn lock_contended(&self) -> MutexGuard<'_, T> {
        let mut round = 0u32;
        loop {
            // Wait until it looks free before trying again (no cache-line ping-pong).
            while self.0.is_locked() {
                // Up to 2^11 - 1 pauses in all before yielding. With 63 (the first version),
                // 2-worker rendezvous 4x4 runs spent ~30% of their time here and ~10% in
                // `sched_yield` whenever producers and consumers spread over both workers (the
                // releasing side re-takes the lock before the waiter sees it free): 0.58-0.75x
                // kanal in a fixed-work driver, against 1.16-1.23x with this budget
                // (`BENCHMARKS.md`, `## Channels`).
                if round < 11 {
                    for _ in 0..(1 << round) {
                        std::hint::spin_loop();
                    }
                } else {
                    std::thread::yield_now();
                }
                round += 1;
            }
            if let Some(guard) = self.0.try_lock() {
                return guard;
            }
        }
    }
}

/// loom's mutex with the same signature (no poisoning).
#[cfg(loom)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
