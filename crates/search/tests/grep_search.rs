//! `weft_search`: the library behind `weft grep`, against fixture trees in tempdirs.

#![allow(clippy::single_range_in_vec_init)] // a one-range list of match spans is what is meant

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use weft_core::context::Context;
use weft_search::{FileResult, Report, Search, SearchBuilder, SearchStats};

fn write(root: &Path, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("fixture paths have a parent"))
        .expect("create fixture dir");
    std::fs::write(&path, contents).expect("write fixture file");
    path
}

async fn collect(builder: &SearchBuilder, paths: &[&Path]) -> (Vec<FileResult>, SearchStats) {
    let search = builder.build().expect("valid search");
    let mut stream = search.run(&Context::background(), paths);
    let mut files = Vec::new();
    while let Some(file) = stream.next().await {
        files.push(file);
    }
    (files, stream.stats())
}

/// Paths of the matching files, relative to `root`, sorted.
fn matched(files: &[FileResult], root: &Path) -> Vec<String> {
    let mut names: Vec<String> = files
        .iter()
        .filter(|f| f.is_match())
        .map(|f| {
            f.path()
                .strip_prefix(root)
                .expect("results are below the root")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn gitignore_rules_apply_inside_a_git_repository_unless_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    write(root, ".gitignore", "target/\n*.log\n");
    write(root, "src/lib.rs", "needle\n");
    write(root, "target/debug/out.rs", "needle\n");
    write(root, "app.log", "needle\n");
    write(root, "sub/.ignore", "skipped.txt\n");
    write(root, "sub/skipped.txt", "needle\n");

    let (files, _) = collect(&Search::builder("needle"), &[root]).await;
    assert_eq!(matched(&files, root), ["src/lib.rs"]);

    let (files, _) = collect(Search::builder("needle").ignore_files(false), &[root]).await;
    assert_eq!(
        matched(&files, root),
        [
            "app.log",
            "src/lib.rs",
            "sub/skipped.txt",
            "target/debug/out.rs"
        ]
    );
}

#[tokio::test]
async fn hidden_files_and_directories_are_skipped_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "visible.txt", "needle\n");
    write(root, ".hidden.txt", "needle\n");
    write(root, ".config/settings.txt", "needle\n");

    let (files, _) = collect(&Search::builder("needle"), &[root]).await;
    assert_eq!(matched(&files, root), ["visible.txt"]);

    let (files, _) = collect(Search::builder("needle").hidden(true), &[root]).await;
    assert_eq!(
        matched(&files, root),
        [".config/settings.txt", ".hidden.txt", "visible.txt"]
    );
}

#[tokio::test]
async fn binary_files_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "text.txt", "needle\n");
    write(root, "image.bin", b"needle\n\0\x01\x02needle\n");
    // The NUL comes after the first buffer's worth of text: the matches found before it must
    // be dropped too, not half reported.
    let mut late = b"needle\n".repeat(40_000);
    late.extend_from_slice(b"\0needle\n");
    write(root, "late.bin", late);

    let (files, stats) = collect(&Search::builder("needle"), &[root]).await;
    assert_eq!(matched(&files, root), ["text.txt"]);
    assert_eq!(stats.binary_skipped, 2);
    assert_eq!(stats.files_searched, 3);
    assert_eq!(stats.files_matched, 1);
}

#[tokio::test]
async fn invalid_utf8_lines_match_and_come_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "latin1.txt", b"caf\xe9 needle \xff\xfe\nplain\n");

    let (files, _) = collect(&Search::builder("needle"), &[root]).await;
    assert_eq!(files.len(), 1);
    let line = files[0].lines().next().unwrap();
    assert_eq!(line.bytes(), b"caf\xe9 needle \xff\xfe");
    assert_eq!(line.matches(), [5..11]);
}

#[tokio::test]
async fn very_long_lines_have_no_length_limit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let long = 4 * 1024 * 1024;
    let mut contents = b"first line\n".to_vec();
    contents.extend(std::iter::repeat_n(b'x', long));
    contents.extend_from_slice(b"needle\nlast line\n");
    write(root, "long.txt", &contents);

    let (files, stats) = collect(&Search::builder("needle"), &[root]).await;
    assert_eq!(stats.errors, 0);
    assert_eq!(files.len(), 1);
    let line = files[0].lines().next().unwrap();
    assert_eq!(line.number(), 2);
    assert_eq!(line.byte_offset(), 11);
    assert_eq!(line.bytes().len(), long + 6);
    assert_eq!(line.matches(), [long..long + 6]);
}

#[cfg(unix)]
#[tokio::test]
async fn symlink_loops_end_and_are_reported_when_following_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a/file.txt", "needle\n");
    std::os::unix::fs::symlink("..", root.join("a/loop")).unwrap();

    // Not following links: the loop is never entered, the file is found once, no error.
    let (files, stats) = collect(&Search::builder("needle"), &[root]).await;
    assert_eq!(matched(&files, root), ["a/file.txt"]);
    assert_eq!(stats.errors, 0);

    // Following links: the walk ends, the file is found once, the loop is an error result.
    let (files, stats) = collect(Search::builder("needle").follow_links(true), &[root]).await;
    assert_eq!(matched(&files, root), ["a/file.txt"]);
    assert_eq!(stats.errors, 1);
    let err = files.iter().find(|f| f.error().is_some()).unwrap();
    assert_eq!(err.path(), root.join("a/loop"));
    assert!(err.error().unwrap().to_string().contains("loop"));
}

