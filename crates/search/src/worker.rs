//! The blocking side of a search: per-thread file searchers and the two ways of feeding them.
//!
//! Everything here runs on plain OS threads, never on the async runtime: reading and matching
//! files is CPU and I/O bound work. Results cross to the async side through bounded channels,
//! so a slow consumer slows the walk down instead of piling results up in memory.
//!
//! - Unordered ([`run_unordered`]): ignore's parallel walker *is* the fan-out. Each walker thread
//!   searches the files it visits and sends interesting results into one bounded channel (the
//!   fan-in). This is ripgrep's own shape, and the fastest.
//! - Ordered ([`run_ordered`]): one thread walks in path order and hands chunks of consecutive
//!   files to a pool of searcher threads, each chunk with a one-shot reply slot; the slot's
//!   receiving half goes, in walk order, into a bounded channel the stream reads from. The
//!   stream awaits the slots in order, so results come out sorted while files are still searched in parallel (ripgrep
//!   falls back to one thread for `--sort path`). The bound on that channel bounds how far the
//!   searchers can run ahead of the reader, and with it the memory held by finished results.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use grep_matcher::Matcher;
use grep_regex::RegexMatcher;
use grep_searcher::{Searcher, SearcherBuilder, Sink, SinkFinish, SinkMatch};
use ignore::{DirEntry, Walk, WalkParallel, WalkState};
use tokio::sync::{mpsc, oneshot};
use weft_core::context::Context;

use super::error::FileError;
use super::result::{Counters, FileResult, Report};

/// State every thread of one search shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) matcher: RegexMatcher,
    pub(super) searcher: SearcherBuilder,
    pub(super) report: Report,
    pub(super) match_ranges: bool,
    pub(super) ctx: Context,
    /// Set when the stream ends or is dropped. Relaxed: it is a hint polled between files and
    /// matches; no data is published through it.
    pub(super) stop: AtomicBool,
    pub(super) counters: Counters,
}

impl Shared {
    pub(super) fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.ctx.is_done()
    }
}

/// One thread's searcher: grep-searcher keeps its buffers between files, so each thread has
/// its own.
struct FileSearcher {
    shared: Arc<Shared>,
    searcher: Searcher,
}

impl FileSearcher {
    fn new(shared: Arc<Shared>) -> FileSearcher {
        let searcher = shared.searcher.build();
        FileSearcher { shared, searcher }
    }

    fn search(&mut self, path: PathBuf) -> FileResult {
        let mut sink = Collect {
            shared: &self.shared,
            out: FileResult::new(PathBuf::new()),
            binary: false,
        };
        let outcome = self
            .searcher
            .search_path(&self.shared.matcher, &path, &mut sink);
        let Collect {
            mut out, binary, ..
        } = sink;
        out.set_path(path);
        let counters = &self.shared.counters;
        Counters::bump(&counters.searched);
        if let Err(err) = outcome {
            Counters::bump(&counters.errors);
            out.set_error(FileError::Read(err));
        }
        if binary {
            Counters::bump(&counters.binary);
            out.clear();
        } else if out.is_match() {
            Counters::bump(&counters.matched);
        }
        out
    }

    fn walk_error(&self, err: ignore::Error) -> FileResult {
        Counters::bump(&self.shared.counters.errors);
        walk_error(err)
    }
}

/// Turns a walk error into a result, moving the path out of the error so that it is printed
/// once (`path: message`), not twice.
fn walk_error(err: ignore::Error) -> FileResult {
    let mut err = err;
    let mut path = PathBuf::new();
    loop {
        err = match err {
            ignore::Error::WithDepth { err, .. } => *err,
            ignore::Error::WithPath { path: p, err } => {
                path = p;
                *err
            }
            other => {
                if let ignore::Error::Loop { child, .. } = &other
                    && path.as_os_str().is_empty()
                {
                    path.clone_from(child);
                }
                break FileResult::failed(path, FileError::Walk(other));
            }
        };
    }
}

/// Whether a walk entry is a file to search: regular files, and anything but a directory that
/// was named on the command line (a symlink or a FIFO given by the user is searched as grep
/// does).
fn is_searchable(entry: &DirEntry) -> bool {
    match entry.file_type() {
        Some(t) if t.is_file() => true,
        Some(t) if t.is_dir() => false,
        _ => entry.depth() == 0 && !entry.is_stdin() && !entry.path().is_dir(),
    }
}

/// Collects one file's matches as the searcher reports them.
struct Collect<'a> {
    shared: &'a Shared,
    out: FileResult,
    binary: bool,
}

