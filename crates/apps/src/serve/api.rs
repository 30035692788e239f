//! The HTTP API of the job server (axum). See the [module docs](super) for the routes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::jobs::{JobSpec, JobType};
use super::store::{JobStatus, StoreError};
use super::{PRIORITY_LEVELS, PoolJob, Server};

/// Builds the router over a running server's state.
pub(crate) fn router(server: Arc<Server>) -> Router {
    let max_body = server.config.max_body;
    Router::new()
        .route("/api/jobs", get(list_jobs).post(submit_job))
        .route("/api/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(server)
}

/// A JSON error body: `{"error": "...", "status": N}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "error": message.into(), "status": status.as_u16() });
    (status, axum::Json(body)).into_response()
}

fn unavailable(server: &Server, message: &str) -> Response {
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, message);
    if let Ok(v) = HeaderValue::from_str(&server.config.retry_after_secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
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

fn new_id() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("job-{:x}-{n}", super::store::now_ms())
}

async fn submit_job(State(server): State<Arc<Server>>, body: Bytes) -> Response {
    if server.is_shutting_down() {
        return unavailable(
            &server,
            "the server is shutting down; retry against the next instance",
        );
    }
    let req: SubmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let Some(type_name) = req.job_type.as_deref() else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing `type` (one of data_analysis, image_processing, notification)",
        );
    };
    let Some(job_type) = JobType::parse(type_name) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown job type {type_name:?} (one of data_analysis, image_processing, notification)"
            ),
        );
    };
    let priority = match parse_priority(req.priority.as_ref()) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let spec = match JobSpec::parse(job_type, &req.data) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let id = match req.id {
        Some(id) if valid_id(&id) => id,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "`id` must be 1-128 characters of letters, digits, '-', '_', '.', ':'",
            );
        }
        None => new_id(),
    };

    // Durable first: the job is committed before anyone can be told it was accepted.
    if let Err(e) = server
        .store
        .insert(id.clone(), job_type.as_str(), priority, req.data)
        .await
    {
        return match e {
            StoreError::Duplicate(id) => error(
                StatusCode::CONFLICT,
                format!("a job with id {id:?} exists already"),
            ),
            e => store_error(&e),
        };
    }
    match server.dispatch(
        PoolJob {
            id: id.clone(),
            spec: Arc::new(spec),
        },
        priority,
    ) {
        Ok(()) => {}
        Err(e) => {
            // Not accepted after all: take it out of the database again, then say why.
            let full = e.is_full();
            if let Err(e) = server.store.delete(&id).await {
                tracing::error!(job = %id, error = %e, "could not remove a rejected job");
            }
            return if full {
                unavailable(&server, "the job queue is full; retry later")
            } else {
                unavailable(
                    &server,
                    "the server is shutting down; retry against the next instance",
                )
            };
        }
    }
    server.accepted.fetch_add(1, Ordering::Relaxed);
    let location = format!("/api/jobs/{id}");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    (
        StatusCode::ACCEPTED,
        headers,
        axum::Json(
            json!({ "id": id, "status": "queued", "priority": priority, "location": location }),
        ),
    )
        .into_response()
}

async fn get_job(State(server): State<Arc<Server>>, Path(id): Path<String>) -> Response {
    match server.store.get(&id).await {
        Ok(Some(record)) => axum::Json(record).into_response(),
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
    let pool_id = server
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .copied();
    if let Some(pool_id) = pool_id {
        server
            .cancelled_by_client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        server.pool.cancel(pool_id);
    }
    // Record it now, so a GET right after sees it; the first final state wins, so the job's
    // own late outcome cannot overwrite it.
    match server
        .store
        .finish(
            &id,
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
}

async fn list_jobs(State(server): State<Arc<Server>>, Query(q): Query<ListQuery>) -> Response {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => match JobStatus::parse(s) {
            Some(s) => Some(s),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown status {s:?} (queued, running, completed, failed, cancelled, timed_out)"
                    ),
                );
            }
        },
    };
    let limit = q.limit.unwrap_or(100).min(10_000);
    match server.store.list(status, limit).await {
        Ok(jobs) => axum::Json(json!({ "count": jobs.len(), "jobs": jobs })).into_response(),
        Err(e) => store_error(&e),
    }
}

async fn healthz(State(server): State<Arc<Server>>) -> Response {
    let stats = server.stats();
    let status = if server.is_shutting_down() {
        "shutting_down"
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
            "workers": stats.workers,
            "busy": stats.busy,
            "queued": stats.queued,
        })),
    )
        .into_response()
}

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let counts = server.store.counts().await.unwrap_or_default();
    let text = super::metrics::render(
        &server.stats(),
        &counts,
        server.accepted.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
