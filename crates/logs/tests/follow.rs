//! Following growing files (`weft_logs::follow`): appends, partial lines, rotation,
//! truncation, late files, refusals, equality with the batch analysis, the timed driver, and
//! the atomic page rewrite. Every test drives the follower with explicit `poll` calls or a
//! paused clock: nothing waits on real time.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weft_core::context::Context;
use weft_logs::follow::{FileState, FollowOptions, Follower, Start, follow, write_atomic};
use weft_logs::{Input, LogsError, Options, analyze, render_html};

fn line(path: &str, status: u16) -> String {
    format!("2024-03-01 12:00:00 level=info ip=10.0.0.1 path=\"{path}\" status={status} time=5ms\n")
}

fn append(path: &Path, text: &str) {
    append_bytes(path, text.as_bytes());
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(bytes).expect("append");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn lines_appended_after_the_start_are_counted_and_existing_ones_are_not() {
    let dir = tempdir();
    let path = dir.path().join("access.log");
    append(&path, &line("/before", 200).repeat(3));
    let mut f = Follower::new([&path], Options::default(), Start::End).expect("follower");
    assert_eq!(f.poll().expect("poll"), 0, "nothing new yet");
    append(&path, &format!("{}{}", line("/a", 200), line("/b", 500)));
    assert_eq!(f.poll().expect("poll"), 2);
    let r = f.snapshot();
    assert_eq!((r.lines, r.requests, r.errors), (2, 2, 1));
    assert!(r.top_paths.iter().all(|p| p.path != "/before"));
    assert_eq!(f.poll().expect("poll"), 0, "no line is counted twice");
}

#[test]
fn from_the_beginning_counts_the_existing_content_first() {
    let dir = tempdir();
    let path = dir.path().join("access.log");
    append(&path, &line("/before", 200).repeat(3));
    let mut f = Follower::new([&path], Options::default(), Start::Beginning).expect("follower");
    assert_eq!(f.poll().expect("poll"), 3);
    append(&path, &line("/after", 200));
    assert_eq!(f.poll().expect("poll"), 1);
    assert_eq!(f.snapshot().requests, 4);
}

#[test]
fn starting_at_the_end_inside_a_line_skips_the_rest_of_that_line() {
    let dir = tempdir();
    let path = dir.path().join("access.log");
    // The writer is in the middle of a line when following starts.
    append(
        &path,
        &format!("{}2024-03-01 12:00:00 path=\"/cut", line("/x", 200)),
    );
    let mut f = Follower::new([&path], Options::default(), Start::End).expect("follower");
    append(&path, &format!("\" status=200\n{}", line("/whole", 200)));
    assert_eq!(
        f.poll().expect("poll"),
        1,
        "only the line started after following began"
    );
    let r = f.snapshot();
    assert_eq!((r.requests, r.malformed_lines), (1, 0));
    assert_eq!(r.top_paths[0].path, "/whole");
}

#[test]
fn a_partial_line_is_counted_only_once_its_newline_arrives() {
    let dir = tempdir();
    let path = dir.path().join("access.log");
    File::create(&path).expect("create");
    let mut f = Follower::new([&path], Options::default(), Start::End).expect("follower");
    let whole = line("/slow-writer", 404);
    let (head, tail) = whole.split_at(25);
    append(&path, head);
    assert_eq!(f.poll().expect("poll"), 0);
    let r = f.snapshot();
    assert_eq!(
        (r.lines, r.malformed_lines),
        (0, 0),
        "half a line is not parsed"
    );
    let (mid, end) = tail.split_at(tail.len() - 1);
    append(&path, mid);
    assert_eq!(f.poll().expect("poll"), 0);
    append(&path, end);
    assert_eq!(f.poll().expect("poll"), 1);
    let r = f.snapshot();
    assert_eq!((r.requests, r.errors, r.malformed_lines), (1, 1, 0));
    assert_eq!(r.top_paths[0].path, "/slow-writer");
}

#[test]
fn rotation_by_rename_and_new_file_loses_no_line_and_counts_none_twice() {
    let dir = tempdir();
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    File::create(&path).expect("create");
    let mut f = Follower::new([&path], Options::default(), Start::End).expect("follower");
    // The server keeps its handle on the old file across the rename, as nginx does until it
    // is told to reopen its logs.
    let mut server = OpenOptions::new().append(true).open(&path).expect("open");
    server
        .write_all(line("/old", 200).repeat(3).as_bytes())
        .expect("write");
    assert_eq!(f.poll().expect("poll"), 3);
    // Written before the rename and not polled yet.
    server
        .write_all(line("/old", 200).repeat(2).as_bytes())
        .expect("write");
    std::fs::rename(&path, &rotated).expect("rename");
    // Still written to the old file (the server has not reopened yet), the last line cut.
    server
        .write_all(format!("{}2024-03-01 12:00:00 path=\"/old", line("/old", 200)).as_bytes())
        .expect("write");
    append(&path, &line("/new", 500).repeat(2));
    assert_eq!(
        f.poll().expect("poll"),
        5,
        "the 3 old lines not read yet, then the 2 new"
    );
    server.write_all(b"\" status=200\n").expect("write");
    drop(server);
    assert_eq!(
        f.poll().expect("poll"),
        1,
        "the old file's last line, once whole"
    );
    append(&path, &line("/new", 500));
    let mut more = 0;
    for _ in 0..20 {
        more += f.poll().expect("poll");
    }
    assert_eq!(more, 1);
    let r = f.snapshot();
    // Old file: 3 + 3 + its last line; new file: 2 + 1.
    assert_eq!((r.requests, r.errors, r.malformed_lines), (10, 3, 0));
    let files = f.files();
    assert_eq!(
        (files[0].rotations, files[0].state),
        (1, FileState::Following)
    );
}

#[test]
fn a_rotated_file_whose_last_line_never_ends_is_counted_as_the_batch_run_counts_it() {
    let dir = tempdir();
    let path = dir.path().join("app.log");
    File::create(&path).expect("create");
    let mut f = Follower::new([&path], Options::default(), Start::End).expect("follower");
    append(
        &path,
        &format!(
            "{}2024-03-01 12:00:00 path=/last status=200",
            line("/a", 200)
        ),
    );
    assert_eq!(f.poll().expect("poll"), 1);
    std::fs::rename(&path, dir.path().join("app.log.1")).expect("rename");
    // A while with no file at the path: the renamed file keeps being read.
    assert_eq!(f.poll().expect("poll"), 0);
    append(&path, &line("/b", 200));
    let mut n = 0;
    for _ in 0..20 {
        n += f.poll().expect("poll");
    }
    assert_eq!(
        n, 2,
        "the new file's line, and the old one's last line once it is closed"
    );
    let r = f.snapshot();
    assert_eq!((r.requests, r.malformed_lines), (3, 0));
}

#[test]
fn truncation_restarts_reading_from_the_start() {
    let dir = tempdir();
    let path = dir.path().join("access.log");
    File::create(&path).expect("create");
    let mut f = Follower::new([&path], Options::default(), Start::End).expect("follower");
    append(&path, &line("/before", 200).repeat(3));
    assert_eq!(f.poll().expect("poll"), 3);
    // `copytruncate`, then the writer starts again at 0 with a shorter content.
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("truncate");
    append(&path, &line("/after", 500));
    assert_eq!(f.poll().expect("poll"), 1);
    let r = f.snapshot();
    assert_eq!((r.requests, r.errors), (4, 1));
    assert_eq!(f.files()[0].truncations, 1);
    assert_eq!(f.files()[0].offset, line("/after", 500).len() as u64);
}

#[test]
fn a_file_created_after_the_start_is_picked_up_from_its_start() {
    let dir = tempdir();
    let path = dir.path().join("later.log");
    let mut f = Follower::new([&path], Options::default(), Start::End).expect("follower");
    assert_eq!(f.poll().expect("poll"), 0);
    assert_eq!(f.files()[0].state, FileState::Waiting);
    append(&path, &line("/first", 200).repeat(2));
    assert_eq!(
        f.poll().expect("poll"),
        2,
        "the lines written before it was seen count"
    );
    assert_eq!(f.files()[0].state, FileState::Following);
    assert_eq!(f.snapshot().requests, 2);
}

#[test]
fn gzip_files_and_directories_are_refused_with_the_reason() {
    let dir = tempdir();
    let by_name = dir.path().join("access.log.1.gz");
    let by_content = dir.path().join("access.log");
    std::fs::write(&by_content, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).expect("write");
    for path in [&by_name, &by_content] {
        let err = Follower::new([path], Options::default(), Start::End).expect_err("refused");
        assert!(matches!(err, LogsError::InvalidArgument(_)));
        assert!(err.to_string().contains("gzip-compressed"), "{err}");
    }
    let err = Follower::new([dir.path()], Options::default(), Start::End).expect_err("refused");
    assert!(err.to_string().contains("is a directory"), "{err}");
    let none: [&Path; 0] = [];
    assert!(Follower::new(none, Options::default(), Start::End).is_err());
}

#[test]
fn a_gzip_file_rotated_into_a_followed_path_is_refused_not_parsed() {
    let dir = tempdir();
    let path = dir.path().join("access.log");
    let mut f = Follower::new([&path], Options::default(), Start::End).expect("follower");
    std::fs::write(&path, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, b'\n']).expect("write");
    assert_eq!(f.poll().expect("poll"), 0);
    let status = &f.files()[0];
    assert_eq!(status.state, FileState::Refused);
    assert!(status.error.as_deref().is_some_and(|e| e.contains("gzip")));
    assert_eq!(f.snapshot().inputs[0].error, status.error);
}

