//! `weft crawl`: the command line over [`weft_crawl`].

use std::io::{BufWriter, IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{FutureExt, StreamExt};
use weft_crawl::{CrawlConfig, Crawler, Extract, Progress, SitemapLimits, StopReason, parse_seed};

use super::parse::{parse_duration, parse_size};

/// Arguments of `weft crawl`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Crawl web sites politely and concurrently; one JSON line per page",
    after_help = "Output fields: url, final_url, status, content_type, title, depth, links, bytes, \
                  truncated, attempts, fetch_ms, error; not_followed (why a redirect was not \
                  followed: scope, filter, robots, depth, seen, page_limit, blocked); out_links \
                  (with --links: url, followed, reason); saved (with --save: the body's file); sitemap (with \
                  --sitemaps: the sitemap that listed the page); one field per \
                  --extract/--extract-all.\n\
                  Sitemaps (--sitemaps): each seed host's robots.txt Sitemap: lines, else \
                  /sitemap.xml; indexes followed 3 levels deep, gzip or not; each listed page is a \
                  seed (depth 0) if it is in scope (origins, --allow-domain, --include, --exclude) \
                  and robots.txt allows it. Per document at most 50 MiB (decompressed) and 50,000 \
                  URLs; a sitemap that fails is counted and named on stderr, and the crawl goes \
                  on.\n\
                  Example: weft crawl --extract 'price=.price' --extract 'img=img.main@src' \
                  --extract-all 'tags=.tag' --follow 'a.next' --links https://shop.example/\n\
                  Exit status: 0 when the crawl ends (page errors are in the output), 130 when \
                  interrupted, 2 on bad arguments or I/O errors."
)]
pub(crate) struct Args {
    /// Seed URLs to start from.
    #[arg(value_name = "URL")]
    seeds: Vec<String>,
    /// Read more seed URLs from FILE, one per line (`-` for stdin; `#` starts a comment).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    input: Option<PathBuf>,
    /// Follow links at most N hops from a seed (default: unlimited).
    #[arg(long, value_name = "N")]
    depth: Option<u32>,
    /// Crawl at most N pages (default: unlimited).
    #[arg(long, value_name = "N")]
    max_pages: Option<u64>,
    /// Requests in flight at once, over all hosts.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value = "16")]
    jobs: NonZeroUsize,
    /// Requests in flight at once to one host (scheme://host:port).
    #[arg(long, value_name = "N", default_value = "8")]
    per_host: NonZeroUsize,
    /// Minimum time between request starts to one host (e.g. 250ms, 1s, 0.5).
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "0")]
    delay: Duration,
    /// Random extra delay, up to TIME, added each time.
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "0")]
    jitter: Duration,
    /// Also follow links to this domain and its subdomains, any port (repeatable; by default
    /// only the seeds' origins, scheme://host:port, are crawled).
    #[arg(long = "allow-domain", value_name = "DOMAIN")]
    allow_domain: Vec<String>,
    /// Follow only links whose URL matches this regex (repeatable: any may match).
    #[arg(long, value_name = "REGEX")]
    include: Vec<regex::Regex>,
    /// Never follow links whose URL matches this regex (repeatable).
    #[arg(long, value_name = "REGEX")]
    exclude: Vec<regex::Regex>,
    /// Extract a field from each page: the text of the first element the CSS selector
    /// matches, or an attribute with SELECTOR@ATTR (repeatable; null when nothing matches).
    #[arg(long, value_name = "NAME=SELECTOR", value_parser = parse_extract)]
    extract: Vec<Extract>,
    /// Extract a field as the list of every match (repeatable; SELECTOR@ATTR for attributes).
    #[arg(long, value_name = "NAME=SELECTOR", value_parser = parse_extract)]
    extract_all: Vec<Extract>,
    /// List each page's links (absolute, normalised) with whether they were followed and why not.
    #[arg(long)]
    links: bool,
    /// Follow only the links of elements this CSS selector matches (their href, or the links
    /// inside them), e.g. 'a.next, .pagination'.
    #[arg(long, value_name = "SELECTOR")]
    follow: Option<String>,
    /// Save each successful body in DIR, named by a hash of its final URL, with DIR/index.jsonl
    /// mapping URL to file, status, content type and fetch time.
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    /// With --save: read the pages DIR/index.jsonl lists instead of fetching them, and go on
    /// from there (after an interrupted crawl).
    #[arg(long, requires = "save")]
    resume: bool,
    /// Also crawl the pages the seeds' sitemaps list (robots.txt Sitemap: lines, else
    /// /sitemap.xml; indexes and gzip included), as seeds at depth 0, within scope.
    #[arg(long)]
    sitemaps: bool,
    /// With --sitemaps: read at most N sitemap documents in all (indexes included).
    #[arg(long, value_name = "N", default_value = "1000", requires = "sitemaps")]
    max_sitemaps: NonZeroUsize,
    /// Do not fetch or obey robots.txt.
    #[arg(long)]
    ignore_robots: bool,
    /// Give up on a request after TIME.
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
    /// Read at most SIZE of a body (e.g. 512K, 10M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size::<usize>, default_value = "10M")]
    max_body: usize,
    /// Follow at most N redirects from one URL.
    #[arg(long, value_name = "N", default_value = "10")]
    max_redirects: u32,
    /// Retry transient failures (timeouts, connection errors, 429, 502-504) up to N times.
    #[arg(long, value_name = "N", default_value = "2")]
    retries: u32,
    /// The User-Agent header (its first word is the robots.txt product token).
    #[arg(long, value_name = "UA")]
    user_agent: Option<String>,
    /// Write the JSON lines to FILE instead of stdout. FILE is replaced only when the crawl
    /// ends (or is interrupted); a crawl that cannot start leaves it as it was.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// No progress line on stderr, even on a terminal.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// `--extract`: a field, or clap's error pointing at the argument.
