//! `outln!`: `println!` for the examples, except that a closed stdout ends the example cleanly.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`cargo run --example channels |
//! head -1`). A closed pipe means the reader has all it wants, so, as the `weft` binary does, the
//! example exits with status 0 and says nothing. Included by each example with
//! `#[path = "common/out.rs"] mod out;` (a directory without `main.rs` is not built as an example).

use std::io::{ErrorKind, Write as _};

/// Writes `args` and a newline to stdout; exits the process with status 0 if stdout is closed.
pub(crate) fn write_line(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    drop(stdout); // `exit` flushes stdout, which takes its lock
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            // stderr may be gone too: nothing more can be reported then.
            let _ = writeln!(std::io::stderr(), "error: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }
}

/// `println!` that exits cleanly (status 0) when stdout is a closed pipe.
macro_rules! outln {
    () => {
        $crate::out::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
