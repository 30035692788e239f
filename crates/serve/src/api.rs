//! The HTTP API of the job server (axum). See the [module docs](super) for the routes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Auth, require_token};
use super::jobs::{JobSpec, JobType};
use super::store::{JobStatus, JobStore, NewJob, Store, StoreError};
use super::{PRIORITY_LEVELS, PoolJob, Server};

/// Builds the router over a running server's state: `/healthz` is open to all (load balancers
/// probe it); with a token, every other route needs it.
pub(crate) fn router(server: Arc<Server>) -> Router {
    let mut api = Router::new()
        .route("/api/jobs", get(list_jobs).post(submit_job))
        .route("/api/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/metrics", get(metrics));
    if let Some(token) = &server.config.token {
        let auth = Arc::new(Auth::new(token));
        api = api.route_layer(axum::middleware::from_fn_with_state(auth, require_token));
    }
    api.route("/healthz", get(healthz)).with_state(server)
}

/// A response with a JSON body already serialised.
fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON error body: `{"error": "...", "status": N}`.
pub(crate) fn error(status: StatusCode, message: impl AsRef<str>) -> Response {
    let message = Value::from(message.as_ref());
    json_response(
        status,
        format!(r#"{{"error":{message},"status":{}}}"#, status.as_u16()),
    )
}

fn unavailable(server: &Server, message: &str) -> Response {
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, message);
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(server.config.retry_after_secs),
    );
    resp
}

fn too_large(max: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over the limit of {max} bytes"),
    )
}

fn store_error(e: &StoreError) -> Response {
    tracing::error!(error = %e, "job store failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    #[serde(default)]
    priority: Option<Value>,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    run_at: Option<i64>,
}

/// A validated `POST /api/jobs` body.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Submission {
    /// The client's id for the job, if it gave one (checked: 1-128 characters of letters,
    /// digits, `-`, `_`, `.`, `:`).
    pub id: Option<String>,
    /// Priority level, `0..=2`.
    pub priority: u8,
    /// The job, validated for its type.
    pub spec: JobSpec,
    /// The job's data as submitted (stored, and shown by `GET`).
    pub data: Value,
    /// Not to start before this time (Unix milliseconds); PostgreSQL store only.
    pub run_at: Option<i64>,
}

/// Why a `POST /api/jobs` body was refused (the server answers 400 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSubmission(String);

/// Parses and validates a `POST /api/jobs` body: the whole of what the server checks before it
/// reserves queue room. Any bytes give `Ok` or `Err`, never a panic.
///
/// # Errors
///
/// [`InvalidSubmission`] for bad JSON, a missing or unknown type, a bad priority or id, or
/// data that is invalid for the type.
///
/// ```
/// use weft_serve::api::parse_submission;
/// let ok = parse_submission(br#"{"type":"notification","priority":"high",
///     "data":{"recipients":["a@x.org"],"message":"hi","channel":"sms"}}"#)?;
/// assert_eq!(ok.priority, 2);
/// let err = parse_submission(br#"{"type":"mining","data":{}}"#).unwrap_err();
/// assert!(err.to_string().contains("unknown job type"));
/// # Ok::<(), weft_serve::api::InvalidSubmission>(())
/// ```
pub fn parse_submission(body: &[u8]) -> Result<Submission, InvalidSubmission> {
    let bad = |m: String| InvalidSubmission(m);
    let req: SubmitRequest =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Some(type_name) = req.job_type.as_deref() else {
        return Err(bad(
            "missing `type` (one of data_analysis, image_processing, notification)".into(),
        ));
    };
    let Some(job_type) = JobType::parse(type_name) else {
        return Err(bad(format!(
            "unknown job type {type_name:?} (one of data_analysis, image_processing, notification)"
        )));
    };
    let priority = parse_priority(req.priority.as_ref()).map_err(bad)?;
    let spec = JobSpec::parse(job_type, &req.data).map_err(|e| bad(e.to_string()))?;
    if let Some(id) = &req.id
        && !valid_id(id)
    {
        return Err(bad(
            "`id` must be 1-128 characters of letters, digits, '-', '_', '.', ':'".into(),
        ));
    }
    if req.run_at.is_some_and(|t| t < 0) {
        return Err(bad(
            "`run_at` must be a time in Unix milliseconds (0 or more)".into(),
        ));
    }
    Ok(Submission {
        id: req.id,
        priority,
        spec,
        data: req.data,
        run_at: req.run_at,
    })
}

