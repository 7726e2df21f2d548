//! The store's lock seen from outside its daemon: `STORE/lock`, which the process that has
//! the store open holds an exclusive flock on. `s2sfs umount` waits until the daemon it
//! unmounted lets go of it; `s2sfs mount` waits for a daemon that another tool (umount(8),
//! `fusermount3 -u`) unmounted and that is still closing the store.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::CommandError;

/// Between two looks at a held lock.
const POLL: Duration = Duration::from_millis(50);

pub(crate) fn lock_path(store: &Path) -> PathBuf {
    store.join("lock")
}

/// Whether a process holds the store's lock now. Creates nothing: a store without a lock
/// file has never been opened.
pub(crate) fn is_held(store: &Path) -> Result<bool, CommandError> {
    let path = lock_path(store);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(CommandError::with_cause(format!("cannot open {}", path.display()), &e)),
    };
    loop {
        // SAFETY: flock on a descriptor we own. The lock, when taken, goes with `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(false);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(true),
            Some(libc::EINTR) => continue,
            _ => return Err(CommandError::with_cause(format!("cannot lock {}", path.display()), &e)),
        }
    }
}

/// Waits until no process holds the store's lock (true), or until `timeout` has passed
/// (false). `go_on` runs before each wait: its error ends the wait with that error.
pub(crate) fn wait_released(
    store: &Path,
    timeout: Duration,
    mut go_on: impl FnMut() -> Result<(), CommandError>,
) -> Result<bool, CommandError> {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_held(store)? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        go_on()?;
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_and_released() {
        let dir = tempfile::tempdir().unwrap();
        // No lock file: nothing holds it, and nothing is created.
        assert!(!is_held(dir.path()).unwrap());
        assert!(!lock_path(dir.path()).exists());
        let lock = File::create(lock_path(dir.path())).unwrap();
        assert!(!is_held(dir.path()).unwrap());
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        assert!(is_held(dir.path()).unwrap());
        assert!(!wait_released(dir.path(), Duration::from_millis(120), || Ok(())).unwrap());
        let e = wait_released(dir.path(), Duration::from_secs(5), || Err(CommandError::new("stop"))).unwrap_err();
        assert_eq!(e.message(), "stop");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(lock);
        });
        assert!(wait_released(dir.path(), Duration::from_secs(5), || Ok(())).unwrap());
        release.join().unwrap();
    }
}