#[cfg(unix)]
#[tokio::test]
async fn unreadable_paths_are_reported_and_the_rest_is_searched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "ok.txt", "needle\n");
    // Root can read any file, so a dangling link (named by the user) and a missing path stand
    // in for an unreadable file: opening both fails.
    let dangling = root.join("dangling.txt");
    std::os::unix::fs::symlink(root.join("missing-target"), &dangling).unwrap();
    let missing = root.join("missing-dir");

    let (files, stats) = collect(
        Search::builder("needle").sort_by_path(true),
        &[root.join("ok.txt").as_path(), &dangling, &missing],
    )
    .await;
    assert_eq!(files.len(), 3);
    assert!(files[0].is_match() && files[0].error().is_none());
    assert_eq!(files[1].path(), dangling);
    assert_eq!(files[2].path(), missing);
    for failed in &files[1..] {
        let err = failed.error().unwrap();
        assert_eq!(err.io_error().unwrap().kind(), std::io::ErrorKind::NotFound);
    }
    assert_eq!(stats.errors, 2);
}

#[tokio::test]
async fn lines_carry_numbers_offsets_and_every_match_range() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = write(root, "f.txt", "no\nab ab\r\nx\nzab\n");

    let (files, _) = collect(&Search::builder("ab"), &[file.as_path()]).await;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].match_count(), 2);
    let lines: Vec<_> = files[0]
        .lines()
        .map(|l| {
            (
                l.number(),
                l.byte_offset(),
                l.bytes().to_vec(),
                l.matches().to_vec(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (2, 3, b"ab ab\r".to_vec(), vec![0..2, 3..5]),
            (4, 12, b"zab".to_vec(), vec![1..3]),
        ]
    );
}

#[tokio::test]
async fn case_word_and_fixed_string_options_change_what_matches() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = write(root, "f.txt", "Foo\nfood\nfoo\na.c\nabc\n");
    let numbers = |files: &[FileResult]| -> Vec<u64> {
        files
            .iter()
            .flat_map(|f| f.lines().map(|l| l.number()))
            .collect()
    };
    let path = [file.as_path()];

    assert_eq!(
        numbers(&collect(&Search::builder("foo"), &path).await.0),
        [2, 3]
    );
    let mut b = Search::builder("foo");
    assert_eq!(
        numbers(&collect(b.case_insensitive(true), &path).await.0),
        [1, 2, 3]
    );
    assert_eq!(numbers(&collect(b.word(true), &path).await.0), [1, 3]);
    assert_eq!(
        numbers(&collect(&Search::builder("a.c"), &path).await.0),
        [4, 5]
    );
    let mut b = Search::builder("a.c");
    assert_eq!(numbers(&collect(b.fixed_strings(true), &path).await.0), [4]);
}

#[tokio::test]
async fn count_and_files_reports_skip_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "three.txt", "x\nx\nx\n");
    write(root, "one.txt", "x\n");
    write(root, "none.txt", "y\n");

    let mut b = Search::builder("x");
    let (files, _) = collect(b.report(Report::Count).sort_by_path(true), &[root]).await;
    let counts: Vec<_> = files
        .iter()
        .map(|f| (f.match_count(), f.lines().len()))
        .collect();
    assert_eq!(counts, [(1, 0), (3, 0)]);

    let (files, _) = collect(b.report(Report::Files), &[root]).await;
    let counts: Vec<_> = files.iter().map(|f| f.match_count()).collect();
    assert_eq!(counts, [1, 1]);
}

#[tokio::test]
async fn globs_include_and_exclude_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.rs", "needle\n");
    write(root, "b.txt", "needle\n");
    write(root, "gen/c.rs", "needle\n");

    let (files, _) = collect(Search::builder("needle").glob("*.rs"), &[root]).await;
    assert_eq!(matched(&files, root), ["a.rs", "gen/c.rs"]);
    let (files, _) = collect(
        Search::builder("needle").glob("*.rs").glob("!gen/"),
        &[root],
    )
    .await;
    assert_eq!(matched(&files, root), ["a.rs"]);
}

#[test]
fn invalid_patterns_and_globs_are_handed_back() {
    let err = Search::builder("a(").build().unwrap_err();
    assert!(matches!(err, weft_search::BuildError::Pattern { ref pattern, .. } if pattern == "a("));
    assert_eq!(err.to_string(), "invalid pattern \"a(\"");
    let err = Search::builder("a").glob("{unclosed").build().unwrap_err();
    assert!(matches!(err, weft_search::BuildError::Glob { ref glob, .. } if glob == "{unclosed"));
}

