//! One followed path, read the way `tail -F` reads it.
//!
//! # Invariants
//!
//! 1. Only whole lines leave a [`Tail`]: the bytes after the last newline read stay in
//!    `pending` until their newline arrives. The one exception is the last line of a file that
//!    will not grow any more (a rotated-away file once it is closed after staying quiet), which
//!    is handed on unterminated, as the batch analysis counts a file's unterminated last line
//!    at its end. A file still open when following stops may be in the middle of a line: its
//!    partial line is not handed on.
//! 2. Every byte of every file generation is handed on at most once: `pos` is the offset up to
//!    which the open file has been read, and it only moves back (to 0) when the file shrank
//!    (truncation), whose earlier content is gone.
//! 3. A rotated-away file (the path now names another file) is not dropped at once: it stays in
//!    `retired` and is read at every poll until it has been quiet for [`RETIRE_AFTER_POLLS`]
//!    polls, so lines its writer appends before reopening the new file are still counted.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use memchr::{memchr, memrchr};

/// Polls a rotated-away file stays open without growing before it is closed (2 s at the
/// default 250 ms interval: a server reopens its log within that after being told to).
pub(crate) const RETIRE_AFTER_POLLS: u32 = 8;
/// Bytes read from one file per poll at most, so that catching up with a large file (from its
/// start) still hands a snapshot on every interval and sees a stop soon.
pub(crate) const READ_PER_POLL: u64 = 32 << 20;
/// Bytes of a too-long line kept as its sample (as the batch analysis keeps).
const LONG_PREFIX: usize = 200;

/// What a poll hands on.
pub(crate) enum Piece<'a> {
    /// Whole lines (each ends with a newline, except the last line of a closed file).
    Lines(&'a [u8]),
    /// The first bytes of a line longer than the maximum line length; the rest is skipped.
    LongLine(&'a [u8]),
}

/// Identifies a file whatever its name: device and inode on Unix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId(u64, u64);

impl FileId {
    #[cfg(unix)]
    fn of(m: &Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId(m.dev(), m.ino())
    }

    // Without inode numbers a rotation shows only as a new creation time.
    #[cfg(not(unix))]
    fn of(m: &Metadata) -> FileId {
        let created = m
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        FileId(created, 0)
    }
}

/// One generation of the followed path, open.
struct Open {
    file: File,
    id: FileId,
    /// Offset read up to.
    pos: u64,
    /// The line being assembled (bytes after the last newline handed on).
    pending: Vec<u8>,
    /// Dropping bytes up to the next newline (a too-long line, or the line the follower
    /// started in the middle of).
    skipping: bool,
    /// Polls in a row that found nothing new (for retired files).
    quiet: u32,
}

/// Why a path is not being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Halted {
    /// It cannot be followed (a gzip file, a directory): reading it is given up.
    Refused(String),
}

/// What a [`Tail::poll`] found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Polled {
    pub(crate) bytes: u64,
    /// A file had more to read than one poll reads (see [`READ_PER_POLL`]).
    pub(crate) behind: bool,
    pub(crate) rotated: bool,
    pub(crate) truncated: bool,
}

/// A followed path (see the module docs).
pub(crate) struct Tail {
    path: PathBuf,
    current: Option<Open>,
    retired: Vec<Open>,
    halted: Option<Halted>,
    chunk: usize,
    max_line: usize,
    /// Bytes read from one file per poll at most ([`READ_PER_POLL`]; smaller in tests).
    read_per_poll: u64,
}

impl Tail {
    /// A tail of `path`, not opened yet (see [`Tail::start`]).
    pub(crate) fn new(path: PathBuf, chunk: usize, max_line: usize) -> Tail {
        Tail {
            path,
            current: None,
            retired: Vec::new(),
            halted: None,
            chunk,
            max_line,
            read_per_poll: READ_PER_POLL,
        }
    }

    #[cfg(test)]
    pub(crate) fn set_read_per_poll(&mut self, bytes: u64) {
        self.read_per_poll = bytes;
    }

    /// Opens the file if the path names one now: at its end when `at_end` (as `tail -F`
    /// starts), else at its start. A file that appears later is always read from its start.
    pub(crate) fn start(&mut self, at_end: bool) -> io::Result<()> {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.is_file()) {
            self.current = self.open(at_end)?;
        }
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn halted(&self) -> Option<&Halted> {
        self.halted.as_ref()
    }

