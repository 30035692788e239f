//! Glue shared by the subcommands: logging set-up and turning results into exit codes.

use std::io::ErrorKind;
use std::process::ExitCode;

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Maps a subcommand's result to the process exit code. A broken pipe (`weft ... | head`) is a
/// clean exit; any other error is printed with its chain of causes and exits with 2.
pub(crate) fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            let broken_pipe = err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("weft: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}

pub(crate) mod crawl;
pub(crate) mod download;
pub(crate) mod gen_logs;
pub(crate) mod grep;
pub(crate) mod logs;
pub(crate) mod logs_follow;
pub(crate) mod parse;
pub(crate) mod serve;