impl Sink for Collect<'_> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> io::Result<bool> {
        match self.shared.report {
            Report::Files => {
                self.out.add_count(1);
                // One match answers the question: stop reading this file.
                return Ok(false);
            }
            Report::Count => {
                self.out.add_count(mat.lines().count() as u64);
            }
            Report::Lines => {
                // Without multi-line mode a match is one line, but iterate to be exact.
                let first = mat.line_number().unwrap_or(0);
                let mut offset = mat.absolute_byte_offset();
                for (number, line) in (first..).zip(mat.lines()) {
                    let text = line.strip_suffix(b"\n").unwrap_or(line);
                    let matcher = &self.shared.matcher;
                    let ranges = self.shared.match_ranges;
                    self.out.push_line(number, offset, text, |text, spans| {
                        if !ranges {
                            return;
                        }
                        // The line matched as a whole, so finding the spans cannot fail;
                        // grep-regex's error type for this is uninhabited.
                        let _ = matcher.find_iter(text, |m| {
                            spans.push(m.start()..m.end());
                            true
                        });
                    });
                    self.out.add_count(1);
                    offset += line.len() as u64;
                }
            }
        }
        Ok(!self.shared.should_stop())
    }

    fn binary_data(&mut self, _: &Searcher, _offset: u64) -> io::Result<bool> {
        self.binary = true;
        Ok(false)
    }

    fn finish(&mut self, _: &Searcher, finish: &SinkFinish) -> io::Result<()> {
        if finish.binary_byte_offset().is_some() {
            self.binary = true;
        }
        Ok(())
    }
}

/// Unordered fan-out/fan-in: the parallel walker's threads search what they visit.
pub(super) fn run_unordered(
    walk: WalkParallel,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<FileResult>,
) {
    walk.run(|| {
        let mut searcher = FileSearcher::new(Arc::clone(shared));
        let tx = tx.clone();
        Box::new(move |entry| {
            if searcher.shared.should_stop() {
                return WalkState::Quit;
            }
            let result = match entry {
                Ok(entry) if is_searchable(&entry) => searcher.search(entry.into_path()),
                Ok(_) => return WalkState::Continue,
                Err(err) => searcher.walk_error(err),
            };
            // `blocking_send` parks this walker thread while the channel is full: backpressure.
            if result.is_reportable() && tx.blocking_send(result).is_err() {
                // The stream is gone: nobody wants more.
                return WalkState::Quit;
            }
            WalkState::Continue
        })
    });
}

/// The reply to one chunk of files: the results worth reporting, in the chunk's order.
pub(super) type Slot = oneshot::Receiver<Vec<FileResult>>;

/// Largest chunk of files handed to a searcher at once. Chunks amortize the per-hand-off cost
/// (a reply slot, two channel operations, a wake-up of the reader) over many files, most of
/// which have nothing to report.
const MAX_CHUNK: usize = 32;

/// Ordered fan-out/fan-in: one walking thread, `threads` searching threads, reply slots in walk
/// order, files handed out in chunks of consecutive paths.
pub(super) fn run_ordered(
    walk: Walk,
    shared: &Arc<Shared>,
    order: &mpsc::Sender<Slot>,
    threads: usize,
) {
    // Small: the order channel, not this one, is what bounds the work in flight.
    let (jobs, queue) = async_channel::bounded::<Job>(threads * 2);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let queue = queue.clone();
            let mut searcher = FileSearcher::new(Arc::clone(shared));
            scope.spawn(move || {
                while let Ok((paths, reply)) = queue.recv_blocking() {
                    let mut results = Vec::new();
                    for path in paths {
                        if searcher.shared.should_stop() {
                            return;
                        }
                        let result = searcher.search(path);
                        if result.is_reportable() {
                            results.push(result);
                        }
                    }
                    // The stream may have ended meanwhile; then the results have nowhere to go.
                    let _ = reply.send(results);
                }
            });
        }
        drop(queue);
        // Returning drops `jobs`: closing the queue lets the searchers finish what is queued
        // and exit, which the scope waits for.
        walk_in_order(walk, shared, order, jobs);
    });
}

type Job = (Vec<PathBuf>, oneshot::Sender<Vec<FileResult>>);

/// The walking half of [`run_ordered`]: owns the job queue's sender, so that leaving it by any
/// path closes the queue.
fn walk_in_order(
    walk: Walk,
    shared: &Shared,
    order: &mpsc::Sender<Slot>,
    jobs: async_channel::Sender<Job>,
) {
    // Slot first, job second: every slot in the channel has its job queued, so the reader
    // never waits on a job this thread is blocked from sending.
    let dispatch = |chunk: &mut Vec<PathBuf>| -> bool {
        if chunk.is_empty() {
            return true;
        }
        let (reply, slot) = oneshot::channel();
        order.blocking_send(slot).is_ok()
            && jobs.send_blocking((std::mem::take(chunk), reply)).is_ok()
    };
    // Chunks start at one file and double up to MAX_CHUNK, so a small tree still spreads
    // over every searcher and the first results come quickly, while a large tree pays the
    // hand-off once per MAX_CHUNK files.
    let mut limit = 1;
    let mut chunk = Vec::with_capacity(MAX_CHUNK);
    for entry in walk {
        if shared.should_stop() {
            return;
        }
        match entry {
            Ok(entry) if is_searchable(&entry) => {
                chunk.push(entry.into_path());
                if chunk.len() >= limit {
                    if !dispatch(&mut chunk) {
                        return;
                    }
                    limit = (limit * 2).min(MAX_CHUNK);
                }
            }
            Ok(_) => {}
            Err(err) => {
                // The files before the error come first.
                if !dispatch(&mut chunk) {
                    return;
                }
                Counters::bump(&shared.counters.errors);
                let (reply, slot) = oneshot::channel();
                let _ = reply.send(vec![walk_error(err)]);
                if order.blocking_send(slot).is_err() {
                    return;
                }
            }
        }
    }
    dispatch(&mut chunk);
}
