//! `weft_download` against a loopback fixture server: concurrency limits, resume, atomic
//! completion, retries, proxies and cancellation, one test per behaviour.
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

mod fixture;

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fixture::{Fixture, content};
use tokio::sync::Notify;
use weft_core::context::Context;
use weft_download::{
    Config, DownloadError, Downloader, HttpError, Outcome, Partial, Progress, Proxies, Report,
    Request, Sha256Digest, Tracker,
};

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// A config for tests: tiny backoff so retries cost no time, and no proxy whatever the
/// environment says (the fixture is on loopback).
fn config(dir: &Path) -> Config {
    Config::new(dir)
        .proxies(Proxies::none())
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
        .max_attempts(3)
}

async fn run(config: Config, urls: &[String]) -> Report {
    let requests = urls.iter().map(|u| Request::parse(u).unwrap()).collect();
    Downloader::new(config)
        .unwrap()
        .run(&Context::background(), requests)
        .await
}

/// Names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_content(path: &Path, size: usize) {
    let got = std::fs::read(path).unwrap();
    assert_eq!(got.len(), size, "{}", path.display());
    assert!(
        got == content(size),
        "content of {} differs",
        path.display()
    );
}

#[tokio::test]
async fn downloads_many_files_and_reports_them_in_input_order() {
    let fx = Fixture::start(300_000).await;
    let dir = tempfile::tempdir().unwrap();
    // Sizes decreasing so later files tend to finish first: order must still be input order.
    let sizes: Vec<usize> = (0..24).map(|i| 300_000 - i * 12_000).collect();
    let urls: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| fx.url(&format!("/gen/{s}/f{i}.bin")))
        .collect();
    let report = run(config(dir.path()).jobs(nz(8)).per_host(nz(8)), &urls).await;
    assert_eq!(report.counts(), (24, 0, 0));
    for (i, r) in report.results.iter().enumerate() {
        assert_eq!(r.url.as_str(), urls[i]);
        let path = r.path.as_ref().unwrap();
        assert_eq!(path, &dir.path().join(format!("f{i}.bin")));
        assert_eq!(r.bytes, sizes[i] as u64);
        assert_eq!(r.attempts, 1);
        assert_content(path, sizes[i]);
    }
    // Nothing but the final files is left behind.
    assert_eq!(listing(dir.path()).len(), 24);
    assert!(report.interrupted.is_none());
}

/// Holds every body until the test lets it through, releasing one each time `limit` bodies are
/// in flight; the fixture records the most bodies it ever sent at once.
async fn max_concurrency(jobs: usize, per_host: usize, files: usize) -> usize {
    let fx = Arc::new(Fixture::start(1000).await);
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = (0..files)
        .map(|i| fx.url(&format!("/gate/1000/g{i}.bin")))
        .collect();
    let cfg = config(dir.path()).jobs(nz(jobs)).per_host(nz(per_host));
    let runner = tokio::spawn(async move { run(cfg, &urls).await });
    let limit = jobs.min(per_host);
    let mut active = fx.active();
    for left in (1..=files).rev() {
        let want = limit.min(left);
        active.wait_for(|(now, _)| *now >= want).await.unwrap();
        fx.release(1);
    }
    let report = runner.await.unwrap();
    assert_eq!(report.counts(), (files, 0, 0));
    active.borrow().1
}

#[tokio::test]
async fn per_host_limit_bounds_concurrent_requests() {
    assert_eq!(max_concurrency(16, 3, 12).await, 3);
}

#[tokio::test]
async fn global_limit_bounds_concurrent_requests() {
    assert_eq!(max_concurrency(2, 16, 10).await, 2);
}

