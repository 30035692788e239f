//! Runs every example with small arguments and checks what it prints.
//!
//! `cargo test` builds the examples before it runs this file; each test runs the built binary
//! from `target/<profile>/examples/`, so the examples are tested exactly as users run them.
//!
//! No assertion depends on how fast the machine runs: examples whose outcome turns on a timeout
//! run with `--paused-clock` (one thread, tokio's clock paused, so time only moves when every
//! task waits), and the network examples are checked for what their rules guarantee under any
//! load (a deadline that can never be met is always missed, totals add up, a limit is never
//! exceeded).

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn example(name: &str) -> Command {
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
    let mut path: PathBuf = std::env::current_exe().expect("test binary path");
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.push("examples");
    path.push(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    Command::new(path)
}

fn run_ok(cmd: &mut Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("example runs");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        status.success(),
        "example failed: {status}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

#[test]
fn context_example_shows_propagation_timeout_values_and_after_func() {
    let out = run_ok(example("context").args([
        "--timeout-ms",
        "300",
        "--workers",
        "4",
        "--paused-clock",
    ]));
    assert!(
        out.contains("cancel child -> parent done: false, child done: true, grandchild done: true"),
        "{out}"
    );
    assert!(
        out.contains("Some(Cancelled) (server shutting down)"),
        "{out}"
    );
    // Worker k steps every 40*(k+1) ms; on the paused clock the 300 ms deadline falls exactly
    // where the arithmetic puts it: 0 and 1 finish, 2 and 3 stop mid-way.
    assert!(out.contains("worker 0: finished 3 steps"), "{out}");
    assert!(out.contains("worker 1: finished 3 steps"), "{out}");
    assert!(
        out.contains("worker 2: stopped after 2 steps: context deadline exceeded"),
        "{out}"
    );
    assert!(
        out.contains("worker 3: stopped after 1 steps: context deadline exceeded"),
        "{out}"
    );
    assert!(
        out.contains("request context: Some(DeadlineExceeded)"),
        "{out}"
    );
    assert!(
        out.contains(
            "without_cancel keeps values (req-42) and is not done: true; shadowed: req-42/retry"
        ),
        "{out}"
    );
    assert!(out.contains("connection closed"), "{out}");
}

#[test]
fn web_server_serves_a_concurrent_burst_and_shuts_down_gracefully() {
    // `--hold 40`: each request waits until all 40 are in flight together, which only a server
    // that serves them concurrently reaches, whatever the load.
    let out =
        run_ok(example("web_server").args(["--requests", "40", "--work-ms", "0", "--hold", "40"]));
    assert!(out.contains("40/40 requests of 0 ms work each"), "{out}");
    assert!(
        out.contains("shut down (burst finished): served 40, in flight at exit 0"),
        "{out}"
    );
    let peak: usize = out
        .split("peak concurrency ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("peak concurrency printed");
    assert_eq!(
        peak, 40,
        "the requests were not all in flight at once: {out}"
    );
}

#[test]
fn million_tasks_counts_live_tasks_and_joins_them_all() {
    let out = run_ok(example("million_tasks").args(["--tasks", "20000", "--every", "5000"]));
    for n in [5000, 10000, 15000, 20000] {
        assert!(
            out.contains(&format!("spawned {n:>9}  live tasks {n:>9}")),
            "live count at {n} not exact: {out}"
        );
    }
    assert!(out.contains("20000 tasks spawned"), "{out}");
    assert!(out.contains("live after join: 0"), "{out}");
    assert!(out.contains("bytes per task"), "{out}");
}

#[test]
fn channels_example_shows_rendezvous_buffering_and_close() {
    let out = run_ok(example("channels").args(["--items", "200", "--capacity", "10"]));
    // The clock starts before the receiver's 20 ms sleep, so a rendezvous send always waits
    // at least that long; a send that did not wait for the receiver prints "NOT synchronised".
    assert!(
        out.contains("(it sleeps 20 ms first): synchronised"),
        "{out}"
    );
    assert!(out.contains("received Some(\"ping\")"), "{out}");
    assert!(
        out.contains("try_send with no receiver waiting: full (value handed back)"),
        "{out}"
    );
    assert!(
        out.contains("send 2 completed, buffered 2/Some(2)"),
        "{out}"
    );
    assert!(
        out.contains("try_send 3: full (value handed back)"),
        "{out}"
    );
    assert!(
        out.contains("send 3 with a 10 ms timeout: timed out, value handed back"),
        "{out}"
    );
    assert!(
        out.contains("receive Some(1) -> room for one more: sent"),
        "{out}"
    );
    assert!(
        out.contains("send 4 on a closed channel returned the value 4"),
        "{out}"
    );
    assert!(
        out.contains("drained [2, 3], then recv() = None; is_closed = true"),
        "{out}"
    );
    assert!(out.contains("buffered(10):"), "{out}");
}

#[test]
fn task_scheduler_accounts_for_every_task_and_acks_control_on_the_right_channel() {
    let out = run_ok(example("task_scheduler").args([
        "--tasks",
        "40",
        "--workers",
        "3",
        "--work-ms",
        "5",
        "--grace-ms",
        "20",
        "--paused-clock",
    ]));
    assert!(
        out.contains("control request acknowledged by worker "),
        "{out}"
    );
    // The submits run without a yield on the paused clock's single thread, so no worker takes a
    // task meanwhile: 16 high and 24 normal tasks meet 8 and 16 slots.
    assert!(
        out.contains("submitted 24, rejected 16 (normal priority queue is full)"),
        "{out}"
    );
    assert!(
        out.contains("submit after shutdown: scheduler is shutting down"),
        "{out}"
    );
    assert!(out.contains("none lost"), "{out}");
    // The accounting line's numbers really add up (not just the verdict text).
    let line = out
        .lines()
        .find(|l| l.starts_with("completed "))
        .expect("summary line");
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .map(|s| s.parse().unwrap())
        .collect();
    let submitted: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("submitted "))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("submitted count");
    assert_eq!(nums.iter().sum::<usize>(), submitted, "{out}");
}

#[test]
fn system_monitor_runs_cycles_with_real_figures_and_writes_json_lines() {
    let dir = std::env::temp_dir().join(format!("weft-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("metrics.jsonl");
    let _ = std::fs::remove_file(&jsonl);
    let out = run_ok(
        example("system_monitor")
            .args(["--interval-ms", "200", "--cycles", "3", "--jsonl"])
            .arg(&jsonl),
    );
    assert!(out.contains("monitored 3 cycles"), "{out}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, row) in lines.iter().enumerate() {
        assert_eq!(row["cycle"], i as u64 + 1);
        if row["partial"] == false {
            // Real figures: memory in use is a percentage strictly between 0 and 100.
            let mem = row["memory_used_percent"].as_f64().unwrap();
            assert!(mem > 0.0 && mem < 100.0, "{row}");
        }
    }
    // Rates need a previous cycle: none in the first, present afterwards (unless partial).
    assert!(lines[0]["net_rx_bytes_per_sec"].is_null());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn request_service_shows_every_status_and_stops_abandoned_work() {
    let out = run_ok(example("request_service").args([
        "--max-concurrent",
        "4",
        "--rate",
        "40",
        "--timeout-ms",
        "200",
    ]));
    // Work of 5x the deadline can never finish in time; a client that waits 30 ms for 150 ms of
    // work always gives up.
    assert_eq!(statuses(&out, "timeout:"), [("504", 1)].into(), "{out}");
    assert_eq!(
        statuses(&out, "client gone:"),
        [("client gave up", 1)].into(),
        "{out}"
    );
    // Short work answers 200 (or 500 when told to fail), unless a stalled machine lets the
    // deadline pass first (504): every request gets one of those, none another status.
    assert_only(&out, "ok:", 3, &["200", "504"]);
    assert_only(&out, "failure:", 1, &["500", "504"]);
    // The concurrency limit sheds with 503 and admits at least `--max-concurrent` of the burst.
    let overload = assert_only(&out, "overload:", 12, &["200", "503", "504"]);
    let admitted = overload.get("200").unwrap_or(&0) + overload.get("504").unwrap_or(&0);
    assert!(admitted >= 4, "{out}");
    let server = out.lines().find(|l| l.contains("server: ")).unwrap();
    assert!(
        server.contains("peak_in_progress=") && server_count(server, "peak_in_progress") <= 4,
        "the concurrency limit let more than 4 requests run at once: {out}"
    );
    // The rate limiter (40/s, burst 40) admits at most 40 + 40/s over the phase's duration.
    let rate = assert_only(&out, "rate limit:", 80, &["200", "429"]);
    let millis: u64 = out
        .lines()
        .find(|l| l.contains("rate limit:"))
        .and_then(|l| l.rsplit(" in ").next())
        .and_then(|l| l.trim_end_matches(" ms").parse().ok())
        .expect("rate phase duration");
    // (One more for the rounding of a permit that falls due at the very end.)
    let allowed = 40 + (40 * (millis + 1)).div_ceil(1000) as usize + 1;
    assert!(
        rate.get("200").copied().unwrap_or(0) <= allowed,
        "more than {allowed} requests passed the rate limit in {millis} ms: {out}"
    );
    // Abandoned work stops: the timed-out request and the client that left are both counted.
    assert!(server_count(server, "timed_out") >= 1, "{out}");
    assert_eq!(server_count(server, "client_gone"), 1, "{out}");
}

/// The status counts printed for one phase of request_service, e.g. `ok: {"200": 3}`.
fn statuses<'a>(out: &'a str, phase: &str) -> BTreeMap<&'a str, usize> {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(phase))
        .unwrap_or_else(|| panic!("no {phase} line: {out}"));
    let map = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
    map.split(", ")
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.rsplit_once(": ").unwrap();
            (k.trim_matches('"'), v.parse().unwrap())
        })
        .collect()
}

/// Asserts that `phase` answered `total` requests, each with one of `allowed`.
fn assert_only<'a>(
    out: &'a str,
    phase: &str,
    total: usize,
    allowed: &[&str],
) -> BTreeMap<&'a str, usize> {
    let counts = statuses(out, phase);
    assert!(
        counts.keys().all(|k| allowed.contains(k)),
        "{phase} expected only {allowed:?}: {out}"
    );
    assert_eq!(counts.values().sum::<usize>(), total, "{phase} {out}");
    counts
}

