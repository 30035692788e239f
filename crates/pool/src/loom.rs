//! The synchronization primitives of the job cell and the scheduler core's queue accounting and hints,
//! swapped for loom's under `cfg(loom)` so that their loom models (`job::cell` and
//! `sched::state`, tests named `loom_*`) check every interleaving:
//! `RUSTFLAGS="--cfg loom" cargo test -p weft-pool --lib --release loom`.
//!
//! Only those two use the shim; the rest of the crate (tokio tasks, semaphores) is never run
//! under loom.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// The lock of a job cell's outcome and waker: the pool's spin lock (`sched::SpinLock`; the
/// critical sections are a few stores, and std's unlock is a second read-modify-write per
/// lock), loom's mutex under loom.
#[cfg(not(loom))]
pub(crate) type SlotLock<T> = crate::sched::SpinLock<T>;
#[cfg(loom)]
pub(crate) type SlotLock<T> = loom::sync::Mutex<T>;

/// Locks a [`SlotLock`].
#[cfg(not(loom))]
pub(crate) fn lock_slot<T>(m: &SlotLock<T>) -> crate::sched::SpinGuard<'_, T> {
    m.lock()
}
#[cfg(loom)]
pub(crate) fn lock_slot<T>(m: &SlotLock<T>) -> MutexGuard<'_, T> {
    lock(m)
}

/// Locks a mutex, ignoring poison: no code here panics while holding one of the pool's locks,
/// and user code never runs under them.
#[cfg(loom)]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