/// Two hosts (two fixture servers, so two ports), 6 files each, every body held until the test
/// lets one through; 3 workers, 2 per host. The first host's files come first in the input, yet
/// the second host's first download runs beside them: a worker never waits for a busy host
/// while another host has work. As bodies are then let through one at a time, neither limit is
/// ever exceeded and every download completes.
#[tokio::test]
async fn global_and_per_host_limits_hold_together_across_hosts() {
    let fixtures = Fixture::start_group(1000, 2).await;
    let (a, b) = (&fixtures[0], &fixtures[1]);
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = (0..6)
        .map(|i| a.url(&format!("/gate/1000/a{i}.bin")))
        .chain((0..6).map(|i| b.url(&format!("/gate/1000/b{i}.bin"))))
        .collect();
    let cfg = config(dir.path()).jobs(nz(3)).per_host(nz(2));
    let runner = tokio::spawn(async move { run(cfg, &urls).await });

    let (mut on_a, mut on_b, mut total) = (a.active(), b.active(), a.group_active());
    on_a.wait_for(|(now, _)| *now == 2).await.unwrap();
    on_b.wait_for(|(now, _)| *now == 1).await.unwrap();
    let mut left = [6usize, 6];
    while left != [0, 0] {
        let want = 3.min(left[0].min(2) + left[1].min(2));
        total.wait_for(|(now, _)| *now >= want).await.unwrap();
        // Let through a body of a host that has one at the gate, while it has files left.
        let a_busy = a.active().borrow().0 > 0;
        let host = if left[0] > 0 && (a_busy || left[1] == 0) {
            0
        } else {
            1
        };
        fixtures[host].release(1);
        left[host] -= 1;
        // Wait for that body to end, so the next round counts only bodies at the gate.
        let ended = 6 - left[host];
        let mut finished = fixtures[host].finished();
        finished.wait_for(|n| *n >= ended).await.unwrap();
    }
    let report = runner.await.unwrap();
    assert_eq!(report.counts(), (12, 0, 0));
    assert_eq!(a.active().borrow().1, 2, "most at once on the first host");
    assert_eq!(b.active().borrow().1, 2, "most at once on the second host");
    assert_eq!(total.borrow().1, 3, "most at once in all");
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let fx = Fixture::start(10_000).await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(config(dir.path()), &[fx.url("/flaky/2/10000/f.bin")]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.attempts, 3);
    assert_eq!(fx.seen("/flaky/2/10000/f.bin").len(), 3);
    assert_content(&dir.path().join("f.bin"), 10_000);
}

#[tokio::test]
async fn persistent_server_errors_fail_after_the_attempt_limit() {
    let fx = Fixture::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(config(dir.path()), &[fx.url("/status/500/e.bin")]).await;
    let r = &report.results[0];
    assert!(
        matches!(
            r.outcome,
            Outcome::Failed(DownloadError::Status { status: 500, .. })
        ),
        "{}",
        r.outcome
    );
    assert_eq!(r.attempts, 3);
    assert_eq!(fx.seen("/status/500/e.bin").len(), 3);
    assert!(listing(dir.path()).is_empty());
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fx = Fixture::start(10).await;
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        fx.url("/status/404/missing.bin"),
        fx.url("/status/403/no.bin"),
    ];
    let report = run(config(dir.path()), &urls).await;
    for (r, code) in report.results.iter().zip([404, 403]) {
        assert!(
            matches!(&r.outcome, Outcome::Failed(DownloadError::Status { status, .. }) if *status == code),
            "{}",
            r.outcome
        );
        assert_eq!(r.attempts, 1);
    }
    assert_eq!(fx.seen("/status/404/missing.bin").len(), 1);
    assert!(listing(dir.path()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn too_many_requests_waits_for_retry_after() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let start = tokio::time::Instant::now();
    let report = run(config(dir.path()), &[fx.url("/retry-after/7/1000/r.bin")]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.attempts, 2);
    // The backoff is 1-2 ms: only Retry-After explains a 7 s wait (virtual time).
    assert!(
        start.elapsed() >= Duration::from_secs(7),
        "{:?}",
        start.elapsed()
    );
    assert_content(&dir.path().join("r.bin"), 1000);
}

#[tokio::test]
async fn retry_after_beyond_the_limit_fails_without_waiting() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path()).max_retry_after(Duration::from_secs(60));
    let report = run(cfg, &[fx.url("/retry-after/3600/1000/r.bin")]).await;
    let r = &report.results[0];
    assert!(
        matches!(r.outcome, Outcome::Failed(DownloadError::RetryAfterTooLong(d)) if d == Duration::from_secs(3600)),
        "{}",
        r.outcome
    );
    assert_eq!(r.attempts, 1);
}

