//! Access logs in a layout the user gives: an nginx `log_format` string or an Apache
//! `LogFormat` string, compiled once into a list of literal and field operations.
//!
//! The plan: a line is read left to right along the ops. A literal must be at the cursor (a
//! byte comparison); a field runs up to the next literal, found with one byte search for its
//! first byte (and a check of the rest), or up to the closing quote when the field sits between
//! double quotes (so a `\"` inside a user agent does not end it). No regex runs per line.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use memchr::memchr;

use super::kv::closing_quote;
use super::{Level, Malformed, Parsed, Record, parse_duration_us, parse_status};
use crate::time::{parse_clf, parse_datetime_prefix};

/// What a field of the format holds, for the analyzer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// The client address (`$remote_addr`, `%h`, `%a`).
    Addr,
    /// `10/Oct/2000:13:55:36 -0700` (`$time_local`).
    TimeClf,
    /// `[10/Oct/2000:13:55:36 -0700]`, brackets included (Apache `%t`).
    TimeClfBracketed,
    /// RFC 3339 (`$time_iso8601`).
    TimeIso,
    /// Unix seconds with a fraction (`$msec`).
    TimeEpoch,
    /// The request line `GET /a?b HTTP/1.1` (`$request`, `%r`).
    Request,
    /// The target with its query (`$request_uri`).
    Target,
    /// The path without query (`$uri`, `%U`).
    Path,
    /// The status code (`$status`, `%>s`).
    Status,
    /// Response bytes, `-` meaning 0 (`$body_bytes_sent`, `%b`, `%O`).
    Bytes,
    /// The `Referer` header (`$http_referer`, `%{Referer}i`).
    Referer,
    /// The `User-Agent` header (`$http_user_agent`, `%{User-agent}i`).
    Agent,
    /// The virtual host (`$host`, `$server_name`, `%v`).
    Vhost,
    /// Response time in seconds with a fraction (`$request_time`).
    Seconds,
    /// Response time in whole seconds (`%T`).
    WholeSeconds,
    /// Response time in milliseconds (`%{ms}T`).
    Millis,
    /// Response time in microseconds (`%D`, `%{us}T`).
    Micros,
    /// A field the analyzer does not read: it is stepped over.
    Skip,
}

impl Field {
    fn is_number(self) -> bool {
        matches!(
            self,
            Field::Status
                | Field::Bytes
                | Field::Seconds
                | Field::WholeSeconds
                | Field::Millis
                | Field::Micros
                | Field::TimeEpoch
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Literal(Box<[u8]>),
    Field {
        field: Field,
        /// Between double quotes: the value ends at the closing quote, `\"` escapes skipped.
        quoted: bool,
    },
}

/// Which configuration language a format string is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FormatSyntax {
    /// nginx `log_format`: `$variable` or `${variable}`.
    Nginx,
    /// Apache `LogFormat`: `%h`, `%>s`, `%{Referer}i`, ...
    Apache,
}

impl fmt::Display for FormatSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatSyntax::Nginx => "nginx",
            FormatSyntax::Apache => "apache",
        })
    }
}

/// A format string that does not compile, with the place it goes wrong.
///
/// Its `Display` quotes the format with a caret under the token:
///
/// ```
/// use weft_logs::AccessFormat;
/// let err = AccessFormat::new("%h %t \"%r\" %>s %Q").unwrap_err();
/// assert_eq!(err.offset(), 15);
/// let text = err.to_string();
/// assert!(text.starts_with("unknown Apache directive %Q at byte 15"), "{text}");
/// assert!(text.ends_with("\n  %h %t \"%r\" %>s %Q\n                 ^^"), "{text:?}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {offset} of the log format\n  {format}\n  {caret}")]
pub struct FormatError {
    format: String,
    offset: usize,
    reason: String,
    caret: String,
}

