//! Fan-out/fan-in file search: workers search files for a term, their results merged.
//! Section 7 of the Go material. For the full tool (regexes, .gitignore, ripgrep-level speed),
//! see `weft grep`.
//!
//! What it fixes in the Go original:
//! - **It listed every file before searching any** (memory grows with the tree, nothing starts
//!   until the walk ends); here the walk streams paths into a bounded channel that the workers
//!   share, so the walk waits when the workers are busy (backpressure).
//! - **Lines over 64 KiB silently ended a file's search** (`bufio.Scanner`'s token limit);
//!   here a file is searched as bytes, any line length, and reading errors are reported.
//! - **It lowercased every line to compare** (an allocation per line); here the term is found
//!   with one `memchr::memmem` pass over the file (lowercased once for `-i`).
//! - **Walk errors were swallowed**, and the search could not be cancelled; here both are
//!   reported, and a Context with a timeout stops the walk and the workers.
//!
//! Run: `cargo run --example parallel_search [-- TERM DIR --workers 4 -i]`

#[path = "common/out.rs"]
mod out;
use out::outln;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use tokio::time::Instant;
use weft::core::chan::{self, Receiver, Sender};
use weft::core::context::Context;
use weft::core::select::merge;

#[derive(Debug, Parser)]
struct Args {
    /// The text to search for.
    #[arg(default_value = "Context")]
    term: String,
    /// Directory to search [default: this repository].
    dir: Option<PathBuf>,
    /// Search workers.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Case-insensitive (ASCII).
    #[arg(short, long)]
    ignore_case: bool,
    /// Stop after this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Print at most this many matching lines per file.
    #[arg(long, default_value_t = 2)]
    show: usize,
}

#[derive(Debug)]
struct FileResult {
    path: PathBuf,
    matches: Vec<(usize, String)>,
    error: Option<String>,
}

/// Searches one file: a memmem pass over its bytes, counting newlines for line numbers.
fn search_file(path: &Path, term: &[u8], ignore_case: bool) -> FileResult {
    let mut result = FileResult {
        path: path.to_path_buf(),
        matches: Vec::new(),
        error: None,
    };
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    if memchr::memchr(0, &data[..data.len().min(8192)]).is_some() {
        return result; // binary file: skip, like grep
    }
    let hay = if ignore_case {
        data.to_ascii_lowercase()
    } else {
        data.clone()
    };
    let finder = memchr::memmem::Finder::new(term);
    let (mut line_no, mut counted_to, mut last_line_start) = (1usize, 0usize, usize::MAX);
    for at in finder.find_iter(&hay) {
        line_no += memchr::memchr_iter(b'\n', &hay[counted_to..at]).count();
        counted_to = at;
        let start = memchr::memrchr(b'\n', &hay[..at]).map_or(0, |i| i + 1);
        if start == last_line_start {
            continue; // one entry per line
        }
        last_line_start = start;
        let end = memchr::memchr(b'\n', &hay[at..]).map_or(hay.len(), |i| at + i);
        result.matches.push((
            line_no,
            String::from_utf8_lossy(&data[start..end]).into_owned(),
        ));
    }
    result
}

/// A worker: takes paths from the shared queue until it closes, sends one result per file.
async fn worker(
    ctx: Context,
    paths: Receiver<PathBuf>,
    out: Sender<FileResult>,
    term: Vec<u8>,
    ignore_case: bool,
) {
    // Ends when the queue is closed and drained, or when the context ends.
    while let Ok(path) = paths.recv_ctx(&ctx).await {
        let term = term.clone();
        // File reads and the scan are blocking work: off the async workers.
        let search = tokio::task::spawn_blocking(move || search_file(&path, &term, ignore_case));
        let Ok(Ok(result)) = ctx.run(search).await else {
            return;
        };
        if out.send(result).await.is_err() {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let term = if args.ignore_case {
        args.term.to_ascii_lowercase()
    } else {
        args.term.clone()
    }
    .into_bytes();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(args.timeout_ms));
    let start = Instant::now();

    // The walk streams into a bounded queue shared by all workers (fan-out).
    let (path_tx, path_rx) = chan::bounded::<PathBuf>(64);
    let walk_ctx = ctx.clone();
    let walker = tokio::task::spawn_blocking(move || {
        let mut errors = Vec::new();
        let entries = walkdir::WalkDir::new(&root).into_iter().filter_entry(|e| {
            e.depth() == 0
                || !(e.file_name().to_string_lossy().starts_with('.') || e.file_name() == "target")
        });
        for entry in entries {
            match entry {
                Ok(e) if e.file_type().is_file() => {
                    // Waits while the workers are busy: backpressure on the walk.
                    let sent =
                        futures::executor::block_on(path_tx.send_ctx(e.into_path(), &walk_ctx));
                    if sent.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        errors // dropping path_tx closes the queue: workers finish and close their outputs
    });

    // One output channel per worker, merged into one stream (fan-in).
    let mut outputs = Vec::new();
    for _ in 0..args.workers.max(1) {
        let (tx, rx) = chan::bounded(16);
        tokio::spawn(worker(
            ctx.clone(),
            path_rx.clone(),
            tx,
            term.clone(),
            args.ignore_case,
        ));
        outputs.push(rx);
    }
    drop(path_rx);
    let mut results: Vec<FileResult> = merge(outputs).collect().await;
    let walk_errors = walker.await.unwrap_or_default();
    results.sort_by(|a, b| a.path.cmp(&b.path));

    let searched = results.len();
    let matching: Vec<&FileResult> = results.iter().filter(|r| !r.matches.is_empty()).collect();
    let lines: usize = matching.iter().map(|r| r.matches.len()).sum();
    for r in &matching {
        outln!("{} ({} lines)", r.path.display(), r.matches.len());
        for (n, text) in r.matches.iter().take(args.show) {
            let text: String = text.trim().chars().take(100).collect();
            outln!("  {n}: {text}");
        }
    }
    for r in results.iter().filter(|r| r.error.is_some()) {
        outln!(
            "error: {}: {}",
            r.path.display(),
            r.error.as_deref().unwrap_or_default()
        );
    }
    for e in &walk_errors {
        outln!("error: {e}");
    }
    outln!(
        "searched {searched} files with {} workers in {:.0?}: {lines} matching lines in {} files{}",
        args.workers,
        start.elapsed(),
        matching.len(),
        ctx.err()
            .map(|e| format!(" (stopped early: {e})"))
            .unwrap_or_default()
    );
    outln!("for regexes, .gitignore rules and ripgrep-level speed: weft grep PATTERN [PATH...]");
    Ok(())
}
