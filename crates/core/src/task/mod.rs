//! Tasks that never fail silently: panic-safe spawn (Go's "SafeGo") and a [`Supervisor`]
//! that restarts a long-running task with backoff.
//!
//! | Go | weft |
//! |---|---|
//! | `go func() { defer func() { if r := recover(); r != nil { log... } }() ... }()` | [`spawn_named(name, fut)`](spawn_named) |
//! | a `for { run(); time.Sleep(backoff) }` restart loop | [`Supervisor`] |
//!
//! In Go, a panic in a goroutine kills the whole program unless every goroutine defers a
//! `recover`. tokio already isolates a task's panic, but its [`JoinHandle`](tokio::task::JoinHandle)
//! hands back an opaque [`JoinError`](tokio::task::JoinError) whose payload must be
//! downcast by hand, and a detached task's panic only reaches stderr. [`spawn_named`] logs
//! the panic through `tracing` with the task's name, and its [`TaskHandle`] resolves to a
//! [`TaskError`] that reads `Panicked(`[`Panicked`]`)` or `Cancelled`.
//!
//! # Examples
//!
//! ```
//! use weft_core::task::{self, TaskError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let handle = task::spawn_named("checksum", async {
//!     let data: Vec<u8> = Vec::new();
//!     data[0] // index out of bounds: panics
//! });
//! match handle.await {
//!     Err(TaskError::Panicked(p)) => assert!(p.message().contains("out of bounds")),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # }
//! ```

mod panic;
mod spawn;
mod supervisor;

pub use panic::Panicked;
pub(crate) use panic::catch_panic;
pub use spawn::{TaskError, TaskHandle, spawn, spawn_named};
pub use supervisor::{Failure, Restart, Supervisor, SupervisorExit, SupervisorHandle};