#[tokio::test]
async fn a_dropped_connection_resumes_with_a_validated_range() {
    let fx = Fixture::start(1_000_000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = "/drop/300000/1000000/d.bin";
    let report = run(config(dir.path()), &[fx.url(path)]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.attempts, 2);
    assert!(
        r.resumed_from > 0 && r.resumed_from <= 300_000,
        "{}",
        r.resumed_from
    );
    let seen = fx.seen(path);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].range, None);
    assert_eq!(seen[1].range, Some(format!("bytes={}-", r.resumed_from)));
    assert_eq!(seen[1].if_range.as_deref(), Some("\"gen-1000000\""));
    assert_content(&dir.path().join("d.bin"), 1_000_000);
    assert_eq!(listing(dir.path()), ["d.bin"]);
}

/// The connection's I/O runs inside the download's own task (http.rs, `drive`): a server that
/// closes it mid-body must still end that download with the connection's error (not a hang,
/// and not a short file taken for a whole one), keep what arrived as a resumable `.part`, and
/// let the next run finish from there.
#[tokio::test]
async fn a_connection_closed_mid_body_fails_clearly_and_leaves_a_resumable_part() {
    let fx = Fixture::start(1_000_000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = "/drop/300000/1000000/m.bin";
    let report = run(config(dir.path()).max_attempts(1), &[fx.url(path)]).await;
    let r = &report.results[0];
    assert!(
        matches!(
            &r.outcome,
            Outcome::Failed(DownloadError::Http(HttpError::Exchange(_)))
        ),
        "{}",
        r.outcome
    );
    let Outcome::Failed(error) = &r.outcome else {
        unreachable!()
    };
    assert!(error.is_retryable(), "{error}");
    let part = dir.path().join("m.bin.part");
    assert_eq!(r.path.as_deref(), Some(part.as_path()));
    assert!(
        matches!(&r.partial, Some(Partial::Kept { validator }) if validator.starts_with("ETag")),
        "{:?}",
        r.partial
    );
    let kept = std::fs::read(&part).unwrap();
    assert!(!kept.is_empty() && kept.len() <= 300_000, "{}", kept.len());
    assert!(kept[..] == content(1_000_000)[..kept.len()]);
    assert!(!dir.path().join("m.bin").exists());

    let again = run(config(dir.path()).max_attempts(1), &[fx.url(path)]).await;
    let r = &again.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.resumed_from, kept.len() as u64);
    assert_content(&dir.path().join("m.bin"), 1_000_000);
    assert_eq!(listing(dir.path()), ["m.bin"]);
}

