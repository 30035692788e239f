//! A write that fails for lack of room removes the partial file that cannot be resumed.
//!
//! The full disk is a file-size limit (`RLIMIT_FSIZE`). The limit applies to every regular file
//! the process writes, the test harness's own output too when it is redirected to a file (as CI
//! logs are), so the test runs itself again as a child process whose output goes to pipes, and
//! only the child sets the limit. Writes past it fail with EFBIG, as they would with ENOSPC on a
//! full disk (once `SIGXFSZ`, which would end the process, is caught).
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns
#![cfg(target_os = "linux")]

mod fixture;

use std::path::Path;
use std::time::Duration;

use fixture::Fixture;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::signal::unix::{SignalKind, signal};
use weft_core::context::Context;
use weft_download::{Config, DownloadError, Downloader, Outcome, Proxies, Request};

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Set in the child process that runs under the file-size limit.
const CHILD: &str = "WEFT_TEST_FULL_DISK_CHILD";

#[test]
fn a_write_that_finds_no_room_removes_the_partial_file_that_cannot_be_resumed() {
    if std::env::var_os(CHILD).is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(under_the_limit());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_write_that_finds_no_room_removes_the_partial_file_that_cannot_be_resumed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "child under the limit failed:\n{text}"
    );
    // The child really ran the test (a filter that matched nothing would also succeed).
    assert!(text.contains("1 passed"), "{text}");
}

async fn under_the_limit() {
    let fx = Fixture::start(4 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    // Caught, so that a write past the limit fails with EFBIG instead of ending the process.
    let _xfsz = signal(SignalKind::from_raw(rustix::process::Signal::XFSZ.as_raw())).unwrap();
    let limit = getrlimit(Resource::Fsize);
    // The last body is written in two ways: its first 2 MiB by a blocking thread, which opens
    // the file; the rest on the receiving task (part.rs invariant 3), where the limit is met.
    for (size, room, name) in [
        (1000, 500, "small.bin"),
        (1_000_000, 500, "big.bin"),
        (4 << 20, 3 << 20, "large.bin"),
    ] {
        setrlimit(
            Resource::Fsize,
            Rlimit {
                current: Some(room),
                maximum: limit.maximum,
            },
        )
        .unwrap();
        let config = Config::new(dir.path())
            .proxies(Proxies::none())
            .backoff(Duration::from_millis(1), Duration::from_millis(2))
            .max_attempts(2);
        let requests = vec![Request::parse(&fx.url(&format!("/noval/{size}/{name}"))).unwrap()];
        let report = Downloader::new(config)
            .unwrap()
            .run(&Context::background(), requests)
            .await;
        let r = &report.results[0];
        match &r.outcome {
            Outcome::Failed(DownloadError::File { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(27), "EFBIG: {source}")
            }
            other => panic!("{name}: {other}"),
        }
        assert_eq!(r.path, None);
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }
}
