//! `s2sfs mount`: preflight, the default store directory, daemonizing, serving the mount
//! until it is unmounted or the daemon is told to stop.

use std::ffi::OsString;
use std::mem::ManuallyDrop;
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use log::{debug, info};

use super::adapter::{S2sFs, SharedVolume};
use super::daemon::{self, Forked, Ready, StopSignals};
use super::error::CommandError;
use super::options::{UserOptions, fsname};
use super::preflight;
use crate::volume::{Volume, VolumeOptions};

/// What `s2sfs mount` was asked to do.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub mountpoint: PathBuf,
    /// The store directory; `None` for [`default_store_dir`].
    pub store: Option<PathBuf>,
    /// Its `atime` comes from the `-o` lists.
    pub volume: VolumeOptions,
    /// `-o` lists, each comma-separated (allow_other, ro, noatime, …).
    pub options: Vec<String>,
    /// Stay in the foreground and log to stderr (for systemd) instead of daemonizing.
    pub foreground: bool,
    /// The bound of a background daemon's log (`logging::log_to_file`).
    pub log_max: u64,
}

/// Everything checked and resolved before anything is created.
struct Plan {
    mountpoint: PathBuf,
    store: PathBuf,
    config: fuser::Config,
    volume: VolumeOptions,
    foreground: bool,
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// FUSE event-loop threads: requests block in the volume (compression, fsync), so more
/// than the cores, at least four.
fn event_loop_threads() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get()).clamp(4, 16)
}

fn plan(req: &MountRequest) -> Result<Plan, CommandError> {
    let mountpoint = preflight::check_mountpoint(&req.mountpoint)?;
    preflight::check_dev_fuse()?;
    preflight::check_fusermount()?;
    let user = UserOptions::parse(&req.options)?;
    let store = match &req.store {
        Some(s) => s.clone(),
        None => default_store_dir(&mountpoint)?,
    };
    let store = preflight::check_store(&store, &mountpoint)?;
    preflight::wait_store_free(&store)?;
    // Not root: fuser's mount(2) fails with EPERM and it goes through fusermount3.
    let config = user.config(fsname(&store, !is_root()), event_loop_threads());
    let volume = VolumeOptions {
        atime: user.atime(),
        codec: user.codec_spec(&req.volume.codec),
        recompress_after: user.recompress_after.unwrap_or(req.volume.recompress_after),
        ..req.volume.clone()
    };
    Ok(Plan { mountpoint, store, config, volume, foreground: req.foreground })
}

/// Mounts a volume: checks everything first (each failure is one line, and nothing is
/// created), then, unless `foreground`, forks a daemon that opens the store and mounts;
/// this returns once the mount is live, or with the daemon's error. In the daemon (and in
/// the foreground) it returns when the filesystem has been unmounted and the volume closed.
pub fn mount(req: &MountRequest) -> Result<(), CommandError> {
    let plan = plan(req)?;
    debug!("store {} for {}", plan.store.display(), plan.mountpoint.display());
    if plan.foreground {
        return serve_catching(&plan, &mut None);
    }
    match daemon::fork()? {
        Forked::Parent(waiter) => waiter.wait(&plan.store),
        Forked::Child(ready) => {
            let mut ready = Some(ready);
            let r = daemon::detach(&plan.store, req.log_max).and_then(|()| serve_catching(&plan, &mut ready));
            if let (Err(e), Some(ready)) = (&r, ready.take()) {
                ready.failed(e);
            }
            r
        }
    }
}

/// `serve`, with a panic turned into an error (so a background parent hears about it).
fn serve_catching(plan: &Plan, ready: &mut Option<Ready>) -> Result<(), CommandError> {
    match catch_unwind(AssertUnwindSafe(|| serve(plan, ready))) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(CommandError::new(format!("internal error (panic): {what}")))
        }
    }
}

/// Keeps glibc from giving each of the daemon's threads its own heap arena: block-sized
/// buffers allocated by one thread and freed by another then stay spread over many arenas,
/// and the daemon's resident memory grows far past what it uses (measured: 361 MiB with
/// the default, 213 MiB with two arenas, copying 2 GiB with a 64 MiB cache).
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator tuning; called before the daemon's threads start.
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    if ok != 1 {
        debug!("mallopt(M_ARENA_MAX) refused");
    }
}

/// Runs the session's event loops on a background thread; returns that thread's handle.
///
/// The rest of fuser's `BackgroundSession` (its copy of the /dev/fuse descriptor and the
/// mount handle) is leaked on purpose: dropping it unmounts the mount point once more after
/// the session has ended (fuser 0.18 takes a dead connection's POLLERR for "still
/// mounted"), which could hit a new mount made there in the meantime. Unmounting is done
/// by whoever ends the session: `s2sfs umount`, umount(8), the signal thread,
/// [`InProcessMount::unmount`]. The cost is one descriptor per mount, until exit.
fn spawn_session(session: fuser::Session<S2sFs>) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    let background = ManuallyDrop::new(session.spawn()?);
    // SAFETY: the join handle is moved out exactly once, and `background` is never used or
    // dropped afterwards, so it is not duplicated.
    Ok(unsafe { std::ptr::read(&background.guard) })
}

