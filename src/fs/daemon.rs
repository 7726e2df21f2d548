//! Running as a daemon: forking (before any thread exists), detaching from the terminal,
//! telling the parent whether the mount came up, stop signals, and systemd notification.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Weak;

use log::{info, warn};

use super::adapter::SharedVolume;
use super::error::CommandError;

/// Where a background daemon's stderr (its log) goes, inside the store.
pub(crate) const LOG_FILE: &str = "daemon.log";

pub(crate) enum Forked {
    /// In the parent: wait for the child's word.
    Parent(Waiter),
    /// In the child: report through this once the mount is live (or failed).
    Child(Ready),
}

pub(crate) struct Waiter {
    pid: libc::pid_t,
    read: File,
}

pub(crate) struct Ready {
    write: File,
}

/// Number of threads of this process, when /proc tells.
fn thread_count() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

/// Forks, with a pipe from the child back to the parent. Must run before any thread is
/// created (a forked child gets only the calling thread, and locks other threads held).
pub(crate) fn fork() -> Result<Forked, CommandError> {
    if let Some(n) = thread_count().filter(|&n| n > 1) {
        return Err(CommandError::new(format!(
            "internal error: {n} threads exist before forking the daemon; use --foreground"
        )));
    }
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(CommandError::with_cause("cannot create a pipe", &io::Error::last_os_error()));
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by nobody else.
    let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: the process has a single thread (checked above), so the child may go on
    // running ordinary Rust code.
    match unsafe { libc::fork() } {
        -1 => Err(CommandError::with_cause("cannot fork the daemon", &io::Error::last_os_error())),
        0 => {
            drop(read);
            Ok(Forked::Child(Ready { write }))
        }
        pid => {
            drop(write);
            Ok(Forked::Parent(Waiter { pid, read }))
        }
    }
}

impl Waiter {
    /// Waits until the child reports the mount live (Ok) or failed (its error), or dies.
    pub(crate) fn wait(mut self, store: &Path) -> Result<(), CommandError> {
        let mut msg = String::new();
        let read = self.read.read_to_string(&mut msg);
        let line = msg.lines().next().unwrap_or("");
        if read.is_ok() {
            if line == "ok" {
                return Ok(());
            }
            if let Some(err) = line.strip_prefix("error ") {
                return Err(CommandError::new(err));
            }
        }
        let mut status = 0;
        // SAFETY: plain waitpid on our own child.
        let how = match unsafe { libc::waitpid(self.pid, &mut status, 0) } {
            -1 => String::new(),
            _ if libc::WIFEXITED(status) => format!(" with status {}", libc::WEXITSTATUS(status)),
            _ if libc::WIFSIGNALED(status) => {
                format!(" (killed by signal {})", libc::WTERMSIG(status))
            }
            _ => String::new(),
        };
        Err(CommandError::new(format!(
            "the s2sfs daemon exited{how} before the mount was ready; see {}",
            store.join(LOG_FILE).display()
        )))
    }
}

impl Ready {
    pub(crate) fn ok(mut self) {
        let _ = self.write.write_all(b"ok\n");
    }

    pub(crate) fn failed(mut self, err: &CommandError) {
        let _ = self.write.write_all(format!("error {}\n", err.message()).as_bytes());
    }
}

/// In the forked child: a new session without a terminal, cwd `/`, stdin and stdout on
/// /dev/null, stderr appended to `STORE/daemon.log` (the store directory is created here),
/// which is kept under `log_max` bytes by rotation.
pub(crate) fn detach(store: &Path, log_max: u64) -> Result<(), CommandError> {
    // SAFETY: setsid and chdir have no memory-safety preconditions.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
    }
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| CommandError::with_cause("cannot open /dev/null", &e))?;
    // Until the log is open, stderr goes nowhere: the parent prints our errors.
    for fd in 0..=2 {
        dup2(&null, fd)?;
    }
    create_store_dir(store)?;
    let log_path = store.join(LOG_FILE);
    crate::logging::log_to_file(&log_path, log_max)
        .map_err(|e| CommandError::with_cause(format!("cannot log to {}", log_path.display()), &e))
}

