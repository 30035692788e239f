//! A worker pool that is a `tower::Service`.
//!
//! This crate is being built; see the workspace README.
#![forbid(unsafe_code)]
