//! The partial file (`NAME.part`), its resume metadata (`NAME.part.meta`), and the atomic move
//! to the final name.
//!
//! # Invariants
//!
//! 1. A file at a final name is only ever created by a rename or hard link of a `.part` file
//!    that was complete and verified (length, and checksum when given). Nothing writes to a
//!    final name directly, so a reader never sees a truncated file there.
//! 2. A `.part.meta` exists only next to a `.part` whose bytes are a prefix of the entity the
//!    meta's validator names: when a download restarts, the old meta is removed before the
//!    part is truncated and the new meta is written before any new byte.
//! 3. File I/O that can wait runs on blocking threads, never on the async workers: opening,
//!    creating and removing files, metadata, fsync, hashing, moving the file into place. Body
//!    bytes of a large download, once its file is open, are written by the task that received
//!    them, right away (positioned or at the file's offset): a write into the page cache is a
//!    kernel copy that costs what the socket read that brought the bytes cost, while the
//!    hand-off to a blocking thread and back (a thread wake-up each way, and a third thread
//!    competing with the server and the receiver for the cores) cost weft more CPU per byte
//!    than curl (BENCHMARKS.md, issue 28). A write that takes longer than [`SLOW_WRITE`] waited
//!    on the device (dirty-page throttling, a network file system): that download's later
//!    writes go to a blocking thread, gathered into batches of about [`FLUSH_AT`] (two in
//!    flight at most), as do all writes of a download whose bytes are hashed (CPU-bound).
//!    A small body that arrived whole (up to [`SMALL`]) is written and placed by the batch's
//!    [`FileThread`], one thread fed through a channel: a `spawn_blocking` per file (a task,
//!    the blocking pool's lock, a thread wake-up each way) cost about a fifth of the CPU time
//!    of a batch of 16 KiB files. Body bytes are never copied in memory: the pieces written
//!    are the HTTP client's own buffers.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use url::Url;

use super::error::DownloadError;
use super::name;

/// Body bytes gathered before a write is handed to a blocking thread: each hand-off wakes a
/// thread and then the download's task again, so fewer, larger writes cost less CPU per byte.
const FLUSH_AT: usize = 2 << 20;

/// A write on the receiving task that takes longer than this waited on the device, not on
/// memory (a page-cache copy of the largest piece, 1 MiB, takes well under a millisecond): the
/// download's later writes go to blocking threads (invariant 3).
pub(crate) const SLOW_WRITE: Duration = Duration::from_millis(10);

/// Whether a write on the receiving task that started at `started` was quick enough to go on
/// writing there (see [`SLOW_WRITE`]).
pub(crate) fn was_quick(started: Instant) -> bool {
    let quick = started.elapsed() <= SLOW_WRITE;
    if !quick {
        tracing::debug!(
            took = ?started.elapsed(),
            "slow file write: the rest of this download is written on blocking threads"
        );
    }
    quick
}

/// The largest body the [`FileThread`] writes (larger ones go to the blocking pool, so that one
/// big write never holds up the small files behind it).
pub(crate) const SMALL: usize = 64 * 1024;

type FileWork = Box<dyn FnOnce() + Send>;

/// One thread that writes and places the small files of a batch, one after another. It ends
/// when the last clone is dropped.
///
/// A thread of its own rather than a long `spawn_blocking` task: the runtime would count that as
/// work in progress for the whole batch (a paused test clock, for one, would never advance).
#[derive(Debug, Clone)]
pub(crate) struct FileThread {
    /// `None` when no thread could be started: the files then go to the blocking pool.
    tx: Option<std::sync::mpsc::Sender<FileWork>>,
}

impl FileThread {
    /// Starts the thread.
    pub(crate) fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<FileWork>();
        let started = std::thread::Builder::new()
            .name("weft-download-files".into())
            .spawn(move || {
                for work in rx {
                    // A panicking job drops its reply sender: its caller sees the panic; the
                    // thread goes on with the others.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                }
            });
        Self {
            tx: started.ok().map(|_| tx),
        }
    }

    fn is_running(&self) -> bool {
        self.tx.is_some()
    }