/// Mixed lines: requests of every class, blank, malformed, non-request, one over the
/// maximum line length.
fn fixture() -> Vec<u8> {
    let mut text = String::new();
    for i in 0..400u32 {
        let status = [200, 200, 301, 404, 500, 503][i as usize % 6];
        text.push_str(&format!(
            "2024-03-01 12:{:02}:{:02} level=info ip=10.0.{}.{} path=\"/p{}\" status={status} time={}ms\n",
            i / 60 % 60,
            i % 60,
            i % 7,
            i % 13,
            i % 17,
            i * 37 % 1000
        ));
        match i % 50 {
            7 => text.push('\n'),
            13 => text.push_str("this line is not a request\n"),
            29 => text.push_str("2024-03-01 12:00:00 level=info msg=\"started\"\n"),
            // Far over any buffer of either reader: malformed in both.
            41 => text.push_str(&format!(
                "2024-03-01 12:00:00 path=\"/{}\"\n",
                "x".repeat(20_000)
            )),
            _ => {}
        }
    }
    text.into_bytes()
}

/// The smallest buffers, so that the fixture's long lines are over the maximum line length.
fn small_lines() -> Options {
    let mut o = Options::default();
    o.chunk_size = 4096;
    o.max_line = 4096;
    o
}

#[tokio::test]
async fn counts_equal_the_batch_analysis_of_the_same_bytes_whatever_the_write_sizes() {
    let data = fixture();
    let batch = analyze(
        &Context::background(),
        vec![Input::Bytes {
            name: "x".into(),
            data: data.clone(),
        }],
        small_lines(),
    )
    .await
    .expect("batch");
    assert!(batch.blank_lines > 0 && batch.other_lines > 0);
    assert!(
        batch
            .malformed_reasons
            .iter()
            .any(|m| m.reason.contains("longer than the maximum")),
        "{:?}",
        batch.malformed_reasons
    );
    for piece in [5, 97, 4093, 1 << 20] {
        let dir = tempdir();
        let path = dir.path().join("x");
        File::create(&path).expect("create");
        let mut f = Follower::new([&path], small_lines(), Start::End).expect("follower");
        for part in data.chunks(piece) {
            append_bytes(&path, part);
            f.poll().expect("poll");
        }
        let r = f.into_report();
        let what = format!("pieces of {piece} bytes");
        assert_eq!(r.lines, batch.lines, "{what}");
        assert_eq!(r.requests, batch.requests, "{what}");
        assert_eq!(r.errors, batch.errors, "{what}");
        assert_eq!(r.slow, batch.slow, "{what}");
        assert_eq!(r.blank_lines, batch.blank_lines, "{what}");
        assert_eq!(r.other_lines, batch.other_lines, "{what}");
        assert_eq!(r.malformed_lines, batch.malformed_lines, "{what}");
        assert_eq!(r.inputs[0].lines, batch.inputs[0].lines, "{what}");
        assert_eq!(r.inputs[0].bytes, data.len() as u64, "{what}");
        let codes = |r: &weft_logs::Report| {
            r.status_codes
                .iter()
                .map(|s| (s.status, s.count))
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(&r), codes(&batch), "{what}");
        let paths = |r: &weft_logs::Report| {
            r.top_paths
                .iter()
                .map(|p| (p.path.clone(), p.count, p.errors))
                .collect::<Vec<_>>()
        };
        assert_eq!(paths(&r), paths(&batch), "{what}");
        let samples = |r: &weft_logs::Report| {
            r.malformed_samples
                .iter()
                .map(|s| (s.line, s.reason.clone(), s.text.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            samples(&r),
            samples(&batch),
            "{what}: same quotes, same line numbers"
        );
        assert_eq!(
            r.latency.as_ref().map(|l| (l.p50_ms, l.p99_ms, l.count)),
            batch
                .latency
                .as_ref()
                .map(|l| (l.p50_ms, l.p99_ms, l.count)),
            "{what}"
        );
        assert_eq!(r.per_minute.len(), batch.per_minute.len(), "{what}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_driver_hands_a_snapshot_every_interval_and_the_final_report_at_the_stop() {
    let dir = tempdir();
    let path = dir.path().join("access.log");
    File::create(&path).expect("create");
    let (ctx, cancel) = Context::background().with_cancel();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (seen_in, path_in) = (Arc::clone(&seen), path.clone());
    let report = follow(
        &ctx,
        [&path],
        Options::default(),
        FollowOptions::default(),
        move |snap| {
            let mut seen = seen_in.lock().expect("lock");
            seen.push((snap.elapsed, snap.report.requests, snap.new_lines));
            // Two lines per interval; the stop comes after the third snapshot, with a line
            // written that no snapshot has seen.
            append(&path_in, &line("/tick", 200).repeat(2));
            if seen.len() == 3 {
                cancel.cancel();
            }
        },
    )
    .await
    .expect("follow");
    let seen = seen.lock().expect("lock").clone();
    let secs = |s: u64| Duration::from_secs(s);
    assert_eq!(seen, [(secs(1), 0, 0), (secs(2), 2, 2), (secs(3), 4, 2)]);
    assert_eq!(
        report.requests, 6,
        "the last lines are read before the final report"
    );
    assert!(!report.partial);
}

#[test]
fn the_page_is_replaced_atomically_and_never_read_half_written() {
    let dir = tempdir();
    let page = dir.path().join("live.html");
    // Pages of different sizes, so a torn read would show as a page that is none of them.
    let pages: Vec<String> = (1..=6u32)
        .map(|n| {
            let data = fixture().repeat(n as usize);
            let report = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime")
                .block_on(analyze(
                    &Context::background(),
                    vec![Input::Bytes {
                        name: format!("page{n}"),
                        data,
                    }],
                    small_lines(),
                ))
                .expect("analyze");
            render_html(&report)
        })
        .collect();
    write_atomic(&page, pages[0].as_bytes()).expect("first write");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, page, pages) = (Arc::clone(&done), page.clone(), pages.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            // At least a few reads, and on until the writer is finished.
            while reads < 50 || !done.load(Ordering::Acquire) {
                let text = std::fs::read_to_string(&page).expect("the page always exists");
                assert!(text.ends_with("</html>\n"), "a partial page was read");
                assert!(
                    pages.contains(&text),
                    "a page that was never written was read"
                );
                reads += 1;
            }
            reads
        })
    };
    for i in 0..300 {
        write_atomic(&page, pages[i % pages.len()].as_bytes()).expect("rewrite");
    }
    done.store(true, Ordering::Release);
    let reads = reader.join().expect("the reader saw only whole pages");
    assert!(reads >= 50);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["live.html"], "no temporary file is left behind");
}

#[cfg(unix)]
#[test]
fn a_new_page_is_readable_by_others_and_a_replaced_one_keeps_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let page = dir.path().join("live.html");
    write_atomic(&page, b"<html></html>\n").expect("write");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&page), 0o644);
    std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    write_atomic(&page, b"<html>2</html>\n").expect("write");
    assert_eq!(mode(&page), 0o640);
}

#[tokio::test]
async fn a_zero_poll_interval_is_refused_instead_of_spinning() {
    let dir = tempdir();
    let mut pace = FollowOptions::default();
    pace.poll_interval = Duration::ZERO;
    let err = follow(
        &Context::background(),
        [dir.path().join("a.log")],
        Options::default(),
        pace,
        |_| {},
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, LogsError::InvalidArgument(_)), "{err}");
}
