//! The log analyzer behind `weft logs`: traffic, errors and latency percentiles from web server
//! and application logs, at hundreds of MB/s.
//!
//! # Shape
//!
//! Go's LogProcessor is six goroutine stages joined by unbuffered channels, one line per hand-off
//! (find files, read, parse, filter, analyze, report). Here the analysis is one
//! [`weft_pipeline`] run whose items are chunks of whole lines (2 MiB by default), so each
//! hand-off carries thousands of lines and the pipeline's cost per item is negligible:
//!
//! ```text
//! source (generator)          analyze (map, N blocking      sink (fold)          report
//!   find files, read,  ─chunk─> workers, unordered):  ─Stats─> absorb partial ──> build
//!   gunzip, detect format,      parse, filter, count            stats into the     (sorted,
//!   cut at the last newline     into a partial Stats            total              deterministic)
//!           ^                            │    ^                      │
//!           └──── emptied buffers ───────┘    └─── emptied Stats ────┘
//! ```
//!
//! - **find files + read** are the pipeline's source, a [`Pipeline::generate`] generator whose
//!   reader runs on a thread of its own (a blocking read, an idle stdin, must not hold a runtime
//!   worker): it walks the paths in name order, opens each input (gzip is recognised by its magic
//!   bytes), detects its format from its first lines, and emits large buffers cut after the last
//!   newline. Emitting waits while the `analyze` stage is busy (backpressure), and its queue holds
//!   one chunk per worker, so memory stays at a few buffers whatever the input size; buffers
//!   come back from the workers to be reused.
//! - **parse, filter, analyze** are one `map` stage, `Stage::new("analyze").workers(N)
//!   .blocking().unordered()`: each chunk is parsed in place with `memchr` byte searches (no
//!   `String` and no regex per line), filtered, and counted into a partial `Stats`
//!   with no lock per line. The three Go stages are fused because a hand-off per line is what
//!   made the Go version slow; the stage runs on N blocking threads (one per core plus one by
//!   default, so a core has a chunk to parse while a finished worker is handed its next).
//! - **report** is the sink, a [`Pipeline::fold`] that absorbs each partial into the total (in
//!   any order: the merge is commutative while the keys fit, and malformed-line samples keep
//!   their input position), then the report is built once, sorted deterministically. Emptied
//!   partials go back to the workers, cleared of their keys.
//! - **memory** follows [`Options::memory_budget`], never the input: the chunks in flight and
//!   the pools are sized from it, partials hold one chunk's keys, and the totals keep paths
//!   (64-bit hashes, with the text of the tracked ones) and clients (IPv4 and IPv6 as 128-bit
//!   numbers) in tables of a fixed room. Past that room a table is a Misra-Gries/Space-Saving
//!   summary whose largest over-count the report states; distinct counts then come from
//!   HyperLogLog (the `cardinality-estimator` crate); latencies live in fixed-size log-bucketed
//!   histograms.
//! - Stopping is the pipeline's: a done context makes the run drain ([`Shutdown::drain`]), so the
//!   source stops at its next chunk, the chunks already read are still counted, and the report
//!   says it is partial. [`Progress::stages`] exposes the stages' live counters (chunks read,
//!   waiting, analyzed, merged) beside the bytes read and lines counted, for the progress bar.
//!
//! [`Pipeline::generate`]: weft_pipeline::Pipeline::generate
//! [`Pipeline::fold`]: weft_pipeline::Pipeline::fold
//! [`Shutdown::drain`]: weft_pipeline::Shutdown::drain
//!
//! It fixes the Go version's bugs: an empty input divided by zero; status codes and top IPs came
//! out in random map order; malformed lines became zero-valued requests; unknown `--min-level`
//! silently meant `debug`; a line over 64 KiB (`bufio.Scanner`) aborted the file; one unreadable
//! entry ended the directory walk; on cancellation the analyzer returned nothing instead of the
//! report so far; and its parse stage ran six regexes per line on one goroutine.
//!
//! ```
//! use weft_logs::{Input, Options, analyze};
//! use weft_core::context::Context;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let log = "2024-03-01 12:00:00 level=info ip=10.0.0.1 path=\"/a\" status=200 time=12ms\n\
//!            2024-03-01 12:00:01 level=error ip=10.0.0.2 path=\"/a\" status=500 time=900ms\n\
//!            garbage\n";
//! let input = Input::Bytes { name: "app.log".into(), data: log.into() };
//! let report = analyze(&Context::background(), vec![input], Options::default()).await?;
//! assert_eq!(report.requests, 2);
//! assert_eq!(report.errors, 1);
//! assert_eq!(report.slow, 1);
//! assert_eq!(report.malformed_lines, 1);
//! assert_eq!(report.top_paths[0].path, "/a");
//! assert!(!report.partial);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod aggregate;
mod budget;
mod engine;
mod error;
mod filter;
pub mod follow;
mod heavy;
mod histogram;
mod html;
mod panels;
mod parse;
mod report;
pub mod sample;
mod time;
#[cfg(feature = "tui")]
pub mod tui;

