//! HTTP/2 over TLS (ALPN), HTTP/1.1 fallback, `Config::http1_only`, `Config::cacert`, and
//! untrusted certificates, against the loopback TLS fixture server.
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

mod fixture;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::Version;
use fixture::{Fixture, content};
use weft_core::context::Context;
use weft_download::{
    Config, DownloadError, Downloader, HttpError, Outcome, Proxies, Report, Request,
};

const MIB: usize = 1 << 20;

/// Writes the fixture's CA certificate next to the downloads and returns its path.
fn ca_file(fx: &Fixture, dir: &Path) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, fx.ca_pem.as_deref().unwrap()).unwrap();
    path
}

/// Trusting the fixture's CA, no proxy, tiny backoff; downloads go to `dir/out`.
fn config(fx: &Fixture, dir: &Path) -> Config {
    Config::new(dir.join("out"))
        .proxies(Proxies::none())
        .cacert(ca_file(fx, dir))
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

fn versions(fx: &Fixture, path: &str) -> Vec<Version> {
    fx.seen(path).iter().map(|s| s.version).collect()
}

#[tokio::test]
async fn a_tls_server_offering_h2_is_spoken_to_in_http2() {
    let fx = Fixture::start_tls(100_000, true).await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(config(&fx, dir.path()), &[fx.url("/gen/100000/a.bin")]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(
        std::fs::read(dir.path().join("out/a.bin")).unwrap(),
        content(100_000)
    );
    assert_eq!(versions(&fx, "/gen/100000/a.bin"), [Version::HTTP_2]);
}

#[tokio::test]
async fn a_tls_server_offering_only_http11_is_spoken_to_in_http11() {
    let fx = Fixture::start_tls(100_000, false).await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(config(&fx, dir.path()), &[fx.url("/gen/100000/a.bin")]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    assert_eq!(
        std::fs::read(dir.path().join("out/a.bin")).unwrap(),
        content(100_000)
    );
    assert_eq!(versions(&fx, "/gen/100000/a.bin"), [Version::HTTP_11]);
}

#[tokio::test]
async fn http1_only_speaks_http11_to_a_server_offering_h2() {
    let fx = Fixture::start_tls(10_000, true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&fx, dir.path()).http1_only(true);
    let report = run(config, &[fx.url("/gen/10000/a.bin")]).await;
    assert!(report.all_complete(), "{}", report.results[0].outcome);
    assert_eq!(versions(&fx, "/gen/10000/a.bin"), [Version::HTTP_11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_small_files_over_h2_share_one_connection() {
    let fx = Fixture::start_tls(16_384, true).await;
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = (0..50)
        .map(|i| fx.url(&format!("/gen/16384/f{i}.bin")))
        .collect();
    let config = config(&fx, dir.path())
        .jobs(NonZeroUsize::new(16).unwrap())
        .per_host(NonZeroUsize::new(8).unwrap());
    let report = run(config, &urls).await;
    assert_eq!(report.counts(), (50, 0, 0));
    for i in 0..50 {
        let got = std::fs::read(dir.path().join(format!("out/f{i}.bin"))).unwrap();
        assert!(got == content(16_384), "f{i}.bin differs");
        assert_eq!(
            versions(&fx, &format!("/gen/16384/f{i}.bin")),
            [Version::HTTP_2]
        );
    }
    // The eight downloads that start together wait for the first connection to say h2,
    // rather than each opening one.
    assert_eq!(fx.connections(), 1, "one TCP connection for all 50 files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segmented_download_over_h2_is_byte_identical_and_uses_one_connection() {
    let size = 4 * MIB;
    let fx = Fixture::start_tls(size, true).await;
    let dir = tempfile::tempdir().unwrap();
    let path = format!("/gen/{size}/s.bin");
    let config = config(&fx, dir.path())
        .split(NonZeroUsize::new(4))
        .per_host(NonZeroUsize::new(4).unwrap());
    let report = run(config, &[fx.url(&path)]).await;
    let r = &report.results[0];
    assert!(r.outcome.is_complete(), "{}", r.outcome);
    let got = std::fs::read(dir.path().join("out/s.bin")).unwrap();
    assert!(got == content(size), "the file differs");
    let seen = fx.seen(&path);
    // A plain GET, then three validated ranges: four streams on one connection.
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| s.range.is_some()).count(), 3);
    assert!(
        seen.iter().all(|s| s.version == Version::HTTP_2),
        "{seen:?}"
    );
    assert_eq!(fx.connections(), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_at_once_with_an_error_naming_cacert() {
    let fx = Fixture::start_tls(10_000, true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path())
        .proxies(Proxies::none())
        .backoff(Duration::from_millis(1), Duration::from_millis(2));
    let report = run(config, &[fx.url("/gen/10000/a.bin")]).await;
    let r = &report.results[0];
    let Outcome::Failed(DownloadError::Http(e @ HttpError::UntrustedCertificate { .. })) =
        &r.outcome
    else {
        panic!("expected an untrusted certificate, got {}", r.outcome);
    };
    assert!(e.to_string().contains("--cacert"), "{e}");
    assert_eq!(
        r.attempts, 1,
        "retrying cannot make the certificate trusted"
    );
    assert!(fx.seen("/gen/10000/a.bin").is_empty());
}

#[tokio::test]
async fn a_cacert_file_without_a_certificate_is_refused_at_setup() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("empty.pem");
    std::fs::write(&pem, "").unwrap();
    let e = Downloader::new(Config::new(dir.path()).cacert(&pem)).unwrap_err();
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert!(source.contains("no PEM certificate"), "{source}");
    let missing = dir.path().join("missing.pem");
    assert!(Downloader::new(Config::new(dir.path()).cacert(&missing)).is_err());
}
