//! What the search yields: one [`FileResult`] per file with matches or an error.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::FileError;

/// How much the search records for each file. Less is faster: [`Report::Count`] skips the line
/// bytes and match positions, [`Report::Files`] stops reading a file at its first match.
///
/// ```
/// use futures::StreamExt;
/// use weft_search::{Report, Search};
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.txt"), "x\nx\ny\n")?;
/// let search = Search::builder("x").report(Report::Count).build()?;
/// let files: Vec<_> = search.run(&Context::background(), [dir.path()]).collect().await;
/// assert_eq!(files[0].match_count(), 2);
/// assert_eq!(files[0].lines().len(), 0); // counted, not kept
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Report {
    /// Every matching line, its number, its offset and the byte ranges of the matches in it.
    #[default]
    Lines,
    /// Only the number of matching lines per file (`grep -c`).
    Count,
    /// Only whether a file matches (`grep -l`); its count is 1 when it does.
    Files,
}

/// One matching line, borrowed from its [`FileResult`].
///
/// ```
/// use futures::StreamExt;
/// use weft_search::Search;
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.txt"), "skip\nto be or not to be\n")?;
/// let search = Search::new(r"\bbe\b")?;
/// let files: Vec<_> = search.run(&Context::background(), [dir.path()]).collect().await;
/// let line = files[0].lines().next().expect("line 2 matches");
/// assert_eq!((line.number(), line.byte_offset()), (2, 5));
/// assert_eq!(line.bytes(), b"to be or not to be");
/// assert_eq!(line.matches(), [3..5, 16..18]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    number: u64,
    offset: u64,
    bytes: &'a [u8],
    matches: &'a [Range<usize>],
}

impl<'a> Line<'a> {
    /// The 1-based line number.
    #[must_use]
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The byte offset of the start of the line in the file.
    #[must_use]
    pub fn byte_offset(&self) -> u64 {
        self.offset
    }

    /// The line's bytes, without its `\n` terminator (a `\r` before it is kept, as grep does).
    /// Not necessarily UTF-8.
    #[must_use]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The byte ranges of the matches within [`bytes`](Line::bytes), in order.
    #[must_use]
    pub fn matches(&self) -> &'a [Range<usize>] {
        self.matches
    }
}

#[derive(Debug, Clone)]
struct LineRecord {
    number: u64,
    offset: u64,
    text: Range<usize>,
    spans: Range<usize>,
}

/// The outcome of searching one file: its matching lines, or the error that stopped it.
///
/// All lines are kept in one buffer (and all match ranges in one vector), so a file costs a
/// handful of allocations however many lines match.
///
/// ```
/// use futures::StreamExt;
/// use weft_search::Search;
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.txt"), "needle\nhay\nneedle\n")?;
/// let missing = dir.path().join("missing.txt");
/// let search = Search::builder("needle").sort_by_path(true).build()?;
/// let files: Vec<_> = search
///     .run(&Context::background(), [dir.path().join("a.txt"), missing.clone()])
///     .collect()
///     .await;
/// assert!(files[0].is_match() && files[0].error().is_none());
/// assert_eq!(files[0].match_count(), 2);
/// assert_eq!(files[1].path(), missing);
/// assert!(!files[1].is_match() && files[1].error().is_some());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FileResult {
    path: PathBuf,
    count: u64,
    buf: Vec<u8>,
    lines: Vec<LineRecord>,
    spans: Vec<Range<usize>>,
    error: Option<FileError>,
}

impl FileResult {
    pub(super) fn new(path: PathBuf) -> FileResult {
        FileResult {
            path,
            count: 0,
            buf: Vec::new(),
            lines: Vec::new(),
            spans: Vec::new(),
            error: None,
        }
    }

    pub(super) fn failed(path: PathBuf, error: FileError) -> FileResult {
        FileResult {
            error: Some(error),
            ..FileResult::new(path)
        }
    }

