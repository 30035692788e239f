//! A small client for the job API of `weft serve`, for Rust services that hand work to it.
//!
//! ```
//! use std::time::Duration;
//! use serde_json::json;
//! use weft_serve_client::{Client, JobStatus, NewJob};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let base = format!("http://{}", listener.local_addr()?);
//! # let config = weft_serve::ServeConfig { work_step: Duration::from_millis(1), ..Default::default() };
//! # let (ctx, stop) = weft_core::Context::background().with_cancel();
//! # let server = tokio::spawn(weft_serve::serve(ctx, listener, config));
//! // `base` is where `weft serve` listens, e.g. "http://127.0.0.1:8080".
//! let client = Client::new(&base)?;
//! let job = NewJob::new("notification", json!({
//!     "recipients": ["ops@example.org"], "message": "deployed", "channel": "email"
//! }));
//! let id = client.submit(&job).await?;
//! let done = client.wait(&id).await?;
//! assert_eq!(done.status, JobStatus::Completed);
//! assert_eq!(done.result.unwrap()["sent"], 1);
//! # stop.cancel();
//! # server.await??;
//! # Ok(())
//! # }
//! ```
//!
//! # Retries that do not duplicate
//!
//! [`Client::submit`] sends an `Idempotency-Key` (random, one per call unless the job names
//! its own) and retries when the server is busy (503, after its `Retry-After`) or the
//! connection fails, up to [`Client::retries`] times with exponential backoff. Every retry
//! carries the same key, so the server stores the job once however many times the request
//! arrived: a submission is *exactly once* in the queue. The job itself runs *at least once*
//! (a node that dies mid-job has it run again), so make jobs safe to repeat.
//!
//! # Waiting
//!
//! [`Client::wait`] polls the job, starting at 20 ms and doubling to at most
//! [`Client::max_poll`] (1 s), until it reaches a final state.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A client of one `weft serve` base URL (any node of a PostgreSQL cluster will do). Cloning
/// shares the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    token: Option<String>,
    retries: u32,
    max_poll: Duration,
}

/// A job to submit: its type and data, and optionally its id, priority, start time and
/// idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct NewJob {
    /// The job type (`data_analysis`, `image_processing`, `notification`).
    #[serde(rename = "type")]
    pub job_type: String,
    /// The job's data, as its type expects.
    pub data: Value,
    /// The job's id; by default the server makes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Priority, 0 (low) to 2 (high); by default 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Not to start before this time (Unix milliseconds; PostgreSQL store only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<i64>,
    /// The `Idempotency-Key` to send; by default a random one per [`Client::submit`] call.
    /// Give your own (an order number, say) to make submissions of separate calls, or separate
    /// processes, one job.
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

impl NewJob {
    /// A job of `job_type` with `data`, with the server's defaults for the rest.
    ///
    /// ```
    /// use serde_json::json;
    /// let job = weft_serve_client::NewJob::new("data_analysis", json!({"dataset": "d", "query": "q"}))
    ///     .priority(2)
    ///     .idempotency_key("report-2026-12-07");
    /// assert_eq!(job.priority, Some(2));
    /// ```
    #[must_use]
    pub fn new(job_type: impl Into<String>, data: Value) -> Self {
        NewJob {
            job_type: job_type.into(),
            data,
            id: None,
            priority: None,
            run_at: None,
            idempotency_key: None,
        }
    }

    /// Sets [`id`](NewJob::id).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets [`priority`](NewJob::priority).
    #[must_use]
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sets [`run_at`](NewJob::run_at).
    #[must_use]
    pub fn run_at(mut self, unix_ms: i64) -> Self {
        self.run_at = Some(unix_ms);
        self
    }

    /// Sets [`idempotency_key`](NewJob::idempotency_key).
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker runs it.
    Running,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled by a client.
    Cancelled,
    /// Ran past the server's job timeout.
    TimedOut,
    /// Gave up after its last attempt.
    Dead,
    /// A state this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl JobStatus {
    /// `true` once the job has ended: it will not change again.
    ///
    /// ```
    /// use weft_serve_client::JobStatus;
    /// assert!(JobStatus::Completed.is_final());
    /// assert!(!JobStatus::Queued.is_final());
    /// ```
    #[must_use]
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

/// A job as the server reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// Its id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Its priority level.
    pub priority: u8,
    /// Its data as submitted.
    pub data: Value,
    /// Its state.
    pub status: JobStatus,
    /// The result, once completed.
    #[serde(default)]
    pub result: Option<Value>,
    /// The error, once failed, cancelled, timed out or dead.
    #[serde(default)]
    pub error: Option<String>,
    /// How many times a worker started it.
    pub attempts: u32,
    /// When it was accepted (Unix milliseconds).
    pub created_at: i64,
    /// When it last started (Unix milliseconds).
    #[serde(default)]
    pub started_at: Option<i64>,
    /// When it ended (Unix milliseconds).
    #[serde(default)]
    pub finished_at: Option<i64>,
}