use std::fmt;
use std::io::Read;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub use budget::{DEFAULT_MEMORY_BUDGET, MIN_MEMORY_BUDGET, parse_size};
pub use engine::analyze;
pub use error::LogsError;
pub use filter::{parse_status_ranges, parse_time};
pub use html::render_html;
pub use panels::{
    AgentCount, AgentsPanel, BandwidthPanel, Cell, DEFAULT_STATIC_EXTENSIONS, DayVisitors,
    KeyCount, Panel, PanelSet, Panels, StaticPanel, Table, TopTable, VisitorsPanel,
};
pub use parse::{AccessFormat, FormatError, FormatSyntax, Level, LogFormat};
pub use report::{
    InputSummary, IpCount, LatencyBin, LatencySummary, MalformedSample, MinuteCount, PathSummary,
    RateSummary, ReasonCount, Report, StatusCount,
};

/// What to analyze.
///
/// ```
/// use weft_logs::{Input, Options, analyze};
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("weft-logs-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("a.log"), "2024-03-01 12:00:00 path=/a status=200\n")?;
/// std::fs::write(dir.join("notes.md"), "not a log\n")?; // not walked
/// let stream = std::io::Cursor::new(b"2024-03-01 12:00:01 path=/b status=404\n".to_vec());
/// let inputs = vec![
///     Input::Path(dir.clone()),
///     Input::Reader { name: "stream".into(), reader: Box::new(stream) },
/// ];
/// let report = analyze(&Context::background(), inputs, Options::default()).await?;
/// assert_eq!((report.inputs.len(), report.requests, report.errors), (2, 2, 1));
/// std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[non_exhaustive]
pub enum Input {
    /// A file, or a directory walked recursively for `.log`, `.txt`, `.jsonl` and `.gz` files
    /// (in name order). A file named explicitly is read whatever its extension.
    Path(PathBuf),
    /// The process's standard input.
    Stdin,
    /// Bytes in memory (the built-in sample, tests).
    Bytes {
        /// Name shown in the report.
        name: String,
        /// The log text (gzip is recognised too).
        data: Vec<u8>,
    },
    /// Any reader, read on the analyzer's reader thread.
    Reader {
        /// Name shown in the report.
        name: String,
        /// The source.
        reader: Box<dyn Read + Send>,
    },
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Input::Stdin => f.write_str("Stdin"),
            Input::Bytes { name, data } => f
                .debug_struct("Bytes")
                .field("name", name)
                .field("len", &data.len())
                .finish(),
            Input::Reader { name, .. } => f.debug_struct("Reader").field("name", name).finish(),
        }
    }
}

