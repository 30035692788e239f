//! Segmented downloads: one file over several connections, each fetching a byte range into the
//! same `.part` file with positioned writes.
//!
//! # Invariants
//!
//! 1. Every byte of the file comes from a response carrying the validator the download started
//!    with: each range request sends it in `If-Range` and checks the answer's own, so a file
//!    that changed on the server restarts the download instead of mixing two versions.
//! 2. The segment table is the one truth of who writes where: a segment's `pos..end` belongs to
//!    its worker alone; a steal moves `end` down only to a point at or past `pos` (under the
//!    lock), and the worker reads `end` under the same lock before each write.
//! 3. `written` counts only bytes on disk (after their write returned), so the `.part.meta`
//!    written from it never claims bytes that are not there. It is rewritten atomically (a
//!    temporary file, then a rename) at the start, every [`SAVE_EVERY`] while bytes arrive, and
//!    whenever a split attempt stops; a crash in between loses at most that much progress,
//!    never correctness. Saves are awaited by the attempt's loop, so none outlives the attempt.
//! 4. No write is left running when an attempt returns: workers are told to stop and are
//!    awaited, each writing what it holds first. A later restart truncating the file can then
//!    never be overwritten by a stale write.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;
use weft_core::context::Done;

use super::Shared;
use super::error::DownloadError;
use super::fetch::{Job, Stop, content_range, final_name};
use super::http::Response;
use super::part::{self, PartPaths, Target, Validator};
use super::progress::Tracker;
use super::rate::Limiter;

/// How often the segment table is saved while a split download runs, so that a process killed
/// without a chance to save (SIGKILL, a crash) resumes from at most this far back.
pub(crate) const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The smallest segment: a file is split into at most `size / MIN_SEGMENT` segments.
pub(crate) const MIN_SEGMENT: u64 = 1 << 20;

/// A worker that is done steals half of the largest remaining segment only when that leaves
/// both halves at least [`MIN_SEGMENT`]: a new request costs a round trip.
const STEAL_MIN: u64 = 2 * MIN_SEGMENT;

/// Files of at least this size are split when [`Config::split`](super::Config::split) is
/// automatic.
pub(crate) const AUTO_THRESHOLD: u64 = 64 << 20;

/// Segments of an automatic split.
pub(crate) const AUTO_SEGMENTS: usize = 4;

/// Body bytes one worker gathers before a positioned write on a blocking thread (once a write
/// was slow; until then each piece is written as it arrives, on the worker's task).
const FLUSH_AT: usize = 2 << 20;

const META_HEADER: &str = "weft-download-split 1";

/// One byte range of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seg {
    /// The next byte to receive.
    pub(crate) pos: u64,
    /// Bytes from the segment's start up to here are on disk.
    pub(crate) written: u64,
    /// The end (exclusive).
    pub(crate) end: u64,
    /// Whether a worker is on it.
    pub(crate) busy: bool,
}

impl Seg {
    fn new(start: u64, end: u64) -> Self {
        Self {
            pos: start,
            written: start,
            end,
            busy: false,
        }
    }
}

/// `total` bytes cut into `n` segments of nearly equal size.
pub(crate) fn plan(total: u64, n: usize) -> Vec<Seg> {
    let n = n.max(1) as u64;
    (0..n)
        .map(|i| Seg::new(total * i / n, total * (i + 1) / n))
        .collect()
}

/// The segment a free worker takes next: an unfinished one nobody is on, else the second half
/// of the busy segment with the most left (when that is at least [`STEAL_MIN`]). Marks it busy.
pub(crate) fn next_work(segs: &mut Vec<Seg>) -> Option<usize> {
    if let Some(i) = segs.iter().position(|s| !s.busy && s.pos < s.end) {
        segs[i].busy = true;
        return Some(i);
    }
    let (victim, left) = segs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.busy)
        .map(|(i, s)| (i, s.end - s.pos))
        .max_by_key(|&(_, left)| left)?;
    if left < STEAL_MIN {
        return None;
    }
    let mid = segs[victim].pos + left / 2;
    let end = segs[victim].end;
    segs[victim].end = mid;
    let mut stolen = Seg::new(mid, end);
    stolen.busy = true;
    segs.push(stolen);
    Some(segs.len() - 1)
}

