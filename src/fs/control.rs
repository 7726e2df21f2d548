//! The daemon's control socket, `STORE/control.sock`: how `s2sfs fsck` checks a mounted
//! store read-only, through the daemon that has it open (the store lock keeps everyone
//! else out). One request per connection, one line: `fsck text` or `fsck json`; the reply
//! is a line `exit N` (fsck's exit code) followed by the report.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Weak;

use super::adapter::SharedVolume;

const SOCKET: &str = "control.sock";

pub fn socket_path(store: &Path) -> PathBuf {
    store.join(SOCKET)
}

/// Starts answering requests on the store's control socket (owner-only), in a thread
/// that lives as long as the volume does.
pub(super) fn start(store: &Path, volume: Weak<SharedVolume>) -> std::io::Result<()> {
    let path = socket_path(store);
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
        let _ = std::fs::remove_file(socket_path(&store));
    })?;
    Ok(())
}

fn answer(stream: UnixStream, store: &Path, shared: &SharedVolume) -> std::io::Result<()> {
    let mut line = String::new();
    BufReader::new(&stream).take(256).read_line(&mut line)?;
    let json = match line.trim() {
        "fsck text" => false,
        "fsck json" => true,
        other => return writeln!(&stream, "error unknown request {other:?}"),
    };
    log::info!("read-only fsck requested through the control socket");
    let mut out = Vec::new();
    match shared.volume().check(&mut |_| {}) {
        Ok(report) => {
            writeln!(out, "exit {}", crate::fsck::exit_code(report.outcome))?;
            crate::fsck::render(&mut out, store, &report, json)?;
        }
        Err(e) => writeln!(out, "error {e}")?,
    }
    (&stream).write_all(&out)
}

/// Removes the socket when the daemon is done with the store.
pub(super) fn stop(store: &Path) {
    let _ = std::fs::remove_file(socket_path(store));
}

/// Asks the daemon that has `store` open for a read-only check; returns fsck's exit code
/// with the report written to `out`, or None when no daemon answers.
pub fn fsck_mounted(store: &Path, json: bool, out: &mut dyn Write) -> std::io::Result<Option<u8>> {
    let Ok(mut stream) = UnixStream::connect(socket_path(store)) else { return Ok(None) };
    writeln!(stream, "fsck {}", if json { "json" } else { "text" })?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let status = status.trim_end();
    if let Some(err) = status.strip_prefix("error ") {
        return Err(std::io::Error::other(format!("the daemon could not check the store: {err}")));
    }
    let code = status
        .strip_prefix("exit ")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("unexpected reply from the daemon: {status:?}")))?;
    std::io::copy(&mut reader, out)?;
    Ok(Some(code))
}
