//! The synchronization primitives weft writes its own code with, swapped for loom's under
//! `cfg(loom)` so that `crates/core/tests/loom_*.rs` can check every interleaving
//! (`RUSTFLAGS="--cfg loom" cargo test -p weft-core --test loom_chan`).

#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, atomic::AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, MutexGuard, atomic::AtomicUsize};

/// loom's mutex with parking_lot's signature (no poisoning).
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
