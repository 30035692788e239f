//! weft: Go's concurrency patterns for async Rust on tokio.
//!
//! One dependency for the layers: [`core`] (Context, groups, channels, select helpers,
//! supervised tasks), [`pipeline`] (stream pipelines) and [`pool`] (a worker pool that is a
//! `tower::Service`).
//!
//! ```
//! use weft::core::Context;
//! let (ctx, cancel) = Context::background().with_cancel();
//! cancel.cancel();
//! assert!(ctx.is_done());
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub use weft_core as core;
pub use weft_pipeline as pipeline;
pub use weft_pool as pool;

pub use weft_core::{Context, ContextError};

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
