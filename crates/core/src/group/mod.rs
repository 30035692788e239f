//! Waiting for groups of tasks: Go's `sync.WaitGroup` and golang.org/x/sync/errgroup, with
//! panics reported instead of lost.
//!
//! | Go | weft | built on |
//! |---|---|---|
//! | `sync.WaitGroup` | [`WaitGroup`]: `go`, `add` (a guard), `wait` | tokio-util's `TaskTracker` |
//! | `errgroup.Group`, `errgroup.WithContext` | [`ErrGroup`]: first error cancels a [`Context`](crate::context::Context) | tokio's `JoinSet` |
//! | `g.SetLimit(n)`, `g.TryGo(f)` | [`ErrGroup::set_limit`], [`ErrGroup::try_go`] (hands the future back) | tokio's `Semaphore` |
//! | (none; a multi-error by hand) | [`ErrGroup::wait_all`]: every error | |
//! | sourcegraph/conc `ResultErrorPool` | [`ResultGroup`]: outputs in submission order | |
//!
//! Which one to use:
//!
//! - Fire-and-track tasks returning `()`, or work started elsewhere (threads, callbacks):
//!   [`WaitGroup`]. Detached tasks, a counter, `&self` everywhere, reusable.
//! - Fallible tasks where one failure should stop the rest: [`ErrGroup`]. Owned tasks
//!   (aborted when the group is dropped).
//! - Fallible tasks that produce values: [`ResultGroup`].
//!
//! # Examples
//!
//! ```
//! use weft_core::context::Context;
//! use weft_core::group::{ErrGroup, WaitGroup};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let wg = WaitGroup::new();
//! wg.go(async { /* fire and track */ });
//! wg.wait().await.unwrap();
//!
//! let (mut group, ctx) = ErrGroup::with_context(&Context::background());
//! group.go(async { Err::<(), _>("fetch failed") }).await;
//! assert!(group.wait().await.is_err());
//! assert!(ctx.is_done());
//! # }
//! ```

mod core;
mod err_group;
mod error;
mod result_group;
mod wait_group;

pub use err_group::ErrGroup;
pub use error::{GroupError, PanicError, TryGoError};
pub use result_group::ResultGroup;
pub use wait_group::{Wait, WaitGroup, WaitGuard};
