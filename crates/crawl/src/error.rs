//! Errors that stop a crawl from starting.

/// Why a crawl could not start. Errors of single pages are [`PageError`](super::PageError)s in
/// the output instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrawlError {
    /// No seed URL was given.
    #[error("no seed urls")]
    NoSeeds,
    /// A seed is not an absolute http(s) URL; the seed is handed back.
    #[error("invalid seed url {seed:?}: {reason}")]
    InvalidSeed {
        /// The seed as given.
        seed: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the http client")]
    Client(#[source] reqwest::Error),
    /// A CSS selector (of an extracted field, `follow` or a handler) does not parse.
    #[error("invalid css selector {selector:?}")]
    Selector {
        /// The selector as given.
        selector: String,
        /// What the parser found wrong.
        #[source]
        source: scraper::error::SelectorErrorKind,
    },
    /// The save directory or its index cannot be opened.
    #[error("cannot use the save directory {}", dir.display())]
    Save {
        /// The directory.
        dir: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An extracted field is not `NAME=SELECTOR[@ATTR]` with a free name.
    #[error("invalid field {spec:?}: {reason}")]
    Extract {
        /// The field as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}