fn parse_extract(spec: &str) -> Result<Extract, String> {
    Extract::parse(spec).map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    })
}

fn read_seeds(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read seeds from stdin")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read seeds from {}", path.display()))?
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

fn progress_line(progress: &Progress, started: Instant) -> String {
    let s = progress.snapshot();
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        s.pages as f64 / secs
    } else {
        0.0
    };
    format!(
        "{} pages, {} queued, {} in flight, {} errors, {:.0} pages/s",
        s.pages, s.queued, s.in_flight, s.errors, rate
    )
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut seeds = args.seeds;
    if let Some(path) = &args.input {
        seeds.extend(read_seeds(path)?);
    }
    if seeds.is_empty() {
        anyhow::bail!("no seed urls: give them as arguments or with -i FILE");
    }
    // Every argument is checked before any output is touched.
    for seed in &seeds {
        parse_seed(seed)?;
    }
    let mut config = CrawlConfig::new()
        .concurrency(args.jobs)
        .per_host(args.per_host)
        .delay(args.delay, args.jitter)
        .include(args.include)
        .exclude(args.exclude)
        .respect_robots(!args.ignore_robots)
        .timeouts(args.timeout, args.timeout.min(Duration::from_secs(10)))
        .max_body(args.max_body)
        .max_redirects(args.max_redirects)
        .retries(
            args.retries,
            Duration::from_millis(500),
            Duration::from_secs(30),
        );
    if let Some(depth) = args.depth {
        config = config.max_depth(depth);
    }
    if let Some(pages) = args.max_pages {
        config = config.max_pages(pages);
    }
    if !args.allow_domain.is_empty() {
        config = config.allow_domains(args.allow_domain);
    }
    if let Some(ua) = args.user_agent {
        config = config.user_agent(ua);
    }
    for field in args.extract {
        config = config.extract(field);
    }
    for field in args.extract_all {
        config = config.extract(field.all());
    }
    config = config
        .record_links(args.links)
        .resume(args.resume)
        .sitemaps(args.sitemaps)
        .sitemap_limits(SitemapLimits::default().documents(args.max_sitemaps));
    if let Some(dir) = args.save {
        config = config.save(dir);
    }
    if let Some(follow) = &args.follow {
        config = config
            .follow(follow)
            .map_err(|e| anyhow::Error::new(e).context("in --follow"))?;
    }

    let crawler = Crawler::new(config)?;
    let mut output = Output::open(args.output.as_deref())?;
    let out = &mut output.writer;

    let (ctx, _cancel) = weft_core::signal::ctrl_c_context();
    let mut crawl = crawler.crawl(&ctx, &seeds)?;

    let started = Instant::now();
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(4),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar
    });

    let mut last_draw = Instant::now();
    while let Some(page) = crawl.next().await {
        // Pages go out as they come: written at once, flushed whenever no other page is
        // waiting, so an interrupted crawl leaves every page crawled so far on disk, and a
        // busy one is not slowed by a flush per line. The writes are blocking I/O on a
        // runtime thread, so they say so.
        let mut next = Some(page);
        tokio::task::block_in_place(|| -> anyhow::Result<()> {
            while let Some(page) = next.take() {
                serde_json::to_writer(&mut *out, &page).context("cannot write the output")?;
                out.write_all(b"\n").context("cannot write the output")?;
                if let Some(Some(more)) = crawl.next().now_or_never() {
                    next = Some(more);
                }
            }
            out.flush().context("cannot write the output")
        })?;
        if let Some(bar) = &bar
            && last_draw.elapsed() >= Duration::from_millis(100)
        {
            last_draw = Instant::now();
            bar.set_message(progress_line(&crawl.progress(), started));
            bar.tick();
        }
    }
    tokio::task::block_in_place(|| out.flush()).context("cannot write the output")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    match crawl.summary() {
        Some(summary) => {
            output.commit()?;
            for failure in &summary.sitemap_failures {
                eprintln!("weft crawl: {failure}");
            }
            let more = summary.stats.sitemap_errors - summary.sitemap_failures.len() as u64;
            if more > 0 {
                eprintln!("weft crawl: ... and {more} more sitemap failures");
            }
            eprintln!("weft crawl: {summary}");
            Ok(match summary.stop {
                StopReason::Cancelled(_) => ExitCode::from(130),
                _ => ExitCode::SUCCESS,
            })
        }
        None => anyhow::bail!("the crawl stopped without a summary (its task failed)"),
    }
}

