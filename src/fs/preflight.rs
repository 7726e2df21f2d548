//! Checks run before anything is created or changed: each failure is one line naming the
//! fix. They run in the parent, before it forks the daemon.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::error::CommandError;
use super::{mountinfo, storelock};
use crate::store::StoreError;

pub(crate) const DEV_FUSE: &str = "/dev/fuse";
/// How long a mount waits for a daemon that is no longer mounted to close its store.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const FUSERMOUNT: &str = "fusermount3";
/// Searched when PATH is unset.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The mount point must exist and be a directory; returns it canonicalized.
pub(crate) fn check_mountpoint(p: &Path) -> Result<PathBuf, CommandError> {
    let shown = p.display();
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(CommandError::new(format!("mount point {shown} is not a directory")));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CommandError::new(format!(
                "mount point {shown} does not exist: create it first (mkdir -p {shown})"
            )));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(CommandError::new(format!(
                "mount point {shown} is a FUSE mount whose daemon is gone (transport endpoint is not \
                 connected): clean it up with `s2sfs umount {shown}` (or `fusermount3 -u {shown}`)"
            )));
        }
        Err(e) => return Err(CommandError::with_cause(format!("mount point {shown}"), &e)),
    }
    p.canonicalize().map_err(|e| CommandError::with_cause(format!("mount point {shown}"), &e))
}

/// /dev/fuse must exist and be openable (fuser opens it itself before trying fusermount3).
pub(crate) fn check_dev_fuse() -> Result<(), CommandError> {
    check_dev_fuse_at(Path::new(DEV_FUSE))
}

fn check_dev_fuse_at(dev: &Path) -> Result<(), CommandError> {
    let shown = dev.display();
    match std::fs::metadata(dev) {
        Ok(m) if m.file_type().is_char_device() => {}
        Ok(_) => {
            return Err(CommandError::new(format!(
                "{shown} is not a character device: remove it and load the FUSE kernel module (modprobe fuse)"
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CommandError::new(format!(
                "{shown} is missing: load the FUSE kernel module (modprobe fuse), or in a container \
                 pass the device in (docker run --device /dev/fuse --cap-add SYS_ADMIN ...)"
            )));
        }
        Err(e) => return Err(CommandError::with_cause(shown.to_string(), &e)),
    }
    match std::fs::OpenOptions::new().read(true).write(true).open(dev) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => Err(CommandError::new(format!(
            "cannot open {shown}: permission denied: make it usable by you (chmod 0666 {shown}, \
             as Debian's fuse3 package sets it up) or mount as root"
        ))),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(CommandError::new(format!(
            "cannot open {shown}: operation not permitted: in a container, allow the device \
             (docker run --device /dev/fuse --cap-add SYS_ADMIN ...)"
        ))),
        Err(e) => Err(CommandError::with_cause(format!("cannot open {shown}"), &e)),
    }
}

/// fusermount3 must be on PATH (or named by FUSERMOUNT_PATH, which fuser honours).
pub(crate) fn check_fusermount() -> Result<PathBuf, CommandError> {
    if let Some(p) = std::env::var_os("FUSERMOUNT_PATH") {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(CommandError::new(format!(
                "FUSERMOUNT_PATH={} is not an executable file: fix or unset it",
                p.display()
            )))
        };
    }
    // mount(8) runs helpers without PATH; execvp and fuser then search system directories.
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    find_on_path(OsStr::new(FUSERMOUNT), Some(&path)).ok_or_else(|| {
        CommandError::new(format!("{FUSERMOUNT} not found on PATH: install fuse3 (apt-get install fuse3)"))
    })
}

