//! `weft gen-logs`: writes deterministic sample logs (for benchmarks and demos).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use weft_logs::LogFormat;
use weft_logs::sample::{Clients, Generator, Shape};

/// The long help of `weft gen-logs` (`--help`); `main.rs` names it again on the subcommand, whose doc
/// comment would otherwise replace it.
pub(crate) const LONG_ABOUT: &str = "Write deterministic sample logs into DIR: LINES lines in total, split evenly \
over FILES files named sample-000.log, sample-001.log, ... (.jsonl for JSON, plus .gz with \
--gzip). The same seed gives the same bytes. About 110 bytes per kv line.\n\n\
By default the logs have few distinct clients (about 3,000) and 24 paths. --clients and --paths \
give them the cardinality of real traffic: Zipf-like popularity (a few busy keys, a long tail), \
id-bearing paths (/api/v1/users/123456, /order/9f3a...), latencies over five orders of \
magnitude.";

/// Arguments of `weft gen-logs`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = LONG_ABOUT,
    after_help = "Examples:\n  weft gen-logs --lines 4000000 --files 8 /tmp/weft-logs     \
the benchmark input, about 450 MB\n  \
weft gen-logs --lines 4000000 --files 8 --clients unique --paths 200000 /tmp/weft-high"
)]
pub(crate) struct Args {
    /// Total number of lines.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    lines: u64,
    /// Number of files.
    #[arg(long, value_name = "F", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    files: u64,
    /// Format: kv, combined or json.
    #[arg(long, value_name = "FORMAT", default_value = "kv")]
    log_format: LogFormat,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Compress the files with gzip.
    #[arg(long)]
    gzip: bool,
    /// Distinct client addresses, with Zipf-like popularity; `unique` gives every request a
    /// new address. By default, about 3,000.
    #[arg(long, value_name = "N|unique", value_parser = parse_clients)]
    clients: Option<Clients>,
    /// Distinct paths: the 24 built-in ones, then id-bearing paths in a Zipf-like long tail.
    /// By default, the 24 only.
    #[arg(long, value_name = "N")]
    paths: Option<u64>,
    /// Directory to write into (created if missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

fn parse_clients(s: &str) -> Result<Clients, String> {
    if s.eq_ignore_ascii_case("unique") {
        return Ok(Clients::Unique);
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Clients::Pool(n)),
        _ => Err(format!("expected a positive number or `unique`, got {s:?}")),
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(move || write_all(&args))
        .await
        .context("the generator thread failed")?
}

fn write_all(args: &Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let ext = match args.log_format {
        LogFormat::Json => "jsonl",
        _ => "log",
    };
    // One generator for all files, so time runs on from one file to the next.
    let mut shape = Shape::default();
    if let Some(c) = args.clients {
        shape.clients = c;
    }
    shape.paths = args.paths.unwrap_or(0);
    let mut generator = Generator::with_shape(args.log_format, args.seed, shape);
    let mut bytes = 0;
    for i in 0..args.files {
        let lines = args.lines / args.files + u64::from(i < args.lines % args.files);
        let mut name = format!("sample-{i:03}.{ext}");
        if args.gzip {
            name.push_str(".gz");
        }
        let path = args.dir.join(name);
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let write = |w: &mut dyn Write, g: &mut Generator| -> std::io::Result<()> {
            let mut w = BufWriter::with_capacity(1 << 20, w);
            g.write_lines(&mut w, lines)?;
            w.flush()
        };
        if args.gzip {
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            write(&mut gz, &mut generator)
                .and_then(|()| gz.finish().map(drop))
                .with_context(|| format!("cannot write {}", path.display()))?;
        } else {
            let mut f = file;
            write(&mut f, &mut generator)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
    }
    eprintln!(
        "weft: wrote {} lines in {} files ({:.1} MB) to {}",
        args.lines,
        args.files,
        bytes as f64 / 1e6,
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
