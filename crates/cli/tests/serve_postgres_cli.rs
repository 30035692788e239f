//! `weft serve --db postgres://...` as real processes on one PostgreSQL database (a fresh
//! schema per test): a node killed with SIGKILL has its jobs run by another node once their
//! leases lapse, each as a second attempt, and nothing is lost; the URL's password is never
//! printed.
//!
//! Waits are for a state the servers reach on their own, with a generous deadline.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

#[path = "../../serve/tests/common/mod.rs"]
mod common;

use std::io::BufRead;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(60);

/// A child process killed when dropped, so a failing test leaves no server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `weft serve` on port 0 with `args`; returns it, its base URL (from its "listening
/// on" line) and that line.
fn spawn_node(args: &[&str]) -> (KillOnDrop, String, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--port", "0"])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            let base = rest.split_whitespace().next().unwrap().to_owned();
            std::thread::spawn(move || lines.for_each(drop));
            return (child, base, line);
        }
    }
    panic!("the server exited without saying where it listens");
}

async fn job(client: &reqwest::Client, base: &str, id: &str) -> Value {
    client
        .get(format!("{base}/api/jobs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_jobs_run_on_another_node_once_their_leases_lapse() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    let lease = [
        "--lease",
        "1s",
        "--sweep-interval",
        "200ms",
        "--workers",
        "2",
    ];
    let (mut doomed, base, line) =
        spawn_node(&[&["--db", &url, "--work-step", "1h"][..], &lease].concat());
    assert!(line.contains("PostgreSQL"), "{line}");
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let ids: Vec<String> = (0..4).map(|i| format!("k{i}")).collect();
    for id in &ids {
        let resp = client
            .post(format!("{base}/api/jobs"))
            .json(
                &json!({"id": id, "type": "data_analysis", "data": {"dataset": "d", "query": "q"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::ACCEPTED);
    }
    // The doomed node claims all four (two run, two wait in its pool).
    let start = Instant::now();
    loop {
        let (_, list) = (
            (),
            client
                .get(format!("{base}/api/jobs?status=running"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap(),
        );
        if list["count"] == 4 {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "never claimed: {list}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    doomed.0.kill().unwrap(); // SIGKILL: no graceful anything
    doomed.0.wait().unwrap();

    let (_survivor, base, _) =
        spawn_node(&[&["--db", &url, "--work-step", "1ms"][..], &lease].concat());
    for id in &ids {
        let start = Instant::now();
        let done = loop {
            let j = job(&client, &base, id).await;
            if j["status"] == "completed" {
                break j;
            }
            assert!(start.elapsed() < PATIENCE, "{id} never completed: {j}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            done["attempts"], 2,
            "claimed by the killed node, then once more: {done}"
        );
    }
}

#[test]
fn the_database_password_is_never_printed() {
    // A database nobody listens on: the node fails to start, and says why without the secret.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "serve",
            "--port",
            "0",
            "--db",
            "postgres://app:s3cret@127.0.0.1:1/jobs",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