/// A tree of `n` matching files with names that sort differently as strings and as numbers.
fn many_files(root: &Path, n: usize) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = (0..n)
        .map(|i| {
            write(
                root,
                &format!("d{}/f{i}.txt", i % 7),
                format!("needle {i}\n"),
            )
        })
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn sort_by_path_yields_results_in_path_order_with_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let expected = many_files(dir.path(), 300);
    let mut b = Search::builder("needle");
    b.sort_by_path(true).threads(NonZeroUsize::new(4).unwrap());
    let (files, stats) = collect(&b, &[dir.path()]).await;
    let got: Vec<PathBuf> = files.iter().map(|f| f.path().to_path_buf()).collect();
    assert_eq!(got, expected);
    assert_eq!((stats.files_searched, stats.files_matched), (300, 300));
}

#[tokio::test]
async fn a_context_done_before_the_start_searches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    many_files(dir.path(), 50);
    for sorted in [false, true] {
        let (ctx, cancel) = Context::background().with_cancel();
        cancel.cancel();
        let search = Search::builder("needle")
            .sort_by_path(sorted)
            .build()
            .unwrap();
        let mut stream = search.run(&ctx, [dir.path()]);
        assert!(stream.next().await.is_none());
        assert!(futures::stream::FusedStream::is_terminated(&stream));
        // The threads check the context before each file.
        assert_eq!(stream.stats().files_searched, 0);
    }
}

#[tokio::test]
async fn the_stream_ends_as_soon_as_its_context_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    many_files(dir.path(), 400);
    for sorted in [false, true] {
        let (ctx, cancel) = Context::background().with_cancel();
        let mut b = Search::builder("needle");
        b.sort_by_path(sorted)
            .threads(NonZeroUsize::new(1).unwrap());
        let mut stream = b.build().unwrap().run(&ctx, [dir.path()]);
        assert!(stream.next().await.is_some());
        cancel.cancel();
        // More results are ready or on their way (400 files, a channel of 32), but a done
        // context ends the stream at once.
        assert!(stream.next().await.is_none());
        assert!(stream.next().await.is_none());
    }
}

#[tokio::test]
async fn a_deadline_ends_the_stream_too() {
    let dir = tempfile::tempdir().unwrap();
    many_files(dir.path(), 10);
    let (ctx, _cancel) = Context::background().with_timeout(std::time::Duration::ZERO);
    let mut stream = Search::new("needle").unwrap().run(&ctx, [dir.path()]);
    assert!(stream.next().await.is_none());
    assert_eq!(
        ctx.err(),
        Some(weft_core::context::ContextError::DeadlineExceeded)
    );
}

#[tokio::test]
async fn cancelling_next_mid_flight_loses_no_result() {
    let dir = tempfile::tempdir().unwrap();
    many_files(dir.path(), 200);
    for sorted in [false, true] {
        let search = Search::builder("needle")
            .sort_by_path(sorted)
            .build()
            .unwrap();
        let mut stream = search.run(&Context::background(), [dir.path()]);
        let mut seen = 0;
        loop {
            // Start a `next()` and drop it after one poll, whether or not it was ready: what
            // a losing `select!` branch does.
            let polled = futures::poll!(stream.next());
            match polled {
                std::task::Poll::Ready(Some(_)) => seen += 1,
                std::task::Poll::Ready(None) => break,
                std::task::Poll::Pending => {
                    // Then wait for real, so the test makes progress.
                    match stream.next().await {
                        Some(_) => seen += 1,
                        None => break,
                    }
                }
            }
        }
        assert_eq!(seen, 200, "sorted: {sorted}");
    }
}

#[tokio::test]
async fn match_ranges_can_be_turned_off_keeping_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f.txt", "ab ab\n");
    let mut b = Search::builder("ab");
    let (files, _) = collect(b.match_ranges(false), &[file.as_path()]).await;
    let line = files[0].lines().next().unwrap();
    assert_eq!((line.number(), line.bytes()), (1, &b"ab ab"[..]));
    assert!(line.matches().is_empty());
    let (files, _) = collect(b.match_ranges(true), &[file.as_path()]).await;
    assert_eq!(files[0].lines().next().unwrap().matches(), [0..2, 3..5]);
}

#[cfg(unix)]
#[tokio::test]
async fn sort_by_path_keeps_walk_errors_in_their_place() {
    // Files go to the searchers in chunks; an error between two chunks' worth of files must
    // still come out between them.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut expected: Vec<PathBuf> = (0..100)
        .map(|i| write(root, &format!("a/{i:03}.txt"), "needle\n"))
        .collect();
    std::fs::create_dir(root.join("m")).unwrap();
    std::os::unix::fs::symlink("..", root.join("m/loop")).unwrap();
    expected.push(root.join("m/loop"));
    expected.extend((0..100).map(|i| write(root, &format!("z/{i:03}.txt"), "needle\n")));

    let mut b = Search::builder("needle");
    b.sort_by_path(true)
        .follow_links(true)
        .threads(NonZeroUsize::new(3).unwrap());
    let (files, stats) = collect(&b, &[root]).await;
    let got: Vec<PathBuf> = files.iter().map(|f| f.path().to_path_buf()).collect();
    assert_eq!(got, expected);
    assert!(files[100].error().is_some());
    assert_eq!((stats.files_matched, stats.errors), (200, 1));
}
