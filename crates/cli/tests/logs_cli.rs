//! `weft logs` and `weft gen-logs` end to end: arguments, outputs, stdin, exit codes.

use assert_cmd::Command;

fn weft() -> Command {
    Command::cargo_bin("weft").expect("the weft binary")
}

/// The first value on the text report's line that starts with `label`.
fn value_of<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn no_path_analyzes_the_builtin_sample() {
    let text = stdout_of(weft().arg("logs"));
    assert!(text.contains("sample/app.log: kv"), "{text}");
    assert!(text.contains("sample/access.log: combined"));
    assert!(text.contains("sample/events.jsonl: json"));
    assert!(text.contains("top paths"));
    assert!(text.contains("malformed lines:"));
}

#[test]
fn gen_logs_then_analyze_the_directory_as_json_and_html() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    weft()
        .args([
            "gen-logs",
            "--lines",
            "10001",
            "--files",
            "3",
            "--log-format",
            "combined",
        ])
        .arg(&logs)
        .assert()
        .success();
    let mut files: Vec<String> = std::fs::read_dir(&logs)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["sample-000.log", "sample-001.log", "sample-002.log"]
    );

    let html = dir.path().join("report.html");
    let json = stdout_of(
        weft()
            .arg("logs")
            .arg(&logs)
            .args(["--format", "json", "--top", "3", "--html"])
            .arg(&html),
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["lines"], 10001);
    assert_eq!(v["inputs"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["top_paths"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["partial"], false);
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg"));
}

#[test]
fn stdin_gzip_and_filters() {
    let mut data = String::new();
    for i in 0..50 {
        let status = if i % 5 == 0 { 500 } else { 200 };
        data += &format!(
            "2024-03-01 12:00:{:02} level=info ip=10.0.0.{} path=\"/s{}\" status={status} time={i}ms\n",
            i % 60,
            i % 4,
            i % 2
        );
    }
    let text = stdout_of(
        weft()
            .args(["logs", "-", "--status", "5xx", "--path", "/s0"])
            .write_stdin(data.clone()),
    );
    let expected = (0..50).filter(|i| i % 5 == 0 && i % 2 == 0).count();
    assert_eq!(
        value_of(&text, "requests "),
        Some(&*expected.to_string()),
        "{text}"
    );
    assert!(
        text.contains(&format!("filtered out {}", 50 - expected)),
        "{text}"
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, data.as_bytes()).expect("gzip");
    let json = stdout_of(
        weft()
            .args(["logs", "-", "--format", "json"])
            .write_stdin(gz.finish().expect("gzip")),
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["requests"], 50);
    assert_eq!(v["inputs"][0]["gzip"], true);
}

#[test]
fn unreadable_inputs_exit_2_and_bad_arguments_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.log");
    std::fs::write(&good, "2024-03-01 12:00:00 path=/ status=200\n").expect("write");
    let missing = dir.path().join("missing.log");

    let out = weft()
        .arg("logs")
        .arg(&missing)
        .arg(&good)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(value_of(&stdout, "requests "), Some("1"), "{stdout}");
    assert!(stderr.contains("missing.log"), "{stderr}");

    let out = weft()
        .args(["logs", "--strict"])
        .arg(&missing)
        .arg(&good)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no report with --strict");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    for bad in [
        &["--status", "abc"][..],
        &["--since", "yesterday"],
        &["--min-level", "loud"],
        &["--log-format", "xml"],
        &["--path-regex", "("],
    ] {
        let out = weft().arg("logs").args(bad).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn help_lists_every_option() {
    let help = stdout_of(weft().args(["logs", "--help"]));
    for flag in [
        "--log-format",
        "--min-level",
        "--path",
        "--path-regex",
        "--status",
        "--since",
        "--until",
        "--slow-ms",
        "--top",
        "--format",
        "--html",
        "--strict",
        "--memory-budget",
        "Exit status",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let help = stdout_of(weft().args(["gen-logs", "--help"]));
    assert!(help.contains("--lines") && help.contains("--files") && help.contains("--gzip"));
    assert!(help.contains("--clients") && help.contains("--paths"));
    // The long help (what the flags produce) must survive the subcommand's doc comment.
    assert!(
        help.contains("Zipf-like popularity"),
        "long help missing:\n{help}"
    );
}

#[test]
fn gen_logs_gzip_json_round_trips_through_the_analyzer() {
    let dir = tempfile::tempdir().expect("tempdir");
    weft()
        .args([
            "gen-logs",
            "--lines",
            "500",
            "--files",
            "2",
            "--log-format",
            "json",
            "--gzip",
        ])
        .arg(dir.path())
        .assert()
        .success();
    assert!(dir.path().join("sample-001.jsonl.gz").exists());
    let json = stdout_of(
        weft()
            .arg("logs")
            .arg(dir.path())
            .args(["--format", "json"]),
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["lines"], 500);
    for input in v["inputs"].as_array().expect("inputs") {
        assert_eq!(input["gzip"], true);
        assert_eq!(input["format"], "json");
        assert_eq!(input["detected"], true);
    }
}

#[test]
fn html_output_never_overwrites_an_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    let line = "2024-03-01 12:00:00 path=/ status=200\n";
    std::fs::write(&log, line).expect("write");
    // Named directly, and found by walking a directory.
    for (inputs, html) in [
        (vec![log.clone()], log.clone()),
        (vec![dir.path().to_path_buf()], log.clone()),
    ] {
        let out = weft()
            .arg("logs")
            .args(&inputs)
            .arg("--html")
            .arg(&html)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{inputs:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("refusing to write"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(&log).expect("read"),
            line,
            "the log is intact"
        );
    }
    let report = dir.path().join("report.html");
    weft()
        .arg("logs")
        .arg(&log)
        .arg("--html")
        .arg(&report)
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(&report)
            .expect("html")
            .starts_with("<!DOCTYPE html>")
    );
}

#[test]
fn a_path_without_logs_is_said_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.md"), "x\n").expect("write");
    let out = weft().arg("logs").arg(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no log files"), "{stderr}");
}

#[test]
fn gen_logs_shapes_give_high_cardinality_that_the_budget_summarizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    weft()
        .args([
            "gen-logs",
            "--lines",
            "30000",
            "--clients",
            "unique",
            "--paths",
            "100000",
        ])
        .arg(dir.path())
        .assert()
        .success();
    let json = stdout_of(weft().arg("logs").arg(dir.path()).args([
        "--format",
        "json",
        "--memory-budget",
        "32M",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["memory_budget"], 32 << 20);
    let ips = v["distinct_ips"].as_u64().expect("distinct ips");
    assert!(ips > 29_000, "about one client per line: {ips}");
    let paths = v["distinct_paths"].as_u64().expect("distinct paths");
    assert!(paths > 5_000, "a long tail of id-bearing paths: {paths}");
    assert!(v["top_ips_max_overcount"].is_u64() && v["top_paths_max_overcount"].is_u64());
    let top = v["top_paths"][0]["path"].as_str().expect("top path");
    assert!(top.starts_with('/'), "{top}");
    let out = weft()
        .args(["logs", "--memory-budget", "lots"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn log_format_takes_an_nginx_string_and_reports_panels_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    std::fs::write(
        &log,
        concat!(
            "shop.example 10.0.0.1 [01/Mar/2024:12:00:00 +0000] \"GET /a.css HTTP/1.1\" 200 512 \"-\" \"curl/8\" 0.250\n",
            "shop.example 10.0.0.2 [01/Mar/2024:12:00:01 +0000] \"GET /gone HTTP/1.1\" 404 0 \"https://ex.com/\" \"curl/8\" 1.500\n",
        ),
    )
    .expect("write log");
    let json = stdout_of(
        weft()
            .arg("logs")
            .arg(&log)
            .args([
                "--format",
                "json",
                "--log-format",
                "$host $remote_addr [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time",
            ]),
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["inputs"][0]["format"], "custom");
    assert_eq!(v["latency"]["max_ms"], 1500.0);
    assert_eq!(v["panels"]["bandwidth"]["total_bytes"], 512);
    assert_eq!(v["panels"]["vhosts"]["rows"][0]["key"], "shop.example");
    assert_eq!(v["panels"]["not_found"]["rows"][0]["key"], "/gone");
    assert_eq!(v["panels"]["referring_sites"]["rows"][0]["key"], "ex.com");

    let off = stdout_of(weft().arg("logs").arg(&log).args([
        "--format",
        "json",
        "--log-format",
        "nginx-timed",
        "--panels",
        "none",
    ]));
    let v: serde_json::Value = serde_json::from_str(&off).expect("json");
    assert_eq!(v["panels"]["bandwidth"], serde_json::Value::Null);
    assert_eq!(
        v["requests"], 0,
        "the vhost in front does not fit nginx-timed"
    );
    assert_eq!(v["malformed_lines"], 2);
}

#[test]
fn a_wrong_log_format_points_at_the_token_and_exits_2() {
    let out = weft()
        .args(["logs", "--log-format", "%h %t \"%r\" %>s %J"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown Apache directive %J at byte 15"),
        "{err}"
    );
    assert!(
        err.contains("\n                 ^^"),
        "a caret under %J: {err}"
    );
    let out = weft()
        .args(["logs", "--panels", "bandwith"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown panel \"bandwith\""));
}

#[test]
fn help_shows_the_panel_and_format_flags() {
    let help = stdout_of(weft().args(["logs", "--help"]));
    for flag in [
        "--panels",
        "--static-ext",
        "--log-format",
        "nginx-timed",
        "vhost-combined",
        "$request_time",
        "%D",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

/// The subcommand's one-line doc comment in `main.rs` used to replace the long help that
/// `weft logs --help` is written to show; `-h` keeps the short form.
#[test]
fn long_help_shows_the_formats_panels_and_memory_budget_text() {
    let help = stdout_of(weft().args(["logs", "--help"]));
    for text in [
        "Formats, detected per file",
        "Panels (--panels):",
        "Memory stays within --memory-budget whatever the input",
    ] {
        assert!(help.contains(text), "{text:?} missing from:\n{help}");
    }
    let short = stdout_of(weft().args(["logs", "-h"]));
    assert!(
        short.contains("Analyze web server and application logs"),
        "{short}"
    );
}