/// Parses `priority`: 0..=2, or "low" / "normal" / "high"; absent means normal.
fn parse_priority(v: Option<&Value>) -> Result<u8, String> {
    match v {
        None | Some(Value::Null) => Ok(1),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(p) if p < u64::from(PRIORITY_LEVELS) => Ok(p as u8),
            _ => Err(format!(
                "`priority` must be 0, 1 or 2 (or \"low\", \"normal\", \"high\"), not {n}"
            )),
        },
        Some(Value::String(s)) => match s.as_str() {
            "low" => Ok(0),
            "normal" => Ok(1),
            "high" => Ok(2),
            other => Err(format!(
                "`priority` must be \"low\", \"normal\" or \"high\", not {other:?}"
            )),
        },
        Some(other) => Err(format!(
            "`priority` must be a number or a name, not {other}"
        )),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A job id nobody can guess that sorts by creation time: 32 hex digits, the first 12 the
/// milliseconds since the Unix epoch and the other 20 random bits from the thread's CSPRNG
/// (UUIDv7's layout). Ids made in order land next to each other in a store's id index, so
/// a batch of inserts dirties a few pages instead of one page per job; the 80 random bits
/// keep them unguessable.
fn new_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    id_at(millis, rand::random::<u128>())
}

/// The id made at `millis` since the epoch: its low 48 bits, then the low 80 bits of `random`.
fn id_at(millis: u128, random: u128) -> String {
    const RANDOM_BITS: u32 = 80;
    let time = millis & ((1 << 48) - 1);
    let random = random & ((1 << RANDOM_BITS) - 1);
    format!("{:032x}", time << RANDOM_BITS | random)
}

/// Whether reading a body failed because it was over the limit (anywhere in the error chain).
fn over_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

async fn submit_job(State(server): State<Arc<Server>>, headers: HeaderMap, body: Body) -> Response {
    if server.is_shutting_down() {
        return unavailable(
            &server,
            "the server is shutting down; retry against the next instance",
        );
    }
    let max = server.config.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(max);
    }
    let body =
        match tokio::time::timeout(server.config.body_timeout, axum::body::to_bytes(body, max))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(e)) if over_limit(&e) => return too_large(max),
            Ok(Err(e)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {e}"),
                );
            }
            Err(_) => {
                let mut resp = error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {:?}",
                        server.config.body_timeout
                    ),
                );
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return resp;
            }
        };
    let sub = match parse_submission(&body) {
        Ok(sub) => sub,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    let key = match idempotency_key(&headers) {
        Ok(key) => key,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let priority = sub.priority;
    if sub.run_at.is_some() && server.node.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            crate::store::no_run_at().to_string(),
        );
    }
    // With a shared queue (PostgreSQL) the job waits in the database for whichever node
    // claims it; otherwise it goes to this process's pool, which has room for it first.
    let shared = server.node.is_some();
    // Room first: a full queue is answered without writing anything.
    let room = if shared {
        None
    } else {
        let Some(room) = server.admission.try_reserve(priority) else {
            server.rejected.fetch_add(1, Ordering::Relaxed);
            return unavailable(&server, "the job queue is full; retry later");
        };
        Some(room)
    };
    // A retried request with the same key names the same job, so it cannot add a second one.
    let id = sub
        .id
        .clone()
        .or_else(|| key.map(id_for_key))
        .unwrap_or_else(new_id);

    // Durable next: the job's batch is committed before anyone can be told it was accepted.
    let mut job = NewJob::new(
        id.clone(),
        sub.spec.job_type().as_str(),
        priority,
        sub.data.clone(),
    );
    job.run_at = sub.run_at;
    if let Err(e) = server.store.insert(job).await {
        return match e {
            StoreError::Duplicate(id) if key.is_some() => replay(&server, &id, &sub).await,
            StoreError::QueueFull { .. } => {
                server.rejected.fetch_add(1, Ordering::Relaxed);
                unavailable(&server, "the job queue is full; retry later")
            }
            StoreError::Duplicate(id) => error(
                StatusCode::CONFLICT,
                format!("a job with id {id:?} exists already"),
            ),
            e => store_error(&e),
        };
    }
    if !shared {
        let job = PoolJob {
            id: id.clone(),
            spec: Arc::new(sub.spec),
            room,
            attempt: None,
        };
        if server.dispatch(job, priority).is_err() {
            // Shutdown began between the commit and the hand-off: not accepted after all.
            if let Err(e) = server.store.delete(&id).await {
                tracing::error!(job = %id, error = %e, "could not remove a refused job");
            }
            return unavailable(
                &server,
                "the server is shutting down; retry against the next instance",
            );
        }
    }
    server.accepted.fetch_add(1, Ordering::Relaxed);
    accepted(&id, priority)
}

