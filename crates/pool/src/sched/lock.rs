//! [`SpinLock`]: the lock of the pool's `intake`, which every submit takes once, of its `state`
//! (the workers' bookkeeping), and of each job cell's outcome and waker (`job::cell`, through
//! `crate::loom::SlotLock`).
//!
//! Why not `std::sync::Mutex`: its unlock is an atomic read-modify-write (to learn whether a
//! thread is parked) and a contended lock parks in the kernel, while the critical sections
//! here are a few dozen instructions with no allocation, no user code and no wake-up (wakers
//! are woken after the lock is released). Waiters spin with exponential back-off, then yield
//! the thread, so a holder preempted on a busy machine gets the CPU back. weft-core's channel
//! lock (`crates/core/src/loom.rs`) naps with `std::thread::sleep` instead of yielding; that
//! policy was measured here and not taken, because napping waiters leave a core idle and slowed
//! fire-and-forget and single-submitter shapes. Figures in BENCHMARKS.md (Worker pool).

use spin::mutex::{SpinMutex, SpinMutexGuard};

pub(crate) struct SpinLock<T>(SpinMutex<T>);

pub(crate) type SpinGuard<'a, T> = SpinMutexGuard<'a, T>;

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SpinLock(SpinMutex::new(value))
    }

    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        match self.0.try_lock() {
            Some(guard) => guard,
            None => self.lock_contended(),
        }
    }

    #[cold]
    fn lock_contended(&self) -> SpinGuard<'_, T> {
        let mut round = 0u32;
        loop {
            // Wait until it looks free before trying again (no cache-line ping-pong).
            while self.0.is_locked() {
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
