//! JSON lines: one object per line, fields read by name (see `LogFormat::Json`).
//!
//! A scanner that reads only what the analyzer needs: one pass over the line that checks the
//! whole of it against the JSON grammar (as `serde_json` did here before: nested values,
//! escapes, numbers, no control characters in strings, nothing after the object, no
//! duplicate known field, at most 128 levels of nesting) but builds nothing for the fields it
//! does not read. A field's text is borrowed from the line unless it had escapes. Profiles of
//! the high-cardinality JSON input put the serde parse at about half of the workers' time.

use std::borrow::Cow;

use super::{Level, Malformed, Parsed, Record};
use crate::time::parse_datetime_prefix;

/// The reason for every line that is not one JSON object.
const NOT_JSON: Malformed = "not a JSON object";
/// Nesting deeper than this is refused (serde_json's default limit).
const MAX_DEPTH: u32 = 128;

/// A field's value: a number, or a string (borrowed unless it had escapes).
#[derive(Debug)]
enum Val<'a> {
    Num(f64),
    Text(Cow<'a, str>),
}

/// What a known field accepts besides `null` (which counts as absent).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Num,
    NumOrText,
}

/// The fields read, grouped: in a group the alias of lowest rank present wins.
#[derive(Clone, Copy)]
enum Group {
    Ts,
    Level,
    Ip,
    Target,
    Status,
    Latency,
    Bytes,
    Referer,
    Agent,
    Vhost,
}
const GROUPS: usize = 10;

/// Rank of `request_time` (seconds) in the latency group, after the four millisecond fields.
const REQUEST_TIME: u8 = 4;

/// A known field: its bit (for the duplicate check), group, rank within the group and kind.
fn field(key: &[u8]) -> Option<(u32, Group, u8, Kind)> {
    use Group as G;
    use Kind::{Num, NumOrText, Text};
    Some(match key {
        b"ts" => (0, G::Ts, 0, NumOrText),
        b"timestamp" => (1, G::Ts, 1, NumOrText),
        b"@timestamp" => (2, G::Ts, 2, NumOrText),
        b"time" => (3, G::Ts, 3, NumOrText),
        b"level" => (4, G::Level, 0, Text),
        b"severity" => (5, G::Level, 1, Text),
        b"ip" => (6, G::Ip, 0, Text),
        b"remote_addr" => (7, G::Ip, 1, Text),
        b"client_ip" => (8, G::Ip, 2, Text),
        b"path" => (9, G::Target, 0, Text),
        b"uri" => (10, G::Target, 1, Text),
        b"request_uri" => (11, G::Target, 2, Text),
        b"url" => (12, G::Target, 3, Text),
        b"status" => (13, G::Status, 0, NumOrText),
        b"status_code" => (14, G::Status, 1, NumOrText),
        b"duration_ms" => (15, G::Latency, 0, Num),
        b"time_ms" => (16, G::Latency, 1, Num),
        b"latency_ms" => (17, G::Latency, 2, Num),
        b"response_time_ms" => (18, G::Latency, 3, Num),
        b"request_time" => (19, G::Latency, REQUEST_TIME, Num),
        b"bytes" => (20, G::Bytes, 0, Num),
        b"body_bytes_sent" => (21, G::Bytes, 1, Num),
        b"bytes_sent" => (22, G::Bytes, 2, Num),
        b"size" => (23, G::Bytes, 3, Num),
        b"referer" => (24, G::Referer, 0, Text),
        b"referrer" => (25, G::Referer, 1, Text),
        b"http_referer" => (26, G::Referer, 2, Text),
        b"user_agent" => (27, G::Agent, 0, Text),
        b"http_user_agent" => (28, G::Agent, 1, Text),
        b"ua" => (29, G::Agent, 2, Text),
        b"host" => (30, G::Vhost, 0, Text),
        b"vhost" => (31, G::Vhost, 1, Text),
        b"server_name" => (32, G::Vhost, 2, Text),
        _ => return None,
    })
}

