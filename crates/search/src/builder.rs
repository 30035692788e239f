//! [`SearchBuilder`] (options) and [`Search`] (a compiled search, run many times).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, SearcherBuilder};
use ignore::WalkBuilder;
use ignore::overrides::{Override, OverrideBuilder};
use tokio::sync::mpsc;
use weft_core::context::Context;

use super::error::{BuildError, FileError};
use super::result::{Counters, FileResult, Report};
use super::stream::{Inner, SearchStream};
use super::worker::{self, Shared};

/// Options of a search; [`build`](SearchBuilder::build) compiles them into a [`Search`].
///
/// ```
/// use weft_search::{Report, Search};
/// let search = Search::builder("todo")
///     .case_insensitive(true)
///     .word(true)
///     .glob("*.rs")
///     .report(Report::Count)
///     .build()?;
/// # let _ = search;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SearchBuilder {
    pattern: String,
    case_insensitive: bool,
    fixed_strings: bool,
    word: bool,
    hidden: bool,
    ignore_files: bool,
    follow_links: bool,
    globs: Vec<String>,
    sort_by_path: bool,
    threads: Option<NonZeroUsize>,
    report: Report,
    match_ranges: bool,
}

impl SearchBuilder {
    fn new(pattern: impl Into<String>) -> SearchBuilder {
        SearchBuilder {
            pattern: pattern.into(),
            case_insensitive: false,
            fixed_strings: false,
            word: false,
            hidden: false,
            ignore_files: true,
            follow_links: false,
            globs: Vec::new(),
            sort_by_path: false,
            threads: None,
            report: Report::Lines,
            match_ranges: true,
        }
    }

    /// Match letters regardless of case (`grep -i`). By default, this is disabled.
    pub fn case_insensitive(&mut self, yes: bool) -> &mut SearchBuilder {
        self.case_insensitive = yes;
        self
    }

    /// Treat the pattern as a literal string, not a regex (`grep -F`). By default, this is
    /// disabled.
    pub fn fixed_strings(&mut self, yes: bool) -> &mut SearchBuilder {
        self.fixed_strings = yes;
        self
    }

    /// Only match whole words: a match must not have a word character right before or after
    /// it (`grep -w`). By default, this is disabled.
    pub fn word(&mut self, yes: bool) -> &mut SearchBuilder {
        self.word = yes;
        self
    }

    /// Also search hidden files and directories (names starting with `.`). By default, this is
    /// disabled: they are skipped, as ripgrep does.
    pub fn hidden(&mut self, yes: bool) -> &mut SearchBuilder {
        self.hidden = yes;
        self
    }

    /// Respect ignore files: `.gitignore` (inside a git repository, as git and ripgrep do),
    /// `.git/info/exclude`, the global git excludes file, and `.ignore` files anywhere. By
    /// default, this is enabled.
    pub fn ignore_files(&mut self, yes: bool) -> &mut SearchBuilder {
        self.ignore_files = yes;
        self
    }

    /// Follow symbolic links while walking. A link back to one of its ancestor directories is
    /// reported as an error for that path, not followed forever. By default, this is disabled:
    /// links found while walking are skipped, and only paths given to [`Search::run`] are
    /// followed.
    pub fn follow_links(&mut self, yes: bool) -> &mut SearchBuilder {
        self.follow_links = yes;
        self
    }

    /// Adds a glob that paths must match to be searched, or with a leading `!`, must not match
    /// (ripgrep's `--glob`, with gitignore syntax). Globs are matched against paths relative
    /// to the current directory; they override ignore files. By default, there are none.
    pub fn glob(&mut self, glob: impl Into<String>) -> &mut SearchBuilder {
        self.globs.push(glob.into());
        self
    }

    /// Yield results in path order (files in each directory by name, depth first), while
    /// still searching files in parallel. By default, this is disabled: results come in the
    /// order files finish, which is faster.
    pub fn sort_by_path(&mut self, yes: bool) -> &mut SearchBuilder {
        self.sort_by_path = yes;
        self
    }

    /// How many threads search files. By default, the number of CPUs
    /// ([`std::thread::available_parallelism`]).
    pub fn threads(&mut self, threads: NonZeroUsize) -> &mut SearchBuilder {
        self.threads = Some(threads);
        self
    }

    /// What to record for each file. By default, [`Report::Lines`].
    pub fn report(&mut self, report: Report) -> &mut SearchBuilder {
        self.report = report;
        self
    }

    /// With [`Report::Lines`], also record where each match is within its line
    /// ([`Line::matches`](super::Line::matches)). That runs the regex a second time over each
    /// matching line; a caller that only prints whole lines (as `weft grep` does) can turn it
    /// off, and then `matches()` is empty. By default, this is enabled.
    pub fn match_ranges(&mut self, yes: bool) -> &mut SearchBuilder {
        self.match_ranges = yes;
        self
    }

