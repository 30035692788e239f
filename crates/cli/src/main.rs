//! The `weft` command line: thin glue over weft's tool crates (see `src/cli/`).

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// weft: Go's concurrency patterns on tokio, as real tools.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// One variant per subcommand; each lives in `src/cli/<name>.rs` as `Args` + `run`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Analyze web server and application logs: traffic, errors, latency percentiles.
    // A variant's doc comment also sets the long help (to none here), replacing the one
    // `cli::logs::Args` declares, so it is named again.
    #[command(long_about = cli::logs::LONG_ABOUT)]
    Logs(cli::logs::Args),
    /// Write deterministic sample logs (for benchmarks and demos).
    #[command(long_about = cli::gen_logs::LONG_ABOUT)]
    GenLogs(cli::gen_logs::Args),
    /// Run the HTTP job server on weft-pool; accepted jobs survive restarts.
    Serve(cli::serve::Args),
    /// Search files for a regex in parallel, respecting .gitignore (exit 0 match, 1 none, 2 error).
    Grep(cli::grep::Args),
    /// Download files concurrently, resumably, never leaving a truncated file at a final name.
    Download(cli::download::Args),
    /// Crawl web sites politely and concurrently; one JSON line per page.
    Crawl(Box<cli::crawl::Args>),
}

/// Keeps glibc's allocator from handing freed memory back to the kernel at once.
///
/// By default glibc serves blocks above a moving threshold (128 KiB to start) with `mmap` and
/// trims a heap's free top after 128 KiB, so a program that keeps freeing and allocating
/// buffers of a few hundred KiB (the HTTP read buffers of `weft download`) pays a page fault
/// and a zeroed page per 4 KiB, again and again; these settings cut the page faults of large
/// downloads by an order of magnitude (the `perf stat` figures are in BENCHMARKS.md, `weft
/// download`). Memory freed stays with the process up to 64 MiB per arena instead of being
/// returned at once.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: `mallopt` only changes allocator parameters (glibc documents it as MT-Safe);
    // it is called with valid parameter names and values, first thing in `main`, and no
    // memory is handed out differently for blocks already allocated.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    cli::init_tracing();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `weft download --threads N` (the figures are in BENCHMARKS.md, issue 28).
    if let Command::Download(args) = &cli.command
        && let Some(n) = args.threads()
    {
        builder.worker_threads(n.get());
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Logs(args) => cli::logs::run(args).await,
            Command::GenLogs(args) => cli::gen_logs::run(args).await,
            Command::Serve(args) => cli::serve::run(args).await,
            Command::Grep(args) => cli::grep::run(args).await,
            Command::Download(args) => cli::download::run(args).await,
            Command::Crawl(args) => cli::crawl::run(*args).await,
        }
    });
    cli::finish(result)
}
