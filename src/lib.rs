//! weft: Go's concurrency patterns for async Rust on tokio.
//!
//! One dependency for the layers: [`core`] (Context, groups, channels, select helpers,
//! supervised tasks), [`pipeline`] (stream pipelines) and [`pool`] (a worker pool that is a
//! `tower::Service`).
//!
//! Coming from Go? The [`guide`] takes Go's concurrency idioms one chapter at a time
//! (goroutines, WaitGroup, channels, select, fan-out/fan-in, pipelines, worker pools, context),
//! each beside its weft form, with what changes and a program that runs.
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

// The guide's text lives in docs/guide/, one Markdown file per chapter, so that it reads on
// GitHub too; including it here makes rustdoc render it and `cargo test` run its snippets.
#[doc = include_str!("../docs/guide/00-index.md")]
pub mod guide {
    #[doc = include_str!("../docs/guide/01-goroutines.md")]
    pub mod goroutines {}
    #[doc = include_str!("../docs/guide/02-wait-group.md")]
    pub mod wait_group {}
    #[doc = include_str!("../docs/guide/03-channels.md")]
    pub mod channels {}
    #[doc = include_str!("../docs/guide/04-buffered.md")]
    pub mod buffered {}
    #[doc = include_str!("../docs/guide/05-directions.md")]
    pub mod directions {}
    #[doc = include_str!("../docs/guide/06-select.md")]
    pub mod select {}
    #[doc = include_str!("../docs/guide/07-fan-out-fan-in.md")]
    pub mod fan_out_fan_in {}
    #[doc = include_str!("../docs/guide/08-pipelines.md")]
    pub mod pipelines {}
    #[doc = include_str!("../docs/guide/09-worker-pools.md")]
    pub mod worker_pools {}
    #[doc = include_str!("../docs/guide/10-context.md")]
    pub mod context {}
    #[doc = include_str!("../docs/guide/11-common-mistakes.md")]
    pub mod common_mistakes {}
    #[doc = include_str!("../docs/guide/12-real-world.md")]
    pub mod real_world {}
    #[doc = include_str!("../docs/guide/13-choosing.md")]
    pub mod choosing {}
}

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
