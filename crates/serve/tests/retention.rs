//! Retention and paging over HTTP, on every store: `GET /api/jobs` hands out jobs a page at a
//! time with a cursor (no job twice, none skipped, a bad cursor is a 400), and with
//! `keep_finished` a finished job is deleted once it is old enough while queued and running
//! ones stay.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft_core::context::Context;
use weft_serve::store::PgConfig;
use weft_serve::{JobServer, ServeConfig};

const PATIENCE: Duration = Duration::from_secs(30);

async fn check(config: ServeConfig) {
    let config = ServeConfig {
        workers: 1,
        work_step: Duration::from_secs(3600),
        grace: Duration::from_millis(50),
        keep_finished: Some(Duration::from_millis(100)),
        ..config
    };
    let server = JobServer::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (ctx, cancel) = Context::background().with_cancel();
    let task = tokio::spawn(server.run(ctx, listener));
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let get = |path: String| {
        let req = client.get(format!("{base}{path}"));
        async move {
            let resp = req.send().await.unwrap();
            (
                resp.status(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let ids: Vec<String> = (0..25).map(|i| format!("j{i:02}")).collect();
    for id in &ids {
        let body =
            json!({"id": id, "type": "data_analysis", "data": {"dataset": "d", "query": "q"}});
        let resp = client
            .post(format!("{base}/api/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    // Pages of 10: every job once, in acceptance order.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (code, page) = get(format!("/api/jobs?limit=10&after={after}")).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        assert!(page["count"].as_u64().unwrap() <= 10);
        for j in page["jobs"].as_array().unwrap() {
            seen.push(j["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (code, body) = get("/api/jobs?after=nope".into()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");

    // One job runs for an hour; cancel one queued job: it is finished, so it goes.
    let resp = client
        .delete(format!("{base}/api/jobs/j24"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let start = Instant::now();
    loop {
        let (code, _) = get("/api/jobs/j24".into()).await;
        if code == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the cancelled job was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, left) = get("/api/jobs?limit=1000".into()).await;
    assert_eq!(left["count"], 24, "queued and running jobs stay: {left}");
    cancel.cancel_with("test over");
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_retention_in_memory() {
    check(ServeConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_retention_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check(ServeConfig {
        db: Some(dir.path().join("jobs.db")),
        ..ServeConfig::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_retention_in_postgres() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    check(ServeConfig {
        postgres: Some(PgConfig::new(url)),
        ..ServeConfig::default()
    })
    .await;
}
