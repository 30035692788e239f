//! `weft serve` over real HTTP on 127.0.0.1: every status code of the API, priorities, cancel
//! queued and running, queue-full backpressure, graceful shutdown with re-queueing, recovery
//! after a restart, and a kill -9 of the real binary in which every accepted job still ends.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use weft_core::context::{CancelFn, Context};
use weft_serve::{ServeConfig, ServeError, ServeReport, serve};

struct TestServer {
    base: String,
    cancel: CancelFn,
    task: JoinHandle<Result<ServeReport, ServeError>>,
    client: reqwest::Client,
}

impl TestServer {
    async fn start(config: ServeConfig) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (ctx, cancel) = Context::background().with_cancel();
        let task = tokio::spawn(serve(ctx, listener, config));
        TestServer {
            base: format!("http://{addr}"),
            cancel,
            task,
            client: reqwest::Client::new(),
        }
    }

    async fn post(&self, body: Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let resp = self
            .client
            .post(format!("{}/api/jobs", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, id: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .delete(format!("{}/api/jobs/{id}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn status_of(&self, id: &str) -> String {
        let (code, body) = self.get(&format!("/api/jobs/{id}")).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        body["status"].as_str().unwrap().to_owned()
    }

    /// Polls until the job's status is `want` (the server makes progress on its own; each poll
    /// is a real request, so this is waiting on the system under test, not a sleep).
    async fn wait_for(&self, id: &str, want: &str) -> Value {
        for _ in 0..2000 {
            let (_, body) = self.get(&format!("/api/jobs/{id}")).await;
            if body["status"] == want {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "job {id} never reached {want}: {}",
            self.get(&format!("/api/jobs/{id}")).await.1
        );
    }

    async fn stop(self) -> ServeReport {
        self.cancel.cancel_with("test over");
        self.task.await.unwrap().unwrap()
    }
}

fn config(db: Option<&Path>) -> ServeConfig {
    ServeConfig {
        workers: 2,
        queue_size: 50,
        db: db.map(Path::to_path_buf),
        grace: Duration::from_secs(5),
        job_timeout: Duration::from_secs(30),
        work_step: Duration::from_millis(2),
        ..ServeConfig::default()
    }
}

fn notification(id: &str, recipients: &[&str]) -> Value {
    json!({"id": id, "type": "notification", "data": {"recipients": recipients, "subject": "s", "message": "m", "channel": "email"}})
}

/// A job that runs for `rows / 1000` steps: with a long step, it holds its worker.
fn analysis(id: &str, priority: u8, rows: u64) -> Value {
    json!({"id": id, "type": "data_analysis", "priority": priority, "data": {"dataset": "d", "query": "q", "rows": rows}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_job_runs_to_completion_with_location_and_result() {
    let s = TestServer::start(config(None)).await;
    let (code, headers, body) = s.post(notification("n1", &["a@x", "fail@x", "b@x"])).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(headers["location"], "/api/jobs/n1");
    assert_eq!(body["id"], "n1");
    let done = s.wait_for("n1", "completed").await;
    assert_eq!(done["result"]["sent"], 2);
    assert_eq!(done["result"]["failed"], 1);
    assert_eq!(done["result"]["total"], 3);
    assert_eq!(done["attempts"], 1);

    // A generated id when none is given; a job whose every step fails is `failed`.
    let (code, _, body) = s
        .post(json!({"type": "image_processing", "data": {"image_url": "http://img/fail.png"}}))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let id = body["id"].as_str().unwrap().to_owned();
    let failed = s.wait_for(&id, "failed").await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("failed to download"),
        "{failed}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_with_the_right_codes() {
    let s = TestServer::start(ServeConfig {
        max_body: 1024,
        ..config(None)
    })
    .await;
    let raw = |body: &'static str| {
        s.client
            .post(format!("{}/api/jobs", s.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let resp = raw("{not json").await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().starts_with("invalid JSON"),
        "{body}"
    );

    for (req, needle) in [
        (json!({"data": {}}), "missing `type`"),
        (json!({"type": "mining", "data": {}}), "unknown job type"),
        (
            json!({"type": "notification", "data": {"recipients": [], "message": "m", "channel": "email"}}),
            "at least one recipient",
        ),
        (
            json!({"type": "notification", "data": {"recipients": ["a"], "message": "m", "channel": "fax"}}),
            "invalid data",
        ),
        (
            json!({"type": "data_analysis", "priority": 7, "data": {"dataset": "d", "query": "q"}}),
            "`priority`",
        ),
        (
            json!({"id": "../etc", "type": "data_analysis", "data": {"dataset": "d", "query": "q"}}),
            "`id`",
        ),
    ] {
        let (code, _, body) = s.post(req.clone()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{req} -> {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{req} -> {body}"
        );
    }

    let big = format!(
        "{{\"type\":\"notification\",\"data\":{{\"message\":\"{}\"}}}}",
        "x".repeat(4096)
    );
    let resp = s
        .client
        .post(format!("{}/api/jobs", s.base))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let (code, _, _) = s.post(notification("dup", &["a"])).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (code, _, body) = s.post(notification("dup", &["a"])).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");

    assert_eq!(s.get("/api/jobs/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.delete("nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        s.get("/api/jobs?status=weird").await.0,
        StatusCode::BAD_REQUEST
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_503_with_retry_after_and_loses_nothing() {
    let s = TestServer::start(ServeConfig {
        workers: 1,
        queue_size: 1,
        work_step: Duration::from_secs(3600),
        ..config(None)
    })
    .await;
    let (code, _, _) = s.post(analysis("busy", 1, 1000)).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    s.wait_for("busy", "running").await;
    let (code, _, _) = s.post(analysis("waiting", 1, 1000)).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (code, headers, body) = s.post(analysis("rejected", 1, 1000)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["retry-after"], "1");
    // A rejected job was never accepted: it is not in the store.
    assert_eq!(s.get("/api/jobs/rejected").await.0, StatusCode::NOT_FOUND);
    // Another level has its own room.
    let (code, _, _) = s.post(analysis("high", 2, 1000)).await;
    assert_eq!(code, StatusCode::ACCEPTED);

    // Cancel queued, then running; a second cancel is a conflict.
    let (code, body) = s.delete("waiting").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(s.status_of("waiting").await, "cancelled");
    let (code, _) = s.delete("busy").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(s.status_of("busy").await, "cancelled");
    let (code, body) = s.delete("busy").await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(body["job_status"], "cancelled");
    // The worker freed by the cancel picks up the high job.
    s.wait_for("high", "running").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_run_high_before_normal_before_low() {
    let s = TestServer::start(ServeConfig {
        workers: 1,
        work_step: Duration::from_millis(20),
        aging: Duration::from_secs(3600),
        ..config(None)
    })
    .await;
    // Hold the only worker until everything is queued.
    let (code, _, _) = s.post(analysis("blocker", 2, 1_000_000)).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    s.wait_for("blocker", "running").await;
    for (id, p) in [
        ("l1", 0),
        ("n1", 1),
        ("l2", 0),
        ("h1", 2),
        ("n2", 1),
        ("h2", 2),
    ] {
        let (code, _, _) = s.post(analysis(id, p, 1000)).await;
        assert_eq!(code, StatusCode::ACCEPTED);
    }
    assert_eq!(s.delete("blocker").await.0, StatusCode::OK);
    let mut started = Vec::new();
    for id in ["l1", "n1", "l2", "h1", "n2", "h2"] {
        let job = s.wait_for(id, "completed").await;
        started.push((job["started_at"].as_i64().unwrap(), id));
    }
    started.sort();
    let order: Vec<&str> = started.iter().map(|(_, id)| *id).collect();
    assert_eq!(order, ["h1", "h2", "n1", "n2", "l1", "l2"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_requeues_unfinished_jobs_and_restart_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    let slow = ServeConfig {
        workers: 1,
        work_step: Duration::from_secs(3600),
        grace: Duration::from_millis(50),
        ..config(Some(&db))
    };
    let s = TestServer::start(slow).await;
    for id in ["a", "b", "c"] {
        assert_eq!(s.post(analysis(id, 1, 1000)).await.0, StatusCode::ACCEPTED);
    }
    s.wait_for("a", "running").await;
    let report = s.stop().await;
    assert_eq!(report.accepted, 3);
    assert_eq!(report.requeued, 1, "the running job goes back to the queue");

    // Restart on the same database with fast work: every accepted job completes.
    let s = TestServer::start(config(Some(&db))).await;
    for id in ["a", "b", "c"] {
        s.wait_for(id, "completed").await;
    }
    let a = s.get("/api/jobs/a").await.1;
    assert_eq!(
        a["attempts"], 2,
        "started once before the shutdown, once after: {a}"
    );
    let (_, list) = s.get("/api/jobs?status=completed").await;
    assert_eq!(list["count"], 3);
    let report = s.stop().await;
    assert_eq!(report.recovered, 3);
    assert_eq!(report.requeued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_grace_period_submissions_get_503_and_states_stay_readable() {
    let s = TestServer::start(ServeConfig {
        workers: 1,
        work_step: Duration::from_secs(3600),
        grace: Duration::from_secs(3600),
        ..config(None)
    })
    .await;
    assert_eq!(
        s.post(analysis("long", 1, 1000)).await.0,
        StatusCode::ACCEPTED
    );
    s.wait_for("long", "running").await;
    s.cancel.cancel_with("SIGTERM");
    // Shutdown is under way as soon as health says so.
    let mut health = Value::Null;
    for _ in 0..2000 {
        let (code, body) = s.get("/healthz").await;
        if code == StatusCode::SERVICE_UNAVAILABLE {
            health = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(health["status"], "shutting_down");
    let (code, headers, body) = s.post(analysis("late", 1, 1000)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(
        s.status_of("long").await,
        "running",
        "states stay readable while draining"
    );
    // The client may still cancel during the drain; then the server finishes at once.
    assert_eq!(s.delete("long").await.0, StatusCode::OK);
    let report = s.task.await.unwrap().unwrap();
    assert_eq!(report.requeued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_report_the_pool() {
    let s = TestServer::start(config(None)).await;
    assert_eq!(
        s.post(notification("m1", &["a"])).await.0,
        StatusCode::ACCEPTED
    );
    s.wait_for("m1", "completed").await;
    let (code, health) = s.get("/healthz").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("weft_jobs_accepted_total 1"), "{text}");
    assert!(
        text.contains("weft_pool_jobs_total{outcome=\"completed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("weft_pool_queue_depth{priority=\"2\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("weft_jobs_stored{status=\"completed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("weft_pool_run_seconds{quantile=\"0.99\"}"),
        "{text}"
    );
    s.stop().await;
}

/// The real binary, killed with SIGKILL while jobs are queued and running: after a restart on
/// the same database, every job that got a 202 reaches a final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_loses_no_accepted_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    // Port 0: the server picks a free port and prints it, so no other test can take it
    // between a choice and the bind.
    let spawn = |step: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "serve",
                "--port",
                "0",
                "--workers",
                "2",
                "--work-step",
                step,
            ])
            .arg("--db")
            .arg(&db)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let base = listening_address(child.stderr.take().unwrap());
        (child, base)
    };
    let client = reqwest::Client::new();
    let (mut child, base) = spawn("1h");
    let mut accepted = Vec::new();
    for i in 0..10 {
        let id = format!("k{i}");
        let resp = client
            .post(format!("{base}/api/jobs"))
            .json(&analysis(&id, (i % 3) as u8, 1000))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::ACCEPTED {
            accepted.push(id);
        }
    }
    assert_eq!(accepted.len(), 10);
    child.kill().unwrap(); // SIGKILL: no graceful anything
    child.wait().unwrap();

    let (mut child, base) = spawn("1ms");
    for id in &accepted {
        let mut last = Value::Null;
        for _ in 0..2000 {
            last = client
                .get(format!("{base}/api/jobs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if last["status"] == "completed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(last["status"], "completed", "{id}: {last}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Reads the server's stderr until it says where it listens, returns that base URL, and keeps
/// draining the pipe in a thread so the server never blocks on a full pipe.
fn listening_address(stderr: std::process::ChildStderr) -> String {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            let base = rest.split_whitespace().next().unwrap().to_owned();
            std::thread::spawn(move || lines.for_each(drop));
            return base;
        }
    }
    panic!("the server exited without saying where it listens");
}
