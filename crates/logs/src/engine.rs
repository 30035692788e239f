//! The driver: the analysis as a weft-pipeline run (source -> analyze -> fold).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use memchr::{memchr, memrchr};
use weft_core::context::Context;
use weft_pipeline::{Emitter, Pipeline, Shutdown, Stage, StopReason};

use super::aggregate::{Setup, Stats, Totals};
use super::budget::Plan;
use super::filter::Filter;
use super::report::{InputSummary, Report, build};
use super::{Input, LogFormat, LogsError, Options, Progress};

/// Why a long line is malformed.
const TOO_LONG: &str = "line longer than the maximum line length";
/// Bytes of a too-long line kept as its sample.
const LONG_PREFIX: usize = 200;
/// How long the chunks already read may take to be analyzed once the context is done, before
/// the run is aborted and the report marks them as skipped. A few chunks are in flight, so
/// this is only reached when the machine is badly overloaded.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Analyzes `inputs` and returns the report.
///
/// The analysis is a [`weft_pipeline`] run: a generator source walks, opens and reads the
/// inputs on a thread of its own and emits chunks of whole lines; the `analyze` stage parses,
/// filters and aggregates each chunk into partial stats on `options.workers` blocking threads;
/// the sink folds the partial stats together. This future only waits.
///
/// When `ctx` is done before the end, reading stops at the next chunk, the chunks already read
/// are still analyzed (the pipeline's drain shutdown), and the report covers them, with
/// [`Report::partial`] set and [`Report::stopped_because`] giving the context's cause.
/// Unreadable inputs are listed in the report ([`InputSummary::error`]) unless
/// `options.strict`, which makes the first one an error.
///
/// # Errors
///
/// [`LogsError::Regex`] or [`LogsError::InvalidArgument`] for bad options,
/// [`LogsError::Read`] for an unreadable input with `strict`, [`LogsError::Worker`] if a worker
/// panicked.
///
/// # Cancel safety
///
/// Dropping the future aborts the run (the reader notices within one chunk) and loses the
/// report. To stop early and keep the report so far, cancel `ctx` instead. A reader thread
/// blocked in a read that never returns (a silent stdin) is left behind, detached; it ends with
/// the read.
///
/// ```
/// use weft_logs::{Input, Options, analyze};
/// use weft_core::context::Context;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel_with("enough");
/// let input = Input::Bytes { name: "x".into(), data: b"2024-03-01 12:00:00 path=/ status=200\n".to_vec() };
/// let report = analyze(&ctx, vec![input], Options::default()).await?;
/// assert!(report.partial);
/// assert_eq!(report.stopped_because.as_deref(), Some("enough"));
/// # Ok(()) }
/// ```
pub async fn analyze(
    ctx: &Context,
    inputs: Vec<Input>,
    options: Options,
) -> Result<Report, LogsError> {
    options.validate()?;
    let filter = Arc::new(Filter::new(&options)?);
    let workers = match options.workers {
        // One more than the cores: a worker that finishes a chunk waits for the stage's task
        // to hand it the next one, which on a busy machine can take a scheduler slice; with
        // one more chunk in flight, a core has work meanwhile.
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()) + 1,
        n => n,
    };
    // Already done: nothing is read, and the report says so.
    let stop = Arc::new(AtomicBool::new(ctx.is_done()));
    let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
    let plan = Plan::with_panels(options.memory_budget, workers, options.panels);
    let setup = Setup::from_options(&options);
    // Chunk buffers come back from the workers to the reader, so they are allocated once; the
    // pools hold no more than the budget's plan counts on.
    let (pool_tx, pool_rx) = async_channel::bounded::<Vec<u8>>(workers + 1);
    // So do the partial stats, from the sink back to the workers, emptied.
    let (stats_tx, stats_rx) = async_channel::bounded::<Stats>(workers + 1);
    let state = Arc::new(Mutex::new(ReaderState::default()));
    let progress = options.progress.clone().unwrap_or_default();
    let slow_us = options.slow_ms.saturating_mul(1000);
    let samples = options.samples;

    let forced = options.forced_format();
    let (format, chunk_size, max_line, strict) = (
        forced,
        options.chunk_size.min(plan.chunk_size),
        options.max_line.min(plan.max_line),
        options.strict,
    );
    let (reader_stop, reader_state, reader_progress) =
        (Arc::clone(&stop), Arc::clone(&state), progress.clone());
    let analyze_progress = progress.clone();
    let pipeline = Pipeline::generate(move |source_ctx, emit| {
        let reader = Reader {
            emit,
            source_ctx,
            pool: pool_rx,
            stop: reader_stop,
            state: reader_state,
            format,
            chunk_size,
            max_line,
            strict,
            progress: reader_progress,
        };
        read_all(reader, inputs)
    })
    // Each item is a chunk of megabytes: hand them on one at a time, and queue one per
    // worker so a worker that finishes finds the next chunk ready.
    .chunk_size(1)
    .default_buffer(workers)
    .shutdown(Shutdown::drain(DRAIN_TIMEOUT))
    .map(
        Stage::new("analyze")
            .workers(workers)
            .blocking()
            .unordered(),
        move |chunk: Chunk| {
            let mut stats = stats_rx
                .try_recv()
                .unwrap_or_else(|_| Stats::new(slow_us, samples, &setup));
            analyze_chunk(chunk, &mut stats, &filter, &pool_tx);
            analyze_progress.add_lines(stats.c.lines);
            stats
        },
    );
    progress.set_pipeline(pipeline.progress());
    let init = Totals::new(&plan, samples);
    // Partial stats merge in any order to the same result, so the stage can be unordered.
    let done = pipeline
        .fold(ctx.clone(), init, |mut acc, mut part| {
            acc.absorb(&mut part);
            // If the pool is full the stats are simply freed.
            let _ = stats_tx.try_send(part);
            acc
        })
        .await
        .map_err(|_| LogsError::Worker)?;
    let stats = done.output;
    tracing::debug!(report = ?done.report, "weft logs pipeline");
    let skipped = done
        .report
        .stages
        .iter()
        .any(|s| s.cancelled > 0 || s.dropped > 0);
    // Also true when `ctx` was done before the start.
    let stopped = done.report.stop != StopReason::Completed || stop.load(Ordering::Acquire);
    let mut st = std::mem::take(&mut *state.lock().unwrap_or_else(PoisonError::into_inner));
    if let Some(fatal) = st.fatal.take() {
        return Err(fatal);
    }
    let partial = stopped && (!st.completed || skipped);
    let cause = partial.then(|| {
        ctx.cause()
            .map_or_else(|| "cancelled".to_string(), |c| c.to_string())
    });
    Ok(build(stats, st.inputs, &options, cause))
}

