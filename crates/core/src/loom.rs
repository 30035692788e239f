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
/// briefly and then puts the thread to sleep for a few microseconds at a time.
///
/// Not `std::sync::Mutex` or parking_lot's, because both unlock with a second atomic
/// read-modify-write and this one releases with a plain store; spinning is enough because
/// critical sections are a few dozen instructions with no user code (`chan/core.rs`
/// invariant 6), and sleeping after the spin lets a preempted holder run and stops two cores
/// from taking turns on the lock's cache line (which cost 4x the time per message and 2x the
/// cores; `sched_yield` returns at once when nothing else wants the CPU). The measurements
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
        let mut nap = Self::FIRST_NAP;
        loop {
            // Wait until it looks free before trying again (no cache-line ping-pong).
            while self.0.is_locked() {
                if round < Self::SPIN_ROUNDS {
                    // A short exponential back-off: enough for a holder running on the other
                    // core to finish a critical section of a few dozen instructions.
                    for _ in 0..(1 << round) {
                        std::hint::spin_loop();
                    }
                    round += 1;
                } else {
                    // Still held: the other core is hammering the lock too (or its holder
                    // was preempted). Take this thread off the CPU rather than spin or
                    // `sched_yield` (which returns at once on an idle machine): the other
                    // worker then runs its tasks alone, without the lock's cache line moving
                    // between the cores on every operation. The nap doubles while the lock
                    // stays held, capped so that a worker never stalls long.
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Self::MAX_NAP);
                }
            }
            if let Some(guard) = self.0.try_lock() {
                return guard;
            }
        }
    }

    /// Back-off rounds (1, 2 then 4 pauses) before the thread naps.
    const SPIN_ROUNDS: u32 = 3;
    /// The first nap (the kernel's timer slack, 50 us by default, makes it longer in fact).
    const FIRST_NAP: std::time::Duration = std::time::Duration::from_micros(1);
    const MAX_NAP: std::time::Duration = std::time::Duration::from_micros(64);
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Mutex;

    /// Mutual exclusion holds through every way of waiting (spinning, then napping): threads
    /// hammering the lock increment a plain counter under it and none of the increments is lost.
    #[test]
    fn contended_lock_loses_no_update() {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 20_000;
        let lock = Mutex::new((0usize, 0usize));
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..PER_THREAD {
                        let mut guard = lock.lock();
                        // Two separate read-modify-writes: torn only if two threads are in.
                        guard.0 += 1;
                        std::hint::spin_loop();
                        guard.1 = guard.0;
                    }
                });
            }
        });
        let guard = lock.lock();
        assert_eq!(*guard, (THREADS * PER_THREAD, THREADS * PER_THREAD));
    }
}
