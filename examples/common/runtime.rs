//! The runtime for examples whose output depends on timeouts: tokio's usual multi-thread
//! runtime, or, with `--paused-clock`, one thread on a paused clock so that the tests see the
//! same outcome on any machine. Included with `#[path = "common/runtime.rs"] mod runtime;`.

/// Builds the runtime: multi-thread, or with `paused_clock` one thread whose clock is paused.
///
/// On a paused clock time stands still while any task can run and jumps to the next timer once
/// all of them wait, so a deadline is met or missed by the program's logic alone, never by how
/// loaded the machine is (tokio's `test-util`, enabled for the examples).
pub(crate) fn build(paused_clock: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if paused_clock {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
}
