//! Parallel file search (`weft grep`): Go's fan-out/fan-in file search, at ripgrep's speed.
//!
//! A [`Search`] walks file trees with the [`ignore`] crate (hidden files and `.gitignore` rules
//! respected by default, as ripgrep does), fans the files out over searcher threads that match
//! them with ripgrep's own [`grep_searcher`] and [`grep_regex`] crates (binary files skipped,
//! lines of any length), and fans the per-file results in to one [`SearchStream`]. The stream
//! is bounded (the search runs only a little ahead of its reader) and ends when the
//! [`Context`](weft_core::context::Context) given to [`Search::run`] is done.
//!
//! Compared with the Go example it comes from, errors are results rather than lost prints,
//! cancellation reaches the threads between files and between matches, the reader's pace
//! limits memory, and `sort_by_path` gives a deterministic order without giving up
//! parallelism.
//!
//! ```
//! use futures::StreamExt;
//! use weft_search::Search;
//! use weft_core::context::Context;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("main.rs"), "fn main() {\n    // TODO: all of it\n}\n")?;
//!
//! let search = Search::builder("todo").case_insensitive(true).build()?;
//! let mut results = search.run(&Context::background(), [dir.path()]);
//! let file = results.next().await.expect("one file matches");
//! let line = file.lines().next().expect("one line matches");
//! assert_eq!(file.path(), dir.path().join("main.rs"));
//! assert_eq!((line.number(), line.byte_offset()), (2, 12));
//! assert_eq!(&line.bytes()[line.matches()[0].clone()], b"TODO");
//! assert!(results.next().await.is_none());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod builder;
mod error;
mod result;
mod stream;
mod worker;

pub use builder::{Search, SearchBuilder};
pub use error::{BuildError, FileError};
pub use result::{FileResult, Line, Report, SearchStats};
pub use stream::SearchStream;
