//! The follower: tails of the followed paths feeding the batch analysis's aggregation.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::aggregate::{Setup, Stats, Totals};
use crate::budget::{FIXED, Plan};
use crate::filter::Filter;
use crate::report::{InputSummary, Report, build};
use crate::{LogFormat, LogsError, Options};

use super::tail::{Halted, Piece, Tail};
use super::{FileState, FileStatus, Start};

/// Why a too-long line is malformed (the batch analysis's wording).
const TOO_LONG: &str = "line longer than the maximum line length";

/// Follows growing log files as `tail -F` does and counts their new lines with the same
/// parsers, filters and memory budget as [`analyze`](crate::analyze).
///
/// A `Follower` is driven by calls to [`poll`](Follower::poll), each of which reads what was
/// appended since the last one; [`snapshot`](Follower::snapshot) gives the report so far at
/// any time. [`follow`](super::follow) and [`Follower::run`] poll it on a timer and hand a
/// [`Snapshot`](super::Snapshot) to a callback every interval.
///
/// - **Where it starts.** By default ([`Start::End`]) a file that exists when following
///   begins is read from its end, so only lines appended later count; [`Start::Beginning`]
///   reads its existing content first. A path that names no file yet is waited for, and its
///   file is read from its start once it appears.
/// - **Whole lines only.** A line is counted once its newline has been read; a partial last
///   line is held until then, never parsed in halves.
/// - **Rotation.** When the path names a new file (the old one renamed and a new one
///   created), the old file is read to its end, then the new one from its start. The old file
///   stays open and read for a few more polls (2 s at the default interval), so lines its
///   writer appends before reopening are counted too; once it is closed, its last line is
///   counted even without a newline, as the batch analysis counts a file's last line. A
///   renamed file whose path is
///   not recreated yet keeps being read.
/// - **Truncation.** When a file shrinks (`copytruncate`, `> file`), it is read again from its
///   start.
/// - **Not followable**: directories and gzip files (by extension or content) are refused by
///   [`Follower::new`]; a gzip file appearing later at a followed path is reported in
///   [`FileStatus::state`] and its input's error, and not read.
///
/// Counts equal those of [`analyze`](crate::analyze) over the same bytes (the lines read from
/// each path, in order): the same parser, filter and aggregation run on each poll's whole
/// lines. (A file's unterminated last line, which the batch analysis counts at the file's
/// end, is counted only once the file is rotated away and closed; see above.) Path and client tables get half the room a batch analysis would, as a snapshot
/// briefly holds a copy of them: past that room the top tables turn into the same stated
/// summaries sooner. Line numbers of quoted malformed lines count the lines read from that
/// path since following began. Lines are parsed on the polling thread, one file after the
/// other: catching up with a large file ([`Start::Beginning`]) runs at one core's speed, where
/// the batch analysis uses every core.
///
/// ```
/// use std::io::Write;
/// use weft_logs::follow::{Follower, Start};
/// use weft_logs::Options;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("access.log");
/// std::fs::write(&path, "2024-03-01 12:00:00 path=/old status=200\n")?;
/// let mut follower = Follower::new([&path], Options::default(), Start::End)?;
/// let mut log = std::fs::OpenOptions::new().append(true).open(&path)?;
/// log.write_all(b"2024-03-01 12:00:01 path=/new status=500\n2024-03-01 12:00:02 path=/ha")?;
/// assert_eq!(follower.poll()?, 1, "one whole line; the existing one is skipped");
/// log.write_all(b"lf status=200\n")?;
/// assert_eq!(follower.poll()?, 1, "the partial line, once its newline came");
/// let report = follower.snapshot();
/// assert_eq!((report.requests, report.errors), (2, 1));
/// assert_eq!(report.top_paths.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(), ["/half", "/new"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Follower {
    tails: Vec<Tail>,
    /// What is known of each tail, by the same index.
    states: Vec<TailState>,
    inputs: Vec<InputSummary>,
    totals: Totals,
    part: Stats,
    filter: Arc<Filter>,
    options: Options,
    lines: u64,
    behind: bool,
}

/// What the report needs to know of a tail.
struct TailState {
    format: Option<LogFormat>,
    /// Lines of this path counted so far (the first line number of its next piece).
    lines: u64,
    rotations: u64,
    truncations: u64,
    error: Option<String>,
}

