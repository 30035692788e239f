//! The log analyzer through its library API: formats, malformed input, filters, percentiles,
//! ordering, gzip, directories, HTML, cancellation, and the pipeline the analysis runs on.

use std::io::{self, Read, Write};
use std::time::Duration;

use weft_core::context::Context;
use weft_logs::sample::Generator;
use weft_logs::{
    Input, Level, LogFormat, LogsError, Options, Progress, Report, analyze, parse_status_ranges,
    parse_time, render_html,
};

fn bytes(name: &str, data: impl Into<Vec<u8>>) -> Input {
    Input::Bytes {
        name: name.into(),
        data: data.into(),
    }
}

async fn run(inputs: Vec<Input>, options: Options) -> Report {
    analyze(&Context::background(), inputs, options)
        .await
        .expect("analysis")
}

/// The line counters always add up.
fn assert_accounted(r: &Report) {
    assert_eq!(
        r.lines,
        r.blank_lines + r.other_lines + r.malformed_lines + r.filtered_out + r.requests,
        "{r:#?}"
    );
}

fn kv(sec: u32, level: &str, ip: &str, path: &str, status: u16, ms: u64) -> String {
    format!(
        "2024-03-01 12:{:02}:{:02} level={level} ip={ip} path=\"{path}\" status={status} time={ms}ms msg=\"m\"\n",
        sec / 60,
        sec % 60
    )
}