/// Options of an analysis: filters, report sizes and tuning. Start from
/// [`Options::default()`] and set fields.
///
/// ```
/// use weft_logs::{Level, Options, parse_status_ranges};
/// let mut o = Options::default();
/// assert_eq!((o.slow_ms, o.top, o.samples), (500, 10, 5));
/// o.min_level = Some(Level::Warn);
/// o.status = parse_status_ranges("5xx")?;
/// o.validate()?;
/// # Ok::<(), weft_logs::LogsError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Force this format for every input. By default it is detected per input from its first
    /// lines (kv when nothing matches, so every line then counts as malformed).
    pub format: Option<LogFormat>,
    /// A custom access-log layout (an nginx `log_format` or Apache `LogFormat` string, or a
    /// preset) for every input; it takes precedence over `format`, and inputs report
    /// [`LogFormat::Custom`]. See [`Options::set_log_format`]. By default, none.
    pub access_format: Option<AccessFormat>,
    /// Keep requests at this level or above. Lines without a level get one from their status
    /// (5xx error, 4xx warn, else info). By default, all levels.
    pub min_level: Option<Level>,
    /// Keep requests whose target (query string included) contains this text. By default, all.
    pub path_contains: Option<String>,
    /// Keep requests whose target matches this regex (Rust `regex` syntax, on bytes). By
    /// default, all.
    pub path_regex: Option<String>,
    /// Keep requests whose status is in one of these ranges (see [`parse_status_ranges`]).
    /// Empty (the default) keeps all.
    pub status: Vec<RangeInclusive<u16>>,
    /// Keep requests at or after this Unix second (see [`parse_time`]); requests without a
    /// timestamp are dropped when a bound is set. By default, no bound.
    pub since: Option<i64>,
    /// Keep requests before this Unix second (exclusive). By default, no bound.
    pub until: Option<i64>,
    /// A response slower than this many milliseconds is slow. Default 500.
    pub slow_ms: u64,
    /// How many paths and client addresses the report lists. Default 10.
    pub top: usize,
    /// How many malformed lines the report quotes. Default 5.
    pub samples: usize,
    /// Parse workers (chunks analyzed at once); 0 (the default) means one per available core
    /// plus one, so a core has a chunk to parse while a finished worker is handed its next.
    pub workers: usize,
    /// Bytes read per chunk, at most. Default 2 MiB; the memory budget may make it smaller.
    pub chunk_size: usize,
    /// Longest line buffered; a longer line is counted as malformed and skipped. Default 16 MiB
    /// (at most 1/8 of the memory budget).
    pub max_line: usize,
    /// Memory the whole analysis may hold, in bytes (see [`parse_size`]); at least
    /// [`MIN_MEMORY_BUDGET`]. Chunk sizes and the room of the path, client and minute tables
    /// follow from it; past that room, paths and clients are summarized with a stated error
    /// bound (see [`Report`]). Default [`DEFAULT_MEMORY_BUDGET`] (128 MiB).
    pub memory_budget: u64,
    /// Stop at the first unreadable input with [`LogsError::Read`] instead of listing it in the
    /// report and going on. Default off.
    pub strict: bool,
    /// Counters the analysis updates as it reads (for a progress bar). Default none.
    pub progress: Option<Progress>,
    /// The panels counted beside the core figures (see [`Panels`]). Default: all.
    pub panels: PanelSet,
    /// Extensions (without the dot, any case) that make a request static for the
    /// [`Panel::Static`] panel. Default [`DEFAULT_STATIC_EXTENSIONS`].
    pub static_extensions: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: None,
            access_format: None,
            min_level: None,
            path_contains: None,
            path_regex: None,
            status: Vec::new(),
            since: None,
            until: None,
            slow_ms: 500,
            top: 10,
            samples: 5,
            workers: 0,
            chunk_size: 2 << 20,
            max_line: 16 << 20,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            strict: false,
            progress: None,
            panels: PanelSet::default(),
            static_extensions: DEFAULT_STATIC_EXTENSIONS
                .iter()
                .map(|e| (*e).to_string())
                .collect(),
        }
    }
}

impl Options {
    /// The format every input is read in, if one is forced: a custom format string applies to
    /// every input.
    pub(crate) fn forced_format(&self) -> Option<LogFormat> {
        if self.access_format.is_some() {
            Some(LogFormat::Custom)
        } else {
            self.format
        }
    }

    /// Sets the input format from what a user typed: `kv`, `combined` (or `common`, `clf`,
    /// `apache`, `nginx`: the built-in Combined parser) or `json` set [`Options::format`]; a
    /// preset name (`vhost-combined`, `nginx-timed`) or an nginx/Apache format string sets
    /// [`Options::access_format`].
    ///
    /// ```
    /// use weft_logs::{LogFormat, LogsError, Options};
    /// let mut o = Options::default();
    /// o.set_log_format("combined")?;
    /// assert_eq!((o.format, o.access_format.is_none()), (Some(LogFormat::Combined), true));
    /// o.set_log_format(r#"$remote_addr [$time_local] "$request" $status $request_time"#)?;
    /// assert!(o.access_format.is_some());
    /// let err = o.set_log_format("$remote_addr \"$request\"").unwrap_err();
    /// assert!(matches!(err, LogsError::Format(_)));
    /// assert!(o.set_log_format("xml").is_err());
    /// # Ok::<(), LogsError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`LogsError::Format`] for a format string that does not compile (pointing at the
    /// token), [`LogsError::InvalidArgument`] for a word that is neither a format nor a preset.
    pub fn set_log_format(&mut self, spec: &str) -> Result<(), LogsError> {
        if let Ok(f) = spec.parse::<LogFormat>() {
            self.format = Some(f);
            self.access_format = None;
            return Ok(());
        }
        let custom = match AccessFormat::preset(spec) {
            Some(p) => p,
            None if spec.contains(['$', '%']) => AccessFormat::new(spec)?,
            None => {
                return Err(LogsError::InvalidArgument(format!(
                    "unknown log format {spec:?} (expected kv, combined, json, a preset ({}), \
                     or an nginx log_format / Apache LogFormat string)",
                    AccessFormat::preset_names().join(", ")
                )));
            }
        };
        self.format = Some(LogFormat::Custom);
        self.access_format = Some(custom);
        Ok(())
    }

