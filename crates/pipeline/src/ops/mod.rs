//! The operators, one file each, as futures-util lays out its adapters: each file adds its
//! methods to [`Pipeline`](crate::Pipeline) in an `impl` block of its own and holds the loop
//! its stage task runs.

mod batch;
mod fan_out;
mod merge;
pub(crate) mod retry;
mod sink;
mod source;
mod sync;
mod then;
mod throttle;