/// The first index at or after `i` of a byte a string scan must stop at (`"`, `\` or a control
/// character below 0x20), or `b.len()`. Eight bytes at a time, as [`super::find2`]: the lowest
/// flag is exact.
#[inline]
fn string_stop(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTE: u64 = LO * b'"' as u64;
    const BACKSLASH: u64 = LO * b'\\' as u64;
    while i + 8 <= b.len() {
        let Ok(word) = <[u8; 8]>::try_from(&b[i..i + 8]) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let (q, s) = (w ^ QUOTE, w ^ BACKSLASH);
        let z = (q.wrapping_sub(LO) & !q & HI)
            | (s.wrapping_sub(LO) & !s & HI)
            | (w.wrapping_sub(LO * 0x20) & !w & HI);
        if z != 0 {
            return i + (z.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..0x20) {
        i += 1;
    }
    i
}

fn hex4(b: &[u8]) -> Option<u16> {
    let h = b.get(..4)?;
    let mut v = 0u16;
    for &c in h {
        v = v << 4 | u16::from(char::from(c).to_digit(16)? as u8);
    }
    Some(v)
}

/// A cursor over one line.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

type Res<T> = Result<T, Malformed>;

impl<'a> Scan<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Res<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(NOT_JSON)
        }
    }

    /// Skips a string's body after its opening quote, checking its escapes.
    fn skip_string(&mut self) -> Res<()> {
        loop {
            self.i = string_stop(self.b, self.i);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => match self.b.get(self.i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                        self.i += 2;
                    }
                    Some(b'u') => {
                        hex4(&self.b[self.i + 2..]).ok_or(NOT_JSON)?;
                        self.i += 6;
                    }
                    _ => return Err(NOT_JSON),
                },
                _ => return Err(NOT_JSON), // a control character or the end of the line
            }
        }
    }

    /// A string's bytes after its opening quote: borrowed when it has no escapes, else decoded.
    fn string_bytes(&mut self) -> Res<Cow<'a, [u8]>> {
        let start = self.i;
        let stop = string_stop(self.b, start);
        if self.b.get(stop) == Some(&b'"') {
            self.i = stop + 1;
            return Ok(Cow::Borrowed(&self.b[start..stop]));
        }
        let mut out = self.b[start..stop].to_vec();
        self.i = stop;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    let esc = self.b.get(self.i + 1).copied();
                    self.i += 2;
                    let c = match esc {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return Err(NOT_JSON),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => return Err(NOT_JSON),
            }
            let stop = string_stop(self.b, self.i);
            out.extend_from_slice(&self.b[self.i..stop]);
            self.i = stop;
        }
    }

    /// The character of a `\uXXXX` escape (its `\u` read), joining a surrogate pair; a lone
    /// surrogate is refused.
    fn unicode_escape(&mut self) -> Res<char> {
        let hi = hex4(&self.b[self.i.min(self.b.len())..]).ok_or(NOT_JSON)?;
        self.i += 4;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                    return Err(NOT_JSON);
                }
                let lo = hex4(&self.b[self.i + 2..]).ok_or(NOT_JSON)?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(NOT_JSON);
                }
                self.i += 6;
                0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(NOT_JSON),
            _ => u32::from(hi),
        };
        char::from_u32(code).ok_or(NOT_JSON)
    }

    /// A string value after its opening quote, as UTF-8 text.
    fn text(&mut self) -> Res<Cow<'a, str>> {
        Ok(match self.string_bytes()? {
            Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b).map_err(|_| NOT_JSON)?),
            Cow::Owned(v) => Cow::Owned(String::from_utf8(v).map_err(|_| NOT_JSON)?),
        })
    }

    /// Skips a number, checking its grammar; returns its text.
    fn number_text(&mut self) -> Res<&'a [u8]> {
        let start = self.i;
        let digits = |s: &mut Self| {
            let from = s.i;
            while s.peek().is_some_and(|c| c.is_ascii_digit()) {
                s.i += 1;
            }
            s.i > from
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(NOT_JSON),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !digits(self) {
                return Err(NOT_JSON);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !digits(self) {
                return Err(NOT_JSON);
            }
        }
        Ok(&self.b[start..self.i])
    }

    /// A number's value; one too large for `f64` is refused, as serde_json did.
    fn number(&mut self) -> Res<f64> {
        let t = self.number_text()?;
        // Integers of up to 19 digits exactly, as serde_json reads them (then cast).
        let (neg, digits) = match t {
            [b'-', rest @ ..] => (true, rest),
            _ => (false, t),
        };
        if digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit) {
            let mut v = 0u64;
            for &c in digits {
                v = v * 10 + u64::from(c - b'0');
            }
            return Ok(if neg { -(v as f64) } else { v as f64 });
        }
        let v: f64 = std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(NOT_JSON)?;
        if v.is_finite() { Ok(v) } else { Err(NOT_JSON) }
    }

    fn literal(&mut self, word: &[u8]) -> Res<()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(NOT_JSON)
        }
    }

    /// Skips any value, checking its grammar; `depth` is the nesting of the value's container.
    fn skip_value(&mut self, depth: u32) -> Res<()> {
        self.ws();
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                self.skip_string()
            }
            Some(open @ (b'{' | b'[')) => {
                if depth >= MAX_DEPTH {
                    return Err(NOT_JSON);
                }
                self.i += 1;
                let close = if open == b'{' { b'}' } else { b']' };
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.ws();
                        self.eat(b'"')?;
                        self.skip_string()?;
                        self.ws();
                        self.eat(b':')?;
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(NOT_JSON),
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number_text().map(drop),
            _ => Err(NOT_JSON),
        }
    }

    /// A known field's value: `None` for `null`, else a value of `kind`.
    fn value(&mut self, kind: Kind) -> Res<Option<Val<'a>>> {
        self.ws();
        match (self.peek(), kind) {
            (Some(b'n'), _) => self.literal(b"null").map(|()| None),
            (Some(b'"'), Kind::Text | Kind::NumOrText) => {
                self.i += 1;
                Ok(Some(Val::Text(self.text()?)))
            }
            (Some(b'-' | b'0'..=b'9'), Kind::Num | Kind::NumOrText) => {
                Ok(Some(Val::Num(self.number()?)))
            }
            // The wrong kind for a known field: the line is refused, as serde_json's typed
            // fields did. (Still checked to the end, so the reason does not depend on where.)
            _ => Err(NOT_JSON),
        }
    }
}