fn dup2(file: &File, fd: i32) -> Result<(), CommandError> {
    // SAFETY: both descriptors are valid; dup2 replaces `fd` atomically.
    if unsafe { libc::dup2(file.as_raw_fd(), fd) } == -1 {
        return Err(CommandError::with_cause("cannot redirect standard I/O", &io::Error::last_os_error()));
    }
    Ok(())
}

/// Creates the store directory (and its parents) readable by its owner only.
pub(crate) fn create_store_dir(store: &Path) -> Result<(), CommandError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(store)
        .map_err(|e| CommandError::with_cause(format!("cannot create the store directory {}", store.display()), &e))
}

/// SIGTERM, SIGINT and SIGHUP, blocked in every thread and taken by one watcher thread.
pub(crate) struct StopSignals(libc::sigset_t);

impl StopSignals {
    /// Blocks the stop signals in the calling thread; threads created afterwards inherit
    /// the mask, so call this before any thread exists.
    pub(crate) fn block() -> StopSignals {
        // SAFETY: sigemptyset initializes the set; the others take valid pointers.
        unsafe {
            let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(set.as_mut_ptr());
            let mut set = set.assume_init();
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            StopSignals(set)
        }
    }

    fn wait(&self) -> i32 {
        loop {
            let mut sig = 0;
            // SAFETY: the set was initialized in `block`.
            if unsafe { libc::sigwait(&self.0, &mut sig) } == 0 {
                return sig;
            }
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// Starts the thread that turns the first stop signal into a clean unmount (the session
/// then ends and the volume commits and closes), and a second one into an immediate
/// commit and exit (for a mount that stays busy after a lazy unmount).
pub(crate) fn watch_stop_signals(
    signals: StopSignals,
    mountpoint: PathBuf,
    store: PathBuf,
    shared: Weak<SharedVolume>,
    notify_systemd: bool,
) -> Result<(), CommandError> {
    std::thread::Builder::new()
        .name("s2sfs-signals".into())
        .spawn(move || {
            let sig = signals.wait();
            info!("{}: unmounting {}", signal_name(sig), mountpoint.display());
            if notify_systemd {
                sd_notify("STOPPING=1");
            }
            // Only our own mount: it may be gone already (unmounted by hand), and then
            // something else may be mounted there.
            if super::umount::mounted_store(&mountpoint).as_deref() == Some(store.as_path())
                && let Err(e) = super::umount::unmount(&mountpoint)
            {
                warn!(
                    "{e}; detaching it lazily: the daemon exits once nothing uses it any more \
                     (send the signal again to commit and exit now)"
                );
                lazy_detach(&mountpoint);
            }
            let sig = signals.wait();
            warn!("{}: second stop signal; committing data and exiting now", signal_name(sig));
            let code = match shared.upgrade().map(|s| s.shutdown()) {
                Some(Err(_)) => 1,
                _ => 0,
            };
            std::process::exit(code);
        })
        .map(drop)
        .map_err(|e| CommandError::with_cause("cannot start the signal thread", &e))
}

/// Detaches a busy mount (MNT_DETACH as root, `fusermount3 -u -z` otherwise).
pub(crate) fn lazy_detach(mountpoint: &Path) {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        if let Ok(c) = CString::new(mountpoint.as_os_str().as_bytes()) {
            // SAFETY: `c` is a valid path string.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                return;
            }
            warn!("lazy unmount of {}: {}", mountpoint.display(), io::Error::last_os_error());
        }
        return;
    }
    match std::process::Command::new(super::preflight::FUSERMOUNT).args(["-u", "-z", "--"]).arg(mountpoint).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => warn!("fusermount3 -u -z {}: {}", mountpoint.display(), String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => warn!("fusermount3 -u -z {}: {e}", mountpoint.display()),
    }
}

/// Tells systemd about a state change (Type=notify) when NOTIFY_SOCKET is set.
pub(crate) fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = (|| -> io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = path.as_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), Path::new(&path))?;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        warn!("cannot notify systemd ({state}): {e}");
    }
}