#[tokio::test]
async fn kv_format_counts_everything_the_report_lists() {
    let mut log = String::new();
    log += &kv(0, "info", "10.0.0.1", "/a?x=1", 200, 10);
    log += &kv(30, "info", "10.0.0.2", "/a", 200, 20);
    log += &kv(61, "warn", "10.0.0.1", "/b", 404, 600);
    log += &kv(62, "error", "10.0.0.3", "/b", 503, 900);
    log += "2024-03-01 12:01:03 level=debug msg=\"cache refreshed\"\n";
    log += "\n";
    let r = run(vec![bytes("app.log", log)], Options::default()).await;
    assert_accounted(&r);
    assert_eq!(r.inputs[0].format, Some(LogFormat::Kv));
    assert!(r.inputs[0].detected);
    assert_eq!(
        (r.lines, r.requests, r.other_lines, r.blank_lines),
        (6, 4, 1, 1)
    );
    assert_eq!((r.errors, r.slow), (2, 2));
    assert!((r.error_share - 0.5).abs() < 1e-12);
    let l = r.latency.as_ref().expect("latency");
    assert_eq!((l.min_ms, l.max_ms, l.avg_ms), (10.0, 900.0, 382.5));
    let codes: Vec<(u16, u64)> = r.status_codes.iter().map(|s| (s.status, s.count)).collect();
    assert_eq!(codes, [(200, 2), (404, 1), (503, 1)]);
    // Query strings are grouped with their path; ties break by path.
    let paths: Vec<(&str, u64, u64)> = r
        .top_paths
        .iter()
        .map(|p| (p.path.as_str(), p.count, p.errors))
        .collect();
    assert_eq!(paths, [("/a", 2, 0), ("/b", 2, 2)]);
    assert_eq!(r.top_paths[0].avg_ms, Some(15.0));
    let ips: Vec<(&str, u64)> = r.top_ips.iter().map(|i| (i.ip.as_str(), i.count)).collect();
    assert_eq!(ips, [("10.0.0.1", 2), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
    let minutes: Vec<(&str, u64)> = r
        .per_minute
        .iter()
        .map(|m| (m.minute.as_str(), m.count))
        .collect();
    assert_eq!(
        minutes,
        [("2024-03-01T12:00:00Z", 2), ("2024-03-01T12:01:00Z", 2)]
    );
    let rate = r.requests_per_minute.as_ref().expect("rate");
    assert_eq!((rate.minutes, rate.peak, rate.average), (2, 2, 2.0));
    assert_eq!(
        rate.peak_minute, "2024-03-01T12:00:00Z",
        "earliest minute wins a tie"
    );
}

#[tokio::test]
async fn combined_format_with_and_without_response_times() {
    let log = concat!(
        "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\"\n",
        "10.0.0.9 - - [10/Oct/2000:13:56:01 -0700] \"POST /api/login HTTP/1.1\" 401 12 \"-\" \"curl/8.0\" 0.125\n",
        "10.0.0.9 - - [10/Oct/2000:13:56:02 -0700] \"GET /api/login?next=/ HTTP/1.1\" 500 0 \"-\" \"curl/8.0\" 1.500\n",
    );
    let r = run(vec![bytes("access.log", log)], Options::default()).await;
    assert_accounted(&r);
    assert_eq!(r.inputs[0].format, Some(LogFormat::Combined));
    assert_eq!(
        (r.requests, r.errors, r.slow, r.malformed_lines),
        (3, 2, 1, 0)
    );
    let l = r.latency.as_ref().expect("latency");
    assert_eq!((l.count, l.min_ms, l.max_ms), (2, 125.0, 1500.0));
    assert_eq!(r.top_paths[0].path, "/api/login");
    assert_eq!(r.top_paths[0].count, 2);
    assert_eq!(r.top_paths[1].avg_ms, None, "no response time in that line");
    // 13:55:36 -0700 is 20:55:36 UTC.
    assert_eq!(r.per_minute[0].minute, "2000-10-10T20:55:00Z");
}

#[tokio::test]
async fn json_lines_with_aliases_and_app_messages() {
    let log = concat!(
        "{\"ts\":\"2024-03-01T12:00:00Z\",\"level\":\"info\",\"ip\":\"::1\",\"path\":\"/j\",\"status\":200,\"time_ms\":5}\n",
        "{\"timestamp\":1709294460,\"remote_addr\":\"::2\",\"uri\":\"/j\",\"status_code\":\"502\",\"request_time\":0.75}\n",
        "{\"ts\":\"2024-03-01T12:00:01Z\",\"level\":\"info\",\"msg\":\"started\"}\n",
        "{\"ts\":\"2024-03-01T12:00:02Z\",\"path\":\"/j\",\"status\":200\n",
    );
    let r = run(vec![bytes("events.jsonl", log)], Options::default()).await;
    assert_accounted(&r);
    assert_eq!(r.inputs[0].format, Some(LogFormat::Json));
    assert_eq!((r.requests, r.errors, r.slow), (2, 1, 1));
    assert_eq!((r.other_lines, r.malformed_lines), (1, 1));
    assert_eq!(r.malformed_samples[0].line, Some(4));
    assert_eq!(r.latency.as_ref().map(|l| l.max_ms), Some(750.0));
}

#[tokio::test]
async fn malformed_truncated_invalid_utf8_and_huge_lines() {
    let mut log: Vec<u8> = Vec::new();
    log.extend(kv(0, "info", "1.1.1.1", "/ok", 200, 1).bytes());
    // 2: truncated in the middle of a field.
    log.extend_from_slice(b"2024-03-01 12:00:01 level=info ip=1.1.1.1 path=\"/tru\n");
    // 3: invalid UTF-8 in a free-text field: still a request.
    log.extend_from_slice(b"2024-03-01 12:00:02 path=/ok status=200 time=2ms msg=\"\xff\xfe\"\n");
    // 4: invalid UTF-8 in the path: a request, its path shown with replacement characters.
    log.extend_from_slice(b"2024-03-01 12:00:03 path=/caf\xe9 status=200 time=3ms\n");
    // 5: a 256 KiB line (longer than the 64 KiB chunks used, shorter than the maximum line
    // length): a request.
    log.extend_from_slice(b"2024-03-01 12:00:04 path=/huge status=200 time=4ms msg=\"");
    log.extend(std::iter::repeat_n(b'x', 256 << 10));
    log.extend_from_slice(b"\"\n");
    // 6: not a log line at all.
    log.extend_from_slice(b"\x00\x01 binary junk \xff\n");
    // 7: no newline at the end of the input.
    log.extend_from_slice(b"2024-03-01 12:00:05 path=/last status=201 time=5ms");
    let mut o = Options::default();
    o.chunk_size = 64 << 10;
    let r = run(vec![bytes("mixed.log", log.clone())], o).await;
    assert_accounted(&r);
    assert_eq!((r.lines, r.requests, r.malformed_lines), (7, 5, 2));
    let at: Vec<Option<u64>> = r.malformed_samples.iter().map(|s| s.line).collect();
    assert_eq!(at, [Some(2), Some(6)]);
    assert!(r.malformed_samples[1].text.contains('\u{fffd}'));
    assert!(r.top_paths.iter().any(|p| p.path == "/caf\u{fffd}"));
    assert!(r.top_paths.iter().any(|p| p.path == "/huge"));
    assert!(r.top_paths.iter().any(|p| p.path == "/last"));

    // With a 128 KiB limit the huge line is malformed, skipped, and the next lines still count.
    let mut o = Options::default();
    o.max_line = 128 << 10;
    o.chunk_size = 16 << 10;
    let r = run(vec![bytes("mixed.log", log)], o).await;
    assert_accounted(&r);
    assert_eq!((r.lines, r.requests, r.malformed_lines), (7, 4, 3));
    let reasons: Vec<&str> = r
        .malformed_samples
        .iter()
        .map(|s| s.reason.as_str())
        .collect();
    assert!(reasons[1].contains("longer than"), "{reasons:?}");
    assert_eq!(r.malformed_samples[1].line, Some(5));
    assert!(r.top_paths.iter().any(|p| p.path == "/last"));
}

#[tokio::test]
async fn filters_select_requests_and_count_the_rest() {
    let mut log = String::new();
    for i in 0..200u32 {
        let status = [200, 200, 301, 404, 500][i as usize % 5];
        let level = match status {
            500 => "error",
            404 => "warn",
            _ => "info",
        };
        let path = ["/api/v1/a", "/api/v2/b", "/web/c"][i as usize % 3];
        log += &kv(i, level, "1.1.1.1", path, status, u64::from(i));
    }
    let base = || vec![bytes("f.log", log.clone())];
    let expect = |pred: &dyn Fn(u32) -> bool| (0..200u32).filter(|&i| pred(i)).count() as u64;
    let status_of = |i: u32| [200, 200, 301, 404, 500][i as usize % 5];
    let path_of = |i: u32| ["/api/v1/a", "/api/v2/b", "/web/c"][i as usize % 3];

    let mut o = Options::default();
    o.min_level = Some(Level::Warn);
    let r = run(base(), o).await;
    assert_accounted(&r);
    assert_eq!(r.requests, expect(&|i| status_of(i) >= 404));
    assert_eq!(r.filtered_out, 200 - r.requests);

    let mut o = Options::default();
    o.path_contains = Some("/api/".into());
    assert_eq!(
        run(base(), o).await.requests,
        expect(&|i| path_of(i).contains("/api/"))
    );

    let mut o = Options::default();
    o.path_regex = Some(r"^/api/v2/".into());
    assert_eq!(
        run(base(), o).await.requests,
        expect(&|i| path_of(i) == "/api/v2/b")
    );

    let mut o = Options::default();
    o.status = parse_status_ranges("3xx,500-599").expect("ranges");
    assert_eq!(
        run(base(), o).await.requests,
        expect(&|i| matches!(status_of(i), 301 | 500))
    );

    let mut o = Options::default();
    o.since = Some(parse_time("2024-03-01 12:01").expect("time"));
    o.until = Some(parse_time("2024-03-01T12:02:30Z").expect("time"));
    let r = run(base(), o).await;
    assert_eq!(r.requests, expect(&|i| (60..150).contains(&i)));
    assert_eq!(r.per_minute.len(), 2);

    let mut o = Options::default();
    o.path_regex = Some("(".into());
    let err = analyze(&Context::background(), base(), o)
        .await
        .unwrap_err();
    assert!(matches!(err, LogsError::Regex(_)));
}

fn exact_quantile(sorted: &[u64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

#[tokio::test]
async fn percentiles_agree_with_an_exact_computation() {
    // Latencies with microsecond detail (`us` unit), spread over five orders of magnitude.
    let mut x: u64 = 42;
    let mut all = Vec::new();
    let mut per_path: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut log = String::new();
    for i in 0..10_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let us = (x % 10_000) * 10u64.pow((x >> 61) as u32 % 4) + 1;
        let p = (x >> 32) as usize % 2;
        all.push(us);
        per_path[p].push(us);
        log += &format!(
            "2024-03-01 12:00:{:02} path=/p{p} status=200 time={us}us\n",
            i % 60
        );
    }
    let mut o = Options::default();
    o.chunk_size = 64 << 10; // many chunks over two workers
    o.workers = 2;
    let r = run(vec![bytes("lat.log", log)], o).await;
    all.sort_unstable();
    let l = r.latency.as_ref().expect("latency");
    let within = |got_ms: f64, want_us: f64, rel: f64| {
        let got_us = got_ms * 1000.0;
        (got_us - want_us).abs() <= want_us * rel + 0.5
    };
    for (got, q) in [(l.p50_ms, 0.5), (l.p90_ms, 0.9), (l.p99_ms, 0.99)] {
        let want = exact_quantile(&all, q);
        assert!(
            within(got, want, 1.0 / 2048.0),
            "q={q}: {got} ms vs exact {want} us"
        );
    }
    assert_eq!(l.min_ms * 1000.0, all[0] as f64);
    assert_eq!(l.max_ms * 1000.0, all[all.len() - 1] as f64);
    let mean = all.iter().sum::<u64>() as f64 / all.len() as f64;
    assert!((l.avg_ms * 1000.0 - mean).abs() < 1e-6 * mean);
    for (p, values) in per_path.iter_mut().enumerate() {
        values.sort_unstable();
        let row = r
            .top_paths
            .iter()
            .find(|s| s.path == format!("/p{p}"))
            .expect("path");
        let want = exact_quantile(values, 0.95);
        let got = row.p95_ms.expect("p95");
        assert!(
            within(got, want, 1.0 / 32.0),
            "/p{p}: {got} ms vs exact {want} us"
        );
    }
}

#[tokio::test]
async fn the_report_does_not_depend_on_workers_or_chunking() {
    let mut data = Vec::new();
    Generator::new(LogFormat::Kv, 9)
        .write_lines(&mut data, 20_000)
        .expect("generate");
    let mut reports = Vec::new();
    for (workers, chunk) in [(1, 2 << 20), (3, 4096), (2, 100_000)] {
        let mut o = Options::default();
        o.workers = workers;
        o.chunk_size = chunk;
        o.top = 50;
        let r = run(vec![bytes("g.log", data.clone())], o).await;
        assert_accounted(&r);
        reports.push(serde_json::to_string(&r).expect("json"));
    }
    assert_eq!(reports[0], reports[1]);
    assert_eq!(reports[0], reports[2]);
    // And the order is by count, then by key.
    let r: serde_json::Value = serde_json::from_str(&reports[0]).expect("json");
    let ips = r["top_ips"].as_array().expect("ips");
    for pair in ips.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (ca, cb) = (a["count"].as_u64(), b["count"].as_u64());
        assert!(
            ca > cb || (ca == cb && a["ip"].as_str() < b["ip"].as_str()),
            "{a} before {b}"
        );
    }
}

#[tokio::test]
async fn empty_input_gives_a_clear_report() {
    let r = run(vec![bytes("empty.log", Vec::new())], Options::default()).await;
    assert_eq!((r.lines, r.requests, r.errors), (0, 0, 0));
    assert_eq!(r.error_share, 0.0);
    assert!(r.latency.is_none() && r.top_paths.is_empty());
    let text = r.to_string();
    assert!(text.contains("no requests found"), "{text}");
    assert!(!text.contains("NaN") && !text.contains("inf"));
    let json = serde_json::to_string(&r).expect("json");
    assert!(!json.contains("NaN"));
    let html = render_html(&r);
    assert!(!html.contains("NaN"));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

#[tokio::test]
async fn gzip_directories_and_unreadable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut plain = Vec::new();
    Generator::new(LogFormat::Combined, 4)
        .write_lines(&mut plain, 5000)
        .expect("generate");
    std::fs::create_dir(dir.path().join("nested")).expect("mkdir");
    std::fs::write(dir.path().join("a.log"), &plain).expect("write");
    std::fs::write(dir.path().join("nested/b.log.gz"), gzip(&plain)).expect("write");
    std::fs::write(dir.path().join("c.csv"), b"not,a,log\n").expect("write");
    let mut corrupt = gzip(&plain);
    let mid = corrupt.len() / 2;
    corrupt.truncate(mid);
    corrupt.extend_from_slice(&[0xde; 64]);
    std::fs::write(dir.path().join("bad.gz"), &corrupt).expect("write");

    let plain_report = run(vec![bytes("a", plain.clone())], Options::default()).await;
    let r = run(
        vec![Input::Path(dir.path().to_path_buf())],
        Options::default(),
    )
    .await;
    assert_accounted(&r);
    let names: Vec<String> = r
        .inputs
        .iter()
        .map(|i| i.name.rsplit('/').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        names,
        ["a.log", "bad.gz", "nested"].map(|n| if n == "nested" {
            "b.log.gz".into()
        } else {
            n.to_string()
        })
    );
    let bad = &r.inputs[1];
    assert!(bad.gzip && bad.error.is_some(), "{bad:?}");
    let gz = &r.inputs[2];
    assert!(gz.gzip && gz.error.is_none());
    assert_eq!(gz.lines, plain_report.lines);
    assert_eq!(gz.bytes, plain.len() as u64);
    assert!(r.requests >= 2 * plain_report.requests);

    let mut o = Options::default();
    o.strict = true;
    let err = analyze(
        &Context::background(),
        vec![Input::Path(dir.path().into())],
        o,
    )
    .await
    .unwrap_err();
    match err {
        LogsError::Read { name, .. } => assert!(name.ends_with("bad.gz"), "{name}"),
        other => panic!("{other:?}"),
    }

    let missing = dir.path().join("missing.log");
    let r = run(
        vec![
            Input::Path(missing.clone()),
            Input::Path(dir.path().join("a.log")),
        ],
        Options::default(),
    )
    .await;
    assert!(r.inputs[0].error.is_some());
    assert_eq!(r.requests, plain_report.requests);
}

/// Checks that tags nest properly (void elements aside): enough to catch a broken template.
fn assert_balanced(html: &str) {
    const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        // The page's own script is code, not markup: skip to its end.
        if tag == "script" {
            let close = rest.find("</script>").expect("unclosed script");
            rest = &rest[close + "</script>".len()..];
            continue;
        }
        let self_closing = tag.ends_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if tag.starts_with('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.as_str()),
                "bad close {tag}"
            );
        } else if !self_closing && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[tokio::test]
async fn html_is_one_valid_self_contained_page() {
    let mut data = Vec::new();
    Generator::new(LogFormat::Kv, 5)
        .write_lines(&mut data, 10_000)
        .expect("generate");
    data.extend(kv(0, "info", "<script>", "/<script>alert(1)</script>", 500, 1).bytes());
    let r = run(vec![bytes("x.log", data)], Options::default()).await;
    let html = render_html(&r);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_balanced(&html);
    // The core charts, and the visitors and hours panels.
    assert_eq!(html.matches("<svg").count(), 6);
    for t in [
        "Status mix",
        "Latency distribution",
        "Traffic over time",
        "Top paths",
        "Requests by hour of day (UTC)",
    ] {
        assert!(html.contains(&format!("<title>{t}</title>")), "{t}");
    }
    for outside in [
        "http:", "https:", "src=", "href=", "<link", "url(", "@import",
    ] {
        assert!(!html.contains(outside), "{outside}");
    }
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own inline script; the input's <script> is escaped"
    );
    let mut o = Options::default();
    o.path_contains = Some("script".into());
    let only = run(
        vec![bytes(
            "x.log",
            kv(0, "info", "1.1.1.1", "/<script>", 200, 1),
        )],
        o,
    )
    .await;
    let html = render_html(&only);
    assert!(html.contains("/&lt;script&gt;"));
    assert_balanced(&html);
}

/// A reader that serves `first`, then blocks until its gate is dropped, and says when it is
/// dropped.
struct Gated {
    first: Option<Vec<u8>>,
    gate: std::sync::mpsc::Receiver<()>,
    dropped: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(first) = self.first.take() {
            buf[..first.len()].copy_from_slice(&first);
            return Ok(first.len());
        }
        let _ = self.gate.recv(); // blocks until the test drops the sender
        Ok(0)
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        if let Some(d) = self.dropped.take() {
            let _ = d.send(());
        }
    }
}

