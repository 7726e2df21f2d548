//! The store directory: where things live, the lock that keeps a second daemon out, and
//! the format file that tells which s2sfs can read it.
//!
//! ```text
//! STORE/format   "s2sfs-store 1": the on-disk format version, readable by people and tools
//! STORE/lock     flock()ed by the process that has the store open; its text says whether
//!                that process closed the store cleanly (`CloseState`)
//! STORE/durable  how far the metadata store is known to be durable (watermark.rs)
//! STORE/meta/    sled: inodes, directory entries, block index, block records, xattrs
//! STORE/packs/   append-only pack files of frames
//! STORE/models/  learned models the volume's frames refer to
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::StoreError;

pub const FORMAT_VERSION: u32 = 1;
const FORMAT_PREFIX: &str = "s2sfs-store ";

/// How the last process that had a store open left it, as its lock file tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseState {
    /// Closed with every change committed and durable.
    Clean,
    /// Closed, but the last commits failed (the message says why): data is missing.
    Failed(String),
    /// Never closed: the process died with the store open (killed, crashed, power loss).
    Died,
    /// No process ever opened it, or an s2sfs that did not record this.
    Unknown,
}

const OPEN_TEXT: &str = "open\n";
const CLEAN_TEXT: &str = "closed\n";
const FAILED_PREFIX: &str = "close failed: ";

/// Writes the state into a lock file we hold.
pub fn record_state(lock: &File, path: &Path, text: &str) -> Result<(), StoreError> {
    lock.set_len(0).and_then(|_| lock.write_all_at(text.as_bytes(), 0)).map_err(|e| io_err(path, e))
}

pub fn open_text() -> &'static str {
    OPEN_TEXT
}

pub fn close_text(error: Option<&str>) -> String {
    match error {
        None => CLEAN_TEXT.to_string(),
        Some(e) => format!("{FAILED_PREFIX}{}\n", e.replace('\n', " ")),
    }
}

/// Reads how the store was last closed (meaningful once no process holds the lock).
pub fn close_state(root: &Path) -> CloseState {
    match std::fs::read_to_string(root.join("lock")) {
        Ok(t) if t == OPEN_TEXT => CloseState::Died,
        Ok(t) if t == CLEAN_TEXT => CloseState::Clean,
        Ok(t) => match t.strip_prefix(FAILED_PREFIX) {
            Some(msg) => CloseState::Failed(msg.trim_end().to_string()),
            None => CloseState::Unknown,
        },
        Err(_) => CloseState::Unknown,
    }
}

pub struct Layout {
    pub root: PathBuf,
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io { path: path.to_path_buf(), source }
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout { root: root.to_path_buf() }
    }
    pub fn meta(&self) -> PathBuf {
        self.root.join("meta")
    }
    pub fn packs(&self) -> PathBuf {
        self.root.join("packs")
    }
    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }
    pub fn durable(&self) -> PathBuf {
        self.root.join("durable")
    }
    pub fn format(&self) -> PathBuf {
        self.root.join("format")
    }

    /// Takes the store's exclusive lock without waiting; held until the file is dropped.
    pub fn take_lock(&self) -> Result<File, StoreError> {
        std::fs::create_dir_all(&self.root).map_err(|e| io_err(&self.root, e))?;
        let path = self.lock();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(StoreError::Locked(self.root.clone()));
            }
            return Err(io_err(&path, err));
        }
        Ok(file)
    }

    /// Checks the format file of an existing store, or lays out a new one.
    /// Returns true when the store was just created.
    pub fn check_or_create(&self) -> Result<bool, StoreError> {
        let format = self.format();
        match std::fs::read_to_string(&format) {
            Ok(text) => {
                let found = text
                    .trim()
                    .strip_prefix(FORMAT_PREFIX)
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or_else(|| StoreError::Damaged { what: format!("{} (unreadable: {text:?})", format.display()) })?;
                if found != FORMAT_VERSION {
                    return Err(StoreError::Incompatible { path: self.root.clone(), found, supported: FORMAT_VERSION });
                }
                for dir in [self.meta(), self.packs()] {
                    if !dir.is_dir() {
                        return Err(StoreError::Damaged { what: format!("{} (missing)", dir.display()) });
                    }
                }
                Ok(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.meta().exists() || self.packs().exists() {
                    return Err(StoreError::Damaged { what: format!("{} (missing, but the store has data)", format.display()) });
                }
                for dir in [self.meta(), self.packs(), self.models()] {
                    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
                }
                // Written last and atomically: a store without it was never fully created.
                let tmp = self.root.join("format.tmp");
                let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
                f.write_all(format!("{FORMAT_PREFIX}{FORMAT_VERSION}\n").as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| io_err(&tmp, e))?;
                std::fs::rename(&tmp, &format).map_err(|e| io_err(&format, e))?;
                Ok(true)
            }
            Err(e) => Err(io_err(&format, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let held = layout.take_lock().unwrap();
        assert!(matches!(layout.take_lock(), Err(StoreError::Locked(_))));
        drop(held);
        assert!(layout.take_lock().is_ok());
    }

    #[test]
    fn format_versions() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert!(layout.check_or_create().unwrap());
        assert!(!layout.check_or_create().unwrap());
        std::fs::write(layout.format(), "s2sfs-store 999\n").unwrap();
        assert!(matches!(layout.check_or_create(), Err(StoreError::Incompatible { found: 999, .. })));
        std::fs::remove_file(layout.format()).unwrap();
        assert!(matches!(layout.check_or_create(), Err(StoreError::Damaged { .. })));
    }
}