impl fmt::Debug for Follower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Follower")
            .field("files", &self.files())
            .field("lines", &self.lines)
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// Starts following `paths` (files; a missing one is waited for) at `start`.
    ///
    /// # Errors
    ///
    /// [`LogsError::InvalidArgument`] for bad options (as [`Options::validate`]), no path, a
    /// directory or a gzip file; [`LogsError::Regex`] for a bad path regex;
    /// [`LogsError::Read`] if an existing file cannot be opened.
    pub fn new<P: Into<PathBuf>>(
        paths: impl IntoIterator<Item = P>,
        options: Options,
        start: Start,
    ) -> Result<Follower, LogsError> {
        options.validate()?;
        let filter = Arc::new(Filter::new(&options)?);
        // Half the budget's tables: a snapshot clones them (see the type's docs).
        let rest = options.memory_budget.saturating_sub(FIXED);
        let plan = Plan::with_panels(FIXED + rest / 2, 1, options.panels);
        let setup = Setup::from_options(&options);
        let forced = options.forced_format();
        let chunk = options.chunk_size.min(plan.chunk_size);
        let max_line = options.max_line.min(plan.max_line);
        let (mut tails, mut states, mut inputs) = (Vec::new(), Vec::new(), Vec::new());
        for path in paths {
            let path: PathBuf = path.into();
            let mut tail = Tail::new(path.clone(), chunk, max_line);
            tail.check().map_err(LogsError::InvalidArgument)?;
            tail.start(start == Start::End)
                .map_err(|source| LogsError::Read {
                    name: path.display().to_string(),
                    source,
                })?;
            let mut summary = InputSummary::new(path.display().to_string());
            summary.format = forced;
            inputs.push(summary);
            tails.push(tail);
            states.push(TailState {
                format: forced,
                lines: 0,
                rotations: 0,
                truncations: 0,
                error: None,
            });
        }
        if tails.is_empty() {
            return Err(LogsError::InvalidArgument(
                "no file to follow (name at least one log file)".into(),
            ));
        }
        Ok(Follower {
            tails,
            states,
            inputs,
            totals: Totals::new(&plan, options.samples),
            part: Stats::new(
                options.slow_ms.saturating_mul(1000),
                options.samples,
                &setup,
            ),
            filter,
            options,
            lines: 0,
            behind: false,
        })
    }

    /// Reads what was appended to the followed files since the last poll (or the start),
    /// handles rotations and truncations, counts the new whole lines, and returns how many.
    ///
    /// It reads files with blocking I/O: call it from a blocking thread in async code
    /// ([`Follower::run`] does).
    ///
    /// # Errors
    ///
    /// With [`Options::strict`], [`LogsError::Read`] when a file cannot be read. Without it
    /// (the default), a read error is recorded in the input's
    /// [`error`](crate::InputSummary::error) and [`FileStatus::error`], and the file is tried
    /// again at the next poll.
    pub fn poll(&mut self) -> Result<u64, LogsError> {
        let before = self.lines;
        self.behind = false;
        for i in 0..self.tails.len() {
            let mut pieces = Pieces {
                totals: &mut self.totals,
                part: &mut self.part,
                filter: &self.filter,
                forced: self.options.forced_format(),
                input: i,
                state: &mut self.states[i],
                summary: &mut self.inputs[i],
            };
            let tail = &mut self.tails[i];
            let result = tail.poll(&mut |piece| pieces.count(piece));
            let state = &mut self.states[i];
            match result {
                Ok(polled) => {
                    self.behind |= polled.behind;
                    state.rotations += u64::from(polled.rotated);
                    state.truncations += u64::from(polled.truncated);
                    self.inputs[i].bytes += polled.bytes;
                    if let Some(p) = &self.options.progress {
                        p.add_read(polled.bytes);
                    }
                    state.error = tail.halted().map(|Halted::Refused(why)| why.clone());
                }
                Err(source) => {
                    if self.options.strict {
                        return Err(LogsError::Read {
                            name: tail.path().display().to_string(),
                            source,
                        });
                    }
                    state.error = Some(source.to_string());
                }
            }
            self.inputs[i].error.clone_from(&state.error);
        }
        let lines: u64 = self.states.iter().map(|t| t.lines).sum();
        self.lines = lines;
        if let Some(p) = &self.options.progress {
            p.add_lines(lines - before);
        }
        Ok(lines - before)
    }

    /// The report over every line counted so far, as [`analyze`](crate::analyze) would give
    /// for the same lines. It copies the path and client tables, so its cost grows with the
    /// number of distinct paths and clients kept (bounded by the memory budget).
    #[must_use]
    pub fn snapshot(&self) -> Report {
        build(
            self.totals.clone(),
            self.inputs.clone(),
            &self.options,
            None,
        )
    }

    /// Ends following and returns the final report: [`snapshot`](Follower::snapshot)
    /// without the copy. A line still being written (no newline yet) is not counted: the
    /// writer may be in its middle.
    #[must_use]
    pub fn into_report(self) -> Report {
        build(self.totals, self.inputs, &self.options, None)
    }

    /// Whether the last poll left bytes unread: it reads at most 32 MiB per file, so that
    /// catching up with a large file still lets snapshots and a stop through. Poll again at
    /// once to read on ([`Follower::run`] does).
    #[must_use]
    pub fn is_behind(&self) -> bool {
        self.behind
    }

    /// Lines counted so far, over all files.
    #[must_use]
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// What each followed path is doing, in the order given.
    #[must_use]
    pub fn files(&self) -> Vec<FileStatus> {
        self.tails
            .iter()
            .zip(&self.states)
            .map(|(tail, t)| FileStatus {
                path: tail.path().to_path_buf(),
                state: match tail.halted() {
                    Some(Halted::Refused(_)) => FileState::Refused,
                    None if tail.is_open() => FileState::Following,
                    None => FileState::Waiting,
                },
                offset: tail.offset(),
                lines: t.lines,
                rotations: t.rotations,
                truncations: t.truncations,
                error: t.error.clone(),
            })
            .collect()
    }
}

