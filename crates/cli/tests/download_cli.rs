//! `weft download` as a program: arguments, URL lists, output formats and exit codes.
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

#[path = "../../download/tests/fixture/mod.rs"]
mod fixture;

use std::process::Output;

use assert_cmd::Command;
use fixture::{Fixture, content};

/// Runs `weft download ARGS` on a blocking thread while the fixture serves on the runtime.
async fn weft(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::cargo_bin("weft")
            .unwrap()
            .arg("download")
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_reports_every_url_in_order_and_exit_code_says_if_any_failed() {
    let fx = Fixture::start(10_000).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("urls.txt");
    std::fs::write(
        &list,
        format!(
            "# a comment\n{}\n\n{}  # trailing comment\n",
            fx.url("/gen/10000/b.bin"),
            fx.url("/status/404/c.bin")
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let output = weft(vec![
        fx.url("/gen/5000/a.bin"),
        "-i".into(),
        list.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--json".into(),
        "--tries".into(),
        "1".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "a 404 makes the run fail");
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    let outcomes: Vec<&str> = results
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "failed"]);
    assert!(
        results[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/gen/5000/a.bin")
    );
    assert_eq!(results[1]["bytes"], 10_000);
    assert_eq!(results[1]["attempts"], 1);
    assert!(results[2]["error"].as_str().unwrap().contains("404"));
    assert!(std::fs::read(out.join("a.bin")).unwrap() == content(5000));
    assert!(std::fs::read(out.join("b.bin")).unwrap() == content(10_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_is_printed_and_success_exits_zero() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let output = weft(vec![
        fx.url("/gen/1000/t.bin"),
        "-o".into(),
        dir.path().display().to_string(),
        "-j".into(),
        "2".into(),
    ])
    .await;
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("OUTCOME"), "{text}");
    assert!(
        text.contains("1 complete (1000 bytes), 0 failed, 0 cancelled"),
        "{text}"
    );
    // stderr is not a terminal here: no progress bars are drawn.
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_mismatch_fails_and_usage_errors_exit_two() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = format!("sha256:{}", "00".repeat(32));
    let output = weft(vec![
        fx.url("/gen/1000/k.bin"),
        "-o".into(),
        dir.path().display().to_string(),
        "--checksum".into(),
        wrong.clone(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(!dir.path().join("k.bin").exists());

    // --checksum names one file: with two URLs it is ambiguous.
    let output = weft(vec![
        fx.url("/gen/1/a"),
        fx.url("/gen/1/b"),
        "--checksum".into(),
        wrong,
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    let output = weft(vec!["ftp://127.0.0.1/x".into()]).await;
    assert_eq!(output.status.code(), Some(2));
    let output = weft(vec![]).await;
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_downloads_say_which_partial_files_were_kept_for_resume_and_why() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let output = weft(vec![
        fx.url("/dropalways/20000/100000/v.bin"),
        fx.url("/novaldrop/20000/100000/n.bin"),
        "-o".into(),
        dir.path().display().to_string(),
        "--tries".into(),
        "1".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("partial file kept for resume (the server's ETag \"gen-100000\" guards it)"),
        "{text}"
    );
    assert!(
        text.contains("partial file (20000 bytes) removed: the server sent no ETag"),
        "{text}"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("2 failed; 1 partial file kept for resume")
            && stderr.contains("1 partial file removed (no ETag or Last-Modified"),
        "{stderr}"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["v.bin.part", "v.bin.part.meta"]);
}

/// `https://` from the TLS fixture: `--cacert` trusts its CA, h2 is negotiated unless
/// `--http1.1` is given, and without `--cacert` the failure says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cacert_trusts_a_private_ca_and_http1_1_turns_http2_off() {
    let fx = Fixture::start_tls(20_000, true).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fx.ca_pem.as_deref().unwrap()).unwrap();
    let out = dir.path().join("out");
    let base = |name: &str| {
        vec![
            fx.url(&format!("/gen/20000/{name}")),
            "-o".into(),
            out.display().to_string(),
            "--tries".into(),
            "1".into(),
            "--proxy".into(),
            String::new(),
        ]
    };

    let mut args = base("h2.bin");
    args.extend(["--cacert".into(), ca.display().to_string()]);
    let output = weft(args).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(std::fs::read(out.join("h2.bin")).unwrap(), content(20_000));
    let seen = fx.seen("/gen/20000/h2.bin");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, axum::http::Version::HTTP_2);

    let mut args = base("h1.bin");
    args.extend([
        "--cacert".into(),
        ca.display().to_string(),
        "--http1.1".into(),
    ]);
    let output = weft(args).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let seen = fx.seen("/gen/20000/h1.bin");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, axum::http::Version::HTTP_11);

    let output = weft(base("untrusted.bin")).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("not signed by a trusted authority (trust its CA with --cacert FILE)"),
        "{stdout}"
    );
    assert!(!out.join("untrusted.bin").exists());
}

#[tokio::test]
async fn help_lists_cacert_and_http1_1() {
    let output = weft(vec!["--help".into()]).await;
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--cacert <FILE>"), "{help}");
    assert!(help.contains("--http1.1"), "{help}");
}

/// `--threads 1` runs the download on one async worker and still writes a whole, correct file
/// (a large body over several segments, all received and written on that one thread); 0 is a
/// usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thread_downloads_a_split_file_whole_and_zero_threads_is_a_usage_error() {
    let size = 4 << 20;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    let output = weft(vec![
        fx.url(&format!("/gen/{size}/one.bin")),
        "-o".into(),
        dir.path().display().to_string(),
        "--threads".into(),
        "1".into(),
        "--split".into(),
        "4".into(),
        "--per-host".into(),
        "4".into(),
    ])
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(std::fs::read(dir.path().join("one.bin")).unwrap() == content(size));
    assert!(
        fx.seen(&format!("/gen/{size}/one.bin")).len() > 1,
        "it was split"
    );

    let output = weft(vec![
        fx.url("/gen/10/z.bin"),
        "--threads".into(),
        "0".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
}
