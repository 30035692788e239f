//! Runs every example with small arguments and checks what it prints.
//!
//! `cargo test` builds the examples before it runs this file; each test runs the built binary
//! from `target/<profile>/examples/`, so the examples are tested exactly as users run them.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};

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
    let out = run_ok(example("context").args(["--timeout-ms", "300", "--workers", "4"]));
    assert!(
        out.contains("cancel child -> parent done: false, child done: true, grandchild done: true"),
        "{out}"
    );
    assert!(
        out.contains("Some(Cancelled) (server shutting down)"),
        "{out}"
    );
    // Worker k steps every 40*(k+1) ms: workers 0 and 1 finish 3 steps within 300 ms, 3 cannot.
    assert!(out.contains("worker 0: finished 3 steps"), "{out}");
    assert!(out.contains("worker 3: stopped after"), "{out}");
    assert!(out.contains("context deadline exceeded"), "{out}");
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
    let out = run_ok(example("web_server").args(["--requests", "40", "--work-ms", "50"]));
    assert!(out.contains("40/40 requests of 50 ms work each"), "{out}");
    assert!(
        out.contains("shut down (burst finished): served 40, in flight at exit 0"),
        "{out}"
    );
    // Requests overlapped: more than one was in flight at some point.
    let peak: usize = out
        .split("peak concurrency ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("peak concurrency printed");
    assert!(peak > 1, "requests were served one at a time: {out}");
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
    ]));
    assert!(
        out.contains("control request acknowledged by worker "),
        "{out}"
    );
    assert!(
        out.contains("queue is full"),
        "40 instant submits overflow 8+16 slots: {out}"
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
    assert!(out.contains("ok: {\"200\": 3}"), "{out}");
    assert!(out.contains("failure: {\"500\": 1}"), "{out}");
    assert!(out.contains("timeout: {\"504\": 1}"), "{out}");
    assert!(out.contains("overload: {\"200\": 4, \"503\": 8}"), "{out}");
    assert!(
        out.contains("client gone: {\"client gave up\": 1}"),
        "{out}"
    );
    let rate = out.lines().find(|l| l.contains("rate limit:")).unwrap();
    assert!(rate.contains("\"429\""), "{out}");
    assert!(out.contains("timed_out=1 client_gone=1"), "{out}");
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
    let out = run_ok(example("file_processor").arg(&dir).args(["--workers", "2"]));
    assert!(out.contains("processed 2 files, 3 lines, 6 bytes"), "{out}");
    assert!(out.contains("1 errors:"), "{out}");
    assert!(out.contains("bin.dat: not UTF-8 text (byte 0)"), "{out}");
    assert!(!out.contains("run ended by its context"), "{out}");

    // Past the deadline every file's work stops, and each stop is reported, none dropped.
    let out = run_ok(example("file_processor").arg(&dir).args([
        "--workers",
        "2",
        "--delay-ms",
        "5000",
        "--timeout-ms",
        "100",
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
    let out =
        run_ok(example("worker_pool").args(["--jobs", "30", "--workers", "2", "--work-ms", "5"]));
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
    // Everything queued behind the blockers: the ten high jobs finish before any other.
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

    let out = run_ok(
        example("parallel_search")
            .arg("needle")
            .arg(&dir)
            .args(["--workers", "3"]),
    );
    assert!(out.contains("one.txt (1 lines)"), "{out}");
    assert!(out.contains("long.txt (1 lines)"), "{out}");
    assert!(!out.contains("bin.dat"), "binary files are skipped: {out}");
    assert!(out.contains("searched 4 files with 3 workers"), "{out}");
    assert!(out.contains(": 2 matching lines in 2 files"), "{out}");

    let out =
        run_ok(
            example("parallel_search")
                .arg("needle")
                .arg(&dir)
                .args(["--workers", "2", "-i"]),
        );
    assert!(out.contains("one.txt (2 lines)"), "{out}");
    assert!(out.contains("  3: NEEDLE upper"), "{out}");
    assert!(out.contains(": 3 matching lines in 2 files"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
