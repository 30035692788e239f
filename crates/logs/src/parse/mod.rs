//! Line parsers for the three input formats, on bytes, without allocating.
//!
//! Each parser turns one line (without its newline) into a [`Parsed`] borrowing from the line:
//! a request, a well-formed line that is not a request, or a malformed line with the reason.

mod combined;
mod custom;
mod json;
mod kv;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::LogsError;
pub(crate) use super::time::TsCache;
pub use custom::{AccessFormat, FormatError, FormatSyntax};

/// An input format. `weft logs` detects it per file unless one is forced.
///
/// ```
/// use weft_logs::LogFormat;
/// assert_eq!("combined".parse::<LogFormat>().unwrap(), LogFormat::Combined);
/// assert_eq!(LogFormat::detect(b"{\"status\":200}\n"), Some(LogFormat::Json));
/// assert_eq!(LogFormat::Kv.to_string(), "kv");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// `2024-03-01 12:00:00 level=info ip=10.1.2.3 path="/api/x" status=200 time=12ms msg="..."`:
    /// a timestamp, then `key=value` pairs (values may be double-quoted, with `\"` escapes).
    /// Keys read: `level`, `ip` (or `client`, `remote_addr`), `path` (or `uri`), `status`,
    /// `time` (or `duration`, `latency`; a number with unit `ns`, `us`, `µs`, `ms`, `s`, `m`;
    /// no unit means milliseconds); for the panels, `bytes` (or `size`), `referer` (or
    /// `referrer`), `ua` (or `agent`, `user_agent`) and `host` (or `vhost`). Other keys are
    /// ignored.
    Kv,
    /// The Apache/nginx Combined Log Format (and the Common Log Format, its prefix), optionally
    /// followed by a response time: a decimal number is seconds (nginx `$request_time`), an
    /// integer is microseconds (Apache `%D`). Bytes, referrer and user agent are read for the
    /// panels.
    Combined,
    /// JSON lines: one object per line with top-level fields `ts`/`timestamp`/`time`/`@timestamp`
    /// (RFC 3339 text or Unix seconds/milliseconds), `level`/`severity`, `ip`/`remote_addr`/
    /// `client_ip`, `path`/`uri`/`url`/`request_uri`, `status`/`status_code` (number or text),
    /// and the latency as `duration_ms`/`time_ms`/`latency_ms`/`response_time_ms` (milliseconds)
    /// or `request_time` (seconds); for the panels, `bytes`/`body_bytes_sent`/`bytes_sent`/
    /// `size`, `referer`/`referrer`/`http_referer`, `user_agent`/`http_user_agent`/`ua` and
    /// `host`/`vhost`/`server_name`.
    Json,
    /// An access log in the layout of an nginx `log_format` or Apache `LogFormat` string (see
    /// [`AccessFormat`]); set with [`Options::set_log_format`](crate::Options::set_log_format).
    /// Never detected.
    Custom,
}

impl LogFormat {
    /// Guesses the format from the first lines of `sample`: the first non-empty line that looks
    /// like one of the formats decides. Returns `None` if none of the first 64 lines does.
    #[must_use]
    pub fn detect(sample: &[u8]) -> Option<LogFormat> {
        sample
            .split(|&b| b == b'\n')
            .map(trim_line)
            .filter(|l| !l.is_empty())
            .take(64)
            .find_map(detect_line)
    }

    fn name(self) -> &'static str {
        match self {
            LogFormat::Kv => "kv",
            LogFormat::Combined => "combined",
            LogFormat::Json => "json",
            LogFormat::Custom => "custom",
        }
    }
}

fn detect_line(line: &[u8]) -> Option<LogFormat> {
    if line.first() == Some(&b'{') {
        return Some(LogFormat::Json);
    }
    if super::time::parse_datetime_prefix(line).is_some() && memchr::memchr(b'=', line).is_some() {
        return Some(LogFormat::Kv);
    }
    if memchr::memmem::find(line, b"] \"").is_some() && memchr::memchr(b'[', line).is_some() {
        return Some(LogFormat::Combined);
    }
    None
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LogFormat {
    type Err = LogsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "kv" | "keyvalue" | "logfmt" => Ok(LogFormat::Kv),
            "combined" | "clf" | "common" | "apache" | "nginx" => Ok(LogFormat::Combined),
            "json" | "jsonl" => Ok(LogFormat::Json),
            _ => Err(LogsError::InvalidArgument(format!(
                "unknown log format {s:?} (expected kv, combined or json)"
            ))),
        }
    }
}