#[tokio::test]
async fn resume_uses_last_modified_when_there_is_no_etag() {
    let fx = Fixture::start(200_000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = "/lm/200000/l.bin";
    seed_part(
        dir.path(),
        "l.bin",
        &fx.url(path),
        Some(("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT")),
        &content(200_000)[..50_000],
    );
    let report = run(config(dir.path()), &[fx.url(path)]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.resumed_from, 50_000);
    assert_eq!(fx.seen(path)[0].range.as_deref(), Some("bytes=50000-"));
    assert_content(&dir.path().join("l.bin"), 200_000);
}

/// Leaves `NAME.part` (and its metadata when `validator` is given) as an interrupted run would.
fn seed_part(dir: &Path, name: &str, url: &str, validator: Option<(&str, &str)>, data: &[u8]) {
    std::fs::write(dir.join(format!("{name}.part")), data).unwrap();
    if let Some((key, value)) = validator {
        std::fs::write(
            dir.join(format!("{name}.part.meta")),
            format!("weft-download-part 1\nurl {url}\n{key} {value}\n"),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_server_without_range_support_restarts_cleanly() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = "/norange/100000/n.bin";
    // A wrong prefix: kept, it would corrupt the file.
    seed_part(
        dir.path(),
        "n.bin",
        &fx.url(path),
        Some(("etag", "\"gen-100000\"")),
        &[0xAA; 40_000],
    );
    let report = run(config(dir.path()), &[fx.url(path)]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.resumed_from, 0);
    assert_eq!(fx.seen(path)[0].range.as_deref(), Some("bytes=40000-"));
    assert_content(&dir.path().join("n.bin"), 100_000);
    assert_eq!(listing(dir.path()), ["n.bin"]);
}

#[tokio::test]
async fn a_changed_validator_restarts_cleanly() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = "/gen/100000/c.bin";
    seed_part(
        dir.path(),
        "c.bin",
        &fx.url(path),
        Some(("etag", "\"old\"")),
        &[0xAA; 40_000],
    );
    let report = run(config(dir.path()), &[fx.url(path)]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.resumed_from, 0);
    assert_eq!(fx.seen(path)[0].if_range.as_deref(), Some("\"old\""));
    assert_content(&dir.path().join("c.bin"), 100_000);
}

#[tokio::test]
async fn an_entity_that_changes_between_attempts_restarts_cleanly() {
    let fx = Fixture::start(200_000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = "/changing/70000/200000/v.bin";
    let report = run(config(dir.path()), &[fx.url(path)]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    let seen = fx.seen(path);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""));
    assert_eq!(
        r.resumed_from, 0,
        "the server answered 200: the old prefix is dropped"
    );
    assert_content(&dir.path().join("v.bin"), 200_000);
}

#[tokio::test]
async fn a_partial_file_without_metadata_is_not_trusted() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = "/gen/100000/m.bin";
    seed_part(dir.path(), "m.bin", &fx.url(path), None, &[0xAA; 40_000]);
    let report = run(config(dir.path()), &[fx.url(path)]).await;
    assert!(report.results[0].outcome.is_complete());
    assert_eq!(fx.seen(path)[0].range, None);
    assert_content(&dir.path().join("m.bin"), 100_000);
}

#[tokio::test]
async fn a_body_that_keeps_dropping_never_appears_at_its_final_name() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = "/dropalways/20000/100000/t.bin";
    let report = run(config(dir.path()).max_attempts(2), &[fx.url(path)]).await;
    let r = &report.results[0];
    assert!(matches!(r.outcome, Outcome::Failed(_)), "{}", r.outcome);
    assert_eq!(r.attempts, 2);
    assert!(!dir.path().join("t.bin").exists());
    // What arrived is kept for a later resume, and it is a correct prefix.
    let part = dir.path().join("t.bin.part");
    assert_eq!(r.path.as_deref(), Some(part.as_path()));
    let kept = std::fs::read(&part).unwrap();
    assert_eq!(kept.len() as u64, r.bytes);
    assert!(kept.len() <= 40_000);
    assert!(kept[..] == content(100_000)[..kept.len()]);
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_fails_and_is_not_placed() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        config(dir.path()).max_attempts(2),
        &[fx.url("/short/100000/s.bin")],
    )
    .await;
    let r = &report.results[0];
    assert!(matches!(r.outcome, Outcome::Failed(_)), "{}", r.outcome);
    assert_eq!(r.attempts, 2);
    assert!(!dir.path().join("s.bin").exists());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_times_out_and_keeps_its_partial_file() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path())
        .max_attempts(2)
        .idle_timeout(Duration::from_secs(5));
    let report = run(
        cfg,
        &[
            fx.url("/stall/1000/100000/s.bin"),
            fx.url("/stallhead/h.bin"),
        ],
    )
    .await;
    for r in &report.results {
        assert!(
            matches!(r.outcome, Outcome::Failed(DownloadError::IdleTimeout(_))),
            "{}",
            r.outcome
        );
        assert_eq!(r.attempts, 2);
    }
    assert!(!dir.path().join("s.bin").exists());
    // 1000 bytes per attempt, the second resuming after the first.
    let kept = std::fs::read(dir.path().join("s.bin.part")).unwrap();
    assert!(kept == content(2000), "kept {} bytes", kept.len());
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit_and_loops_fail() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        fx.url("/redirect/3/1000/r.bin"),
        fx.url("/redirect/5/1000/far.bin"),
        fx.url("/loop/a"),
    ];
    let report = run(config(dir.path()).max_redirects(4), &urls).await;
    assert!(
        report.results[0].outcome.is_complete(),
        "{}",
        report.results[0].outcome
    );
    assert_content(&dir.path().join("r.bin"), 1000);
    for r in &report.results[1..] {
        assert!(
            matches!(r.outcome, Outcome::Failed(DownloadError::Redirect(_))),
            "{}",
            r.outcome
        );
        assert_eq!(r.attempts, 1, "redirect errors are not retried");
    }
    assert_eq!(fx.seen("/loop/a").len(), 1, "the loop is caught at once");
    assert_eq!(listing(dir.path()), ["r.bin"]);
}