/// The 202 of an accepted job.
fn accepted(id: &str, priority: u8) -> Response {
    // Ids are letters, digits and `-_.:` (checked, or generated as hex), so they need no JSON
    // escaping: the body is written directly, without building a JSON tree per request.
    let body = format!(
        r#"{{"id":"{id}","status":"queued","priority":{priority},"location":"/api/jobs/{id}"}}"#
    );
    let mut resp = json_response(StatusCode::ACCEPTED, body);
    if let Ok(v) = HeaderValue::try_from(format!("/api/jobs/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The `Idempotency-Key` header, if any: 1-255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key))
        }
        _ => Err("`Idempotency-Key` must be 1-255 visible ASCII characters"),
    }
}

/// The job id a key stands for: a digest, so the id reveals nothing of the key.
fn id_for_key(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    let mut id = String::with_capacity(36);
    id.push_str("idem");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// The answer to a retried submission whose key names a stored job: the same 202 if it is
/// the same job, else 422 (the key was used for another job).
async fn replay(server: &Server, id: &str, sub: &Submission) -> Response {
    match server.store.get(id).await {
        Ok(Some(stored))
            if stored.job_type == sub.spec.job_type().as_str()
                && stored.priority == sub.priority
                && stored.data == sub.data =>
        {
            let mut resp = accepted(id, stored.priority);
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            resp
        }
        Ok(_) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this Idempotency-Key was used for a different job; use a new key for a new job",
        ),
        Err(e) => store_error(&e),
    }
}

async fn get_job(State(server): State<Arc<Server>>, Path(id): Path<String>) -> Response {
    // The local stores write the answer from the stored JSON text (SQLite's finished jobs from
    // a cache), without building the record's JSON trees only to serialise them again.
    let found = match &server.store {
        Store::Memory(memory) => Ok(memory.get_json(&id).map(Bytes::from)),
        Store::Sqlite(sqlite) => sqlite.get_json(&id).await,
        other => match other.get(&id).await {
            Ok(Some(record)) => return axum::Json(record).into_response(),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        },
    };
    match found {
        Ok(Some(body)) => {
            let mut resp = (StatusCode::OK, body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job with id {id:?}")),
        Err(e) => store_error(&e),
    }
}

async fn cancel_job(State(server): State<Arc<Server>>, Path(id): Path<String>) -> Response {
    let record = match server.store.get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no job with id {id:?}")),
        Err(e) => return store_error(&e),
    };
    if record.status.is_final() {
        return already_final(&id, record.status);
    }
    server.cancel_local(&id);
    // Record it now, so a GET right after sees it; the first final state wins, so the job's
    // own late outcome cannot overwrite it.
    match server
        .store
        .finish(
            &id,
            None,
            JobStatus::Cancelled,
            None,
            Some("cancelled by client".into()),
        )
        .await
    {
        Ok(true) => axum::Json(json!({ "id": id, "status": "cancelled" })).into_response(),
        Ok(false) => match server.store.get(&id).await {
            Ok(Some(r)) => already_final(&id, r.status),
            Ok(None) => error(StatusCode::NOT_FOUND, format!("no job with id {id:?}")),
            Err(e) => store_error(&e),
        },
        Err(e) => store_error(&e),
    }
}

fn already_final(id: &str, status: JobStatus) -> Response {
    let body = json!({
        "error": format!("job {id:?} already finished ({})", status.as_str()),
        "status": 409,
        "job_status": status.as_str(),
    });
    (StatusCode::CONFLICT, axum::Json(body)).into_response()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// The most jobs one `GET /api/jobs` returns; more come page by page with `after`.
pub const MAX_PAGE: usize = 1000;

async fn list_jobs(
    State(server): State<Arc<Server>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => match JobStatus::parse(s) {
            Some(s) => Some(s),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown status {s:?} (queued, running, completed, failed, cancelled, timed_out, dead)"
                    ),
                );
            }
        },
    };
    let after = match q.after.as_deref() {
        None | Some("") => None,
        Some(a) => match a.parse::<u64>() {
            Ok(a) => Some(a),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("`after` must be the `next` of a previous page, not {a:?}"),
                );
            }
        },
    };
    let limit = q.limit.unwrap_or(100).min(MAX_PAGE);
    match server.store.list(status, after, limit).await {
        Ok(page) => axum::Json(json!({
            "count": page.jobs.len(),
            "jobs": page.jobs,
            "next": page.next.map(|n| n.to_string()),
        }))
        .into_response(),
        Err(e) => store_error(&e),
    }
}

