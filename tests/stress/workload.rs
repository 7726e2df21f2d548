//! The concurrency workload of `tests/stress.rs`, run against any directory (an s2sfs mount
//! in the test; bindfs or s2sfs in `bench/reliability.sh`), checked against a model.
//!
//! Phase 1 (`model_phase`): THREADS threads run a random mix of pwrite (1 B .. 300 KiB at
//! offsets that cross 128 KiB blocks; files of ~1.2 MiB, and "big" ones that grow to ~12 MiB
//! so that the volume's 32 MiB dirty limit is reached now and then), pread, whole-file reads by name, ftruncate and
//! truncate(2), rename / RENAME_NOREPLACE / RENAME_EXCHANGE within 8 names in two
//! directories (over existing files too), create, unlink, reopen (with and without
//! O_TRUNC), fsync / fdatasync of files and directories, fstat, readdir, and I/O on unlinked files
//! that are still open. It is linearizable by construction: every file has a Mutex around
//! its model entry, held across the syscall and the model update, so operations on one file
//! are serialized by the test while operations on different files run concurrently in the
//! filesystem. Data operations go through open descriptors, so they run concurrently with
//! renames, which take the namespace lock (a RwLock: exclusive for rename, create, unlink;
//! shared for operations by name). fsync takes no file lock at all. Every read is compared
//! with the model at once.
//!
//! Phase 2 (`stripe_phase`): the same threads hammer ONE file without any test locks. The
//! file is cut into stripes of random, unaligned widths (1 B .. 200 KiB, so many stripes
//! share a 128 KiB block and some cross block boundaries); stripe k belongs to thread
//! k % THREADS, and each thread only writes its own stripes (half the threads share one
//! descriptor, the others open their own). A thread can check its own bytes at any time,
//! also inside reads of ranges that other threads are writing. At the end the whole file
//! must equal the union of the threads' models. Meanwhile every thread also appends
//! self-describing records (1 B .. 300 KiB of payload) to `appends.log` through an
//! O_APPEND descriptor of its own: at the end every record must be there exactly once,
//! whole, in each thread's order.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{BLOCK, KIB, MIB, Rng, cpath, cvt, names, pread, random_bytes, text_bytes};

/// Names the model phase uses: `a/n0..a/n3`, `b/n0..b/n3`.
pub const SLOTS: usize = 8;
/// Writes start below this offset (so files stay around 10 blocks)...
const MAX_OFF: usize = 9 * BLOCK + 77;
/// ... except in "big" files (a quarter of them), which grow to ~12 MiB, mostly by appends:
/// together they hold enough dirty data to reach the volume's 32 MiB dirty limit now and then.
const MAX_OFF_BIG: usize = 12 * MIB + 77;
/// Largest single write or read.
const MAX_IO: usize = 300 * KIB;
/// Unlinked-but-open files kept for I/O before they are checked and closed.
const MAX_ORPHANS: usize = 3;
/// Size of the striped file of phase 2.
pub const STRIPED_SIZE: usize = 3 * MIB + 12_345;

pub struct Config {
    pub threads: usize,
    pub model_secs: f64,
    pub stripe_secs: f64,
    pub seed: u64,
    /// Use RENAME_NOREPLACE / RENAME_EXCHANGE (bindfs refuses renameat2 flags with EINVAL).
    pub rename_flags: bool,
    /// Leave `.fuse_hidden*` names out of listings: libfuse's high-level API (bindfs) keeps
    /// unlinked open files under such names. Never for s2sfs, which must not show them.
    pub ignore_fuse_hidden: bool,
}

impl Config {
    /// 8 threads; `total_secs` split 70/30 between the phases; S2SFS_STRESS_SEED overrides the seed.
    pub fn new(total_secs: f64) -> Config {
        let seed = std::env::var("S2SFS_STRESS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_2024);
        Config {
            threads: 8,
            model_secs: total_secs * 0.7,
            stripe_secs: total_secs * 0.3,
            seed,
            rename_flags: true,
            ignore_fuse_hidden: false,
        }
    }
}

// ------------------------------------------------------------------------------ statistics

/// Per op type: count, nanoseconds spent in the syscalls, bytes moved.
#[derive(Default, Clone)]
pub struct Stats {
    pub ops: BTreeMap<&'static str, (u64, u64, u64)>,
}

impl Stats {
    fn add(&mut self, op: &'static str, started: Instant, bytes: usize) {
        let e = self.ops.entry(op).or_default();
        e.0 += 1;
        e.1 += started.elapsed().as_nanos() as u64;
        e.2 += bytes as u64;
    }
    fn merge(&mut self, other: &Stats) {
        for (k, v) in &other.ops {
            let e = self.ops.entry(k).or_default();
            e.0 += v.0;
            e.1 += v.1;
            e.2 += v.2;
        }
    }
    pub fn total(&self) -> u64 {
        self.ops.values().map(|v| v.0).sum()
    }
}

/// Result of one phase: the stats and the wall time the threads ran.
pub struct PhaseReport {
    pub phase: &'static str,
    pub threads: usize,
    pub wall: Duration,
    pub stats: Stats,
}

impl PhaseReport {
    /// A human table plus one `STRESS-RESULT` line per op type (parsed by bench/reliability.sh).
    pub fn print(&self, label: &str) {
        let secs = self.wall.as_secs_f64();
        println!(
            "stress {label} {}: {} threads, {:.1} s, {} ops, {:.1} ops/s",
            self.phase,
            self.threads,
            secs,
            self.stats.total(),
            self.stats.total() as f64 / secs
        );
        println!("  {:<14} {:>8} {:>10} {:>10} {:>9}", "op", "count", "ops/s", "mean ms", "MB/s");
        for (op, (n, ns, bytes)) in &self.stats.ops {
            println!(
                "  {:<14} {:>8} {:>10.1} {:>10.3} {:>9.2}",
                op,
                n,
                *n as f64 / secs,
                *ns as f64 / 1e6 / (*n).max(1) as f64,
                *bytes as f64 / 1e6 / secs
            );
        }
        for (op, (n, ns, bytes)) in &self.stats.ops {
            println!(
                "STRESS-RESULT label={label} phase={} op={op} count={n} secs={secs:.3} ops_per_s={:.1} mean_ms={:.3} mb_per_s={:.2}",
                self.phase,
                *n as f64 / secs,
                *ns as f64 / 1e6 / (*n).max(1) as f64,
                *bytes as f64 / 1e6 / secs
            );
        }
        println!(
            "STRESS-RESULT label={label} phase={} op=all count={} secs={secs:.3} ops_per_s={:.1} mean_ms=0 mb_per_s=0",
            self.phase,
            self.stats.total(),
            self.stats.total() as f64 / secs
        );
    }
}

// ------------------------------------------------------------------------------ data

/// Pools the written data is cut from: random (incompressible), text (compressible); zeros
/// (holes) and one-byte patterns are made on the spot. Slices at random offsets make most
/// blocks unique; equal slices now and then exercise dedup.
pub struct Pool {
    random: Vec<u8>,
    text: Vec<u8>,
}

impl Pool {
    pub fn new(seed: u64) -> Pool {
        Pool { random: random_bytes(seed ^ 0xda7a, 4 * MIB), text: text_bytes(seed % 9973, 2 * MIB) }
    }

