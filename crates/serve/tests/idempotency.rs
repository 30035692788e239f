//! `Idempotency-Key` on `POST /api/jobs`, on every store: a client that retries a submission
//! with the same key gets the same job (and the same 202) instead of a second job; the key
//! reused for a different job is refused; a malformed key is a 400. Also `run_at`: refused by
//! the stores that run jobs at once, kept for later by PostgreSQL.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft_core::context::Context;
use weft_serve::store::PgConfig;
use weft_serve::{JobServer, ServeConfig};

fn job(message: &str) -> Value {
    json!({"type": "notification", "data": {"recipients": ["a@x"], "message": message, "channel": "sms"}})
}

/// Runs the checks against a server on `config`.
async fn check(config: ServeConfig, delays: bool) {
    let config = ServeConfig {
        workers: 1,
        work_step: Duration::from_secs(3600),
        grace: Duration::from_millis(50),
        ..config
    };
    let server = JobServer::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (ctx, cancel) = Context::background().with_cancel();
    let task = tokio::spawn(server.run(ctx, listener));
    let client = reqwest::Client::new();
    let post = |body: Value, key: Option<&'static str>| {
        let mut req = client.post(format!("{base}/api/jobs")).json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        async move {
            let resp = req.send().await.unwrap();
            let (status, headers) = (resp.status(), resp.headers().clone());
            (status, headers, resp.json::<Value>().await.unwrap())
        }
    };

    let (code, headers, first) = post(job("hi"), Some("order-42")).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{first}");
    assert!(headers.get("idempotent-replayed").is_none());
    let (code, headers, again) = post(job("hi"), Some("order-42")).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["id"], first["id"], "the retry names the same job");
    assert_eq!(headers["idempotent-replayed"], "true");
    let (code, _, other) = post(job("something else"), Some("order-42")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{other}");
    let (code, _, _) = post(job("hi"), Some("order-43")).await;
    assert_eq!(code, StatusCode::ACCEPTED, "another key, another job");
    let list: Value = client
        .get(format!("{base}/api/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 2, "{list}");
    let resp = client
        .post(format!("{base}/api/jobs"))
        .header("Idempotency-Key", "")
        .json(&job("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let mut delayed = job("later");
    delayed["run_at"] = json!(4_102_444_800_000_i64); // 2100-01-01
    let (code, _, body) = post(delayed, None).await;
    if delays {
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let id = body["id"].as_str().unwrap();
        let stored: Value = client
            .get(format!("{base}/api/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stored["status"], "queued", "{stored}");
    } else {
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("PostgreSQL"),
            "{body}"
        );
    }
    cancel.cancel_with("test over");
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_with_the_same_key_makes_one_job_in_memory() {
    check(ServeConfig::default(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_with_the_same_key_makes_one_job_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    check(
        ServeConfig {
            db: Some(db),
            ..ServeConfig::default()
        },
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_with_the_same_key_makes_one_job_in_postgres() {
    let Some(url) = common::pg_url().await else {
        return;
    };
    check(
        ServeConfig {
            postgres: Some(PgConfig::new(url)),
            ..ServeConfig::default()
        },
        true,
    )
    .await;
}