impl FormatError {
    fn new(format: &str, offset: usize, len: usize, reason: impl Into<String>) -> Self {
        let offset = offset.min(format.len());
        let before = format.get(..offset).map_or(offset, |s| s.chars().count());
        let width = format
            .get(offset..(offset + len).min(format.len()))
            .map_or(1, |s| s.chars().count())
            .max(1);
        FormatError {
            format: format.to_string(),
            offset,
            reason: reason.into(),
            caret: format!("{}{}", " ".repeat(before), "^".repeat(width)),
        }
    }

    /// The byte offset of the token that is wrong (the length of the format when something is
    /// missing from the whole).
    #[must_use]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What is wrong, without the quoted format.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A custom access-log format, compiled once: an nginx `log_format` string, an Apache
/// `LogFormat` string, or a named preset.
///
/// The analyzer reads the client address, time, request (or path), status, response bytes,
/// referrer, user agent, virtual host and response time where the format has them; the other
/// fields are stepped over. A format must have a status and a request or path field.
///
/// | reads | nginx | Apache |
/// |---|---|---|
/// | client | `$remote_addr`, `$realip_remote_addr` | `%h`, `%a` |
/// | time | `$time_local`, `$time_iso8601`, `$msec` | `%t` |
/// | request | `$request`; `$request_uri` or `$uri` | `%r`; `%U` |
/// | status | `$status` | `%s`, `%>s` |
/// | bytes | `$body_bytes_sent`, `$bytes_sent` | `%b`, `%B`, `%O` |
/// | referrer, agent | `$http_referer`, `$http_user_agent` | `%{Referer}i`, `%{User-agent}i` |
/// | virtual host | `$host`, `$server_name`, `$http_host` | `%v`, `%V`, `%{Host}i` |
/// | response time | `$request_time` (s) | `%D` (µs), `%T` (s), `%{ms}T`, `%{us}T` |
///
/// Any other nginx variable (the name of one set by `map` or `set` included) and any other
/// Apache directive is a field that is skipped. The syntax is told by the first field: `$` for
/// nginx, `%` for Apache; prefix the string with `nginx:` or `apache:` to say it.
///
/// Presets: `combined`, `common`, `vhost-combined` (Apache's `%v:%p %h %l %u %t "%r" %>s %O
/// "%{Referer}i" "%{User-Agent}i"`) and `nginx-timed` (combined plus `$request_time`).
///
/// ```
/// use weft_logs::{AccessFormat, FormatSyntax};
/// let f = AccessFormat::new(
///     r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time"#,
/// )?;
/// assert_eq!(f.syntax(), FormatSyntax::Nginx);
/// assert_eq!(AccessFormat::preset("nginx-timed").map(|p| p.source().to_string()), Some(f.source().to_string()));
/// let apache = AccessFormat::new(r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %D"#)?;
/// assert_eq!(apache.syntax(), FormatSyntax::Apache);
/// # Ok::<(), weft_logs::FormatError>(())
/// ```
#[derive(Clone)]
pub struct AccessFormat {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    source: String,
    syntax: FormatSyntax,
    name: Option<&'static str>,
    ops: Vec<Op>,
}

impl fmt::Debug for AccessFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessFormat")
            .field("syntax", &self.inner.syntax)
            .field("name", &self.inner.name)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl PartialEq for AccessFormat {
    fn eq(&self, other: &Self) -> bool {
        self.inner.source == other.inner.source && self.inner.syntax == other.inner.syntax
    }
}

impl Eq for AccessFormat {}

/// The presets: name and format string.
const PRESETS: [(&str, &str); 4] = [
    (
        "combined",
        r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i""#,
    ),
    ("common", r#"%h %l %u %t "%r" %>s %b"#),
    (
        "vhost-combined",
        r#"%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#,
    ),
    (
        "nginx-timed",
        r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time"#,
    ),
];

impl AccessFormat {
    /// Compiles an nginx `log_format` or Apache `LogFormat` string (see the type's docs).
    ///
    /// # Errors
    ///
    /// A [`FormatError`] pointing at the token that is wrong: a `$` or `%` not followed by a
    /// field, an unknown Apache directive, an unterminated `{`, two fields with nothing between
    /// them (a line could not be split), or a format without a status or request field.
    pub fn new(format: &str) -> Result<AccessFormat, FormatError> {
        let (syntax, body, skip) = if let Some(rest) = format.strip_prefix("nginx:") {
            (FormatSyntax::Nginx, rest, 6)
        } else if let Some(rest) = format.strip_prefix("apache:") {
            (FormatSyntax::Apache, rest, 7)
        } else {
            (guess_syntax(format), format, 0)
        };
        let tokens = match syntax {
            FormatSyntax::Nginx => nginx_tokens(body),
            FormatSyntax::Apache => apache_tokens(body),
        }
        .map_err(|(at, len, why)| FormatError::new(format, at + skip, len, why))?;
        let ops =
            link(tokens).map_err(|(at, len, why)| FormatError::new(format, at + skip, len, why))?;
        Ok(AccessFormat {
            inner: Arc::new(Compiled {
                source: format.to_string(),
                syntax,
                name: None,
                ops,
            }),
        })
    }

    /// A named preset: `combined`, `common`, `vhost-combined` or `nginx-timed`; `None` for any
    /// other name.
    #[must_use]
    pub fn preset(name: &str) -> Option<AccessFormat> {
        let (name, source) = PRESETS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        let mut f = AccessFormat::new(source).ok()?;
        if let Some(c) = Arc::get_mut(&mut f.inner) {
            c.name = Some(name);
        }
        Some(f)
    }

    /// The names of the presets.
    #[must_use]
    pub fn preset_names() -> Vec<&'static str> {
        PRESETS.iter().map(|p| p.0).collect()
    }

    /// The format string as given (a preset's own string).
    #[must_use]
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The preset's name, if it is one.
    #[must_use]
    pub fn name(&self) -> Option<&'static str> {
        self.inner.name
    }

