//! The key=value format: `2024-03-01 12:00:00 level=info ip=10.1.2.3 path="/api/x" status=200
//! time=12ms msg="..."`.
//!
//! The plan: the timestamp is a fixed layout at the start; then each pair is found with byte
//! searches (`memchr` for the end of a value, `memchr2` for a closing quote or an escape). Parsing
//! stops as soon as the five fields it needs are known, so a long trailing `msg` is never scanned.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

use super::{Level, Malformed, Parsed, Record, parse_duration_us, parse_status};
use crate::logs::time::parse_datetime_prefix;

pub(super) fn parse(line: &[u8]) -> Result<Parsed<'_>, Malformed> {
    let (ts, mut i) = parse_datetime_prefix(line).ok_or("no timestamp at the start of the line")?;
    let (mut level, mut ip, mut target, mut status, mut latency) = (None, None, None, None, None);
    let mut found = 0u32;
    while i < line.len() {
        if line[i] == b' ' || line[i] == b'\t' {
            i += 1;
            continue;
        }
        // Key: up to `=`; a bare word (no `=` before the next space) is skipped.
        let rest = &line[i..];
        let space = memchr(b' ', rest).unwrap_or(rest.len());
        let Some(eq) = memchr(b'=', &rest[..space]) else {
            i += space;
            continue;
        };
        let key = &rest[..eq];
        let vstart = i + eq + 1;
        let (value, next) = if line.get(vstart) == Some(&b'"') {
            match closing_quote(&line[vstart + 1..]) {
                Some(end) => (&line[vstart + 1..vstart + 1 + end], vstart + end + 2),
                None => {
                    if wanted(key) {
                        return Err("unterminated quoted value");
                    }
                    // An unterminated free-text value (a truncated `msg`) ends the line.
                    (&line[vstart + 1..], line.len())
                }
            }
        } else {
            let end = memchr(b' ', &line[vstart..]).map_or(line.len(), |e| vstart + e);
            (&line[vstart..end], end)
        };
        i = next;
        match key {
            b"level" | b"lvl" | b"severity" => {
                level = Level::from_bytes(value);
                found |= 1;
            }
            b"ip" | b"client" | b"remote_addr" => {
                ip = Some(value);
                found |= 2;
            }
            b"path" | b"uri" => {
                target = Some(value);
                found |= 4;
            }
            b"status" => {
                status = Some(parse_status(value).ok_or("status is not a 3-digit code")?);
                found |= 8;
            }
            b"time" | b"duration" | b"latency" => {
                latency = Some(parse_duration_us(value, 1000).ok_or("unreadable duration")?);
                found |= 16;
            }
            _ => {}
        }
        if found == 31 {
            break;
        }
    }
    match (target, status) {
        (Some(target), Some(status)) => Ok(Parsed::Request(Record {
            ts: Some(ts),
            level: level.unwrap_or_else(|| Level::from_status(status)),
            ip: Cow::Borrowed(ip.unwrap_or_default()),
            target: Cow::Borrowed(target),
            status,
            latency_us: latency,
        })),
        (None, None) => Ok(Parsed::Other),
        (None, Some(_)) => Err("status without path"),
        (Some(_), None) => Err("path without status"),
    }
}

fn wanted(key: &[u8]) -> bool {
    matches!(
        key,
        b"level"
            | b"lvl"
            | b"severity"
            | b"ip"
            | b"client"
            | b"remote_addr"
            | b"path"
            | b"uri"
            | b"status"
            | b"time"
            | b"duration"
            | b"latency"
    )
}

/// Index of the closing `"` in `b` (which starts after the opening one), skipping `\"` escapes.
pub(super) fn closing_quote(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let at = i + memchr2(b'"', b'\\', &b[i..])?;
        if b[at] == b'"' {
            return Some(at);
        }
        i = at + 2;
        if i > b.len() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &[u8]) -> Record<'_> {
        match parse(line) {
            Ok(Parsed::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_material_line() {
        let r = req(
            b"2024-03-01 12:00:00 level=info ip=10.1.2.3 path=\"/api/x?q=1\" status=200 time=12ms msg=\"ok\"",
        );
        assert_eq!(r.ts, Some(19_783 * 86_400 + 12 * 3600));
        assert_eq!(r.level, Level::Info);
        assert_eq!(&*r.ip, b"10.1.2.3");
        assert_eq!(&*r.target, b"/api/x?q=1");
        assert_eq!(r.path(), b"/api/x");
        assert_eq!(r.status, 200);
        assert_eq!(r.latency_us, Some(12_000));
    }

    #[test]
    fn any_order_escapes_and_missing_optional_fields() {
        let r = req(br#"2024-03-01 12:00:00 msg="say \"hi\" path=/no" status=503 path=/a"#);
        assert_eq!(&*r.target, b"/a");
        assert_eq!(r.status, 503);
        assert_eq!(r.level, Level::Error, "derived from the status");
        assert_eq!(&*r.ip, b"");
        assert_eq!(r.latency_us, None);
    }

    #[test]
    fn non_request_and_malformed_lines() {
        assert_eq!(
            parse(b"2024-03-01 12:00:00 level=error msg=\"db down\""),
            Ok(Parsed::Other)
        );
        assert!(parse(b"12:00:00 level=info path=/ status=200").is_err());
        assert!(parse(b"2024-03-01 12:00:00 level=info path=/ status=2x0").is_err());
        assert!(parse(b"2024-03-01 12:00:00 level=info ip=1.2.3.4 path=\"/api").is_err());
        assert!(parse(b"2024-03-01 12:00:00 level=info ip=1.2.3.4 path=/ sta").is_err());
        assert!(parse(b"2024-03-01 12:00:00 path=/ status=200 time=fast").is_err());
        // A truncated trailing message does not hide a complete request.
        let r = req(b"2024-03-01 12:00:00 path=/ status=200 msg=\"cut her");
        assert_eq!(r.status, 200);
    }

    #[test]
    fn quotes_with_trailing_backslash() {
        assert_eq!(closing_quote(br#"abc""#), Some(3));
        assert_eq!(closing_quote(br#"a\"c""#), Some(4));
        assert_eq!(closing_quote(br"abc\"), None);
        assert_eq!(closing_quote(b"abc"), None);
    }
}