/// The known fields of one line: per group, the winning alias's rank and value.
type Fields<'a> = [Option<(u8, Val<'a>)>; GROUPS];

/// Reads the line's object into `fields`.
fn scan<'a>(line: &'a [u8], fields: &mut Fields<'a>) -> Res<()> {
    let mut s = Scan { b: line, i: 0 };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        let mut seen = 0u64;
        loop {
            s.ws();
            s.eat(b'"')?;
            let key = s.string_bytes()?;
            if !key.is_ascii() && std::str::from_utf8(&key).is_err() {
                return Err(NOT_JSON);
            }
            s.ws();
            s.eat(b':')?;
            match field(&key) {
                Some((bit, group, rank, kind)) => {
                    if seen & 1 << bit != 0 {
                        return Err(NOT_JSON); // a duplicate field
                    }
                    seen |= 1 << bit;
                    if let Some(v) = s.value(kind)? {
                        let slot = &mut fields[group as usize];
                        if slot.as_ref().is_none_or(|(r, _)| rank < *r) {
                            *slot = Some((rank, v));
                        }
                    }
                }
                None => s.skip_value(1)?,
            }
            s.ws();
            match s.peek() {
                Some(b',') => s.i += 1,
                Some(b'}') => {
                    s.i += 1;
                    break;
                }
                _ => return Err(NOT_JSON),
            }
        }
    }
    s.ws();
    if s.i == line.len() {
        Ok(())
    } else {
        Err(NOT_JSON)
    }
}

