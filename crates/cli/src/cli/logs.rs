//! `weft logs`: argument parsing, progress bar and output over [`weft_logs`].

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use weft_logs::{
    Input, Level, Options, PanelSet, Progress, Report, analyze, parse_size, parse_status_ranges,
    parse_time, render_html, sample,
};

/// Inputs larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// Report format on stdout.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// A readable report.
    Text,
    /// The report as one JSON object.
    Json,
}

/// The long help of `weft logs` (`--help`); `main.rs` names it on the subcommand too.
pub(crate) const LONG_ABOUT: &str = "Analyze web server and application logs: requests, errors, slow responses, \
latency percentiles, status codes, top paths and clients, requests per minute, and malformed \
lines (counted and quoted, never dropped silently).\n\n\
Formats, detected per file: key=value lines (`2024-03-01 12:00:00 level=info ip=10.1.2.3 \
path=\"/api/x\" status=200 time=12ms msg=\"...\"`), Apache/nginx Combined Log Format (optionally \
followed by a response time), and JSON lines. Gzip input is recognised by content. \
--log-format also takes a preset (vhost-combined, nginx-timed) or an nginx log_format / Apache \
LogFormat string, compiled once: `--log-format '$remote_addr - $remote_user [$time_local] \
\"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time'` or \
`--log-format '%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\" %D'`; the response \
time then comes from $request_time (seconds) or %D (microseconds).\n\n\
Panels (--panels): bandwidth (total, per path, per client), unique visitors per day (same \
address, day and user agent, as GoAccess), not-found (404) paths, static against dynamic \
requests (--static-ext), referrers and referring sites, user agents (browsers, operating \
systems, crawlers; woothee), requests by hour of day, virtual hosts. Each shows when the \
format carries its fields: Combined and custom formats carry bytes, referrer and agent; \
key=value lines and JSON lines when they have bytes/size, referer, ua/user_agent and host \
fields.\n\n\
Memory stays within --memory-budget whatever the input: paths and client addresses are counted \
exactly while they fit, then summarized (Misra-Gries/Space-Saving) with the largest possible \
over-count printed beside the table, and their distinct numbers estimated (HyperLogLog, 0.81% \
standard error).";

/// Arguments of `weft logs`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = LONG_ABOUT,
    after_help = "Examples:\n  weft logs                          analyze a built-in sample\n  \
weft logs /var/log/nginx --status 5xx --since '2024-03-01 12:00'\n  \
zcat app.log.gz | weft logs - --format json\n  \
weft logs logs/ --html report.html\n  \
weft logs access.log --log-format nginx-timed --panels bandwidth,visitors,agents\n  \
weft logs access.log --log-format '$remote_addr - $remote_user [$time_local] \"$request\" $status \
$body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time'\n  \
weft logs access.log --log-format '%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\" %D'\n  \
weft logs access.log --panels none                      the plain report, fastest\n  \
weft logs --follow /var/log/nginx/access.log --html live.html   live view (Ctrl-C: final report)\n\n\
Panels: bandwidth, visitors (unique per day: address, day and user agent; 4xx left out, as \
GoAccess), not-found, static (--static-ext), referrers, agents (browsers, systems, crawlers), \
hours, vhosts. Combined and custom formats carry bytes, referrer and agent; key=value and JSON \
lines when they have bytes/size, referer, ua/user_agent and host fields.\n\n\
Exit status: 0 on success; 2 on bad arguments, when an input could not be read or a path held \
no log file (the report is still printed unless --strict), or when --html names an input; 130 \
when interrupted (Ctrl-C), after printing the partial report. With --follow, Ctrl-C is the \
normal end: the full report is printed and the exit status is 0."
)]
pub(crate) struct Args {
    /// Log files or directories (walked, following symbolic links, for .log, .txt, .jsonl and
    /// .gz files and their rotations such as access.log.1); `-` reads stdin. Without a path, a
    /// built-in deterministic sample is analyzed.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Input format for every input, instead of detecting it per file: kv, combined, json, a
    /// preset (vhost-combined, nginx-timed) or an nginx log_format / Apache LogFormat string.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Only requests at this level or above (trace, debug, info, warn, error, fatal). Lines
    /// without a level get one from their status: 5xx error, 4xx warn, else info.
    #[arg(long, value_name = "LEVEL")]
    min_level: Option<Level>,
    /// Only requests whose target (path and query) contains TEXT.
    #[arg(long = "path", value_name = "TEXT")]
    path_contains: Option<String>,
    /// Only requests whose target matches REGEX.
    #[arg(long, value_name = "REGEX")]
    path_regex: Option<String>,
    /// Only these statuses: codes, ranges and classes, comma-separated (e.g. 404,500-599,3xx).
    #[arg(long, value_name = "RANGES")]
    status: Option<String>,
    // The help text is an attribute, not a doc comment: rustdoc would read `[ HH:MM[:SS]]` as a
    // broken intra-doc link, and escaping it would show backslashes in `--help`.
    #[arg(
        long,
        value_name = "TIME",
        help = "Only requests at or after TIME (YYYY-MM-DD[ HH:MM[:SS]] or RFC 3339; UTC if no zone)"
    )]
    since: Option<String>,
    /// Only requests before TIME.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// A response slower than MS milliseconds counts as slow.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    slow_ms: u64,
    /// Number of top paths and client addresses listed.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// Number of malformed lines quoted.
    #[arg(long, value_name = "N", default_value_t = 5)]
    samples: usize,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Also write the report as a self-contained HTML page with charts to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Stop at the first unreadable input (exit 2, no report) instead of reporting it and going on.
    #[arg(long)]
    strict: bool,
    /// Parse threads (0: one per core, plus one).
    #[arg(long, value_name = "N", default_value_t = 0)]
    workers: usize,
    /// Memory the analysis may use, whatever the input (e.g. 64M, 1G; at least 32M).
    #[arg(long, value_name = "SIZE", default_value = "128M")]
    memory_budget: String,
    /// Panels to count: all, none, or a list of bandwidth, visitors, not-found, static,
    /// referrers, agents, hours, vhosts.
    #[arg(long, value_name = "LIST", default_value = "all")]
    panels: PanelSet,
    /// Extensions that make a request static (comma-separated, replacing the default list of
    /// images, styles, scripts, fonts, media and documents).
    #[arg(long, value_name = "EXTS", value_delimiter = ',')]
    static_ext: Option<Vec<String>>,
    #[command(flatten)]
    follow: super::logs_follow::FollowArgs,
}