/// How many segments a fresh download of `total` bytes gets (1: no split), before the host's
/// connection limit is applied.
pub(crate) fn segments_for(split: Option<std::num::NonZeroUsize>, total: u64) -> usize {
    let wanted = match split {
        None if total >= AUTO_THRESHOLD => AUTO_SEGMENTS,
        None => 1,
        Some(n) => n.get(),
    };
    wanted.min(usize::try_from(total / MIN_SEGMENT).unwrap_or(usize::MAX))
}

/// What a `.part.meta` of a split download says.
#[derive(Debug)]
pub(crate) struct Saved {
    validator: Validator,
    total: u64,
    /// The unfinished ranges, as segments to continue.
    segs: Vec<Seg>,
}

impl Saved {
    /// What guards the resume.
    pub(crate) fn validator(&self) -> &Validator {
        &self.validator
    }
}

/// The saved state of a split download of `url` in `paths`, if its partial file is there too.
pub(crate) fn load(paths: &PartPaths, url: &Url) -> Option<Saved> {
    let text = fs::read_to_string(&paths.meta).ok()?;
    let mut lines = text.lines();
    if lines.next()? != META_HEADER {
        return None;
    }
    let (mut same_url, mut validator, mut total, mut segs) = (false, None, None, Vec::new());
    for line in lines {
        let (key, value) = line.split_once(' ')?;
        match key {
            "url" => same_url = value == url.as_str(),
            "etag" => validator = Some(Validator::ETag(value.to_owned())),
            "last-modified" => validator = Some(Validator::LastModified(value.to_owned())),
            "total" => total = Some(value.parse::<u64>().ok()?),
            "seg" => {
                let (from, end) = value.split_once(' ')?;
                let (from, end) = (from.parse().ok()?, end.parse().ok()?);
                if from > end {
                    return None;
                }
                segs.push(Seg::new(from, end));
            }
            _ => {}
        }
    }
    let total = total?;
    // A part file of another length was not written by this split.
    if !same_url || part::regular_len(&paths.part)? != total {
        return None;
    }
    if segs.iter().any(|s| s.end > total) {
        return None;
    }
    Some(Saved {
        validator: validator?,
        total,
        segs,
    })
}

/// Writes the meta for `segs` atomically (invariant 3).
fn save(
    paths: &PartPaths,
    url: &Url,
    validator: &Validator,
    total: u64,
    segs: &[Seg],
) -> io::Result<()> {
    let (key, value) = match validator {
        Validator::ETag(e) => ("etag", e),
        Validator::LastModified(l) => ("last-modified", l),
    };
    let mut text = format!("{META_HEADER}\nurl {url}\n{key} {value}\ntotal {total}\n");
    for s in segs.iter().filter(|s| s.written < s.end) {
        text.push_str(&format!("seg {} {}\n", s.written, s.end));
    }
    let tmp = paths.meta.with_extension("meta.tmp");
    part::write_fresh(&tmp, &text)?;
    fs::rename(&tmp, &paths.meta)
}

/// Why a worker stopped short.
enum SegError {
    /// Told to stop (the context ended, or another worker failed).
    Stopped,
    /// The file changed on the server (another validator, 416, a range that does not fit).
    Changed,
    /// The server answered a range request with the whole file.
    RangesIgnored,
    Failed(DownloadError),
}

/// One split attempt: what its workers share.
struct Run<'a> {
    shared: &'a Arc<Shared>,
    url: &'a Url,
    paths: &'a PartPaths,
    file: Arc<File>,
    validator: Validator,
    total: u64,
    segs: Mutex<Vec<Seg>>,
    stop: CancellationToken,
    limiter: &'a Limiter,
    received: AtomicU64,
    /// Whether workers write on their own task (part.rs invariant 3): until one write was slow.
    direct: AtomicBool,
    /// A name from `Content-Disposition`, when a response gave one.
    name: OnceLock<String>,
}