    fn data(&self, rng: &mut Rng, len: usize) -> (Vec<u8>, &'static str) {
        match rng.below(100) {
            0..50 => {
                let o = rng.below(self.random.len() - len + 1);
                (self.random[o..o + len].to_vec(), "random")
            }
            50..75 => {
                let o = rng.below(self.text.len() - len + 1);
                (self.text[o..o + len].to_vec(), "text")
            }
            75..90 => (vec![0u8; len], "zeros"),
            _ => (vec![(1 + rng.below(255)) as u8; len], "pattern"),
        }
    }
}

fn io_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..20 => 1 + rng.below(64),
        20..45 => 1 + rng.below(8 * KIB),
        45..70 => 8 * KIB + rng.below(120 * KIB),
        70..90 => BLOCK + rng.below(MAX_IO - BLOCK + 1),
        _ => BLOCK,
    }
}

fn write_off(rng: &mut Rng, cur: usize, len: usize, max_off: usize) -> usize {
    let append = if max_off > MAX_OFF { 45 } else { 10 };
    match rng.below(100) {
        // block aligned
        0..15 => BLOCK * rng.below(max_off / BLOCK + 1),
        // straddle a block boundary
        15..35 => {
            let boundary = BLOCK * (1 + rng.below(max_off / BLOCK));
            boundary - (1 + rng.below(len.min(boundary)))
        }
        // append
        n if n < 35 + append => cur.min(max_off),
        _ => rng.below(max_off),
    }
}

fn new_size(rng: &mut Rng, cur: usize, max_off: usize) -> usize {
    if max_off > MAX_OFF && rng.below(4) != 0 {
        // big files: mostly small moves of the end, so that they stay big
        return (cur + rng.below(MAX_IO)).saturating_sub(rng.below(MAX_IO));
    }
    match rng.below(100) {
        0..8 => 0,
        8..50 => rng.below(cur + 1),
        50..65 => (BLOCK * rng.below(max_off / BLOCK + 1) + rng.below(3)).saturating_sub(1),
        _ => rng.below(max_off + BLOCK),
    }
}

// ------------------------------------------------------------------------------ helpers

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn read_ns<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
fn write_ns<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// Sets the shared stop flag if the thread that owns it panics, so the others end early.
struct StopOnPanic<'a>(&'a AtomicBool);
impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Describes the first difference of two byte strings.
pub fn first_diff(got: &[u8], want: &[u8]) -> String {
    let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    // how long the differing run is (up to the shorter end)
    let run =
        got[first.min(got.len())..].iter().zip(&want[first.min(want.len())..]).take_while(|(a, b)| a != b).count();
    let ctx = |d: &[u8]| d[first.min(d.len())..(first + 12).min(d.len())].to_vec();
    format!(
        "got {} bytes, want {}; first difference at byte {first} of the range, differing run {run} bytes; got {:02x?}, want {:02x?}",
        got.len(),
        want.len(),
        ctx(got),
        ctx(want)
    )
}

/// Whether the filesystem under `dir` takes renameat2 flags (bindfs: EINVAL).
pub fn supports_rename_flags(dir: &Path) -> bool {
    let (a, b) = (dir.join(".probe-a"), dir.join(".probe-b"));
    fs::write(&a, b"a").unwrap();
    let ok = renameat2(&a, &b, libc::RENAME_NOREPLACE).is_ok();
    let _ = fs::remove_file(&a);
    let _ = fs::remove_file(&b);
    ok
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let (f, t) = (cpath(from), cpath(to));
    cvt(unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), flags) }).map(|_| ())
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

// ------------------------------------------------------------------------------ phase 1

struct FileState {
    data: Vec<u8>,
    /// Writes start below this offset: MAX_OFF, or MAX_OFF_BIG for big files.
    max_off: usize,
    fd: Arc<File>,
    /// The last operations on this file, for failure messages.
    log: VecDeque<String>,
}

impl FileState {
    fn note(&mut self, s: String) {
        if self.log.len() == 24 {
            self.log.pop_front();
        }
        self.log.push_back(s);
    }
}

struct Entry {
    id: u64,
    st: Mutex<FileState>,
}

struct Namespace {
    slots: Vec<Option<Arc<Entry>>>,
    /// Unlinked files whose descriptors stay open (I/O continues on them).
    orphans: VecDeque<Arc<Entry>>,
    /// The last namespace changes, for failure messages.
    log: VecDeque<String>,
}

