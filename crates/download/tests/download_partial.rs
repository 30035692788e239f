//! What a download that stops leaves on disk: a `.part` file only when it can be resumed (the
//! server gave a validator), and a report saying which were kept and why (a full disk:
//! download_full_disk.rs); symbolic links planted at the partial names are replaced, never
//! written through.
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
    Config, Downloader, Outcome, Partial, Progress, Proxies, Report, Request, Tracker,
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

/// Plants symbolic links to `victim` at `names` in `dir`.
#[cfg(unix)]
fn plant(dir: &Path, names: &[&str], victim: &Path) {
    for name in names {
        std::os::unix::fs::symlink(victim, dir.join(name)).unwrap();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_planted_at_the_partial_name_is_replaced_not_written_through() {
    let fx = Fixture::start(300_000).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "not yours to write\n").unwrap();
    // A fresh download, and one whose metadata makes the planted link look resumable.
    plant(
        &out,
        &["a.bin.part", "b.bin.part", "b.bin.part.meta"],
        &victim,
    );
    let b_url = fx.url("/gen/300000/b.bin");
    let report = run(config(&out), &[fx.url("/gen/300000/a.bin"), b_url]).await;
    assert_eq!(report.counts(), (2, 0, 0));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "not yours to write\n"
    );
    for name in ["a.bin", "b.bin"] {
        assert!(std::fs::read(out.join(name)).unwrap() == content(300_000));
    }
    assert_eq!(listing(&out), ["a.bin", "b.bin"]);
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_at_a_resumable_partial_name_is_not_resumed_through() {
    let fx = Fixture::start(300_000).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "not yours to write\n").unwrap();
    plant(&out, &["a.bin.part"], &victim);
    let url = fx.url("/gen/300000/a.bin");
    std::fs::write(
        out.join("a.bin.part.meta"),
        format!("weft-download-part 1\nurl {url}\netag \"gen-300000\"\n"),
    )
    .unwrap();
    let report = run(config(&out), &[url]).await;
    assert_eq!(report.counts(), (1, 0, 0));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "not yours to write\n"
    );
    assert!(std::fs::read(out.join("a.bin")).unwrap() == content(300_000));
    // Started over: no Range request went out.
    assert_eq!(fx.seen("/gen/300000/a.bin")[0].range, None);
}

#[cfg(unix)]
#[tokio::test]
async fn a_split_download_does_not_write_through_symlinks_at_its_partial_names() {
    let size = 4 << 20;
    let fx = Fixture::start(size).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "not yours to write\n").unwrap();
    plant(&out, &["s.bin.part", "s.bin.part.meta.tmp"], &victim);
    let config = config(&out)
        .split(std::num::NonZeroUsize::new(4))
        .per_host(std::num::NonZeroUsize::new(4).unwrap());
    let report = run(config, &[fx.url(&format!("/gen/{size}/s.bin"))]).await;
    assert_eq!(report.counts(), (1, 0, 0), "{}", report.results[0].outcome);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "not yours to write\n"
    );
    assert!(std::fs::read(out.join("s.bin")).unwrap() == content(size));
    assert!(
        fx.seen(&format!("/gen/{size}/s.bin")).len() > 1,
        "it was split"
    );
    assert_eq!(listing(&out), ["s.bin"]);
}