impl Run<'_> {
    fn segs(&self) -> std::sync::MutexGuard<'_, Vec<Seg>> {
        self.segs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a split attempt starts.
pub(crate) enum Start<'a> {
    /// A fresh download: the response to a plain GET (its body is segment 0's), the validator
    /// it carries, the file size, and the segments wanted.
    Fresh {
        response: Box<Response<'a>>,
        validator: Validator,
        total: u64,
        /// The host's connections for the other segments.
        permits: Vec<OwnedSemaphorePermit>,
    },
    /// A resume from the saved meta.
    Resume(Saved),
}

/// Everything an attempt passes down.
pub(crate) struct Env<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) job: &'a Job,
    pub(crate) paths: &'a PartPaths,
    pub(crate) limiter: &'a Limiter,
    /// The download's host: one permit per connection in use.
    pub(crate) host: &'a Arc<Semaphore>,
    /// Whether this is the first try from the start (a second changed validator stops
    /// splitting, so a file that keeps changing still downloads, over one connection).
    pub(crate) allow_resume: bool,
}

/// Takes up to `n` more connection permits for the host, without waiting.
fn extra_permits(host: &Arc<Semaphore>, n: usize) -> Vec<OwnedSemaphorePermit> {
    (0..n)
        .map_while(|_| host.clone().try_acquire_owned().ok())
        .collect()
}

/// Whether a fresh `200` response can be split (ranges accepted, size and validator known),
/// with the host's free connections for the segments past the first (at least one).
pub(crate) fn can_split(
    env: &Env<'_>,
    headers: &HeaderMap,
    total: Option<u64>,
) -> Option<Vec<OwnedSemaphorePermit>> {
    if env.job.no_split.load(Ordering::Relaxed) {
        return None;
    }
    let ranges = headers
        .get(header::ACCEPT_RANGES)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("bytes"));
    let total = total?;
    if !ranges || Validator::from_headers(headers).is_none() {
        return None;
    }
    let n = segments_for(env.shared.config.split, total);
    let permits = extra_permits(env.host, n.saturating_sub(1));
    (!permits.is_empty()).then_some(permits)
}