    /// Whether a file is open (else the path is waited for).
    pub(crate) fn is_open(&self) -> bool {
        self.current.is_some()
    }

    /// The offset read up to in the current file.
    pub(crate) fn offset(&self) -> u64 {
        self.current.as_ref().map_or(0, |o| o.pos)
    }

    /// Checks that the path can be followed at all (before the first poll): not a directory,
    /// not gzip. A missing path is fine: it is waited for.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.path.extension().is_some_and(|e| e == "gz") {
            return Err(gzip_refusal(&self.path));
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if m.is_dir() => Err(format!(
                "cannot follow {}: it is a directory (name the log files to follow)",
                self.path.display()
            )),
            Ok(_) => match File::open(&self.path).and_then(|mut f| starts_with_gzip(&mut f)) {
                Ok(true) => Err(gzip_refusal(&self.path)),
                _ => Ok(()),
            },
            Err(_) => Ok(()),
        }
    }

    /// Reads what is new in the followed files and hands it on as whole lines.
    ///
    /// Plan: read the retired files (their lines came first) and close those that stayed
    /// quiet; look at what the path names now; read the current file to its end (from 0 if it
    /// shrank); if the path now names another file, retire the current one and read the new
    /// one from its start.
    pub(crate) fn poll(&mut self, out: &mut dyn FnMut(Piece<'_>)) -> io::Result<Polled> {
        let mut polled = Polled::default();
        // Read the retired files first: their lines were written before the current file's.
        let mut i = 0;
        while i < self.retired.len() {
            let open = &mut self.retired[i];
            let (n, behind) =
                match read_new(open, self.chunk, self.max_line, self.read_per_poll, out) {
                    Ok(read) => read,
                    Err(e) => {
                        // It cannot be read on: close it, and say why once.
                        self.retired.swap_remove(i);
                        return Err(e);
                    }
                };
            polled.bytes += n;
            polled.behind |= behind;
            open.quiet = if n == 0 { open.quiet + 1 } else { 0 };
            if open.quiet >= RETIRE_AFTER_POLLS {
                let open = self.retired.swap_remove(i);
                finish(open, out);
            } else {
                i += 1;
            }
        }
        if self.halted.is_some() {
            return Ok(polled);
        }
        // At most one switch per poll: a path rotated twice within one interval loses the
        // middle generation, which was never opened, as with `tail -F`.
        for _ in 0..2 {
            let now = std::fs::metadata(&self.path).ok().filter(Metadata::is_file);
            if self.current.is_none() {
                if now.is_none() {
                    return Ok(polled);
                }
                match self.open(false)? {
                    Some(open) => self.current = Some(open),
                    None => return Ok(polled),
                }
            }
            let Some(open) = self.current.as_mut() else {
                return Ok(polled);
            };
            let len = open.file.metadata()?.len();
            if len < open.pos {
                open.file.seek(SeekFrom::Start(0))?;
                open.pos = 0;
                // The line being assembled lost its start with the truncation.
                open.pending.clear();
                open.skipping = false;
                polled.truncated = true;
            }
            let (n, behind) = read_new(open, self.chunk, self.max_line, self.read_per_poll, out)?;
            polled.bytes += n;
            if behind {
                // Not at its end yet: whether it was rotated is looked at once it is.
                polled.behind = true;
                return Ok(polled);
            }
            match now {
                // Rotated: the path names a new file. The old one was read to its end just
                // now; it stays open a while in case its writer is still appending.
                Some(meta) if FileId::of(&meta) != open.id => {
                    if let Some(mut old) = self.current.take() {
                        old.quiet = 0;
                        self.retired.push(old);
                    }
                    polled.rotated = true;
                }
                // Unchanged, or gone (renamed and not yet recreated): keep reading it.
                _ => return Ok(polled),
            }
        }
        Ok(polled)
    }

    /// Opens the file the path names now, at its end or start; `None` if it vanished
    /// meanwhile or cannot be followed (then the tail is halted).
    fn open(&mut self, at_end: bool) -> io::Result<Option<Open>> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // The id of what was opened, not of what was looked at: it may have been replaced.
        let opened = file.metadata()?;
        if starts_with_gzip(&mut file)? {
            self.halted = Some(Halted::Refused(gzip_refusal(&self.path)));
            return Ok(None);
        }
        let mut open = Open {
            file,
            id: FileId::of(&opened),
            pos: 0,
            pending: Vec::new(),
            skipping: false,
            quiet: 0,
        };
        if at_end && opened.len() > 0 {
            let len = opened.len();
            // Starting inside a line (its writer is mid-write) would hand on its second half
            // as a line: skip to the next newline unless the file ends with one.
            let mut last = [0u8; 1];
            open.file.seek(SeekFrom::Start(len - 1))?;
            open.file.read_exact(&mut last)?;
            open.skipping = last[0] != b'\n';
            open.pos = len;
        }
        open.file.seek(SeekFrom::Start(open.pos))?;
        Ok(Some(open))
    }
}

