//! `weft serve` against careless and hostile clients, and its commit path: start-up with more
//! stored jobs than queue room, slow clients, bearer tokens, ids nobody can guess, JSON for
//! every error, a bad database path, group commit, and rejections that write nothing.
//!
//! Servers run on 127.0.0.1 port 0, in process (`serve`) or as the real binary.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use weft_core::context::{CancelFn, Context};
use weft_serve::store::{JobStore, NewJob, SqliteConfig, Store};
use weft_serve::{ServeConfig, ServeError, ServeReport, Token, serve};

/// Generous bound on any one request: a server that never answers fails the test instead of
/// hanging it. Nothing is asserted about how fast the answer comes.
const PATIENCE: Duration = Duration::from_secs(30);

struct TestServer {
    base: String,
    addr: std::net::SocketAddr,
    cancel: CancelFn,
    task: JoinHandle<Result<ServeReport, ServeError>>,
    client: reqwest::Client,
}

impl TestServer {
    async fn start(config: ServeConfig) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ctx, cancel) = Context::background().with_cancel();
        let task = tokio::spawn(serve(ctx, listener, config));
        TestServer {
            base: format!("http://{addr}"),
            addr,
            cancel,
            task,
            client: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .unwrap(),
        }
    }

    async fn post(&self, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}/api/jobs", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
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
        grace: Duration::from_millis(50),
        job_timeout: Duration::from_secs(30),
        work_step: Duration::from_millis(2),
        ..ServeConfig::default()
    }
}

/// A job that runs for `rows / 1000` steps.
fn analysis(id: &str, priority: u8) -> Value {
    json!({"id": id, "type": "data_analysis", "priority": priority, "data": {"dataset": "d", "query": "q", "rows": 1000}})
}

