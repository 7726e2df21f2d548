//! Append-only pack files holding frames. A pack is never modified in place: frames are
//! appended, and a pack whose frames are mostly dead is rewritten by compaction and deleted.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::StoreError;
use super::prefetch::Readahead;
use crate::watchdog::watch;

/// Packs grow to about this size before a new one is started; small enough that
/// compaction copies little, large enough that a volume has few files.
pub const PACK_TARGET_SIZE: u64 = 64 << 20;
const MAGIC: &[u8; 4] = b"S2PK";
const VERSION: u32 = 1;
pub const PACK_HEADER_LEN: u64 = 16;
/// Frames this close in a pack are prefetched as one range: reading a little dead data
/// costs less than another request.
const PREFETCH_GAP: u64 = 256 << 10;
/// Suffix of a pack being created, before its header is durable.
const NEW_SUFFIX: &str = ".new";

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    if source.raw_os_error() == Some(libc::ENOSPC) {
        return StoreError::NoSpace;
    }
    StoreError::Io { path: path.to_path_buf(), source }
}

/// The pack directory: reads frames from any pack, creates and removes packs.
pub struct Packs {
    dir: PathBuf,
    readers: RwLock<HashMap<u32, Arc<File>>>,
    readahead: Readahead,
}

/// The file of pack `id` in the pack directory `dir`.
pub(super) fn pack_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.pack"))
}

/// The pack new frames are appended to; owned by the store's writer.
pub struct ActivePack {
    pub id: u32,
    path: PathBuf,
    file: File,
    pub len: u64,
}

impl Packs {
    /// Opens the pack directory and lists the packs in it with their sizes.
    pub fn open(dir: &Path) -> Result<(Packs, Vec<(u32, u64)>), StoreError> {
        let mut found = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(NEW_SUFFIX)) {
                // A pack whose creation a crash interrupted: never named, so never used.
                log::info!("removing {:?}, left by an interrupted pack creation", name);
                std::fs::remove_file(entry.path()).map_err(|e| io_err(&entry.path(), e))?;
                continue;
            }
            let Some(id) = name.to_str().and_then(parse_pack_name) else {
                log::warn!("ignoring unexpected file {:?} in {}", name, dir.display());
                continue;
            };
            let len = entry.metadata().map_err(|e| io_err(&entry.path(), e))?.len();
            found.push((id, len));
        }
        found.sort_unstable();
        let packs = Packs {
            dir: dir.to_path_buf(),
            readers: RwLock::new(HashMap::new()),
            readahead: Readahead::new(dir.to_path_buf()),
        };
        Ok((packs, found))
    }

    pub fn path(&self, id: u32) -> PathBuf {
        pack_path(&self.dir, id)
    }

    fn reader(&self, id: u32) -> Result<Arc<File>, StoreError> {
        if let Some(f) = self.readers.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(f.clone());
        }
        let path = self.path(id);
        let file = Arc::new(File::open(&path).map_err(|e| io_err(&path, e))?);
        // Read-ahead is the readahead thread's job (see prefetch.rs).
        // SAFETY: posix_fadvise only reads its integer arguments; the fd is open.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
        self.readers.write().unwrap_or_else(|p| p.into_inner()).insert(id, file.clone());
        Ok(file)
    }

    /// Reads `len` bytes at `offset` of pack `id`; a short read means a truncated pack.
    pub fn read(&self, id: u32, offset: u64, len: u32) -> Result<Vec<u8>, StoreError> {
        let _watch = watch("pack read");
        let mut buf = vec![0u8; len as usize];
        self.read_into(id, offset, &mut buf)?;
        Ok(buf)
    }

    /// Fills `buf` from `offset` of pack `id`; a short read means a truncated pack.
    pub fn read_into(&self, id: u32, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let _watch = watch("pack read");
        let file = self.reader(id)?;
        file.read_exact_at(buf, offset).map_err(|e| {
            let path = self.path(id);
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Damaged { what: format!("{} (truncated: frame at {offset} missing)", path.display()) }
            } else {
                io_err(&path, e)
            }
        })
    }

    /// Starts reading `(pack, start, end)` byte ranges into the page cache. Ranges of one
    /// pack less than `PREFETCH_GAP` apart are merged, so a run of consecutive frames
    /// becomes one request. Best effort: failures are ignored (reads will report them).
    pub fn prefetch(&self, mut ranges: Vec<(u32, u64, u64)>) {
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u64, u64)> = Vec::with_capacity(ranges.len());
        for (pack, start, end) in ranges {
            match merged.last_mut() {
                Some(last) if last.0 == pack && start <= last.2 + PREFETCH_GAP => last.2 = last.2.max(end),
                _ => merged.push((pack, start, end)),
            }
        }
        for (pack, start, end) in merged {
            self.readahead.request(pack, start, end);
        }
    }

    /// Creates a new, empty pack (header only, synced, directory entry synced). The pack
    /// is written under a temporary name and renamed: a crash never leaves a pack without
    /// its header, which a reopened store would append frames into from offset 0.
    pub fn create(&self, id: u32) -> Result<ActivePack, StoreError> {
        let path = self.path(id);
        if path.exists() {
            let exists = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
            return Err(io_err(&path, exists));
        }
        let tmp = self.dir.join(format!("{id:08}.pack{NEW_SUFFIX}"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        let mut header = Vec::with_capacity(PACK_HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&id.to_le_bytes());
        header.extend_from_slice(&[0u8; 4]);
        let written = file.write_all(&header).and_then(|_| file.sync_all());
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(&path, e));
        }
        self.sync_dir()?;
        Ok(ActivePack { id, path, file, len: PACK_HEADER_LEN })
    }

    /// Reopens an existing pack for appending after its current end.
    pub fn reopen(&self, id: u32) -> Result<ActivePack, StoreError> {
        let path = self.path(id);
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| io_err(&path, e))?;
        let len = file.metadata().map_err(|e| io_err(&path, e))?.len();
        Ok(ActivePack { id, path, file, len })
    }

    /// Deletes a pack that no record points at any more.
    pub fn remove(&self, id: u32) -> Result<(), StoreError> {
        self.readers.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.readahead.forget(id);
        let path = self.path(id);
        std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        self.sync_dir()
    }

    /// Gives the disk space of dead frames back to the filesystem (punches holes; the
    /// packs keep their length, so no offset moves). Best effort: a filesystem without
    /// hole punching keeps the space until compaction rewrites the pack.
    pub fn punch(&self, ranges: &[(u32, u64, u64)]) {
        let mut open: HashMap<u32, Option<File>> = HashMap::new();
        for &(id, offset, len) in ranges {
            let file = open.entry(id).or_insert_with(|| OpenOptions::new().write(true).open(self.path(id)).ok());
            let Some(file) = file else { continue };
            // SAFETY: fallocate on a descriptor we own; no memory is passed.
            let rc = unsafe {
                libc::fallocate(
                    std::os::fd::AsRawFd::as_raw_fd(file),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    offset as libc::off_t,
                    len as libc::off_t,
                )
            };
            if rc != 0 {
                log::debug!("punching a hole in pack {id}: {}", std::io::Error::last_os_error());
                return;
            }
        }
    }

    /// How many pack files there are, their total length, and the bytes the disk holds for
    /// them (punched holes excluded).
    pub fn disk_usage(&self) -> Result<(u64, u64, u64), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let (mut files, mut len, mut allocated) = (0, 0, 0);
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&self.dir, e))?;
            if entry.file_name().to_str().and_then(parse_pack_name).is_none() {
                continue;
            }
            // A pack compaction deleted meanwhile is simply not counted.
            let Ok(meta) = entry.metadata() else { continue };
            files += 1;
            len += meta.len();
            allocated += meta.blocks() * 512;
        }
        Ok((files, len, allocated))
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        crate::durable::sync_dir(&self.dir).map_err(|e| io_err(&self.dir, e))
    }
}

