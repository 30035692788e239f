//! One download: attempts with backoff, resume, streaming to the partial file, verification.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use weft_core::context::Done;

use super::error::DownloadError;
use super::part::{self, FileThread, Mode, PartPaths, PartWriter, Target, Validator};
use super::progress::Tracker;
use super::rate::Limiter;
use super::{FileResult, Outcome, Partial, Request, Shared};
use super::{retry, split};

/// How an attempt ended short of completion.
pub(crate) enum Stop {
    /// The context ended; the partial file was kept.
    Cancelled,
    /// The attempt failed; the caller decides whether to retry.
    Failed(DownloadError),
    /// The partial file cannot be resumed (416, a range that does not fit, a changed entity):
    /// try again at once from the start.
    Restart,
}

/// One download to run.
pub(crate) struct Job {
    pub(crate) request: Request,
    /// The URL-derived name, unique in this run: the partial file is `base.part`.
    pub(crate) base: String,
    /// The URL-derived name: the final name unless `Content-Disposition` gives one.
    pub(crate) url_name: String,
    /// Whether `base.part` or its metadata existed when the batch started.
    pub(crate) had_part: bool,
    /// Set once splitting failed for this file (ranges ignored, or the file kept changing):
    /// the next attempts use one connection.
    pub(crate) no_split: AtomicBool,
    /// The connections its host may still open (one permit per connection in use).
    pub(crate) host: Arc<Semaphore>,
    /// The rate limits it draws from.
    pub(crate) limiter: Limiter,
}

