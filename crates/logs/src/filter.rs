//! Which requests count: the filters of [`Options`], compiled once and applied per record.

use std::ops::RangeInclusive;

use memchr::memmem;

use super::parse::{Level, Record};
use super::{LogsError, Options};

/// The compiled filters. `accepts` runs once per request, so it only does byte searches; the
/// regex runs only when `--path-regex` was given.
#[derive(Debug)]
pub(crate) struct Filter {
    min_level: Option<Level>,
    contains: Option<memmem::Finder<'static>>,
    regex: Option<regex::bytes::Regex>,
    status: Vec<RangeInclusive<u16>>,
    since: Option<i64>,
    until: Option<i64>,
}

impl Filter {
    pub(crate) fn new(o: &Options) -> Result<Filter, LogsError> {
        let regex = match &o.path_regex {
            Some(r) => Some(regex::bytes::Regex::new(r)?),
            None => None,
        };
        if let (Some(s), Some(u)) = (o.since, o.until)
            && s >= u
        {
            return Err(LogsError::InvalidArgument(
                "--since must be earlier than --until".into(),
            ));
        }
        Ok(Filter {
            min_level: o.min_level,
            contains: o
                .path_contains
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| memmem::Finder::new(s.as_bytes()).into_owned()),
            regex,
            status: o.status.clone(),
            since: o.since,
            until: o.until,
        })
    }

    pub(crate) fn accepts(&self, r: &Record<'_>) -> bool {
        if self.min_level.is_some_and(|min| r.level < min) {
            return false;
        }
        if !self.status.is_empty() && !self.status.iter().any(|s| s.contains(&r.status)) {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            // A request without a timestamp cannot be placed in the window.
            let Some(ts) = r.ts else { return false };
            if self.since.is_some_and(|s| ts < s) || self.until.is_some_and(|u| ts >= u) {
                return false;
            }
        }
        if let Some(f) = &self.contains
            && f.find(&r.target).is_none()
        {
            return false;
        }
        if let Some(re) = &self.regex
            && !re.is_match(&r.target)
        {
            return false;
        }
        true
    }
}

/// Parses status ranges: a comma-separated list of codes (`404`), ranges (`500-599`) and
/// classes (`5xx`).
///
/// ```
/// use weft_logs::parse_status_ranges;
/// let r = parse_status_ranges("404,5xx,300-302").unwrap();
/// assert_eq!(r, vec![404..=404, 500..=599, 300..=302]);
/// assert!(parse_status_ranges("600-500").is_err());
/// ```
pub fn parse_status_ranges(s: &str) -> Result<Vec<RangeInclusive<u16>>, LogsError> {
    let bad = |part: &str| {
        LogsError::InvalidArgument(format!(
            "invalid status range {part:?} (expected e.g. 404, 500-599 or 5xx)"
        ))
    };
    let code = |t: &str, part: &str| -> Result<u16, LogsError> {
        t.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=999).contains(c))
            .ok_or_else(|| bad(part))
    };
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let lower = part.to_ascii_lowercase();
            if let Some(d) = lower.strip_suffix("xx") {
                let c = d.parse::<u16>().ok().filter(|c| (1..=9).contains(c));
                let c = c.ok_or_else(|| bad(part))?;
                return Ok(c * 100..=c * 100 + 99);
            }
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (code(a, part)?, code(b, part)?);
                    if a > b {
                        return Err(bad(part));
                    }
                    Ok(a..=b)
                }
                None => {
                    let c = code(part, part)?;
                    Ok(c..=c)
                }
            }
        })
        .collect()
}

/// Parses a `--since`/`--until` bound into Unix seconds: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`,
/// `YYYY-MM-DD HH:MM:SS` or RFC 3339 (`T` separator, `Z` or `±HH:MM` zone); no zone means UTC.
///
/// ```
/// use weft_logs::parse_time;
/// assert_eq!(parse_time("1970-01-02").unwrap(), 86_400);
/// assert_eq!(parse_time("1970-01-01T01:00:00+01:00").unwrap(), 0);
/// assert!(parse_time("tomorrow").is_err());
/// ```
pub fn parse_time(s: &str) -> Result<i64, LogsError> {
    super::time::parse_bound(s).ok_or_else(|| {
        LogsError::InvalidArgument(format!(
            "invalid time {s:?} (expected YYYY-MM-DD[ HH:MM[:SS]] or RFC 3339)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn rec(target: &'static str, status: u16, level: Level, ts: Option<i64>) -> Record<'static> {
        Record {
            ts,
            level,
            ip: Cow::Borrowed(b"1.1.1.1"),
            target: Cow::Borrowed(target.as_bytes()),
            status,
            latency_us: Some(1),
            bytes: None,
            referer: Cow::Borrowed(b""),
            agent: Cow::Borrowed(b""),
            vhost: Cow::Borrowed(b""),
        }
    }

    #[test]
    fn each_filter_excludes_what_it_should() {
        let o = Options {
            min_level: Some(Level::Warn),
            path_contains: Some("/api".into()),
            path_regex: Some(r"^/api/v\d+/".into()),
            status: parse_status_ranges("4xx,500").unwrap(),
            since: Some(100),
            until: Some(200),
            ..Options::default()
        };
        let f = Filter::new(&o).unwrap();
        let ok = rec("/api/v1/x?q", 404, Level::Warn, Some(150));
        assert!(f.accepts(&ok));
        assert!(!f.accepts(&Record {
            level: Level::Info,
            ..ok.clone()
        }));
        assert!(!f.accepts(&Record {
            status: 503,
            ..ok.clone()
        }));
        assert!(f.accepts(&Record {
            status: 500,
            ..ok.clone()
        }));
        assert!(!f.accepts(&Record {
            ts: Some(99),
            ..ok.clone()
        }));
        assert!(f.accepts(&Record {
            ts: Some(100),
            ..ok.clone()
        }));
        assert!(
            !f.accepts(&Record {
                ts: Some(200),
                ..ok.clone()
            }),
            "until is exclusive"
        );
        assert!(!f.accepts(&Record {
            ts: None,
            ..ok.clone()
        }));
        assert!(!f.accepts(&rec("/web/api/v1/", 404, Level::Warn, Some(150))));
        assert!(!f.accepts(&rec("/api/x", 404, Level::Warn, Some(150))));
    }

    #[test]
    fn empty_options_accept_everything_and_bad_ones_are_rejected() {
        let f = Filter::new(&Options::default()).unwrap();
        assert!(f.accepts(&rec("", 100, Level::Trace, None)));
        let o = Options {
            since: Some(5),
            until: Some(5),
            ..Options::default()
        };
        assert!(Filter::new(&o).is_err());
        for bad in ["abc", "99", "1000", "0xx", "5-", "500-4"] {
            assert!(parse_status_ranges(bad).is_err(), "{bad}");
        }
    }
}