    /// The syntax the string was read in.
    #[must_use]
    pub fn syntax(&self) -> FormatSyntax {
        self.inner.syntax
    }

    /// Parses one line (no newline) along the compiled ops.
    pub(crate) fn parse<'a>(&self, line: &'a [u8]) -> Result<Parsed<'a>, Malformed> {
        let ops = &self.inner.ops;
        let mut i = 0;
        let mut rec = Fields::default();
        for (k, op) in ops.iter().enumerate() {
            match op {
                Op::Literal(lit) => {
                    if !line[i..].starts_with(lit) {
                        return Err("line does not match the log format");
                    }
                    i += lit.len();
                }
                Op::Field { field, quoted } => {
                    let rest = &line[i..];
                    let len = match (ops.get(k + 1), field) {
                        (_, Field::TimeClfBracketed) if rest.first() == Some(&b'[') => {
                            memchr(b']', rest).ok_or("unterminated [time]")? + 1
                        }
                        // A number that ends the format ends at a space, so a line with
                        // more fields after it (a combined line read as common) still reads.
                        (None, f) if f.is_number() => memchr(b' ', rest).unwrap_or(rest.len()),
                        (None, _) => rest.len(),
                        (Some(Op::Literal(next)), _) if *quoted => {
                            let end = closing_quote(rest).ok_or("unterminated quoted field")?;
                            if !rest[end..].starts_with(next) {
                                return Err("line does not match the log format");
                            }
                            end
                        }
                        (Some(Op::Literal(next)), _) => {
                            find_literal(rest, next).ok_or("line does not match the log format")?
                        }
                        // `link` never puts two fields side by side.
                        (Some(Op::Field { .. }), _) => rest.len(),
                    };
                    rec.set(*field, &rest[..len])?;
                    i += len;
                }
            }
        }
        rec.finish()
    }
}

