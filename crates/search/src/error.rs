//! Errors: building a search (pattern, globs) and searching one file.

use std::io;

/// Why a [`Search`](super::Search) could not be built.
///
/// ```
/// use weft_search::{BuildError, Search};
/// let err = Search::builder("(unclosed").build().unwrap_err();
/// assert!(matches!(err, BuildError::Pattern { ref pattern, .. } if pattern == "(unclosed"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The pattern is not a valid regular expression (or cannot be searched line by line).
    #[error("invalid pattern {pattern:?}")]
    Pattern {
        /// The pattern, handed back.
        pattern: String,
        /// What the regex compiler said.
        #[source]
        source: grep_regex::Error,
    },
    /// A `glob` is not a valid glob.
    #[error("invalid glob {glob:?}")]
    Glob {
        /// The glob, handed back.
        glob: String,
        /// What the glob compiler said.
        #[source]
        source: ignore::Error,
    },
}

/// Why one file (or directory) could not be searched. The search reports it with the path and
/// goes on with the other files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Listing a directory failed, a symbolic link points back to one of its ancestors (only
    /// when following links), or an ignore file could not be read.
    #[error("{0}")]
    Walk(#[source] ignore::Error),
    /// Opening or reading the file failed.
    #[error("{0}")]
    Read(#[source] io::Error),
}

impl FileError {
    /// The underlying I/O error, if there is one (for example to tell `NotFound` from
    /// `PermissionDenied`).
    ///
    /// ```
    /// use std::io;
    /// use weft_search::FileError;
    /// let err = FileError::Read(io::Error::from(io::ErrorKind::PermissionDenied));
    /// assert_eq!(err.io_error().map(io::Error::kind), Some(io::ErrorKind::PermissionDenied));
    /// ```
    #[must_use]
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            FileError::Walk(e) => e.io_error(),
            FileError::Read(e) => Some(e),
        }
    }
}
