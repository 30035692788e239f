//! The HTML report in a real browser: Debian's Chromium, headless, opens the page of an analysis
//! with every panel, runs its script without an error, sorts every table by every column through
//! the page's own `#selftest` (which clicks the headers), fits a phone's width, and leaves
//! screenshots in target/test-output/logs-html/.
//!
//! Needs `WEFT_TEST_CHROMIUM` (set by `.ci/services.sh`); without it the test says SKIPPED,
//! unless `WEFT_TEST_REQUIRE_SERVICES=1`, which makes it fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use weft_core::context::Context;
use weft_logs::{Input, Options, analyze, render_html};

fn chromium() -> Option<PathBuf> {
    match std::env::var_os("WEFT_TEST_CHROMIUM").filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("WEFT_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("WEFT_TEST_REQUIRE_SERVICES=1 but WEFT_TEST_CHROMIUM is not set")
        }
        None => {
            eprintln!("SKIPPED (no Chromium: set WEFT_TEST_CHROMIUM or source .ci/services.sh)");
            None
        }
    }
}

/// Where the page and screenshots stay after the test: target/test-output/logs-html/.
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("test-output/logs-html");
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}

/// Runs Chromium headless with `args`, its own profile, and a minute's limit (a hung browser
/// fails the test instead of holding CI).
fn run_chromium(bin: &Path, profile: &Path, args: &[String]) -> Output {
    let mut child = Command::new(bin)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    // Poll for the exit: the limit is a safety net, never a synchronisation.
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("chromium did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("chromium output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_sorts_and_fits_a_phone_in_chromium() {
    let Some(bin) = chromium() else { return };
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/combined-goaccess.log.gz");
    let report = analyze(
        &Context::background(),
        vec![Input::Path(fixture)],
        Options::default(),
    )
    .await
    .expect("analysis");
    let dir = output_dir();
    let page = dir.join("report.html");
    std::fs::write(&page, render_html(&report)).expect("write page");
    let profile = tempfile::tempdir().expect("profile dir");
    let url = format!("file://{}#selftest", page.display());

    let out = run_chromium(
        &bin,
        profile.path(),
        &[
            "--window-size=412,900".into(),
            "--dump-dom".into(),
            url.clone(),
        ],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    assert!(
        dom.contains("data-ready=\"1\""),
        "the script ran to its end: {log}"
    );
    let attr = |name: &str| {
        dom.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(str::to_string)
    };
    // The attribute, not the script's own text that names it in single quotes.
    assert_eq!(attr("data-errors"), None, "errors recorded by the page");
    assert!(!log.contains("Uncaught"), "console errors: {log}");
    let selftest = attr("data-selftest").unwrap_or_default();
    assert!(
        selftest.starts_with("pass"),
        "sorting self-check: {selftest}"
    );
    assert!(
        dom.contains("data-fits=\"true\""),
        "the page is wider than a 412 px phone"
    );
    for id in [
        "summary",
        "bandwidth-paths",
        "visitors",
        "not-found",
        "browsers",
        "hours",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "panel {id} missing");
    }

    for (name, size) in [("phone.png", "412,900"), ("desktop.png", "1280,1000")] {
        let shot = dir.join(name);
        let _ = std::fs::remove_file(&shot);
        let out = run_chromium(
            &bin,
            profile.path(),
            &[
                format!("--window-size={size}"),
                format!("--screenshot={}", shot.display()),
                format!("file://{}", page.display()),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{name} is {len} bytes");
    }
    eprintln!("page and screenshots in {}", dir.display());
}
