//! The store directory: where things live, the lock that keeps a second daemon out, and
//! the format file that tells which s2sfs can read it.
//!
//! ```text
//! STORE/format   "s2sfs-store 2": the on-disk format version, readable by people and tools
//! STORE/lock     flock()ed by the process that has the store open; its text says whether
//!                that process closed the store cleanly (`CloseState`)
//! STORE/durable  how far the metadata store is known to be durable (watermark.rs)
//! STORE/meta.redb  redb: inodes, directory entries, block index, block records, xattrs
//!                (format 1 kept them in sled, in STORE/meta/: migrate.rs moves them)
//! STORE/packs/   append-only pack files of frames
//! STORE/models/  learned models the volume's frames refer to
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;

/// How long opening a store waits for a lock that another holder is letting go of.
pub const LOCK_GRACE: Duration = Duration::from_secs(1);

pub const FORMAT_VERSION: u32 = 2;
/// The format whose metadata lived in sled (STORE/meta/); opened by migrating it.
pub const SLED_FORMAT_VERSION: u32 = 1;

/// What `check_or_create` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing: a new store was laid out.
    Created,
    /// A store of the current format.
    Current,
    /// A store of format 1, whose metadata is still in sled (or half migrated).
    Sled,
}
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
pub fn record_state(lock: &StoreLock, path: &Path, text: &str) -> Result<(), StoreError> {
    let file = &lock.file;
    file.set_len(0).and_then(|_| file.write_all_at(text.as_bytes(), 0)).map_err(|e| io_err(path, e))
}

