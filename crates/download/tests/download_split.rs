//! Segmented downloads (`Config::split`) and rate limits against the loopback fixture server.
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

mod fixture;

use std::num::{NonZeroU64, NonZeroUsize};
use std::path::Path;
use std::time::{Duration, Instant};

use fixture::{Fixture, content, content_v2};
use weft_core::context::Context;
use weft_download::{Config, Downloader, Partial, Proxies, Report, Request};

const MIB: usize = 1 << 20;

fn nz(n: usize) -> Option<NonZeroUsize> {
    NonZeroUsize::new(n)
}

/// Tiny backoff, no proxy; `split` segments and as many connections per host.
fn config(dir: &Path, split: usize) -> Config {
    Config::new(dir)
        .proxies(Proxies::none())
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
        .max_attempts(3)
        .split(nz(split))
        .per_host(NonZeroUsize::new(split).unwrap())
}

async fn run(config: Config, urls: &[String]) -> Report {
    let requests = urls.iter().map(|u| Request::parse(u).unwrap()).collect();
    Downloader::new(config)
        .unwrap()
        .run(&Context::background(), requests)
        .await
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_bytes(path: &Path, expected: &[u8]) {
    let got = std::fs::read(path).unwrap();
    assert_eq!(got.len(), expected.len(), "{}", path.display());
    assert!(got == expected, "content of {} differs", path.display());
}

/// `bytes=A-B` as (A, B + 1).
fn range(r: &str) -> (usize, usize) {
    let (a, b) = r.strip_prefix("bytes=").unwrap().split_once('-').unwrap();
    (a.parse().unwrap(), b.parse::<usize>().unwrap() + 1)
}

#[tokio::test]
async fn a_split_file_is_fetched_as_ranges_over_n_connections_and_is_identical() {
    let size = 4 * MIB;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    let path = format!("/gen/{size}/s.bin");
    let report = run(config(dir.path(), 4), &[fx.url(&path)]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.bytes, size as u64);
    assert_bytes(&dir.path().join("s.bin"), &content(size));
    assert_eq!(listing(dir.path()), ["s.bin"]);

    // One plain GET (its body is the first segment's) and three validated ranges, 1 MiB each
    // (too small to steal from), covering the rest exactly.
    let seen = fx.seen(&path);
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0].range, None);
    let mut ranges: Vec<(usize, usize)> = seen[1..]
        .iter()
        .map(|s| {
            assert_eq!(s.if_range.as_deref(), Some(&*format!("\"gen-{size}\"")));
            range(s.range.as_deref().unwrap())
        })
        .collect();
    ranges.sort();
    assert_eq!(
        ranges,
        [(MIB, 2 * MIB), (2 * MIB, 3 * MIB), (3 * MIB, 4 * MIB)]
    );
    assert!(fx.connections() >= 4, "{}", fx.connections());
}

#[tokio::test]
async fn no_split_without_free_connections_for_the_host() {
    let size = 4 * MIB;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    let path = format!("/gen/{size}/one.bin");
    // --split 8 but --per-host 1: the host's one connection is the download's own.
    let config = config(dir.path(), 8).per_host(NonZeroUsize::MIN);
    let report = run(config, &[fx.url(&path)]).await;
    assert!(report.all_complete());
    assert_eq!(fx.seen(&path).len(), 1);
    assert_bytes(&dir.path().join("one.bin"), &content(size));
}

#[tokio::test]
async fn a_server_without_ranges_is_fetched_over_one_connection() {
    let size = 4 * MIB;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    // No Accept-Ranges: never split.
    let plain = format!("/norange/{size}/n.bin");
    // Accept-Ranges, but a range request gets the whole file (200): split abandoned, and the
    // file starts over on one connection.
    let liar = format!("/liar/{size}/l.bin");
    let report = run(config(dir.path(), 4), &[fx.url(&plain), fx.url(&liar)]).await;
    for r in &report.results {
        assert!(r.outcome.is_complete(), "{}: {}", r.url, r.outcome);
    }
    assert_eq!(fx.seen(&plain).len(), 1);
    let seen = fx.seen(&liar);
    assert!(seen.iter().skip(1).any(|s| s.range.is_some()), "{seen:?}");
    assert_eq!(seen.last().unwrap().range, None, "{seen:?}");
    assert_eq!(report.results[1].attempts, 2);
    assert_bytes(&dir.path().join("n.bin"), &content(size));
    assert_bytes(&dir.path().join("l.bin"), &content(size));
    assert_eq!(listing(dir.path()), ["l.bin", "n.bin"]);
}

#[tokio::test]
async fn a_validator_that_changes_between_segments_restarts_and_never_mixes_versions() {
    let size = 4 * MIB;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    // The first request gets version 1; every later one version 2 (another ETag, other bytes).
    let path = format!("/changeonce/{size}/c.bin");
    let report = run(config(dir.path(), 4), &[fx.url(&path)]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.attempts, 2);
    assert_bytes(&dir.path().join("c.bin"), &content_v2(size));
    assert_eq!(listing(dir.path()), ["c.bin"]);
}

