//! The client against a real `weft serve` in this process (and a stand-in server for the busy
//! case), over HTTP on 127.0.0.1: submit and wait, errors with the server's explanation,
//! cancel, and retries that reuse one idempotency key so a busy server stores a job once.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use weft_core::context::Context;
use weft_serve_client::{Client, ClientError, JobStatus, NewJob};

async fn server(
    work_step: Duration,
) -> (
    String,
    weft_core::context::CancelFn,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = weft_serve::ServeConfig {
        workers: 1,
        work_step,
        grace: Duration::from_millis(50),
        ..weft_serve::ServeConfig::default()
    };
    let (ctx, stop) = Context::background().with_cancel();
    let task = tokio::spawn(async move {
        weft_serve::serve(ctx, listener, config).await.unwrap();
    });
    (base, stop, task)
}

fn notification(message: &str) -> NewJob {
    NewJob::new(
        "notification",
        json!({"recipients": ["a@x", "fail@x"], "message": message, "channel": "sms"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_job_is_awaited_to_its_result() {
    let (base, stop, task) = server(Duration::from_millis(1)).await;
    let client = Client::new(&base).unwrap();
    let id = client
        .submit(&notification("hi").priority(2))
        .await
        .unwrap();
    let job = client.wait(&id).await.unwrap();
    assert_eq!(
        (job.status, job.priority, job.attempts),
        (JobStatus::Completed, 2, 1)
    );
    assert_eq!(job.result.unwrap()["failed"], 1);
    // A job that fails ends failed, with the server's error.
    let id = client
        .submit(&NewJob::new(
            "image_processing",
            json!({"image_url": "http://x/fail.png"}),
        ))
        .await
        .unwrap();
    let job = client.wait(&id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.error.unwrap().contains("failed to download"));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_status_and_the_servers_explanation() {
    let (base, stop, task) = server(Duration::from_secs(3600)).await;
    let client = Client::new(&base).unwrap();
    let err = client
        .submit(&NewJob::new("mining", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("unknown job type"), "{err}");
    let err = client.get("nope").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(matches!(
        client.get("..").await,
        Err(ClientError::Url { .. })
    ));

    // The same key twice: one job. Another job under that key: 422.
    let job = notification("once").idempotency_key("order-7");
    let first = client.submit(&job).await.unwrap();
    assert_eq!(client.submit(&job).await.unwrap(), first);
    let err = client
        .submit(&notification("other").idempotency_key("order-7"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));

    // Cancel the running job; a second cancel is a conflict.
    client.cancel(&first).await.unwrap();
    assert_eq!(
        client.wait(&first).await.unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(client.cancel(&first).await.unwrap_err().status(), Some(409));
    stop.cancel();
    task.await.unwrap();
}

/// A stand-in for a busy server: answers 503 (with `Retry-After: 0`) to the first `busy`
/// requests, then 202; records the idempotency key of every request.
async fn stand_in(busy: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let keys = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&keys);
    let app = axum::Router::new().route(
        "/api/jobs",
        axum::routing::post(move |headers: HeaderMap| {
            let seen = Arc::clone(&seen);
            async move {
                let key = headers["idempotency-key"].to_str().unwrap().to_owned();
                let mut seen = seen.lock().unwrap();
                seen.push(key);
                if seen.len() <= busy {
                    let body = r#"{"error":"the job queue is full; retry later","status":503}"#;
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "0")],
                        body,
                    )
                } else {
                    (
                        StatusCode::ACCEPTED,
                        [("retry-after", "0")],
                        r#"{"id":"j1","status":"queued"}"#,
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_is_retried_with_the_same_idempotency_key() {
    let (base, keys) = stand_in(2).await;
    let client = Client::new(&base).unwrap();
    assert_eq!(client.submit(&notification("x")).await.unwrap(), "j1");
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "one key for every try: {keys:?}"
    );

    // Out of retries, the last 503 is the error, with the server's explanation.
    let (base, keys) = stand_in(usize::MAX).await;
    let client = Client::new(&base).unwrap().retries(2);
    let err = client.submit(&notification("y")).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.to_string().contains("queue is full"), "{err}");
    assert_eq!(keys.lock().unwrap().len(), 3, "one try and two retries");
}