    /// Checks the options as [`analyze`] would (regex syntax, bounds, sizes).
    pub fn validate(&self) -> Result<(), LogsError> {
        filter::Filter::new(self)?;
        if self.format == Some(LogFormat::Custom) && self.access_format.is_none() {
            return Err(LogsError::InvalidArgument(
                "the custom log format needs a format string (Options::set_log_format)".into(),
            ));
        }
        if self.chunk_size < 4096 || self.max_line < 4096 {
            return Err(LogsError::InvalidArgument(
                "chunk size and maximum line length must be at least 4096 bytes".into(),
            ));
        }
        if self.memory_budget < MIN_MEMORY_BUDGET {
            return Err(LogsError::InvalidArgument(format!(
                "the memory budget must be at least {} MiB",
                MIN_MEMORY_BUDGET >> 20
            )));
        }
        Ok(())
    }
}

/// Progress counters shared with a running analysis: file bytes read so far, the total to read
/// (known once the paths are walked; stdin, readers and in-memory inputs are not counted),
/// lines analyzed, and the live counters of the analysis pipeline's stages. Gzip files count
/// compressed bytes. Clones share the counters.
///
/// ```
/// use weft_logs::{Input, Options, Progress, analyze};
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let p = Progress::default();
/// assert_eq!((p.read_bytes(), p.total_bytes(), p.lines()), (0, 0, 0));
/// assert!(p.stages().is_empty(), "no analysis has started");
/// let mut o = Options::default();
/// o.progress = Some(p.clone());
/// let data = b"2024-03-01 12:00:00 path=/a status=200\n".repeat(3);
/// analyze(&Context::background(), vec![Input::Bytes { name: "a".into(), data }], o).await?;
/// assert_eq!(p.lines(), 3);
/// // One chunk went from the source through the `analyze` stage into the merging sink.
/// let analyze_stage = p.stages().into_iter().find(|s| &*s.name == "analyze").expect("listed");
/// assert_eq!((analyze_stage.received, analyze_stage.emitted), (1, 1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<ProgressInner>,
}

#[derive(Debug, Default)]
struct ProgressInner {
    read: AtomicU64,
    total: AtomicU64,
    lines: AtomicU64,
    pipeline: Mutex<Option<weft_pipeline::Progress>>,
}

impl Progress {
    /// Bytes read so far.
    #[must_use]
    pub fn read_bytes(&self) -> u64 {
        // Relaxed: a monotonic counter for display; nothing is published through it.
        self.inner.read.load(Ordering::Relaxed)
    }

    /// Total bytes of the inputs whose size is known.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Lines analyzed so far (updated after each chunk).
    #[must_use]
    pub fn lines(&self) -> u64 {
        self.inner.lines.load(Ordering::Relaxed)
    }

    /// The live counters of the current (or last) analysis pipeline, one per stage, in order:
    /// `source` (chunks read), `analyze` (chunks parsed and aggregated; `queue_depth` is the
    /// chunks waiting for a worker), `sink` (partial results merged). Counted in chunks.
    /// Empty before an analysis starts.
    #[must_use]
    pub fn stages(&self) -> Vec<weft_pipeline::StageReport> {
        self.inner
            .pipeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(weft_pipeline::Progress::stages)
            .unwrap_or_default()
    }

    fn set_pipeline(&self, p: weft_pipeline::Progress) {
        *self
            .inner
            .pipeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(p);
    }

    fn add_lines(&self, n: u64) {
        self.inner.lines.fetch_add(n, Ordering::Relaxed);
    }

    fn add_read(&self, n: u64) {
        self.inner.read.fetch_add(n, Ordering::Relaxed);
    }

    fn add_total(&self, n: u64) {
        self.inner.total.fetch_add(n, Ordering::Relaxed);
    }
}
