//! Stream-based pipelines for tokio: Go's pipeline and fan-out/fan-in patterns, with each
//! stage in its own task, bounded queues between stages, error policies, graceful shutdown
//! and counters that add up.
//!
//! ```
//! use weft_core::Context;
//! use weft_pipeline::{Pipeline, Stage};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let done = Pipeline::from_iter(1..=1000u64)          // generate
//!     .map(Stage::new("square").workers(4), |x| x * x) // parallel square, order kept
//!     .filter("odd", |x| x % 2 == 1)                   // filter
//!     .fold(Context::background(), 0, |a, x| a + x)   // sink
//!     .await?;
//! assert_eq!(done.output, (1..=1000u64).step_by(2).map(|x| x * x).sum::<u64>());
//! done.report.check()?; // received == emitted + filtered + failed + dropped + cancelled, everywhere
//! # Ok(())
//! # }
//! ```
//!
//! - Sources: [`Pipeline::from_iter`], [`Pipeline::from_stream`] (any `Stream`, including a
//!   weft or tokio channel receiver), [`Pipeline::generate`] (a closure with a context and a
//!   sender).
//! - Stages: [`map`](Pipeline::map), [`filter`](Pipeline::filter),
//!   [`filter_map`](Pipeline::filter_map), [`flat_map`](Pipeline::flat_map),
//!   [`try_map`](Pipeline::try_map), [`inspect`](Pipeline::inspect), async
//!   [`then`](Pipeline::then) / [`try_then`](Pipeline::try_then),
//!   [`batch`](Pipeline::batch), [`unbatch`](Pipeline::unbatch),
//!   [`throttle`](Pipeline::throttle); each configured by a [`Stage`] (name, workers, order,
//!   buffer, blocking threads, overflow, [`ErrorPolicy`]). A setting an operator has no use
//!   for (a blocking `then`, workers on `batch`) panics when the pipeline is built, as does a
//!   count of 0 (workers, buffer, chunk size, batch size, branches).
//! - Shutdown and panics use weft-core's words: [`Shutdown`] (`Abort` or `Drain { timeout }`)
//!   and [`Panicked`], re-exported here.
//! - Fan-out/fan-in: [`broadcast`](Pipeline::broadcast), [`partition`](Pipeline::partition),
//!   [`merge`](Pipeline::merge).
//! - Sinks: [`collect`](Pipeline::collect), [`fold`](Pipeline::fold),
//!   [`for_each`](Pipeline::for_each), [`into_channel`](Pipeline::into_channel),
//!   [`into_sink`](Pipeline::into_sink), [`into_stream`](Pipeline::into_stream).
//! - Every run returns a [`Report`]; [`Progress`] reads the same counters live.
//!
//! # Backpressure, batching, load shedding
//!
//! ```
//! use std::time::Duration;
//! use weft_core::Context;
//! use weft_pipeline::{Overflow, Pipeline, Stage};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Bounded buffers: the slow stage holds at most 8 waiting items; the source waits.
//! let done = Pipeline::from_iter(0..100u32)
//!     .chunk_size(4)
//!     .then(Stage::new("slow").buffer(8), |x| async move {
//!         tokio::time::sleep(Duration::from_millis(1)).await;
//!         x
//!     })
//!     .collect::<Vec<_>>(Context::background())
//!     .await?;
//! assert_eq!(done.output.len(), 100);
//! assert!(done.report.stage("slow").expect("listed").max_queue_depth <= 8);
//!
//! // Drop when full, with a counter: a slow consumer sheds load instead of slowing the source.
//! let done = Pipeline::from_iter(0..1000u32)
//!     .chunk_size(1)
//!     .then(Stage::new("slow").buffer(4).overflow(Overflow::DropNewest), |x| async move {
//!         tokio::time::sleep(Duration::from_millis(1)).await;
//!         x
//!     })
//!     .collect::<Vec<_>>(Context::background())
//!     .await?;
//! let slow = done.report.stage("slow").expect("listed");
//! assert!(slow.dropped > 0);
//! assert_eq!(slow.emitted + slow.dropped, 1000);
//! done.report.check()?;
//! # Ok(())
//! # }
//! ```
//!
//! Batching with a flush timer is [`Pipeline::batch`]; graceful shutdown with drain and timeout
//! is [`Pipeline::shutdown`]; the five error strategies are on [`Pipeline::try_map`].
//!
//! # Speed
//!
//! Items move between stages in chunks (a `Vec` per hand-off, by default 64 KiB worth of items,
//! see [`Pipeline::chunk_size`]), counters are updated once per chunk, panics are caught with
//! one `catch_unwind` per chunk, `map`, `filter` and `inspect` run a chunk as one tight loop
//! (filtering in place), and consecutive single-worker sync stages share one task (see
//! [`Pipeline`]): per-item costs are those of the user's closures. See `BENCHMARKS.md`
//! in the repository for figures against hand-wired tokio tasks and a single-task `StreamExt`
//! chain.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

// Public types, one file each.
mod emitter;
mod error;
mod finished;
mod pipeline;
pub mod policy;
pub mod report;
mod stage;
mod stream;

// Private machinery: the queue between stages, the counters, the run-time plumbing, and the
// operators (each adds its methods to `Pipeline`).
mod chan;
mod counters;
mod ops;
mod run;

pub use emitter::{Emitter, Stopped};
pub use error::{PipelineError, SinkClosed};
pub use finished::Finished;
pub use pipeline::Pipeline;
pub use policy::{Backoff, DeadLetter, ErrorPolicy, Overflow, Retry, StageFailure};
pub use report::{Progress, Report, StageReport, StopReason, Unbalanced};
pub use stage::{IntoStage, Stage};
pub use stream::PipelineStream;
/// The panic error all of weft shares, re-exported from weft-core.
pub use weft_core::Panicked;
/// The shutdown vocabulary all of weft shares, re-exported from weft-core.
pub use weft_core::Shutdown;