pub(crate) fn find_on_path(name: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    let Ok(m) = std::fs::metadata(p) else {
        return false;
    };
    if !m.is_file() {
        return false;
    }
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// The store directory as an absolute path with symlinks of its existing part resolved;
/// it must not exist as a non-directory, nor overlap the mount point (a store inside its
/// own mount would deadlock; a mount inside the store would hide it).
pub(crate) fn check_store(store: &Path, mountpoint: &Path) -> Result<PathBuf, CommandError> {
    let shown = store.display();
    let resolved = resolve(store).map_err(|e| CommandError::with_cause(format!("store {shown}"), &e))?;
    match std::fs::metadata(&resolved) {
        Ok(m) if !m.is_dir() => {
            return Err(CommandError::new(format!(
                "store {shown} exists and is not a directory: choose another --store DIR"
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(CommandError::with_cause(format!("store {shown}"), &e)),
    }
    if resolved.starts_with(mountpoint) {
        return Err(CommandError::new(format!(
            "store {} is inside the mount point {}: keep the store outside it (--store DIR)",
            resolved.display(),
            mountpoint.display()
        )));
    }
    if mountpoint.starts_with(&resolved) {
        return Err(CommandError::new(format!(
            "mount point {} is inside the store {}: choose another mount point or --store DIR",
            mountpoint.display(),
            resolved.display()
        )));
    }
    Ok(resolved)
}

/// A store must not be in use by another daemon. One whose mount is gone but which still
/// holds the store is closing it (umount(8) and `fusermount3 -u` return before it has
/// committed and let go): that one is waited for, up to 30 s, with a log line saying so. A
/// store that is mounted is refused at once.
pub(crate) fn wait_store_free(store: &Path) -> Result<(), CommandError> {
    if !storelock::is_held(store)? {
        return Ok(());
    }
    let in_use = || CommandError::from(crate::Error::from(StoreError::Locked(store.to_path_buf())));
    let not_mounted = || match mountinfo::mount_of_store(store)? {
        Some(_) => Err(in_use()),
        None => Ok(()),
    };
    not_mounted()?;
    log::info!(
        "store {} is still held by a daemon that is no longer mounted: waiting up to {} s for it to close the store",
        store.display(),
        RELEASE_TIMEOUT.as_secs()
    );
    if storelock::wait_released(store, RELEASE_TIMEOUT, not_mounted)? {
        return Ok(());
    }
    Err(CommandError::new(format!(
        "{}; the daemon holding it is not mounted here but did not let go within {} s \
         (a lazily unmounted mount still in use, a mount in another namespace, or a running fsck)",
        in_use(),
        RELEASE_TIMEOUT.as_secs()
    )))
}

/// Absolute form of `p`: its longest existing ancestor canonicalized, the rest appended
/// (with `.` dropped and `..` taken lexically, since that part does not exist yet).
pub(crate) fn resolve(p: &Path) -> io::Result<PathBuf> {
    let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) };
    let mut existing = abs.clone();
    let mut rest: Vec<OsString> = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(c) => {
                let mut out = c;
                for part in rest.iter().rev() {
                    match Path::new(part).components().next() {
                        Some(Component::ParentDir) => {
                            out.pop();
                        }
                        Some(Component::CurDir) | None => {}
                        _ => out.push(part),
                    }
                }
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(last) = existing.components().next_back() else {
                    return Err(e);
                };
                rest.push(last.as_os_str().to_os_string());
                if !existing.pop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("fusermount3");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(find_on_path(OsStr::new("fusermount3"), Some(&path)), None, "not executable yet");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_on_path(OsStr::new("fusermount3"), Some(&path)), Some(exe));
        assert_eq!(find_on_path(OsStr::new("fusermount3"), None), None);
    }

    #[test]
    fn mountpoint_checks() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_mountpoint(&dir.path().join("nope")).unwrap_err();
        assert!(e.message().contains("does not exist"), "{e}");
        let f = dir.path().join("file");
        std::fs::write(&f, "").unwrap();
        assert!(check_mountpoint(&f).unwrap_err().message().contains("not a directory"));
        assert_eq!(check_mountpoint(dir.path()).unwrap(), dir.path().canonicalize().unwrap());
    }

    #[test]
    fn missing_dev_fuse() {
        let e = check_dev_fuse_at(Path::new("/nonexistent/fuse")).unwrap_err();
        assert!(e.message().contains("modprobe fuse"), "{e}");
    }

    #[test]
    fn store_checks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let mp = root.join("mp");
        std::fs::create_dir(&mp).unwrap();
        assert_eq!(check_store(&root.join("st/x/../y"), &mp).unwrap(), root.join("st/y"));
        assert!(check_store(&mp.join("st"), &mp).unwrap_err().message().contains("inside the mount point"));
        assert!(check_store(&root, &mp).unwrap_err().message().contains("inside the store"));
        let f = root.join("file");
        std::fs::write(&f, "").unwrap();
        assert!(check_store(&f, &mp).unwrap_err().message().contains("not a directory"));
        // Nothing was created.
        assert!(!root.join("st").exists());
    }
}
