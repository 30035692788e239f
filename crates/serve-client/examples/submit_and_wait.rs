//! Submit a few jobs to `weft serve` and wait for their outcomes, as a service using weft's
//! job server would.
//!
//! `cargo run -p weft-serve-client --example submit_and_wait -- http://127.0.0.1:8080` talks to
//! a running `weft serve`; without an address it starts one in this process first.

use std::time::Duration;

use serde_json::json;
use weft_serve_client::{Client, JobStatus, NewJob};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (base, local) = match std::env::args().nth(1) {
        Some(base) => (base, None),
        None => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let base = format!("http://{}", listener.local_addr()?);
            let config = weft_serve::ServeConfig {
                work_step: Duration::from_millis(5),
                ..weft_serve::ServeConfig::default()
            };
            let (ctx, stop) = weft_core::Context::background().with_cancel();
            let server = tokio::spawn(weft_serve::serve(ctx, listener, config));
            (base, Some((stop, server)))
        }
    };
    let client = Client::new(&base)?;
    let jobs = [
        NewJob::new(
            "data_analysis",
            json!({"dataset": "sales", "query": "sum", "rows": 5000}),
        ),
        NewJob::new(
            "notification",
            json!({
                "recipients": ["a@example.org", "fail@example.org"],
                "message": "hello", "channel": "email"
            }),
        )
        .priority(2),
        NewJob::new(
            "image_processing",
            json!({"image_url": "http://img.example/fail.png"}),
        ),
    ];
    let mut ids = Vec::new();
    for job in &jobs {
        ids.push(client.submit(job).await?);
    }
    for id in &ids {
        let job = client.wait(id).await?;
        match job.status {
            JobStatus::Completed => println!(
                "{} {}: {}",
                job.job_type,
                id,
                job.result.unwrap_or_default()
            ),
            status => println!(
                "{} {}: {status:?}: {}",
                job.job_type,
                id,
                job.error.unwrap_or_default()
            ),
        }
    }
    if let Some((stop, server)) = local {
        stop.cancel();
        server.await??;
    }
    Ok(())
}