    /// Runs `f` on the thread; `None` if it panicked (or the thread is gone).
    ///
    /// # Cancel safety
    ///
    /// If dropped while waiting, `f` still runs; only its result is lost.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        self.tx
            .as_ref()?
            .send(Box::new(move || {
                let _ = reply.send(f());
            }))
            .ok()?;
        result.await.ok()
    }
}

/// Opens `path` as a new, empty file for writing without ever following a link planted at that
/// name: the file is created with `create_new` (`O_CREAT | O_EXCL`, which fails on anything at
/// the name, a symbolic link included, rather than following it); when something is there (a
/// symbolic link to another file, a hard link, an old partial file) it is removed and the
/// creation tried once more, so a link that appears in between fails the open instead of
/// redirecting the write.
///
/// Creating first spares the usual case, nothing at the name, a failed `unlink` per file (about
/// 3% of the CPU time of a batch of 16 KiB files, BENCHMARKS.md).
pub(crate) fn create_fresh(path: &Path) -> io::Result<File> {
    let create = || OpenOptions::new().write(true).create_new(true).open(path);
    match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        opened => return opened,
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create()
}

/// Writes `text` to a new file at `path` (see [`create_fresh`]).
pub(crate) fn write_fresh(path: &Path, text: &str) -> io::Result<()> {
    create_fresh(path)?.write_all(text.as_bytes())
}

/// Opens the existing partial file at `path` for writing, refusing a symbolic link.
pub(crate) fn open_existing(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    #[cfg(not(target_os = "linux"))]
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "partial file is a symbolic link",
        ));
    }
    options.open(path)
}

/// The length of the regular file at `path` (not through a symbolic link).
pub(crate) fn regular_len(path: &Path) -> Option<u64> {
    fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// What makes a partial file resumable: a strong ETag or, failing that, Last-Modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Validator {
    ETag(String),
    LastModified(String),
}

impl Validator {
    /// The value to send in `If-Range`.
    pub(crate) fn header_value(&self) -> &str {
        match self {
            Self::ETag(v) | Self::LastModified(v) => v,
        }
    }

    /// The validator a response offers: weak ETags cannot be used with `If-Range`.
    pub(crate) fn from_headers(headers: &http::header::HeaderMap) -> Option<Self> {
        let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
        match get(http::header::ETAG) {
            Some(etag) if !etag.starts_with("W/") => Some(Self::ETag(etag.to_owned())),
            _ => get(http::header::LAST_MODIFIED).map(|lm| Self::LastModified(lm.to_owned())),
        }
    }
}

/// Where one download keeps its partial data.
#[derive(Debug, Clone)]
pub(crate) struct PartPaths {
    pub(crate) part: PathBuf,
    pub(crate) meta: PathBuf,
}

impl PartPaths {
    pub(crate) fn new(dir: &Path, base: &str) -> Self {
        Self {
            part: dir.join(format!("{base}.part")),
            meta: dir.join(format!("{base}.part.meta")),
        }
    }

    /// The length and validator of a resumable partial file for `url`, if there is one.
    pub(crate) fn resumable(&self, url: &Url) -> Option<(u64, Validator)> {
        // A symbolic link at the partial name is never resumed: the download starts over and
        // replaces it (see `create_fresh`).
        let len = regular_len(&self.part)?;
        if len == 0 {
            return None;
        }
        let text = fs::read_to_string(&self.meta).ok()?;
        let mut lines = text.lines();
        if lines.next()? != "weft-download-part 1" {
            return None;
        }
        let mut same_url = false;
        let mut validator = None;
        for line in lines {
            let (key, value) = line.split_once(' ')?;
            match key {
                "url" => same_url = value == url.as_str(),
                "etag" => validator = Some(Validator::ETag(value.to_owned())),
                "last-modified" => validator = Some(Validator::LastModified(value.to_owned())),
                _ => {}
            }
        }
        if same_url {
            validator.map(|v| (len, v))
        } else {
            None
        }
    }

