//! `weft grep`: parallel file search, printed like grep/ripgrep, over [`weft_search`].

use std::io::{self, BufWriter, IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use futures::StreamExt;
use weft_search::{FileResult, Report, Search, SearchStream};

/// Arguments of `weft grep`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 if a line matched, 1 if none did, 2 if an error occurred \
    (an invalid pattern, or a file or directory that could not be read: those are reported on \
    stderr and skipped)."
)]
pub(crate) struct Args {
    /// Regular expression to search for (Rust regex syntax), or a literal string with -F.
    pattern: String,
    /// Files or directories to search [default: the current directory].
    paths: Vec<PathBuf>,
    /// Match regardless of case.
    #[arg(short = 'i', long)]
    ignore_case: bool,
    /// Treat PATTERN as a literal string, not a regex.
    #[arg(short = 'F', long)]
    fixed_strings: bool,
    /// Only match whole words.
    #[arg(short = 'w', long)]
    word_regexp: bool,
    /// Print line numbers [default: on when stdout is a terminal].
    #[arg(short = 'n', long, overrides_with = "no_line_number")]
    line_number: bool,
    /// Do not print line numbers.
    #[arg(short = 'N', long, overrides_with = "line_number")]
    no_line_number: bool,
    /// Print the number of matching lines per matching file.
    #[arg(short = 'c', long, conflicts_with = "files_with_matches")]
    count: bool,
    /// Print only the names of matching files.
    #[arg(short = 'l', long)]
    files_with_matches: bool,
    /// Only search paths matching GLOB, or not matching it with a leading `!` (repeatable;
    /// gitignore syntax; overrides ignore files).
    #[arg(short = 'g', long = "glob", value_name = "GLOB")]
    globs: Vec<String>,
    /// Search hidden files and directories too.
    #[arg(long)]
    hidden: bool,
    /// Do not respect .gitignore, .ignore and git exclude files.
    #[arg(long)]
    no_ignore: bool,
    /// Follow symbolic links (a link loop is reported and not followed).
    #[arg(short = 'L', long)]
    follow: bool,
    /// Order of the output: `path` sorts files by path (still searched in parallel).
    #[arg(long, value_enum, default_value_t = Sort::None)]
    sort: Sort,
    /// Number of searcher threads [default: number of CPUs].
    #[arg(short = 'j', long)]
    threads: Option<NonZeroUsize>,
    /// Print the file name with each line [default: on unless searching a single file].
    #[arg(short = 'H', long, overrides_with = "no_filename")]
    with_filename: bool,
    /// Never print file names with lines.
    #[arg(long, overrides_with = "with_filename")]
    no_filename: bool,
    /// Print the file name once above its lines [default: on when stdout is a terminal].
    #[arg(long, overrides_with = "no_heading")]
    heading: bool,
    /// Print the file name on each line, not above the group.
    #[arg(long, overrides_with = "heading")]
    no_heading: bool,
}

/// Output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Sort {
    /// The order files finish in (fastest).
    None,
    /// By path.
    Path,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = if args.files_with_matches {
        Report::Files
    } else if args.count {
        Report::Count
    } else {
        Report::Lines
    };
    let mut builder = Search::builder(args.pattern.as_str());
    builder
        .case_insensitive(args.ignore_case)
        .fixed_strings(args.fixed_strings)
        .word(args.word_regexp)
        .hidden(args.hidden)
        .ignore_files(!args.no_ignore)
        .follow_links(args.follow)
        .sort_by_path(args.sort == Sort::Path)
        .report(report)
        // Whole lines are printed, without highlighting: no need to locate the matches.
        .match_ranges(false);
    for glob in &args.globs {
        builder.glob(glob.as_str());
    }
    if let Some(threads) = args.threads {
        builder.threads(threads);
    }
    let search = builder.build()?;

    let tty = io::stdout().is_terminal();
    let single_file = args.paths.len() == 1 && !args.paths[0].is_dir();
    let printer = Printer {
        report,
        with_filename: if args.with_filename || args.no_filename {
            args.with_filename
        } else {
            !single_file
        },
        line_number: if args.line_number || args.no_line_number {
            args.line_number
        } else {
            tty
        },
        heading: if args.heading || args.no_heading {
            args.heading
        } else {
            tty
        },
        // Searching the current directory by default: print `src/x.rs`, not `./src/x.rs`.
        strip_dot: args.paths.is_empty(),
        flush_each_file: tty,
        groups: 0,
    };

    let (ctx, _cancel) = weft_core::signal::ctrl_c_context();
    let stream = search.run(&ctx, &args.paths);
    // Printing is blocking I/O: it runs on a blocking thread that pulls from the stream.
    let runtime = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || print_all(&runtime, stream, printer))
        .await
        .context("the printing thread failed")??;

    if ctx.is_done() {
        // Interrupted: the shell convention for SIGINT.
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::from(if outcome.errored {
        2
    } else if outcome.matched {
        0
    } else {
        1
    }))
}

#[derive(Debug, Default)]
struct Outcome {
    matched: bool,
    errored: bool,
}

/// Prints every result as it arrives. A write error (a broken pipe from `| head`) ends the
/// search: dropping the stream stops its threads.
fn print_all(
    runtime: &tokio::runtime::Handle,
    mut stream: SearchStream,
    mut printer: Printer,
) -> io::Result<Outcome> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut outcome = Outcome::default();
    while let Some(file) = runtime.block_on(stream.next()) {
        if let Some(err) = file.error() {
            outcome.errored = true;
            // Keep stdout and stderr in order for a reader of both.
            out.flush()?;
            if file.path().as_os_str().is_empty() {
                eprintln!("weft grep: {err}");
            } else {
                eprintln!("weft grep: {}: {err}", file.path().display());
            }
        }
        if file.is_match() {
            outcome.matched = true;
            printer.print(&mut out, &file)?;
            if printer.flush_each_file {
                out.flush()?;
            }
        }
    }
    out.flush()?;
    Ok(outcome)
}

#[derive(Debug)]
struct Printer {
    report: Report,
    with_filename: bool,
    line_number: bool,
    heading: bool,
    strip_dot: bool,
    flush_each_file: bool,
    /// Groups printed so far (headings are separated by a blank line).
    groups: u64,
}

impl Printer {
    fn print(&mut self, out: &mut impl Write, file: &FileResult) -> io::Result<()> {
        let path = self.display_path(file.path());
        match self.report {
            Report::Files => {
                out.write_all(path)?;
                out.write_all(b"\n")?;
            }
            Report::Count => {
                if self.with_filename {
                    out.write_all(path)?;
                    out.write_all(b":")?;
                }
                writeln!(out, "{}", file.match_count())?;
            }
            _ => {
                let heading = self.heading && self.with_filename;
                if heading {
                    if self.groups > 0 {
                        out.write_all(b"\n")?;
                    }
                    out.write_all(path)?;
                    out.write_all(b"\n")?;
                }
                for line in file.lines() {
                    if self.with_filename && !heading {
                        out.write_all(path)?;
                        out.write_all(b":")?;
                    }
                    if self.line_number {
                        write!(out, "{}:", line.number())?;
                    }
                    out.write_all(line.bytes())?;
                    out.write_all(b"\n")?;
                }
            }
        }
        self.groups += 1;
        Ok(())
    }

    /// The path's bytes as they are on disk (a non-UTF-8 name is printed as it is, like grep).
    fn display_path<'a>(&self, path: &'a Path) -> &'a [u8] {
        let path = if self.strip_dot {
            path.strip_prefix(".").unwrap_or(path)
        } else {
            path
        };
        path.as_os_str().as_encoded_bytes()
    }
}
