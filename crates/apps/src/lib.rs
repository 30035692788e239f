//! Real programs built on weft, and the library APIs behind the `weft` command line.
//!
//! Each subcommand of `weft` is a thin layer (in the binary) over a module here, so the same
//! work can be driven from Rust code under a [`weft_core::Context`].
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod crawl;
pub mod download;
pub mod logs;
pub mod search;
pub mod serve;
pub mod shutdown;