fn text_bytes(v: Option<(u8, Val<'_>)>) -> Option<Cow<'_, [u8]>> {
    match v? {
        (_, Val::Text(Cow::Borrowed(t))) => Some(Cow::Borrowed(t.as_bytes())),
        (_, Val::Text(Cow::Owned(t))) => Some(Cow::Owned(t.into_bytes())),
        (_, Val::Num(_)) => None,
    }
}

fn num(v: Option<&(u8, Val<'_>)>) -> Option<(u8, f64)> {
    match v? {
        &(rank, Val::Num(n)) => Some((rank, n)),
        (_, Val::Text(_)) => None,
    }
}

fn timestamp(v: &Val<'_>) -> Option<i64> {
    match v {
        // Unix seconds, or milliseconds when too large to be seconds (after the year 33658).
        Val::Num(n) if n.is_finite() => Some(if n.abs() >= 1e12 {
            (n / 1000.0).floor() as i64
        } else {
            n.floor() as i64
        }),
        Val::Num(_) => None,
        Val::Text(t) => parse_datetime_prefix(t.as_bytes())
            .and_then(|(secs, used)| (used == t.len()).then_some(secs)),
    }
}

fn millis_to_us(ms: f64) -> Option<u64> {
    (ms.is_finite() && ms >= 0.0).then(|| (ms * 1000.0).round() as u64)
}

pub(super) fn parse(line: &[u8]) -> Result<Parsed<'_>, Malformed> {
    let mut f: Fields<'_> = Default::default();
    scan(line, &mut f)?;
    let status = match &f[Group::Status as usize] {
        None => None,
        Some((_, Val::Num(n))) if (100.0..1000.0).contains(n) && n.fract() == 0.0 => {
            Some(*n as u16)
        }
        Some((_, Val::Text(t))) => {
            Some(super::parse_status(t.as_bytes()).ok_or("status is not a 3-digit code")?)
        }
        Some((_, Val::Num(_))) => return Err("status is not a 3-digit code"),
    };
    let target = text_bytes(f[Group::Target as usize].take());
    let (target, status) = match (target, status) {
        (Some(t), Some(s)) => (t, s),
        (None, None) => return Ok(Parsed::Other),
        (None, Some(_)) => return Err("status without path"),
        (Some(_), None) => return Err("path without status"),
    };
    let ts = match &f[Group::Ts as usize] {
        Some((_, v)) => Some(timestamp(v).ok_or("unreadable timestamp")?),
        None => None,
    };
    let latency_us = match num(f[Group::Latency as usize].as_ref()) {
        Some((REQUEST_TIME, s)) => {
            Some(millis_to_us(s * 1000.0).ok_or("negative or invalid duration")?)
        }
        Some((_, ms)) => Some(millis_to_us(ms).ok_or("negative or invalid duration")?),
        None => None,
    };
    let level = match &f[Group::Level as usize] {
        Some((_, Val::Text(t))) => Level::from_bytes(t.as_bytes()),
        _ => None,
    }
    .unwrap_or_else(|| Level::from_status(status));
    let empty = || Cow::Borrowed(&b""[..]);
    Ok(Parsed::Request(Record {
        ts,
        level,
        ip: text_bytes(f[Group::Ip as usize].take()).unwrap_or_else(empty),
        target,
        status,
        latency_us,
        bytes: num(f[Group::Bytes as usize].as_ref())
            .map(|(_, b)| b)
            .filter(|b| b.is_finite() && *b >= 0.0 && *b < 1.8e19)
            .map(|b| b as u64),
        referer: text_bytes(f[Group::Referer as usize].take()).unwrap_or_else(empty),
        agent: text_bytes(f[Group::Agent as usize].take()).unwrap_or_else(empty),
        vhost: text_bytes(f[Group::Vhost as usize].take()).unwrap_or_else(empty),
    }))
}

/// The serde_json parser this scanner replaced, kept as the reference the tests compare with.
#[cfg(test)]
mod reference {
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

    use crate::parse::{Level, Malformed, Parsed, Record};
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
            Some(NumOrText::Text(Str(t))) => Some(
                crate::parse::parse_status(t.as_bytes()).ok_or("status is not a 3-digit code")?,
            ),
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
            (None, Some(s)) => {
                Some(millis_to_us(s * 1000.0).ok_or("negative or invalid duration")?)
            }
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

    #[test]
    fn strict_json_edges() {
        // Escapes in values and keys are decoded; a pair of surrogates is one character.
        let r = req(br#"{"p\u0061th":"/caf\u00e9\ud83d\ude00","status":"200","ip":"a\"b"}"#);
        assert_eq!(&*r.target, "/café😀".as_bytes());
        assert_eq!(&*r.ip, b"a\"b");
        for bad in [
            &br#"{"path":"/a","status":200,"path":"/b"}"#[..],
            br#"{"path":"/a","status":200,"ts":null,"ts":1}"#,
            br#"{"path":"/\ud800","status":200}"#,
            br#"{"path":"/\udc00x","status":200}"#,
            br#"{"path":"/a","status":200,"x":"\q"}"#,
            br#"{"path":"/a","status":200,"x":"\u12"}"#,
            b"{\"path\":\"/a\",\"status\":200,\"x\":\"tab\there\"}",
            br#"{"path":"/a","status":200,}"#,
            br#"{"path":"/a","status":200} x"#,
            br#"{"path":"/a","status":200,"x":[1,2,]}"#,
            br#"{"path":"/a","status":200,"x":01}"#,
            br#"{"path":"/a","status":200,"x":1.}"#,
            br#"{"path":"/a","status":200,"x":-}"#,
            br#"{"path":"/a","status":200,"x":tru}"#,
            br#"{"path":"/a","status":200,"time_ms":1e999}"#,
            br#"{"path":5,"status":200}"#,
            br#"{"path":"/a","uri":5,"status":200}"#,
            br#"{"path":"/a","status":true}"#,
            br#"{"path":"/a","status":200,"time_ms":"5"}"#,
            b"{\"path\":\"/a\",\"status\":200,\"\xff\":1}",
            br#"{"path":"/a" "status":200}"#,
            br#"{path:"/a"}"#,
            b"",
            b"{",
        ] {
            assert_eq!(
                parse(bad),
                Err("not a JSON object"),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // null is an absent field; unknown values of any shape are skipped.
        let r = req(br#"{"path":null,"uri":"/u","status":200,"x":{"a":[1,{"b":null}],"c":true},"y":-1.5e3,"ip":null}"#);
        assert_eq!(&*r.target, b"/u");
        assert_eq!(&*r.ip, b"");
        let deep = format!(
            "{{\"path\":\"/a\",\"status\":200,\"x\":{}1{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(parse(deep.as_bytes()).is_err(), "nesting past 128 levels");
        let ok = format!(
            "{{\"path\":\"/a\",\"status\":200,\"x\":{}1{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(parse(ok.as_bytes()).is_ok());
    }

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// The scanner reads every line as the serde_json parser it replaced did: the same record,
    /// or the same reason, over valid lines of every field and alias and over thousands of
    /// their mutations (bytes changed, inserted, removed; lines cut).
    #[test]
    fn same_results_as_serde_json() {
        let valid: [&[u8]; 12] = [
            br#"{"ts":"2024-03-01T12:00:00Z","level":"warn","ip":"10.0.0.1","path":"/a?b","status":404,"time_ms":12.5,"extra":{"n":[1,2]}}"#,
            br#"{"@timestamp":1709294400000,"remote_addr":"::1","uri":"/x\/y","status_code":"500","request_time":0.25}"#,
            br#"{"path":"/a","status":200,"bytes":512,"referer":"https://x.example/","user_agent":"curl/8","host":"shop.example"}"#,
            br#"{"timestamp":1709294400,"severity":"ERROR","client_ip":"1.2.3.4","request_uri":"/r","status":301,"latency_ms":3,"body_bytes_sent":0,"referrer":"-","http_user_agent":"ua\"x","vhost":"v"}"#,
            br#"{"time":"2024-03-01 12:00:00+02:00","url":"/u\u00e9","status":"200","response_time_ms":1e2,"bytes_sent":1.5,"http_referer":"r","ua":"a","server_name":"s","size":7}"#,
            br#" { "path" : "/sp" , "status" : 200 , "duration_ms" : 0.001 , "ok" : [ true , false , null ] } "#,
            br#"{"level":"info","msg":"started","n":-12.5e-3}"#,
            br#"{"path":"/a","status":200,"time_ms":-1}"#,
            br#"{"path":"/a","status":99}"#,
            br#"{"path":"/a","status":200,"ts":"noon"}"#,
            br#"{"path":"/n","status":200,"ts":null,"ip":"\ud83d\ude00","x":"\u0000"}"#,
            br#"{"ts":-1e3,"path":"/a","status":500,"request_time":2,"time_ms":null}"#,
        ];
        let alphabet = b"{}[]\":,\\u0123456789.eE+-tnfa lrsx/\t\xff\xc3";
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut checked = 0;
        for line in valid {
            let want = reference::parse(line);
            assert_eq!(parse(line), want, "{}", String::from_utf8_lossy(line));
            for _ in 0..3000 {
                let mut m = line.to_vec();
                for _ in 0..1 + xorshift(&mut x) % 3 {
                    let at = (xorshift(&mut x) % (m.len() as u64 + 1)) as usize;
                    let c = alphabet[(xorshift(&mut x) % alphabet.len() as u64) as usize];
                    match xorshift(&mut x) % 4 {
                        0 if at < m.len() => m[at] = c,
                        1 => m.insert(at, c),
                        2 if at < m.len() => {
                            m.remove(at);
                        }
                        _ => m.truncate(at),
                    }
                }
                let (got, want) = (parse(&m), reference::parse(&m));
                assert_eq!(got, want, "{}", String::from_utf8_lossy(&m));
                checked += 1;
            }
        }
        assert_eq!(checked, 36_000);
    }
}
