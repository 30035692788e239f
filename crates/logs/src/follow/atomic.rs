//! Replacing a file so that a reader never sees it half written.

use std::io::{self, Write};
use std::path::Path;

/// Replaces the file at `path` with `contents` atomically: a reader opening `path` at any
/// moment sees either the whole old file or the whole new one, never a part.
///
/// The bytes go to a temporary file in the same directory (a rename is atomic only within
/// one file system), which is flushed to disk (`fsync`) and then renamed over `path`. The new
/// file keeps the old one's permissions, or gets `rw-r--r--` (a page a web server can serve)
/// if there was none. On error the temporary file is removed and `path` is left as it was.
///
/// # Errors
///
/// Any I/O error creating, writing, syncing or renaming the file.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let page = dir.path().join("report.html");
/// weft_logs::follow::write_atomic(&page, b"<html>1</html>")?;
/// weft_logs::follow::write_atomic(&page, b"<html>2</html>")?;
/// assert_eq!(std::fs::read(&page)?, b"<html>2</html>");
/// assert_eq!(std::fs::read_dir(dir.path())?.count(), 1, "no temporary file left behind");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name to write to"))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    let permissions = match std::fs::metadata(path) {
        Ok(m) => Some(m.permissions()),
        Err(_) => default_permissions(),
    };
    if let Some(p) = permissions {
        builder.permissions(p);
    }
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(unix)]
fn default_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn default_permissions() -> Option<std::fs::Permissions> {
    None
}
