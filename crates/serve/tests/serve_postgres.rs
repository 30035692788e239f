//! `weft serve` nodes on one PostgreSQL database (a fresh schema per test), in this process
//! over real HTTP on 127.0.0.1: two nodes form one queue that runs every job once, a DELETE
//! on one node stops the job running on the other, and an idle node does not poll the
//! database busily.
//!
//! Waits are for a state the servers reach on their own, with a generous deadline.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use weft_core::context::{CancelFn, Context};
use weft_serve::store::{JobStore, PgConfig, Store};
use weft_serve::{JobServer, ServeConfig, ServeError, ServeReport};

const PATIENCE: Duration = Duration::from_secs(30);

struct Node {
    base: String,
    cancel: CancelFn,
    task: JoinHandle<Result<ServeReport, ServeError>>,
    client: reqwest::Client,
    store: Store,
}

impl Node {
    async fn start(config: ServeConfig) -> Node {
        let server = JobServer::open(config).await.unwrap();
        let store = server.store().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ctx, cancel) = Context::background().with_cancel();
        let task = tokio::spawn(server.run(ctx, listener));
        Node {
            base: format!("http://{addr}"),
            cancel,
            task,
            client: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .unwrap(),
            store,
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

    async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    /// Polls until `check` holds on the job (each poll a real request).
    async fn wait_for(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let (_, body) = self.get(&format!("/api/jobs/{id}")).await;
            if check(&body) {
                return body;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "job {id} never got there: {body}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(self) -> ServeReport {
        self.cancel.cancel_with("test over");
        self.task.await.unwrap().unwrap()
    }
}

fn config(url: &str, work_step: Duration) -> ServeConfig {
    ServeConfig {
        workers: 2,
        postgres: Some(PgConfig::new(url)),
        grace: Duration::from_millis(200),
        job_timeout: Duration::from_secs(3600),
        work_step,
        ..ServeConfig::default()
    }
}

fn analysis(id: &str, priority: u8) -> Value {
    json!({"id": id, "type": "data_analysis", "priority": priority, "data": {"dataset": "d", "query": "q", "rows": 1000}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_run_every_job_exactly_once() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    let a = Node::start(config(&url, Duration::from_millis(1))).await;
    let b = Node::start(config(&url, Duration::from_millis(1))).await;
    let n = 200;
    for i in 0..n {
        let node = if i % 2 == 0 { &a } else { &b };
        let (code, body) = node.post(&analysis(&format!("j{i}"), (i % 3) as u8)).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    }
    let start = Instant::now();
    loop {
        let (_, done) = a.get("/api/jobs?status=completed&limit=1000").await;
        if done["count"] == n {
            let jobs = done["jobs"].as_array().unwrap();
            let again: Vec<&Value> = jobs.iter().filter(|j| j["attempts"] != 1).collect();
            assert!(again.is_empty(), "jobs run more than once: {again:?}");
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "only {} of {n} completed",
            done["count"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every job was claimed once, by one node or the other.
    let claimed = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("weft_node_claimed_total "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    assert_eq!(claimed(&ma) + claimed(&mb), n);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_on_one_node_stops_the_job_running_on_another() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    // Only b runs: the job can start nowhere else. Its steps never end on their own.
    let b = Node::start(config(&url, Duration::from_secs(3600))).await;
    assert_eq!(b.post(&analysis("long", 1)).await.0, StatusCode::ACCEPTED);
    b.wait_for("long", |j| j["status"] == "running").await;
    let a = Node::start(config(&url, Duration::from_secs(3600))).await;
    let resp = a
        .client
        .delete(format!("{}/api/jobs/long", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // b's pool sees the job end as cancelled (through its context), not by running out. The
    // bound is well above the second the notification is meant to take, and well below the
    // 10 s heartbeat that would also catch the cancel: so it fails if the notification is lost.
    let bound = Duration::from_secs(5);
    let start = Instant::now();
    loop {
        let text = b.metrics().await;
        if text.contains("weft_pool_jobs_total{outcome=\"cancelled\"} 1")
            && text.contains("weft_pool_busy_workers 0")
        {
            break;
        }
        assert!(
            start.elapsed() < bound,
            "b did not stop the job within {bound:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("cancel reached the other node in {:?}", start.elapsed());
    let (_, job) = b.get("/api/jobs/long").await;
    assert_eq!(job["status"], "cancelled", "{job}");
    let report = b.stop().await;
    assert_eq!(report.requeued, 0, "a cancelled job is not put back");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_sends_about_one_query_a_second_at_most() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    let node = Node::start(config(&url, Duration::from_millis(1))).await;
    let Store::Postgres(pg) = &node.store else {
        panic!("not a PostgreSQL store")
    };
    // Let start-up (schema, LISTEN, first claim and sweep) pass, then count over a window.
    assert_eq!(node.get("/healthz").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, start) = (pg.queries(), Instant::now());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (sent, window) = (pg.queries() - before, start.elapsed().as_secs_f64());
    eprintln!("idle node: {sent} statements in {window:.1} s");
    assert!(
        (sent as f64) <= window + 1.0,
        "{sent} statements in {window:.1} s while idle"
    );
    // Work still starts at once: a notification, not the next poll, wakes the node.
    assert_eq!(
        node.post(&analysis("wake", 1)).await.0,
        StatusCode::ACCEPTED
    );
    node.wait_for("wake", |j| j["status"] == "completed").await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_nodes_claims_and_the_databases_queue_per_priority() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    // One worker: the node holds two jobs (one running, one waiting in its pool), no more.
    let node = Node::start(ServeConfig {
        workers: 1,
        ..config(&url, Duration::from_secs(3600))
    })
    .await;
    for (i, p) in [0, 0, 0, 0, 1, 1].into_iter().enumerate() {
        assert_eq!(
            node.post(&analysis(&format!("m{i}"), p)).await.0,
            StatusCode::ACCEPTED
        );
    }
    let start = Instant::now();
    loop {
        let text = node.metrics().await;
        let held = text.contains("weft_node_held_jobs 2");
        let depth: u64 = (0..3)
            .filter_map(|p| {
                let prefix = format!("weft_db_queue_depth{{priority=\"{p}\"}} ");
                text.lines()
                    .find_map(|l| l.strip_prefix(&prefix)?.parse::<u64>().ok())
            })
            .sum();
        if held && depth == 4 && text.contains("weft_node_claimed_total 2") {
            assert!(text.contains("weft_node_db_queries_total "), "{text}");
            break;
        }
        assert!(start.elapsed() < PATIENCE, "metrics never settled:\n{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_shared_queue_answers_503_on_every_node_and_stores_nothing() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    let bounded = || ServeConfig {
        queue_size: 2,
        ..config(&url, Duration::from_secs(3600))
    };
    let (a, b) = (Node::start(bounded()).await, Node::start(bounded()).await);
    // Due in an hour: they stay queued, so the level's room is what the test says it is.
    let later = |id: &str, priority: u8| {
        let mut job = analysis(id, priority);
        job["run_at"] = json!(4_102_444_800_000_i64);
        job
    };
    assert_eq!(a.post(&later("q1", 0)).await.0, StatusCode::ACCEPTED);
    assert_eq!(b.post(&later("q2", 0)).await.0, StatusCode::ACCEPTED);
    // Full at the low level, whichever node is asked; nothing is written.
    let (status, body) = a.post(&later("q3", 0)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("full"),
        "{body}"
    );
    assert_eq!(
        b.post(&later("q4", 0)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(a.store.get("q3").await.unwrap().is_none());
    // Another level has its own room.
    assert_eq!(b.post(&later("h1", 2)).await.0, StatusCode::ACCEPTED);
    a.stop().await;
    b.stop().await;
}
