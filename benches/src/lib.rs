//! Criterion benchmarks of weft against its peers; see `benches/benches/*.rs` and BENCHMARKS.md.
//!
//! This crate is not published. Run everything with `cargo bench -p weft-benches`, or one file with
//! `cargo bench -p weft-benches --bench NAME`.