    /// Records a matching line; `find` pushes the match ranges (relative to `line`).
    pub(super) fn push_line(
        &mut self,
        number: u64,
        offset: u64,
        line: &[u8],
        find: impl FnOnce(&[u8], &mut Vec<Range<usize>>),
    ) {
        let start = self.buf.len();
        self.buf.extend_from_slice(line);
        let span_start = self.spans.len();
        find(line, &mut self.spans);
        self.lines.push(LineRecord {
            number,
            offset,
            text: start..self.buf.len(),
            spans: span_start..self.spans.len(),
        });
    }

    pub(super) fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    pub(super) fn add_count(&mut self, n: u64) {
        self.count += n;
    }

    /// Forgets the matches (the file turned out to be binary).
    pub(super) fn clear(&mut self) {
        self.count = 0;
        self.buf = Vec::new();
        self.lines = Vec::new();
        self.spans = Vec::new();
    }

    /// The path of the file, as the walk found it (below one of the paths given to the search).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of matching lines (with [`Report::Files`]: 1 if the file matches).
    #[must_use]
    pub fn match_count(&self) -> u64 {
        self.count
    }

    /// Whether the file matched.
    #[must_use]
    pub fn is_match(&self) -> bool {
        self.count > 0
    }

    /// The matching lines in file order (empty unless the search reports [`Report::Lines`]).
    pub fn lines(&self) -> impl ExactSizeIterator<Item = Line<'_>> + '_ {
        self.lines.iter().map(|r| Line {
            number: r.number,
            offset: r.offset,
            bytes: &self.buf[r.text.clone()],
            matches: &self.spans[r.spans.clone()],
        })
    }

    /// The error that stopped the search of this file, if any. Lines found before a read
    /// error are kept.
    #[must_use]
    pub fn error(&self) -> Option<&FileError> {
        self.error.as_ref()
    }

    /// Takes the error out, for callers that want to own it.
    pub fn take_error(&mut self) -> Option<FileError> {
        self.error.take()
    }

    pub(super) fn set_error(&mut self, error: FileError) {
        self.error = Some(error);
    }

    /// Whether there is anything to report (a match or an error).
    pub(super) fn is_reportable(&self) -> bool {
        self.count > 0 || self.error.is_some()
    }
}

/// Counters of a running search, read with [`SearchStream::stats`](super::SearchStream::stats).
/// Binary files and unreadable files are among the searched ones; `errors` also counts walk
/// errors (unreadable directories, link loops), which are not files.
///
/// ```
/// use futures::StreamExt;
/// use weft_search::Search;
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("text.txt"), "needle\n")?;
/// std::fs::write(dir.path().join("blob.bin"), b"needle\0")?;
/// let mut stream = Search::new("needle")?.run(&Context::background(), [dir.path()]);
/// while stream.next().await.is_some() {}
/// let stats = stream.stats();
/// assert_eq!((stats.files_searched, stats.files_matched, stats.binary_skipped), (2, 1, 1));
/// assert_eq!(stats.to_string(), "2 files searched, 1 matched, 1 binary skipped, 0 errors");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SearchStats {
    /// Files whose search was attempted (matching or not, binary or unreadable ones included).
    pub files_searched: u64,
    /// Files with at least one match (binary ones excluded).
    pub files_matched: u64,
    /// Files skipped because they contain a NUL byte.
    pub binary_skipped: u64,
    /// Files and directories that could not be read.
    pub errors: u64,
}

impl fmt::Display for SearchStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} files searched, {} matched, {} binary skipped, {} errors",
            self.files_searched, self.files_matched, self.binary_skipped, self.errors
        )
    }
}

/// The shared counters behind [`SearchStats`]. Relaxed: they are statistics read after the
/// fact, ordered by nothing but themselves.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) searched: AtomicU64,
    pub(super) matched: AtomicU64,
    pub(super) binary: AtomicU64,
    pub(super) errors: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> SearchStats {
        SearchStats {
            files_searched: self.searched.load(Ordering::Relaxed),
            files_matched: self.matched.load(Ordering::Relaxed),
            binary_skipped: self.binary.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
