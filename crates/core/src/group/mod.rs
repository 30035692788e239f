//! Waiting for groups of tasks: Go's `sync.WaitGroup` and golang.org/x/sync/errgroup, with
//! panics reported instead of lost.
//!
//! | Go | weft | built on |
//! |---|---|---|
//! | `sync.WaitGroup` | [`WaitGroup`]: `go`, `add` (a guard), `wait` | tokio-util's `TaskTracker` |
//! | `errgroup.Group`, `errgroup.WithContext` | [`ErrGroup`]: first error cancels a [`Context`](crate::context::Context) | tokio's `JoinSet` |
//! | `g.Go(f)` inside a task of `g` | [`ErrGroup::handle`] → [`ErrGroupHandle::go`] | |
//! | `g.SetLimit(n)`, `g.TryGo(f)` | [`ErrGroup::set_limit`], [`ErrGroup::try_go`] (hands the future back) | tokio's `Semaphore` |
//! | `context.Cause(ctx)` after a failure | the failure: a [`Panicked`](crate::Panicked), a shared error value, or its text (see [`ErrGroup::with_context`]) | |
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
//! # Differences from Go, and why
//!
//! - **Panics are failures, not crashes.** A panicking task ends only itself: `WaitGroup::wait`
//!   reports it ([`PanicError`]), and an `ErrGroup` or `ResultGroup` returns it as
//!   [`GroupError::Panicked`] and cancels its context with it, after every task has ended.
//! - **`WaitGroup` has no counter to misuse.** `Add` is a guard ([`WaitGroup::add`]) whose drop
//!   is `Done`, so it is never forgotten, doubled or negative, and a copy is the same group.
//! - **Dropping an `ErrGroup` or `ResultGroup` aborts its tasks** (at their next `.await`) and
//!   cancels its context; Go has no way to drop a group, and its goroutines run on. A
//!   `WaitGroup` detaches instead, as Go's does.
//! - **`go` is `async` and waits for a slot under the limit**, as Go's `g.Go` blocks: await
//!   it. From inside the group's own tasks, spawn through an [`ErrGroupHandle`] (Go needs no
//!   handle, since a `*Group` is shared freely). As in Go, a task waiting in `go` holds its own
//!   slot meanwhile.
//! - **The context's cause is the failure value only where Rust can share it.** Go's
//!   `context.Cause` returns the very error. Here `wait` returns the error by value, so the
//!   context keeps the same value only for a panic ([`Panicked`](crate::Panicked)) and for an
//!   error type that is shared (`Arc<dyn Error + Send + Sync>`, or a
//!   [`Cause`](crate::context::Cause)); for other types it keeps the error's text.
//! - **`try_go` hands the future back** ([`TryGoError::into_inner`]) instead of dropping it,
//!   and [`ErrGroup::wait_all`] returns every failure, which Go's errgroup does not.
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

pub use err_group::{ErrGroup, ErrGroupHandle};
pub use error::{GroupError, PanicError, TryGoError};
pub use result_group::ResultGroup;
pub use wait_group::{Wait, WaitGroup, WaitGuard};
