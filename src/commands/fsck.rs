//! `s2sfs fsck`: checks a store (a mounted one read-only, through its daemon) and, with `--repair`, fixes what can be fixed
//! without guessing (the checks and repairs live in `store::check`). This module opens the
//! store, draws the progress bar, prints the report and picks the exit code.
//!
//! Exit codes follow e2fsck loosely: 0 clean, 1 problems were repaired (a second check
//! found the store clean), 4 problems remain, 8 operational error (the store cannot be
//! opened, e.g. because a daemon has it mounted).

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::codec::{CodecKind, CodecSpec, Codecs, ModelRegistry, open_codecs};
use crate::store::{FsckOutcome, FsckReport, Problem, Progress, Store, StoreError, StoreOptions, control_socket};

pub const EXIT_CLEAN: u8 = 0;
pub const EXIT_REPAIRED: u8 = 1;
pub const EXIT_PROBLEMS: u8 = 4;
pub const EXIT_ERROR: u8 = 8;

/// How long fsck waits for a store whose daemon holds it but does not answer.
const DAEMON_GONE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error("{0}: not an s2sfs store (it has no format file)")]
    NotAStore(PathBuf),
    #[error("store {0} is in use by a mounted s2sfs daemon (or another fsck): unmount it first to repair it")]
    InUse(PathBuf),
    #[error("store {0} is locked by a process that does not answer on its control socket (another fsck?)")]
    NoAnswer(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the daemon that has store {0} mounted {1}")]
    Daemon(PathBuf, String),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

/// The exit code for an outcome.
pub fn exit_code(outcome: FsckOutcome) -> u8 {
    match outcome {
        FsckOutcome::Clean => EXIT_CLEAN,
        FsckOutcome::Repaired => EXIT_REPAIRED,
        FsckOutcome::ProblemsRemain => EXIT_PROBLEMS,
    }
}

/// Checks (and with `repair`, repairs) the store in `store_dir`; prints the report on
/// stdout, as JSON with `json`, and a progress bar on stderr when it is a terminal.
///
/// A store in use by a mounted daemon is checked read-only through that daemon (its
/// control socket); `--repair` needs it unmounted.
pub fn run(store_dir: &Path, repair: bool, json: bool) -> Result<u8, FsckError> {
    // A daemon that has just died (a crash, a kill) may hold its store and socket for a
    // moment while its last threads exit: while no daemon answers, the store is tried again.
    let deadline = Instant::now() + DAEMON_GONE_WAIT;
    let report = loop {
        match check(store_dir, repair, !json && std::io::stderr().is_terminal()) {
            Err(FsckError::InUse(dir)) if !repair => {
                let mut out = std::io::stdout().lock();
                match check_mounted(&dir, json, &mut out)? {
                    Some(code) => return Ok(code),
                    None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                    None => return Err(FsckError::NoAnswer(dir)),
                }
            }
            other => break other?,
        }
    };
    let mut out = std::io::stdout().lock();
    render(&mut out, store_dir, &report, json)?;
    out.flush()?;
    Ok(exit_code(report.outcome))
}

/// The report as `run` prints it: human-readable, or JSON.
pub fn render(out: &mut dyn Write, store_dir: &Path, report: &FsckReport, json: bool) -> std::io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, report).map_err(std::io::Error::from)?;
        writeln!(out)
    } else {
        write_report(out, store_dir, report)
    }
}