impl Namespace {
    fn note(&mut self, s: String) {
        if self.log.len() == 32 {
            self.log.pop_front();
        }
        self.log.push_back(s);
    }
}

struct Shared<'a> {
    root: &'a Path,
    ns: RwLock<Namespace>,
    pool: &'a Pool,
    rename_flags: bool,
    ignore_fuse_hidden: bool,
    stop: AtomicBool,
    next_id: AtomicU64,
    /// The largest size a file reached.
    peak_size: AtomicU64,
}

pub fn slot_path(root: &Path, slot: usize) -> PathBuf {
    root.join(if slot < SLOTS / 2 { "a" } else { "b" }).join(format!("n{}", slot % (SLOTS / 2)))
}

fn open_rw(path: &Path, trunc: bool) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).truncate(trunc).open(path)
}

impl Shared<'_> {
    fn path(&self, slot: usize) -> PathBuf {
        slot_path(self.root, slot)
    }

    /// A random live file, or now and then an unlinked one that is still open.
    fn pick(&self, rng: &mut Rng, allow_orphan: bool) -> Option<(String, Arc<Entry>)> {
        let ns = read_ns(&self.ns);
        if allow_orphan && !ns.orphans.is_empty() && rng.below(10) == 0 {
            let e = ns.orphans[rng.below(ns.orphans.len())].clone();
            return Some((format!("(unlinked file #{})", e.id), e));
        }
        let occ: Vec<usize> = (0..SLOTS).filter(|&s| ns.slots[s].is_some()).collect();
        if occ.is_empty() {
            return None;
        }
        let s = occ[rng.below(occ.len())];
        Some((self.path(s).display().to_string(), ns.slots[s].clone().unwrap()))
    }

    #[track_caller]
    fn fail(&self, what: &str, name: &str, e: &Entry, st: &FileState, detail: String) -> ! {
        self.stop.store(true, Ordering::SeqCst);
        // try_read: the caller may hold the namespace lock (then its log is left out).
        let ns_log: Vec<String> = match self.ns.try_read() {
            Ok(ns) => ns.log.iter().cloned().collect(),
            Err(_) => vec!["(namespace locked by the caller)".into()],
        };
        panic!(
            "MODEL MISMATCH in {what} on {name} (file #{}, model size {}): {detail}\n\
             last operations on this file (oldest first):\n  {}\nlast namespace changes:\n  {}",
            e.id,
            st.data.len(),
            st.log.iter().cloned().collect::<Vec<_>>().join("\n  "),
            ns_log.join("\n  ")
        )
    }

    fn new_entry(&self, fd: File, data: Vec<u8>, big: bool) -> Arc<Entry> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let max_off = if big { MAX_OFF_BIG } else { MAX_OFF };
        Arc::new(Entry { id, st: Mutex::new(FileState { data, max_off, fd: Arc::new(fd), log: VecDeque::new() }) })
    }

    fn op_write(&self, rng: &mut Rng, stats: &mut Stats) {
        let Some((name, e)) = self.pick(rng, true) else { return self.op_create(rng, stats) };
        let mut st = lock(&e.st);
        let len = io_len(rng);
        let off = write_off(rng, st.data.len(), len, st.max_off);
        let (buf, kind) = self.pool.data(rng, len);
        let t = Instant::now();
        if let Err(err) = st.fd.write_all_at(&buf, off as u64) {
            self.fail("pwrite", &name, &e, &st, format!("pwrite off={off} len={len}: {err}"));
        }
        stats.add("write", t, len);
        if st.data.len() < off + len {
            st.data.resize(off + len, 0);
            self.peak_size.fetch_max((off + len) as u64, Ordering::Relaxed);
        }
        st.data[off..off + len].copy_from_slice(&buf);
        let size = st.data.len();
        st.note(format!("pwrite off={off} len={len} ({kind}) -> size {size}"));
    }

    #[allow(clippy::too_many_arguments)]
    fn check_read(&self, what: &str, name: &str, e: &Entry, st: &FileState, off: usize, len: usize, got: &[u8]) {
        let size = st.data.len();
        let want = &st.data[off.min(size)..(off + len).min(size)];
        if got != want {
            // Read once more: is the difference stable?
            let again = pread(&st.fd, off as u64, len).map(|b| if b == want { "matches now" } else { "still differs" });
            self.fail(
                what,
                name,
                e,
                st,
                format!("read off={off} len={len}: {}; a second pread {again:?}", first_diff(got, want)),
            );
        }
    }

    fn op_read(&self, rng: &mut Rng, stats: &mut Stats) {
        let Some((name, e)) = self.pick(rng, true) else { return };
        let mut st = lock(&e.st);
        let size = st.data.len();
        let off = match rng.below(10) {
            0 => size.saturating_sub(rng.below(1000)),
            1 => BLOCK * rng.below(size / BLOCK + 1),
            _ => rng.below(size + BLOCK / 2),
        };
        let len = io_len(rng);
        let t = Instant::now();
        let got = match pread(&st.fd, off as u64, len) {
            Ok(b) => b,
            Err(err) => self.fail("pread", &name, &e, &st, format!("pread off={off} len={len}: {err}")),
        };
        stats.add("read", t, got.len());
        self.check_read("pread", &name, &e, &st, off, len, &got);
        st.note(format!("pread off={off} len={len} ok"));
    }

    fn op_read_path(&self, rng: &mut Rng, stats: &mut Stats) {
        let ns = read_ns(&self.ns);
        let occ: Vec<usize> = (0..SLOTS).filter(|&s| ns.slots[s].is_some()).collect();
        if occ.is_empty() {
            return;
        }
        let slot = occ[rng.below(occ.len())];
        let e = ns.slots[slot].clone().unwrap();
        let path = self.path(slot);
        let name = path.display().to_string();
        let mut st = lock(&e.st);
        let t = Instant::now();
        let got = match fs::read(&path) {
            Ok(b) => b,
            Err(err) => self.fail("read by name", &name, &e, &st, format!("open+read: {err}")),
        };
        stats.add("read_whole", t, got.len());
        self.check_read("read by name (whole file)", &name, &e, &st, 0, usize::MAX / 2, &got);
        st.note("read whole file by name ok".into());
    }

    fn op_truncate(&self, rng: &mut Rng, stats: &mut Stats, by_path: bool) {
        let guard;
        let (name, e, path) = if by_path {
            guard = read_ns(&self.ns);
            let occ: Vec<usize> = (0..SLOTS).filter(|&s| guard.slots[s].is_some()).collect();
            if occ.is_empty() {
                return;
            }
            let slot = occ[rng.below(occ.len())];
            let p = self.path(slot);
            (p.display().to_string(), guard.slots[slot].clone().unwrap(), Some(p))
        } else {
            let Some((n, e)) = self.pick(rng, true) else { return };
            (n, e, None)
        };
        let mut st = lock(&e.st);
        let size = new_size(rng, st.data.len(), st.max_off);
        let t = Instant::now();
        let r = match &path {
            Some(p) => {
                let c = cpath(p);
                cvt(unsafe { libc::truncate(c.as_ptr(), size as libc::off_t) }).map(|_| ())
            }
            None => st.fd.set_len(size as u64),
        };
        if let Err(err) = r {
            self.fail("truncate", &name, &e, &st, format!("truncate to {size}: {err}"));
        }
        stats.add(if by_path { "truncate_path" } else { "ftruncate" }, t, 0);
        let old = st.data.len();
        st.data.resize(size, 0);
        st.note(format!("{} {old} -> {size}", if by_path { "truncate(path)" } else { "ftruncate" }));
    }

    /// readdir of `a` or `b` under the shared namespace lock: no name changes meanwhile, so
    /// the listing must be exactly the model's.
    fn op_readdir(&self, rng: &mut Rng, stats: &mut Stats) {
        let half = rng.below(2);
        let dir = self.root.join(if half == 0 { "a" } else { "b" });
        let ns = read_ns(&self.ns);
        let t = Instant::now();
        let got = listing(&dir, self.ignore_fuse_hidden);
        stats.add("readdir", t, 0);
        let want: Vec<String> = (half * SLOTS / 2..(half + 1) * SLOTS / 2)
            .filter(|&s| ns.slots[s].is_some())
            .map(|s| format!("n{}", s % (SLOTS / 2)))
            .collect();
        if got != want {
            self.stop.store(true, Ordering::SeqCst);
            panic!(
                "readdir of {} gave {got:?}, the model has {want:?}\nlast namespace changes:\n  {}",
                dir.display(),
                ns.log.iter().cloned().collect::<Vec<_>>().join("\n  ")
            );
        }
    }

    fn op_stat(&self, rng: &mut Rng, stats: &mut Stats) {
        let Some((name, e)) = self.pick(rng, true) else { return };
        let st = lock(&e.st);
        let t = Instant::now();
        let md = st.fd.metadata();
        stats.add("fstat", t, 0);
        match md {
            Ok(md) if md.len() == st.data.len() as u64 => {}
            Ok(md) => self.fail("fstat", &name, &e, &st, format!("st_size {} != model size", md.len())),
            Err(err) => self.fail("fstat", &name, &e, &st, format!("fstat: {err}")),
        }
    }

    fn op_fsync(&self, rng: &mut Rng, stats: &mut Stats, data_only: bool) {
        let Some((name, e)) = self.pick(rng, true) else { return };
        // No file lock across the call: fsync runs concurrently with writes to the same file.
        let fd = lock(&e.st).fd.clone();
        let t = Instant::now();
        let r = if data_only { fd.sync_data() } else { fd.sync_all() };
        stats.add(if data_only { "fdatasync" } else { "fsync" }, t, 0);
        if let Err(err) = r {
            self.stop.store(true, Ordering::SeqCst);
            panic!("fsync (data_only={data_only}) of {name} (file #{}) failed: {err}", e.id);
        }
    }

    fn op_fsync_dir(&self, rng: &mut Rng, stats: &mut Stats) {
        let dir = self.root.join(if rng.below(2) == 0 { "a" } else { "b" });
        let t = Instant::now();
        let r = fsync_dir(&dir);
        stats.add("fsync_dir", t, 0);
        if let Err(err) = r {
            self.stop.store(true, Ordering::SeqCst);
            panic!("fsync of directory {} failed: {err}", dir.display());
        }
    }

    fn op_reopen(&self, rng: &mut Rng, stats: &mut Stats) {
        let ns = read_ns(&self.ns);
        let occ: Vec<usize> = (0..SLOTS).filter(|&s| ns.slots[s].is_some()).collect();
        if occ.is_empty() {
            return;
        }
        let slot = occ[rng.below(occ.len())];
        let e = ns.slots[slot].clone().unwrap();
        let path = self.path(slot);
        let name = path.display().to_string();
        let mut st = lock(&e.st);
        let trunc = rng.below(8) == 0;
        let t = Instant::now();
        match open_rw(&path, trunc) {
            Ok(f) => {
                // The old descriptor closes (flush, release) once no fsync holds it.
                st.fd = Arc::new(f);
            }
            Err(err) => self.fail("reopen", &name, &e, &st, format!("open(O_RDWR, trunc={trunc}): {err}")),
        }
        stats.add(if trunc { "open_trunc" } else { "reopen" }, t, 0);
        if trunc {
            st.data.clear();
        }
        st.note(format!("reopen by name{}", if trunc { " with O_TRUNC -> size 0" } else { "" }));
    }

    fn op_create(&self, rng: &mut Rng, stats: &mut Stats) {
        let mut ns = write_ns(&self.ns);
        let free: Vec<usize> = (0..SLOTS).filter(|&s| ns.slots[s].is_none()).collect();
        if free.is_empty() {
            return;
        }
        let slot = free[rng.below(free.len())];
        let path = self.path(slot);
        let t = Instant::now();
        let f = OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap_or_else(|err| {
            panic!(
                "create {}: {err}\nnamespace log:\n  {}",
                path.display(),
                ns.log.iter().cloned().collect::<Vec<_>>().join("\n  ")
            )
        });
        stats.add("create", t, 0);
        let big = rng.below(4) == 0;
        let e = self.new_entry(f, Vec::new(), big);
        lock(&e.st).note(format!("created as {}{}", path.display(), if big { " (big)" } else { "" }));
        ns.note(format!("create {} = file #{}", path.display(), e.id));
        ns.slots[slot] = Some(e);
    }

    /// Moves a replaced or unlinked file to the orphans; the oldest orphan is checked
    /// through its descriptor and closed.
    fn orphan(&self, ns: &mut Namespace, e: Arc<Entry>) {
        ns.orphans.push_back(e);
        if ns.orphans.len() > MAX_ORPHANS {
            let old = ns.orphans.pop_front().unwrap();
            let st = lock(&old.st);
            let got = match pread(&st.fd, 0, st.data.len() + BLOCK) {
                Ok(b) => b,
                Err(err) => self.fail("read of unlinked file", "(unlinked)", &old, &st, err.to_string()),
            };
            self.check_read(
                "whole read of an unlinked, still open file",
                "(unlinked)",
                &old,
                &st,
                0,
                st.data.len() + BLOCK,
                &got,
            );
        }
    }

    fn op_unlink(&self, rng: &mut Rng, stats: &mut Stats) {
        let mut ns = write_ns(&self.ns);
        let occ: Vec<usize> = (0..SLOTS).filter(|&s| ns.slots[s].is_some()).collect();
        if occ.len() < 5 {
            return;
        }
        let slot = occ[rng.below(occ.len())];
        let path = self.path(slot);
        let t = Instant::now();
        if let Err(err) = fs::remove_file(&path) {
            self.stop.store(true, Ordering::SeqCst);
            panic!("unlink {}: {err}", path.display());
        }
        stats.add("unlink", t, 0);
        let e = ns.slots[slot].take().unwrap();
        ns.note(format!("unlink {} (file #{})", path.display(), e.id));
        self.orphan(&mut ns, e);
    }

    fn op_rename(&self, rng: &mut Rng, stats: &mut Stats) {
        let mut ns = write_ns(&self.ns);
        let occ: Vec<usize> = (0..SLOTS).filter(|&s| ns.slots[s].is_some()).collect();
        if occ.is_empty() {
            return;
        }
        let src = occ[rng.below(occ.len())];
        let mut dst = rng.below(SLOTS - 1);
        if dst >= src {
            dst += 1;
        }
        let (sp, dp) = (self.path(src), self.path(dst));
        let dst_used = ns.slots[dst].is_some();
        let (flags, kind) = match (dst_used, if self.rename_flags { rng.below(10) } else { 5 }) {
            (true, 0..6) => (0, "rename over existing"),
            (true, 6..8) => (libc::RENAME_NOREPLACE, "RENAME_NOREPLACE onto existing"),
            (true, _) => (libc::RENAME_EXCHANGE, "RENAME_EXCHANGE"),
            (false, 0..3) => (libc::RENAME_NOREPLACE, "RENAME_NOREPLACE"),
            (false, _) => (0, "rename"),
        };
        let t = Instant::now();
        let r = renameat2(&sp, &dp, flags);
        stats.add("rename", t, 0);
        let ids = |ns: &Namespace, s: usize| ns.slots[s].as_ref().map(|e| e.id);
        let desc = format!("{kind} {} (#{:?}) -> {} (#{:?})", sp.display(), ids(&ns, src), dp.display(), ids(&ns, dst));
        let expect_eexist = flags == libc::RENAME_NOREPLACE && dst_used;
        match r {
            Err(err) if expect_eexist && err.raw_os_error() == Some(libc::EEXIST) => {
                ns.note(format!("{desc}: EEXIST as expected"));
            }
            Ok(()) if expect_eexist => {
                self.stop.store(true, Ordering::SeqCst);
                panic!("{desc} succeeded; expected EEXIST")
            }
            Err(err) => {
                self.stop.store(true, Ordering::SeqCst);
                panic!(
                    "{desc} failed: {err}\nnamespace log:\n  {}",
                    ns.log.iter().cloned().collect::<Vec<_>>().join("\n  ")
                )
            }
            Ok(()) if flags == libc::RENAME_EXCHANGE => {
                ns.slots.swap(src, dst);
                ns.note(desc);
            }
            Ok(()) => {
                let moved = ns.slots[src].take();
                if let Some(old) = std::mem::replace(&mut ns.slots[dst], moved) {
                    self.orphan(&mut ns, old);
                }
                ns.note(desc);
            }
        }
    }

    fn worker(&self, seed: u64, deadline: Instant) -> Stats {
        let _guard = StopOnPanic(&self.stop);
        let mut rng = Rng::new(seed);
        let mut stats = Stats::default();
        while Instant::now() < deadline && !self.stop.load(Ordering::SeqCst) {
            match rng.below(100) {
                0..30 => self.op_write(&mut rng, &mut stats),
                30..50 => self.op_read(&mut rng, &mut stats),
                50..54 => self.op_read_path(&mut rng, &mut stats),
                54..59 => self.op_truncate(&mut rng, &mut stats, false),
                59..61 => self.op_truncate(&mut rng, &mut stats, true),
                61..69 => self.op_rename(&mut rng, &mut stats),
                69..74 => self.op_fsync(&mut rng, &mut stats, false),
                74..76 => self.op_fsync(&mut rng, &mut stats, true),
                76..77 => self.op_fsync_dir(&mut rng, &mut stats),
                77..81 => self.op_reopen(&mut rng, &mut stats),
                81..85 => self.op_create(&mut rng, &mut stats),
                85..86 => self.op_unlink(&mut rng, &mut stats),
                86..88 => self.op_readdir(&mut rng, &mut stats),
                _ => self.op_stat(&mut rng, &mut stats),
            }
        }
        stats
    }
}

