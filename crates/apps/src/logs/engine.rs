//! The pipeline: one reader thread, parse+aggregate workers on blocking threads, a merge.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_channel::{Receiver, Sender};
use memchr::{memchr, memrchr};
use weft_core::context::Context;

use super::aggregate::Stats;
use super::filter::Filter;
use super::report::{InputSummary, Report, build};
use super::{Input, LogFormat, LogsError, Options, Progress};

/// Why a long line is malformed.
const TOO_LONG: &str = "line longer than the maximum line length";
/// Bytes of a too-long line kept as its sample.
const LONG_PREFIX: usize = 200;

/// Analyzes `inputs` and returns the report.
///
/// Reading runs on a dedicated thread and parsing on `options.workers` blocking threads
/// (`spawn_blocking`), so the async workers are never blocked; this future only waits.
///
/// When `ctx` is done before the end, the analysis stops within one chunk per worker and the
/// report covers what was analyzed so far, with [`Report::partial`] set and
/// [`Report::stopped_because`] giving the context's cause. Unreadable inputs are listed in the
/// report ([`InputSummary::error`]) unless `options.strict`, which makes the first one an error.
///
/// # Errors
///
/// [`LogsError::Regex`] or [`LogsError::InvalidArgument`] for bad options,
/// [`LogsError::Read`] for an unreadable input with `strict`, [`LogsError::Worker`] if a worker
/// panicked.
///
/// # Cancel safety
///
/// Dropping the future stops the analysis (the threads notice within one chunk) and loses the
/// report. To stop early and keep the report so far, cancel `ctx` instead. A reader thread
/// blocked in a read that never returns (a silent stdin) is left behind, detached; it ends with
/// the read.
///
/// ```
/// use weft_apps::logs::{Input, Options, analyze};
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
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    // Already done: nothing is read, and the report says so.
    let stop = Arc::new(AtomicBool::new(ctx.is_done()));
    let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
    let (tx, rx) = async_channel::bounded::<Chunk>(workers * 2);
    let (pool_tx, pool_rx) = async_channel::bounded::<Vec<u8>>(workers * 2 + 2);
    let state = Arc::new(Mutex::new(ReaderState::default()));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();

    let reader = Reader {
        tx,
        pool: pool_rx,
        stop: Arc::clone(&stop),
        state: Arc::clone(&state),
        format: options.format,
        chunk_size: options.chunk_size,
        max_line: options.max_line,
        strict: options.strict,
        progress: options.progress.clone().unwrap_or_default(),
    };
    // A plain thread, not spawn_blocking: a read that never returns (an idle stdin) must not
    // keep the runtime from shutting down after a cancelled analysis.
    std::thread::Builder::new()
        .name("weft-logs-reader".into())
        .spawn(move || {
            reader.run(inputs);
            let _ = done_tx.send(());
        })
        .map_err(|_| LogsError::Worker)?;

    let slow_us = options.slow_ms.saturating_mul(1000);
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (rx, pool, filter, stop) = (
                rx.clone(),
                pool_tx.clone(),
                Arc::clone(&filter),
                Arc::clone(&stop),
            );
            let samples = options.samples;
            let progress = options.progress.clone().unwrap_or_default();
            tokio::task::spawn_blocking(move || {
                work(&rx, &pool, &filter, &stop, &progress, slow_us, samples)
            })
        })
        .collect();
    drop(pool_tx);

    let all = futures::future::join_all(handles);
    tokio::pin!(all);
    let mut stopped = false;
    let results = tokio::select! {
        biased;
        r = &mut all => r,
        () = ctx.done() => {
            stopped = true;
            // Release: the workers' Acquire load then sees the stop before the closed channel.
            stop.store(true, Ordering::Release);
            rx.close();
            all.await
        }
    };
    drop(rx);
    // Also true when `ctx` was done before the start.
    let stopped = stopped || stop.load(Ordering::Acquire);
    let mut merged: Option<Stats> = None;
    let mut skipped = false;
    for r in results {
        let (stats, skip) = r.map_err(|_| LogsError::Worker)?;
        skipped |= skip;
        match &mut merged {
            Some(m) => m.merge(stats),
            None => merged = Some(stats),
        }
    }
    let mut stats = merged.unwrap_or_else(|| Stats::new(slow_us, options.samples));
    stats.finish();
    if !stopped {
        // The workers end when the reader drops its sender, so the reader is finishing too.
        done_rx.await.map_err(|_| LogsError::Worker)?;
    }
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

/// Sets the stop flag when the `analyze` future is dropped, so its threads end.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

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

/// One worker: parse, filter and count chunks until the channel closes or the stop flag is set.
/// Returns its stats and whether it dropped a chunk because of the stop.
fn work(
    rx: &Receiver<Chunk>,
    pool: &Sender<Vec<u8>>,
    filter: &Filter,
    stop: &AtomicBool,
    progress: &Progress,
    slow_us: u64,
    samples: usize,
) -> (Stats, bool) {
    let mut stats = Stats::new(slow_us, samples);
    while let Ok(chunk) = rx.recv_blocking() {
        if stop.load(Ordering::Acquire) {
            return (stats, true);
        }
        let before = stats.lines;
        match chunk {
            Chunk::Lines {
                input,
                seq,
                format,
                buf,
                len,
            } => {
                stats.process_chunk(input, seq, format, &buf[..len], filter);
                // Hand the buffer back for reuse; if the pool is full it is simply freed.
                let _ = pool.try_send(buf);
            }
            Chunk::LongLine { input, seq, prefix } => {
                stats.long_line(input, seq, &prefix, TOO_LONG);
            }
        }
        progress.add_lines(stats.lines - before);
    }
    stats.finish();
    (stats, false)
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
    tx: Sender<Chunk>,
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
        self.stop.load(Ordering::Acquire)
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
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
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
                    let io = e
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other("filesystem loop"));
                    out.push(Source::Failed(name, io));
                }
            }
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
        self.tx.send_blocking(chunk).map_err(|_| Halt::Stopped)
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
            let (n, eof) = if fill {
                let n = read_full(&mut src, &mut buf[filled..]).map_err(Halt::Io)?;
                (n, filled + n < buf.len())
            } else {
                let n = read_once(&mut src, &mut buf[filled..]).map_err(Halt::Io)?;
                (n, n == 0)
            };
            filled += n;
            self.with_state(|s| s.inputs[input].bytes += n as u64);
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

/// Whether a walked file is a log: `.log`, `.txt`, `.jsonl` or `.gz` (e.g. `access.log.1.gz`).
fn is_log_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "log" | "txt" | "jsonl" | "gz"))
}

/// Reads until `buf` is full or the end of input; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
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
        for ok in ["a.log", "b.txt", "c.jsonl", "access.log.1.gz"] {
            assert!(is_log_file(Path::new(ok)), "{ok}");
        }
        for no in ["a.json", "b.csv", "log", "x.log.bak"] {
            assert!(!is_log_file(Path::new(no)), "{no}");
        }
    }
}
