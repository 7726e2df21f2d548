//! The process's log: `log` records, filtered as `-v` and `RUST_LOG` say, written to
//! stderr. Under systemd (stderr is the journal's stream, `JOURNAL_STREAM`) each line
//! starts with its syslog priority (`<3>` error … `<7>` debug) and has no timestamp:
//! journald adds its own and files the priority. Elsewhere a line is
//! `[time LEVEL target] message`.
//!
//! A background daemon's stderr is `STORE/daemon.log` (`fs::daemon`), which would grow
//! without end; `rotate_at` bounds it: when it reaches half the bound it becomes
//! `daemon.log.1` (replacing the older one) and a fresh file takes its place, so the two
//! together stay under the bound (plus one record).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Installs the logger. `verbose` counts `-v`: 0 gives warnings (and s2sfs's own info
/// lines), 1 info, 2 debug, 3 and more trace; `RUST_LOG` overrides it.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "warn,s2sfs=info",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    TO_JOURNAL.store(stderr_is_journal(), Ordering::Relaxed);
    env_logger::Builder::new()
        .parse_filters(level)
        .parse_default_env()
        .format(|f, record| {
            if TO_JOURNAL.load(Ordering::Relaxed) {
                writeln!(f, "<{}>{}: {}", syslog_priority(record.level()), record.target(), record.args())
            } else {
                writeln!(f, "[{} {:<5} {}] {}", f.timestamp(), record.level(), record.target(), record.args())
            }
        })
        .target(env_logger::Target::Pipe(Box::new(Stderr)))
        .init();
}

/// Whether stderr is the journal's stream: decided at `init`, and cleared when a daemon
/// moves its stderr to a log file (a background mount started from a service).
static TO_JOURNAL: AtomicBool = AtomicBool::new(false);

/// Points stderr at the log file `path` (appended to, created readable by its owner only)
/// and keeps that file under `max_bytes` in all, by rotation (module documentation). Only
/// a daemon calls it.
pub fn log_to_file(path: &Path, max_bytes: u64) -> io::Result<()> {
    point_stderr_at(&open_log(path)?)?;
    TO_JOURNAL.store(false, Ordering::Relaxed);
    let mut rotation = ROTATION.lock().unwrap_or_else(PoisonError::into_inner);
    *rotation = Some(Rotation { path: path.to_path_buf(), rotate_above: (max_bytes / 2).max(1) });
    Ok(())
}

/// Where stderr's file is moved when it is full.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".1");
    PathBuf::from(name)
}

struct Rotation {
    path: PathBuf,
    rotate_above: u64,
}

static ROTATION: Mutex<Option<Rotation>> = Mutex::new(None);

/// stderr, checked for rotation after every record (env_logger writes a record in one
/// call, under its own lock).
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = io::stderr().write(buf)?;
        let rotation = ROTATION.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = rotation.as_ref() {
            r.rotate_if_full();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl Rotation {
    fn rotate_if_full(&self) {
        // The size of the file stderr is, not a count of what this logger wrote: panics and
        // libraries write to stderr too.
        let size = stderr_stat().map_or(0, |st| st.st_size as u64);
        if size < self.rotate_above {
            return;
        }
        let fresh = std::fs::rename(&self.path, rotated_path(&self.path))
            .and_then(|()| open_log(&self.path))
            .and_then(|file| point_stderr_at(&file));
        match fresh {
            Ok(()) => {}
            // No room for a new file (a full disk): start the old one again rather than
            // let it grow.
            Err(_) => {
                // SAFETY: ftruncate on stderr's descriptor, which stays open.
                unsafe { libc::ftruncate(2, 0) };
            }
        }
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).mode(0o600).open(path)
}

fn point_stderr_at(file: &File) -> io::Result<()> {
    // SAFETY: both descriptors are valid; dup2 replaces stderr atomically, so a concurrent
    // writer writes to the old file or the new one.
    if unsafe { libc::dup2(file.as_raw_fd(), 2) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM` to the device and
/// inode of the stream it connects to a service's stderr.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some(st) = stderr_stat() else { return false };
    stream.to_string_lossy() == format!("{}:{}", st.st_dev, st.st_ino)
}

fn stderr_stat() -> Option<libc::stat> {
    // SAFETY: fstat fills the zeroed struct; stderr's descriptor is always valid to ask.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(2, &mut st) } == 0).then_some(st)
}

/// sd-daemon(3)'s priorities.
fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_path_appends_one() {
        assert_eq!(rotated_path(Path::new("/s/daemon.log")), PathBuf::from("/s/daemon.log.1"));
    }
}