/// A log level, ordered from least to most severe.
///
/// ```
/// use weft_logs::Level;
/// assert!(Level::Warn > Level::Info);
/// assert_eq!("WARNING".parse::<Level>().unwrap(), Level::Warn);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Level {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info` (also `notice`).
    Info,
    /// `warn` (also `warning`).
    Warn,
    /// `error` (also `err`).
    Error,
    /// `fatal` (also `critical`, `crit`, `panic`, `alert`, `emerg`).
    Fatal,
}

impl Level {
    /// Parses a level name, ignoring ASCII case.
    pub(crate) fn from_bytes(b: &[u8]) -> Option<Level> {
        // The usual spellings first, without copying.
        match b.len() {
            4 if b == b"info" => return Some(Level::Info),
            4 if b == b"warn" => return Some(Level::Warn),
            5 if b == b"error" => return Some(Level::Error),
            5 if b == b"debug" => return Some(Level::Debug),
            _ => {}
        }
        let mut buf = [0u8; 8];
        if b.len() > buf.len() {
            return None;
        }
        for (d, s) in buf.iter_mut().zip(b) {
            *d = s.to_ascii_lowercase();
        }
        Some(match &buf[..b.len()] {
            b"trace" => Level::Trace,
            b"debug" => Level::Debug,
            b"info" | b"notice" => Level::Info,
            b"warn" | b"warning" => Level::Warn,
            b"error" | b"err" => Level::Error,
            b"fatal" | b"critical" | b"crit" | b"panic" | b"alert" | b"emerg" => Level::Fatal,
            _ => return None,
        })
    }

    /// The level of a request whose line names none: 5xx is an error, 4xx a warning, else info.
    pub(crate) fn from_status(status: u16) -> Level {
        match status {
            500.. => Level::Error,
            400..500 => Level::Warn,
            _ => Level::Info,
        }
    }
}

impl FromStr for Level {
    type Err = LogsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::from_bytes(s.as_bytes()).ok_or_else(|| {
            LogsError::InvalidArgument(format!(
                "unknown level {s:?} (expected trace, debug, info, warn, error or fatal)"
            ))
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        })
    }
}

/// One request, borrowed from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// Unix seconds (UTC), when the line has a usable timestamp.
    pub(crate) ts: Option<i64>,
    /// The level the line names, or the one derived from its status.
    pub(crate) level: Level,
    /// Client address as written (empty when absent). Owned only when a JSON string had escapes.
    pub(crate) ip: Cow<'a, [u8]>,
    /// Request target as written, query string included.
    pub(crate) target: Cow<'a, [u8]>,
    pub(crate) status: u16,
    /// Response time in microseconds, when the line has one.
    pub(crate) latency_us: Option<u64>,
    /// Response bytes, when the line has them (`-` is 0).
    pub(crate) bytes: Option<u64>,
    /// The `Referer` header as written (empty when absent).
    pub(crate) referer: Cow<'a, [u8]>,
    /// The `User-Agent` header as written (empty when absent).
    pub(crate) agent: Cow<'a, [u8]>,
    /// The virtual host (empty when absent).
    pub(crate) vhost: Cow<'a, [u8]>,
}

impl Record<'_> {
    /// The target without its query string: the key requests are grouped by.
    pub(crate) fn path(&self) -> &[u8] {
        &self.target[..find2(&self.target, 0, b'?', b'?')]
    }
}

/// What one line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    Request(Record<'a>),
    /// A well-formed line without request fields (an application message).
    Other,
}

/// Why a line could not be parsed.
pub(crate) type Malformed = &'static str;

/// Parses one line (no newline; a trailing `\r` is already removed).
/// `cache` remembers the last timestamp's minute (lines mostly share it); `custom` is the
/// compiled format of [`LogFormat::Custom`].
pub(crate) fn parse_line<'a>(
    format: LogFormat,
    custom: Option<&AccessFormat>,
    line: &'a [u8],
    cache: &mut TsCache,
) -> Result<Parsed<'a>, Malformed> {
    match format {
        LogFormat::Kv => kv::parse(line, cache),
        LogFormat::Combined => combined::parse(line),
        LogFormat::Json => json::parse(line),
        LogFormat::Custom => match custom {
            Some(f) => f.parse(line),
            None => Err("no custom log format was given"),
        },
    }
}

/// Strips a trailing `\r` and surrounding ASCII spaces and tabs.
pub(crate) fn trim_line(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let [rest @ .., b'\r' | b' ' | b'\t'] = l {
        l = rest;
    }
    while let [b' ' | b'\t', rest @ ..] = l {
        l = rest;
    }
    l
}

