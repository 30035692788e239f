//! JSON lines: one object per line, fields read by name (see `LogFormat::Json`).
//!
//! serde_json with borrowed strings: a field without escapes is never copied, unknown fields
//! are skipped without being built.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{Deserializer, Visitor};

/// A JSON string, borrowed from the line unless it had escapes. (serde's own `Cow<str>` is
/// always owned inside an `Option`.)
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

use super::{Level, Malformed, Parsed, Record};
use crate::time::parse_datetime_prefix;

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText<'a> {
    Num(f64),
    Text(#[serde(borrow)] Str<'a>),
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    ts: Option<NumOrText<'a>>,
    #[serde(borrow)]
    timestamp: Option<NumOrText<'a>>,
    #[serde(borrow)]
    time: Option<NumOrText<'a>>,
    #[serde(borrow, rename = "@timestamp")]
    at_timestamp: Option<NumOrText<'a>>,
    #[serde(borrow)]
    level: Option<Str<'a>>,
    #[serde(borrow)]
    severity: Option<Str<'a>>,
    #[serde(borrow)]
    ip: Option<Str<'a>>,
    #[serde(borrow)]
    remote_addr: Option<Str<'a>>,
    #[serde(borrow)]
    client_ip: Option<Str<'a>>,
    #[serde(borrow)]
    path: Option<Str<'a>>,
    #[serde(borrow)]
    uri: Option<Str<'a>>,
    #[serde(borrow)]
    url: Option<Str<'a>>,
    #[serde(borrow)]
    request_uri: Option<Str<'a>>,
    #[serde(borrow)]
    status: Option<NumOrText<'a>>,
    #[serde(borrow)]
    status_code: Option<NumOrText<'a>>,
    duration_ms: Option<f64>,
    time_ms: Option<f64>,
    latency_ms: Option<f64>,
    response_time_ms: Option<f64>,
    request_time: Option<f64>,
    bytes: Option<f64>,
    body_bytes_sent: Option<f64>,
    bytes_sent: Option<f64>,
    size: Option<f64>,
    #[serde(borrow)]
    referer: Option<Str<'a>>,
    #[serde(borrow)]
    referrer: Option<Str<'a>>,
    #[serde(borrow)]
    http_referer: Option<Str<'a>>,
    #[serde(borrow)]
    user_agent: Option<Str<'a>>,
    #[serde(borrow)]
    http_user_agent: Option<Str<'a>>,
    #[serde(borrow)]
    ua: Option<Str<'a>>,
    #[serde(borrow)]
    host: Option<Str<'a>>,
    #[serde(borrow)]
    vhost: Option<Str<'a>>,
    #[serde(borrow)]
    server_name: Option<Str<'a>>,
}

