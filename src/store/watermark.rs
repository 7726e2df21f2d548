//! The durable-commit watermark: how far the metadata store is known to be durable,
//! kept outside it (`STORE/durable`).
//!
//! A metadata database can come back older than it was: redb falls back to its previous
//! commit when the newest one is damaged (and sled, format 1's store, dropped its log
//! silently from a damaged message on). A volume would then mount with recent files
//! missing, and unmount-time compaction would delete their frames for good. Every change
//! carries a sequence number in the metadata store; after each successful flush the
//! number it reached is written here. At open, a metadata store behind the watermark has
//! lost durable changes: the store refuses to open instead of serving what is left.
//!
//! The file is written after the database's flush and never synced itself: after a power
//! loss it can only lag behind (no false alarm); after a process crash it is exact.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::StoreError;

/// seq as u64 LE, then its complement: a torn or damaged record does not read as a number.
const RECORD_LEN: usize = 16;

pub struct Watermark {
    path: PathBuf,
    file: File,
    /// The highest number written so far (concurrent flushes may finish out of order).
    written: Mutex<u64>,
}

impl Watermark {
    /// Opens (or creates) the watermark file; also returns the number it holds, None when
    /// it is new or unreadable (a torn write after a power loss: no information).
    pub fn open(path: &Path) -> Result<(Watermark, Option<u64>), StoreError> {
        let io = |source| StoreError::Io { path: path.to_path_buf(), source };
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let mut buf = [0u8; RECORD_LEN];
        let recorded = match file.read_exact_at(&mut buf, 0) {
            Ok(()) => decode(&buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(io(e)),
        };
        if recorded.is_none() && file.metadata().map_err(io)?.len() > 0 {
            log::warn!("{}: unreadable, ignored (rewritten at the next flush)", path.display());
        }
        let wm = Watermark { path: path.to_path_buf(), file, written: Mutex::new(recorded.unwrap_or(0)) };
        Ok((wm, recorded))
    }

    /// Records that every change up to `seq` is durable.
    pub fn record(&self, seq: u64) -> Result<(), StoreError> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if seq > *written {
            self.write(seq)?;
            *written = seq;
        }
        Ok(())
    }

    /// Sets the watermark to `seq` even when lower: fsck's repair accepting a metadata
    /// store that lost changes.
    pub fn reset(&self, seq: u64) -> Result<(), StoreError> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        self.write(seq)?;
        self.file.sync_data().map_err(|source| StoreError::Io { path: self.path.clone(), source })?;
        *written = seq;
        Ok(())
    }

    fn write(&self, seq: u64) -> Result<(), StoreError> {
        let mut buf = [0u8; RECORD_LEN];
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        buf[8..].copy_from_slice(&(!seq).to_le_bytes());
        self.file.write_all_at(&buf, 0).map_err(|source| StoreError::Io { path: self.path.clone(), source })
    }
}

fn decode(buf: &[u8; RECORD_LEN]) -> Option<u64> {
    let seq = u64::from_le_bytes(buf[..8].try_into().ok()?);
    let check = u64::from_le_bytes(buf[8..].try_into().ok()?);
    (check == !seq).then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_forward_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("durable");
        let (wm, found) = Watermark::open(&path).unwrap();
        assert_eq!(found, None);
        wm.record(7).unwrap();
        wm.record(5).unwrap();
        drop(wm);
        let (wm, found) = Watermark::open(&path).unwrap();
        assert_eq!(found, Some(7));
        wm.reset(3).unwrap();
        drop(wm);
        assert_eq!(Watermark::open(&path).unwrap().1, Some(3));
    }

    #[test]
    fn a_damaged_record_reads_as_no_information() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("durable");
        Watermark::open(&path).unwrap().0.record(9).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 4;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Watermark::open(&path).unwrap().1, None);
    }
}
