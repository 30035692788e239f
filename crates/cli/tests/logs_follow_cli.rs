//! `weft logs --follow` end to end: the summary line per interval when stdout is not a
//! terminal, the final report and exit status 0 on SIGINT, `--from-start`, the page rewritten
//! while following, and the refusals (no file, stdin, gzip, a page over a followed file).
//!
//! Each run waits for what it expects on the child's output with a bounded deadline (never a
//! fixed sleep), and the child is killed if a test fails.
// SIGINT is sent with rustix, a Unix dev-dependency.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long any awaited output may take: generous, as the machine may be loaded.
const DEADLINE: Duration = Duration::from_secs(60);

fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

fn line(path: &str, status: u16) -> String {
    format!("2024-03-01 12:00:00 level=info ip=10.0.0.1 path=\"{path}\" status={status} time=5ms\n")
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

/// A running `weft logs --follow`, its stdout lines arriving on a channel; killed on drop.
struct Following {
    /// Taken by `interrupt`, which waits for it.
    child: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Following {
    fn start(args: &[&std::ffi::OsStr]) -> Following {
        let mut child = weft()
            .arg("logs")
            .arg("--follow")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weft");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Following {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line matching `want`, within the deadline.
    fn wait_for(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if want(&l) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {what} within {DEADLINE:?}; got {:?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let mut err = String::new();
                    if let Some(mut e) = self.child.as_mut().and_then(|c| c.stderr.take()) {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!(
                        "weft ended before printing {what}; got {:?}, stderr {err}",
                        self.seen
                    )
                }
            }
        }
    }

    /// Sends SIGINT, waits for the exit within the deadline, returns the status and the
    /// rest of stdout.
    fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
        let (tx, exited) = channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let Ok(status) = exited.recv_timeout(DEADLINE) else {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            panic!("weft did not exit within {DEADLINE:?} of SIGINT");
        };
        let status = status.expect("wait");
        let mut rest = String::new();
        while let Ok(l) = self.lines.recv_timeout(DEADLINE) {
            rest.push_str(&l);
            rest.push('\n');
        }
        (status, rest)
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The first value after `label` on a line of the text report.
fn value_of<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
}

#[test]
fn without_a_terminal_it_prints_a_summary_per_interval_and_the_full_report_on_sigint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    append(&log, &line("/existing", 200).repeat(5));
    let mut run = Following::start(&[log.as_os_str()]);
    // The first summary proves the file is followed (from its end): the lines after it count.
    let first = run.wait_for("a summary line", |l| l.starts_with('+'));
    assert!(
        first.contains("lines 0 ") && first.contains("files 1/1"),
        "{first}"
    );
    append(&log, &format!("{}{}", line("/new", 200), line("/new", 503)));
    let later = run.wait_for("the two new requests", |l| l.contains("requests 2 "));
    assert!(later.contains("errors 1 (50.0%) 5xx 1"), "{later}");
    let (status, rest) = run.interrupt();
    assert!(
        status.success(),
        "SIGINT ends following with status 0: {status:?}"
    );
    assert!(rest.contains("weft logs report"), "{rest}");
    assert!(
        !rest.contains("PARTIAL"),
        "stopping is following's normal end: {rest}"
    );
    assert_eq!(value_of(&rest, "requests"), Some("2"), "{rest}");
    assert!(
        rest.contains("/new") && !rest.contains("/existing"),
        "{rest}"
    );
}

#[test]
fn from_start_counts_existing_lines_and_json_summaries_are_json_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, &line("/existing", 404).repeat(3));
    let mut run = Following::start(&[
        "--from-start".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        log.as_os_str(),
    ]);
    let summary = run.wait_for("3 requests", |l| l.contains("\"requests\":3"));
    let v: serde_json::Value = serde_json::from_str(&summary).expect("a JSON summary line");
    assert_eq!(v["errors"], 3);
    let (status, rest) = run.interrupt();
    assert!(status.success(), "{status:?}");
    // Summary lines may come before it; the pretty-printed report starts with a lone `{`.
    let at = rest.find("{\n").expect("the JSON report");
    let report: serde_json::Value = serde_json::from_str(&rest[at..]).expect("the JSON report");
    assert_eq!(report["requests"], 3);
    assert_eq!(report["partial"], false);
}

#[test]
fn the_page_is_written_while_following_and_at_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let page = dir.path().join("live.html");
    std::fs::File::create(&log).expect("create");
    let mut run = Following::start(&[
        log.as_os_str(),
        "--html".as_ref(),
        page.as_os_str(),
        "--html-interval".as_ref(),
        "1".as_ref(),
    ]);
    run.wait_for("a summary line", |l| l.starts_with('+'));
    append(&log, &line("/seen-live", 200));
    run.wait_for("the new request", |l| l.contains("requests 1 "));
    // The page follows within an interval of the summary that counted the line.
    let end = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(&page).unwrap_or_default();
        if text.contains("/seen-live") {
            assert!(text.ends_with("</html>\n"));
            break;
        }
        assert!(
            Instant::now() < end,
            "the page never showed the new request"
        );
        run.wait_for("another summary line", |l| l.starts_with('+'));
    }
    append(&log, &line("/at-the-end", 200));
    run.wait_for("the last request", |l| l.contains("requests 2 "));
    let (status, _) = run.interrupt();
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&page).expect("final page");
    assert!(
        text.contains("/at-the-end"),
        "the final page has the final report"
    );
}

#[test]
fn it_refuses_what_cannot_be_followed_and_a_page_over_a_followed_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let gz = dir.path().join("old.log.gz");
    let later = dir.path().join("later.log");
    std::fs::File::create(&log).expect("create");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0]).expect("write");
    let cases: [(Vec<&std::ffi::OsStr>, &str); 6] = [
        (vec![], "needs the log files"),
        (vec!["-".as_ref()], "standard input cannot be followed"),
        (vec![gz.as_os_str()], "gzip-compressed"),
        (
            vec![log.as_os_str(), "--html-interval".as_ref(), "0".as_ref()],
            "--html-interval must be a positive number",
        ),
        (
            vec![log.as_os_str(), "--html".as_ref(), log.as_os_str()],
            "refusing to write the report",
        ),
        // Not created yet: refused by name.
        (
            vec![later.as_os_str(), "--html".as_ref(), later.as_os_str()],
            "refusing to write the report",
        ),
    ];
    for (args, why) in cases {
        let out = weft()
            .args(["logs", "--follow"])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
    assert!(
        !later.exists(),
        "nothing was written over the followed path"
    );
    let out = weft()
        .args(["logs", "--from-start"])
        .arg(&log)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "--from-start needs --follow");
}
