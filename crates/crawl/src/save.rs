//! Saved pages (`--save DIR`): each successful body stored once, named by a hash of its final
//! URL, with an index (`DIR/index.jsonl`) mapping URL to file, status, content type and fetch
//! time; and the saved pages a resumed crawl reads instead of fetching.
//!
//! # Invariants
//!
//! 1. A body file is written under a temporary name in `DIR` and renamed into place: a file at
//!    a hashed name is always whole.
//! 2. An index line is appended only after its body file is in place, so every line a resumed
//!    crawl reads points at a whole file; a line cut by a crash is skipped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The index file's name in the save directory.
pub(crate) const INDEX: &str = "index.jsonl";

/// One line of the index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) url: String,
    pub(crate) final_url: String,
    /// The body's file name in the save directory.
    pub(crate) file: String,
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    /// Seconds since the Unix epoch.
    pub(crate) fetched_at: f64,
}

/// The save directory of one crawl.
#[derive(Debug)]
pub(crate) struct Saver {
    dir: PathBuf,
    index: Mutex<File>,
    /// What an earlier crawl saved (empty unless resuming), by queued URL.
    saved: HashMap<String, Entry>,
}

impl Saver {
    /// Opens `dir` (created if missing): its index is read when resuming, else started over.
    pub(crate) fn open(dir: &Path, resume: bool) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(INDEX);
        let mut saved = HashMap::new();
        if resume {
            match File::open(&path) {
                Ok(file) => {
                    for line in BufReader::new(file).lines() {
                        // Invariant 2: a line that does not parse was cut by a crash.
                        if let Ok(entry) = serde_json::from_str::<Entry>(&line?)
                            && dir.join(&entry.file).is_file()
                        {
                            saved.insert(entry.url.clone(), entry);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let index = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(&path)?;
        if !resume {
            index.set_len(0)?;
        }
        Ok(Saver {
            dir: dir.to_owned(),
            index: Mutex::new(index),
            saved,
        })
    }

    /// The entry an earlier crawl saved for `url`, and the path of its body.
    pub(crate) fn saved(&self, url: &str) -> Option<(&Entry, PathBuf)> {
        self.saved
            .get(url)
            .map(|entry| (entry, self.dir.join(&entry.file)))
    }

    /// Stores a body and indexes it (blocking I/O). Returns the file name.
    pub(crate) fn save(
        &self,
        url: &str,
        final_url: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<String> {
        let hash = Sha256::digest(final_url.as_bytes());
        let mut file: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let html = content_type.is_some_and(|ct| ct.contains("html"));
        file.push_str(if html { ".html" } else { ".body" });
        let mut tmp = tempfile::Builder::new()
            .prefix(".weft-save-")
            .tempfile_in(&self.dir)?;
        tmp.write_all(body)?;
        tmp.persist(self.dir.join(&file)).map_err(|e| e.error)?;
        let entry = Entry {
            url: url.to_owned(),
            final_url: final_url.to_owned(),
            file: file.clone(),
            status,
            content_type: content_type.map(str::to_owned),
            fetched_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write per line on an append-mode file: lines never interleave.
        self.index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&line)?;
        Ok(file)
    }
}
