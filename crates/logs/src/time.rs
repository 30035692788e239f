//! Timestamps without a date library: the few layouts logs use, turned into Unix seconds (UTC).
//!
//! Parsing is on bytes and allocation-free because it runs once per log line.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: `(year, month, day)`.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn format_utc(secs: i64) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Formats Unix seconds as RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`).
pub(crate) fn format_rfc3339(secs: i64) -> String {
    let mut s = format_utc(secs);
    s.replace_range(10..11, "T");
    s.push('Z');
    s
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn ymd_hms(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    // Second 60 is a leap second; it is folded into the next minute like most log tools do.
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(i64::from(y), mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

/// Parses `YYYY-MM-DD[ T]HH:MM:SS[.frac][Z|±HH:MM|±HHMM]` at the start of `b`, and returns the
/// Unix seconds (UTC; no zone means UTC) and the number of bytes consumed.
pub(crate) fn parse_datetime_prefix(b: &[u8]) -> Option<(i64, usize)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let secs = ymd_hms(
        digits(&b[0..4])?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    )?;
    let mut i = 19;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let (offset, used) = parse_zone(&b[i..])?;
    Some((secs - offset, i + used))
}

/// A zone suffix: nothing, `Z`, `±HH:MM` or `±HHMM`. Returns the offset in seconds east of UTC.
fn parse_zone(b: &[u8]) -> Option<(i64, usize)> {
    match b.first() {
        Some(b'Z' | b'z') => Some((0, 1)),
        Some(&sign @ (b'+' | b'-')) => {
            let (h, m, used) = if b.len() >= 6 && b[3] == b':' {
                (digits(&b[1..3])?, digits(&b[4..6])?, 6)
            } else if b.len() >= 5 {
                (digits(&b[1..3])?, digits(&b[3..5])?, 5)
            } else {
                return None;
            };
            let off = i64::from(h * 3600 + m * 60);
            Some((if sign == b'-' { -off } else { off }, used))
        }
        _ => Some((0, 0)),
    }
}

/// Remembers the last zone-less `YYYY-MM-DD HH:MM:SS` timestamp's minute: consecutive lines
/// mostly share it, so only the seconds need parsing.
#[derive(Debug, Default)]
pub(crate) struct TsCache {
    minute: Option<([u8; 16], i64)>,
}

impl TsCache {
    /// Same as [`parse_datetime_prefix`].
    pub(crate) fn parse_prefix(&mut self, b: &[u8]) -> Option<(i64, usize)> {
        if let Some((key, base)) = &self.minute
            && b.len() >= 19
            && b[..16] == key[..]
            && b[16] == b':'
            && !matches!(b.get(19), Some(b'.' | b',' | b'Z' | b'z' | b'+' | b'-'))
            && b[17].is_ascii_digit()
            && b[18].is_ascii_digit()
        {
            let secs = i64::from(b[17] - b'0') * 10 + i64::from(b[18] - b'0');
            if secs <= 60 {
                return Some((base + secs, 19));
            }
        }
        let (secs, used) = parse_datetime_prefix(b)?;
        if used == 19 {
            let mut key = [0u8; 16];
            key.copy_from_slice(&b[..16]);
            let s = i64::from(b[17] - b'0') * 10 + i64::from(b[18] - b'0');
            self.minute = Some((key, secs - s));
        }
        Some((secs, used))
    }
}

/// Parses the Common Log Format time `10/Oct/2000:13:55:36 -0700` (the text between `[` and `]`).
pub(crate) fn parse_clf(b: &[u8]) -> Option<i64> {
    if b.len() < 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let mo = match &b[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    if b[14] != b':' || b[17] != b':' {
        return None;
    }
    let secs = ymd_hms(
        digits(&b[7..11])?,
        mo,
        digits(&b[0..2])?,
        digits(&b[12..14])?,
        digits(&b[15..17])?,
        digits(&b[18..20])?,
    )?;
    let (offset, _) = parse_zone(&b[21..])?;
    Some(secs - offset)
}

/// Parses a user-given time bound: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`, `YYYY-MM-DD HH:MM:SS`
/// (`T` also accepted as separator), each optionally followed by a zone (`Z`, `+02:00`); no zone
/// means UTC.
pub(crate) fn parse_bound(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if let Some((secs, used)) = parse_datetime_prefix(b) {
        return (used == b.len()).then_some(secs);
    }
    if b.len() == 10 {
        let mut full = b.to_vec();
        full.extend_from_slice(b" 00:00:00");
        return parse_datetime_prefix(&full).map(|(s, _)| s);
    }
    if b.len() >= 16 {
        let mut full = b[..16].to_vec();
        full.extend_from_slice(b":00");
        full.extend_from_slice(&b[16..]);
        return parse_datetime_prefix(&full)
            .and_then(|(s, used)| (used == full.len()).then_some(s));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_across_eras() {
        for days in [-800_000, -1, 0, 1, 19_783, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
    }

    #[test]
    fn datetime_prefix_with_zones_and_fractions() {
        let base = 19_783 * 86_400 + 12 * 3600;
        assert_eq!(
            parse_datetime_prefix(b"2024-03-01 12:00:00 x"),
            Some((base, 19))
        );
        assert_eq!(
            parse_datetime_prefix(b"2024-03-01T12:00:00.123Z"),
            Some((base, 24))
        );
        assert_eq!(
            parse_datetime_prefix(b"2024-03-01T14:00:00+02:00"),
            Some((base, 25))
        );
        assert_eq!(
            parse_datetime_prefix(b"2024-03-01T07:00:00-0500"),
            Some((base, 24))
        );
        assert_eq!(parse_datetime_prefix(b"2024-13-01 12:00:00"), None);
        assert_eq!(parse_datetime_prefix(b"2024-03-01 12:00"), None);
    }

    #[test]
    fn the_cache_gives_the_same_answers() {
        let mut cache = TsCache::default();
        for line in [
            &b"2024-03-01 12:00:00 a"[..],
            b"2024-03-01 12:00:59 b",
            b"2024-03-01 12:00:07.5 c",
            b"2024-03-01 12:00:07Z",
            b"2024-03-01 12:00:07+01:00",
            b"2024-03-01 12:00:7x",
            b"2024-03-01 12:01:00",
            b"2024-03-01 12:00:61",
        ] {
            assert_eq!(
                cache.parse_prefix(line),
                parse_datetime_prefix(line),
                "{line:?}"
            );
        }
    }

    #[test]
    fn clf_time_applies_the_offset() {
        let expected = days_from_civil(2000, 10, 10) * 86_400 + 20 * 3600 + 55 * 60 + 36;
        assert_eq!(parse_clf(b"10/Oct/2000:13:55:36 -0700"), Some(expected));
        assert_eq!(parse_clf(b"10/Foo/2000:13:55:36 -0700"), None);
    }

    #[test]
    fn bounds_accept_short_forms() {
        let day = 19_783 * 86_400;
        assert_eq!(parse_bound("2024-03-01"), Some(day));
        assert_eq!(
            parse_bound("2024-03-01 12:30"),
            Some(day + 12 * 3600 + 1800)
        );
        assert_eq!(
            parse_bound("2024-03-01T12:30+01:00"),
            Some(day + 11 * 3600 + 1800)
        );
        assert_eq!(
            parse_bound("2024-03-01 12:30:05"),
            Some(day + 12 * 3600 + 1805)
        );
        assert_eq!(parse_bound("yesterday"), None);
        assert_eq!(format_utc(day + 61), "2024-03-01 00:01:01");
        assert_eq!(format_rfc3339(day), "2024-03-01T00:00:00Z");
    }
}