/// An endless source of one repeated line, which says when it is dropped.
struct Endless {
    line: Vec<u8>,
    dropped: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len() / self.line.len() * self.line.len();
        for chunk in buf[..n].chunks_mut(self.line.len()) {
            chunk.copy_from_slice(&self.line);
        }
        Ok(n)
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        if let Some(d) = self.dropped.take() {
            let _ = d.send(());
        }
    }
}

async fn until_lines(progress: &Progress, n: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while progress.lines() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("workers never analyzed the first lines");
}

#[tokio::test]
async fn cancelling_the_context_returns_the_report_so_far() {
    let first: String = (0..100)
        .map(|i| kv(i, "info", "1.1.1.1", "/p", 200, 3))
        .collect();
    let (gate_tx, gate_rx) = std::sync::mpsc::channel();
    let reader = Gated {
        first: Some(first.into_bytes()),
        gate: gate_rx,
        dropped: None,
    };
    let (ctx, cancel) = Context::background().with_cancel();
    let progress = Progress::default();
    let mut o = Options::default();
    o.progress = Some(progress.clone());
    let run = tokio::spawn(async move {
        let input = Input::Reader {
            name: "stream".into(),
            reader: Box::new(reader),
        };
        analyze(&ctx, vec![input], o).await
    });
    until_lines(&progress, 100).await;
    cancel.cancel_with("interrupted");
    let r = run.await.expect("task").expect("report");
    assert!(r.partial);
    assert_eq!(r.stopped_because.as_deref(), Some("interrupted"));
    assert_eq!((r.lines, r.requests), (100, 100));
    assert!(r.to_string().contains("PARTIAL"));
    assert!(render_html(&r).contains("PARTIAL"));
    // The pipeline drained: nothing read was lost.
    assert!(progress.stages().iter().all(|s| s.cancelled == 0));
    drop(gate_tx); // lets the detached reader thread finish
}