/// Where the JSON lines go. A regular file is written as a temporary file beside it and renamed
/// over it only when the crawl has ended (finished or interrupted): a crawl that fails early, or
/// a process that is killed, leaves the old file as it was. Other paths (`/dev/null`, a pipe)
/// are written directly.
struct Output {
    writer: BufWriter<Box<dyn Write + Send>>,
    /// The temporary file and the path it replaces.
    pending: Option<(tempfile::TempPath, PathBuf)>,
}

impl Output {
    fn open(path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Output {
                writer: BufWriter::new(Box::new(std::io::stdout())),
                pending: None,
            });
        };
        let existing = std::fs::metadata(path).ok();
        if existing.as_ref().is_some_and(|m| !m.is_file()) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            return Ok(Output {
                writer: BufWriter::new(Box::new(file)),
                pending: None,
            });
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => std::path::Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".weft-crawl-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        // The temporary file is private (0600); the output gets the old file's permissions,
        // or the usual ones for a new file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = existing.map_or(0o644, |m| m.permissions().mode());
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot create {}", path.display()))?;
        }
        let (file, tmp_path) = tmp.into_parts();
        Ok(Output {
            writer: BufWriter::new(Box::new(file)),
            pending: Some((tmp_path, path.to_owned())),
        })
    }

    /// Writes what is buffered and puts the file in place.
    fn commit(&mut self) -> anyhow::Result<()> {
        self.writer.flush().context("cannot write the output")?;
        if let Some((tmp, path)) = self.pending.take() {
            tmp.persist(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
        }
        Ok(())
    }
}