#[tokio::test]
async fn content_disposition_names_are_used_and_sanitised() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let urls = [
        fx.url(&format!(
            "/cd/100/x?cd={}",
            enc("attachment; filename=\"../../evil.txt\"")
        )),
        fx.url(&format!(
            "/cd/200/y?cd={}",
            enc("attachment; filename=\"a.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt")
        )),
        fx.url(&format!(
            "/cd/300/fallback.bin?cd={}",
            enc("attachment; filename=\"..\"")
        )),
    ];
    let report = run(config(dir.path()), &urls).await;
    assert_eq!(report.counts(), (3, 0, 0));
    assert_content(&dir.path().join("evil.txt"), 100);
    assert_content(&dir.path().join("été.txt"), 200);
    assert_content(&dir.path().join("fallback.bin"), 300);
    assert!(!dir.path().parent().unwrap().join("evil.txt").exists());
}

#[tokio::test]
async fn name_collisions_never_overwrite_unless_asked() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("same.bin"), b"precious").unwrap();
    let urls = [fx.url("/gen/10/same.bin"), fx.url("/gen/20/same.bin?again")];
    let report = run(config(dir.path()), &urls).await;
    assert_eq!(report.counts(), (2, 0, 0));
    assert_eq!(
        std::fs::read(dir.path().join("same.bin")).unwrap(),
        b"precious"
    );
    let mut got: Vec<_> = report
        .results
        .iter()
        .map(|r| r.path.clone().unwrap())
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            dir.path().join("same (1).bin"),
            dir.path().join("same (2).bin")
        ]
    );

    // With overwrite, the existing file is replaced, but the two downloads still do not clobber
    // each other.
    let report = run(config(dir.path()).overwrite(true), &urls).await;
    assert_eq!(report.counts(), (2, 0, 0));
    let sizes: Vec<u64> = report
        .results
        .iter()
        .map(|r| std::fs::metadata(r.path.as_ref().unwrap()).unwrap().len())
        .collect();
    assert_eq!(sizes, [10, 20]);
    assert_ne!(
        std::fs::read(dir.path().join("same.bin")).unwrap(),
        b"precious"
    );
}

#[tokio::test]
async fn checksums_are_verified_before_the_file_is_placed() {
    use sha2::{Digest, Sha256};
    let fx = Fixture::start(300_000).await;
    let dir = tempfile::tempdir().unwrap();
    let good = Sha256Digest(Sha256::digest(content(300_000)).into());
    let bad = Sha256Digest([7; 32]);
    let requests = vec![
        Request::parse(&fx.url("/gen/300000/good.bin"))
            .unwrap()
            .with_sha256(good),
        Request::parse(&fx.url("/gen/300000/bad.bin"))
            .unwrap()
            .with_sha256(bad),
        // Resumed (after a drop): the hash must cover the prefix read back from disk.
        Request::parse(&fx.url("/drop/100000/300000/resumed.bin"))
            .unwrap()
            .with_sha256(good),
    ];
    let report = Downloader::new(config(dir.path()))
        .unwrap()
        .run(&Context::background(), requests)
        .await;
    assert!(report.results[0].outcome.is_complete());
    assert!(
        matches!(
            report.results[1].outcome,
            Outcome::Failed(DownloadError::ChecksumMismatch { .. })
        ),
        "{}",
        report.results[1].outcome
    );
    assert_eq!(report.results[1].attempts, 1);
    assert!(
        report.results[2].outcome.is_complete(),
        "{}",
        report.results[2].outcome
    );
    assert!(report.results[2].resumed_from > 0);
    // The mismatching file is gone entirely: neither placed nor kept for resume.
    assert_eq!(listing(dir.path()), ["good.bin", "resumed.bin"]);
}