/// The first place `lit` occurs in `hay`.
fn find_literal(hay: &[u8], lit: &[u8]) -> Option<usize> {
    let first = *lit.first()?;
    let mut from = 0;
    while let Some(p) = memchr(first, &hay[from..]) {
        let at = from + p;
        if hay[at..].starts_with(lit) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The values of one line, before they make a [`Record`].
#[derive(Default)]
struct Fields<'a> {
    ts: Option<i64>,
    ip: &'a [u8],
    request: Option<&'a [u8]>,
    target: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    status: Option<u16>,
    bytes: Option<u64>,
    referer: &'a [u8],
    agent: &'a [u8],
    vhost: &'a [u8],
    latency_us: Option<u64>,
}

impl<'a> Fields<'a> {
    fn set(&mut self, field: Field, v: &'a [u8]) -> Result<(), Malformed> {
        match field {
            Field::Addr => self.ip = v,
            Field::TimeClf => self.ts = Some(parse_clf(v).ok_or("unreadable time")?),
            Field::TimeClfBracketed => {
                let inner = v
                    .strip_prefix(b"[")
                    .and_then(|v| v.strip_suffix(b"]"))
                    .ok_or("unreadable [time]")?;
                self.ts = Some(parse_clf(inner).ok_or("unreadable [time]")?);
            }
            Field::TimeIso => {
                let (secs, used) = parse_datetime_prefix(v).ok_or("unreadable time")?;
                if used != v.len() {
                    return Err("unreadable time");
                }
                self.ts = Some(secs);
            }
            Field::TimeEpoch => {
                let whole = &v[..memchr(b'.', v).unwrap_or(v.len())];
                let secs = std::str::from_utf8(whole)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or("unreadable time")?;
                self.ts = Some(secs);
            }
            Field::Request => self.request = Some(v),
            Field::Target => self.target = Some(v),
            Field::Path => self.path = Some(v),
            Field::Status => {
                self.status = Some(parse_status(v).ok_or("status is not a 3-digit code")?);
            }
            Field::Bytes => self.bytes = parse_bytes(v),
            Field::Referer => self.referer = v,
            Field::Agent => self.agent = v,
            Field::Vhost => self.vhost = v,
            // An unreadable or absent (`-`) response time is left out rather than making the
            // request malformed, as the built-in Combined parser does.
            Field::Seconds => self.latency_us = parse_duration_us(v, 1_000_000),
            Field::WholeSeconds => self.latency_us = parse_duration_us(v, 1_000_000),
            Field::Millis => self.latency_us = parse_duration_us(v, 1000),
            Field::Micros => self.latency_us = parse_duration_us(v, 1),
            Field::Skip => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Parsed<'a>, Malformed> {
        let status = self.status.ok_or("no status")?;
        let target = match (self.request, self.target, self.path) {
            (Some(r), _, _) => request_target(r),
            (None, Some(t), _) => t,
            (None, None, Some(p)) => p,
            (None, None, None) => return Err("no request"),
        };
        Ok(Parsed::Request(Record {
            ts: self.ts,
            level: Level::from_status(status),
            ip: Cow::Borrowed(self.ip),
            target: Cow::Borrowed(target),
            status,
            latency_us: self.latency_us,
            bytes: self.bytes,
            referer: Cow::Borrowed(self.referer),
            agent: Cow::Borrowed(self.agent),
            vhost: Cow::Borrowed(self.vhost),
        }))
    }
}

/// The target of a request line `METHOD TARGET PROTOCOL`; anything else (a TLS probe, `-`) is
/// kept whole.
pub(super) fn request_target(request: &[u8]) -> &[u8] {
    match memchr(b' ', request) {
        Some(a) => {
            let t = &request[a + 1..];
            match memchr(b' ', t) {
                Some(b) => &t[..b],
                None => t,
            }
        }
        None => request,
    }
}

/// Response bytes: digits, or `-` for none sent (counted as 0, as GoAccess does).
pub(super) fn parse_bytes(v: &[u8]) -> Option<u64> {
    if v == b"-" {
        return Some(0);
    }
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0')))
}

/// nginx if the first field marker is a `$` that starts a variable, else Apache.
fn guess_syntax(s: &str) -> FormatSyntax {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        let next = b.get(i + 1).copied().unwrap_or(0);
        if c == b'$' && (next.is_ascii_alphanumeric() || next == b'_' || next == b'{') {
            return FormatSyntax::Nginx;
        }
        if c == b'%' {
            return FormatSyntax::Apache;
        }
    }
    FormatSyntax::Nginx
}

/// A literal or a field, and where it starts in the format (for errors).
type Token = (Op, usize, usize);
type TokError = (usize, usize, String);

fn push_literal(tokens: &mut Vec<Token>, lit: &mut Vec<u8>, at: usize) {
    if !lit.is_empty() {
        let len = lit.len();
        tokens.push((Op::Literal(std::mem::take(lit).into()), at - len, len));
    }
}

fn field(f: Field) -> Op {
    Op::Field {
        field: f,
        quoted: false,
    }
}

fn nginx_tokens(s: &str) -> Result<Vec<Token>, TokError> {
    let b = s.as_bytes();
    let mut tokens = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            lit.push(b[i]);
            i += 1;
            continue;
        }
        push_literal(&mut tokens, &mut lit, i);
        let start = i;
        let (name, end) = if b.get(i + 1) == Some(&b'{') {
            let close = b[i + 2..].iter().position(|&c| c == b'}').ok_or((
                start,
                b.len() - start,
                "unterminated ${".to_string(),
            ))?;
            (&s[i + 2..i + 2 + close], i + 3 + close)
        } else {
            let n = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            (&s[i + 1..i + 1 + n], i + 1 + n)
        };
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err((
                start,
                (end - start).max(1),
                "`$` is not followed by a variable name".to_string(),
            ));
        }
        tokens.push((field(nginx_field(name)), start, end - start));
        i = end;
    }
    push_literal(&mut tokens, &mut lit, b.len());
    Ok(tokens)
}

