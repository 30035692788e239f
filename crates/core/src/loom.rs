//! The synchronization primitives weft writes its own code with, swapped for loom's under
//! `cfg(loom)` so that `crates/core/tests/loom_*.rs` can check every interleaving
//! (`RUSTFLAGS="--cfg loom" cargo test -p weft-core --test loom_chan --release`).

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard, atomic::AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, atomic::AtomicUsize};
