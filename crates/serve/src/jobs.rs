//! The job types of the job server: validated on submission, run as cancellable simulated work.
//!
//! These are the material's three job types (data analysis, image processing, notifications),
//! with their bugs fixed: every step checks the job's [`Context`] (the Go version checks it
//! only every 100 rows and never while "downloading"), invalid data is rejected when the job is
//! submitted (400), not discovered by a worker later, and partial success of a notification
//! batch is reported with its counts.
//!
//! The work is simulated (sleeps of `step` per unit), but its shape is real: steps that can be
//! cancelled, results that depend on the input, and failures that the input decides (a
//! recipient or URL containing `fail` fails), so that tests are deterministic.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weft_core::context::{Context, ContextError};

/// The kinds of job the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobType {
    /// Query a dataset and aggregate its rows.
    DataAnalysis,
    /// Download an image, process it, upload the result.
    ImageProcessing,
    /// Send a message to several recipients over email, sms or push.
    Notification,
}

impl JobType {
    /// The type's name in the API (`data_analysis`, ...).
    ///
    /// ```
    /// use weft_serve::jobs::JobType;
    /// assert_eq!(JobType::Notification.as_str(), "notification");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::DataAnalysis => "data_analysis",
            JobType::ImageProcessing => "image_processing",
            JobType::Notification => "notification",
        }
    }

    /// Parses an API type name.
    ///
    /// ```
    /// use weft_serve::jobs::JobType;
    /// assert_eq!(JobType::parse("data_analysis"), Some(JobType::DataAnalysis));
    /// assert_eq!(JobType::parse("nope"), None);
    /// ```
    #[must_use]
    pub fn parse(name: &str) -> Option<JobType> {
        match name {
            "data_analysis" => Some(JobType::DataAnalysis),
            "image_processing" => Some(JobType::ImageProcessing),
            "notification" => Some(JobType::Notification),
            _ => None,
        }
    }
}

/// A job's data, validated for its type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum JobSpec {
    /// `data_analysis`: `{"dataset": "...", "query": "...", "rows": N?}`.
    DataAnalysis {
        /// Dataset name.
        dataset: String,
        /// Query text.
        query: String,
        /// Rows the query returns (default 1000, at most 1,000,000).
        rows: u64,
    },
    /// `image_processing`: `{"image_url": "...", "options": {...}?}`.
    ImageProcessing {
        /// Where the image is downloaded from.
        image_url: String,
        /// Processing options (e.g. `{"resize": "200x200"}`).
        options: serde_json::Map<String, Value>,
    },
    /// `notification`: `{"recipients": [...], "subject": "...", "message": "...", "channel": "email|sms|push"}`.
    Notification {
        /// Who receives the message (at least one).
        recipients: Vec<String>,
        /// Subject line (may be empty for sms).
        subject: String,
        /// Message body (not empty).
        message: String,
        /// Delivery channel.
        channel: Channel,
    },
}

/// Notification delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Channel {
    /// Email.
    Email,
    /// SMS.
    Sms,
    /// Push notification.
    Push,
}