/// Runs all attempts of `job`. `done` is the context's `done()` future, shared by all awaits.
pub(crate) async fn fetch(
    shared: &Arc<Shared>,
    files: &FileThread,
    job: &Job,
    mut done: Pin<&mut Done>,
    tracker: &mut dyn Tracker,
) -> FileResult {
    let config = &shared.config;
    let started = Instant::now();
    let paths = PartPaths::new(&config.dir, &job.base);
    let mut attempts = 0u32;
    let mut failures = 0u32;
    let mut allow_resume = true;
    let mut resumed_from = 0;
    // Whether a partial file may exist; false spares a file-system check per download.
    let mut maybe_part = job.had_part;
    let outcome = loop {
        attempts += 1;
        let result = attempt(
            Env { shared, files },
            job,
            &paths,
            done.as_mut(),
            tracker,
            allow_resume,
            maybe_part,
        )
        .await;
        // A failed attempt may have kept bytes.
        maybe_part = true;
        match result {
            Ok((path, bytes, from)) => {
                return FileResult {
                    url: job.request.url.clone(),
                    path: Some(path),
                    bytes,
                    resumed_from: from,
                    duration: started.elapsed(),
                    attempts,
                    outcome: Outcome::Complete,
                    partial: None,
                };
            }
            Err((Stop::Cancelled, _)) => break Outcome::Cancelled,
            Err((Stop::Restart, _)) => {
                // At most one restart per download: the next attempt ignores the partial file.
                allow_resume = false;
            }
            Err((Stop::Failed(error), from)) => {
                resumed_from = resumed_from.max(from);
                failures += 1;
                if !error.is_retryable() || failures >= config.max_attempts {
                    break Outcome::Failed(error);
                }
                let wait = match &error {
                    DownloadError::Status {
                        retry_after: Some(wait),
                        ..
                    } => {
                        if *wait > config.max_retry_after {
                            break Outcome::Failed(DownloadError::RetryAfterTooLong(*wait));
                        }
                        *wait
                    }
                    _ => retry::backoff(config.backoff_base, config.backoff_max, failures),
                };
                tracing::debug!(url = %job.request.url, %error, ?wait, "retrying");
                tokio::select! {
                    biased;
                    _ = done.as_mut() => break Outcome::Cancelled,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    // Keep the partial file only if a later run can resume it; report which.
    let left = tokio::task::spawn_blocking({
        let paths = paths.clone();
        let url = job.request.url.clone();
        move || settle_partial(&paths, &url)
    })
    .await
    .ok()
    .flatten();
    let (path, bytes, partial) = match left {
        Some((kept @ Partial::Kept { .. }, len)) => (Some(paths.part), len, Some(kept)),
        Some((removed, _)) => (None, 0, Some(removed)),
        None => (None, 0, None),
    };
    FileResult {
        url: job.request.url.clone(),
        path,
        bytes,
        resumed_from,
        duration: started.elapsed(),
        attempts,
        outcome,
        partial,
    }
}

/// Keeps a partial file that its metadata makes resumable, and deletes any other (with its
/// metadata): a `.part` without a validator is never left behind. `None` when there was no
/// partial file, or an empty one (deleted without a word).
fn settle_partial(paths: &PartPaths, url: &url::Url) -> Option<(Partial, u64)> {
    let len = paths.part_len()?;
    // A segmented download's table (its own meta format) makes the file resumable too.
    let resumable = paths
        .resumable(url)
        .or_else(|| split::load(paths, url).map(|saved| (len, saved.validator().clone())));
    if let Some((len, validator)) = resumable {
        let validator = match validator {
            Validator::ETag(v) => format!("ETag {v}"),
            Validator::LastModified(v) => format!("Last-Modified {v}"),
        };
        return Some((Partial::Kept { validator }, len));
    }
    if paths.belongs_elsewhere(url) {
        return None;
    }
    paths.remove();
    (len > 0).then_some((Partial::Removed { bytes: len }, 0))
}

/// What every attempt of a batch uses: the downloader and the batch's file thread.
#[derive(Clone, Copy)]
struct Env<'a> {
    shared: &'a Arc<Shared>,
    files: &'a FileThread,
}

/// One request. Ok gives the final path, the file size and the offset it resumed from.
async fn attempt(
    Env { shared, files }: Env<'_>,
    job: &Job,
    paths: &PartPaths,
    mut done: Pin<&mut Done>,
    tracker: &mut dyn Tracker,
    allow_resume: bool,
    maybe_part: bool,
) -> Result<(PathBuf, u64, u64), (Stop, u64)> {
    let config = &shared.config;
    let url = &job.request.url;
    let split_env = split::Env {
        shared,
        job,
        paths,
        limiter: &job.limiter,
        host: &job.host,
        allow_resume,
    };
    if allow_resume && maybe_part {
        let (paths, url) = (paths.clone(), url.clone());
        let saved = tokio::task::spawn_blocking(move || split::load(&paths, &url))
            .await
            .ok()
            .flatten();
        if let Some(saved) = saved {
            return split::run(split_env, split::Start::Resume(saved), done, tracker).await;
        }
    }
    let resume = if allow_resume && maybe_part {
        let (paths, url) = (paths.clone(), url.clone());
        tokio::task::spawn_blocking(move || paths.resumable(&url))
            .await
            .ok()
            .flatten()
    } else {
        None
    };

    let mut extra = HeaderMap::new();
    // (A validator that is not a valid header value cannot have come from a server; without
    // a Range the answer is a whole body, which starts the file over.)
    if let Some((len, validator)) = &resume
        && let (Ok(range), Ok(if_range)) = (
            HeaderValue::try_from(format!("bytes={len}-")),
            HeaderValue::from_str(validator.header_value()),
        )
    {
        extra.insert(header::RANGE, range);
        extra.insert(header::IF_RANGE, if_range);
    }
    let mut response = tokio::select! {
        biased;
        _ = done.as_mut() => return Err((Stop::Cancelled, 0)),
        r = tokio::time::timeout(config.idle_timeout, shared.client.get(url, &extra)) => match r {
            Err(_) => return Err((Stop::Failed(DownloadError::IdleTimeout(config.idle_timeout)), 0)),
            Ok(Err(e)) => return Err((Stop::Failed(e), 0)),
            Ok(Ok(response)) => response,
        },
    };

    let status = response.status();
    let headers = response.headers().clone();
    let validator = Validator::from_headers(&headers);
    let (mode, offset, total) = match (status, &resume) {
        (StatusCode::PARTIAL_CONTENT, Some((len, sent))) => {
            let Some((start, total)) = content_range(&headers) else {
                return Err((Stop::Restart, 0));
            };
            // A server that ignores If-Range may still say the entity changed.
            let changed = validator.as_ref().is_some_and(|v| v != sent);
            if start != *len || changed {
                return Err((Stop::Restart, 0));
            }
            let total = total.or_else(|| response.content_length().map(|l| start + l));
            (Mode::Append { offset: start }, start, total)
        }
        (StatusCode::RANGE_NOT_SATISFIABLE, Some(_)) => return Err((Stop::Restart, 0)),
        (s, _) if s.is_success() && s != StatusCode::PARTIAL_CONTENT => {
            let mode = Mode::Create {
                url: url.clone(),
                validator: validator.clone(),
                stale_meta: maybe_part,
            };
            (mode, 0, response.content_length())
        }
        (s, _) => {
            let retry_after =
                if s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::SERVICE_UNAVAILABLE {
                    headers
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry::parse_retry_after(v, SystemTime::now()))
                } else {
                    None
                };
            let error = DownloadError::Status {
                status: s.as_u16(),
                retry_after,
            };
            return Err((Stop::Failed(error), 0));
        }
    };
    if let (Some(limit), Some(total)) = (config.max_size, total)
        && total > limit
    {
        let paths = paths.clone();
        let _ = tokio::task::spawn_blocking(move || paths.remove()).await;
        return Err((Stop::Failed(DownloadError::TooLarge { limit }), 0));
    }
    if status == StatusCode::OK
        && let (Some(total), Some(validator)) = (total, &validator)
        && let Some(permits) = split::can_split(&split_env, &headers, Some(total))
    {
        let start = split::Start::Fresh {
            response: Box::new(response),
            validator: validator.clone(),
            total,
            permits,
        };
        return split::run(split_env, start, done, tracker).await;
    }

    // Continue the running hash over the bytes already on disk.
    let hasher = match (&job.request.sha256, offset) {
        (None, _) => None,
        (Some(_), 0) => Some(<sha2::Sha256 as sha2::Digest>::new()),
        (Some(_), len) => {
            let part_path = paths.part.clone();
            match tokio::task::spawn_blocking(move || part::hash_prefix(&part_path, len)).await {
                Ok(Ok(h)) => Some(h),
                _ => return Err((Stop::Restart, 0)),
            }
        }
    };
    let name = final_name(&headers).unwrap_or_else(|| job.url_name.clone());
    tracker.attempt(offset, total);
    let mut writer = PartWriter::new(paths.clone(), mode, hasher);
    let mut received = offset;

    // One timer for the whole body, moved on only when it fires: arming a timeout per piece
    // (thousands per large file) costs more than reading the clock.
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    let mut last_piece = Instant::now();
    loop {
        let next = tokio::select! {
            biased;
            _ = done.as_mut() => {
                return Err(match writer.keep().await {
                    Ok(()) => (Stop::Cancelled, offset),
                    Err(e) => (Stop::Failed(e), offset),
                });
            }
            r = response.chunk() => r,
            () = idle.as_mut() => {
                let deadline = last_piece + config.idle_timeout;
                if Instant::now() < deadline {
                    idle.as_mut().reset(deadline);
                    continue;
                }
                let e = DownloadError::IdleTimeout(config.idle_timeout);
                return Err(keep(writer, e, offset).await);
            }
        };
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => return Err(keep(writer, DownloadError::Http(e), offset).await),
        };
        last_piece = Instant::now();
        let len = chunk.len() as u64;
        received += len;
        if let Some(limit) = config.max_size.filter(|&l| received > l) {
            writer.discard().await;
            return Err((Stop::Failed(DownloadError::TooLarge { limit }), offset));
        }
        if let Some(expected) = total.filter(|&t| received > t) {
            // More than announced: the content cannot be trusted.
            writer.discard().await;
            let e = DownloadError::LengthMismatch {
                expected,
                actual: received,
            };
            return Err((Stop::Failed(e), offset));
        }
        if let Err(e) = writer.push(chunk).await {
            return Err((Stop::Failed(e), offset));
        }
        tracker.advance(len);
        job.limiter.consume(len).await;
    }
    if let Some(expected) = total.filter(|&t| received != t) {
        let e = DownloadError::LengthMismatch {
            expected,
            actual: received,
        };
        return Err(keep(writer, e, offset).await);
    }
    let target = Target {
        dir: config.dir.clone(),
        name,
        overwrite: config.overwrite,
        claimed: shared.claimed.clone(),
    };
    let expected = job.request.sha256.map(|d| d.0);
    match writer.finish(expected, config.fsync, target, files).await {
        Ok(path) => Ok((path, received, offset)),
        Err(e) => Err((Stop::Failed(e), offset)),
    }
}

/// Keeps the bytes received so far for a resume, and reports `error` (or the write error).
async fn keep(writer: PartWriter, error: DownloadError, offset: u64) -> (Stop, u64) {
    match writer.keep().await {
        Ok(()) => (Stop::Failed(error), offset),
        Err(write_error) => (Stop::Failed(write_error), offset),
    }
}

/// `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
pub(crate) fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

pub(crate) fn final_name(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_DISPOSITION)?;
    // Header bytes that are not visible ASCII are taken as Latin-1, as HTTP defines them.
    let text: String = match value.to_str() {
        Ok(s) => s.to_owned(),
        Err(_) => value.as_bytes().iter().map(|&b| b as char).collect(),
    };
    super::name::from_content_disposition(&text)
}
