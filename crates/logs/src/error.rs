//! Errors of the log analyzer.

use std::io;

/// Why an analysis could not run or had to stop.
///
/// An unreadable input is an error only with [`Options::strict`](super::Options::strict);
/// otherwise it is listed in the report ([`InputSummary::error`](super::InputSummary::error))
/// and the analysis goes on.
///
/// ```
/// use weft_logs::{LogsError, Options};
/// let mut options = Options::default();
/// options.path_regex = Some("(unclosed".into());
/// let err = options.validate().unwrap_err();
/// assert!(matches!(err, LogsError::Regex(_)));
/// assert!(err.to_string().starts_with("invalid --path-regex"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogsError {
    /// An input could not be opened or read (only with `strict`).
    #[error("cannot read {name}")]
    Read {
        /// The input's name (its path, or `-` for stdin).
        name: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The path regex does not compile.
    #[error("invalid --path-regex")]
    Regex(#[from] regex::Error),
    /// An option value is out of range or unreadable.
    #[error("{0}")]
    InvalidArgument(String),
    /// A custom log format string does not compile (the error points at the token).
    #[error(transparent)]
    Format(#[from] super::FormatError),
    /// A parse worker panicked (a bug in the analyzer).
    #[error("a log analysis worker failed")]
    Worker,
}