    /// Whether the metadata names another URL than `url` (a partial file of another download
    /// that shares the name, not ours to delete).
    pub(crate) fn belongs_elsewhere(&self, url: &Url) -> bool {
        fs::read_to_string(&self.meta).is_ok_and(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("url "))
                .is_some_and(|other| other != url.as_str())
        })
    }

    /// The length of the partial file, if any.
    pub(crate) fn part_len(&self) -> Option<u64> {
        regular_len(&self.part)
    }

    pub(crate) fn remove(&self) {
        let _ = fs::remove_file(&self.meta);
        let _ = fs::remove_file(&self.part);
    }
}

/// How the partial file is opened on the first write.
#[derive(Debug)]
pub(crate) enum Mode {
    /// Start over: drop old metadata (when `stale_meta` says there may be some), truncate,
    /// then record `validator` (if any) for resume.
    Create {
        url: Url,
        validator: Option<Validator>,
        stale_meta: bool,
    },
    /// Continue after the first `offset` bytes.
    Append { offset: u64 },
}

/// The blocking half: the open file and the running hash. Moved to a blocking thread for each
/// write and handed back.
#[derive(Debug)]
struct Sink {
    paths: PartPaths,
    mode: Option<Mode>,
    file: Option<File>,
    hasher: Option<Sha256>,
    /// Whether a `.part.meta` may exist (to be removed once the file is placed).
    meta_maybe: bool,
}

impl Sink {
    fn open(&mut self) -> io::Result<&mut File> {
        if let Some(mode) = self.mode.take() {
            let file = match mode {
                Mode::Create {
                    url,
                    validator,
                    stale_meta,
                } => {
                    // Invariant 2: old meta goes before the data it describes.
                    if stale_meta {
                        match fs::remove_file(&self.paths.meta) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(e),
                        }
                    }
                    let file = create_fresh(&self.paths.part)?;
                    if let Some(v) = validator {
                        self.meta_maybe = true;
                        let (key, value) = match &v {
                            Validator::ETag(e) => ("etag", e),
                            Validator::LastModified(l) => ("last-modified", l),
                        };
                        write_fresh(
                            &self.paths.meta,
                            &format!("weft-download-part 1\nurl {url}\n{key} {value}\n"),
                        )?;
                    }
                    file
                }
                Mode::Append { offset } => {
                    self.meta_maybe = true;
                    let mut file = open_existing(&self.paths.part)?;
                    file.set_len(offset)?;
                    file.seek(SeekFrom::Start(offset))?;
                    file
                }
            };
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("partial file not open"))
    }

    fn write(&mut self, pieces: &[Bytes]) -> io::Result<()> {
        write_all_vectored(self.open()?, pieces)?;
        if let Some(h) = &mut self.hasher {
            for piece in pieces {
                h.update(piece);
            }
        }
        Ok(())
    }
}