/// Waits for the session thread; its panic becomes an error.
fn join_session(guard: JoinHandle<std::io::Result<()>>) -> Result<(), CommandError> {
    guard
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the FUSE session thread panicked")))
        .map_err(|e| CommandError::with_cause("the FUSE session failed", &e))
}

fn serve(plan: &Plan, ready: &mut Option<Ready>) -> Result<(), CommandError> {
    // Before any thread exists (the volume may start some): every thread inherits the mask,
    // and only the watcher thread takes the stop signals.
    let signals = StopSignals::block();
    limit_malloc_arenas();
    daemon::create_store_dir(&plan.store)?;
    let vol = Volume::open(&plan.store, plan.volume.clone())?;
    let shared = SharedVolume::new(vol);
    if let Err(e) = super::control::start(&plan.store, Arc::downgrade(&shared)) {
        log::warn!("no control socket (read-only fsck while mounted unavailable): {e}");
    }

    let session = match fuser::Session::new(S2sFs::new(shared.clone()), &plan.mountpoint, &plan.config) {
        Ok(s) => s,
        Err(e) => {
            let _ = shared.shutdown();
            return Err(CommandError::with_cause(format!("cannot mount {}", plan.mountpoint.display()), &e));
        }
    };
    shared.forward_attr_changes(session.notifier());
    daemon::watch_stop_signals(
        signals,
        plan.mountpoint.clone(),
        plan.store.clone(),
        Arc::downgrade(&shared),
        plan.foreground,
    )?;
    let guard = spawn_session(session).map_err(|e| CommandError::with_cause("cannot start the FUSE session", &e))?;
    super::kernel_readahead::widen(&plan.mountpoint);
    info!("mounted {} (store {})", plan.mountpoint.display(), plan.store.display());
    if let Some(ready) = ready.take() {
        ready.ok();
    }
    if plan.foreground {
        daemon::sd_notify("READY=1");
    }

    // Until unmounted; `destroy` shuts the volume down when the session ends. If the
    // session ended abnormally (a panicking event loop skips destroy), do it here. The
    // store, and its lock that `s2sfs umount` waits for, closes when `shared` drops.
    let run = join_session(guard);
    super::control::stop(&plan.store);
    let shut = shared.shutdown();
    drop(shared);
    run?;
    shut.map_err(|e| CommandError::new(format!("committing data at unmount failed: {e}")))?;
    info!("unmounted {}", plan.mountpoint.display());
    Ok(())
}

/// A volume mounted by this process on background threads (for tests and tools that
/// drive a real mount without a daemon). [`InProcessMount::unmount`] unmounts it and shuts
/// the volume down; dropping it does the same, or, while the mount is busy, detaches it
/// lazily (the volume then shuts down when the last user leaves).
pub struct InProcessMount {
    guard: Option<JoinHandle<std::io::Result<()>>>,
    shared: Arc<SharedVolume>,
    mountpoint: PathBuf,
}

/// Mounts `volume` at `mountpoint` from this process; `options` as for `-o`, except the
/// access-time ones: the volume has its own, from when it was opened.
pub fn mount_in_process(volume: Volume, mountpoint: &Path, options: &[String]) -> Result<InProcessMount, CommandError> {
    let mountpoint = preflight::check_mountpoint(mountpoint)?;
    let user = UserOptions::parse(options)?;
    let config = user.config(fsname(Path::new("(in-process)"), !is_root()), event_loop_threads());
    let shared = SharedVolume::new(volume);
    let cannot_mount =
        |e: &std::io::Error| CommandError::with_cause(format!("cannot mount {}", mountpoint.display()), e);
    let session =
        fuser::Session::new(S2sFs::new(shared.clone()), &mountpoint, &config).map_err(|e| cannot_mount(&e))?;
    shared.forward_attr_changes(session.notifier());
    let guard = spawn_session(session).map_err(|e| cannot_mount(&e))?;
    Ok(InProcessMount { guard: Some(guard), shared, mountpoint })
}

impl InProcessMount {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts, waits for the session to end, shuts the volume down. While the mount is
    /// busy this returns the error and, as on drop, detaches the mount lazily.
    pub fn unmount(mut self) -> Result<(), CommandError> {
        if let Some(guard) = self.guard.take() {
            if let Err(e) = super::umount::unmount(&self.mountpoint) {
                self.guard = Some(guard);
                return Err(e);
            }
            join_session(guard)?;
        }
        self.shared.shutdown().map_err(CommandError::new)
    }
}

impl Drop for InProcessMount {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        if super::umount::unmount(&self.mountpoint).is_ok() {
            let _ = join_session(guard);
            let _ = self.shared.shutdown();
        } else {
            daemon::lazy_detach(&self.mountpoint);
        }
    }
}