fn bytes(s: Str<'_>) -> Cow<'_, [u8]> {
    match s.0 {
        Cow::Borrowed(b) => Cow::Borrowed(b.as_bytes()),
        Cow::Owned(o) => Cow::Owned(o.into_bytes()),
    }
}

fn timestamp(v: &NumOrText<'_>) -> Option<i64> {
    match v {
        // Unix seconds, or milliseconds when too large to be seconds (after the year 33658).
        NumOrText::Num(n) if n.is_finite() => Some(if n.abs() >= 1e12 {
            (n / 1000.0).floor() as i64
        } else {
            n.floor() as i64
        }),
        NumOrText::Num(_) => None,
        NumOrText::Text(Str(t)) => parse_datetime_prefix(t.as_bytes())
            .and_then(|(secs, used)| (used == t.len()).then_some(secs)),
    }
}

fn millis_to_us(ms: f64) -> Option<u64> {
    (ms.is_finite() && ms >= 0.0).then(|| (ms * 1000.0).round() as u64)
}

pub(super) fn parse(line: &[u8]) -> Result<Parsed<'_>, Malformed> {
    let l: Line<'_> = serde_json::from_slice(line).map_err(|_| "not a JSON object")?;
    let status = match l.status.or(l.status_code) {
        None => None,
        Some(NumOrText::Num(n)) if (100.0..1000.0).contains(&n) && n.fract() == 0.0 => {
            Some(n as u16)
        }
        Some(NumOrText::Text(Str(t))) => {
            Some(super::parse_status(t.as_bytes()).ok_or("status is not a 3-digit code")?)
        }
        Some(NumOrText::Num(_)) => return Err("status is not a 3-digit code"),
    };
    let target = l.path.or(l.uri).or(l.request_uri).or(l.url);
    let (target, status) = match (target, status) {
        (Some(t), Some(s)) => (t, s),
        (None, None) => return Ok(Parsed::Other),
        (None, Some(_)) => return Err("status without path"),
        (Some(_), None) => return Err("path without status"),
    };
    let ts = match l.ts.or(l.timestamp).or(l.at_timestamp).or(l.time) {
        Some(v) => Some(timestamp(&v).ok_or("unreadable timestamp")?),
        None => None,
    };
    let latency_us = match (
        l.duration_ms
            .or(l.time_ms)
            .or(l.latency_ms)
            .or(l.response_time_ms),
        l.request_time,
    ) {
        (Some(ms), _) => Some(millis_to_us(ms).ok_or("negative or invalid duration")?),
        (None, Some(s)) => Some(millis_to_us(s * 1000.0).ok_or("negative or invalid duration")?),
        (None, None) => None,
    };
    let level = l
        .level
        .or(l.severity)
        .and_then(|v| Level::from_bytes(v.0.as_bytes()))
        .unwrap_or_else(|| Level::from_status(status));
    Ok(Parsed::Request(Record {
        ts,
        level,
        ip: l
            .ip
            .or(l.remote_addr)
            .or(l.client_ip)
            .map_or(Cow::Borrowed(&b""[..]), bytes),
        target: bytes(target),
        status,
        latency_us,
        bytes: l
            .bytes
            .or(l.body_bytes_sent)
            .or(l.bytes_sent)
            .or(l.size)
            .filter(|b| b.is_finite() && *b >= 0.0 && *b < 1.8e19)
            .map(|b| b as u64),
        referer: l
            .referer
            .or(l.referrer)
            .or(l.http_referer)
            .map_or(Cow::Borrowed(&b""[..]), bytes),
        agent: l
            .user_agent
            .or(l.http_user_agent)
            .or(l.ua)
            .map_or(Cow::Borrowed(&b""[..]), bytes),
        vhost: l
            .host
            .or(l.vhost)
            .or(l.server_name)
            .map_or(Cow::Borrowed(&b""[..]), bytes),
    }))
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
    fn fields_and_aliases() {
        let r = req(br#"{"ts":"2024-03-01T12:00:00Z","level":"warn","ip":"10.0.0.1","path":"/a?b","status":404,"time_ms":12.5,"extra":{"n":[1,2]}}"#);
        assert_eq!(r.ts, Some(19_783 * 86_400 + 12 * 3600));
        assert_eq!(r.level, Level::Warn);
        assert_eq!(&*r.ip, b"10.0.0.1");
        assert_eq!(r.path(), b"/a");
        assert_eq!(r.status, 404);
        assert_eq!(r.latency_us, Some(12_500));
        assert!(
            matches!(r.target, Cow::Borrowed(_)),
            "no copy without escapes"
        );

        let r = req(br#"{"@timestamp":1709294400000,"remote_addr":"::1","uri":"/x\/y","status_code":"500","request_time":0.25}"#);
        assert_eq!(r.ts, Some(1_709_294_400));
        assert_eq!(&*r.target, b"/x/y");
        assert_eq!(r.status, 500);
        assert_eq!(r.level, Level::Error);
        assert_eq!(r.latency_us, Some(250_000));

        let r = req(br#"{"path":"/a","status":200,"bytes":512,"referer":"https://x.example/","user_agent":"curl/8","host":"shop.example"}"#);
        assert_eq!(r.bytes, Some(512));
        assert_eq!(&*r.referer, b"https://x.example/");
        assert_eq!(&*r.agent, b"curl/8");
        assert_eq!(&*r.vhost, b"shop.example");
    }

    #[test]
    fn other_and_malformed_lines() {
        assert_eq!(
            parse(br#"{"level":"info","msg":"started"}"#),
            Ok(Parsed::Other)
        );
        assert!(parse(br#"{"path":"/a","status":200"#).is_err(), "truncated");
        assert!(parse(br#"{"path":"/a","status":99}"#).is_err());
        assert!(parse(br#"{"path":"/a","status":200,"ts":"noon"}"#).is_err());
        assert!(parse(br#"{"path":"/a","status":200,"time_ms":-1}"#).is_err());
        assert!(
            parse(b"{\"path\":\"/\xff\",\"status\":200}").is_err(),
            "invalid UTF-8"
        );
        assert!(parse(b"[1,2]").is_err());
    }
}