/// A `name=N` counter from request_service's `/stats` line.
fn server_count(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// A small tree: two text files (3 lines in all) and one file that is not UTF-8.
fn file_tree() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "weft-fp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), "a\nb\n").unwrap();
    std::fs::write(dir.join("sub/c.txt"), "x\n").unwrap();
    std::fs::write(dir.join("sub/bin.dat"), [0xff, 0xfe]).unwrap();
    std::fs::write(dir.join(".hidden"), "skipped\n").unwrap();
    dir
}

#[test]
fn file_processor_joins_workers_and_reports_every_error() {
    let dir = file_tree();
    let out =
        run_ok(
            example("file_processor")
                .arg(&dir)
                .args(["--workers", "2", "--paused-clock"]),
        );
    assert!(out.contains("processed 2 files, 3 lines, 6 bytes"), "{out}");
    assert!(out.contains("1 errors:"), "{out}");
    assert!(out.contains("bin.dat: not UTF-8 text (byte 0)"), "{out}");
    assert!(!out.contains("run ended by its context"), "{out}");

    // Past the deadline every file's work stops, and each stop is reported, none dropped. On
    // the paused clock the walk takes no time, so all three files are started before it.
    let out = run_ok(example("file_processor").arg(&dir).args([
        "--workers",
        "2",
        "--delay-ms",
        "5000",
        "--timeout-ms",
        "100",
        "--paused-clock",
    ]));
    assert!(out.contains("processed 0 files"), "{out}");
    assert!(
        out.contains("run ended by its context: context deadline exceeded"),
        "{out}"
    );
    assert!(out.contains("3 errors:"), "{out}");
    assert_eq!(
        out.matches("stopped: context deadline exceeded").count(),
        3,
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn worker_pool_isolates_panics_times_out_blacklists_and_counts_add_up() {
    let out = run_ok(example("worker_pool").args([
        "--jobs",
        "30",
        "--workers",
        "2",
        "--work-ms",
        "5",
        "--paused-clock",
    ]));
    assert_eq!(
        out.matches("panicked job resolved: corrupt input").count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("third panicky job refused at submit: job key \"panicky\" is blacklisted"),
        "{out}"
    );
    assert!(
        out.contains("hung job resolved: timed out, its Context cancelled"),
        "{out}"
    );
    // Everything queued behind the blockers: the ten high jobs finish before any other (on the
    // paused clock no job can time out or finish early because of the machine's load).
    assert!(
        out.contains(
            "completed 30 ordinary jobs; 10 of the first 10 completions were high priority"
        ),
        "{out}"
    );
    assert!(
        out.contains("stats: submitted 36 = completed 32 + failed 0 + timed out 1 + panicked 2 + blacklisted 1 + cancelled 0 (in flight 0)"),
        "{out}"
    );
}

#[test]
fn number_pipeline_matches_the_sequential_answer_and_stops_early_cleanly() {
    let out = run_ok(example("number_pipeline").args([
        "--count",
        "2000",
        "--workers",
        "3",
        "--take",
        "5",
    ]));
    let expected: u64 = (1..=2000u64).map(|x| x * x).filter(|x| x % 2 == 1).sum();
    assert!(
        out.contains(&format!(
            "sum of odd squares up to 2000: {expected} (expected {expected})"
        )),
        "{out}"
    );
    assert!(out.contains("2000 squares, in order: true"), "{out}");
    assert!(
        out.contains(&format!("merged sum: {expected} (same as 1: true)")),
        "{out}"
    );
    assert!(out.contains("fan-out[2]/square"), "{out}");
    assert!(out.contains("took [1, 4, 9, 16, 25]"), "{out}");
    // A consumer that stops early aborts the run, and the report says so.
    assert!(out.contains("report: stopped Aborted"), "{out}");
    // Each report passed `check()` (the example fails otherwise); the filter dropped half.
    assert!(
        out.contains("odd        received    2000 emitted    1000 filtered    1000"),
        "{out}"
    );
}

/// A search deadline of an hour: the default 10 s could pass on a loaded machine and skip files.
const NO_DEADLINE: &str = "3600000";

#[test]
fn parallel_search_finds_every_matching_line_including_very_long_ones() {
    let dir = std::env::temp_dir().join(format!("weft-ps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::write(dir.join("one.txt"), "needle here\nnothing\nNEEDLE upper\n").unwrap();
    // A 100 KiB line: Go's bufio.Scanner gives up on it; this search must not.
    let long = format!("{}needle{}\n", "x".repeat(100_000), "y".repeat(10));
    std::fs::write(dir.join("a/b/long.txt"), long).unwrap();
    std::fs::write(dir.join("a/bin.dat"), b"needle\0\x01\x02").unwrap();
    std::fs::write(dir.join("a/none.txt"), "haystack only\n").unwrap();

    let out = run_ok(example("parallel_search").arg("needle").arg(&dir).args([
        "--workers",
        "3",
        "--timeout-ms",
        NO_DEADLINE,
    ]));
    assert!(out.contains("one.txt (1 lines)"), "{out}");
    assert!(out.contains("long.txt (1 lines)"), "{out}");
    assert!(!out.contains("bin.dat"), "binary files are skipped: {out}");
    assert!(out.contains("searched 4 files with 3 workers"), "{out}");
    assert!(out.contains(": 2 matching lines in 2 files"), "{out}");

    let out = run_ok(example("parallel_search").arg("needle").arg(&dir).args([
        "--workers",
        "2",
        "-i",
        "--timeout-ms",
        NO_DEADLINE,
    ]));
    assert!(out.contains("one.txt (2 lines)"), "{out}");
    assert!(out.contains("  3: NEEDLE upper"), "{out}");
    assert!(out.contains(": 3 matching lines in 2 files"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_example_whose_reader_closes_the_pipe_exits_cleanly() {
    // 100,000 progress lines (about 5 MB) are far more than a pipe holds, so the example is
    // certain to write after the reader has gone.
    let mut child = example("million_tasks")
        .args(["--tasks", "100000", "--every", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap(); // the reader is dropped here: the pipe is closed
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(first.starts_with("spawned"), "{first}");
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
