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
/// Not `std::sync::Mutex` or parking_lot's, because both unlock with a second atomic
/// read-modify-write and this one releases with a plain store; spinning is enough because
/// critical sections are a few dozen instructions with no user code (`chan/core.rs`
/// invariant 6), and yielding after the spin lets a preempted holder run. The measurements
/// behind it are in `BENCHMARKS.md`, `## Channels`.
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
                // Exponential back-off, 2^11 - 1 pauses in all, before yielding: long enough
                // for a holder on the other worker to release (step 4 of `BENCHMARKS.md`'s
                // channel notes says how the budget was chosen).
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
