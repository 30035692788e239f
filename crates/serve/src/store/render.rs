//! A job's `GET` answer written straight from its stored parts.
//!
//! The stores keep a job's `data` and `result` as the compact JSON text they were given. A
//! `GET` used to parse that text into a tree, only to serialise the tree again; here the text
//! goes into the answer as it is, and the output is byte for byte what serialising the
//! [`JobRecord`](super::JobRecord) gives (test `a_rendered_job_is_what_serde_writes_for_its_record`).

use std::fmt::Write as _;

use super::JobStatus;

/// The parts of a stored job, borrowed; `data` and `result` are JSON text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub(crate) id: &'a str,
    pub(crate) job_type: &'a str,
    pub(crate) priority: u8,
    pub(crate) data: &'a str,
    pub(crate) status: JobStatus,
    pub(crate) result: Option<&'a str>,
    pub(crate) error: Option<&'a str>,
    pub(crate) attempts: u32,
    pub(crate) created_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
}

/// Appends `s` as a JSON string.
fn string(out: &mut String, s: &str) {
    // serde_json's escaping, so the text is what `Serialize` writes.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("null"),
    }
}

impl RecordView<'_> {
    /// The job as the JSON object `GET /api/jobs/{id}` answers, fields in
    /// [`JobRecord`](super::JobRecord)'s order, absent ones left out as it does.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(160 + self.data.len());
        out.push_str(r#"{"id":"#);
        string(&mut out, self.id);
        out.push_str(r#","type":"#);
        string(&mut out, self.job_type);
        let _ = write!(out, r#","priority":{},"data":"#, self.priority);
        out.push_str(self.data);
        let _ = write!(out, r#","status":"{}""#, self.status.as_str());
        if let Some(result) = self.result {
            out.push_str(r#","result":"#);
            out.push_str(result);
        }
        if let Some(error) = self.error {
            out.push_str(r#","error":"#);
            string(&mut out, error);
        }
        let _ = write!(
            out,
            r#","attempts":{},"created_at":{}"#,
            self.attempts, self.created_at
        );
        if let Some(t) = self.started_at {
            let _ = write!(out, r#","started_at":{t}"#);
        }
        if let Some(t) = self.finished_at {
            let _ = write!(out, r#","finished_at":{t}"#);
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{JobRecord, JobStatus};
    use super::RecordView;

    fn view_of(r: &JobRecord, data: &str, result: Option<&str>) -> String {
        RecordView {
            id: &r.id,
            job_type: &r.job_type,
            priority: r.priority,
            data,
            status: r.status,
            result,
            error: r.error.as_deref(),
            attempts: r.attempts,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
        .render()
    }

    #[test]
    fn a_rendered_job_is_what_serde_writes_for_its_record() {
        let data =
            json!({"message": "quote \" slash \\ tab \t é ✓", "n": 1.5, "list": [1, null, true]});
        let queued = JobRecord {
            id: "job-1".into(),
            job_type: "notification".into(),
            priority: 2,
            data: data.clone(),
            status: JobStatus::Queued,
            result: None,
            error: None,
            attempts: 0,
            created_at: 1_700_000_000_000,
            started_at: None,
            finished_at: None,
        };
        let text = data.to_string();
        assert_eq!(
            view_of(&queued, &text, None),
            serde_json::to_string(&queued).unwrap()
        );
        let result = json!({"sent": 1, "failed_recipients": ["x\"y"]});
        let finished = JobRecord {
            status: JobStatus::Failed,
            result: Some(result.clone()),
            error: Some("line\nbreak \u{1} control".into()),
            attempts: 3,
            started_at: Some(1_700_000_000_001),
            finished_at: Some(1_700_000_000_002),
            ..queued
        };
        let result_text = result.to_string();
        assert_eq!(
            view_of(&finished, &text, Some(&result_text)),
            serde_json::to_string(&finished).unwrap()
        );
    }
}
