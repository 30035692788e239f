//! Processes every file under a directory with N workers, under a Context with a timeout.
//! Section 10 of the Go material (its concurrent FileProcessor).
//!
//! What it fixes in the Go original:
//! - **The processing function never saw the context**, so a timeout could not stop a file
//!   half-way; here it receives the `Context` and checks it between chunks.
//! - **Workers were abandoned on timeout** (`return` while they still ran) and **errors were
//!   dropped** when the error channel was full (`default:` branch). Here an `ErrGroup` with a
//!   limit of N joins every worker before returning, and `wait_all` reports *every* error.
//! - **The result loop never ended**: its `break` left only the `select`, not the `for`. There
//!   is no hand-written result loop to get wrong here.
//!
//! Run: `cargo run --example file_processor [-- DIR --workers 4 --timeout-ms 5000]`
//! (by default it processes this repository's source files).

#[path = "common/out.rs"]
mod out;
use out::outln;
#[path = "common/runtime.rs"]
mod runtime;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use weft::core::context::{Context, ContextError};
use weft::core::group::{ErrGroup, GroupError};

#[derive(Debug, Parser)]
struct Args {
    /// Directory to process [default: this repository's source].
    dir: Option<PathBuf>,
    /// Files processed at once.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Give up on the whole run after this long.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Simulated extra work per file, in milliseconds (to watch the timeout act).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Run on one thread with tokio's clock paused: every timeout resolves the same way on any
    /// machine (used by the tests).
    #[arg(long)]
    paused_clock: bool,
}

#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not UTF-8 text (byte {offset})")]
    NotText { path: String, offset: usize },
    #[error("{path}: stopped: {reason}")]
    Stopped { path: String, reason: ContextError },
}

#[derive(Default)]
struct Totals {
    files: AtomicU64,
    lines: AtomicU64,
    bytes: AtomicU64,
}

/// The per-file work: reads the file in chunks, checking the context between them, and counts
/// lines. Fails on files that are not UTF-8 text.
async fn process(
    ctx: &Context,
    path: &Path,
    delay: Duration,
    totals: &Totals,
) -> Result<(), FileError> {
    let name = path.display().to_string();
    let stopped = |reason| FileError::Stopped {
        path: name.clone(),
        reason,
    };
    ctx.run(tokio::time::sleep(delay)).await.map_err(stopped)?;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|source| FileError::Io {
            path: name.clone(),
            source,
        })?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut content = Vec::new();
    loop {
        let n = ctx
            .run(file.read(&mut buf))
            .await
            .map_err(stopped)?
            .map_err(|source| FileError::Io {
                path: name.clone(),
                source,
            })?;
        if n == 0 {
            break;
        }
        content.extend_from_slice(&buf[..n]);
    }
    if let Err(e) = std::str::from_utf8(&content) {
        return Err(FileError::NotText {
            path: name,
            offset: e.valid_up_to(),
        });
    }
    totals.files.fetch_add(1, Ordering::Relaxed);
    totals.lines.fetch_add(
        content.iter().filter(|&&b| b == b'\n').count() as u64,
        Ordering::Relaxed,
    );
    totals
        .bytes
        .fetch_add(content.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// Walks `root` (skipping hidden entries and `target/`), stopping when `ctx` ends.
async fn walk(
    ctx: &Context,
    root: &Path,
    mut visit: impl AsyncFnMut(PathBuf),
) -> std::io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries = tokio::fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            if ctx.is_done() {
                return Ok(());
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            let kind = entry.file_type().await?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                visit(entry.path()).await;
            }
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    runtime::build(args.paused_clock)?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let root = args
        .dir
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let start = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(args.timeout_ms));
    let totals = Arc::new(Totals::default());
    let delay = Duration::from_millis(args.delay_ms);

    let mut group: ErrGroup<FileError> = ErrGroup::new();
    group.set_limit(NonZeroUsize::new(args.workers.max(1)).unwrap_or(NonZeroUsize::MIN));
    let walked = walk(&ctx, &root, async |path| {
        let (ctx, totals) = (ctx.clone(), Arc::clone(&totals));
        // Waits for one of the N slots: the walk never runs ahead of the workers.
        group
            .go(async move { process(&ctx, &path, delay, &totals).await })
            .await;
    })
    .await;
    if let Err(e) = walked {
        outln!("walk stopped early: {e}");
    }
    // Every worker is joined here, timeout or not, and every error is kept.
    let errors: Vec<GroupError<FileError>> = group.wait_all().await.err().unwrap_or_default();

    outln!(
        "processed {} files, {} lines, {} bytes under {} in {:.0?} with {} workers",
        totals.files.load(Ordering::Relaxed),
        totals.lines.load(Ordering::Relaxed),
        totals.bytes.load(Ordering::Relaxed),
        root.display(),
        start.elapsed(),
        args.workers
    );
    if let Some(e) = ctx.err() {
        outln!("run ended by its context: {e}");
    }
    if !errors.is_empty() {
        outln!("{} errors:", errors.len());
        let mut lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        lines.sort();
        for line in lines {
            outln!("  {line}");
        }
    }
    Ok(())
}