/// A database holding `n` queued jobs, as a crash leaves it.
async fn stored_jobs(db: &Path, n: usize) {
    let store = Store::open(db, SqliteConfig::default()).unwrap();
    for i in 0..n {
        store
            .insert(NewJob::new(
                format!("stored-{i}"),
                "data_analysis",
                1,
                json!({"dataset": "d", "query": "q", "rows": 1000}),
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_at_once_while_stored_jobs_wait_for_queue_room() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    stored_jobs(&db, 200).await;
    // Jobs that never finish: the stored ones can only trickle in as room frees, never all.
    let s = TestServer::start(ServeConfig {
        workers: 1,
        queue_size: 5,
        work_step: Duration::from_secs(3600),
        ..config(Some(&db))
    })
    .await;
    let (code, health) = s.get("/healthz").await;
    assert_eq!(code, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "recovering", "{health}");
    let waiting = health["recovering"].as_u64().unwrap();
    assert!((194..=200).contains(&waiting), "{health}");
    // Stored jobs keep their place ahead of new ones at their level; other levels have room.
    let (code, body) = s.post(&analysis("new-normal", 1)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (code, body) = s.post(&analysis("new-high", 2)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let (code, job) = s.get("/api/jobs/stored-199").await;
    assert_eq!((code, &job["status"]), (StatusCode::OK, &json!("queued")));
    let report = s.stop().await;
    assert_eq!(report.recovered, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stored_job_runs_as_queue_room_frees() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    stored_jobs(&db, 200).await;
    let s = TestServer::start(ServeConfig {
        queue_size: 5,
        work_step: Duration::from_millis(1),
        ..config(Some(&db))
    })
    .await;
    // Each poll is a real request: waiting on the server's own progress.
    let mut done = Value::Null;
    for _ in 0..4000 {
        done = s.get("/api/jobs?status=completed&limit=1000").await.1;
        if done["count"] == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(done["count"], 200);
    let (_, health) = s.get("/healthz").await;
    assert_eq!(
        (&health["status"], &health["recovering"]),
        (&json!("ok"), &json!(0))
    );
    s.stop().await;
}

/// Reads what the server sends until it closes the connection.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("the server kept a half-sent request open")
        .unwrap_or(0);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_cut_off_by_the_header_and_body_timeouts() {
    let s = TestServer::start(ServeConfig {
        header_timeout: Duration::from_millis(200),
        body_timeout: Duration::from_millis(200),
        ..config(None)
    })
    .await;
    // Headers that never end: the connection is closed.
    let mut headers = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    headers
        .write_all(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    read_until_closed(&mut headers).await;
    // A body that never ends: a JSON 408, then the connection is closed.
    let mut body = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    body.write_all(
        b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\"",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"status\":408"), "{answer}");
    s.stop().await;
}

/// A child process killed when dropped, so a failing test leaves no server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real binary (with `args`) under a file-descriptor limit of `fds`, and returns it
/// with its base URL, read from its "listening on" line.
fn spawn_binary(fds: u32, args: &[&str]) -> (KillOnDrop, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {fds} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_weft"))
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
            return (child, base);
        }
    }
    panic!("the server exited without saying where it listens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_slow_clients_do_not_make_the_server_unreachable() {
    // 128 descriptors, 300 clients that never finish a request: more than the process could
    // hold at once, as in the report (373 half-sent POSTs against a limit of 256).
    let (server, base) = spawn_binary(
        128,
        &[
            "serve",
            "--port",
            "0",
            "--in-memory",
            "--header-timeout",
            "300ms",
            "--body-timeout",
            "300ms",
        ],
    );
    let addr = base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for i in 0..300 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let partial: &[u8] = if i % 2 == 0 {
            b"POST /api/jobs HTTP/1.1\r\nHost: x\r\n"
        } else {
            b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"type\""
        };
        c.write_all(partial).await.unwrap();
        slow.push(c);
    }
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let resp = client.get(format!("{base}/healthz")).send().await;
    assert_eq!(resp.unwrap().status(), StatusCode::OK);
    drop((slow, server));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_on_every_route_but_healthz() {
    let s = TestServer::start(ServeConfig {
        token: Token::new("s3cret"),
        ..config(None)
    })
    .await;
    let job = analysis("t1", 1);
    let url = format!("{}/api/jobs", s.base);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
        Some("s3cret"),
    ] {
        let mut req = s.client.post(&url).json(&job);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], 401, "{body}");
    }
    for path in ["/api/jobs/t1", "/api/jobs", "/metrics"] {
        assert_eq!(s.get(path).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    let resp = s
        .client
        .post(&url)
        .bearer_auth("s3cret")
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = s
        .client
        .get(format!("{}/api/jobs/t1", s.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.get("/healthz").await.0, StatusCode::OK);
    s.stop().await;
}

#[test]
fn a_non_loopback_bind_without_a_token_is_refused() {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--bind", "0.0.0.0", "--port", "0", "--in-memory"])
        .env_remove("WEFT_TOKEN")
        .timeout(PATIENCE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("without a token"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[test]
fn a_bad_database_path_is_an_error_before_any_listening_line() {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--port", "0", "--db", "/dev/null/weft/jobs.db"])
        .timeout(PATIENCE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("job database"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_job_ids_are_128_random_bits() {
    let s = TestServer::start(config(None)).await;
    let job = json!({"type": "notification", "data": {"recipients": ["a"], "message": "m", "channel": "sms"}});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (code, body) = s.post(&job).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        let id = body["id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_limit_body_gets_a_json_413() {
    let s = TestServer::start(ServeConfig {
        max_body: 1024,
        ..config(None)
    })
    .await;
    let big = format!(
        "{{\"type\":\"notification\",\"data\":{{\"message\":\"{}\"}}}}",
        "x".repeat(4096)
    );
    let url = format!("{}/api/jobs", s.base);
    // Declared too large, and too large without a declared length (chunked).
    let declared = s.client.post(&url).body(big.clone()).send().await.unwrap();
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(big)]);
    let chunked = s
        .client
        .post(&url)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    for resp in [declared, chunked] {
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], 413, "{body}");
        assert!(body["error"].as_str().unwrap().contains("1024"), "{body}");
    }
    s.stop().await;
}

/// Whether `id` is in the database, read through a connection of our own: it sees committed
/// transactions only.
fn committed(db: &Path, id: &str) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM jobs WHERE id = ?1", [id], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap()
        == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_202_comes_only_after_the_batch_holding_the_job_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    // A batch commits when it holds 4 writes (the window is too long to end first).
    let s = TestServer::start(ServeConfig {
        commit_batch: 4.try_into().unwrap(),
        commit_window: Duration::from_secs(3600),
        work_step: Duration::from_secs(3600),
        ..config(Some(&db))
    })
    .await;
    let posts = (0..4).map(|i| {
        let s = &s;
        let db = &db;
        async move {
            let id = format!("g{i}");
            let (code, body) = s.post(&analysis(&id, 1)).await;
            assert_eq!(code, StatusCode::ACCEPTED, "{body}");
            assert!(
                committed(db, &id),
                "{id} was answered 202 before its commit"
            );
        }
    });
    futures::future::join_all(posts).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_every_request_of_its_batch_and_stores_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    stored_jobs(&db, 0).await;
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON jobs WHEN NEW.id = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned by the test'); END;",
        )
        .unwrap();
    let s = TestServer::start(ServeConfig {
        commit_batch: 3.try_into().unwrap(),
        commit_window: Duration::from_secs(3600),
        work_step: Duration::from_secs(3600),
        ..config(Some(&db))
    })
    .await;
    let batch = |ids: [&'static str; 3]| {
        let s = &s;
        futures::future::join_all(ids.map(|id| async move { s.post(&analysis(id, 1)).await }))
    };
    for (code, body) in batch(["a", "poison", "b"]).await {
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("none was stored"), "{error}");
        assert!(error.contains("poisoned by the test"), "{error}");
    }
    for id in ["a", "poison", "b"] {
        assert!(!committed(&db, id), "{id} was half-stored");
        assert_eq!(
            s.get(&format!("/api/jobs/{id}")).await.0,
            StatusCode::NOT_FOUND
        );
    }
    // The next batch commits as usual.
    for (code, body) in batch(["c", "d", "e"]).await {
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_without_writing_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    stored_jobs(&db, 0).await;
    // Every row ever inserted into `jobs` leaves a trace, even if deleted later.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE inserted (id TEXT);
             CREATE TRIGGER trace AFTER INSERT ON jobs BEGIN INSERT INTO inserted VALUES (NEW.id); END;",
        )
        .unwrap();
    let s = TestServer::start(ServeConfig {
        workers: 1,
        queue_size: 1,
        work_step: Duration::from_secs(3600),
        ..config(Some(&db))
    })
    .await;
    assert_eq!(s.post(&analysis("busy", 1)).await.0, StatusCode::ACCEPTED);
    for _ in 0..2000 {
        if s.get("/api/jobs/busy").await.1["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        s.post(&analysis("waiting", 1)).await.0,
        StatusCode::ACCEPTED
    );
    let (code, body) = s.post(&analysis("refused", 1)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let traced: Vec<String> = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT id FROM inserted ORDER BY rowid")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(traced, ["busy", "waiting"]);
    s.stop().await;
}