    /// Compiles the pattern and globs.
    ///
    /// # Errors
    ///
    /// [`BuildError::Pattern`] for an invalid regex, [`BuildError::Glob`] for an invalid glob;
    /// both hand back the offending text.
    pub fn build(&self) -> Result<Search, BuildError> {
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(self.case_insensitive)
            .fixed_strings(self.fixed_strings)
            .word(self.word)
            // Matches never span lines: lets the searcher look for candidate lines fast.
            .line_terminator(Some(b'\n'))
            .build(&self.pattern)
            .map_err(|source| BuildError::Pattern {
                pattern: self.pattern.clone(),
                source,
            })?;
        let overrides = if self.globs.is_empty() {
            None
        } else {
            let root = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            let mut builder = OverrideBuilder::new(root);
            for glob in &self.globs {
                builder.add(glob).map_err(|source| BuildError::Glob {
                    glob: glob.clone(),
                    source,
                })?;
            }
            Some(builder.build().map_err(|source| BuildError::Glob {
                glob: self.globs.join(" "),
                source,
            })?)
        };
        let mut searcher = SearcherBuilder::new();
        searcher
            .line_number(self.report == Report::Lines)
            // A NUL byte marks a binary file: stop reading it and drop what it matched.
            .binary_detection(BinaryDetection::quit(b'\0'));
        let threads = self
            .threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get);
        Ok(Search {
            matcher,
            searcher,
            overrides,
            options: self.clone(),
            threads,
        })
    }
}

/// A compiled search: a pattern and options, ready to [`run`](Search::run) over file trees.
///
/// Cloning is cheap (the compiled regex is shared).
///
/// ```
/// use futures::StreamExt;
/// use weft_search::Search;
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("notes.txt"), "one fish\ntwo fish\nred\n")?;
/// let search = Search::builder(r"\w+ fish").sort_by_path(true).build()?;
/// let files: Vec<_> = search.run(&Context::background(), [dir.path()]).collect().await;
/// assert_eq!(files.len(), 1);
/// let lines: Vec<_> = files[0].lines().map(|l| (l.number(), l.bytes().to_vec())).collect();
/// assert_eq!(lines, [(1, b"one fish".to_vec()), (2, b"two fish".to_vec())]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Search {
    matcher: RegexMatcher,
    searcher: SearcherBuilder,
    overrides: Option<Override>,
    options: SearchBuilder,
    threads: usize,
}

impl Search {
    /// A search for `pattern` (a regex) with the default options.
    ///
    /// # Errors
    ///
    /// [`BuildError::Pattern`] if the pattern is not a valid regex.
    ///
    /// ```
    /// use weft_search::Search;
    /// assert!(Search::new(r"fn \w+").is_ok());
    /// assert!(Search::new(r"fn (").is_err());
    /// ```
    pub fn new(pattern: impl Into<String>) -> Result<Search, BuildError> {
        SearchBuilder::new(pattern).build()
    }

    /// Options for a search for `pattern`, to set before [`build`](SearchBuilder::build).
    pub fn builder(pattern: impl Into<String>) -> SearchBuilder {
        SearchBuilder::new(pattern)
    }

    /// Starts searching `paths` (files or directories; the current directory if empty) and
    /// returns the stream of per-file results.
    ///
    /// The work runs on its own OS threads (never on the async runtime's workers), started
    /// here: the files are fanned out over [`threads`](SearchBuilder::threads) searcher threads
    /// and their results fanned in through a bounded channel, so the search runs only as far
    /// ahead of the reader as that channel holds. It stops when `ctx` is done or the stream is
    /// dropped; see [`SearchStream`].
    ///
    /// Paths are yielded as the walk builds them: below each given path, joined to it.
    pub fn run<I>(&self, ctx: &Context, paths: I) -> SearchStream
    where
        I: IntoIterator,
        I::Item: AsRef<Path>,
    {
        let mut paths: Vec<PathBuf> = paths
            .into_iter()
            .map(|p| p.as_ref().to_path_buf())
            .collect();
        if paths.is_empty() {
            paths.push(PathBuf::from("."));
        }
        let walk = self.walk_builder(&paths);
        let shared = Arc::new(Shared {
            matcher: self.matcher.clone(),
            searcher: self.searcher.clone(),
            report: self.options.report,
            match_ranges: self.options.match_ranges,
            ctx: ctx.clone(),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let threads = self.threads;
        // Enough to keep every searcher busy while the reader prints a burst of results. (In
        // path order it counts chunks of up to 32 files.)
        let capacity = threads * 32;
        let (inner, spawned) = if self.options.sort_by_path {
            let (tx, rx) = mpsc::channel(capacity);
            let inner = Inner::Ordered {
                slots: rx,
                head: None,
                ready: Vec::new().into_iter(),
            };
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("weft-search-walk".into())
                .spawn(move || worker::run_ordered(walk.build(), &shared, &tx, threads));
            (inner, spawned)
        } else {
            let (tx, rx) = mpsc::channel(capacity);
            let inner = Inner::Unordered(rx);
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("weft-search-walk".into())
                .spawn(move || worker::run_unordered(walk.build_parallel(), &shared, &tx));
            (inner, spawned)
        };
        let mut stream = SearchStream::new(inner, shared);
        if let Err(err) = spawned {
            // Without a thread there is no search; say so instead of ending silently.
            stream.fail(FileResult::failed(PathBuf::new(), FileError::Read(err)));
        }
        stream
    }

    fn walk_builder(&self, paths: &[PathBuf]) -> WalkBuilder {
        let opts = &self.options;
        let mut walk = WalkBuilder::new(&paths[0]);
        for path in &paths[1..] {
            walk.add(path);
        }
        walk.hidden(!opts.hidden)
            .ignore(opts.ignore_files)
            .git_ignore(opts.ignore_files)
            .git_global(opts.ignore_files)
            .git_exclude(opts.ignore_files)
            .parents(opts.ignore_files)
            .follow_links(opts.follow_links)
            .threads(self.threads);
        if let Some(overrides) = &self.overrides {
            walk.overrides(overrides.clone());
        }
        if opts.sort_by_path {
            walk.sort_by_file_name(|a, b| a.cmp(b));
        }
        walk
    }
}