/// What a tree should hold at the end: (path, contents) of every file, and the names of
/// every directory.
#[derive(Default)]
pub struct Expected {
    pub files: Vec<(PathBuf, Vec<u8>)>,
    pub dirs: Vec<(PathBuf, Vec<String>)>,
    pub ignore_fuse_hidden: bool,
}

/// Sorted names in `dir`, without libfuse's `.fuse_hidden*` files when `ignore_fuse_hidden`.
fn listing(dir: &Path, ignore_fuse_hidden: bool) -> Vec<String> {
    let mut v = names(dir);
    if ignore_fuse_hidden {
        v.retain(|n| !n.starts_with(".fuse_hidden"));
    }
    v
}

impl Expected {
    /// Compares the tree under the mount with the model (by name, fresh opens).
    pub fn check(&self, when: &str) {
        for (dir, want) in &self.dirs {
            let got = listing(dir, self.ignore_fuse_hidden);
            assert_eq!(&got, want, "{when}: names in {} differ from the model", dir.display());
        }
        for (path, want) in &self.files {
            let got = fs::read(path).unwrap_or_else(|e| panic!("{when}: read {}: {e}", path.display()));
            assert!(got == *want, "MODEL MISMATCH {when}: {}: {}", path.display(), first_diff(&got, want));
        }
    }
}