/// Runs a split attempt to the end. Ok gives the final path, the size and the bytes that were
/// already on disk.
pub(crate) async fn run(
    env: Env<'_>,
    start: Start<'_>,
    mut done: Pin<&mut Done>,
    tracker: &mut dyn Tracker,
) -> Result<(PathBuf, u64, u64), (Stop, u64)> {
    let config = &env.shared.config;
    let url = &env.job.request.url;
    let mut permits = Vec::new();
    let (validator, total, segs, first, name) = match start {
        Start::Fresh {
            response,
            validator,
            total,
            permits: taken,
        } => {
            let name = final_name(response.headers());
            permits = taken;
            let segs = plan(total, 1 + permits.len());
            (validator, total, segs, Some(*response), name)
        }
        Start::Resume(saved) => {
            if config.max_size.is_some_and(|l| saved.total > l) {
                let paths = env.paths.clone();
                let _ = tokio::task::spawn_blocking(move || paths.remove()).await;
                let limit = config.max_size.unwrap_or_default();
                return Err((Stop::Failed(DownloadError::TooLarge { limit }), 0));
            }
            (saved.validator, saved.total, saved.segs, None, None)
        }
    };
    let fresh = first.is_some();
    let already: u64 = total - segs.iter().map(|s| s.end - s.written).sum::<u64>();

    // Open (fresh: truncate to the full size, sparse) and record the plan before any byte.
    let file = {
        let (paths, url, validator, segs) = (
            env.paths.clone(),
            url.clone(),
            validator.clone(),
            segs.clone(),
        );
        tokio::task::spawn_blocking(move || -> io::Result<File> {
            if fresh {
                // Old meta goes before the data it describes (part.rs invariant 2).
                match fs::remove_file(&paths.meta) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                let file = part::create_fresh(&paths.part)?;
                file.set_len(total)?;
                save(&paths, &url, &validator, total, &segs)?;
                Ok(file)
            } else {
                part::open_existing(&paths.part)
            }
        })
        .await
    };
    let file = match file {
        Ok(Ok(f)) => Arc::new(f),
        Ok(Err(e)) => return Err((Stop::Failed(DownloadError::file(&env.paths.part, e)), 0)),
        Err(_) => return Err((Stop::Failed(DownloadError::Panicked), 0)),
    };
    tracker.attempt(already, Some(total));

    let run = Run {
        shared: env.shared,
        url,
        paths: env.paths,
        file,
        validator,
        total,
        segs: Mutex::new(segs),
        stop: CancellationToken::new(),
        limiter: env.limiter,
        received: AtomicU64::new(0),
        direct: AtomicBool::new(true),
        name: OnceLock::new(),
    };
    if let Some(n) = name {
        let _ = run.name.set(n);
    }

    // The download's own connection, plus what the host has free.
    if !fresh {
        let unfinished = run.segs().iter().filter(|s| s.pos < s.end).count();
        permits = extra_permits(env.host, unfinished.saturating_sub(1));
    }
    let mut workers = FuturesUnordered::new();
    let mut first = first;
    for permit in std::iter::once(None).chain(permits.drain(..).map(Some)) {
        let Some(id) = next_work(&mut run.segs()) else {
            break;
        };
        workers.push(worker(&run, id, first.take(), permit));
    }

    let mut failure: Option<SegError> = None;
    let mut cancelled = false;
    let mut reported = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut saved_at = Instant::now();
    let mut saved_bytes: u64 = run.segs().iter().map(|s| s.written).sum();
    loop {
        tokio::select! {
            biased;
            _ = done.as_mut(), if !cancelled => {
                cancelled = true;
                run.stop.cancel();
            }
            next = workers.next() => {
                match next {
                    None => break,
                    Some(Ok(())) => {}
                    Some(Err(SegError::Stopped)) => {}
                    Some(Err(e)) => {
                        // A failed connection costs only its own segment: the other workers go
                        // on, and one that finishes takes the failed segment over. A changed
                        // file stops them all (their bytes would be thrown away).
                        if !matches!(e, SegError::Failed(_)) {
                            run.stop.cancel();
                        }
                        if failure.is_none() || !matches!(e, SegError::Failed(_)) {
                            failure = Some(e);
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let now = run.received.load(Ordering::Relaxed);
                tracker.advance(now - reported);
                reported = now;
                if saved_at.elapsed() >= SAVE_EVERY {
                    saved_at = Instant::now();
                    let segs = run.segs().clone();
                    let written = segs.iter().map(|s| s.written).sum();
                    if written != saved_bytes {
                        saved_bytes = written;
                        let (paths, url, validator) =
                            (env.paths.clone(), url.clone(), run.validator.clone());
                        // Awaited here (invariant 3): the workers pause for the save, and no
                        // save can land after the attempt ends. A failed save only loses the
                        // progress it would have kept; the save at the end reports errors.
                        let saved = tokio::task::spawn_blocking(move || {
                            save(&paths, &url, &validator, total, &segs)
                        })
                        .await;
                        if let Ok(Err(e)) = saved {
                            tracing::debug!(error = %e, "cannot save the segment table");
                        }
                    }
                }
            }
        }
    }
    tracker.advance(run.received.load(Ordering::Relaxed) - reported);

    let complete = run.segs().iter().all(|s| s.written >= s.end);
    if !complete || failure.is_some() || cancelled {
        let restart = matches!(failure, Some(SegError::Changed | SegError::RangesIgnored));
        if restart {
            // Ranges ignored, or the file changing a second time: the next try takes one
            // connection.
            if matches!(failure, Some(SegError::RangesIgnored)) || !env.allow_resume {
                env.job.no_split.store(true, Ordering::Relaxed);
            }
            let paths = env.paths.clone();
            let _ = tokio::task::spawn_blocking(move || paths.remove()).await;
            return Err((Stop::Restart, already));
        }
        let segs = run.segs().clone();
        let (paths, url, validator) = (env.paths.clone(), url.clone(), run.validator.clone());
        let saved =
            tokio::task::spawn_blocking(move || save(&paths, &url, &validator, total, &segs)).await;
        let stop = match (saved, failure) {
            (Ok(Err(e)), _) => Stop::Failed(DownloadError::file(&env.paths.meta, e)),
            (Err(_), _) => Stop::Failed(DownloadError::Panicked),
            (Ok(Ok(())), Some(SegError::Failed(e))) => Stop::Failed(e),
            (Ok(Ok(())), _) if cancelled => Stop::Cancelled,
            // Every worker ended and none failed, yet a range is missing: cannot happen
            // (a worker ends only at its segment's end); reported rather than trusted.
            (Ok(Ok(())), _) => Stop::Failed(DownloadError::LengthMismatch {
                expected: total,
                actual: run.segs().iter().map(|s| s.written).sum(),
            }),
        };
        return Err((stop, already));
    }

    finish(&env, &run)
        .await
        .map(|p| (p, total, already))
        .map_err(|e| (Stop::Failed(e), already))
}

/// Verifies the checksum (reading the file back), flushes if asked, and moves the file to its
/// final name.
async fn finish(env: &Env<'_>, run: &Run<'_>) -> Result<PathBuf, DownloadError> {
    let config = &env.shared.config;
    let expected = env.job.request.sha256.map(|d| d.0);
    let target = Target {
        dir: config.dir.clone(),
        name: run
            .name
            .get()
            .cloned()
            .unwrap_or_else(|| env.job.url_name.clone()),
        overwrite: config.overwrite,
        claimed: env.shared.claimed.clone(),
    };
    let (paths, file, total, fsync) =
        (env.paths.clone(), run.file.clone(), run.total, config.fsync);
    tokio::task::spawn_blocking(move || {
        let path = paths.part.clone();
        if let Some(expected) = expected {
            let h = part::hash_prefix(&path, total).map_err(|e| DownloadError::file(&path, e))?;
            let actual: [u8; 32] = sha2::Digest::finalize(h).into();
            if actual != expected {
                paths.remove();
                return Err(DownloadError::ChecksumMismatch {
                    expected: super::Sha256Digest(expected).hex(),
                    actual: super::Sha256Digest(actual).hex(),
                });
            }
        }
        if fsync {
            file.sync_all().map_err(|e| DownloadError::file(&path, e))?;
        }
        drop(file);
        let placed = part::place(&path, &target).map_err(|e| DownloadError::file(&path, e))?;
        let _ = fs::remove_file(&paths.meta);
        if fsync {
            File::open(&target.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| DownloadError::file(&target.dir, e))?;
        }
        Ok(placed)
    })
    .await
    .map_err(|_| DownloadError::Panicked)?
}

/// One connection: fetches segment `id` (from `first` when given, else with a range request),
/// then takes more work until there is none. `permit` is its connection's (none for the
/// download's own).
async fn worker<'a>(
    run: &'a Run<'a>,
    mut id: usize,
    mut first: Option<Response<'a>>,
    _permit: Option<OwnedSemaphorePermit>,
) -> Result<(), SegError> {
    loop {
        let result = segment(run, id, first.take()).await;
        let mut segs = run.segs();
        segs[id].busy = false;
        result?;
        if run.stop.is_cancelled() {
            return Err(SegError::Stopped);
        }
        match next_work(&mut segs) {
            Some(next) => id = next,
            None => return Ok(()),
        }
    }
}

/// Fetches the rest of segment `id` and writes it in place.
async fn segment<'a>(
    run: &'a Run<'a>,
    id: usize,
    first: Option<Response<'a>>,
) -> Result<(), SegError> {
    let config = &run.shared.config;
    let mut response = match first {
        Some(r) => r,
        None => request(run, id).await?,
    };
    let mut pos = run.segs()[id].pos;
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0usize;
    // Where the pending bytes start.
    let mut at = pos;

    // One timer for the whole body, moved on only when it fires (as in fetch.rs).
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    let mut last_piece = Instant::now();
    let outcome: Result<(), SegError> = loop {
        let next = tokio::select! {
            biased;
            _ = run.stop.cancelled() => break Err(SegError::Stopped),
            r = response.chunk() => r,
            () = idle.as_mut() => {
                let deadline = last_piece + config.idle_timeout;
                if Instant::now() < deadline {
                    idle.as_mut().reset(deadline);
                    continue;
                }
                break Err(SegError::Failed(DownloadError::IdleTimeout(config.idle_timeout)));
            }
        };
        let mut chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                let end = run.segs()[id].end;
                if pos < end {
                    break Err(SegError::Failed(DownloadError::LengthMismatch {
                        expected: end,
                        actual: pos,
                    }));
                }
                break Ok(());
            }
            Err(e) => break Err(SegError::Failed(DownloadError::Http(e))),
        };
        last_piece = Instant::now();
        // Invariant 2: what is ours to write is read under the lock.
        let (take, end) = {
            let mut segs = run.segs();
            let end = segs[id].end;
            let take = (chunk.len() as u64).min(end - pos);
            segs[id].pos = pos + take;
            (take, end)
        };
        chunk.truncate(take as usize);
        pos += take;
        run.received.fetch_add(take, Ordering::Relaxed);
        if !chunk.is_empty() {
            pending_len += chunk.len();
            pending.push(chunk);
        }
        if pending_len >= FLUSH_AT || (run.direct.load(Ordering::Relaxed) && !pending.is_empty()) {
            write(run, id, &mut at, std::mem::take(&mut pending)).await?;
            pending_len = 0;
        }
        run.limiter.consume(take).await;
        if pos >= end {
            // The rest of this body belongs to another segment (the first response, or one
            // that was stolen from): dropping it closes its connection.
            break Ok(());
        }
    };
    // Invariant 4: what was received is written before the worker ends, whatever the reason.
    write(run, id, &mut at, pending).await?;
    outcome
}