/// Writes all of `pieces` to `file`, in as few system calls as the kernel allows.
fn write_all_vectored(file: &mut File, pieces: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = pieces
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes a body to the partial file off the async workers, then verifies and places it.
#[derive(Debug)]
pub(crate) struct PartWriter {
    sink: Option<Sink>,
    inflight: Option<JoinHandle<(Sink, io::Result<()>)>>,
    /// Body pieces received and not yet handed to a write, and their total length.
    pending: Vec<Bytes>,
    pending_len: usize,
    path: PathBuf,
    /// Whether body pieces are written on the receiving task once the file is open
    /// (invariant 3): no hashing, and no write was slow yet.
    direct: bool,
}

impl PartWriter {
    /// `hasher` must already cover the bytes before the write position when appending.
    pub(crate) fn new(paths: PartPaths, mode: Mode, hasher: Option<Sha256>) -> Self {
        let meta_maybe = matches!(
            mode,
            Mode::Create {
                stale_meta: true,
                ..
            }
        );
        Self {
            direct: hasher.is_none(),
            path: paths.part.clone(),
            sink: Some(Sink {
                paths,
                mode: Some(mode),
                file: None,
                hasher,
                meta_maybe,
            }),
            inflight: None,
            pending: Vec::new(),
            pending_len: 0,
        }
    }

    fn err(&self, e: io::Error) -> DownloadError {
        DownloadError::file(&self.path, e)
    }

    /// Waits for the write in flight and takes the sink back.
    async fn reclaim(&mut self) -> Result<Sink, DownloadError> {
        if let Some(handle) = self.inflight.take() {
            let (sink, result) = handle.await.map_err(|_| DownloadError::Panicked)?;
            result.map_err(|e| self.err(e))?;
            return Ok(sink);
        }
        self.sink
            .take()
            .ok_or_else(|| self.err(io::Error::other("partial file lost after an earlier error")))
    }

    /// Appends `chunk`. Once the file is open (by the first write, on a blocking thread) it is
    /// written at once on this task, unless a write was slow or the bytes are hashed; then once
    /// about [`FLUSH_AT`] bytes are gathered they are written on a blocking thread while the
    /// caller goes on receiving (invariant 3).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if dropped while it waits for the previous write, the chunk and the
    /// gathered bytes are lost (callers await it to completion).
    pub(crate) async fn push(&mut self, chunk: Bytes) -> Result<(), DownloadError> {
        if self.direct {
            // The opening write is done: take the file back without waiting.
            if self.inflight.as_ref().is_some_and(JoinHandle::is_finished) {
                let sink = self.reclaim().await?;
                self.sink = Some(sink);
            }
            if let Some(file) = self.sink.as_mut().and_then(|s| s.file.as_mut()) {
                self.pending.push(chunk);
                let started = Instant::now();
                let written = write_all_vectored(file, &self.pending);
                self.pending.clear();
                self.pending_len = 0;
                if let Err(e) = written {
                    // As after a failed blocking write: the file is not written to again.
                    self.sink = None;
                    return Err(DownloadError::file(&self.path, e));
                }
                self.direct = was_quick(started);
                return Ok(());
            }
        }
        if !self.pending.is_empty() && self.pending_len + chunk.len() > FLUSH_AT {
            let mut sink = self.reclaim().await?;
            let pieces = std::mem::take(&mut self.pending);
            self.pending_len = 0;
            self.inflight = Some(tokio::task::spawn_blocking(move || {
                let r = sink.write(&pieces);
                (sink, r)
            }));
        }
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        Ok(())
    }

    /// Writes what is buffered and closes the file, keeping it for a later resume. Does
    /// nothing to the disk when no byte was received since the file was opened.
    pub(crate) async fn keep(mut self) -> Result<(), DownloadError> {
        let mut sink = self.reclaim().await?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let pieces = std::mem::take(&mut self.pending);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || sink.write(&pieces))
            .await
            .map_err(|_| DownloadError::Panicked)?
            .map_err(|e| DownloadError::file(path, e))
    }

    /// Deletes the partial file and its metadata (its content cannot be used).
    pub(crate) async fn discard(mut self) {
        let paths = match self.reclaim().await {
            Ok(sink) => sink.paths,
            Err(_) => return,
        };
        let _ = tokio::task::spawn_blocking(move || paths.remove()).await;
    }

    /// Writes the rest, verifies the checksum, and moves the file to a free final name in
    /// `dir` (see [`place`]). On a checksum mismatch the partial file is deleted.
    pub(crate) async fn finish(
        mut self,
        expected: Option<[u8; 32]>,
        fsync: bool,
        target: Target,
        files: &FileThread,
    ) -> Result<PathBuf, DownloadError> {
        // Whole in memory and small: one quick job for the batch's file thread.
        let small =
            files.is_running() && self.inflight.is_none() && self.pending_len <= SMALL && !fsync;
        let mut sink = self.reclaim().await?;
        let pieces = std::mem::take(&mut self.pending);
        let path = self.path.clone();
        let work = move || {
            // A body that arrives whole in one batch needs no resume metadata: the file is
            // complete before anything could interrupt it.
            if let Some(Mode::Create { validator, .. }) = &mut sink.mode {
                *validator = None;
            }
            // Opens the file even for an empty body.
            sink.write(&pieces)
                .map_err(|e| DownloadError::file(&path, e))?;
            if let (Some(expected), Some(h)) = (expected, sink.hasher.take()) {
                let actual: [u8; 32] = h.finalize().into();
                if actual != expected {
                    drop(sink.file.take());
                    sink.paths.remove();
                    return Err(DownloadError::ChecksumMismatch {
                        expected: super::Sha256Digest(expected).hex(),
                        actual: super::Sha256Digest(actual).hex(),
                    });
                }
            }
            if let Some(file) = sink.file.take() {
                if fsync {
                    file.sync_all().map_err(|e| DownloadError::file(&path, e))?;
                }
                drop(file);
            }
            let placed = place(&path, &target).map_err(|e| DownloadError::file(&path, e))?;
            if sink.meta_maybe {
                let _ = fs::remove_file(&sink.paths.meta);
            }
            if fsync {
                File::open(&target.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| DownloadError::file(&target.dir, e))?;
            }
            Ok(placed)
        };
        if small {
            return files
                .run(work)
                .await
                .unwrap_or(Err(DownloadError::Panicked));
        }
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| DownloadError::Panicked)?
    }
}