/// The pipeline's source: runs the reader on a thread of its own (a read that never returns,
/// an idle stdin, must not keep the runtime from shutting down after a cancelled analysis)
/// and waits for it. The pipeline stops the source by making `ctx` done and closing `emit`.
async fn read_all(reader: Reader, inputs: Vec<Input>) {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let state = Arc::clone(&reader.state);
    let spawned = std::thread::Builder::new()
        .name("weft-logs-reader".into())
        .spawn(move || {
            reader.run(inputs);
            let _ = done_tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = done_rx.await;
        }
        Err(_) => {
            state.lock().unwrap_or_else(PoisonError::into_inner).fatal = Some(LogsError::Worker);
        }
    }
}

/// The `analyze` stage: parses, filters and counts one chunk into `stats` (empty), and hands
/// its buffer back to the reader.
fn analyze_chunk(chunk: Chunk, stats: &mut Stats, filter: &Filter, pool: &Sender<Vec<u8>>) {
    match chunk {
        Chunk::Lines {
            input,
            seq,
            format,
            buf,
            len,
        } => {
            stats.process_chunk(input, seq, format, &buf[..len], filter);
            // If the pool is full the buffer is simply freed.
            let _ = pool.try_send(buf);
        }
        Chunk::LongLine { input, seq, prefix } => {
            stats.long_line(input, seq, &prefix, TOO_LONG);
        }
    }
    stats.finish();
}

