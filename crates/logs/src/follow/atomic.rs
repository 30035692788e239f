//! Replacing a file so that a reader never sees it half written.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces the file at `path` with `contents` atomically: a reader opening `path` at any
/// moment sees either the whole old file or the whole new one, never a part.
///
/// The bytes go to a temporary file in the same directory (a rename is atomic only within
/// one file system), which is flushed to disk (`fsync`) and then renamed over `path`. The new
/// file keeps the old one's permissions, or gets `rw-r--r--` less the umask (a page a web
/// server can serve) if there was none. On error the temporary file is removed and `path` is
/// left as it was.
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
    let mode = std::fs::metadata(path).ok().map(|m| m.permissions());
    let (tmp_path, mut tmp) = create_temp(dir, name, mode.as_ref())?;
    let written = (|| {
        tmp.write_all(contents)?;
        // On disk before the rename: after a crash the name holds the old page or the new
        // one, never an empty file.
        tmp.sync_all()?;
        drop(tmp);
        std::fs::rename(&tmp_path, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp_path);
    }
    written
}

/// Creates `.NAME.PID.N.tmp` in `dir`, a name no other writer uses (`create_new`).
fn create_temp(
    dir: &Path,
    name: &OsStr,
    permissions: Option<&std::fs::Permissions>,
) -> io::Result<(PathBuf, File)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        // Relaxed: only uniqueness matters, and `create_new` settles any collision.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut file_name = OsString::from(".");
        file_name.push(name);
        file_name.push(format!(".{}.{n}.tmp", std::process::id()));
        let tmp_path = dir.join(file_name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            // The old page's mode, or one a web server can read (the umask still applies).
            options.mode(permissions.map_or(0o644, PermissionsExt::mode));
        }
        match options.open(&tmp_path) {
            Ok(f) => {
                #[cfg(unix)]
                if let Some(p) = permissions {
                    // The umask narrowed the old page's mode: put it back as it was.
                    f.set_permissions(p.clone())?;
                }
                #[cfg(not(unix))]
                let _ = permissions;
                return Ok((tmp_path, f));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}
