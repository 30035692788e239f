//! File names: taken from `Content-Disposition` or the URL path, then made safe to use as a
//! single path component inside the output directory.

use std::borrow::Cow;

use url::Url;

/// Used when neither the URL nor the server gives a usable name.
const FALLBACK: &str = "download";
/// Longest name kept, in bytes (most file systems allow 255; room is left for " (N)" and ".part").
const MAX_LEN: usize = 200;

/// The name the URL's last path segment gives, sanitised.
pub(crate) fn from_url(url: &Url) -> String {
    let last = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or("");
    sanitize(&percent_encoding::percent_decode_str(last).decode_utf8_lossy())
}

/// The name a `Content-Disposition` header value gives, sanitised; `None` when it has none.
/// `filename*` (RFC 5987/6266, UTF-8 or ISO-8859-1) wins over `filename`.
pub(crate) fn from_content_disposition(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for (key, val) in params(value) {
        if key.eq_ignore_ascii_case("filename*") {
            extended = decode_ext_value(&val);
        } else if key.eq_ignore_ascii_case("filename") {
            plain = Some(val.into_owned());
        }
    }
    let name = sanitize(&extended.or(plain)?);
    (name != FALLBACK).then_some(name)
}

/// Whether `c` changes how the text around it is shown without being seen itself: bidi
/// embeddings, overrides and isolates (`invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`),
/// zero-width characters, the byte order mark, invisible operators and fillers, tag characters.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Makes `raw` a safe single path component: no separators, no control, bidi or invisible
/// characters, no leading dot (so no `..`, no hidden files), no characters Windows forbids, at
/// most [`MAX_LEN`] bytes, never empty, never ending in `.part` (our partial files).
pub(crate) fn sanitize(raw: &str) -> String {
    // A server may send a path; only its last component is a name.
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let mut name: String = last
        .chars()
        .map(|c| match c {
            c if c.is_control() || is_invisible(c) => '_',
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    if name.len() > MAX_LEN {
        let mut cut = MAX_LEN;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    // No leading dot or space (no `..`, no hidden file, no name that looks blank-prefixed),
    // no trailing dot or space (Windows drops them).
    let edge = |c: char| c == '.' || c.is_whitespace();
    let trimmed = name.trim_start_matches(edge).trim_end_matches(edge);
    if trimmed.len() != name.len() {
        name = trimmed.to_owned();
    }
    if name.is_empty() {
        return FALLBACK.to_owned();
    }
    if name.ends_with(".part") || name.ends_with(".part.meta") {
        name.push('_');
    }
    name
}

/// The `n`th alternative for a taken `name`: `file (n).ext` (n >= 1).
pub(crate) fn numbered(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Splits `disposition-type; key=value; key="quoted value"` into its parameters.
fn params(value: &str) -> Vec<(String, Cow<'_, str>)> {
    let mut out = Vec::new();
    let mut rest = match value.find(';') {
        Some(at) => &value[at + 1..],
        None => return out,
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_owned();
        rest = rest[eq + 1..].trim_start();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            val.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => val.push(c),
                }
            }
            out.push((key, Cow::Owned(val)));
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            out.push((key, Cow::Borrowed(rest[..end].trim())));
            rest = &rest[end..];
        }
    }
    out
}

/// Decodes an RFC 5987 `charset'lang'percent-encoded` value.
fn decode_ext_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?;
    let _lang = parts.next()?;
    let encoded = parts.next()?;
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
    if charset.eq_ignore_ascii_case("utf-8") {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&b| b as char).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_empty_names_are_neutralised() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize(".."), FALLBACK);
        assert_eq!(sanitize(""), FALLBACK);
        assert_eq!(sanitize("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize(".bashrc"), "bashrc");
        assert_eq!(sanitize("a\0b\nc"), "a_b_c");
        assert_eq!(sanitize("x.part"), "x.part_");
        assert!(sanitize(&"é".repeat(300)).len() <= MAX_LEN);
    }

    #[test]
    fn bidi_and_invisible_characters_are_replaced() {
        assert_eq!(sanitize("invoice\u{202E}fdp.exe"), "invoice_fdp.exe");
        assert_eq!(sanitize("a\u{2066}b\u{2069}c"), "a_b_c");
        assert_eq!(sanitize("\u{FEFF}report.pdf"), "_report.pdf");
        assert_eq!(sanitize("zero\u{200B}width\u{200D}.txt"), "zero_width_.txt");
        assert_eq!(sanitize("tag\u{E0041}.txt"), "tag_.txt");
        assert_eq!(
            from_content_disposition("attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe")
                .as_deref(),
            Some("invoice_fdp.exe")
        );
        // Visible non-ASCII stays.
        assert_eq!(sanitize("été 日本.txt"), "été 日本.txt");
    }

    #[test]
    fn url_names_are_decoded_last_segments() {
        let url = Url::parse("http://h/dir/my%20file.tar.gz?x=1").unwrap();
        assert_eq!(from_url(&url), "my file.tar.gz");
        assert_eq!(from_url(&Url::parse("http://h/").unwrap()), FALLBACK);
        let url = Url::parse("http://h/a/%2e%2e%2fsecret").unwrap();
        assert_eq!(from_url(&url), "secret");
    }

    #[test]
    fn content_disposition_forms() {
        let cd = from_content_disposition;
        assert_eq!(
            cd("attachment; filename=\"r e.pdf\"").as_deref(),
            Some("r e.pdf")
        );
        assert_eq!(
            cd("attachment; filename=plain.txt").as_deref(),
            Some("plain.txt")
        );
        assert_eq!(
            cd("attachment; filename=\"a.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt").as_deref(),
            Some("été.txt")
        );
        assert_eq!(
            cd("attachment; filename=\"..\\/x\\\"y\"").as_deref(),
            Some("x_y")
        );
        assert_eq!(cd("attachment; filename=\"../..\""), None);
        assert_eq!(cd("inline"), None);
    }

    #[test]
    fn numbered_keeps_extension() {
        assert_eq!(numbered("a.tar.gz", 2), "a.tar (2).gz");
        assert_eq!(numbered("README", 1), "README (1)");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// The promises of [`sanitize`], for any input.
        fn assert_safe(name: &str) {
            assert!(!name.is_empty());
            assert!(name.len() <= MAX_LEN, "{} bytes", name.len());
            assert!(!name.contains(['/', '\\']), "{name:?}");
            assert!(!name.starts_with('.'), "{name:?}");
            assert!(name != "..");
            assert!(
                !name.chars().any(|c| c.is_control() || is_invisible(c)),
                "{name:?}"
            );
            assert!(!name.ends_with(".part") && !name.ends_with(".part.meta"));
        }

        /// Text with the characters hostile names are made of.
        fn hostile() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just("/".to_owned()),
                    Just("\\".to_owned()),
                    Just("..".to_owned()),
                    Just(".".to_owned()),
                    Just("%2F".to_owned()),
                    Just(".part".to_owned()),
                    Just("\u{202E}".to_owned()),
                    Just("\u{200B}".to_owned()),
                    Just("\u{FEFF}".to_owned()),
                    Just(" ".to_owned()),
                    Just("\"".to_owned()),
                    Just(";".to_owned()),
                    Just("'".to_owned()),
                    any::<char>().prop_map(String::from),
                    "[a-z]{1,8}",
                ],
                0..20,
            )
            .prop_map(|parts| parts.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn sanitized_names_are_always_safe(raw in hostile()) {
                assert_safe(&sanitize(&raw));
            }

            #[test]
            fn sanitizing_twice_changes_nothing(raw in hostile()) {
                let once = sanitize(&raw);
                prop_assert_eq!(sanitize(&once), once);
            }

            #[test]
            fn content_disposition_names_are_safe(value in hostile(), ext in hostile()) {
                for header in [
                    format!("attachment; filename=\"{value}\""),
                    format!("attachment; filename={value}"),
                    format!("attachment; filename*=UTF-8''{ext}; filename=\"{value}\""),
                    format!("inline;{value}={ext}"),
                    value.clone(),
                ] {
                    if let Some(name) = from_content_disposition(&header) {
                        assert_safe(&name);
                    }
                }
            }

            #[test]
            fn url_names_are_safe(path in hostile()) {
                if let Ok(url) = Url::parse(&format!("http://h.test/{path}")) {
                    assert_safe(&from_url(&url));
                }
            }
        }
    }
}