/// The default store directory for a mount point: `/var/lib/s2sfs/<escaped>` for root,
/// `$XDG_DATA_HOME/s2sfs/<escaped>` for other users (`XDG_DATA_HOME` defaults to
/// `~/.local/share`; a relative value is ignored, as the XDG spec says), where
/// `<escaped>` is the canonicalized mount point escaped like `systemd-escape --path`
/// (see [`systemd_escape_path`]): `/data` → `data`, `/mnt/my vol` → `mnt-my\x20vol`.
/// So `systemctl start s2sfs@data` and `s2sfs mount /data` use the same store.
pub fn default_store_dir(mountpoint: &Path) -> Result<PathBuf, CommandError> {
    let canonical = mountpoint
        .canonicalize()
        .map_err(|e| CommandError::with_cause(format!("mount point {}", mountpoint.display()), &e))?;
    default_store_for(&canonical, is_root(), std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
        .ok_or_else(|| CommandError::new("cannot choose a default store: HOME is not set; pass --store DIR"))
}

fn default_store_for(
    canonical: &Path,
    root: bool,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let escaped = systemd_escape_path(canonical);
    if root {
        return Some(Path::new("/var/lib/s2sfs").join(escaped));
    }
    let data_home = match xdg_data_home.map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(p) => p,
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".local/share"),
    };
    Some(data_home.join("s2sfs").join(escaped))
}

/// A path escaped as `systemd-escape --path` does: empty and `.` components and the
/// slashes around the path dropped, `/` between components → `-`, ASCII letters, digits,
/// `:`, `_` and `.` kept (a leading `.` escaped), every other byte → `\xNN`; `/` → `-`.
pub fn systemd_escape_path(path: &Path) -> String {
    let parts: Vec<&[u8]> =
        path.as_os_str().as_bytes().split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".").collect();
    if parts.is_empty() {
        return "-".to_string();
    }
    let joined = parts.join(&b'/');
    let mut out = String::with_capacity(joined.len());
    for (i, &b) in joined.iter().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real mount through the adapter, where this machine allows one (root or a usable
    /// /dev/fuse with fusermount3); skipped elsewhere.
    #[test]
    fn in_process_mount_round_trip() {
        if preflight::check_dev_fuse().is_err() || preflight::check_fusermount().is_err() {
            eprintln!("skipped: no usable /dev/fuse or fusermount3");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (mp, store) = (dir.path().join("mp"), dir.path().join("store"));
        std::fs::create_dir(&mp).unwrap();
        let open = || Volume::open(&store, VolumeOptions::default()).unwrap();
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();

        let m = mount_in_process(open(), &mp, &[]).unwrap();
        std::fs::create_dir(mp.join("d")).unwrap();
        std::fs::write(mp.join("d/f"), &data).unwrap();
        std::os::unix::fs::symlink("d/f", mp.join("l")).unwrap();
        let names: Vec<_> = std::fs::read_dir(&mp).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // Busy: the error names the cause, and the mount stays.
        let cwd = std::fs::File::open(mp.join("d")).unwrap();
        let busy = super::super::umount::unmount(&mp).unwrap_err();
        assert!(busy.message().contains("target is busy"), "{busy}");
        drop(cwd);
        m.unmount().unwrap();
        assert!(!mp.join("d").exists(), "unmounted");

        let m = mount_in_process(open(), &mp, &["ro".to_string()]).unwrap();
        assert_eq!(std::fs::read(mp.join("l")).unwrap(), data);
        let e = std::fs::write(mp.join("x"), b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        m.unmount().unwrap();
    }

    #[test]
    fn escape_like_systemd() {
        let cases = [
            ("/data", "data"),
            ("/mnt/my vol", "mnt-my\\x20vol"),
            ("/", "-"),
            ("//mnt//a/./b/", "mnt-a-b"),
            ("/.a/b-c/ü", "\\x2ea-b\\x2dc-\\xc3\\xbc"),
            ("/x\\y", "x\\x5cy"),
            ("/srv/a:b_c.d", "srv-a:b_c.d"),
        ];
        for (path, want) in cases {
            assert_eq!(systemd_escape_path(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn default_stores() {
        let mp = Path::new("/mnt/my vol");
        assert_eq!(default_store_for(mp, true, None, None).unwrap(), Path::new("/var/lib/s2sfs/mnt-my\\x20vol"));
        assert_eq!(
            default_store_for(Path::new("/data"), false, None, Some("/home/u".into())).unwrap(),
            Path::new("/home/u/.local/share/s2sfs/data")
        );
        assert_eq!(
            default_store_for(Path::new("/data"), false, Some("/x/share".into()), Some("/home/u".into())).unwrap(),
            Path::new("/x/share/s2sfs/data")
        );
        // A relative XDG_DATA_HOME is ignored.
        assert_eq!(
            default_store_for(Path::new("/data"), false, Some("rel".into()), Some("/home/u".into())).unwrap(),
            Path::new("/home/u/.local/share/s2sfs/data")
        );
        assert_eq!(default_store_for(Path::new("/data"), false, None, None), None);
    }
}
