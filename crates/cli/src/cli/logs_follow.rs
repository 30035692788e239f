//! `weft logs --follow`: the live view over [`weft_logs::follow`], with the terminal dashboard
//! when stdout is a terminal and a summary line per interval when it is not.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use weft_logs::follow::{FollowOptions, Follower, Snapshot, Start, write_atomic};
use weft_logs::tui::Dashboard;
use weft_logs::{Options, Report, render_html};

use super::logs::{OutputFormat, check_output};

/// The `--follow` flags of `weft logs`.
#[derive(Debug, clap::Args)]
pub(crate) struct FollowArgs {
    /// Follow the named files as they grow, like `tail -F`: start at their end (see
    /// --from-start), wait for files that do not exist yet, and handle rotation (renamed and
    /// recreated) and truncation. Shows a dashboard refreshed every second when stdout is a
    /// terminal, else prints a summary line per second; Ctrl-C (or q in the dashboard) stops
    /// and prints the full report. Gzip files and directories cannot be followed.
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
    /// With --follow, count the lines the files already hold first (by default following
    /// starts at their end and counts only new lines).
    #[arg(long, requires = "follow")]
    from_start: bool,
    /// With --follow and --html, rewrite the page every SECS seconds (atomically: readers
    /// never see a half-written page).
    #[arg(long, value_name = "SECS", default_value_t = 5.0, requires = "follow")]
    html_interval: f64,
}

/// Runs the live view until Ctrl-C, then prints the final report.
pub(crate) async fn run(
    args: &FollowArgs,
    paths: &[PathBuf],
    options: Options,
    html: Option<&Path>,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    if paths.is_empty() {
        anyhow::bail!(
            "--follow needs the log files to follow (e.g. weft logs --follow access.log)"
        );
    }
    if paths.iter().any(|p| p.as_os_str() == "-") {
        anyhow::bail!(
            "standard input cannot be followed: without --follow, `weft logs -` already counts \
             its lines as they come"
        );
    }
    if !(args.html_interval.is_finite() && args.html_interval > 0.0) {
        anyhow::bail!("--html-interval must be a positive number of seconds");
    }
    if let Some(html) = html {
        check_output(html, paths.iter().cloned())?;
        // A followed file that does not exist yet cannot be compared by identity.
        let target = std::path::absolute(html)?;
        for p in paths {
            if std::path::absolute(p)? == target {
                anyhow::bail!(
                    "refusing to write the report to {}: it is one of the followed files \
                     (choose another file)",
                    html.display()
                );
            }
        }
    }
    let start = if args.from_start {
        Start::Beginning
    } else {
        Start::End
    };
    let follower = Follower::new(paths.iter().cloned(), options, start)?;
    let (ctx, cancel) = weft_core::signal::ctrl_c_context();
    let dashboard = if std::io::stdout().is_terminal() {
        match Dashboard::start(cancel.clone()) {
            Ok(d) => Some(d),
            Err(e) => {
                // Still useful without the dashboard: the summary lines.
                eprintln!("weft: cannot draw the dashboard ({e}); printing a summary per second");
                None
            }
        }
    } else {
        None
    };
    let interactive = dashboard.is_some();
    // Errors writing the page: printed at once without the dashboard, after it with it (the
    // alternate screen would swallow them).
    let html_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut view = View {
        dashboard,
        format,
        html: html.map(|p| Page {
            path: p.to_path_buf(),
            every: Duration::from_secs_f64(args.html_interval),
            next: Duration::ZERO,
            errors: Arc::clone(&html_errors),
            interactive,
        }),
        stop: cancel,
    };
    let report = follower
        .run(&ctx, &FollowOptions::default(), move |snap| view.show(snap))
        .await?;
    for e in html_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
    {
        eprintln!("weft: {e}");
    }
    finish(&report, html, format)
}

/// What the live view shows at each snapshot.
struct View {
    dashboard: Option<Dashboard>,
    format: OutputFormat,
    html: Option<Page>,
    stop: weft_core::context::CancelFn,
}

/// The HTML page rewritten every `every`.
struct Page {
    path: PathBuf,
    every: Duration,
    next: Duration,
    errors: Arc<Mutex<Vec<String>>>,
    interactive: bool,
}

impl View {
    fn show(&mut self, snap: &Snapshot) {
        let shown = match &mut self.dashboard {
            Some(d) => d.draw(snap),
            None => self.print(snap),
        };
        if let Err(e) = shown {
            // A closed pipe or a gone terminal: nobody is watching any more.
            self.stop
                .cancel_with(format!("cannot write the live view: {e}"));
        }
        if let Some(page) = &mut self.html
            && snap.elapsed >= page.next
        {
            page.next = snap.elapsed + page.every;
            if let Err(e) = write_atomic(&page.path, render_html(&snap.report).as_bytes()) {
                let msg = format!("cannot write {}: {e}", page.path.display());
                if page.interactive {
                    page.errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(msg);
                } else {
                    eprintln!("weft: {msg}");
                }
            }
        }
    }

    /// One line per interval on stdout: text, or a JSON object with `--format json`.
    fn print(&self, snap: &Snapshot) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.format {
            OutputFormat::Text => writeln!(out, "{}", snap.summary())?,
            OutputFormat::Json => {
                let r = &snap.report;
                let line = serde_json::json!({
                    "elapsed_s": snap.elapsed.as_secs_f64(),
                    "lines": r.lines,
                    "new_lines": snap.new_lines,
                    "lines_per_second": snap.lines_per_second,
                    "requests": r.requests,
                    "errors": r.errors,
                    "malformed_lines": r.malformed_lines,
                    "p50_ms": r.latency.as_ref().map(|l| l.p50_ms),
                    "p99_ms": r.latency.as_ref().map(|l| l.p99_ms),
                });
                writeln!(out, "{line}")?;
            }
        }
        out.flush()
    }
}

/// Prints the final report, writes the final page, and says which inputs had errors.
fn finish(report: &Report, html: Option<&Path>, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Text => write!(out, "{report}")?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    if let Some(path) = html {
        write_atomic(path, render_html(report).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("weft: wrote {}", path.display());
    }
    let mut failed = false;
    for input in &report.inputs {
        if let Some(e) = &input.error {
            eprintln!("weft: {}: {e}", input.name);
            failed = true;
        }
    }
    // Stopping is how following ends: Ctrl-C is a success.
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
