//! The daemon's control socket, `STORE/control.sock`: how `s2sfs fsck` checks a mounted
//! store read-only, through the daemon that has it open (the store lock keeps everyone
//! else out). One request per connection, one line: `fsck text` or `fsck json`; the reply
//! is a line `exit N` (fsck's exit code) followed by the report.
//!
//! `recompress {json}` (a [`RecompressArgs`]) re-codes the mounted volume's blocks; the
//! reply is lines `progress {json}` (a `RecompressProgress`, after each batch of blocks,
//! at most every 100 ms), then `done {json}` (a `RecompressReport`) or `error MESSAGE`.
//! It runs in a thread of its own, so other requests are answered meanwhile; closing the
//! connection stops it after the blocks in flight.
//!
//! `stats` and `models` (what `s2sfs stats` and `s2sfs models` show of a mounted volume):
//! the reply is a line `ok` and then one line of JSON (`volume::Stats`, or a list of
//! `volume::ModelStats`), or a line `error MESSAGE`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::adapter::SharedVolume;
use crate::store::control_socket;
use crate::volume::{RecompressCodec, RecompressProgress, RecompressReport, RecompressRequest, describe_target};

/// Starts answering requests on the store's control socket (owner-only), in a thread
/// that lives as long as the volume does.
pub(super) fn start(store: &Path, volume: Weak<SharedVolume>) -> std::io::Result<()> {
    let path = control_socket(store);
    // A socket left by a daemon that was killed: we hold the store lock, so it is stale.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let store = store.to_path_buf();
    std::thread::Builder::new().name("s2sfs-control".into()).spawn(move || {
        for conn in listener.incoming() {
            let Some(shared) = volume.upgrade() else { break };
            match conn {
                Ok(stream) => {
                    if let Err(e) = answer(stream, &store, &shared) {
                        log::warn!("control request: {e}");
                    }
                }
                Err(e) => log::warn!("control socket: {e}"),
            }
        }
        let _ = std::fs::remove_file(control_socket(&store));
    })?;
    Ok(())
}

fn answer(stream: UnixStream, store: &Path, shared: &Arc<SharedVolume>) -> std::io::Result<()> {
    let mut line = String::new();
    // Long enough for a request naming a model directory (PATH_MAX).
    BufReader::new(&stream).take(8192).read_line(&mut line)?;
    if let Some(args) = line.trim().strip_prefix("recompress ") {
        let (shared, args) = (shared.clone(), args.to_string());
        std::thread::Builder::new().name("s2sfs-recompress-request".into()).spawn(move || {
            if let Err(e) = answer_recompress(&stream, &shared, &args) {
                log::warn!("recompress request: {e}");
            }
        })?;
        return Ok(());
    }
    if let Some(reply) = answer_stats(line.trim(), shared) {
        return (&stream).write_all(reply.as_bytes());
    }
    let json = match line.trim() {
        "fsck text" => false,
        "fsck json" => true,
        other => return writeln!(&stream, "error unknown request {other:?}"),
    };
    log::info!("read-only fsck requested through the control socket");
    let mut out = Vec::new();
    match shared.volume().check(&mut |_| {}) {
        Ok(report) => {
            writeln!(out, "exit {}", crate::commands::fsck::exit_code(report.outcome))?;
            crate::commands::fsck::render(&mut out, store, &report, json)?;
        }
        Err(e) => writeln!(out, "error {e}")?,
    }
    (&stream).write_all(&out)
}

/// What `s2sfs recompress` asks the daemon for.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecompressArgs {
    /// Only blocks not written for this many seconds.
    pub older_than_secs: u64,
    /// t5 or zstd; None: the volume's background target, else t5 with its model.
    pub codec: Option<RecompressCodec>,
    /// A t5 model directory (absolute: the daemon's working directory is not the caller's).
    pub model: Option<PathBuf>,
}

/// Progress lines are written at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

fn answer_recompress(stream: &UnixStream, shared: &SharedVolume, args: &str) -> std::io::Result<()> {
    let args: RecompressArgs = match serde_json::from_str(args) {
        Ok(a) => a,
        Err(e) => return writeln!(&*stream, "error bad recompress request: {e}"),
    };
    let volume = shared.volume();
    let target = match volume.recompress_target(args.codec, args.model.as_deref()) {
        Ok(t) => t,
        Err(e) => return writeln!(&*stream, "error {}", crate::error::error_chain(&e)),
    };
    log::info!("recompression to {} requested through the control socket", describe_target(target));
    if (args.codec.is_some() || args.model.is_some())
        && let Err(e) = volume.retarget(target)
    {
        return writeln!(&*stream, "error {}", crate::error::error_chain(&e));
    }
    let req = RecompressRequest { older_than: Duration::from_secs(args.older_than_secs), target };
    // Set when the client is gone: the pass stops.
    let gone = AtomicBool::new(false);
    let last = std::cell::Cell::new(None::<Instant>);
    let progress = |p: &RecompressProgress| {
        let due = last.get().is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) || p.blocks_done >= p.blocks_total;
        if !due || gone.load(Ordering::Relaxed) {
            return;
        }
        last.set(Some(Instant::now()));
        let line = serde_json::to_string(p).map(|j| format!("progress {j}\n"));
        if line.map_err(std::io::Error::from).and_then(|l| (&*stream).write_all(l.as_bytes())).is_err() {
            gone.store(true, Ordering::Relaxed);
        }
    };
    match volume.recompress(&req, &progress, &gone) {
        Ok(report) => {
            log::info!(
                "on-demand recompression: {} of {} blocks re-coded, {} -> {} bytes in {:.1} s",
                report.blocks_recompressed,
                report.blocks_examined,
                report.stored_before,
                report.stored_after,
                report.seconds
            );
            writeln!(&*stream, "done {}", serde_json::to_string(&report)?)
        }
        Err(e) => writeln!(&*stream, "error {}", crate::error::error_chain(&e)),
    }
}

