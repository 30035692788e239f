//! How a job's end is recorded now that no task waits per queued job: the job records its own
//! outcome, and a run the pool ends (its timeout) is still recorded as what it was, on every
//! local store; thousands of queued jobs leave no task and no entry behind once they end.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use weft_core::context::Context;
use weft_serve::{JobServer, ServeConfig};

async fn start(
    config: ServeConfig,
) -> (
    String,
    weft_core::context::CancelFn,
    tokio::task::JoinHandle<Result<weft_serve::ServeReport, weft_serve::ServeError>>,
) {
    let server = JobServer::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (ctx, cancel) = Context::background().with_cancel();
    (base, cancel, tokio::spawn(server.run(ctx, listener)))
}

/// Polls the job until it reaches `want` (failing after 30 s, so a job left unrecorded fails
/// the test instead of hanging it).
async fn state_of(client: &reqwest::Client, base: &str, id: &str, want: &str) -> Value {
    let poll = async {
        loop {
            let job: Value = client
                .get(format!("{base}/api/jobs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if job["status"] == want {
                return job;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), poll)
        .await
        .unwrap_or_else(|_| panic!("job {id} never became {want}"))
}

async fn timeout_and_completion_are_recorded(db: Option<PathBuf>) {
    let (base, cancel, task) = start(ServeConfig {
        workers: 2,
        db,
        job_timeout: Duration::from_millis(50),
        work_step: Duration::from_millis(10),
        grace: Duration::from_secs(5),
        ..ServeConfig::default()
    })
    .await;
    let client = reqwest::Client::new();
    // 1000 pages of 10 ms: far past the 50 ms timeout, which the pool enforces by dropping
    // the run; one page finishes well within it.
    for (id, rows) in [("slow", 1_000_000), ("quick", 1)] {
        let body = json!({"id": id, "type": "data_analysis",
            "data": {"dataset": "d", "query": "q", "rows": rows}});
        let resp = client
            .post(format!("{base}/api/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    let slow = state_of(&client, &base, "slow", "timed_out").await;
    assert!(
        slow["error"].as_str().unwrap().contains("longer than"),
        "{slow}"
    );
    let quick = state_of(&client, &base, "quick", "completed").await;
    assert_eq!(quick["result"]["rows"], 1);
    cancel.cancel();
    let report = task.await.unwrap().unwrap();
    assert_eq!((report.accepted, report.requeued), (2, 0));
}

#[tokio::test]
async fn a_job_the_pool_times_out_is_recorded_timed_out_in_memory() {
    timeout_and_completion_are_recorded(None).await;
}

#[tokio::test]
async fn a_job_the_pool_times_out_is_recorded_timed_out_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    timeout_and_completion_are_recorded(Some(dir.path().join("jobs.db"))).await;
}

#[tokio::test]
async fn many_queued_jobs_all_end_recorded() {
    let (base, cancel, task) = start(ServeConfig {
        workers: 2,
        queue_size: 10_000,
        work_step: Duration::ZERO,
        ..ServeConfig::default()
    })
    .await;
    let client = reqwest::Client::new();
    let n = 300;
    for i in 0..n {
        let body = json!({"id": format!("j{i}"), "type": "notification",
            "data": {"recipients": ["a"], "message": "m", "channel": "sms"}});
        let resp = client
            .post(format!("{base}/api/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    for i in 0..n {
        state_of(&client, &base, &format!("j{i}"), "completed").await;
    }
    cancel.cancel();
    let report = task.await.unwrap().unwrap();
    assert_eq!((report.accepted, report.requeued), (n, 0));
}