fn nginx_field(name: &str) -> Field {
    match name {
        "remote_addr" | "realip_remote_addr" => Field::Addr,
        "time_local" => Field::TimeClf,
        "time_iso8601" => Field::TimeIso,
        "msec" => Field::TimeEpoch,
        "request" => Field::Request,
        "request_uri" => Field::Target,
        "uri" | "document_uri" => Field::Path,
        "status" => Field::Status,
        "body_bytes_sent" | "bytes_sent" => Field::Bytes,
        "http_referer" => Field::Referer,
        "http_user_agent" => Field::Agent,
        "host" | "server_name" | "http_host" => Field::Vhost,
        "request_time" => Field::Seconds,
        _ => Field::Skip,
    }
}

fn apache_tokens(s: &str) -> Result<Vec<Token>, TokError> {
    let b = s.as_bytes();
    let mut tokens = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if b.get(i + 1) == Some(&b'%') => {
                lit.push(b'%');
                i += 2;
            }
            b'%' => {
                push_literal(&mut tokens, &mut lit, i);
                let start = i;
                i += 1;
                // Conditions (`!200,304`) and the original/final marks (`<`, `>`).
                while i < b.len() && matches!(b[i], b'!' | b',' | b'<' | b'>' | b'0'..=b'9') {
                    i += 1;
                }
                let mut arg = None;
                if b.get(i) == Some(&b'{') {
                    let close = b[i + 1..].iter().position(|&c| c == b'}').ok_or((
                        start,
                        b.len() - start,
                        "unterminated %{".to_string(),
                    ))?;
                    arg = Some(&s[i + 1..i + 1 + close]);
                    i += close + 2;
                }
                // `%{VARNAME}^ti` and `^to` take two letters after the caret.
                let letter_len = if b.get(i) == Some(&b'^') { 3 } else { 1 };
                let Some(letters) = s.get(i..i + letter_len) else {
                    return Err((start, b.len() - start, "`%` ends the format".to_string()));
                };
                let f = apache_field(letters, arg).ok_or_else(|| {
                    (
                        start,
                        i + letter_len - start,
                        format!("unknown Apache directive {}", &s[start..i + letter_len]),
                    )
                })?;
                i += letter_len;
                tokens.push((field(f), start, i - start));
            }
            c => {
                lit.push(c);
                i += 1;
            }
        }
    }
    push_literal(&mut tokens, &mut lit, b.len());
    Ok(tokens)
}

