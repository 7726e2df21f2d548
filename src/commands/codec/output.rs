//! Output files of `codec compress` and `decompress`, written whole or not at all.
//!
//! A regular output is written beside its final name, synced, and renamed over it only
//! once every byte is on disk: a full disk, a killed process or a failed block leave
//! any earlier file of that name as it was, and no half-written one behind (gzip and
//! zstd delete theirs). The new file keeps the permissions of the one it replaces, and
//! an output that is a symbolic link replaces the file the link names. A non-regular
//! output (`/dev/stdout`, a FIFO, a device) cannot be replaced by a rename and is
//! written in place.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::{Result, ToolError, io};

/// Writes `output` through `write`, atomically where `output` is (or will be) a
/// regular file.
pub fn write_output(output: &Path, write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<()> {
    // Through a symbolic link to the file it names, which is replaced; the link stays.
    let output = &match std::fs::symlink_metadata(output) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(output).map_err(io(output))?,
        _ => output.to_path_buf(),
    };
    let existing = std::fs::metadata(output).ok();
    if existing.as_ref().is_some_and(|m| !m.is_file()) {
        let mut out = BufWriter::new(OpenOptions::new().write(true).open(output).map_err(io(output))?);
        write(&mut out).map_err(io(output))?;
        return finish(out, output, false);
    }
    let part = part_path(output);
    // Errors name the output the user gave, not the hidden part file.
    let file = OpenOptions::new().write(true).create_new(true).open(&part).map_err(io(output))?;
    if let Some(m) = existing {
        // The replaced file's permissions, as writing into it would have kept them.
        file.set_permissions(m.permissions()).map_err(io(output))?;
    }
    let mut out = BufWriter::new(file);
    let written = write(&mut out).map_err(io(output)).and_then(|()| finish(out, output, true));
    let renamed = written.and_then(|()| std::fs::rename(&part, output).map_err(io(output)));
    if renamed.is_err() {
        // The error above is the one to report; a leftover part file is only clutter.
        let _ = std::fs::remove_file(&part);
        return renamed;
    }
    sync_parent(output)
}

/// `dir/.name.s2sfs-part-PID`: hidden, beside the output (so the rename stays on one
/// file system), and unique to this process.
fn part_path(output: &Path) -> PathBuf {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    output.with_file_name(format!(".{name}.s2sfs-part-{}", std::process::id()))
}

/// Flushes `out` and, for a regular file, syncs it.
fn finish(out: BufWriter<File>, path: &Path, sync: bool) -> Result<()> {
    let file = out.into_inner().map_err(|e| ToolError::Io { path: path.to_path_buf(), source: e.into_error() })?;
    if sync { file.sync_all().map_err(io(path)) } else { Ok(()) }
}

/// Syncs the directory that holds `path`, so that the rename survives a crash.
fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::durable::sync_dir(dir).map_err(io(dir))
}
