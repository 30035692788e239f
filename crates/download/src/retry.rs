//! When to try again: exponential backoff with jitter, and the server's `Retry-After`.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// The wait before attempt `attempt + 1` after `attempt` failed (attempt >= 1): "equal jitter",
/// a uniformly random time in `[d/2, d]` where `d = min(max, base * 2^(attempt-1))`. Half the
/// delay is guaranteed (so retries do back off), half is random (so clients that failed
/// together do not retry together).
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(31);
    let d = base.saturating_mul(1u32 << exp).min(max);
    let half = d / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = if nanos == 0 {
        0
    } else {
        rand::rng().random_range(0..=nanos)
    };
    half + Duration::from_nanos(jitter)
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (a date in the past is zero).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_bounds_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for _ in 0..100 {
            let d1 = backoff(base, max, 1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= base, "{d1:?}");
            let d3 = backoff(base, max, 3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d30 = backoff(base, max, 30);
            assert!(d30 >= max / 2 && d30 <= max);
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
