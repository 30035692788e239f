//! A job as its submitter sees it: its [`JobId`], its [`JobHandle`], and the result [`Cell`]
//! the handle shares with the worker that runs it.

mod cell;
mod handle;
mod id;

pub(crate) use cell::{Cancel, Cell, StashFn};
pub(crate) use handle::CancelQueued;
pub use handle::JobHandle;
pub use id::JobId;