impl ActivePack {
    /// Writes `frames` one after another at the end and makes them durable; returns the
    /// offset of the first. On failure (a full disk) the pack is cut back to its previous
    /// length so no half-written frame stays behind.
    pub fn append_durable(&mut self, frames: &[Vec<u8>]) -> Result<u64, StoreError> {
        let _watch = watch("pack append and sync");
        let start = self.len;
        let mut at = start;
        let result = frames
            .iter()
            .try_for_each(|f| {
                self.file.write_all_at(f, at)?;
                at += f.len() as u64;
                Ok(())
            })
            .and_then(|()| self.file.sync_data());
        if let Err(e) = result {
            let _ = self.file.set_len(start);
            return Err(io_err(&self.path, e));
        }
        self.len = at;
        Ok(start)
    }
}

fn parse_pack_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".pack")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let (packs, found) = Packs::open(dir.path()).unwrap();
        assert!(found.is_empty());
        let mut p = packs.create(1).unwrap();
        let off = p.append_durable(&[b"hello".to_vec(), b" frame".to_vec()]).unwrap();
        assert_eq!(off, PACK_HEADER_LEN);
        assert_eq!(packs.read(1, off, 5).unwrap(), b"hello");
        assert!(matches!(packs.read(1, off, 100), Err(StoreError::Damaged { .. })));
        let (_, found) = Packs::open(dir.path()).unwrap();
        assert_eq!(found, vec![(1, PACK_HEADER_LEN + 11)]);
        packs.remove(1).unwrap();
        assert!(packs.read(1, off, 5).is_err());
    }

    #[test]
    fn pack_names() {
        assert_eq!(parse_pack_name("00000012.pack"), Some(12));
        assert_eq!(parse_pack_name("12.pack"), None);
        assert_eq!(parse_pack_name("00000012.tmp"), None);
    }
}
