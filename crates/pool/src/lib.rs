//! A worker pool that is a `tower::Service`: priorities with aging, backpressure, per-job
//! Contexts, timeouts, panic isolation with blacklisting, cancellation, resizing and metrics.
//!
//! Go's pools (ants, pond, conc, errgroup) each answer part of the questions a worker pool
//! raises; tower has no pool, and a panic kills a `Buffer`'s worker. [`Pool`] answers them in
//! one type:
//!
//! - **Handler**: any `tower::Service<Req>` cloned per worker ([`Builder::build`]), a
//!   `Service<WithContext<Req>>` that receives each job's [`Context`](weft_core::Context)
//!   ([`Builder::build_with_context`]), or an async closure `|ctx, req| async { .. }`
//!   ([`Builder::build_fn`]).
//! - **A `tower::Service` itself**: `poll_ready` reserves queue room, `call` enqueues, so a pool
//!   composes with `ServiceBuilder` (timeout, retry, rate limit), [`PoolLayer`] and axum.
//! - **Submission**: [`Pool::submit`] (waits for room), [`Pool::submit_at`] (a [`Priority`]),
//!   [`Pool::try_submit`] (hands the job back when full); each gives a [`JobHandle`] to await
//!   or cancel; [`Pool::cancel`] cancels by [`JobId`]. For jobs nobody awaits,
//!   [`Pool::submit_detached`] / [`Pool::submit_detached_at`] give no handle and create no
//!   result cell (only the id). In bulk, [`Pool::submit_many`] (one queue lock per chunk of
//!   jobs) and [`Pool::submit_many_detached`] (the same without handles: the fastest way to
//!   feed a pool).
//! - **Priorities**: a [`Priority`] is a level, higher runs first; strict between levels,
//!   FIFO within a level, with aging so low levels cannot starve ([`Builder::aging`]).
//! - **Failures**: a panic resolves [`JobError::Panicked`] (carrying
//!   [`weft_core::Panicked`]) and the worker keeps serving; keys
//!   that keep panicking are [`Blacklist`]ed; [`Builder::timeout`] resolves
//!   [`JobError::TimedOut`] and cancels the job's Context.
//! - **Size**: fixed, or `min..=max` scaling up on queue depth and down on idleness;
//!   [`Pool::resize`] at run time.
//! - **Shutdown**: [`Pool::shutdown`] takes weft-core's [`Shutdown`]: it drains (with a
//!   timeout) or aborts; every submitted job
//!   ends in exactly one [`Outcome`], and [`Pool::stats`] counts them (they add up), with
//!   queue-wait and run-time percentiles. Each job runs in a `tracing` span `job{id, priority}`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use weft_pool::{JobError, Outcome, Panicked, Pool, Priority, Shutdown};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let pool = Pool::builder()
//!     .workers(2)
//!     .priorities(2)
//!     .timeout(Duration::from_secs(1))
//!     .build_fn(|ctx, job: &'static str| async move {
//!         match job {
//!             "panic" => panic!("bad input"),
//!             "slow" => {
//!                 ctx.done().await; // the job's Context ends at its timeout
//!                 Ok(0)
//!             }
//!             "fail" => Err("nope"),
//!             s => Ok(s.len()),
//!         }
//!     });
//!
//! let ok = pool.submit_at(Priority::new(1), "hello").await.unwrap();
//! let panicked = pool.submit("panic").await.unwrap();
//! let slow = pool.submit("slow").await.unwrap();
//! let failed = pool.submit("fail").await.unwrap();
//! assert_eq!(ok.await, Ok(5));
//! assert_eq!(panicked.await, Err(JobError::Panicked(Panicked::new("bad input"))));
//! assert_eq!(slow.await, Err(JobError::TimedOut));
//! assert_eq!(failed.await, Err(JobError::Failed("nope")));
//!
//! let stats = pool.shutdown(Shutdown::Abort).await;
//! assert_eq!(stats.workers, 0);
//! assert_eq!(stats.count(Outcome::Panicked), 1);
//! assert_eq!(stats.submitted, stats.finished());
//! # }
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod builder;
mod clock;
mod config;
mod error;
mod future;
mod handler;
mod job;
mod layer;
mod loom;
mod pool;
mod priority;
mod sched;
mod service;
mod stats;
mod worker;

pub use builder::Builder;
pub use config::{Blacklist, PanicPolicy};
pub use error::{JobError, Outcome, SubmitError, TrySubmitError};
pub use future::ResponseFuture;
pub use handler::WithContext;
pub use job::{JobHandle, JobId};
pub use layer::PoolLayer;
pub use pool::Pool;
pub use priority::Priority;
pub use stats::{Latency, Stats};
/// What [`JobError::Panicked`] carries: weft-core's `Panicked`,
/// re-exported.
pub use weft_core::Panicked;
/// How [`Pool::shutdown`] ends the pool: weft-core's `Shutdown`,
/// re-exported (`Drain { timeout }` or `Abort`, the words weft-pipeline uses too).
pub use weft_core::Shutdown;

/// Locks a mutex, ignoring poison: no code here panics while holding one of our locks, and
/// user code never runs under them.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
