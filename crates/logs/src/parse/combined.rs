//! The Apache/nginx Combined Log Format:
//! `1.2.3.4 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 "ref" "agent"`,
//! and its Common Log Format prefix, optionally followed by a response time.

use std::borrow::Cow;

use memchr::{memchr, memrchr};

use super::custom::parse_bytes;
use super::kv::closing_quote;
use super::{Level, Malformed, Parsed, Record, parse_duration_us, parse_status};
use crate::time::parse_clf;

pub(super) fn parse(line: &[u8]) -> Result<Parsed<'_>, Malformed> {
    let sp = memchr(b' ', line).ok_or("not a combined log line")?;
    let ip = &line[..sp];
    let open = memchr(b'[', line).ok_or("no [time]")?;
    let close = open + memchr(b']', &line[open..]).ok_or("unterminated [time]")?;
    let ts = parse_clf(&line[open + 1..close]).ok_or("unreadable [time]")?;
    let rest = &line[close + 1..];
    let rest = rest.strip_prefix(b" \"").ok_or("no quoted request")?;
    let end = closing_quote(rest).ok_or("unterminated request")?;
    let request = &rest[..end];
    // "METHOD TARGET PROTOCOL"; anything else (a TLS probe, "-") is kept whole as the target.
    let target = match memchr(b' ', request) {
        Some(a) => {
            let t = &request[a + 1..];
            match memchr(b' ', t) {
                Some(b) => &t[..b],
                None => t,
            }
        }
        None => request,
    };
    let after = &rest[end + 1..];
    let after = after.strip_prefix(b" ").ok_or("no status")?;
    let status_end = memchr(b' ', after).unwrap_or(after.len());
    let status = parse_status(&after[..status_end]).ok_or("status is not a 3-digit code")?;
    // An optional response time is the last field after the quoted user agent; an unreadable
    // one is ignored rather than making the request malformed.
    let tail = &after[status_end..];
    let (bytes, referer, agent) = bytes_and_headers(tail);
    let latency_us = memrchr(b'"', tail).and_then(|q| {
        let t = super::trim_line(&tail[q + 1..]);
        let last = &t[memrchr(b' ', t).map_or(0, |i| i + 1)..];
        let per_unit = if memchr(b'.', last).is_some() {
            1_000_000
        } else {
            1
        };
        parse_duration_us(last, per_unit)
    });
    Ok(Parsed::Request(Record {
        ts: Some(ts),
        level: Level::from_status(status),
        ip: Cow::Borrowed(ip),
        target: Cow::Borrowed(target),
        status,
        latency_us,
        bytes,
        referer: Cow::Borrowed(referer),
        agent: Cow::Borrowed(agent),
        vhost: Cow::Borrowed(b""),
    }))
}

/// After the status: ` BYTES "REFERER" "USER-AGENT"`, each part optional (the Common Log Format
/// ends after the bytes).
fn bytes_and_headers(tail: &[u8]) -> (Option<u64>, &[u8], &[u8]) {
    let Some(t) = tail.strip_prefix(b" ") else {
        return (None, b"", b"");
    };
    let end = memchr(b' ', t).unwrap_or(t.len());
    let bytes = parse_bytes(&t[..end]);
    let quoted = |t: &'_ [u8]| -> Option<(usize, usize)> {
        let rest = t.strip_prefix(b" \"")?;
        closing_quote(rest).map(|q| (2, 2 + q))
    };
    let t = &t[end..];
    let Some((a, b)) = quoted(t) else {
        return (bytes, b"", b"");
    };
    let referer = &t[a..b];
    let t = &t[b + 1..];
    let agent = quoted(t).map_or(&b""[..], |(a, b)| &t[a..b]);
    (bytes, referer, agent)
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
    fn apache_example_line() {
        let r = req(br#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#);
        assert_eq!(&*r.ip, b"127.0.0.1");
        assert_eq!(&*r.target, b"/apache_pb.gif?x=1");
        assert_eq!(r.status, 200);
        assert_eq!(r.level, Level::Info);
        assert_eq!(r.latency_us, None);
        assert_eq!(r.ts, parse_clf(b"10/Oct/2000:13:55:36 -0700"));
        assert_eq!(r.bytes, Some(2326));
        assert_eq!(&*r.referer, b"http://www.example.com/start.html");
        assert_eq!(&*r.agent, b"Mozilla/4.08 [en] (Win98; I ;Nav)");
    }

    #[test]
    fn response_time_suffixes() {
        let nginx = br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "POST /api HTTP/1.1" 502 0 "-" "curl/8" 0.250"#;
        assert_eq!(req(nginx).latency_us, Some(250_000));
        assert_eq!(req(nginx).level, Level::Error);
        let apache =
            br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "x" 1234"#;
        assert_eq!(req(apache).latency_us, Some(1234));
        let common = br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "GET /c HTTP/1.1" 404 5"#;
        assert_eq!(req(common).latency_us, None);
        assert_eq!(&*req(common).target, b"/c");
    }

    #[test]
    fn junk_requests_and_truncation() {
        let probe = br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "\x16\x03\x01" 400 157 "-" "-""#;
        assert_eq!(&*req(probe).target, br"\x16\x03\x01");
        assert!(parse(br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "GET / HTTP/1.1"#).is_err());
        assert!(parse(br#"1.2.3.4 - - [01/Mar/2024:12:00"#).is_err());
        assert!(
            parse(br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "GET / HTTP/1.1" OK 5"#).is_err()
        );
        assert!(parse(b"garbage").is_err());
    }
}