/// Where a complete file goes.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) dir: PathBuf,
    pub(crate) name: String,
    pub(crate) overwrite: bool,
    /// Final names taken by this run.
    pub(crate) claimed: std::sync::Arc<Mutex<HashSet<String>>>,
}

/// Moves `part` to `dir/name`, or to `name (1)`, `name (2)`, ... when the name is taken by this
/// run or (unless overwriting) by an existing file.
///
/// Without overwrite the move must fail atomically if the name exists, so that an existing file
/// is never replaced even by a concurrent process: a rename with `RENAME_NOREPLACE` on Linux (one
/// system call), else a hard link then the removal of the partial name; where neither is
/// supported it falls back to check-then-rename.
pub(crate) fn place(part: &Path, target: &Target) -> io::Result<PathBuf> {
    for n in 0u32.. {
        let candidate = if n == 0 {
            target.name.clone()
        } else {
            name::numbered(&target.name, n)
        };
        {
            let mut claimed = target
                .claimed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !claimed.insert(candidate.clone()) {
                continue;
            }
        }
        let dest = target.dir.join(&candidate);
        if target.overwrite {
            fs::rename(part, &dest)?;
            return Ok(dest);
        }
        match rename_no_replace(part, &dest) {
            Ok(()) => return Ok(dest),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // Not supported here (old kernel, some file systems): try a hard link.
            Err(_) => {}
        }
        match fs::hard_link(part, &dest) {
            Ok(()) => {
                fs::remove_file(part)?;
                return Ok(dest);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                if fs::symlink_metadata(&dest).is_ok() {
                    continue;
                }
                fs::rename(part, &dest)?;
                return Ok(dest);
            }
        }
    }
    Err(io::Error::other("no free file name"))
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`), atomically.
#[cfg(target_os = "linux")]
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

/// Renames `from` to `to` unless `to` exists: not available on this platform.
#[cfg(not(target_os = "linux"))]
fn rename_no_replace(_from: &Path, _to: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The SHA-256 state after the first `len` bytes of `path` (to continue hashing a resumed file).
pub(crate) fn hash_prefix(path: &Path, len: u64) -> io::Result<Sha256> {
    let mut hasher = Sha256::new();
    let mut file = File::open(path)?.take(len);
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
    }
    if read != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "partial file shrank while resuming",
        ));
    }
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `create_fresh` creates a missing file, and replaces what is at the name (an old file, a
    /// symbolic link) with a new empty file, never writing through the link.
    #[test]
    fn create_fresh_replaces_whatever_is_at_the_name_without_following_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.part");
        create_fresh(&path)
            .expect("new")
            .write_all(b"one")
            .expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"one");

        create_fresh(&path)
            .expect("over a file")
            .write_all(b"two")
            .expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"two");

        #[cfg(unix)]
        {
            let victim = dir.path().join("victim");
            fs::write(&victim, b"keep").expect("victim");
            fs::remove_file(&path).expect("remove");
            std::os::unix::fs::symlink(&victim, &path).expect("symlink");
            create_fresh(&path)
                .expect("over a link")
                .write_all(b"three")
                .expect("write");
            assert_eq!(fs::read(&victim).expect("read victim"), b"keep");
            assert!(!fs::symlink_metadata(&path).expect("meta").is_symlink());
            assert_eq!(fs::read(&path).expect("read"), b"three");
        }
    }
}