/// Asks the daemon that has `store` open to recompress; `on_progress` sees each progress
/// line. None when no daemon answers; an error carries the daemon's one-line reason.
pub fn recompress_mounted(
    store: &Path,
    args: &RecompressArgs,
    on_progress: &mut dyn FnMut(&RecompressProgress),
) -> std::io::Result<Option<RecompressReport>> {
    let Ok(mut stream) = UnixStream::connect(control_socket(store)) else { return Ok(None) };
    writeln!(stream, "recompress {}", serde_json::to_string(args)?)?;
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line?;
        if let Some(p) = line.strip_prefix("progress ") {
            if let Ok(p) = serde_json::from_str(p) {
                on_progress(&p);
            }
        } else if let Some(r) = line.strip_prefix("done ") {
            return serde_json::from_str(r)
                .map(Some)
                .map_err(|e| std::io::Error::other(format!("unexpected report from the daemon: {e}")));
        } else if let Some(err) = line.strip_prefix("error ") {
            return Err(std::io::Error::other(err.to_string()));
        } else {
            return Err(std::io::Error::other(format!("unexpected reply from the daemon: {line:?}")));
        }
    }
    Err(std::io::Error::other("the daemon closed the connection without a report (did it exit?)"))
}

/// The store of the s2sfs mount at `mountpoint`, found as `s2sfs umount` finds it:
/// not mounted, or not an s2sfs mount, is a one-line error.
pub fn mounted_store_of(mountpoint: &Path) -> Result<PathBuf, super::CommandError> {
    let (target, entry) = super::umount::find_target(mountpoint)?;
    entry.store().ok_or_else(|| {
        super::CommandError::new(format!(
            "{} is not an s2sfs mount (it is a {} mount of {})",
            target.display(),
            entry.fstype,
            entry.source.to_string_lossy()
        ))
    })
}

/// Removes the socket when the daemon is done with the store.
pub(super) fn stop(store: &Path) {
    let _ = std::fs::remove_file(control_socket(store));
}

/// The reply to `stats` or `models`; None for any other request.
fn answer_stats(request: &str, shared: &SharedVolume) -> Option<String> {
    let volume = shared.volume();
    let json = match request {
        "stats" => volume.stats().map(|s| serde_json::to_string(&s)),
        "models" => volume.models().map(|m| serde_json::to_string(&m)),
        _ => return None,
    };
    Some(match json {
        Ok(Ok(json)) => format!("ok\n{json}\n"),
        Ok(Err(e)) => format!("error {e}\n"),
        Err(e) => format!("error {}\n", crate::error::error_chain(&e)),
    })
}

/// Asks the daemon that has `store` open for its statistics: the JSON of
/// `volume::Stats`, one line. None when no daemon answers.
pub fn stats_mounted(store: &Path) -> std::io::Result<Option<String>> {
    request_json(store, "stats")
}

/// Asks the daemon that has `store` open for its models: the JSON list of
/// `volume::ModelStats`, one line. None when no daemon answers.
pub fn models_mounted(store: &Path) -> std::io::Result<Option<String>> {
    request_json(store, "models")
}

/// Sends `request`, expects `ok` and one line of JSON.
fn request_json(store: &Path, request: &str) -> std::io::Result<Option<String>> {
    let Ok(mut stream) = UnixStream::connect(control_socket(store)) else { return Ok(None) };
    writeln!(stream, "{request}")?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    match status.trim_end() {
        "ok" => {}
        s if s.starts_with("error unknown request") => {
            return Err(std::io::Error::other(format!(
                "the daemon does not answer `{request}` (an older s2sfs? remount to update it)"
            )));
        }
        s => {
            let why = s.strip_prefix("error ").map_or_else(|| format!("unexpected reply {s:?}"), str::to_string);
            return Err(std::io::Error::other(format!("the daemon could not answer `{request}`: {why}")));
        }
    }
    let mut json = String::new();
    reader.read_line(&mut json)?;
    Ok(Some(json.trim_end().to_string()))
}
