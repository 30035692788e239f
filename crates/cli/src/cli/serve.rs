//! `weft serve`: the job server (see `weft_serve`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use weft_serve::store::PgConfig;
use weft_serve::{JobServer, ServeConfig, Token};

use super::parse::parse_duration;

/// Run the HTTP job server: POST /api/jobs, GET/DELETE /api/jobs/{id}, /healthz, /metrics.
///
/// Accepted jobs are stored in SQLite before the server answers 202, and run again after a
/// crash or restart. SIGTERM or Ctrl-C stops accepting (503), lets jobs finish for the grace
/// period, and puts what is left back in the queue for the next start.
///
/// With --db postgres://... every node started on the same database serves one queue: nodes
/// claim jobs under a lease (renewed while they run), a killed node's jobs run elsewhere once
/// its lease lapses (--lease plus --sweep-interval, 40 s by default), and a DELETE on any node
/// stops the job on the node running it. Jobs run at least once.
///
/// Binding an address other than loopback needs a token (--token or WEFT_TOKEN; clients send
/// `Authorization: Bearer <token>`), or --insecure to serve without one.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Address to bind (loopback by default; another address needs --token or --insecure).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Bearer token every route but /healthz requires.
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve a non-loopback address without a token (anyone who can reach it may submit jobs).
    #[arg(long)]
    insecure: bool,
    /// Worker count [default: number of CPUs].
    #[arg(long, env = "NUM_WORKERS")]
    workers: Option<usize>,
    /// Queue capacity per priority level.
    #[arg(long, env = "QUEUE_SIZE", default_value_t = 100)]
    queue_size: usize,
    /// Job database: a SQLite file, or postgres://user@host/db for a queue shared by many
    /// nodes [default: $XDG_DATA_HOME/weft/jobs.db or ~/.local/share/weft/jobs.db].
    #[arg(
        long,
        env = "WEFT_DB",
        hide_env_values = true,
        conflicts_with = "in_memory"
    )]
    db: Option<PathBuf>,
    /// Keep jobs in memory only (nothing survives a restart).
    #[arg(long)]
    in_memory: bool,
    /// Fsync every commit fully (survives power loss; one fsync per commit batch).
    #[arg(long)]
    db_full_sync: bool,
    /// How long to gather concurrent submissions into one SQLite commit after the first
    /// (0: a batch is what queued up during the previous commit).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    commit_window: Duration,
    /// The most writes in one SQLite commit.
    #[arg(long, default_value = "512")]
    commit_batch: NonZeroUsize,
    /// How long jobs may finish after shutdown starts (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    grace: Duration,
    /// Per-job timeout.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    job_timeout: Duration,
    /// Duration of one unit of simulated work.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    work_step: Duration,
    /// A waiting job moves up one priority level per this much waiting.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    aging: Duration,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_body: usize,
    /// How long a client may take to send a request's headers (and a kept-alive connection
    /// may sit idle).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// How long a client may take to send a request's body.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    body_timeout: Duration,
    /// Connections served at once [default: the file-descriptor limit less 64].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Delete finished jobs this long after they ended (e.g. 7d, 12h); by default they are
    /// kept.
    #[arg(long, value_parser = parse_duration)]
    keep_finished: Option<Duration>,
    /// How long a claimed job stays this node's without a heartbeat (renewed every
    /// third of it while the job runs).
    #[arg(long, default_value = "30s", value_parser = parse_duration, help_heading = "PostgreSQL")]
    lease: Duration,
    /// How often each node returns jobs whose lease lapsed and ages waiting jobs.
    #[arg(long, default_value = "10s", value_parser = parse_duration, help_heading = "PostgreSQL")]
    sweep_interval: Duration,
    /// How often an idle node looks for due jobs without a notification.
    #[arg(long, default_value = "2s", value_parser = parse_duration, help_heading = "PostgreSQL")]
    poll_interval: Duration,
    /// How many times a job may be claimed before it ends `dead`.
    #[arg(long, default_value_t = 5, help_heading = "PostgreSQL")]
    max_attempts: u32,
    /// Retry failed and timed-out jobs (after an exponential backoff with jitter)
    /// while attempts remain, then mark them `dead`.
    #[arg(long, help_heading = "PostgreSQL")]
    retry_failed: bool,
    /// The first retry's delay (doubling for each further one, at most 1 h).
    #[arg(long, default_value = "1s", value_parser = parse_duration, help_heading = "PostgreSQL")]
    retry_backoff: Duration,
}

/// Whether `--db` names a PostgreSQL database rather than a SQLite file.
fn postgres_url(db: &std::path::Path) -> Option<String> {
    let s = db.to_str()?;
    (s.starts_with("postgres://") || s.starts_with("postgresql://")).then(|| s.to_owned())
}

fn default_db() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("weft").join("jobs.db")
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let token = match args.token.as_deref() {
        Some(t) => Some(Token::new(t).context("--token (or WEFT_TOKEN) must not be empty")?),
        None => None,
    };
    if !args.bind.is_loopback() && token.is_none() && !args.insecure {
        anyhow::bail!(
            "refusing to serve {} without a token: anyone who can reach it could submit and \
             cancel jobs; give --token (or WEFT_TOKEN), or --insecure to serve it open",
            args.bind
        );
    }
    let db = if args.in_memory {
        None
    } else {
        Some(args.db.unwrap_or_else(default_db))
    };
    let postgres = db.as_deref().and_then(postgres_url).map(|url| {
        PgConfig::new(url)
            .lease(args.lease)
            .sweep_interval(args.sweep_interval)
            .poll_interval(args.poll_interval)
            .aging(args.aging)
            .max_attempts(args.max_attempts)
            .retry_failed(args.retry_failed, args.retry_backoff)
            .commit_batch(args.commit_batch)
    });
    let db = if postgres.is_some() { None } else { db };
    let db_label = match (&postgres, &db) {
        // Never print the URL: it may hold a password.
        (Some(_), _) => "PostgreSQL (shared queue)".to_owned(),
        (None, Some(p)) => p.display().to_string(),
        (None, None) => "in memory".to_owned(),
    };
    let defaults = ServeConfig::default();
    let config = ServeConfig {
        workers: args.workers.unwrap_or(defaults.workers),
        queue_size: args.queue_size,
        db,
        postgres,
        db_full_sync: args.db_full_sync,
        commit_window: args.commit_window,
        commit_batch: args.commit_batch,
        grace: args.grace,
        job_timeout: args.job_timeout,
        work_step: args.work_step,
        max_body: args.max_body,
        aging: args.aging,
        token,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        max_connections: args.max_connections.unwrap_or(defaults.max_connections),
        keep_finished: args.keep_finished,
        ..defaults
    };
    let (workers, queue_size, max_connections) =
        (config.workers, config.queue_size, config.max_connections);
    let auth = if config.token.is_some() {
        "bearer token"
    } else {
        "open"
    };
    // The store first: a bad --db is an error before anything says the server is up.
    let server = JobServer::open(config).await?;
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!(
        "weft serve: listening on http://{local} ({workers} workers, queue {queue_size} per priority, \
         {max_connections} connections, {auth}, db {db_label})"
    );
    let (ctx, _cancel) = weft_core::signal::ctrl_c_context();
    let report = server.run(ctx.clone(), listener).await?;
    eprintln!(
        "weft serve: stopped ({}): {} recovered at start, {} accepted, {} put back in the queue for the next start",
        ctx.cause()
            .map_or_else(|| "server ended".to_owned(), |c| c.to_string()),
        report.recovered,
        report.accepted,
        report.requeued
    );
    Ok(ExitCode::SUCCESS)
}