/// A request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not an `http` or `https` URL.
    #[error("invalid server URL {url:?}: {reason}")]
    Url {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached, or its answer could not be read (after the retries,
    /// for a submission).
    #[error("cannot reach the job server: {0}")]
    Http(#[source] reqwest::Error),
    /// The server refused the request; `message` is its explanation.
    #[error("the job server answered {status}: {message}")]
    Api {
        /// The HTTP status (400 invalid job, 401 token, 404 unknown job, 409 conflict, 422
        /// key reused for another job, 503 busy, ...).
        status: u16,
        /// The server's `error` text.
        message: String,
    },
}

impl ClientError {
    /// The HTTP status, when the server answered.
    ///
    /// ```
    /// let e = weft_serve_client::ClientError::Api { status: 404, message: "no job".into() };
    /// assert_eq!(e.status(), Some(404));
    /// ```
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Accepted {
    id: String,
}

#[derive(Deserialize)]
struct ApiError {
    error: String,
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`).
    ///
    /// # Errors
    ///
    /// [`ClientError::Url`] if `base` is not an http(s) URL.
    ///
    /// ```
    /// assert!(weft_serve_client::Client::new("http://127.0.0.1:8080").is_ok());
    /// assert!(weft_serve_client::Client::new("ftp://x").is_err());
    /// ```
    pub fn new(base: &str) -> Result<Client, ClientError> {
        let bad = |reason: String| ClientError::Url {
            url: base.to_owned(),
            reason,
        };
        let mut url = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https".into()));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Client {
            http: reqwest::Client::new(),
            base: url,
            token: None,
            retries: 5,
            max_poll: Duration::from_secs(1),
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request (for `weft serve --token`).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Uses `http` for requests (to set timeouts, proxies, TLS roots). By default, a
    /// `reqwest::Client::new()`.
    #[must_use]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// How many times [`submit`](Client::submit) retries a busy server or a failed
    /// connection. By default, 5.
    #[must_use]
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// The longest pause between two polls of [`wait`](Client::wait). By default, 1 s.
    #[must_use]
    pub fn max_poll(mut self, d: Duration) -> Self {
        self.max_poll = d;
        self
    }

    fn url(&self, path: &str) -> Result<url::Url, ClientError> {
        self.base.join(path).map_err(|e| ClientError::Url {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    fn request(&self, method: reqwest::Method, url: url::Url) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Submits `job` and returns its id once the server has stored it (its 202).
    ///
    /// # Errors
    ///
    /// [`ClientError::Api`] if the server refuses the job (400 invalid, 409 its id is taken,
    /// 422 its idempotency key names another job), or is still busy (503) after the retries;
    /// [`ClientError::Http`] if it cannot be reached after the retries.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the job stored (the request may have arrived). Submit
    /// again with the same [`idempotency_key`](NewJob::idempotency_key) to learn its id
    /// without storing a second job.
    pub async fn submit(&self, job: &NewJob) -> Result<String, ClientError> {
        let key = job
            .idempotency_key
            .clone()
            .unwrap_or_else(|| format!("weft-client-{:032x}", rand::random::<u128>()));
        let url = self.url("api/jobs")?;
        let mut backoff = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            tries += 1;
            let sent = self
                .request(reqwest::Method::POST, url.clone())
                .header("Idempotency-Key", &key)
                .json(job)
                .send()
                .await;
            let wait = match sent {
                Ok(resp) if resp.status() == reqwest::StatusCode::ACCEPTED => {
                    let accepted: Accepted = resp.json().await.map_err(ClientError::Http)?;
                    return Ok(accepted.id);
                }
                Ok(resp) if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    let after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    if tries > self.retries {
                        return Err(api_error(resp).await);
                    }
                    after.unwrap_or(backoff)
                }
                Ok(resp) => return Err(api_error(resp).await),
                Err(e) if tries > self.retries || !(e.is_connect() || e.is_timeout()) => {
                    return Err(ClientError::Http(e));
                }
                Err(_) => backoff,
            };
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// The job `id` as the server has it now.
    ///
    /// # Errors
    ///
    /// [`ClientError::Api`] with 404 if there is no such job; [`ClientError::Http`] if the
    /// server cannot be reached.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn get(&self, id: &str) -> Result<Job, ClientError> {
        let url = self.url(&format!("api/jobs/{}", encode(id)?))?;
        let resp = self
            .request(reqwest::Method::GET, url)
            .send()
            .await
            .map_err(ClientError::Http)?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        resp.json().await.map_err(ClientError::Http)
    }

    /// Waits until the job `id` is final (completed, failed, cancelled, timed out or dead) and
    /// returns it, polling with a growing pause (20 ms doubling to [`max_poll`](Client::max_poll)).
    ///
    /// # Errors
    ///
    /// As [`get`](Client::get), for any of the polls.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads; the job goes on whether anyone waits or not.
    pub async fn wait(&self, id: &str) -> Result<Job, ClientError> {
        let mut pause = Duration::from_millis(20);
        loop {
            let job = self.get(id).await?;
            if job.status.is_final() {
                return Ok(job);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.max_poll);
        }
    }

    /// Cancels the job `id` (queued, or running on whichever node runs it).
    ///
    /// # Errors
    ///
    /// [`ClientError::Api`] with 409 if it had already finished, 404 if there is no such job.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may still cancel the job.
    pub async fn cancel(&self, id: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("api/jobs/{}", encode(id)?))?;
        let resp = self
            .request(reqwest::Method::DELETE, url)
            .send()
            .await
            .map_err(ClientError::Http)?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        Ok(())
    }
}

/// Job ids are letters, digits and `-_.:`; anything else is percent-encoded so that an id can
/// never change the path.
fn encode(id: &str) -> Result<String, ClientError> {
    // A whole segment of dots would be read as "this" or "parent" directory, encoded or not.
    if id.is_empty() || id.bytes().all(|b| b == b'.') {
        return Err(ClientError::Url {
            url: id.to_owned(),
            reason: "a job id cannot be empty, \".\" or \"..\"".into(),
        });
    }
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

async fn api_error(resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let message = match resp.json::<ApiError>().await {
        Ok(e) => e.error,
        Err(_) => "no explanation in the answer".to_owned(),
    };
    ClientError::Api { status, message }
}