#[tokio::test]
async fn files_over_the_size_limit_are_refused() {
    let fx = Fixture::start(200_000).await;
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        fx.url("/gen/200000/announced.bin"),
        fx.url("/nolen/200000/streamed.bin"),
        fx.url("/nolen/1000/small.bin"),
    ];
    let report = run(config(dir.path()).max_size(Some(100_000)), &urls).await;
    for r in &report.results[..2] {
        assert!(
            matches!(
                r.outcome,
                Outcome::Failed(DownloadError::TooLarge { limit: 100_000 })
            ),
            "{}",
            r.outcome
        );
        assert_eq!(r.attempts, 1);
    }
    assert!(report.results[2].outcome.is_complete());
    assert_eq!(listing(dir.path()), ["small.bin"]);
}

/// Signals when download `index` has received `bytes` bytes, and when download 0 ended.
struct Watch {
    index: usize,
    bytes: u64,
    reached: Arc<Notify>,
    first_done: Arc<Notify>,
}

struct WatchTracker {
    watching: Option<(u64, Arc<Notify>)>,
    seen: u64,
    on_end: Option<Arc<Notify>>,
}

impl Progress for Watch {
    fn begin(&self, index: usize, _: &str) -> Box<dyn Tracker> {
        Box::new(WatchTracker {
            watching: (index == self.index).then(|| (self.bytes, self.reached.clone())),
            seen: 0,
            on_end: (index == 0).then(|| self.first_done.clone()),
        })
    }
}

impl Tracker for WatchTracker {
    fn attempt(&mut self, offset: u64, _: Option<u64>) {
        self.seen = offset;
    }
    fn advance(&mut self, bytes: u64) {
        self.seen += bytes;
        if let Some((want, n)) = &self.watching
            && self.seen >= *want
        {
            n.notify_one();
        }
    }
    fn end(&mut self, _: &Outcome) {
        if let Some(n) = &self.on_end {
            n.notify_one();
        }
    }
}

#[tokio::test]
async fn cancelling_the_context_keeps_partial_files_and_reports_what_finished() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        fx.url("/gen/5000/done.bin"),
        fx.url("/stallonce/30000/100000/slow.bin"),
        fx.url("/gen/5000/later.bin"),
    ];
    let requests: Vec<Request> = urls.iter().map(|u| Request::parse(u).unwrap()).collect();
    let watch = Arc::new(Watch {
        index: 1,
        bytes: 30_000,
        reached: Arc::default(),
        first_done: Arc::default(),
    });
    let (reached, first_done) = (watch.reached.clone(), watch.first_done.clone());
    // One per host: `later.bin` waits behind the stalled download.
    let downloader = Downloader::new(config(dir.path()).per_host(nz(1))).unwrap();
    let (ctx, cancel) = Context::background().with_cancel();
    let task = {
        let downloader = downloader.clone();
        tokio::spawn(async move { downloader.run_with_progress(&ctx, requests, watch).await })
    };
    first_done.notified().await;
    reached.notified().await;
    cancel.cancel_with("test stops");
    let report = task.await.unwrap();
    assert!(report.results[0].outcome.is_complete());
    assert!(matches!(report.results[1].outcome, Outcome::Cancelled));
    assert!(matches!(report.results[2].outcome, Outcome::Cancelled));
    assert_eq!(report.results[2].attempts, 0, "never started");
    assert_eq!(report.interrupted.as_deref(), Some("test stops"));
    assert_eq!(
        listing(dir.path()),
        ["done.bin", "slow.bin.part", "slow.bin.part.meta"]
    );
    let kept = std::fs::read(dir.path().join("slow.bin.part")).unwrap();
    assert!(
        kept == content(30_000),
        "kept {} bytes, want all 30000 received",
        kept.len()
    );

    // The next run resumes where the first stopped.
    let report = run(config(dir.path()), &urls[1..2]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(r.resumed_from, 30_000);
    assert_content(&dir.path().join("slow.bin"), 100_000);
}

