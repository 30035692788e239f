//! Go's `select` with `tokio::select!`, and the fan-in / fan-out helpers built on channels.
//!
//! # Go's select patterns in tokio
//!
//! `tokio::select!` is Go's `select`: it waits on several operations and runs the branch of the
//! first that completes, dropping the others. That drop is why weft's receives are cancel safe
//! (see [`chan`](crate::chan#cancel-safety)): a `recv` that loses the race never took a value.
//!
//! | Go | tokio |
//! |---|---|
//! | random choice among ready cases | the default: `select!` starts at a random branch |
//! | (no equivalent) priority | `biased;` as the first line: branches are tried in order |
//! | `case <-time.After(d):` | a branch on `tokio::time::sleep(d)` (or [`Receiver::recv_timeout`](crate::chan::Receiver::recv_timeout)) |
//! | `default:` (non-blocking) | [`try_recv`](crate::chan::Receiver::try_recv) / [`try_send`](crate::chan::Sender::try_send), or `biased;` with a last branch on `std::future::ready(())` |
//! | a nil channel disables its case | a precondition `, if cond`, or an `Option<Receiver<T>>` |
//! | `case <-ctx.Done():` | a branch on [`ctx.done()`](crate::context::Context::done) |
//! | `for { select { ... } }` with a closed-channel check | `Some(v) = rx.recv()` patterns: a branch whose pattern fails is disabled |
//!
//! ## Random choice among ready cases
//!
//! ```
//! use weft_core::chan;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (tx1, rx1) = chan::bounded(1000);
//! let (tx2, rx2) = chan::bounded(1000);
//! for _ in 0..1000 {
//!     tx1.try_send(1).unwrap();
//!     tx2.try_send(2).unwrap();
//! }
//! let (mut ones, mut twos) = (0, 0);
//! for _ in 0..1000 {
//!     // Both cases are ready every time; like Go, select picks one at random.
//!     tokio::select! {
//!         Some(_) = rx1.recv() => ones += 1,
//!         Some(_) = rx2.recv() => twos += 1,
//!     }
//! }
//! assert!(ones > 0 && twos > 0, "both cases were chosen: {ones} vs {twos}");
//! assert_eq!(rx1.len() + rx2.len(), 1000, "exactly one value taken per select");
//! # }
//! ```
//!
//! ## Priority with `biased;`
//!
//! Go has no priority select (the usual workaround is a nested select). In tokio, `biased;`
//! tries branches top to bottom: here, urgent values always go first.
//!
//! ```
//! use weft_core::chan;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (urgent_tx, urgent) = chan::bounded(8);
//! let (normal_tx, normal) = chan::bounded(8);
//! for i in 0..3 {
//!     normal_tx.try_send(format!("normal {i}")).unwrap();
//!     urgent_tx.try_send(format!("urgent {i}")).unwrap();
//! }
//! let mut order = Vec::new();
//! for _ in 0..6 {
//!     tokio::select! {
//!         biased;
//!         Some(v) = urgent.recv() => order.push(v),
//!         Some(v) = normal.recv() => order.push(v),
//!     }
//! }
//! assert!(order[..3].iter().all(|v| v.starts_with("urgent")));
//! assert!(order[3..].iter().all(|v| v.starts_with("normal")));
//! # }
//! ```
//!
//! ## Timeouts
//!
//! Go's `case <-time.After(d)`. A timer per `select!` (created inside it) times out each wait;
//! one created before the loop (`let deadline = sleep(d); tokio::pin!(deadline);`) bounds the
//! whole loop.
//!
//! ```
//! use std::time::Duration;
//! use weft_core::chan;
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (_tx, rx) = chan::rendezvous::<String>();
//! let outcome = tokio::select! {
//!     Some(v) = rx.recv() => v,
//!     _ = tokio::time::sleep(Duration::from_secs(1)) => "timed out".to_string(),
//! };
//! assert_eq!(outcome, "timed out");
//! # }
//! ```
//!
//! ## Non-blocking operations (Go's `default:`)
//!
//! `try_recv` and `try_send` are the one-case forms. For several cases, `biased;` with a last
//! branch that is always ready acts as `default`. (tokio's `else` branch is *not* Go's
//! `default`: it runs only when every branch is disabled.)
//!
//! ```
//! use weft_core::chan::{self, TryRecvError};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (tx, rx) = chan::bounded::<u32>(1);
//! assert_eq!(rx.try_recv(), Err(TryRecvError::Empty)); // select { case v := <-ch: default: }
//!
//! let got = tokio::select! {
//!     biased;
//!     Some(v) = rx.recv() => Some(v),
//!     () = std::future::ready(()) => None, // default:
//! };
//! assert_eq!(got, None);
//! tx.try_send(7).unwrap();
//! let got = tokio::select! {
//!     biased;
//!     Some(v) = rx.recv() => Some(v),
//!     () = std::future::ready(()) => None,
//! };
//! assert_eq!(got, Some(7));
//! # }
//! ```
//!
//! ## Disabling a case (Go's nil channel)
//!
//! In Go, setting a channel variable to `nil` turns its case off, typically once it is closed.
//! In tokio a branch is off when its precondition is false, or (for one `select!`) when its
//! pattern does not match. Keep an `Option<Receiver<T>>` and a precondition:
//!
//! ```
//! use weft_core::chan;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (a_tx, a) = chan::bounded(4);
//! let (b_tx, b) = chan::bounded(4);
//! a_tx.try_send(1).unwrap();
//! drop(a_tx); // `a` closes after one value
//! b_tx.try_send(10).unwrap();
//! b_tx.try_send(20).unwrap();
//! drop(b_tx);
//!
//! let (mut a, mut b) = (Some(a), Some(b));
//! let mut sum = 0;
//! while a.is_some() || b.is_some() {
//!     tokio::select! {
//!         v = async { a.as_ref().unwrap().recv().await }, if a.is_some() => match v {
//!             Some(v) => sum += v,
//!             None => a = None, // closed: disable this case, like `a = nil` in Go
//!         },
//!         v = async { b.as_ref().unwrap().recv().await }, if b.is_some() => match v {
//!             Some(v) => sum += v,
//!             None => b = None,
//!         },
//!     }
//! }
//! assert_eq!(sum, 31);
//! # }
//! ```
//!
//! (When both inputs should simply be merged, [`merge`] does this for any number of them.)
//!
//! ## Cancellation with a context
//!
//! ```
//! use weft_core::{chan, context::Context};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (ctx, cancel) = Context::background().with_cancel();
//! let (_tx, rx) = chan::bounded::<u32>(1);
//! cancel.cancel();
//! let stopped = tokio::select! {
//!     _ = ctx.done() => true,
//!     Some(_) = rx.recv() => false,
//! };
//! assert!(stopped);
//! # }
//! ```
//!
//! # Fan-in and fan-out
//!
//! - [`merge`]: many receivers into one stream that ends when all inputs end (fan-in).
//! - [`tee`]: every value to each of `n` outputs.
//! - [`or_done`]: a stream that also ends when a context is done.
//! - [`fan_out::round_robin`] and [`fan_out::shared`]: distribute values to `n` workers, in
//!   turn or to whoever is free.
//!
//! The helpers that spawn a task ([`tee`], [`fan_out::round_robin`]) take a
//! [`Context`](crate::context::Context) and stop when it is done, as Go's versions take a
//! `done` channel; counts are [`NonZeroUsize`](std::num::NonZeroUsize), as a limit is
//! everywhere in weft, so "no outputs" cannot be asked for by mistake.

pub mod fan_out;
mod merge;
mod or_done;
mod tee;

pub use merge::{Merge, merge};
pub use or_done::{OrDone, or_done};
pub use tee::tee;