/// Why a job's data was rejected at submission (the server answers 400 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid data for {job_type}: {reason}")]
pub struct InvalidJob {
    /// The job type whose data was invalid.
    pub job_type: &'static str,
    /// What is wrong, and what a valid value looks like.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalysisData {
    dataset: String,
    query: String,
    #[serde(default)]
    rows: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageData {
    image_url: String,
    #[serde(default)]
    options: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationData {
    recipients: Vec<String>,
    #[serde(default)]
    subject: String,
    message: String,
    channel: Channel,
}

const MAX_ROWS: u64 = 1_000_000;

impl JobSpec {
    /// Validates `data` for `job_type`.
    ///
    /// # Errors
    ///
    /// [`InvalidJob`] when a field is missing, has the wrong type, is unknown, or is out of range.
    ///
    /// ```
    /// use serde_json::json;
    /// use weft_serve::jobs::{JobSpec, JobType};
    /// let ok = JobSpec::parse(JobType::Notification, &json!({
    ///     "recipients": ["a@x.org"], "message": "hi", "channel": "email"
    /// }));
    /// assert!(ok.is_ok());
    /// let err = JobSpec::parse(JobType::Notification, &json!({"recipients": [], "message": "hi", "channel": "email"}));
    /// assert!(err.unwrap_err().to_string().contains("at least one recipient"));
    /// ```
    pub fn parse(job_type: JobType, data: &Value) -> Result<JobSpec, InvalidJob> {
        let invalid = |reason: String| InvalidJob {
            job_type: job_type.as_str(),
            reason,
        };
        match job_type {
            JobType::DataAnalysis => {
                let d = AnalysisData::deserialize(data).map_err(|e| invalid(e.to_string()))?;
                if d.dataset.trim().is_empty() {
                    return Err(invalid("`dataset` must not be empty".into()));
                }
                let rows = d.rows.unwrap_or(1000);
                if rows > MAX_ROWS {
                    return Err(invalid(format!("`rows` must be at most {MAX_ROWS}")));
                }
                Ok(JobSpec::DataAnalysis {
                    dataset: d.dataset,
                    query: d.query,
                    rows,
                })
            }
            JobType::ImageProcessing => {
                let d = ImageData::deserialize(data).map_err(|e| invalid(e.to_string()))?;
                let url = url::Url::parse(&d.image_url)
                    .map_err(|e| invalid(format!("`image_url` is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid("`image_url` must be http or https".into()));
                }
                Ok(JobSpec::ImageProcessing {
                    image_url: d.image_url,
                    options: d.options,
                })
            }
            JobType::Notification => {
                let d = NotificationData::deserialize(data).map_err(|e| invalid(e.to_string()))?;
                if d.recipients.is_empty() {
                    return Err(invalid(
                        "`recipients` must list at least one recipient".into(),
                    ));
                }
                if d.message.is_empty() {
                    return Err(invalid("`message` must not be empty".into()));
                }
                Ok(JobSpec::Notification {
                    recipients: d.recipients,
                    subject: d.subject,
                    message: d.message,
                    channel: d.channel,
                })
            }
        }
    }

    /// The job's type.
    #[must_use]
    pub fn job_type(&self) -> JobType {
        match self {
            JobSpec::DataAnalysis { .. } => JobType::DataAnalysis,
            JobSpec::ImageProcessing { .. } => JobType::ImageProcessing,
            JobSpec::Notification { .. } => JobType::Notification,
        }
    }
}

/// How a job run ended without a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job's context ended (cancelled by a client, by shutdown, or timed out).
    #[error("job stopped: {0}")]
    Stopped(ContextError),
    /// The work itself failed.
    #[error("{0}")]
    Failed(String),
}

/// Runs a job: `step` is the duration of one simulated unit of work (a query page, a transfer,
/// one message). Every step checks `ctx`, so a cancelled job stops within one step.
///
/// # Errors
///
/// [`JobError::Stopped`] when `ctx` ends first; [`JobError::Failed`] when the work fails (an
/// image URL containing `fail`, or every recipient of a notification failing).
///
/// # Cancel safety
///
/// Dropping the future abandons the job between steps; nothing is left running.
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// use weft_serve::jobs::{JobSpec, JobType, run};
/// use weft_core::Context;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let spec = JobSpec::parse(JobType::Notification, &json!({
///     "recipients": ["a@x.org", "fail@x.org"], "message": "hi", "channel": "email"
/// })).unwrap();
/// let out = run(&Context::background(), &spec, Duration::from_millis(10)).await.unwrap();
/// assert_eq!(out["sent"], 1);
/// assert_eq!(out["failed"], 1);
/// # }
/// ```
pub async fn run(ctx: &Context, spec: &JobSpec, step: Duration) -> Result<Value, JobError> {
    let tick = |units: u32| async move {
        ctx.run(tokio::time::sleep(step * units))
            .await
            .map_err(JobError::Stopped)
    };
    match spec {
        JobSpec::DataAnalysis {
            dataset,
            query,
            rows,
        } => {
            // One step per page of 1000 rows (at least one), checking the context between pages.
            let pages = rows.div_ceil(1000).max(1);
            let mut checksum: u64 = 0;
            for page in 0..pages {
                tick(1).await?;
                let first = page * 1000;
                let last = (first + 1000).min(*rows);
                // A deterministic "aggregate" over the page's row numbers.
                checksum = checksum
                    .wrapping_add((first..last).fold(0u64, |a, r| a ^ r.wrapping_mul(0x9E37_79B9)));
            }
            Ok(json!({
                "dataset": dataset,
                "query": query,
                "rows": rows,
                "pages": pages,
                "checksum": checksum,
                "message": format!("analyzed {rows} records"),
            }))
        }
        JobSpec::ImageProcessing { image_url, options } => {
            tick(2).await?; // download
            if image_url.contains("fail") {
                return Err(JobError::Failed(format!(
                    "failed to download image {image_url}"
                )));
            }
            let original = 1024 + image_url.len() as u64 * 37;
            tick(3).await?; // process
            let processed = original / 2 + options.len() as u64 * 128;
            tick(1).await?; // upload
            Ok(json!({
                "processed_image_url": format!("{image_url}.processed"),
                "original_size": original,
                "processed_size": processed,
                "steps": ["download", "process", "upload"],
            }))
        }
        JobSpec::Notification {
            recipients,
            channel,
            ..
        } => {
            let (mut sent, mut failed) = (0u64, 0u64);
            let mut failures = Vec::new();
            for recipient in recipients {
                tick(1).await?;
                if recipient.contains("fail") {
                    failed += 1;
                    failures.push(recipient.clone());
                } else {
                    sent += 1;
                }
            }
            if sent == 0 {
                return Err(JobError::Failed(format!(
                    "all {failed} {channel:?} notifications failed"
                )));
            }
            Ok(json!({
                "sent": sent,
                "failed": failed,
                "total": sent + failed,
                "failed_recipients": failures,
                "message": if failed == 0 {
                    format!("sent {sent} notifications")
                } else {
                    format!("sent {sent} notifications, {failed} failed")
                },
            }))
        }
    }
}
