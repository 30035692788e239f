//! Value parsers shared by the subcommands' flags.

use std::time::Duration;

/// Parses `250ms`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| s.split_at(i));
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 250ms, 10s, 2m)"))?;
    let secs = match unit.trim() {
        "ms" => value / 1e3,
        "s" | "" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses `1024`, `512K`, `10M`, `1G` (binary multiples; a trailing `B` is allowed).
pub(crate) fn parse_size<T: TryFrom<u64>>(s: &str) -> Result<T, String> {
    let s = s.trim();
    let upper = s.to_ascii_uppercase();
    let upper = upper.strip_suffix('B').unwrap_or(&upper);
    let (num, shift) = match upper.chars().last() {
        Some('K') => (&upper[..upper.len() - 1], 10),
        Some('M') => (&upper[..upper.len() - 1], 20),
        Some('G') => (&upper[..upper.len() - 1], 30),
        _ => (upper, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?} (try 512K, 10M)"))?;
    n.checked_mul(1 << shift)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_size};
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn sizes_parse_with_binary_multiples() {
        assert_eq!(parse_size::<u64>("1024"), Ok(1024));
        assert_eq!(parse_size::<u64>("512K"), Ok(512 << 10));
        assert_eq!(parse_size::<usize>("10mb"), Ok(10 << 20));
        assert_eq!(parse_size::<u64>("1G"), Ok(1 << 30));
        assert!(parse_size::<u64>("lots").is_err());
        assert!(parse_size::<u32>("8G").is_err(), "does not fit");
    }
}
