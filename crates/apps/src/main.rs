//! The `weft` command line: thin glue over the `weft_apps` library (see `src/cli/`).

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
    Logs(cli::logs::Args),
    /// Write deterministic sample logs (for benchmarks and demos).
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
