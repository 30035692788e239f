//! `weft download`: glue between the command line and [`weft_download`].

use std::io::{IsTerminal, Write};
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::parse::parse_size;
use weft_download::{
    Bars, Config, Downloader, NoProgress, Outcome, Partial, Progress, Proxies, Report, Request,
    Sha256Digest, parse_list,
};

/// Arguments of `weft download`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Proxies: by default those the environment names (http_proxy, https_proxy, \
all_proxy, no_proxy, as curl reads them); --proxy and --noproxy override them.\n\n\
Exit status: 0 when every file was downloaded, 1 when any failed, \
130 when interrupted, 2 on usage or setup errors."
)]
pub(crate) struct Args {
    /// URLs to download (http or https).
    urls: Vec<String>,
    /// Read URLs from FILE, one per line, optionally followed by `sha256:HEX`; `#` starts a
    /// comment; `-` reads standard input.
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    input: Option<PathBuf>,
    /// Directory to save into (created if missing).
    #[arg(
        short = 'o',
        long = "output-dir",
        value_name = "DIR",
        default_value = "."
    )]
    output: PathBuf,
    /// Downloads running at once, in total.
    #[arg(short = 'j', long, default_value_t = NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN))]
    jobs: NonZeroUsize,
    /// Downloads running at once against one host.
    #[arg(long, default_value_t = NonZeroUsize::new(6).unwrap_or(NonZeroUsize::MIN))]
    per_host: NonZeroUsize,
    /// Connections per file: files the server serves in ranges (with a size and an ETag or
    /// Last-Modified) are fetched as N byte ranges at once into the same `.part` file; a
    /// connection that finishes early takes over half of the slowest's rest. By default, 4 for
    /// files of 64 MiB or more, else 1; 1 never splits. Bounded by --per-host.
    #[arg(long, value_name = "N")]
    split: Option<NonZeroUsize>,
    /// Threads that receive and write the bodies. By default, one per CPU core. 1 spends the
    /// least CPU per byte (each body is received and written on one thread, in its cache; on
    /// loopback about 7% less than the default and at or below curl's) but is no faster than
    /// one connection's thread when several large files arrive at once.
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
    /// Most bytes a second for all downloads together, as curl's (suffixes K, M, G are powers
    /// of 1024: 500K, 2M).
    #[arg(long, value_name = "RATE", value_parser = parse_size::<NonZeroU64>)]
    limit_rate: Option<NonZeroU64>,
    /// Most bytes a second from one host (host:port), on top of --limit-rate.
    #[arg(long, value_name = "RATE", value_parser = parse_size::<NonZeroU64>)]
    limit_rate_per_host: Option<NonZeroU64>,
    /// Requests per file before giving up (retries use exponential backoff with jitter).
    #[arg(long, default_value_t = 5)]
    tries: u32,
    /// Expected SHA-256 (`sha256:HEX`) of the single URL given on the command line.
    #[arg(long, value_name = "sha256:HEX")]
    checksum: Option<String>,
    /// Seconds allowed to establish a connection.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    connect_timeout: f64,
    /// Seconds allowed without receiving data (headers or body).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    idle_timeout: f64,
    /// Largest file accepted, in bytes (suffixes K, M, G are powers of 1024).
    #[arg(long, value_name = "BYTES", value_parser = parse_size::<u64>)]
    max_size: Option<u64>,
    /// Redirects followed per request.
    #[arg(long, default_value_t = 10)]
    max_redirects: usize,
    /// Replace existing files instead of saving as `name (1).ext`.
    #[arg(long)]
    overwrite: bool,
    /// fsync each file before moving it to its final name (survives power loss).
    #[arg(long)]
    fsync: bool,
    /// HTTP proxy for every URL (`http://[user:pass@]host[:port]`; https goes through a
    /// CONNECT tunnel); `""` uses none. By default, the environment's.
    #[arg(short = 'x', long, value_name = "URL")]
    proxy: Option<String>,
    /// Hosts reached without the proxy, comma-separated (`example.com` also covers its
    /// subdomains; `*` covers every host). By default, `no_proxy` from the environment.
    #[arg(long, value_name = "LIST")]
    noproxy: Option<String>,
    /// Also trust the certificate authorities in this PEM file (for servers whose certificate
    /// a private CA signed); unlike curl's, the usual roots stay trusted too.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Use HTTP/1.1 even with servers that offer HTTP/2. By default, https servers that offer
    /// h2 (ALPN) get HTTP/2, and the downloads from one host share one connection.
    #[arg(long = "http1.1")]
    http1_1: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Do not draw progress bars (they are never drawn when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
}

fn seconds(s: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("invalid {what} {s}"))
}

fn requests(args: &Args) -> anyhow::Result<Vec<Request>> {
    let mut requests = Vec::new();
    for url in &args.urls {
        requests.push(Request::parse(url)?);
    }
    if let Some(path) = &args.input {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        requests.extend(parse_list(&text).with_context(|| format!("in {}", path.display()))?);
    }
    if let Some(sum) = &args.checksum {
        if requests.len() != 1 || args.input.is_some() {
            bail!(
                "--checksum needs exactly one URL argument (put `URL sha256:HEX` lines in -i FILE for more)"
            );
        }
        let digest =
            Sha256Digest::parse(sum).with_context(|| format!("invalid checksum {sum:?}"))?;
        if let Some(r) = requests.pop() {
            requests.push(r.with_sha256(digest));
        }
    }
    if requests.is_empty() {
        bail!("no URLs given (pass them as arguments or with -i FILE)");
    }
    Ok(requests)
}