/// Phase 1. Creates `root/a` and `root/b`, runs the threads for `cfg.model_secs`, then
/// checks every name, every file (by name and through its open descriptor) and every
/// unlinked-but-open file against the model, closes everything and returns the model.
pub fn model_phase(root: &Path, cfg: &Config, pool: &Pool) -> (PhaseReport, Expected) {
    fs::create_dir(root.join("a")).unwrap();
    fs::create_dir(root.join("b")).unwrap();
    let shared = Shared {
        root,
        ns: RwLock::new(Namespace { slots: vec![None; SLOTS], orphans: VecDeque::new(), log: VecDeque::new() }),
        pool,
        rename_flags: cfg.rename_flags,
        ignore_fuse_hidden: cfg.ignore_fuse_hidden,
        stop: AtomicBool::new(false),
        next_id: AtomicU64::new(0),
        peak_size: AtomicU64::new(0),
    };
    // Six of the eight names start as files of 0 .. 600 KiB.
    let mut rng = Rng::new(cfg.seed);
    for slot in [0, 1, 2, 4, 5, 6] {
        let len = rng.below(600 * KIB);
        let (data, _) = pool.data(&mut rng, len.min(MAX_IO));
        let path = slot_path(root, slot);
        fs::write(&path, &data).unwrap();
        let e = shared.new_entry(open_rw(&path, false).unwrap(), data, slot == 2 || slot == 6);
        write_ns(&shared.ns).slots[slot] = Some(e);
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(cfg.model_secs);
    let mut stats = Stats::default();
    thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let shared = &shared;
                let seed = cfg.seed.wrapping_add(1000 + t as u64);
                s.spawn(move || shared.worker(seed, deadline))
            })
            .collect();
        let mut panics = Vec::new();
        for h in handles {
            match h.join() {
                Ok(st) => stats.merge(&st),
                Err(p) => panics.push(p),
            }
        }
        if let Some(p) = panics.into_iter().next() {
            std::panic::resume_unwind(p);
        }
    });
    let wall = start.elapsed();

    // Live check: every name, through the open descriptors and by name.
    let mut ns = write_ns(&shared.ns);
    let mut exp = Expected { ignore_fuse_hidden: cfg.ignore_fuse_hidden, ..Expected::default() };
    for slot in 0..SLOTS {
        let path = slot_path(root, slot);
        match &ns.slots[slot] {
            None => assert!(
                fs::symlink_metadata(&path).is_err(),
                "{} exists, but the model says it was renamed away or unlinked",
                path.display()
            ),
            Some(e) => {
                let st = lock(&e.st);
                let name = path.display().to_string();
                let got = pread(&st.fd, 0, st.data.len() + BLOCK).unwrap();
                shared.check_read("final read through the descriptor", &name, e, &st, 0, st.data.len() + BLOCK, &got);
                let got = fs::read(&path).unwrap_or_else(|err| panic!("final read of {name}: {err}"));
                shared.check_read("final read by name", &name, e, &st, 0, usize::MAX / 2, &got);
                exp.files.push((path, st.data.clone()));
            }
        }
    }
    for (dir, range) in [("a", 0..SLOTS / 2), ("b", SLOTS / 2..SLOTS)] {
        let mut want: Vec<String> =
            range.filter(|&s| ns.slots[s].is_some()).map(|s| format!("n{}", s % (SLOTS / 2))).collect();
        want.sort();
        exp.dirs.push((root.join(dir), want));
    }
    for e in ns.orphans.drain(..).collect::<Vec<_>>() {
        let st = lock(&e.st);
        let got = pread(&st.fd, 0, st.data.len() + BLOCK).unwrap();
        shared.check_read(
            "final read of an unlinked, still open file",
            "(unlinked)",
            &e,
            &st,
            0,
            st.data.len() + BLOCK,
            &got,
        );
    }
    ns.slots.clear(); // closes every descriptor
    drop(ns);
    println!(
        "stress model phase: {} files created, largest file reached {:.1} MiB; at the end: {} files, sizes {:?}",
        shared.next_id.load(Ordering::Relaxed),
        shared.peak_size.load(Ordering::Relaxed) as f64 / MIB as f64,
        exp.files.len(),
        exp.files.iter().map(|(_, d)| d.len()).collect::<Vec<_>>()
    );
    exp.check("after the model phase (live)");
    (PhaseReport { phase: "model", threads: cfg.threads, wall, stats }, exp)
}

