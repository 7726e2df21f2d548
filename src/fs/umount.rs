//! `s2sfs umount`: find the s2sfs mount in /proc/self/mountinfo, unmount it, and wait
//! until its daemon has committed everything and closed the store.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::daemon::LOG_FILE;
use super::error::CommandError;
use super::mountinfo::{MountEntry, find_mount};
use super::{preflight, storelock};
use crate::volume::{self, CloseState};

/// How long to wait for the daemon to close the store after the unmount.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Unmounts an s2sfs mount and waits (up to 60 s) until its daemon has closed the store,
/// i.e. until an exclusive flock on `STORE/lock` can be taken. Errors: not mounted, not an
/// s2sfs mount, busy, or a daemon that does not finish in time.
pub fn umount(mountpoint: &Path) -> Result<(), CommandError> {
    let (target, entry) = find_target(mountpoint)?;
    let store = entry.store().ok_or_else(|| {
        CommandError::new(format!(
            "{} is not an s2sfs mount (it is a {} mount of {})",
            target.display(),
            entry.fstype,
            entry.source.to_string_lossy()
        ))
    })?;
    unmount(&target)?;
    wait_store_closed(&store, CLOSE_TIMEOUT)?;
    match volume::close_state(&store) {
        CloseState::Failed(why) => Err(CommandError::new(format!(
            "unmounted, but the daemon could not commit all data: {why} (see {}); \
             what fsync returned for is safe, later writes may be missing",
            store.join(LOG_FILE).display()
        ))),
        CloseState::Died => {
            // A dead mount being cleaned up: saying so is useful, failing is not.
            eprintln!(
                "s2sfs: the daemon of {} had exited without closing its store (killed?): \
                 writes not yet fsync'd may be missing; `s2sfs fsck --store {}` checks it",
                target.display(),
                store.display()
            );
            Ok(())
        }
        CloseState::Clean | CloseState::Unknown => Ok(()),
    }
}

/// The store of the s2sfs mount at `mountpoint` (exact path), if there is one.
pub(crate) fn mounted_store(mountpoint: &Path) -> Option<PathBuf> {
    find_mount(mountpoint).ok().flatten()?.store()
}

/// Finds the mount for the path the user gave. The mount's own root is not stat'ed
/// first (its daemon may be dead or hung): the parent is canonicalized and the name
/// appended; only when that is not a mount point is the whole path canonicalized.
pub(super) fn find_target(mountpoint: &Path) -> Result<(PathBuf, MountEntry), CommandError> {
    let shown = mountpoint.display();
    let abs = if mountpoint.is_absolute() {
        mountpoint.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| CommandError::with_cause("cannot read the current directory", &e))?
            .join(mountpoint)
    };
    let lexical = normalize(&abs);
    let mut candidates = Vec::new();
    if let (Some(parent), Some(name)) = (lexical.parent(), lexical.file_name()) {
        if let Ok(p) = parent.canonicalize() {
            candidates.push(p.join(name));
        }
    } else {
        candidates.push(lexical.clone());
    }
    for c in &candidates {
        if let Some(e) = find_mount(c)? {
            return Ok((c.clone(), e));
        }
    }
    let full = match abs.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CommandError::new(format!("{shown} does not exist")));
        }
        Err(e) => return Err(CommandError::with_cause(shown.to_string(), &e)),
    };
    match find_mount(&full)? {
        Some(e) => Ok((full, e)),
        None => Err(CommandError::new(format!("{} is not mounted", full.display()))),
    }
}

/// `.` dropped, `..` taken lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn busy(target: &Path) -> CommandError {
    let t = target.display();
    CommandError::new(format!(
        "cannot unmount {t}: target is busy (a process has a file open or its working directory \
         there; find it with `fuser -vm {t}`)"
    ))
}

/// umount2 as root, `fusermount3 -u` otherwise.
pub(crate) fn unmount(target: &Path) -> Result<(), CommandError> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let c = CString::new(target.as_os_str().as_bytes())
            .map_err(|_| CommandError::new("mount point contains a NUL byte"))?;
        // SAFETY: `c` is a valid path string.
        if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EBUSY) => busy(target),
            _ => CommandError::with_cause(format!("cannot unmount {}", target.display()), &e),
        });
    }
    let fusermount = preflight::check_fusermount()?;
    let out = std::process::Command::new(&fusermount)
        .args(["-u", "--"])
        .arg(target)
        .output()
        .map_err(|e| CommandError::with_cause(format!("cannot run {}", fusermount.display()), &e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().replace('\n', " ");
    if stderr.contains("busy") {
        return Err(busy(target));
    }
    Err(CommandError::new(format!("cannot unmount {}: {stderr}", target.display())))
}

/// Waits until the daemon has shut the volume down and closed the store (no process holds
/// `STORE/lock`).
fn wait_store_closed(store: &Path, timeout: Duration) -> Result<(), CommandError> {
    if storelock::wait_released(store, timeout, || Ok(()))? {
        return Ok(());
    }
    Err(CommandError::new(format!(
        "unmounted, but the daemon still holds {} after {} s: it may still be committing \
         data (see {})",
        storelock::lock_path(store).display(),
        timeout.as_secs(),
        store.join(LOG_FILE).display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs::File;
    use std::os::fd::AsRawFd;

    #[test]
    fn lock_wait() {
        let dir = tempfile::tempdir().unwrap();
        // No lock file: nothing to wait for.
        wait_store_closed(dir.path(), Duration::from_millis(10)).unwrap();
        let lock = File::create(storelock::lock_path(dir.path())).unwrap();
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        let e = wait_store_closed(dir.path(), Duration::from_millis(100)).unwrap_err();
        assert!(e.message().contains("still holds"), "{e}");
        drop(lock);
        wait_store_closed(dir.path(), Duration::from_millis(100)).unwrap();
    }
}
