//! The live view's terminal dashboard (the `tui` feature): a [`Snapshot`] drawn with ratatui
//! on crossterm, and the terminal handling around it.
//!
//! - [`SnapshotView`] is the drawing, a ratatui [`Widget`](ratatui::widgets::Widget): totals
//!   and lines per second, latency percentiles, the status mix, the top paths and clients, and
//!   the followed files. It draws into any buffer (tests use ratatui's `TestBackend`).
//! - [`Dashboard`] owns the terminal: it switches to the alternate screen in raw mode, draws
//!   snapshots, turns `q`, `Esc` and Ctrl-C into a cancellation (raw mode turns Ctrl-C into a
//!   key instead of a signal), and always gives the terminal back as it found it: when dropped
//!   (an early return, an error, a panic that unwinds) and from a panic hook (so the panic
//!   message lands on the normal screen, not the alternate one about to be discarded).

mod view;

use std::io::{self, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use weft_core::context::CancelFn;

pub use view::SnapshotView;

use crate::follow::Snapshot;

/// Whether the terminal is in the dashboard's mode (raw, alternate screen), so restoring it
/// twice (drop after the panic hook) does nothing the second time.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// The terminal, taken over for the dashboard (see the module docs).
///
/// Only one is meant to exist at a time: it owns the process's terminal. Dropping it
/// restores the terminal and stops the key reader.
///
/// ```no_run
/// use weft_core::context::Context;
/// use weft_logs::follow::{FollowOptions, follow};
/// use weft_logs::tui::Dashboard;
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (ctx, cancel) = Context::background().with_cancel();
/// let mut dashboard = Dashboard::start(cancel)?; // `q` or Ctrl-C cancels `ctx`
/// let report = follow(&ctx, ["access.log"], Default::default(), FollowOptions::default(), move |snap| {
///     let _ = dashboard.draw(snap);
/// })
/// .await?; // the callback, and the dashboard with it, are dropped: the terminal is back
/// println!("{report}");
/// # Ok(()) }
/// ```
pub struct Dashboard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    keys: Option<(JoinHandle<()>, std::sync::Arc<AtomicBool>)>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Takes the terminal over (raw mode, alternate screen, hidden cursor) and starts reading
    /// keys: `q`, `Esc` or Ctrl-C call `stop.cancel_with("interrupted")`.
    ///
    /// # Errors
    ///
    /// If the terminal cannot be set up (stdout is not a terminal); it is then restored.
    pub fn start(stop: CancelFn) -> io::Result<Dashboard> {
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        let setup = (|| {
            terminal::enable_raw_mode()?;
            execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
            Terminal::new(CrosstermBackend::new(io::stdout()))
        })();
        let terminal = match setup {
            Ok(t) => t,
            Err(e) => {
                restore();
                return Err(e);
            }
        };
        let quit = std::sync::Arc::new(AtomicBool::new(false));
        let keys = std::thread::Builder::new()
            .name("weft-logs-keys".into())
            .spawn({
                let quit = std::sync::Arc::clone(&quit);
                move || read_keys(&stop, &quit)
            })?;
        Ok(Dashboard {
            terminal,
            keys: Some((keys, quit)),
        })
    }

    /// Draws `snapshot` over the whole screen.
    ///
    /// # Errors
    ///
    /// If writing to the terminal fails.
    pub fn draw(&mut self, snapshot: &Snapshot) -> io::Result<()> {
        self.terminal
            .draw(|frame| frame.render_widget(SnapshotView::new(snapshot), frame.area()))?;
        Ok(())
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some((thread, quit)) = self.keys.take() {
            quit.store(true, Ordering::Release);
            // It looks at `quit` at least every 100 ms.
            let _ = thread.join();
        }
        restore();
    }
}

/// Reads keys until `quit`; the stop keys cancel `stop`.
fn read_keys(stop: &CancelFn, quit: &AtomicBool) {
    while !quit.load(Ordering::Acquire) {
        // A bounded wait, so that `quit` is seen soon after the dashboard is dropped.
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        if let Ok(Event::Key(key)) = event::read()
            && is_stop_key(&key)
        {
            stop.cancel_with("interrupted");
        }
    }
}

/// `q`, `Esc` or Ctrl-C, pressed.
fn is_stop_key(key: &KeyEvent) -> bool {
    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
    key.kind == KeyEventKind::Press
        && (ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc))
}

/// Gives the terminal back (cooked mode, main screen, cursor shown), once.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Raw mode first: it matters more than the screen if the rest fails.
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    }
}

/// Restores the terminal before the panic message is printed, then runs the previous hook.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_esc_and_ctrl_c_stop_and_other_keys_do_not() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(is_stop_key(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(is_stop_key(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(is_stop_key(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!is_stop_key(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!is_stop_key(&key(
            KeyCode::Char('x'),
            KeyModifiers::CONTROL
        )));
        let mut release = key(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert!(!is_stop_key(&release), "a key counts once, when pressed");
    }

    #[test]
    fn a_panic_gives_the_terminal_back_before_its_message_is_printed() {
        // As if a dashboard held the terminal (none is set up: the test's stdout is not one).
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        let panicked = std::thread::spawn(|| panic!("a bug while drawing")).join();
        assert!(panicked.is_err());
        assert!(
            !ACTIVE.load(Ordering::SeqCst),
            "the panic hook restored the terminal"
        );
    }
}
