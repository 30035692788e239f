//! Stream-based pipelines for tokio: each stage in its own task, bounded channels between stages.
//!
//! This crate is being built; see the workspace README.
#![forbid(unsafe_code)]