/// Counts the pieces one tail hands on.
struct Pieces<'a> {
    totals: &'a mut Totals,
    part: &'a mut Stats,
    filter: &'a Filter,
    forced: Option<LogFormat>,
    input: usize,
    state: &'a mut TailState,
    summary: &'a mut InputSummary,
}

impl Pieces<'_> {
    /// Parses and counts a piece as the batch analysis counts a chunk, then renumbers its
    /// position so the totals keep one entry per input (see `renumber`).
    fn count(&mut self, piece: Piece<'_>) {
        // Numbered 1, after the input's lines so far (numbered 0); `renumber` folds it in.
        let seq = 1;
        match piece {
            Piece::Lines(data) => {
                let format = match self.state.format {
                    Some(f) => f,
                    None => {
                        let detected = LogFormat::detect(data);
                        let f = self.forced.or(detected).unwrap_or(LogFormat::Kv);
                        self.summary.format = Some(f);
                        self.summary.detected = self.forced.is_none() && detected.is_some();
                        *self.state.format.insert(f)
                    }
                };
                self.part
                    .process_chunk(self.input, seq, format, data, self.filter);
            }
            Piece::LongLine(prefix) => self.part.long_line(self.input, seq, prefix, TOO_LONG),
        }
        self.part.finish();
        let lines = self.part.c.lines;
        self.totals.absorb(self.part);
        self.renumber(lines);
    }

    /// The batch analysis keeps one `(position, lines)` entry per chunk to number the quoted
    /// lines at the end; a follower would keep one per poll forever. Folding each piece into
    /// a single entry per input (and its samples' positions into line numbers from it) keeps
    /// that bookkeeping at one entry per followed path.
    fn renumber(&mut self, new_lines: u64) {
        let before = self.state.lines;
        let input = self.input;
        for s in &mut self.totals.samples {
            if s.at.0 == input && s.at.1 == 1 {
                s.at = (input, 0, before + s.at.2);
            }
        }
        self.totals.chunk_lines.retain(|&((i, _, _), _)| i != input);
        self.state.lines = before + new_lines;
        self.totals
            .chunk_lines
            .push(((input, 0, 0), self.state.lines));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_large_backlog_is_read_over_several_polls_without_losing_a_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.log");
        let line = "2024-03-01 12:00:00 path=/a status=200\n";
        std::fs::write(&path, line.repeat(1000)).expect("write");
        let mut f = Follower::new([&path], Options::default(), Start::Beginning).expect("new");
        f.tails[0].set_read_per_poll(4096);
        assert_eq!(f.poll().expect("poll"), 4096 / line.len() as u64);
        assert!(f.is_behind(), "the poll stopped at its limit");
        // Rotated while the follower is behind: the old file is still read to its end.
        std::fs::rename(&path, dir.path().join("big.log.1")).expect("rename");
        let mut new = std::fs::File::create(&path).expect("create");
        new.write_all(line.repeat(3).as_bytes()).expect("write");
        let mut polls = 1;
        while f.is_behind() {
            f.poll().expect("poll");
            polls += 1;
            assert!(polls < 100, "never caught up");
        }
        f.poll().expect("poll");
        assert!(polls > 5, "read in steps, not at once ({polls} polls)");
        assert_eq!(f.snapshot().requests, 1003);
        assert_eq!(f.files()[0].rotations, 1);
    }
}