/// Writes `pieces` at `*at`, then records them as written: on this task while writes are quick,
/// else on a blocking thread (part.rs invariant 3).
async fn write(run: &Run<'_>, id: usize, at: &mut u64, pieces: Vec<Bytes>) -> Result<(), SegError> {
    if pieces.is_empty() {
        return Ok(());
    }
    let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    let result = if run.direct.load(Ordering::Relaxed) {
        let started = std::time::Instant::now();
        let result = write_pieces(&run.file, *at, &pieces);
        if !part::was_quick(started) {
            run.direct.store(false, Ordering::Relaxed);
        }
        Ok(result)
    } else {
        let (file, start) = (run.file.clone(), *at);
        tokio::task::spawn_blocking(move || write_pieces(&file, start, &pieces)).await
    };
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(SegError::Failed(DownloadError::file(&run.paths.part, e))),
        Err(_) => return Err(SegError::Failed(DownloadError::Panicked)),
    }
    *at += len;
    run.segs()[id].written = *at;
    Ok(())
}

/// Positioned writes of the client's own buffers: no copy, and no shared file offset between
/// the workers.
fn write_pieces(file: &File, mut at: u64, pieces: &[Bytes]) -> io::Result<()> {
    for piece in pieces {
        write_all_at(file, piece, at)?;
        at += piece.len() as u64;
    }
    Ok(())
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, at)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, buf, at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `GET` with `Range: bytes=pos-(end-1)` and `If-Range`, checked against the download's
/// validator (invariant 1).
async fn request<'a>(run: &'a Run<'a>, id: usize) -> Result<Response<'a>, SegError> {
    let config = &run.shared.config;
    let (pos, end) = {
        let segs = run.segs();
        (segs[id].pos, segs[id].end)
    };
    let mut extra = HeaderMap::new();
    let (Ok(range), Ok(if_range)) = (
        HeaderValue::try_from(format!("bytes={pos}-{}", end - 1)),
        HeaderValue::from_str(run.validator.header_value()),
    ) else {
        return Err(SegError::Changed);
    };
    extra.insert(header::RANGE, range);
    extra.insert(header::IF_RANGE, if_range);
    let response = tokio::select! {
        biased;
        _ = run.stop.cancelled() => return Err(SegError::Stopped),
        r = tokio::time::timeout(config.idle_timeout, run.shared.client.get(run.url, &extra)) => match r {
            Err(_) => return Err(SegError::Failed(DownloadError::IdleTimeout(config.idle_timeout))),
            Ok(Err(e)) => return Err(SegError::Failed(e)),
            Ok(Ok(response)) => response,
        },
    };
    let headers = response.headers();
    let same = Validator::from_headers(headers).is_none_or(|v| v == run.validator);
    match response.status() {
        StatusCode::PARTIAL_CONTENT => {
            let fits = content_range(headers)
                .is_some_and(|(start, total)| start == pos && total.is_none_or(|t| t == run.total));
            if !same || !fits {
                return Err(SegError::Changed);
            }
        }
        StatusCode::OK if same => return Err(SegError::RangesIgnored),
        StatusCode::OK | StatusCode::RANGE_NOT_SATISFIABLE => return Err(SegError::Changed),
        s => {
            return Err(SegError::Failed(DownloadError::Status {
                status: s.as_u16(),
                retry_after: None,
            }));
        }
    }
    if let Some(name) = final_name(headers) {
        let _ = run.name.set(name);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_the_file_without_gaps_or_overlap() {
        let segs = plan(10, 3);
        let bounds: Vec<_> = segs.iter().map(|s| (s.pos, s.end)).collect();
        assert_eq!(bounds, vec![(0, 3), (3, 6), (6, 10)]);
    }

    #[test]
    fn a_free_worker_steals_the_second_half_of_the_largest_remainder() {
        let mb = MIN_SEGMENT;
        let mut segs = plan(12 * mb, 3);
        for _ in 0..3 {
            assert!(next_work(&mut segs).is_some());
        }
        // Segment 0 is done, 1 has 1 MiB left, 2 has 4 MiB left.
        segs[0].pos = 4 * mb;
        segs[0].busy = false;
        segs[1].pos = 7 * mb;
        let stolen = next_work(&mut segs);
        assert_eq!(stolen, Some(3));
        assert_eq!((segs[2].pos, segs[2].end), (8 * mb, 10 * mb));
        assert_eq!((segs[3].pos, segs[3].end), (10 * mb, 12 * mb));
        // What is left is too small to be worth another request.
        segs[2].pos = 9 * mb;
        segs[3].pos = 11 * mb;
        assert_eq!(next_work(&mut segs), None);
    }

    #[test]
    fn unfinished_segments_nobody_is_on_go_first() {
        let mut segs = plan(8 * MIN_SEGMENT, 2);
        segs[0].busy = true;
        assert_eq!(next_work(&mut segs), Some(1));
    }

    #[test]
    fn automatic_split_starts_at_the_threshold() {
        assert_eq!(segments_for(None, AUTO_THRESHOLD - 1), 1);
        assert_eq!(segments_for(None, AUTO_THRESHOLD), AUTO_SEGMENTS);
        let eight = std::num::NonZeroUsize::new(8);
        // Never segments smaller than MIN_SEGMENT.
        assert_eq!(segments_for(eight, 3 * MIN_SEGMENT), 3);
    }
}
