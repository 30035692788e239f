//! Regression tests for bugs of the log analyzer found on real logs: each test names the
//! behaviour that was broken.

use std::io::{Read, Write};

use weft_core::context::Context;
use weft_logs::{Input, Options, Report, analyze};

async fn run(inputs: Vec<Input>) -> Report {
    analyze(&Context::background(), inputs, Options::default())
        .await
        .expect("analysis")
}

fn kv_lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        writeln!(
            out,
            "2024-03-01 12:{:02}:{:02} level=info ip=10.0.{}.{} path=\"/p/{}\" status=200 time={}ms",
            i / 60 % 60,
            i % 60,
            i / 250 % 250,
            i % 250 + 1,
            i % 97,
            i % 1000 + 1
        )
        .expect("write to a Vec");
    }
    out
}

#[tokio::test]
async fn a_truncated_gzip_file_keeps_every_complete_line_before_the_cut() {
    let plain = kv_lines(100_000);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&plain).expect("gzip");
    let mut gz = enc.finish().expect("gzip");
    gz.truncate(gz.len() * 9 / 10);
    // What a careful reader (zcat) recovers: the bytes decoded before the error, cut at the
    // last newline.
    let mut decoded = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(&gz[..]);
    let mut buf = [0u8; 8192];
    loop {
        match dec.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => decoded.extend_from_slice(&buf[..n]),
        }
    }
    let complete = decoded.iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(complete > 80_000, "the cut is near the end: {complete}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cut.log.gz");
    std::fs::write(&path, &gz).expect("write");
    let r = run(vec![Input::Path(path)]).await;
    assert_eq!(r.lines, complete, "every complete line before the cut");
    assert_eq!(r.requests, complete);
    assert_eq!(r.malformed_lines, 0, "the cut-off last line is not counted");
    let input = &r.inputs[0];
    assert!(input.gzip);
    assert!(
        input.error.is_some(),
        "the truncation is reported: {input:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn directory_walks_include_rotated_and_symlinked_logs_and_detect_loops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let line = kv_lines(1);
    std::fs::write(logs.join("access.log.1"), &line).expect("write");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&line).expect("gzip");
    std::fs::write(logs.join("app.log.2.gz"), enc.finish().expect("gzip")).expect("write");
    std::fs::write(logs.join("notes.md"), "not a log\n").expect("write");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    std::fs::write(elsewhere.join("current.log"), &line).expect("write");
    std::os::unix::fs::symlink(elsewhere.join("current.log"), logs.join("linked.log"))
        .expect("symlink");
    std::os::unix::fs::symlink(&logs, logs.join("loop")).expect("symlink");

    let r = run(vec![Input::Path(logs.clone())]).await;
    let names: Vec<&str> = r
        .inputs
        .iter()
        .map(|i| i.name.rsplit('/').next().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["access.log.1", "app.log.2.gz", "linked.log", "loop"],
        "{r:#?}"
    );
    assert_eq!(r.requests, 3, "the rotated, compressed and linked files");
    let looped = r.inputs[3].error.as_deref().unwrap_or_default();
    assert!(looped.contains("loop"), "the loop is said: {looped}");

    // A directory holding nothing to read says so, instead of "inputs: 0".
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    std::fs::write(empty.join("readme.md"), "x\n").expect("write");
    let r = run(vec![Input::Path(empty)]).await;
    assert_eq!(r.inputs.len(), 1);
    let err = r.inputs[0].error.as_deref().unwrap_or_default();
    assert!(err.contains("no log files"), "{err}");
}

#[tokio::test]
async fn control_characters_from_the_input_never_reach_the_terminal() {
    let log = "2024-03-01 12:00:00 ip=\"\x1b[31mevil\" path=\"/a\x1b]0;owned\x07\" status=200\n\
               \x1b[2Jgarbage\u{9b}\n";
    let r = run(vec![Input::Bytes {
        name: "in\x1bput".into(),
        data: log.into(),
    }])
    .await;
    let text = r.to_string();
    for c in ['\x1b', '\x07', '\u{9b}'] {
        assert!(!text.contains(c), "{c:?} in:\n{text}");
    }
    assert!(text.contains(r"/a\x1b]0;owned\x07"), "{text}");
    assert!(text.contains(r"\x1b[31mevil"), "{text}");
    assert!(text.contains(r"\x1b[2Jgarbage\x9b"), "{text}");
    // The JSON report keeps the text as it was (serde escapes it).
    assert_eq!(r.top_paths[0].path, "/a\x1b]0;owned\x07");
}

#[tokio::test]
async fn out_of_range_values_are_malformed_with_their_reason() {
    let log = format!(
        "2024-03-01 12:00:00 path=/ok status=200 time=5ms\n\
         2024-03-01 12:00:01 path=/slow status=200 time=99999999999s\n\
         {{\"ts\":{max},\"path\":\"/j\",\"status\":200}}\n\
         {{\"ts\":{min},\"path\":\"/j\",\"status\":200}}\n\
         {{\"ts\":1709294400,\"path\":\"/j\",\"status\":200,\"time_ms\":1e300}}\n",
        max = i64::MAX,
        min = i64::MIN,
    );
    let mut kv = Vec::new();
    let mut json = Vec::new();
    for l in log.lines() {
        let to = if l.starts_with('{') {
            &mut json
        } else {
            &mut kv
        };
        writeln!(to, "{l}").expect("write to a Vec");
    }
    let r = run(vec![
        Input::Bytes {
            name: "a.log".into(),
            data: kv,
        },
        Input::Bytes {
            name: "b.jsonl".into(),
            data: json,
        },
    ])
    .await;
    assert_eq!((r.requests, r.malformed_lines), (1, 4), "{r:#?}");
    let l = r.latency.as_ref().expect("latency");
    assert_eq!(l.avg_ms, 5.0, "the huge time does not reach the average");
    let reasons: Vec<(&str, u64)> = r
        .malformed_reasons
        .iter()
        .map(|m| (m.reason.as_str(), m.count))
        .collect();
    assert_eq!(
        reasons,
        [
            ("response time out of range (over 12 days)", 2),
            ("timestamp out of range (1970 to 9999)", 2)
        ]
    );
    let first = r.requests_per_minute.as_ref().expect("rate");
    assert!(first.first.starts_with("2024-03-01"), "{first:?}");
    let text = r.to_string();
    assert!(text.contains("timestamp out of range"), "{text}");
}