/// Opens the store (never creating one) and runs the check.
pub fn check(store_dir: &Path, repair: bool, show_progress: bool) -> Result<FsckReport, FsckError> {
    if !Store::exists(store_dir) {
        return Err(FsckError::NotAStore(store_dir.to_path_buf()));
    }
    // The block size only matters when a store is created, which `exists` rules out.
    let opts = StoreOptions { block_size: 128 * 1024, meta_cache_bytes: 64 << 20, allow_lost_changes: true };
    let store = match Store::open(store_dir, &opts) {
        Err(StoreError::Locked(_)) => return Err(FsckError::InUse(store_dir.to_path_buf())),
        other => other?,
    };
    // Frames name their codec and model; every model the store keeps is loaded (one that
    // cannot be is logged, and its frames reported as unavailable, not damaged).
    let codecs = codec_set_of(&store);
    let verify = |frame: &[u8]| crate::volume::verify_frame(&codecs, frame);
    let bar = ProgressBar::with_draw_target(
        None,
        if show_progress { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut on_progress = |p: Progress| {
        bar.set_message(if p.pass == 1 { "checking frames" } else { "checking again" });
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
    };
    let report = store.fsck(&verify, repair, &mut on_progress);
    bar.finish_and_clear();
    Ok(report?)
}

/// The human-readable report: a summary, then each problem on one line as
/// `kind: path (inode N): detail [repaired]`.
pub fn write_report(out: &mut dyn Write, store_dir: &Path, r: &FsckReport) -> std::io::Result<()> {
    let t = &r.totals;
    writeln!(out, "s2sfs fsck {}", store_dir.display())?;
    writeln!(
        out,
        "  {} inodes ({} directories, {} files, {} other), {} blocks of {} KiB",
        t.inodes,
        t.directories,
        t.files,
        t.other_inodes,
        t.blocks,
        r.block_size / 1024
    )?;
    writeln!(
        out,
        "  {}, {} verified ({}); live frames {} in {} of {}",
        count(t.frames as usize, "frame"),
        t.frames_verified,
        bytes(t.bytes_verified),
        bytes(t.live_frame_bytes),
        count(t.packs as usize, "pack"),
        bytes(t.pack_bytes)
    )?;
    write_list(out, "problems", &r.problems, true)?;
    write_list(out, "notes", &r.notes, r.changes_written)?;
    match &r.after_repair {
        None if r.problems.is_empty() => writeln!(out, "clean")?,
        None => writeln!(
            out,
            "{} found{}",
            count(r.problems.len(), "problem"),
            if r.changes_written { "" } else { "; nothing was changed" }
        )?,
        Some(second) if second.problems.is_empty() => {
            let fixed = r.problems.iter().filter(|p| p.repaired).count();
            writeln!(out, "repaired {fixed} of {}; checked again: clean", count(r.problems.len(), "problem"))?;
        }
        Some(second) => {
            writeln!(out, "checked again after repair:")?;
            write_list(out, "problems remaining", &second.problems, false)?;
            writeln!(out, "{} remain", count(second.problems.len(), "problem"))?;
        }
    }
    Ok(())
}

fn write_list(out: &mut dyn Write, title: &str, list: &[Problem], show_repaired: bool) -> std::io::Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    writeln!(out, "{title} ({}):", list.len())?;
    for p in list {
        writeln!(out, "  {}", problem_line(p, show_repaired))?;
    }
    Ok(())
}

/// `kind: path (inode N): detail [repaired]`.
pub fn problem_line(p: &Problem, show_repaired: bool) -> String {
    let place = match (&p.path, p.ino) {
        (Some(path), Some(ino)) => format!("{path} (inode {ino}): "),
        (Some(path), None) => format!("{path}: "),
        (None, Some(ino)) => format!("inode {ino}: "),
        (None, None) => String::new(),
    };
    let tag = if show_repaired && p.repaired { " [repaired]" } else { "" };
    format!("{}: {place}{}{tag}", p.kind, p.detail)
}

fn count(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// The codecs that read every frame of `store`: the classic ones and the store's models.
fn codec_set_of(store: &Store) -> Codecs {
    match open_codecs(&CodecSpec::default(), CodecKind::Zstd, Some(&ModelRegistry::new(&store.models_dir()))) {
        Ok(set) => set.codecs,
        // Only copying a model in can fail, and a zstd spec copies nothing.
        Err(e) => {
            log::error!("{e}");
            Codecs::new(crate::codec::ZSTD_DEFAULT_LEVEL)
        }
    }
}

/// Asks the daemon that has `store` open for a read-only check; returns fsck's exit code
/// with the report written to `out`, or None when no daemon answers (none listens, or the
/// connection breaks before the end of its reply: a daemon that is exiting).
fn check_mounted(store: &Path, json: bool, out: &mut dyn Write) -> Result<Option<u8>, FsckError> {
    let Ok(mut stream) = UnixStream::connect(control_socket(store)) else { return Ok(None) };
    if writeln!(stream, "fsck {}", if json { "json" } else { "text" }).is_err() {
        return Ok(None);
    }
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    if reader.read_line(&mut status).is_err() || status.is_empty() {
        return Ok(None);
    }
    let status = status.trim_end();
    let daemon = |what: String| FsckError::Daemon(store.to_path_buf(), what);
    if let Some(err) = status.strip_prefix("error ") {
        return Err(daemon(format!("could not check it: {err}")));
    }
    let code = status
        .strip_prefix("exit ")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| daemon(format!("gave an unexpected reply: {status:?}")))?;
    // All of the reply before any of it is written: one that breaks off (a daemon killed
    // while answering resets the connection) is no report, and leaves nothing half
    // printed; the store is checked again once the daemon has let go of it.
    let mut report = Vec::new();
    if reader.read_to_end(&mut report).is_err() {
        return Ok(None);
    }
    out.write_all(&report)?;
    Ok(Some(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_missing_store_without_creating_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("nothing");
        assert!(matches!(check(&store, false, false), Err(FsckError::NotAStore(_))));
        assert!(!store.exists(), "fsck must not create a store");
    }

    #[test]
    fn refuses_a_store_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::VolumeOptions { block_size: 4096, ..Default::default() };
        let held = crate::Volume::open(dir.path(), opts).unwrap();
        let err = check(dir.path(), false, false).unwrap_err();
        assert!(matches!(err, FsckError::InUse(_)));
        assert!(err.to_string().contains("unmount it first"), "{err}");
        drop(held);
        let report = check(dir.path(), false, false).unwrap();
        assert_eq!(report.outcome, FsckOutcome::Clean);
        assert_eq!(exit_code(report.outcome), EXIT_CLEAN);
    }

    #[test]
    fn a_store_let_go_by_a_silent_holder_is_checked() {
        // A holder without a control socket that lets go after the lock's grace, as a
        // killed daemon whose last thread is still exiting does: fsck waits for it.
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::VolumeOptions { block_size: 4096, ..Default::default() };
        let held = crate::Volume::open(dir.path(), opts).unwrap();
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(crate::store::LOCK_GRACE + Duration::from_millis(500));
            drop(held);
        });
        assert_eq!(run(dir.path(), false, true).unwrap(), EXIT_CLEAN);
        letting_go.join().unwrap();
    }

    #[test]
    fn a_reply_broken_off_by_an_exiting_daemon_is_not_taken_for_a_report() {
        // A daemon killed while it answers: its status line arrives, then the connection
        // is reset. fsck checks the store itself once the daemon has let go of it.
        use std::os::fd::AsRawFd;
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::VolumeOptions { block_size: 4096, ..Default::default() };
        let held = crate::Volume::open(dir.path(), opts).unwrap();
        let listener = UnixListener::bind(control_socket(dir.path())).unwrap();
        let daemon = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            // The whole request arrives but stays unread: closing a connection with
            // unread data resets it (ECONNRESET) instead of ending it.
            let mut buf = [0u8; 64];
            loop {
                // SAFETY: recv into a buffer of the length given, on a socket we own.
                let n = unsafe { libc::recv(conn.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK) };
                assert!(n >= 0, "{}", std::io::Error::last_os_error());
                if buf[..n as usize].contains(&b'\n') {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            conn.write_all(b"exit 4\ns2sfs fsck (cut short)\n").unwrap();
            drop(conn);
            drop(listener);
            drop(held);
        });
        assert_eq!(run(dir.path(), false, true).unwrap(), EXIT_CLEAN);
        daemon.join().unwrap();
    }

    #[test]
    fn problem_lines_and_json() {
        let p = Problem {
            kind: "unreadable_block",
            ino: Some(7),
            path: Some("/a/b".into()),
            detail: "bytes 0-4095 cannot be read".into(),
            repaired: true,
        };
        assert_eq!(problem_line(&p, true), "unreadable_block: /a/b (inode 7): bytes 0-4095 cannot be read [repaired]");
        assert_eq!(problem_line(&p, false), "unreadable_block: /a/b (inode 7): bytes 0-4095 cannot be read");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["kind"], "unreadable_block");
        assert_eq!(json["path"], "/a/b");
        assert_eq!(json["repaired"], true);
    }
}
