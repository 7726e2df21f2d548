//! Pulls ranges of packs into the page cache on a thread of its own, ahead of the reads
//! that need them. It reads each range with `sendfile` to /dev/null, through a descriptor
//! of its own per pack: the kernel sees one sequential reader and reads ahead in large
//! chunks, and nothing is copied. The decoding threads' own descriptors read no further
//! than asked (`POSIX_FADV_RANDOM`): several threads reading one pack out of order would
//! otherwise each start read-ahead of their own, in small pages.
//! Advisory: a request that does not fit the queue, or fails, is dropped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

/// Requests waiting for the thread; more are dropped (the reads will fetch their data).
const QUEUE: usize = 64;

enum Msg {
    /// Read pack `.0` from byte `.1` to `.2`.
    Range(u32, u64, u64),
    /// Close the descriptor of a pack about to be deleted.
    Forget(u32),
}

pub(super) struct Readahead {
    dir: PathBuf,
    worker: Mutex<Option<(SyncSender<Msg>, JoinHandle<()>)>>,
}

impl Readahead {
    pub fn new(dir: PathBuf) -> Readahead {
        Readahead { dir, worker: Mutex::new(None) }
    }

    /// Asks for bytes `start..end` of pack `pack` to be read into the page cache.
    pub fn request(&self, pack: u32, start: u64, end: u64) {
        self.send(Msg::Range(pack, start, end), false);
    }

    /// The pack is going away: the thread must not keep it open.
    pub fn forget(&self, pack: u32) {
        self.send(Msg::Forget(pack), true);
    }

    fn send(&self, msg: Msg, must: bool) {
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if worker.is_none() && !must {
            *worker = self.start();
        }
        let Some((tx, _)) = worker.as_ref() else { return };
        let sent = if must {
            tx.send(msg).map_err(|_| ())
        } else {
            tx.try_send(msg).or_else(|e| match e {
                TrySendError::Full(_) => Ok(()),
                TrySendError::Disconnected(_) => Err(()),
            })
        };
        if sent.is_err() {
            *worker = None;
        }
    }

    fn start(&self) -> Option<(SyncSender<Msg>, JoinHandle<()>)> {
        let (tx, rx) = sync_channel(QUEUE);
        let dir = self.dir.clone();
        match std::thread::Builder::new().name("s2sfs-readahead".into()).spawn(move || run(&dir, rx)) {
            Ok(handle) => Some((tx, handle)),
            Err(e) => {
                log::debug!("read-ahead thread not started: {e}");
                None
            }
        }
    }
}

impl Drop for Readahead {
    fn drop(&mut self) {
        let worker = self.worker.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((tx, handle)) = worker {
            drop(tx);
            let _ = handle.join();
        }
    }
}

fn run(dir: &std::path::Path, rx: Receiver<Msg>) {
    let Ok(null) = OpenOptions::new().write(true).open("/dev/null") else { return };
    let mut files: HashMap<u32, File> = HashMap::new();
    for msg in rx {
        match msg {
            Msg::Forget(pack) => {
                files.remove(&pack);
            }
            Msg::Range(pack, start, end) => {
                let file = match files.get(&pack) {
                    Some(f) => f,
                    None => match File::open(super::packs::pack_path(dir, pack)) {
                        Ok(f) => files.entry(pack).or_insert(f),
                        Err(_) => continue,
                    },
                };
                let mut off = start as libc::off_t;
                while (off as u64) < end {
                    let left = (end - off as u64) as usize;
                    // SAFETY: sendfile reads from and writes to descriptors held open here.
                    let n = unsafe { libc::sendfile(null.as_raw_fd(), file.as_raw_fd(), &mut off, left) };
                    if n <= 0 {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Pages of `path` in the page cache, by mincore over a mapping of it.
    fn resident_pages(path: &std::path::Path) -> usize {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        let page = 4096;
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: a private read-only mapping of an open file, unmapped below; mincore
        // writes one byte per page into `vec`, which has that many.
        unsafe {
            let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0);
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(libc::mincore(p, len, vec.as_mut_ptr()), 0);
            libc::munmap(p, len);
        }
        vec.iter().filter(|&&b| b & 1 == 1).count()
    }

    #[test]
    fn requested_ranges_land_in_the_page_cache_and_forgotten_packs_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::super::packs::pack_path(dir.path(), 7);
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![0x5au8; 4 << 20]).unwrap();
        f.sync_all().unwrap();
        // SAFETY: posix_fadvise only reads its integer arguments; the fd is open.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        drop(f);
        let before = resident_pages(&path);
        let ra = Readahead::new(dir.path().to_path_buf());
        ra.request(7, 1 << 20, 3 << 20);
        ra.forget(7);
        drop(ra); // joins the thread: every message is handled
        let after = resident_pages(&path);
        assert!(after >= before + 400, "{before} pages cached before, {after} after");
        let target = std::fs::canonicalize(&path).unwrap();
        for fd in std::fs::read_dir("/proc/self/fd").unwrap() {
            if let Ok(link) = std::fs::read_link(fd.unwrap().path()) {
                assert_ne!(link, target, "the read-ahead thread still holds the pack open");
            }
        }
    }
}