fn options(args: &Args) -> anyhow::Result<Options> {
    let mut o = Options::default();
    if let Some(f) = &args.log_format {
        o.set_log_format(f)?;
    }
    o.panels = args.panels;
    if let Some(exts) = &args.static_ext {
        o.static_extensions.clone_from(exts);
    }
    o.min_level = args.min_level;
    o.path_contains.clone_from(&args.path_contains);
    o.path_regex.clone_from(&args.path_regex);
    if let Some(s) = &args.status {
        o.status = parse_status_ranges(s)?;
    }
    o.since = args.since.as_deref().map(parse_time).transpose()?;
    o.until = args.until.as_deref().map(parse_time).transpose()?;
    o.slow_ms = args.slow_ms;
    o.top = args.top;
    o.samples = args.samples;
    o.strict = args.strict;
    o.workers = args.workers;
    o.memory_budget = parse_size(&args.memory_budget)?;
    o.validate()?;
    Ok(o)
}

/// Whether `out` is the same file as `input`, or one of the files a walk of `input` reads.
fn same_file(out: &std::path::Path, input: &std::path::Path) -> bool {
    match (std::fs::canonicalize(out), std::fs::canonicalize(input)) {
        (Ok(o), Ok(i)) => o == i,
        _ => false,
    }
}

/// Refuses an output file that is one of the inputs: writing it would destroy the log.
pub(super) fn check_output(
    out: &std::path::Path,
    inputs: impl IntoIterator<Item = PathBuf>,
) -> anyhow::Result<()> {
    for input in inputs {
        if same_file(out, &input) {
            anyhow::bail!(
                "refusing to write the report to {}: it is one of the inputs (choose another file)",
                out.display()
            );
        }
    }
    Ok(())
}

/// The files the analysis read, as paths (walked directories included).
fn input_paths(report: &Report) -> impl Iterator<Item = PathBuf> + '_ {
    report.inputs.iter().map(|i| PathBuf::from(&i.name))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = options(&args)?;
    if args.follow.follow {
        return super::logs_follow::run(
            &args.follow,
            &args.paths,
            options,
            args.html.as_deref(),
            args.format,
        )
        .await;
    }
    // Before reading anything: an output named like an input given by path.
    if let Some(html) = &args.html {
        check_output(
            html,
            args.paths.iter().filter(|p| p.as_os_str() != "-").cloned(),
        )?;
    }
    let inputs: Vec<Input> = if args.paths.is_empty() {
        sample::builtin()
    } else {
        args.paths
            .iter()
            .map(|p| {
                if p.as_os_str() == "-" {
                    Input::Stdin
                } else {
                    Input::Path(p.clone())
                }
            })
            .collect()
    };
    let progress = Progress::default();
    options.progress = Some(progress.clone());
    let (ctx, _cancel) = weft_core::signal::ctrl_c_context();
    let (bar_done, bar_task) = if std::io::stderr().is_terminal() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        (Some(tx), Some(tokio::spawn(show_progress(progress, rx))))
    } else {
        (None, None)
    };
    let report = analyze(&ctx, inputs, options).await;
    drop(bar_done);
    if let Some(task) = bar_task {
        let _ = task.await;
    }
    let report = report?;

    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Text => write!(out, "{report}")?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    if let Some(path) = &args.html {
        // And a file found by walking a directory.
        check_output(path, input_paths(&report))?;
        std::fs::write(path, render_html(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("weft: wrote {}", path.display());
    }
    let mut failed = false;
    for input in &report.inputs {
        if let Some(e) = &input.error {
            eprintln!("weft: cannot read {}: {e}", input.name);
            failed = true;
        }
    }
    Ok(if report.partial {
        eprintln!("weft: interrupted; the report above is partial");
        ExitCode::from(130)
    } else if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The pipeline's live counters, for the bar: lines counted, chunks analyzed, chunks waiting.
fn stage_message(progress: &Progress) -> String {
    let stages = progress.stages();
    let analyze = stages.iter().find(|s| &*s.name == "analyze");
    let (done, waiting) = analyze.map_or((0, 0), |s| (s.emitted, s.queue_depth));
    format!(
        "{} lines, {done} chunks analyzed, {waiting} waiting",
        progress.lines()
    )
}

/// Draws a progress bar on stderr once the input is known to be large, until `done` fires.
async fn show_progress(progress: Progress, mut done: tokio::sync::oneshot::Receiver<()>) {
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = &mut done => break,
            _ = tick.tick() => {}
        }
        let total = progress.total_bytes();
        if bar.is_none() && total >= PROGRESS_MIN_BYTES {
            let b = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}  {msg}",
            ) {
                b.set_style(style);
            }
            bar = Some(b);
        }
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(progress.read_bytes());
            b.set_message(stage_message(&progress));
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
