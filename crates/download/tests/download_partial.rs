//! What a download that stops leaves on disk: a `.part` file only when it can be resumed (the
//! server gave a validator), and a report saying which were kept and why; on a full disk too.
//! Loopback fixture only.
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

mod fixture;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fixture::{Fixture, content};
use tokio::sync::Notify;
use weft_core::context::Context;
use weft_download::{
    Config, DownloadError, Downloader, Outcome, Partial, Progress, Proxies, Report, Request,
    Tracker,
};

fn config(dir: &Path) -> Config {
    Config::new(dir)
        .proxies(Proxies::none())
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
        .max_attempts(2)
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

/// Notifies once every download has received at least `bytes`.
struct Reached {
    bytes: u64,
    left: std::sync::atomic::AtomicUsize,
    all: Arc<Notify>,
}

struct Watch(Arc<Reached>);

struct ReachedTracker(Arc<Reached>, u64, bool);

impl Progress for Watch {
    fn begin(&self, _: usize, _: &str) -> Box<dyn Tracker> {
        Box::new(ReachedTracker(self.0.clone(), 0, false))
    }
}

impl Tracker for ReachedTracker {
    fn attempt(&mut self, offset: u64, _: Option<u64>) {
        self.1 = offset;
    }
    fn advance(&mut self, bytes: u64) {
        self.1 += bytes;
        if !self.2 && self.1 >= self.0.bytes {
            self.2 = true;
            if self
                .0
                .left
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
                == 1
            {
                self.0.all.notify_one();
            }
        }
    }
    fn end(&mut self, _: &Outcome) {}
}

#[tokio::test]
async fn a_failed_download_without_a_validator_leaves_no_partial_file() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        config(dir.path()),
        &[fx.url("/novaldrop/20000/100000/n.bin")],
    )
    .await;
    let r = &report.results[0];
    assert!(matches!(r.outcome, Outcome::Failed(_)), "{}", r.outcome);
    assert_eq!(r.path, None);
    assert!(
        matches!(r.partial, Some(Partial::Removed { bytes }) if bytes > 0),
        "{:?}",
        r.partial
    );
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[tokio::test]
async fn cancelling_keeps_only_the_partial_files_that_can_be_resumed_and_says_which() {
    let fx = Fixture::start(100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        fx.url("/stall/30000/100000/v.bin"),
        fx.url("/novalstall/30000/100000/n.bin"),
    ];
    let requests: Vec<Request> = urls.iter().map(|u| Request::parse(u).unwrap()).collect();
    let reached = Arc::new(Reached {
        bytes: 30_000,
        left: 2.into(),
        all: Arc::default(),
    });
    let all = reached.all.clone();
    let downloader = Downloader::new(config(dir.path())).unwrap();
    let (ctx, cancel) = Context::background().with_cancel();
    let task = tokio::spawn(async move {
        downloader
            .run_with_progress(&ctx, requests, Arc::new(Watch(reached)))
            .await
    });
    all.notified().await;
    cancel.cancel();
    let report = task.await.unwrap();
    let (kept, removed) = (&report.results[0], &report.results[1]);
    assert!(matches!(kept.outcome, Outcome::Cancelled));
    assert_eq!(
        kept.partial,
        Some(Partial::Kept {
            validator: "ETag \"gen-100000\"".to_owned()
        })
    );
    assert_eq!(kept.path, Some(dir.path().join("v.bin.part")));
    assert_eq!(kept.bytes, 30_000);
    assert!(matches!(removed.outcome, Outcome::Cancelled));
    assert_eq!(removed.partial, Some(Partial::Removed { bytes: 30_000 }));
    assert_eq!(removed.path, None);
    assert_eq!(listing(dir.path()), ["v.bin.part", "v.bin.part.meta"]);
}

#[tokio::test]
async fn a_partial_file_of_another_url_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("o.bin.part"), content(100)).unwrap();
    std::fs::write(
        dir.path().join("o.bin.part.meta"),
        "weft-download-part 1\nurl http://127.0.0.1:9/elsewhere/o.bin\netag \"x\"\n",
    )
    .unwrap();
    // Nothing listens on port 9: the download fails before it writes anything.
    let report = run(
        config(dir.path()).connect_timeout(Duration::from_secs(2)),
        &["http://127.0.0.1:9/o.bin".to_owned()],
    )
    .await;
    assert!(matches!(report.results[0].outcome, Outcome::Failed(_)));
    assert_eq!(report.results[0].partial, None);
    assert_eq!(listing(dir.path()), ["o.bin.part", "o.bin.part.meta"]);
}

/// A full disk, for real: the partial file is a symbolic link to `/dev/full`, where every write
/// fails with ENOSPC.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_disk_removes_the_partial_file_that_cannot_be_resumed() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let fx = Fixture::start(1_000_000).await;
    let dir = tempfile::tempdir().unwrap();
    for (size, name) in [(1000, "small.bin"), (1_000_000, "big.bin")] {
        std::os::unix::fs::symlink("/dev/full", dir.path().join(format!("{name}.part"))).unwrap();
        let report = run(
            config(dir.path()),
            &[fx.url(&format!("/noval/{size}/{name}"))],
        )
        .await;
        let r = &report.results[0];
        match &r.outcome {
            Outcome::Failed(DownloadError::File { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(28), "ENOSPC: {source}")
            }
            other => panic!("{name}: {other}"),
        }
        assert_eq!(r.path, None);
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }
}