fn gzip_refusal(path: &Path) -> String {
    format!(
        "cannot follow {}: it is gzip-compressed and a compressed file cannot be read while it \
         grows (follow the uncompressed log, or analyze this file without --follow)",
        path.display()
    )
}

/// Whether the file starts with gzip's magic bytes; leaves the offset at 0.
fn starts_with_gzip(f: &mut File) -> io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match f.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    f.seek(SeekFrom::Start(0))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// Hands on the unterminated last line of a file that will not be read again.
fn finish(open: Open, out: &mut dyn FnMut(Piece<'_>)) {
    if !open.skipping && !open.pending.is_empty() {
        out(Piece::Lines(&open.pending));
    }
}

/// Reads `open` from its offset to its current end (or `limit` bytes), handing on
/// whole lines as they complete. Returns the bytes read and whether it stopped before the end.
fn read_new(
    open: &mut Open,
    chunk: usize,
    max_line: usize,
    limit: u64,
    out: &mut dyn FnMut(Piece<'_>),
) -> io::Result<(u64, bool)> {
    let mut total = 0u64;
    loop {
        if total >= limit {
            return Ok((total, true));
        }
        let start = open.pending.len();
        let want = usize::try_from(limit - total).map_or(chunk, |left| left.min(chunk));
        // `read_to_end` reads into the spare capacity without zeroing it first: a poll that
        // finds nothing new costs one `read`, not a memset of a chunk.
        open.pending.reserve(want);
        let n = match (&mut open.file)
            .take(want as u64)
            .read_to_end(&mut open.pending)
        {
            Ok(n) => n,
            Err(e) => {
                // Forget the bytes read before the error; they are read again next time.
                open.pending.truncate(start);
                open.file.seek(SeekFrom::Start(open.pos))?;
                return Err(e);
            }
        };
        if n == 0 {
            return Ok((total, false));
        }
        // Fewer bytes than asked for: the end of the file.
        let at_end = n < want;
        open.pos += n as u64;
        total += n as u64;
        hand_on(open, start, max_line, out);
        if at_end {
            return Ok((total, false));
        }
    }
}

/// Hands on the whole lines of `open.pending`, whose bytes from `start` were just read.
fn hand_on(open: &mut Open, start: usize, max_line: usize, out: &mut dyn FnMut(Piece<'_>)) {
    if open.skipping {
        match memchr(b'\n', &open.pending[start..]) {
            Some(p) => {
                open.pending.drain(..start + p + 1);
                open.skipping = false;
            }
            None => {
                open.pending.clear();
                return;
            }
        }
    } else if start > 0
        && let Some(p) = memchr(b'\n', &open.pending[start..])
        && start + p >= max_line
    {
        // The carried line ended in this read but is too long, as the batch analysis finds a
        // line that fills its largest buffer.
        out(Piece::LongLine(&open.pending[..LONG_PREFIX]));
        open.pending.drain(..start + p + 1);
    }
    match memrchr(b'\n', &open.pending) {
        Some(p) => {
            out(Piece::Lines(&open.pending[..=p]));
            open.pending.drain(..=p);
        }
        None if open.pending.len() >= max_line => {
            out(Piece::LongLine(&open.pending[..LONG_PREFIX]));
            open.pending.clear();
            open.skipping = true;
        }
        None => {}
    }
}
