//! The synchronization primitives of the job cell and the scheduler core's queue accounting,
//! swapped for loom's under `cfg(loom)` so that their loom models (`job::cell` and
//! `sched::state`, tests named `loom_*`) check every interleaving:
//! `RUSTFLAGS="--cfg loom" cargo test -p weft-pool --lib --release loom`.
//!
//! Only those two use the shim; the rest of the crate (tokio tasks, semaphores) is never run
//! under loom.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// Locks a mutex, ignoring poison: no code here panics while holding one of the pool's locks,
/// and user code never runs under them.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