#[tokio::test]
async fn an_interrupted_split_download_resumes_each_segment_where_it_stopped() {
    let size = 4 * MIB;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    // The first four requests (one per segment) drop after 256 KiB.
    let path = format!("/dropfirst/4/262144/{size}/d.bin");
    let report = run(config(dir.path(), 4), &[fx.url(&path)]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_bytes(&dir.path().join("d.bin"), &content(size));
    assert_eq!(listing(dir.path()), ["d.bin"]);
    // Every segment is continued past its start (by a worker that finished its own, or by the
    // next attempt from the saved meta), never fetched again from its start.
    let seen = fx.seen(&path);
    let starts = [0, MIB, 2 * MIB, 3 * MIB];
    let resumed: Vec<(usize, usize)> = seen[4..]
        .iter()
        .map(|s| range(s.range.as_deref().unwrap()))
        .collect();
    for (start, end) in starts.iter().zip(starts.iter().skip(1).chain([&size])) {
        assert!(
            resumed
                .iter()
                .any(|&(a, b)| a > *start && a < *end && b == *end),
            "segment {start}..{end} not continued: {resumed:?}"
        );
    }
}

#[tokio::test]
async fn a_saved_split_is_resumed_from_its_meta_in_a_new_run() {
    let size = 4 * MIB;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    let path = format!("/gen/{size}/m.bin");
    let url = fx.url(&path);
    // As an interrupted run leaves it: the full-length part file, right bytes where the meta
    // says they are written, garbage elsewhere.
    let mut part = vec![0xAAu8; size];
    let good = content(size);
    let done = [(0, MIB / 2), (MIB, MIB + 100_000), (3 * MIB, 4 * MIB)];
    for (a, b) in done {
        part[a..b].copy_from_slice(&good[a..b]);
    }
    std::fs::write(dir.path().join("m.bin.part"), &part).unwrap();
    std::fs::write(
        dir.path().join("m.bin.part.meta"),
        format!(
            "weft-download-split 1\nurl {url}\netag \"gen-{size}\"\ntotal {size}\n\
             seg {} {}\nseg {} {}\n",
            MIB / 2,
            MIB,
            MIB + 100_000,
            3 * MIB
        ),
    )
    .unwrap();
    let report = run(config(dir.path(), 4), &[url]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(
        r.resumed_from,
        (size - MIB / 2 - (2 * MIB - 100_000)) as u64
    );
    assert_bytes(&dir.path().join("m.bin"), &good);
    assert_eq!(listing(dir.path()), ["m.bin"]);
    let mut ranges: Vec<(usize, usize)> = fx
        .seen(&path)
        .iter()
        .map(|s| range(s.range.as_deref().unwrap()))
        .collect();
    ranges.sort();
    // Only the missing ranges were asked for (the longer one possibly split by a steal).
    let asked: usize = ranges.iter().map(|(a, b)| b - a).sum();
    assert_eq!(asked, MIB / 2 + 2 * MIB - 100_000, "{ranges:?}");
    assert_eq!(ranges[0], (MIB / 2, MIB));
}

/// Real time, by necessity: 2 MB at 1 MB/s must take about two seconds.
#[tokio::test]
async fn the_rate_limit_holds_the_transfer_near_its_rate() {
    let size = 2_000_000;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    let urls = [fx.url("/gen/1000000/a.bin"), fx.url("/gen/1000000/b.bin")];
    let config = config(dir.path(), 1).limit_rate(NonZeroU64::new(1_000_000));
    let began = Instant::now();
    let report = run(config, &urls).await;
    let took = began.elapsed();
    assert!(report.all_complete());
    // Expected about 1.9 s (the first tenth of a second is a burst); generous bounds.
    assert!(
        took >= Duration::from_millis(1000) && took <= Duration::from_secs(4),
        "{took:?}"
    );
}

/// The segment table in `.part.meta` is saved while the download runs, not only when it stops
/// (and a cancelled split download keeps it, to be resumed):
/// a process killed without warning (SIGKILL) then resumes from close to where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_download_saves_its_table_while_running_and_keeps_it_when_cancelled() {
    let size = 16 * MIB;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    // The first request (segment 0's body, 4 MiB) stalls after 3 MiB, past one 2 MiB write;
    // the three range requests that fetch segments 1-3 are served whole.
    let path = format!("/stallonce/{}/{size}/s.bin", 3 * MIB);
    let url = fx.url(&path);
    let config = config(dir.path(), 4).idle_timeout(Duration::from_secs(120));
    let (ctx, cancel) = Context::background().with_cancel();
    let running = tokio::spawn({
        let (config, url) = (config.clone(), url.clone());
        async move {
            let requests = vec![Request::parse(&url).unwrap()];
            Downloader::new(config).unwrap().run(&ctx, requests).await
        }
    });
    // Only segment 0 unfinished, with its first MiB or more on disk, while the download still
    // runs (segment 0's connection stalls far longer than this wait): that table can only
    // have come from a save made during the run.
    let meta = dir.path().join("s.bin.part.meta");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&meta).unwrap_or_default();
        let segs: Vec<(usize, usize)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("seg "))
            .map(|l| {
                let (a, b) = l.split_once(' ').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        if let [(written, end)] = segs[..]
            && written >= MIB
            && end == 4 * MIB
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "segment table not saved: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !running.is_finished(),
        "still running when the table was saved"
    );
    // Stopped cleanly so that the next run cannot overlap it (a dropped run stops in the
    // background); what it saves on the way out is checked by the other resume tests.
    cancel.cancel();
    let stopped = running.await.unwrap();
    assert_eq!(stopped.counts(), (0, 0, 1));
    // A cancelled segmented download keeps its partial file for the resume (it used to be
    // deleted: its table is not the one-connection meta format).
    assert!(
        matches!(stopped.results[0].partial, Some(Partial::Kept { .. })),
        "{:?}",
        stopped.results[0].partial
    );

    // The next run resumes segment 0 only, and the file is whole.
    let report = run(config, &[url]).await;
    assert!(report.all_complete(), "{}", report.results[0].outcome);
    assert_bytes(&dir.path().join("s.bin"), &content(size));
    let seen = fx.seen(&path);
    let last = seen.last().unwrap().range.as_deref().unwrap();
    let (start, end) = range(last);
    assert!(start >= MIB && end == 4 * MIB, "{last}");
}
