//! The key=value format: `2024-03-01 12:00:00 level=info ip=10.1.2.3 path="/api/x" status=200
//! time=12ms msg="..."`.
//!
//! The plan: the timestamp is a fixed layout at the start; then each pair is found with byte
//! searches (`memchr` for the end of a value, `memchr2` for a closing quote or an escape). Parsing
//! stops as soon as the nine fields it reads are known, so a long trailing `msg` after them is never
//! scanned.

use std::borrow::Cow;

use memchr::memchr2;

use super::{Level, Malformed, Parsed, Record, TsCache, find2, parse_duration_us, parse_status};

/// The fields the analyzer reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Level,
    Ip,
    Path,
    Status,
    Time,
    Bytes,
    Referer,
    Agent,
    Vhost,
    Other,
}

/// Matches a key by length first, so each comparison is against a known-size constant (this
/// runs for every pair of every line; a chain of slice comparisons showed in profiles).
fn field(key: &[u8]) -> Field {
    match key.len() {
        2 if key == b"ip" => Field::Ip,
        2 if key == b"ua" => Field::Agent,
        3 if key == b"lvl" => Field::Level,
        3 if key == b"uri" => Field::Path,
        4 if key == b"path" => Field::Path,
        4 if key == b"time" => Field::Time,
        4 if key == b"size" => Field::Bytes,
        4 if key == b"host" => Field::Vhost,
        5 if key == b"bytes" => Field::Bytes,
        5 if key == b"agent" => Field::Agent,
        5 if key == b"vhost" => Field::Vhost,
        5 if key == b"level" => Field::Level,
        6 if key == b"status" => Field::Status,
        6 if key == b"client" => Field::Ip,
        7 if key == b"latency" => Field::Time,
        7 if key == b"referer" => Field::Referer,
        8 if key == b"severity" => Field::Level,
        8 if key == b"duration" => Field::Time,
        8 if key == b"referrer" => Field::Referer,
        10 if key == b"user_agent" => Field::Agent,
        11 if key == b"remote_addr" => Field::Ip,
        _ => Field::Other,
    }
}

pub(super) fn parse<'a>(line: &'a [u8], cache: &mut TsCache) -> Result<Parsed<'a>, Malformed> {
    let (ts, mut i) = cache
        .parse_prefix(line)
        .ok_or("no timestamp at the start of the line")?;
    let n = line.len();
    let (mut level, mut ip, mut target, mut status, mut latency) = (None, None, None, None, None);
    let (mut bytes, mut referer, mut agent, mut vhost) = (None, &b""[..], &b""[..], &b""[..]);
    let mut found = 0u32;
    while i < n {
        if line[i] == b' ' || line[i] == b'\t' {
            i += 1;
            continue;
        }
        let kstart = i;
        i = find2(line, i, b'=', b' ');
        if i == n || line[i] == b' ' {
            continue; // a bare word without `=`
        }
        let key = field(&line[kstart..i]);
        i += 1;
        let value = if i < n && line[i] == b'"' {
            i += 1;
            let vstart = i;
            loop {
                i = find2(line, i, b'"', b'\\');
                if i >= n {
                    if key != Field::Other {
                        return Err("unterminated quoted value");
                    }
                    // An unterminated free-text value (a truncated `msg`) ends the line.
                    break &line[vstart..];
                }
                match line[i] {
                    b'"' => {
                        i += 1;
                        break &line[vstart..i - 1];
                    }
                    _ => i += 2, // a backslash and the byte it escapes
                }
            }
        } else {
            let vstart = i;
            i = find2(line, i, b' ', b' ');
            &line[vstart..i]
        };
        match key {
            Field::Level => {
                level = Level::from_bytes(value);
                found |= 1;
            }
            Field::Ip => {
                ip = Some(value);
                found |= 2;
            }
            Field::Path => {
                target = Some(value);
                found |= 4;
            }
            Field::Status => {
                status = Some(parse_status(value).ok_or("status is not a 3-digit code")?);
                found |= 8;
            }
            Field::Time => {
                latency = Some(parse_duration_us(value, 1000).ok_or("unreadable duration")?);
                found |= 16;
            }
            Field::Bytes => {
                bytes = super::custom::parse_bytes(value);
                found |= 32;
            }
            Field::Referer => {
                referer = value;
                found |= 64;
            }
            Field::Agent => {
                agent = value;
                found |= 128;
            }
            Field::Vhost => {
                vhost = value;
                found |= 256;
            }
            Field::Other => {}
        }
        if found == 511 {
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
            bytes,
            referer: Cow::Borrowed(referer),
            agent: Cow::Borrowed(agent),
            vhost: Cow::Borrowed(vhost),
        })),
        // An application message has none of the request fields; a line with an address but
        // no path and status was cut short.
        (None, None) if ip.is_none() => Ok(Parsed::Other),
        (None, None) => Err("request without path and status"),
        (None, Some(_)) => Err("status without path"),
        (Some(_), None) => Err("path without status"),
    }
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

    fn p(line: &[u8]) -> Result<Parsed<'_>, Malformed> {
        parse(line, &mut TsCache::default())
    }

    fn req(line: &[u8]) -> Record<'_> {
        match p(line) {
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
        assert_eq!((r.bytes, &*r.agent), (None, &b""[..]));
    }

    #[test]
    fn panel_fields_when_the_line_has_them() {
        let r = req(
            b"2024-03-01 12:00:00 host=shop.example path=/a status=200 bytes=512 referer=\"https://x.example/\" ua=\"curl/8 (x)\"",
        );
        assert_eq!(r.bytes, Some(512));
        assert_eq!(&*r.referer, b"https://x.example/");
        assert_eq!(&*r.agent, b"curl/8 (x)");
        assert_eq!(&*r.vhost, b"shop.example");
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
            p(b"2024-03-01 12:00:00 level=error msg=\"db down\""),
            Ok(Parsed::Other)
        );
        assert!(p(b"12:00:00 level=info path=/ status=200").is_err());
        assert!(
            p(b"2024-03-01 12:00:00 level=info ip=10.").is_err(),
            "cut after the ip"
        );
        assert!(p(b"2024-03-01 12:00:00 level=info path=/ status=2x0").is_err());
        assert!(p(b"2024-03-01 12:00:00 level=info ip=1.2.3.4 path=\"/api").is_err());
        assert!(p(b"2024-03-01 12:00:00 level=info ip=1.2.3.4 path=/ sta").is_err());
        assert!(p(b"2024-03-01 12:00:00 path=/ status=200 time=fast").is_err());
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