/// The stages of the analysis pipeline, by name: `(received, emitted, output, cancelled)`.
fn stage_counts(progress: &Progress) -> Vec<(String, u64, u64, u64, u64)> {
    progress
        .stages()
        .iter()
        .map(|s| {
            assert!(s.is_balanced(), "{s:?}");
            (
                s.name.to_string(),
                s.received,
                s.emitted,
                s.output,
                s.cancelled,
            )
        })
        .collect()
}

#[tokio::test]
async fn the_analysis_is_a_source_analyze_sink_pipeline_whose_counts_add_up() {
    let data: String = (0..400)
        .map(|i| kv(i, "info", "1.1.1.1", "/p", 200, 3))
        .collect();
    let progress = Progress::default();
    let mut o = Options::default();
    o.chunk_size = 4096;
    o.workers = 2;
    o.progress = Some(progress.clone());
    let r = run(vec![bytes("a.log", data.clone())], o).await;
    assert_eq!((r.lines, r.requests), (400, 400));
    let stages = stage_counts(&progress);
    let names: Vec<&str> = stages.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, ["source", "analyze", "sink"]);
    // Whole lines per chunk of at most 4 KiB: at least len / 4096 chunks, each analyzed once
    // and merged once.
    let chunks = stages[0].3;
    assert!(chunks > (data.len() / 4096) as u64, "{stages:?}");
    assert_eq!(stages[1].1..=stages[1].2, chunks..=chunks, "{stages:?}");
    assert_eq!((stages[2].1, stages[2].4), (chunks, 0), "{stages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_stream_reports_every_chunk_read() {
    let reader = Endless {
        line: kv(0, "info", "1.1.1.1", "/p", 200, 3).into_bytes(),
        dropped: None,
    };
    let (ctx, cancel) = Context::background().with_cancel();
    let progress = Progress::default();
    let mut o = Options::default();
    o.chunk_size = 4096;
    o.workers = 2;
    o.progress = Some(progress.clone());
    let run = tokio::spawn(async move {
        let input = Input::Reader {
            name: "endless".into(),
            reader: Box::new(reader),
        };
        analyze(&ctx, vec![input], o).await
    });
    until_lines(&progress, 5_000).await;
    cancel.cancel_with("stop");
    let r = run.await.expect("task").expect("report");
    assert!(r.partial);
    assert_eq!(r.stopped_because.as_deref(), Some("stop"));
    // Every line the workers counted is in the report: the chunks in flight were drained into
    // it, none was dropped.
    assert!(r.lines >= 5_000);
    assert_eq!(r.lines, progress.lines());
    assert_eq!((r.requests, r.inputs[0].lines), (r.lines, r.lines));
    let stages = stage_counts(&progress);
    let chunks = stages[0].3;
    assert_eq!(stages[1].1..=stages[1].2, chunks..=chunks, "{stages:?}");
    assert_eq!((stages[2].1, stages[2].4), (chunks, 0), "{stages:?}");
}

#[tokio::test]
async fn dropping_the_analysis_future_stops_its_threads() {
    // An endless source: only cancellation can end this analysis.
    let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel();
    let reader = Endless {
        line: kv(0, "info", "1.1.1.1", "/p", 200, 3).into_bytes(),
        dropped: Some(dropped_tx),
    };
    let progress = Progress::default();
    let mut o = Options::default();
    o.progress = Some(progress.clone());
    let input = Input::Reader {
        name: "endless".into(),
        reader: Box::new(reader),
    };
    let ctx = Context::background();
    tokio::select! {
        _ = analyze(&ctx, vec![input], o) => panic!("an endless input cannot finish"),
        () = until_lines(&progress, 10_000) => {}
    }
    // The future is dropped: the reader thread stops reading and drops its source.
    tokio::time::timeout(Duration::from_secs(10), dropped_rx)
        .await
        .expect("reader thread kept running")
        .expect("dropped");
    let _ = Gated {
        first: None,
        gate: std::sync::mpsc::channel().1,
        dropped: None,
    };
}