// ------------------------------------------------------------------------------ phase 2

const REC_MAGIC: &[u8; 4] = b"APND";
const REC_HEADER: usize = 24;

/// Payload of record `n` of thread `t`: a slice of the random pool at an offset derived from (t, n).
fn record_payload(pool: &Pool, t: usize, n: u64, len: usize) -> &[u8] {
    let o = ((t as u64).wrapping_mul(7919).wrapping_add(n.wrapping_mul(104_729)) % (pool.random.len() - MAX_IO) as u64)
        as usize;
    &pool.random[o..o + len]
}

fn record(pool: &Pool, t: usize, n: u64, len: usize) -> Vec<u8> {
    let mut r = Vec::with_capacity(REC_HEADER + len);
    r.extend_from_slice(REC_MAGIC);
    r.extend_from_slice(&(t as u32).to_le_bytes());
    r.extend_from_slice(&n.to_le_bytes());
    r.extend_from_slice(&(len as u64).to_le_bytes());
    r.extend_from_slice(record_payload(pool, t, n, len));
    r
}

/// Parses the O_APPEND log: each thread's records 0..counts[t], whole, in order, once.
fn check_append_log(data: &[u8], pool: &Pool, counts: &[u64]) -> Result<(), String> {
    let mut next = vec![0u64; counts.len()];
    let mut pos = 0;
    let mut recs = 0;
    while pos < data.len() {
        let h = data.get(pos..pos + REC_HEADER).ok_or(format!("truncated header at {pos} (record {recs})"))?;
        if &h[..4] != REC_MAGIC {
            return Err(format!("no record magic at byte {pos} (after {recs} whole records): {:02x?}", &h[..12]));
        }
        let t = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
        let n = u64::from_le_bytes(h[8..16].try_into().unwrap());
        let len = u64::from_le_bytes(h[16..24].try_into().unwrap()) as usize;
        if t >= counts.len() || n != next[t] || len > MAX_IO {
            return Err(format!(
                "record at byte {pos}: thread {t} number {n} len {len}; expected number {:?} next",
                next.get(t)
            ));
        }
        let body = data.get(pos + REC_HEADER..pos + REC_HEADER + len).ok_or(format!("record at {pos} cut short"))?;
        if body != record_payload(pool, t, n, len) {
            return Err(format!(
                "payload of record {n} of thread {t} at byte {pos}: {}",
                first_diff(body, record_payload(pool, t, n, len))
            ));
        }
        next[t] += 1;
        recs += 1;
        pos += REC_HEADER + len;
    }
    if next != counts {
        return Err(format!("records found per thread {next:?}, appended {counts:?}"));
    }
    Ok(())
}

