//! Go's concurrency patterns for async Rust on tokio, with Rust's guarantees.
//!
//! - [`context`]: Go's `context` package: cancellation with causes, deadlines without a task per
//!   context, typed values, propagation down a tree.
//! - [`group`]: Go's `sync.WaitGroup` and `errgroup`: wait for tasks, stop at the first error,
//!   bound concurrency, collect results in order; panics reported, never lost.
//! - [`task`]: panic-safe spawn (Go's "SafeGo") and a [`Supervisor`](task::Supervisor) that
//!   restarts a failing task with backoff.
//! - [`chan`]: Go's channels: bounded, rendezvous and unbounded MPMC channels with `close`,
//!   cancel safe in `select!` (rendezvous included).
//! - [`select`]: Go's `select` patterns with `tokio::select!`, fan-in (`merge`), `tee`,
//!   `or_done` and fan-out helpers.
//! - [`time`]: Go's `time.Ticker`, with its missed-tick behaviour.
//! - [`rate`]: a rate limiter (governor's GCRA on tokio's clock) for throttling senders.
//! - [`Shutdown`] and [`Panicked`]: the words every weft crate uses for ending work and for a
//!   caught panic.
//!
//! weft-core is the bottom layer of [weft](https://github.com/weft-rs/weft): pipelines
//! (`weft-pipeline`), the worker pool (`weft-pool`) and the apps build on it, and it knows
//! nothing of them.
//!
//! ```
//! use weft_core::context::Context;
//! let (ctx, cancel) = Context::background().with_cancel();
//! cancel.cancel();
//! assert!(ctx.is_done());
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod chan;
pub mod context;
pub mod group;
mod loom;
pub mod rate;
pub mod select;
mod shutdown;
#[cfg(feature = "signal")]
pub mod signal;
pub mod task;
pub mod time;

pub use context::{Context, ContextError};
pub use shutdown::Shutdown;
pub use task::Panicked;
