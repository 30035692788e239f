//! Progress reporting: a small observer interface, and terminal bars built on `indicatif`.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Outcome;

/// Receives progress events from a running download batch. Implementations must be cheap:
/// [`Tracker::advance`] is called for every piece of body received.
pub trait Progress: Send + Sync {
    /// A download became active (a pool worker started it); `index` is its position in the
    /// input. The returned tracker receives that download's events.
    fn begin(&self, index: usize, name: &str) -> Box<dyn Tracker>;
}

/// The events of one active download (see [`Progress::begin`]).
pub trait Tracker: Send {
    /// A response arrived: the body continues from `offset` (non-zero when resuming) towards
    /// `total` bytes when known. Called once per attempt that gets a body.
    fn attempt(&mut self, offset: u64, total: Option<u64>);
    /// `bytes` more bytes were received.
    fn advance(&mut self, bytes: u64);
    /// The download ended (completed, failed or cancelled).
    fn end(&mut self, outcome: &Outcome);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: usize, _: &str) -> Box<dyn Tracker> {
        Box::new(NoProgress)
    }
}

impl Tracker for NoProgress {
    fn attempt(&mut self, _: u64, _: Option<u64>) {}
    fn advance(&mut self, _: u64) {}
    fn end(&mut self, _: &Outcome) {}
}

/// One `indicatif` bar per active download plus a total bar (bytes of all files whose size is
/// known, and files finished out of `files`), drawn on stderr. Nothing is drawn when stderr is
/// not a terminal.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    files: usize,
    finished: std::sync::Arc<AtomicUsize>,
}

impl fmt::Debug for Bars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bars").field("files", &self.files).finish()
    }
}

impl Bars {
    /// Bars for a batch of `files` downloads.
    ///
    /// ```
    /// use weft_download::{Bars, Progress};
    /// let bars = Bars::new(3);
    /// let mut t = bars.begin(0, "a.bin");
    /// t.attempt(0, Some(10));
    /// t.advance(10);
    /// // In tests and pipes stderr is not a terminal, so nothing is drawn.
    /// assert!(bars.is_hidden());
    /// ```
    pub fn new(files: usize) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>9} [{bar:30.green/dim}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        total.set_prefix("total");
        total.set_message(format!("0/{files} files"));
        Self {
            multi,
            total,
            files,
            finished: Default::default(),
        }
    }

    /// Whether the bars are hidden (stderr is not a terminal).
    pub fn is_hidden(&self) -> bool {
        self.multi.is_hidden()
    }

    /// Removes the bars from the terminal.
    pub fn clear(&self) {
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Progress for Bars {
    fn begin(&self, _index: usize, name: &str) -> Box<dyn Tracker> {
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>9} [{bar:30.cyan/blue}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(name.to_owned());
        Box::new(BarTracker {
            bar,
            total: self.total.clone(),
            counted: 0,
            known_len: 0,
            files: self.files,
            finished: self.finished.clone(),
        })
    }
}

struct BarTracker {
    bar: ProgressBar,
    total: ProgressBar,
    /// Bytes this download added to the total bar's position.
    counted: u64,
    /// Length this download added to the total bar's length.
    known_len: u64,
    files: usize,
    finished: std::sync::Arc<AtomicUsize>,
}

impl Tracker for BarTracker {
    fn attempt(&mut self, offset: u64, total: Option<u64>) {
        // A restart (or a resume) redefines what this download contributes to the total bar.
        let pos = self.total.position();
        self.total
            .set_position(pos.saturating_sub(self.counted) + offset);
        self.counted = offset;
        let len = self.total.length().unwrap_or(0);
        let new_len = total.unwrap_or(0);
        self.total
            .set_length(len.saturating_sub(self.known_len) + new_len);
        self.known_len = new_len;
        match total {
            Some(t) => self.bar.set_length(t),
            None => self.bar.unset_length(),
        }
        self.bar.set_position(offset);
        self.bar.reset_eta();
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.inc(bytes);
        self.total.inc(bytes);
        self.counted += bytes;
    }

    fn end(&mut self, _outcome: &Outcome) {
        // Relaxed: the count only feeds a message; no other memory is published through it.
        let done = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        self.total
            .set_message(format!("{done}/{} files", self.files));
        self.bar.finish_and_clear();
    }
}