#[tokio::test]
async fn dropping_the_run_future_mid_flight_keeps_the_partial_file_and_no_final_name() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let requests = vec![Request::parse(&fx.url("/stall/30000/100000/x.bin")).unwrap()];
    let watch = Arc::new(Watch {
        index: 0,
        bytes: 30_000,
        reached: Arc::default(),
        first_done: Arc::default(),
    });
    let (reached, first_done) = (watch.reached.clone(), watch.first_done.clone());
    let downloader = Downloader::new(config(dir.path())).unwrap();
    let ctx = Context::background();
    tokio::select! {
        _ = downloader.run_with_progress(&ctx, requests, watch) => panic!("the stalled download finished"),
        _ = reached.notified() => {}
    }
    // The future is dropped: the download stops as if cancelled, in the background, keeping
    // every byte it received in its partial file. Nothing is ever at x.bin.
    assert!(!dir.path().join("x.bin").exists());
    first_done.notified().await;
    assert_eq!(listing(dir.path()), ["x.bin.part", "x.bin.part.meta"]);
    let kept = std::fs::read(dir.path().join("x.bin.part")).unwrap();
    assert!(
        kept == content(30_000),
        "kept {} bytes, want all 30000 received",
        kept.len()
    );
}

#[tokio::test]
async fn an_unreachable_host_is_a_retried_connection_error() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        config(dir.path()),
        &[format!("http://127.0.0.1:{port}/a.bin")],
    )
    .await;
    let r = &report.results[0];
    assert!(
        matches!(r.outcome, Outcome::Failed(DownloadError::Http(_))),
        "{}",
        r.outcome
    );
    assert_eq!(r.attempts, 3);
}

#[tokio::test]
async fn connections_are_reused_across_downloads() {
    // 300 files, 16 at a time against one host: each download hands its connection to the
    // next, so no more connections are opened than downloads run at once. (A pool that takes
    // connections back from a task of its own, as reqwest's does, opened 25 here.)
    let fx = Fixture::start(16_384).await;
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = (0..300)
        .map(|i| fx.url(&format!("/gen/16384/f{i}.bin")))
        .collect();
    let report = run(config(dir.path()).jobs(nz(16)).per_host(nz(16)), &urls).await;
    assert_eq!(report.counts(), (300, 0, 0));
    let opened = fx.connections();
    assert!(
        opened <= 16,
        "{opened} connections for 300 files at 16 at a time"
    );
    // One at a time: a single connection for all of them.
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = (0..20)
        .map(|i| fx.url(&format!("/gen/1000/f{i}.bin")))
        .collect();
    let report = run(config(dir.path()).jobs(nz(1)), &urls).await;
    assert_eq!(report.counts(), (20, 0, 0));
    assert_eq!(fx.connections(), 1);
}

#[tokio::test]
async fn redirects_reuse_the_connection() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        config(dir.path()).jobs(nz(1)),
        &[fx.url("/redirect/3/1000/r.bin")],
    )
    .await;
    assert!(report.all_complete());
    assert_eq!(
        fx.connections(),
        1,
        "the redirect bodies were read, not dropped"
    );
}

#[tokio::test]
async fn connections_the_server_closes_are_replaced_without_a_failed_attempt() {
    // Every response says `Connection: close`: each download needs a new connection, and the
    // closed one left in between must not cost an attempt.
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = (0..10)
        .map(|i| fx.url(&format!("/close/1000/c{i}.bin")))
        .collect();
    let report = run(config(dir.path()).jobs(nz(1)).max_attempts(1), &urls).await;
    for r in &report.results {
        assert!(r.outcome.is_complete(), "{}", r.outcome);
        assert_eq!(r.attempts, 1);
    }
    assert_eq!(fx.connections(), 10);
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_error() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://{}/gen/1000/t.bin", fx.addr);
    let report = run(config(dir.path()).max_attempts(1), &[url]).await;
    let r = &report.results[0];
    assert!(
        matches!(
            &r.outcome,
            Outcome::Failed(DownloadError::Http(HttpError::Tls { .. }))
        ),
        "{}",
        r.outcome
    );
    assert!(listing(dir.path()).is_empty());
}