/// Sets the stop flag when the `analyze` future is dropped, so the reader thread ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What the source emits: lines of one input, cut at a line boundary.
enum Chunk {
    Lines {
        input: usize,
        seq: u64,
        format: LogFormat,
        buf: Vec<u8>,
        len: usize,
    },
    LongLine {
        input: usize,
        seq: u64,
        prefix: Vec<u8>,
    },
}

#[derive(Default)]
struct ReaderState {
    inputs: Vec<InputSummary>,
    fatal: Option<LogsError>,
    completed: bool,
}

enum Source {
    File(PathBuf),
    Failed(String, io::Error),
    Stdin,
    Bytes(String, Vec<u8>),
    Reader(String, Box<dyn Read + Send>),
}

struct Reader {
    emit: Emitter<Chunk>,
    /// Done when the pipeline stops its source.
    source_ctx: Context,
    pool: Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<ReaderState>>,
    format: Option<LogFormat>,
    chunk_size: usize,
    max_line: usize,
    strict: bool,
    progress: Progress,
}

/// Why reading stopped early.
enum Halt {
    /// The stop flag is set or the workers are gone.
    Stopped,
    /// A read error; the input's chunks so far were sent.
    Io(io::Error),
}

impl Reader {
    fn run(self, inputs: Vec<Input>) {
        let mut sources = Vec::new();
        for input in inputs {
            match input {
                Input::Path(p) => self.expand(&p, &mut sources),
                Input::Stdin => sources.push(Source::Stdin),
                Input::Bytes { name, data } => sources.push(Source::Bytes(name, data)),
                Input::Reader { name, reader } => sources.push(Source::Reader(name, reader)),
            }
        }
        for source in sources {
            if self.stopped() {
                return;
            }
            let fill = matches!(source, Source::File(_) | Source::Bytes(..));
            let (name, opened): (String, io::Result<Box<dyn Read>>) = match source {
                Source::File(path) => {
                    let name = path.display().to_string();
                    let progress = self.progress.clone();
                    let opened = File::open(&path)
                        .map(|f| Box::new(Counting { inner: f, progress }) as Box<dyn Read>);
                    (name, opened)
                }
                Source::Failed(name, e) => (name, Err(e)),
                Source::Stdin => ("-".into(), Ok(Box::new(io::stdin().lock()))),
                Source::Bytes(name, data) => (name, Ok(Box::new(io::Cursor::new(data)))),
                Source::Reader(name, r) => (name, Ok(Box::new(r))),
            };
            let idx = self.push_summary(InputSummary::new(name.clone()));
            let result = opened
                .map_err(Halt::Io)
                .and_then(|r| self.read_input(idx, r, fill));
            match result {
                Ok(()) => {}
                Err(Halt::Stopped) => return,
                Err(Halt::Io(e)) => {
                    if self.strict {
                        self.with_state(|s| s.fatal = Some(LogsError::Read { name, source: e }));
                        return;
                    }
                    self.with_state(|s| s.inputs[idx].error = Some(e.to_string()));
                }
            }
        }
        self.with_state(|s| s.completed = true);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.source_ctx.is_done()
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut ReaderState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn push_summary(&self, s: InputSummary) -> usize {
        self.with_state(|st| {
            st.inputs.push(s);
            st.inputs.len() - 1
        })
    }

    /// A file is taken as named; a directory is walked for log files in name order. Entries
    /// that cannot be read become failed sources (reported, or fatal with `strict`), so one bad
    /// entry does not end the walk.
    fn expand(&self, path: &Path, out: &mut Vec<Source>) {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                out.push(Source::Failed(path.display().to_string(), e));
                return;
            }
        };
        if !meta.is_dir() {
            self.progress.add_total(meta.len());
            out.push(Source::File(path.to_path_buf()));
            return;
        }
        let before = out.len();
        // Symbolic links are followed (a log directory often links the current file);
        // walkdir reports a link back to an ancestor as a loop instead of following it.
        for entry in walkdir::WalkDir::new(path)
            .follow_links(true)
            .sort_by_file_name()
        {
            match entry {
                Ok(e) if e.file_type().is_file() && is_log_file(e.path()) => {
                    if let Ok(m) = e.metadata() {
                        self.progress.add_total(m.len());
                    }
                    out.push(Source::File(e.into_path()));
                }
                Ok(_) => {}
                Err(e) => {
                    let name = e
                        .path()
                        .map_or_else(|| path.display().to_string(), |p| p.display().to_string());
                    let io = match e.loop_ancestor() {
                        Some(a) => io::Error::other(format!(
                            "symbolic link loop back to {}, not followed",
                            a.display()
                        )),
                        None => e
                            .into_io_error()
                            .unwrap_or_else(|| io::Error::other("unreadable directory entry")),
                    };
                    out.push(Source::Failed(name, io));
                }
            }
        }
        if out.len() == before {
            out.push(Source::Failed(
                path.display().to_string(),
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "no log files in this directory (looked for .log, .txt, .jsonl and .gz \
                     files, rotated ones such as access.log.1 included)",
                ),
            ));
        }
    }

    fn take_buf(&self, min_len: usize) -> Vec<u8> {
        let mut buf = self.pool.try_recv().unwrap_or_default();
        let want = self.chunk_size.max(min_len);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        buf
    }

    fn send(&self, chunk: Chunk) -> Result<(), Halt> {
        if self.stopped() {
            return Err(Halt::Stopped);
        }
        // A plain thread may block on the pipeline's queue: sending waits while the `analyze`
        // stage is busy (backpressure) and fails once the pipeline stops its source.
        futures::executor::block_on(self.emit.send(chunk)).map_err(|_| Halt::Stopped)
    }

    /// Reads one input in chunks cut after the last newline, carrying the partial last line
    /// into the next buffer. A buffer with no newline grows up to `max_line`; past that the
    /// line is reported as malformed and skipped up to its newline.
    fn read_input(&self, input: usize, raw: Box<dyn Read + '_>, fill: bool) -> Result<(), Halt> {
        let mut peek = BufReader::with_capacity(64 << 10, raw);
        let gzip = peek
            .fill_buf()
            .map_err(Halt::Io)?
            .starts_with(&[0x1f, 0x8b]);
        let fill = fill || gzip;
        let mut src: Box<dyn Read + '_> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(peek))
        } else {
            Box::new(peek)
        };
        self.with_state(|s| s.inputs[input].gzip = gzip);
        let mut format = None;
        let mut seq = 0u64;
        let mut skipping = false;
        let mut buf = self.take_buf(0);
        let mut filled = 0;
        loop {
            if self.stopped() {
                return Err(Halt::Stopped);
            }
            // Files are read a full buffer at a time; a pipe or reader hands on whatever lines
            // it has after each read, so a slow producer's lines are analyzed as they come.
            let (n, eof, failed) = if fill {
                let (n, failed) = read_full(&mut src, &mut buf[filled..]);
                (n, filled + n < buf.len() || failed.is_some(), failed)
            } else {
                match read_once(&mut src, &mut buf[filled..]) {
                    Ok(n) => (n, n == 0, None),
                    Err(e) => (0, true, Some(e)),
                }
            };
            filled += n;
            self.with_state(|s| s.inputs[input].bytes += n as u64);
            if let Some(e) = failed {
                // A read error (a truncated gzip file): every complete line read before it is
                // still counted, then the error is reported; the cut-off last line is dropped.
                let complete = memrchr(b'\n', &buf[..filled]).map_or(0, |p| p + 1);
                if complete > 0 && !skipping {
                    let format = match format {
                        Some(f) => f,
                        None => {
                            let f = self
                                .format
                                .or(LogFormat::detect(&buf[..complete]))
                                .unwrap_or(LogFormat::Kv);
                            self.with_state(|s| s.inputs[input].format = Some(f));
                            f
                        }
                    };
                    self.send(Chunk::Lines {
                        input,
                        seq,
                        format,
                        buf,
                        len: complete,
                    })?;
                }
                return Err(Halt::Io(e));
            }
            if skipping {
                match memchr(b'\n', &buf[..filled]) {
                    Some(p) => {
                        buf.copy_within(p + 1..filled, 0);
                        filled -= p + 1;
                        skipping = false;
                    }
                    None => {
                        filled = 0;
                        if eof {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            let format = match format {
                Some(f) => f,
                // Detect from complete lines: wait for a newline (or a full buffer, or the end).
                None if !eof && filled < buf.len() && memchr(b'\n', &buf[..filled]).is_none() => {
                    continue;
                }
                None => {
                    let detected = LogFormat::detect(&buf[..filled]);
                    let f = self.format.or(detected).unwrap_or(LogFormat::Kv);
                    self.with_state(|s| {
                        s.inputs[input].format = Some(f);
                        s.inputs[input].detected = self.format.is_none() && detected.is_some();
                    });
                    *format.insert(f)
                }
            };
            if eof {
                if filled > 0 {
                    self.send(Chunk::Lines {
                        input,
                        seq,
                        format,
                        buf,
                        len: filled,
                    })?;
                }
                return Ok(());
            }
            match memrchr(b'\n', &buf[..filled]) {
                Some(p) => {
                    let tail = filled - (p + 1);
                    let mut next = self.take_buf(tail + self.chunk_size / 2);
                    next[..tail].copy_from_slice(&buf[p + 1..filled]);
                    self.send(Chunk::Lines {
                        input,
                        seq,
                        format,
                        buf,
                        len: p + 1,
                    })?;
                    seq += 1;
                    buf = next;
                    filled = tail;
                }
                None if filled < buf.len() => {}
                None if buf.len() < self.max_line => {
                    let grown = (buf.len() * 2).min(self.max_line);
                    buf.resize(grown, 0);
                }
                None => {
                    let prefix = buf[..LONG_PREFIX.min(filled)].to_vec();
                    self.send(Chunk::LongLine { input, seq, prefix })?;
                    seq += 1;
                    skipping = true;
                    filled = 0;
                }
            }
        }
    }
}

/// Whether a walked file is a log: `.log`, `.txt`, `.jsonl` or `.gz`, and their rotations:
/// a numbered or dated suffix after the extension (`access.log.1`, `app.log.2.gz`,
/// `access.log-20240301`).
fn is_log_file(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.ends_with(".gz") {
        return true;
    }
    let mut rest = name;
    // One rotation suffix: `.N` or `-DATE` (digits only).
    if let Some(i) = rest.rfind(['.', '-'])
        && i + 1 < rest.len()
        && rest[i + 1..].bytes().all(|b| b.is_ascii_digit())
    {
        rest = &rest[..i];
    }
    Path::new(rest)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "log" | "txt" | "jsonl"))
}

/// Reads until `buf` is full, the end of input or an error; returns the bytes read, and the
/// error if one stopped it (the bytes before it are kept).
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// One read, retried if interrupted.
fn read_once(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Counts the raw (possibly compressed) bytes read from a file, for the progress bar.
struct Counting<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add_read(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walked_extensions() {
        for ok in [
            "a.log",
            "b.txt",
            "c.jsonl",
            "access.log.1.gz",
            "access.log.1",
            "app.log.2.gz",
            "error.log.10",
            "access.log-20240301",
        ] {
            assert!(is_log_file(Path::new(ok)), "{ok}");
        }
        for no in ["a.json", "b.csv", "log", "x.log.bak", "notes.1", "a.json.2"] {
            assert!(!is_log_file(Path::new(no)), "{no}");
        }
    }
}