/// The environment's proxies, with `--proxy` and `--noproxy` applied on top.
fn proxies(args: &Args) -> anyhow::Result<Proxies> {
    let p = match args.proxy.as_deref().map(str::trim) {
        None => Proxies::from_env().context("in the proxy environment variables")?,
        Some("") => Proxies::none(),
        Some(url) => Proxies::none().http(url)?.https(url)?.no_proxy_from_env(),
    };
    Ok(match &args.noproxy {
        Some(list) => p.no_proxy(list),
        None => p,
    })
}

impl Args {
    /// The async worker threads the runtime should have for this command (`--threads`), when
    /// not the runtime's default.
    pub(crate) fn threads(&self) -> Option<NonZeroUsize> {
        self.threads
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let requests = requests(&args)?;
    let config = Config::new(&args.output)
        .jobs(args.jobs)
        .per_host(args.per_host)
        .split(args.split)
        .limit_rate(args.limit_rate)
        .limit_rate_per_host(args.limit_rate_per_host)
        .max_attempts(args.tries)
        .connect_timeout(seconds(args.connect_timeout, "--connect-timeout")?)
        .idle_timeout(seconds(args.idle_timeout, "--idle-timeout")?)
        .max_size(args.max_size)
        .max_redirects(args.max_redirects)
        .overwrite(args.overwrite)
        .fsync(args.fsync)
        .http1_only(args.http1_1)
        .proxies(proxies(&args)?);
    let config = match &args.cacert {
        Some(path) => config.cacert(path),
        None => config,
    };
    let downloader = Downloader::new(config)?;
    let (ctx, _cancel) = weft_core::signal::ctrl_c_context();

    let bars = (!args.no_progress && std::io::stderr().is_terminal())
        .then(|| Arc::new(Bars::new(requests.len())));
    let progress: Arc<dyn Progress> = match &bars {
        Some(b) => b.clone(),
        None => Arc::new(NoProgress),
    };
    let report = downloader.run_with_progress(&ctx, requests, progress).await;
    if let Some(b) = &bars {
        b.clear();
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, &report)?;
    } else {
        print_table(&mut out, &report)?;
    }
    out.flush()?;
    let (complete, failed, cancelled) = report.counts();
    if let Some(why) = &report.interrupted {
        eprintln!(
            "weft: interrupted ({why}); {complete} complete, {cancelled} stopped{}",
            partial_counts(&report)
        );
        return Ok(ExitCode::from(130));
    }
    if failed > 0 {
        let partials = partial_counts(&report);
        if !partials.is_empty() {
            eprintln!("weft: {failed} failed{partials}");
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `"; N partial files kept for resume (run again to continue), M removed (...)"`, or nothing.
fn partial_counts(report: &Report) -> String {
    let (mut kept, mut removed) = (0, 0);
    for r in &report.results {
        match r.partial {
            Some(Partial::Kept { .. }) => kept += 1,
            Some(Partial::Removed { .. }) => removed += 1,
            _ => {}
        }
    }
    let mut text = String::new();
    if kept > 0 {
        text.push_str(&format!(
            "; {kept} partial file{} kept for resume (run the same command again to continue)",
            if kept == 1 { "" } else { "s" }
        ));
    }
    if removed > 0 {
        text.push_str(&format!(
            "; {removed} partial file{} removed (no ETag or Last-Modified to resume against)",
            if removed == 1 { "" } else { "s" }
        ));
    }
    text
}

fn print_table(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<9} {:>12} {:>9} {:>5}  {:<40} URL",
        "OUTCOME", "BYTES", "TIME", "TRIES", "PATH"
    )?;
    for r in &report.results {
        let path = r
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "-".to_owned());
        let outcome = match &r.outcome {
            Outcome::Complete => "ok",
            Outcome::Cancelled => "cancelled",
            _ => "failed",
        };
        writeln!(
            out,
            "{:<9} {:>12} {:>8.2}s {:>5}  {:<40} {}",
            outcome,
            r.bytes,
            r.duration.as_secs_f64(),
            r.attempts,
            path,
            r.url
        )?;
        if let Outcome::Failed(_) = &r.outcome {
            writeln!(out, "          {}", r.outcome)?;
        }
        if let Some(partial) = &r.partial {
            writeln!(out, "          {partial}")?;
        }
    }
    let (c, f, x) = report.counts();
    let bytes: u64 = report
        .results
        .iter()
        .filter(|r| r.outcome.is_complete())
        .map(|r| r.bytes)
        .sum();
    writeln!(
        out,
        "{c} complete ({bytes} bytes), {f} failed, {x} cancelled"
    )
}

fn print_json(out: &mut impl Write, report: &Report) -> anyhow::Result<()> {
    let results: Vec<_> = report
        .results
        .iter()
        .map(|r| {
            let (outcome, error) = match &r.outcome {
                Outcome::Complete => ("ok", None),
                Outcome::Cancelled => ("cancelled", None),
                other => ("failed", Some(other.to_string())),
            };
            serde_json::json!({
                "url": r.url.as_str(),
                "path": r.path.as_ref().map(|p| p.display().to_string()),
                "bytes": r.bytes,
                "resumed_from": r.resumed_from,
                "duration_ms": r.duration.as_secs_f64() * 1000.0,
                "attempts": r.attempts,
                "outcome": outcome,
                "error": error,
                "partial": match &r.partial {
                    Some(Partial::Kept { validator }) => {
                        serde_json::json!({ "kept": true, "validator": validator })
                    }
                    Some(Partial::Removed { bytes }) => {
                        serde_json::json!({ "kept": false, "removed_bytes": bytes })
                    }
                    _ => serde_json::Value::Null,
                },
            })
        })
        .collect();
    let doc = serde_json::json!({
        "results": results,
        "interrupted": report.interrupted,
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)?;
    Ok(())
}