/// A plain `http` URL goes to the proxy in absolute form: the host `proxied.invalid` cannot
/// be resolved (RFC 6761), so the download succeeds only if the fixture, acting as the proxy,
/// was asked for the whole URL; and one connection to the proxy serves all the files.
#[tokio::test]
async fn http_urls_go_through_the_proxy_in_absolute_form() {
    let fx = Fixture::start(1 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let proxies = Proxies::none()
        .http(&format!("http://user:pw@{}", fx.addr))
        .unwrap();
    let urls: Vec<String> = (0..5)
        .map(|i| format!("http://proxied.invalid/gen/5000/p{i}.bin"))
        .collect();
    let report = run(config(dir.path()).jobs(nz(1)).proxies(proxies), &urls).await;
    for r in &report.results {
        assert!(matches!(r.outcome, Outcome::Complete), "{}", r.outcome);
    }
    assert_eq!(
        std::fs::read(dir.path().join("p3.bin")).unwrap(),
        content(5000)
    );
    assert_eq!(fx.connections(), 1);
    let seen = fx.seen("/gen/5000/p3.bin");
    assert_eq!(seen[0].target, "http://proxied.invalid/gen/5000/p3.bin");
    // "user:pw"
    assert_eq!(seen[0].proxy_auth.as_deref(), Some("Basic dXNlcjpwdw=="));
}

/// No proxy for hosts `no_proxy` names, even when one is set.
#[tokio::test]
async fn no_proxy_hosts_are_fetched_directly() {
    let fx = Fixture::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    // A proxy nobody listens on: using it would fail the download.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let proxies = Proxies::none()
        .http(&format!("http://{dead_addr}"))
        .unwrap()
        .no_proxy("localhost,127.0.0.1");
    let url = format!("http://{}/gen/1000/d.bin", fx.addr);
    let report = run(config(dir.path()).proxies(proxies), &[url]).await;
    assert!(
        matches!(report.results[0].outcome, Outcome::Complete),
        "{}",
        report.results[0].outcome
    );
    assert_eq!(fx.seen("/gen/1000/d.bin")[0].target, "/gen/1000/d.bin");
}

/// An `https` URL asks the proxy for a `CONNECT` tunnel (with the credentials of the proxy
/// URL); a proxy that refuses with 407 fails the download at once, naming the proxy and the
/// status, without retries.
#[tokio::test]
async fn https_urls_tunnel_with_connect_and_a_refusal_is_reported() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let proxy = tokio::spawn(async move {
        let mut heads = Vec::new();
        // Every attempt has been answered by the time the run returns and `done` is sent, so
        // a retry would show here as a second head.
        loop {
            let mut s = tokio::select! {
                biased;
                a = listener.accept() => a.unwrap().0,
                _ = &mut done_rx => break,
            };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).await.unwrap() == 1 {
                head.push(b[0]);
            }
            s.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            heads.push(String::from_utf8(head).unwrap());
        }
        heads
    });
    let dir = tempfile::tempdir().unwrap();
    let proxies = Proxies::none()
        .https(&format!("http://al:pw@{addr}"))
        .unwrap();
    let url = "https://secure.invalid:8443/x.bin".to_owned();
    let report = run(config(dir.path()).proxies(proxies), &[url]).await;
    done_tx.send(()).unwrap();
    let r = &report.results[0];
    assert!(
        matches!(
            &r.outcome,
            Outcome::Failed(DownloadError::Http(HttpError::ProxyRefused { status: 407, target, .. }))
                if target == "secure.invalid:8443"
        ),
        "{}",
        r.outcome
    );
    assert_eq!(r.attempts, 1);
    let heads = proxy.await.unwrap();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].starts_with("CONNECT secure.invalid:8443 HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    // "al:pw"
    assert!(
        heads[0].contains("Proxy-Authorization: Basic YWw6cHc=\r\n"),
        "{}",
        heads[0]
    );
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn outcome_display_includes_the_causes() {
    let e = DownloadError::Status {
        status: 503,
        retry_after: None,
    };
    let shown = Outcome::Failed(e).to_string();
    assert_eq!(shown, "failed: server answered 503");
}