async fn healthz(State(server): State<Arc<Server>>) -> Response {
    let stats = server.stats();
    let recovering = server.recovering.load(Ordering::Relaxed);
    let status = if server.is_shutting_down() {
        "shutting_down"
    } else if recovering > 0 {
        "recovering"
    } else {
        "ok"
    };
    let code = if server.is_shutting_down() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        axum::Json(json!({
            "status": status,
            "recovering": recovering,
            "workers": stats.workers,
            "busy": stats.busy,
            "queued": stats.queued,
        })),
    )
        .into_response()
}

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let counts = server.store.counts().await.unwrap_or_default();
    let node = match &server.node {
        Some(node) => Some(super::metrics::NodeFigures {
            claimed: node.claimed.load(Ordering::Relaxed),
            held: node.in_flight(),
            queries: node.store.queries(),
            depth: node.store.queue_depth().await.unwrap_or_default(),
        }),
        None => None,
    };
    let text = super::metrics::render(
        &server.stats(),
        &counts,
        server.accepted.load(Ordering::Relaxed),
        server.rejected.load(Ordering::Relaxed),
        node.as_ref(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::{id_at, new_id};

    /// Ids sort by the millisecond they were made in, whatever their random bits; the random
    /// part takes the last 20 hex digits and the time the first 12.
    #[test]
    fn a_later_millisecond_makes_an_id_that_sorts_after() {
        let t = 1_765_000_000_000u128;
        let early = id_at(t, u128::MAX);
        let late = id_at(t + 1, 0);
        assert!(early < late, "{early} should sort before {late}");
        assert_eq!(early.len(), 32);
        assert_eq!(&early[..12], format!("{t:012x}"));
        assert_eq!(&early[12..], "f".repeat(20));
        assert_eq!(&late[12..], "0".repeat(20));
        // Across a much longer gap and with random bits the other way round too.
        assert!(id_at(t, 0) < id_at(t + 60_000, 0));
        assert!(id_at(t - 1, u128::MAX) < id_at(t, 0));
    }

    /// Made now, an id carries the current millisecond and random bits that differ from the
    /// next id's (80 random bits: a repeat would mean the generator is broken).
    #[test]
    fn a_new_id_carries_the_time_and_fresh_random_bits() {
        let ms = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        };
        let before = ms();
        let (a, b) = (new_id(), new_id());
        let after = ms();
        for id in [&a, &b] {
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
            let time = u128::from_str_radix(&id[..12], 16).expect("hex time");
            assert!(
                (before..=after).contains(&time),
                "{time} not in {before}..={after}"
            );
        }
        assert_ne!(a[12..], b[12..], "two ids share their random bits");
    }
}