/// Phase 2: `cfg.threads` threads write disjoint, unaligned stripes of `root/striped.bin`
/// with no test locks. Returns the model of the file.
pub fn stripe_phase(root: &Path, cfg: &Config, pool: &Pool) -> (PhaseReport, Expected) {
    let path = root.join("striped.bin");
    let mut rng = Rng::new(cfg.seed ^ 0x57_21be);
    let initial = pool.random[4321..4321 + STRIPED_SIZE].to_vec();
    fs::write(&path, &initial).unwrap();

    // Stripes of random width: tiny ones (many per block), medium, and block-crossing ones.
    let mut stripes: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < STRIPED_SIZE {
        let w = match rng.below(10) {
            0..3 => 1 + rng.below(512),
            3..7 => 512 + rng.below(64 * KIB),
            _ => 64 * KIB + rng.below(136 * KIB),
        };
        let end = (at + w).min(STRIPED_SIZE);
        stripes.push((at, end));
        at = end;
    }
    let shared_fd = Arc::new(open_rw(&path, false).unwrap());
    let log_path = root.join("appends.log");
    fs::write(&log_path, b"").unwrap();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(cfg.stripe_secs);
    let mut stats = Stats::default();
    let mut model = vec![0u8; STRIPED_SIZE];
    let mut counts: Vec<u64> = Vec::new();
    thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let own: Vec<(usize, usize)> =
                    stripes.iter().enumerate().filter(|(k, _)| k % cfg.threads == t).map(|(_, r)| *r).collect();
                let (path, stop, initial, log_path) = (&path, &stop, &initial, &log_path);
                let fd = if t % 2 == 1 { shared_fd.clone() } else { Arc::new(open_rw(path, false).unwrap()) };
                let seed = cfg.seed.wrapping_add(5000 + t as u64);
                s.spawn(move || {
                    let _guard = StopOnPanic(stop);
                    let mut rng = Rng::new(seed);
                    let mut local = initial.clone();
                    let mut stats = Stats::default();
                    let mut log: VecDeque<String> = VecDeque::new();
                    let appender = OpenOptions::new().append(true).open(log_path).unwrap();
                    let mut appended = 0u64;
                    let fail = |what: String, log: &VecDeque<String>| -> ! {
                        stop.store(true, Ordering::SeqCst);
                        panic!(
                            "STRIPE MISMATCH (thread {t}, {} fd): {what}\nthis thread's last operations:\n  {}",
                            if t % 2 == 1 { "shared" } else { "own" },
                            log.iter().cloned().collect::<Vec<_>>().join("\n  ")
                        )
                    };
                    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) && !own.is_empty() {
                        let (a, b) = own[rng.below(own.len())];
                        // a sub-range of the stripe, or all of it
                        let (lo, hi) = if rng.below(3) == 0 {
                            (a, b)
                        } else {
                            let lo = a + rng.below(b - a);
                            (lo, lo + 1 + rng.below(b - lo))
                        };
                        match rng.below(100) {
                            0..55 => {
                                let (buf, kind) = pool.data(&mut rng, hi - lo);
                                let t0 = Instant::now();
                                if let Err(e) = fd.write_all_at(&buf, lo as u64) {
                                    fail(format!("pwrite [{lo}, {hi}): {e}"), &log);
                                }
                                stats.add("stripe_write", t0, buf.len());
                                local[lo..hi].copy_from_slice(&buf);
                                if log.len() == 16 {
                                    log.pop_front();
                                }
                                log.push_back(format!("pwrite [{lo}, {hi}) ({kind}) of stripe [{a}, {b})"));
                            }
                            55..80 => {
                                let t0 = Instant::now();
                                let got = pread(&fd, lo as u64, hi - lo)
                                    .unwrap_or_else(|e| fail(format!("pread: {e}"), &log));
                                stats.add("stripe_read", t0, got.len());
                                if got != local[lo..hi] {
                                    fail(
                                        format!(
                                            "own range [{lo}, {hi}) of stripe [{a}, {b}): {}",
                                            first_diff(&got, &local[lo..hi])
                                        ),
                                        &log,
                                    );
                                }
                            }
                            80..88 => {
                                let len = io_len(&mut rng);
                                let rec = record(pool, t, appended, len);
                                let t0 = Instant::now();
                                // One write(2) per record: O_APPEND must place it whole at the end.
                                match (&appender).write(&rec) {
                                    Ok(n) if n == rec.len() => {}
                                    Ok(n) => fail(format!("O_APPEND write of {} bytes wrote {n}", rec.len()), &log),
                                    Err(e) => fail(format!("O_APPEND write: {e}"), &log),
                                }
                                stats.add("append", t0, rec.len());
                                appended += 1;
                            }
                            88..95 => {
                                // A read across other threads' stripes: only our own bytes in it are known.
                                let off = rng.below(STRIPED_SIZE);
                                let len = io_len(&mut rng);
                                let t0 = Instant::now();
                                let got =
                                    pread(&fd, off as u64, len).unwrap_or_else(|e| fail(format!("pread: {e}"), &log));
                                stats.add("shared_read", t0, got.len());
                                if got.len() != len.min(STRIPED_SIZE - off) {
                                    fail(
                                        format!(
                                            "pread at {off} len {len} returned {} bytes (file size {STRIPED_SIZE})",
                                            got.len()
                                        ),
                                        &log,
                                    );
                                }
                                for &(sa, sb) in &own {
                                    let (x, y) = (sa.max(off), sb.min(off + got.len()));
                                    if x < y && got[x - off..y - off] != local[x..y] {
                                        fail(
                                            format!(
                                                "own bytes [{x}, {y}) inside a read of [{off}, {}): {}",
                                                off + got.len(),
                                                first_diff(&got[x - off..y - off], &local[x..y])
                                            ),
                                            &log,
                                        );
                                    }
                                }
                            }
                            _ => {
                                let t0 = Instant::now();
                                let r = if rng.below(2) == 0 { fd.sync_all() } else { fd.sync_data() };
                                stats.add("stripe_fsync", t0, 0);
                                r.unwrap_or_else(|e| fail(format!("fsync: {e}"), &log));
                            }
                        }
                    }
                    (own, local, stats, appended)
                })
            })
            .collect();
        let mut panics = Vec::new();
        for h in handles {
            match h.join() {
                Ok((own, local, st, appended)) => {
                    counts.push(appended);
                    stats.merge(&st);
                    for (a, b) in own {
                        model[a..b].copy_from_slice(&local[a..b]);
                    }
                }
                Err(p) => panics.push(p),
            }
        }
        if let Some(p) = panics.into_iter().next() {
            std::panic::resume_unwind(p);
        }
    });
    let wall = start.elapsed();
    let got = pread(&shared_fd, 0, STRIPED_SIZE + BLOCK).unwrap();
    assert!(got == model, "STRIPE MISMATCH at the end (shared descriptor): {}", first_diff(&got, &model));
    drop(shared_fd);
    let log_data = fs::read(&log_path).unwrap();
    if let Err(e) = check_append_log(&log_data, pool, &counts) {
        panic!("O_APPEND LOG BROKEN ({} bytes, appended per thread {counts:?}): {e}", log_data.len());
    }
    let exp = Expected {
        files: vec![(path, model), (log_path, log_data)],
        dirs: Vec::new(),
        ignore_fuse_hidden: cfg.ignore_fuse_hidden,
    };
    exp.check("after the stripe phase (live)");
    println!("stress stripe phase: {} stripes over {} bytes, {} threads", stripes.len(), STRIPED_SIZE, cfg.threads);
    (PhaseReport { phase: "stripes", threads: cfg.threads, wall, stats }, exp)
}

/// Both phases in `root`, checked live; returns the reports and the expected tree (the
/// caller may remount and check it again).
pub fn run_all(root: &Path, cfg: &Config, label: &str) -> Expected {
    let pool = Pool::new(cfg.seed);
    let (r1, mut exp) = model_phase(root, cfg, &pool);
    r1.print(label);
    let (r2, exp2) = stripe_phase(root, cfg, &pool);
    r2.print(label);
    exp.files.extend(exp2.files);
    let mut top = vec!["a".to_string(), "appends.log".to_string(), "b".to_string(), "striped.bin".to_string()];
    top.sort();
    exp.dirs.push((root.to_path_buf(), top));
    exp.check("after both phases (live)");
    exp
}
