//! Real programs built on weft, and the library APIs behind the `weft` command line.
#![forbid(unsafe_code)]