/// The store's lock file, flock()ed; dropping it lets go of the lock at once. Closing the
/// descriptor alone would not: the lock belongs to the open file, which every copy of the
/// descriptor shares, and a child that another thread of this process forks holds a copy
/// until it execs (or exits). A store closed and opened again while a test harness or a
/// daemon spawns a program would otherwise be refused as locked for as long as that
/// child takes to exec, which a loaded machine can stretch past LOCK_GRACE. No s2sfs
/// process forks a child that goes on using a store its parent opened, so the copies
/// never need the lock.
pub struct StoreLock {
    file: File,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor we own; no memory is involved. Should it fail,
        // closing the descriptor still lets go once the copies are closed too.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
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

/// `STORE/control.sock`: where the daemon that has the store open answers requests
/// (`fs::control`); its clients (`s2sfs fsck`, `stats`, `recompress`) connect there.
pub fn control_socket(root: &Path) -> PathBuf {
    root.join("control.sock")
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout { root: root.to_path_buf() }
    }
    pub fn meta(&self) -> PathBuf {
        self.root.join("meta.redb")
    }
    /// Format 1's sled directory.
    pub fn legacy_meta(&self) -> PathBuf {
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

    /// Takes the store's exclusive lock, waiting at most `LOCK_GRACE` for it; held until
    /// the `StoreLock` is dropped.
    pub fn take_lock(&self) -> Result<StoreLock, StoreError> {
        std::fs::create_dir_all(&self.root).map_err(|e| io_err(&self.root, e))?;
        let path = self.lock();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        // A lock whose holder has just let go can stay held for a moment: a killed daemon
        // cannot let go (`StoreLock`'s drop), its descriptors close only when its last
        // thread has exited, and a child it was forking holds copies of them until it
        // execs. So a refusal is final only after LOCK_GRACE.
        let deadline = Instant::now() + LOCK_GRACE;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(StoreLock { file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io_err(&path, err));
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Locked(self.root.clone()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Checks the format file of an existing store, or lays out a new one.
    pub fn check_or_create(&self) -> Result<Found, StoreError> {
        let format = self.format();
        match std::fs::read_to_string(&format) {
            Ok(text) => {
                let found =
                    text.trim().strip_prefix(FORMAT_PREFIX).and_then(|v| v.parse::<u32>().ok()).ok_or_else(|| {
                        StoreError::Damaged { what: format!("{} (unreadable: {text:?})", format.display()) }
                    })?;
                let (meta, kind) = match found {
                    FORMAT_VERSION => (self.meta(), Found::Current),
                    // A migration that got as far as its rename left the new file whole.
                    SLED_FORMAT_VERSION if self.meta().is_file() => (self.meta(), Found::Sled),
                    SLED_FORMAT_VERSION => (self.legacy_meta(), Found::Sled),
                    _ => {
                        return Err(StoreError::Incompatible {
                            path: self.root.clone(),
                            found,
                            supported: FORMAT_VERSION,
                        });
                    }
                };
                for path in [meta, self.packs()] {
                    if !path.exists() {
                        return Err(StoreError::Damaged { what: format!("{} (missing)", path.display()) });
                    }
                }
                Ok(kind)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.meta().exists() || self.legacy_meta().exists() || self.packs().exists() {
                    return Err(StoreError::Damaged {
                        what: format!("{} (missing, but the store has data)", format.display()),
                    });
                }
                for dir in [self.packs(), self.models()] {
                    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
                }
                // Written last: a store without it was never fully created.
                self.write_format(FORMAT_VERSION)?;
                Ok(Found::Created)
            }
            Err(e) => Err(io_err(&format, e)),
        }
    }

    /// Replaces the format file atomically (a crash leaves the old or the new one).
    pub fn write_format(&self, version: u32) -> Result<(), StoreError> {
        let format = self.format();
        let tmp = self.root.join("format.tmp");
        let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(format!("{FORMAT_PREFIX}{version}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| io_err(&tmp, e))?;
        std::fs::rename(&tmp, &format).map_err(|e| io_err(&format, e))?;
        self.sync_root()
    }

    /// Makes renames and removals in the store directory durable.
    pub fn sync_root(&self) -> Result<(), StoreError> {
        crate::durable::sync_dir(&self.root).map_err(|e| io_err(&self.root, e))
    }

    /// Removes format 1's sled directory once the store is of the current format (a
    /// migration that crashed after writing the new format left it behind).
    pub fn remove_legacy_meta(&self) {
        let legacy = self.legacy_meta();
        if legacy.is_dir() && self.meta().is_file() {
            match std::fs::remove_dir_all(&legacy) {
                Ok(()) => log::info!("removed {} (metadata migrated to {})", legacy.display(), self.meta().display()),
                Err(e) => log::warn!("{}: not removed ({e}); it is no longer used", legacy.display()),
            }
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
    fn a_lock_let_go_within_the_grace_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let held = layout.take_lock().unwrap();
        // As a forked child's copy of the descriptor would: the lock outlives the
        // holder's drop by a moment.
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(LOCK_GRACE / 4);
            drop(held);
        });
        let started = Instant::now();
        assert!(layout.take_lock().is_ok(), "refused though let go within the grace");
        assert!(started.elapsed() >= LOCK_GRACE / 8, "taken while still held");
        letting_go.join().unwrap();
    }

    #[test]
    fn a_dropped_lock_is_let_go_while_a_copy_of_its_descriptor_lives() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let held = layout.take_lock().unwrap();
        // What a child that another thread forks holds until it execs: a copy of the
        // descriptor, sharing the open file and so its lock.
        let copy = held.file.try_clone().unwrap();
        drop(held);
        assert!(layout.take_lock().is_ok(), "refused while a copy of the let-go lock's descriptor is open");
        drop(copy);
    }

    #[test]
    fn format_versions() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert_eq!(layout.check_or_create().unwrap(), Found::Created);
        std::fs::write(layout.meta(), b"").unwrap();
        assert_eq!(layout.check_or_create().unwrap(), Found::Current);
        std::fs::write(layout.format(), "s2sfs-store 999\n").unwrap();
        assert!(matches!(layout.check_or_create(), Err(StoreError::Incompatible { found: 999, .. })));
        std::fs::remove_file(layout.format()).unwrap();
        assert!(matches!(layout.check_or_create(), Err(StoreError::Damaged { .. })));
    }
}