/// Index of the first byte equal to `a` or `b` in `hay[i..]`, or `hay.len()`.
///
/// Eight bytes at a time (SWAR): the fields searched are 5 to 30 bytes long, where memchr's
/// per-call set-up costs more than the search. `(x - 0x01..) & !x & 0x80..` flags the zero bytes
/// of `x`; the lowest flag is always exact, which is the one used.
#[inline]
pub(crate) fn find2(hay: &[u8], mut i: usize, a: u8, b: u8) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let (pa, pb) = (LO * u64::from(a), LO * u64::from(b));
    while i + 8 <= hay.len() {
        let Ok(word) = <[u8; 8]>::try_from(&hay[i..i + 8]) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let (xa, xb) = (w ^ pa, w ^ pb);
        let z = (xa.wrapping_sub(LO) & !xa & HI) | (xb.wrapping_sub(LO) & !xb & HI);
        if z != 0 {
            return i + (z.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < hay.len() {
        if hay[i] == a || hay[i] == b {
            return i;
        }
        i += 1;
    }
    hay.len()
}

/// Parses a 3-digit HTTP status (100..=999).
fn parse_status(b: &[u8]) -> Option<u16> {
    match b {
        [a @ b'1'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// Parses `123`, `12.5` and an optional unit (`ns`, `us`, `µs`, `ms`, `s`, `m`) into
/// microseconds; `default_us_per_unit` scales a number without a unit.
fn parse_duration_us(b: &[u8], default_us_per_unit: u64) -> Option<u64> {
    let mut i = 0;
    let mut int: u64 = 0;
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        int = int.saturating_mul(10).saturating_add(u64::from(c - b'0'));
        i += 1;
    }
    if i == 0 {
        return None;
    }
    // Fraction kept as an integer numerator over 10^frac_digits (up to 9 digits: nanoseconds).
    let (mut frac, mut frac_den) = (0u64, 1u64);
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if frac_den < 1_000_000_000 {
                frac = frac * 10 + u64::from(c - b'0');
                frac_den *= 10;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    // Units as (numerator, denominator) microseconds, so nanoseconds need no float.
    let (num, den) = match &b[i..] {
        b"" => (default_us_per_unit, 1),
        b"ns" => (1, 1000),
        b"us" | b"\xc2\xb5s" => (1, 1),
        b"ms" => (1000, 1),
        b"s" => (1_000_000, 1),
        b"m" => (60_000_000, 1),
        _ => return None,
    };
    // Integers in ms/s/us (the usual case) take no division.
    let whole = if den == 1 {
        int.saturating_mul(num)
    } else {
        int.saturating_mul(num) / den
    };
    if frac_den == 1 {
        return Some(whole);
    }
    let part =
        (u128::from(frac) * u128::from(num) / (u128::from(frac_den) * u128::from(den))) as u64;
    Some(whole.saturating_add(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// No byte sequence makes a parser panic: random bytes, and valid lines of each format
        /// with random bytes spliced in.
        #[test]
        fn parsers_never_panic_on_any_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            cut in 0usize..200,
        ) {
            let lines: [&[u8]; 3] = [
                b"2024-03-01 12:00:00 level=info ip=10.1.2.3 path=\"/api/x?q=1\" status=200 time=12.5ms msg=\"ok\"",
                b"1.2.3.4 - - [01/Mar/2024:12:00:00 +0000] \"GET /a HTTP/1.1\" 200 5 \"-\" \"curl\" 0.250",
                b"{\"ts\":\"2024-03-01T12:00:00Z\",\"ip\":\"::1\",\"path\":\"/a\",\"status\":200,\"time_ms\":1.5}",
            ];
            let customs: Vec<AccessFormat> = AccessFormat::preset_names()
                .into_iter()
                .filter_map(AccessFormat::preset)
                .collect();
            for format in [LogFormat::Kv, LogFormat::Combined, LogFormat::Json] {
                let mut cache = TsCache::default();
                let _ = parse_line(format, None, trim_line(&bytes), &mut cache);
                for line in lines {
                    let at = cut.min(line.len());
                    let mut spliced = line[..at].to_vec();
                    spliced.extend_from_slice(&bytes);
                    spliced.extend_from_slice(&line[at..]);
                    let _ = parse_line(format, None, trim_line(&spliced), &mut cache);
                    let _ = parse_line(format, None, &line[..at], &mut cache);
                    for custom in &customs {
                        let _ = custom.parse(trim_line(&spliced));
                        let _ = custom.parse(&line[..at]);
                    }
                }
            }
            let _ = LogFormat::detect(&bytes);
        }
    }

    /// The presets read Combined lines exactly as the built-in parser does: `combined` and
    /// `common` on plain lines, `nginx-timed` on lines ending in `$request_time`.
    #[test]
    fn presets_equal_the_builtin_combined_parser() {
        let plain: &[&[u8]] = &[
            br#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
            br#"::1 - - [01/Mar/2024:00:00:01 +0100] "POST /api/x HTTP/2.0" 404 - "-" "curl/8 \"q\"""#,
            br#"10.0.0.9 - - [29/Feb/2024:23:59:59 +0000] "" 400 157 "-" "-""#,
            br#"h.example - u [01/Mar/2024:12:00:00 +0000] "GET / HTTP/1.1" 301 0 "https://a.example/?q=\"x\"" "Mozilla/5.0 (X11; Linux x86_64)""#,
        ];
        let combined = AccessFormat::preset("combined").expect("preset");
        let common = AccessFormat::preset("common").expect("preset");
        for line in plain {
            let builtin = combined::parse(line).expect("builtin parses");
            assert_eq!(
                combined.parse(line),
                Ok(builtin.clone()),
                "{}",
                String::from_utf8_lossy(line)
            );
            let Parsed::Request(mut b) = builtin else {
                panic!("a request")
            };
            let Ok(Parsed::Request(c)) = common.parse(line) else {
                panic!("common parses {line:?}")
            };
            (b.referer, b.agent) = (Cow::Borrowed(&b""[..]), Cow::Borrowed(&b""[..]));
            assert_eq!(c, b, "common is combined without the headers");
        }
        let timed = AccessFormat::preset("nginx-timed").expect("preset");
        let mut generated = Vec::new();
        crate::sample::Generator::new(LogFormat::Combined, 3)
            .write_lines(&mut generated, 300)
            .expect("in memory");
        let mut compared = 0;
        for line in generated.split(|&b| b == b'\n').map(trim_line) {
            if let Ok(builtin) = combined::parse(line) {
                assert_eq!(
                    timed.parse(line),
                    Ok(builtin),
                    "{}",
                    String::from_utf8_lossy(line)
                );
                compared += 1;
            }
        }
        assert!(compared > 250, "{compared}");
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration_us(b"12ms", 1000), Some(12_000));
        assert_eq!(parse_duration_us(b"12", 1000), Some(12_000));
        assert_eq!(parse_duration_us(b"1.5s", 1000), Some(1_500_000));
        assert_eq!(parse_duration_us(b"0.012", 1_000_000), Some(12_000));
        assert_eq!(parse_duration_us(b"250us", 1000), Some(250));
        assert_eq!(parse_duration_us("7µs".as_bytes(), 1000), Some(7));
        assert_eq!(parse_duration_us(b"1500ns", 1000), Some(1));
        assert_eq!(parse_duration_us(b"2m", 1000), Some(120_000_000));
        assert_eq!(parse_duration_us(b"12.ms", 1000), None);
        assert_eq!(parse_duration_us(b"ms", 1000), None);
        assert_eq!(parse_duration_us(b"12h", 1000), None);
        assert_eq!(
            parse_duration_us(b"99999999999999999999999s", 1000),
            Some(u64::MAX)
        );
    }

    #[test]
    fn find2_finds_the_first_of_two_bytes_at_any_offset() {
        for len in 0..40 {
            for pos in 0..=len {
                let mut hay = vec![b'x'; len];
                if pos < len {
                    hay[pos] = if pos % 2 == 0 { b'=' } else { b' ' };
                }
                for from in 0..=pos.min(len) {
                    assert_eq!(find2(&hay, from, b'=', b' '), pos, "len {len} pos {pos}");
                }
            }
        }
        // Bytes with the high bit set do not fool the word test.
        assert_eq!(
            find2(b"\xff\x80\xa0\xbd=\xff\xff\xff\xff", 0, b'=', b' '),
            4
        );
    }

    #[test]
    fn status_is_three_digits() {
        assert_eq!(parse_status(b"200"), Some(200));
        assert_eq!(parse_status(b"099"), None);
        assert_eq!(parse_status(b"2000"), None);
        assert_eq!(parse_status(b"20x"), None);
    }

    #[test]
    fn detection_per_format() {
        let kv = b"2024-03-01 12:00:00 level=info ip=1.2.3.4 path=\"/\" status=200\n";
        let clf = b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2\n";
        assert_eq!(LogFormat::detect(kv), Some(LogFormat::Kv));
        assert_eq!(LogFormat::detect(clf), Some(LogFormat::Combined));
        assert_eq!(
            LogFormat::detect(b"\n\n  {\"a\":1}\n"),
            Some(LogFormat::Json)
        );
        assert_eq!(LogFormat::detect(b"hello\nworld\n"), None);
    }

    #[test]
    fn levels_and_trimming() {
        assert_eq!(Level::from_bytes(b"ERROR"), Some(Level::Error));
        assert_eq!(Level::from_bytes(b"verbose!!"), None);
        assert_eq!(Level::from_status(503), Level::Error);
        assert_eq!(Level::from_status(404), Level::Warn);
        assert_eq!(Level::from_status(302), Level::Info);
        assert_eq!(trim_line(b"  abc \r"), b"abc");
    }
}