fn apache_field(letters: &str, arg: Option<&str>) -> Option<Field> {
    let header = |name: &str| arg.is_some_and(|a| a.eq_ignore_ascii_case(name));
    Some(match letters {
        "h" | "a" => Field::Addr,
        "t" if arg.is_none() => Field::TimeClfBracketed,
        "r" => Field::Request,
        "U" => Field::Path,
        "s" => Field::Status,
        "b" | "B" | "O" => Field::Bytes,
        "i" if header("Referer") => Field::Referer,
        "i" if header("User-Agent") => Field::Agent,
        "i" if header("Host") => Field::Vhost,
        "v" | "V" => Field::Vhost,
        "D" => Field::Micros,
        "T" if arg.is_none() || header("s") => Field::WholeSeconds,
        "T" if header("ms") => Field::Millis,
        "T" if header("us") => Field::Micros,
        "A" | "C" | "e" | "f" | "H" | "i" | "k" | "l" | "L" | "m" | "n" | "o" | "p" | "P" | "q"
        | "R" | "t" | "u" | "X" | "I" | "S" | "^ti" | "^to" => Field::Skip,
        _ => return None,
    })
}

/// Checks the token list and marks the quoted fields.
fn link(tokens: Vec<Token>) -> Result<Vec<Op>, TokError> {
    let mut has = (false, false);
    for w in tokens.windows(2) {
        if let [(Op::Field { .. }, ..), (Op::Field { .. }, at, len)] = w {
            return Err((
                *at,
                *len,
                "two fields with nothing between them cannot be told apart".to_string(),
            ));
        }
    }
    let end = tokens.last().map_or(0, |t| t.1 + t.2);
    let mut ops: Vec<Op> = Vec::with_capacity(tokens.len());
    for (k, (op, ..)) in tokens.iter().enumerate() {
        let op = match op {
            Op::Field { field, .. } => {
                match field {
                    Field::Status => has.0 = true,
                    Field::Request | Field::Target | Field::Path => has.1 = true,
                    _ => {}
                }
                let opens =
                    k > 0 && matches!(&tokens[k - 1].0, Op::Literal(l) if l.last() == Some(&b'"'));
                let closes = matches!(tokens.get(k + 1), Some((Op::Literal(l), ..)) if l.first() == Some(&b'"'));
                Op::Field {
                    field: *field,
                    quoted: opens && closes,
                }
            }
            lit => lit.clone(),
        };
        ops.push(op);
    }
    if !has.0 {
        return Err((end, 1, "the format has no status field".to_string()));
    }
    if !has.1 {
        return Err((
            end,
            1,
            "the format has no request or path field".to_string(),
        ));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(f: &AccessFormat, line: &'a [u8]) -> Record<'a> {
        match f.parse(line) {
            Ok(Parsed::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    const NGINX: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time"#;
    const APACHE: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %D"#;

    #[test]
    fn nginx_format_reads_request_time_in_seconds() {
        let f = AccessFormat::new(NGINX).expect("compiles");
        let r = req(
            &f,
            br#"10.0.0.1 - - [01/Mar/2024:12:00:00 +0000] "GET /a?x=1 HTTP/1.1" 200 512 "https://ex.com/p" "Mozilla/5.0 (X11) \"q\"" 0.250"#,
        );
        assert_eq!(&*r.ip, b"10.0.0.1");
        assert_eq!(&*r.target, b"/a?x=1");
        assert_eq!(r.status, 200);
        assert_eq!(r.bytes, Some(512));
        assert_eq!(&*r.referer, b"https://ex.com/p");
        assert_eq!(&*r.agent, br#"Mozilla/5.0 (X11) \"q\""#);
        assert_eq!(r.latency_us, Some(250_000));
        assert_eq!(r.ts, parse_clf(b"01/Mar/2024:12:00:00 +0000"));
    }

    #[test]
    fn apache_format_reads_microseconds_and_dash_bytes() {
        let f = AccessFormat::new(APACHE).expect("compiles");
        let r = req(
            &f,
            br#"::1 - frank [01/Mar/2024:12:00:00 -0700] "POST /api HTTP/1.1" 304 - "-" "curl/8" 1234"#,
        );
        assert_eq!(r.latency_us, Some(1234));
        assert_eq!(r.bytes, Some(0));
        assert_eq!(r.ts, parse_clf(b"01/Mar/2024:12:00:00 -0700"));
        assert_eq!(&*r.agent, b"curl/8");
    }

    #[test]
    fn vhost_preset_reads_the_host_before_the_port() {
        let f = AccessFormat::preset("vhost-combined").expect("preset");
        let r = req(
            &f,
            br#"www.example.com:443 1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 9 "-" "x""#,
        );
        assert_eq!(&*r.vhost, b"www.example.com");
        assert_eq!(&*r.ip, b"1.2.3.4");
        assert_eq!(r.bytes, Some(9));
    }

    #[test]
    fn other_fields_are_skipped_and_time_variants_read() {
        let f = AccessFormat::new(
            "$time_iso8601 $host $upstream_cache_status $request_method $request_uri $status $my_mapped_var ${request_time}s",
        )
        .expect("compiles");
        let r = req(
            &f,
            b"2024-03-01T12:00:00+00:00 shop.example HIT GET /cart?id=7 502 whatever 1.5s",
        );
        assert_eq!(r.ts, Some(1_709_294_400));
        assert_eq!(&*r.vhost, b"shop.example");
        assert_eq!(&*r.target, b"/cart?id=7");
        assert_eq!(r.latency_us, Some(1_500_000));
        let a = AccessFormat::new(r#"%a %{%d/%b}t %400,501{X-Trace}i %m %U %s %{ms}T"#)
            .expect("compiles");
        let r = req(&a, b"1.2.3.4 01/Mar x GET /p 200 12");
        assert_eq!(&*r.target, b"/p");
        assert_eq!(r.latency_us, Some(12_000));
        assert_eq!(r.ts, None);
    }

    #[test]
    fn lines_that_do_not_fit_the_format_are_malformed() {
        let f = AccessFormat::new(NGINX).expect("compiles");
        assert!(f.parse(b"garbage").is_err());
        assert!(
            f.parse(
                br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "GET / HTTP/1.1" 2x0 1 "-" "-" 0.1"#
            )
            .is_err()
        );
        assert!(
            f.parse(br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "GET / HT"#)
                .is_err()
        );
        // An unreadable response time is left out, not malformed.
        let r = req(
            &f,
            br#"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-" -"#,
        );
        assert_eq!(r.latency_us, None);
    }

    #[test]
    fn errors_point_at_the_token() {
        let cases: [(&str, usize, &str); 7] = [
            ("%h %t \"%r\" %>s %Z", 15, "unknown Apache directive %Z"),
            ("%h %{Referer \"%r\" %s", 3, "unterminated %{"),
            (
                "$remote_addr $ \"$request\" $status",
                13,
                "`$` is not followed",
            ),
            ("$remote_addr ${status \"$request\"", 13, "unterminated ${"),
            (
                "$remote_addr$remote_user \"$request\" $status",
                12,
                "two fields",
            ),
            (
                "$remote_addr \"$request\"",
                23,
                "the format has no status field",
            ),
            ("%h %>s %", 7, "`%` ends the format"),
        ];
        for (format, at, what) in cases {
            let e = AccessFormat::new(format).expect_err(format);
            assert_eq!(e.offset(), at, "{format}: {e}");
            assert!(e.reason().starts_with(what), "{format}: {e}");
            let text = e.to_string();
            let caret_line = text.lines().last().expect("caret line");
            assert_eq!(caret_line.find('^'), Some(2 + at), "{text}");
        }
        let e = AccessFormat::new("apache:%Q %s %r").expect_err("forced syntax");
        assert_eq!(e.offset(), 7);
    }
}
