//! Crash consistency: a writer thread works on a mounted volume (creates, appends, writes
//! into the middle of blocks, truncates, renames, unlinks, unlinks while open, fsyncs of
//! files and of directories) while the test SIGKILLs the daemon at a random moment. Then:
//! `s2sfs umount` cleans the dead mount, `s2sfs fsck --json` must find no problem, the
//! volume is mounted again, and every name and every file is checked against a model of
//! what the workload did.
//!
//! The model. Every file (inode) keeps the list of its contents, one per write/truncate
//! syscall, as (length, blake3); a successful fsync/fdatasync marks the newest one durable.
//! Every name keeps the list of what it named (a file or nothing), one per create, rename
//! or unlink; a successful fsync of the directory marks the newest one durable. A syscall
//! is recorded *before* it is made, so one cut short by the crash counts as "may have
//! happened". After the crash a name must name one of its bindings from the durable one on,
//! and a file's content must equal one of its contents from the durable one on: the
//! fsync'd state or a later state the workload produced, nothing else (no torn write, no
//! mix of blocks, no rollback past an fsync). Each write is at most 64 KiB, so the kernel
//! sends it as one FUSE request, and files stay under 64 blocks (one commit chunk).
//!
//! Seeds: S2SFS_CRASH_SEED (decimal or 0x-hex) repeats a run's choices (the moment of the
//! kill still depends on timing); without it the seed comes from the clock and is printed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::harness::*;

const DIRS: [&str; 2] = ["a", "b"];
const NAMES_PER_DIR: usize = 5;
/// Largest file the workload makes: 6 blocks (a commit of it is one chunk).
const FILE_CAP: usize = 6 * BLOCK - 1000;
const MAX_WRITE: usize = 64 * KIB;

type Hash = [u8; 32];

fn h(data: &[u8]) -> Hash {
    *blake3::hash(data).as_bytes()
}

fn block_hashes(data: &[u8]) -> Vec<u64> {
    data.chunks(BLOCK).map(|c| u64::from_le_bytes(h(c)[..8].try_into().unwrap())).collect()
}

/// `3-7,9`: a sorted list of numbers as ranges.
fn ranges(v: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    if out.is_empty() { "none".into() } else { out.join(",") }
}

fn short(hash: &Hash) -> String {
    hash[..4].iter().map(|b| format!("{b:02x}")).collect()
}

struct FileM {
    cur: Vec<u8>,
    /// (length, blake3) of every state the workload gave the file, oldest first.
    versions: Vec<(usize, Hash)>,
    /// Per state: a short hash of each block, to explain a mismatch block by block.
    blocks: Vec<Vec<u64>>,
    /// Index of the oldest state that may still be seen (the last fsync'd one).
    durable: usize,
    /// Whether `durable` was set by an fsync in this run (not inherited from the last check).
    fsynced: bool,
}

struct NameM {
    /// What the name pointed at, oldest first: a file of `Model::files`, or nothing.
    hist: Vec<Option<usize>>,
    durable: usize,
    dir_fsynced: bool,
}

#[derive(Default)]
struct Model {
    files: Vec<FileM>,
    names: BTreeMap<String, NameM>,
    /// The last durability events, for the failure report.
    journal: Vec<String>,
    /// Every syscall of this run, for the failure report.
    oplog: Vec<String>,
}

impl Model {
    /// The state found on the volume: every name durable with the content it has.
    fn from_observed(observed: &BTreeMap<String, Option<Vec<u8>>>) -> Model {
        let mut m = Model::default();
        for (name, content) in observed {
            let fid = content.as_ref().map(|c| m.new_file(c.clone()));
            m.names.insert(name.clone(), NameM { hist: vec![fid], durable: 0, dir_fsynced: false });
        }
        m
    }

    fn new_file(&mut self, content: Vec<u8>) -> usize {
        let v = (content.len(), h(&content));
        let b = block_hashes(&content);
        self.files.push(FileM { cur: content, versions: vec![v], blocks: vec![b], durable: 0, fsynced: false });
        self.files.len() - 1
    }

    fn current(&self, name: &str) -> Option<usize> {
        *self.names[name].hist.last().unwrap()
    }

    fn bind(&mut self, name: &str, fid: Option<usize>) {
        self.names.get_mut(name).unwrap().hist.push(fid);
    }

    /// Applies a change to a file's content and records the new state.
    fn change(&mut self, fid: usize, f: impl FnOnce(&mut Vec<u8>)) {
        let file = &mut self.files[fid];
        f(&mut file.cur);
        let v = (file.cur.len(), h(&file.cur));
        file.versions.push(v);
        file.blocks.push(block_hashes(&file.cur));
    }

    fn fsynced(&mut self, fid: usize, name: &str, how: &str) {
        let file = &mut self.files[fid];
        file.durable = file.versions.len() - 1;
        file.fsynced = true;
        let (len, hash) = file.versions[file.durable];
        self.journal.push(format!(
            "{how} {name} (file#{fid}): state {} durable: len {len}, blake3 {}",
            file.durable,
            short(&hash)
        ));
    }

    fn dir_fsynced(&mut self, dir: &str) {
        let mut bound = Vec::new();
        for (name, n) in self.names.iter_mut().filter(|(k, _)| k.starts_with(&format!("{dir}/"))) {
            n.durable = n.hist.len() - 1;
            n.dir_fsynced = true;
            bound.push(format!("{name}={}", n.hist[n.durable].map_or("-".into(), |f| format!("file#{f}"))));
        }
        self.journal.push(format!("fsync dir {dir}: {}", bound.join(" ")));
    }

    /// Checks what a name shows after the crash; Ok gives how many fsync'd states (a dir
    /// fsync of the name, an fsync of the file) the check relied on.
    fn verify(&self, name: &str, seen: Option<&[u8]>) -> Result<usize, String> {
        let n = &self.names[name];
        let bindings = &n.hist[n.durable..];
        let mut relied = n.dir_fsynced as usize;
        let Some(bytes) = seen else {
            if bindings.contains(&None) {
                return Ok(relied);
            }
            return Err(format!(
                "{name}: MISSING, but it names {} since the directory fsync (bindings from then on: {})",
                describe_binding(bindings[0]),
                bindings.iter().map(|b| describe_binding(*b)).collect::<Vec<_>>().join(", ")
            ));
        };
        let got = h(bytes);
        for fid in bindings.iter().flatten() {
            let f = &self.files[*fid];
            if f.versions[f.durable..].iter().any(|v| v.1 == got) {
                relied += f.fsynced as usize;
                return Ok(relied);
            }
        }
        // Not allowed: say what it is, if anything known.
        let mut what = String::from("matches no state the workload produced");
        for (fid, f) in self.files.iter().enumerate() {
            if let Some(i) = f.versions.iter().position(|v| v.1 == got) {
                what = if bindings.contains(&Some(fid)) {
                    format!("ROLLBACK: equals state {i} of file#{fid}, older than its fsync'd state {}", f.durable)
                } else {
                    format!("equals state {i} of file#{fid}, which this name never durably named")
                };
                break;
            }
        }
        let allowed: Vec<String> = bindings
            .iter()
            .flatten()
            .map(|fid| {
                let f = &self.files[*fid];
                format!(
                    "file#{fid} states {}..{} (fsync'd: len {} {})",
                    f.durable,
                    f.versions.len() - 1,
                    f.versions[f.durable].0,
                    short(&f.versions[f.durable].1)
                )
            })
            .collect();
        // Block by block: which states of the files this name named hold each block.
        let seen_blocks = block_hashes(bytes);
        let mut detail = Vec::new();
        let fids: std::collections::BTreeSet<usize> = n.hist.iter().flatten().copied().collect();
        for fid in fids {
            let f = &self.files[fid];
            let same_len: Vec<usize> = (0..f.versions.len()).filter(|&i| f.versions[i].0 == bytes.len()).collect();
            let per_block: Vec<String> = seen_blocks
                .iter()
                .enumerate()
                .map(|(b, hb)| {
                    let states: Vec<usize> = (0..f.blocks.len()).filter(|&i| f.blocks[i].get(b) == Some(hb)).collect();
                    format!("block {b}: states {}", ranges(&states))
                })
                .collect();
            detail.push(format!(
                "file#{fid} ({} states, sizes {:?}): states of this size: {}; {}",
                f.versions.len(),
                f.versions.iter().map(|v| v.0).collect::<Vec<_>>(),
                ranges(&same_len),
                per_block.join("; ")
            ));
        }
        Err(format!(
            "{name}: WRONG CONTENT: {} bytes ({}), {what}; allowed: {} {}\n    {}\n    name history: {}",
            bytes.len(),
            short(&got),
            if bindings.contains(&None) { "absent or" } else { "" },
            allowed.join(" | "),
            detail.join("\n    "),
            n.hist.iter().map(|b| describe_binding(*b)).collect::<Vec<_>>().join(" -> ")
        ))
    }
}

fn describe_binding(b: Option<usize>) -> String {
    b.map_or("nothing".into(), |f| format!("file#{f}"))
}

fn all_names() -> Vec<String> {
    DIRS.iter().flat_map(|d| (0..NAMES_PER_DIR).map(move |i| format!("{d}/f{i}"))).collect()
}

/// Closes a file and reports close(2)'s error (a failed commit on flush shows up there).
fn close(f: File) -> io::Result<()> {
    let fd = f.into_raw_fd();
    // SAFETY: we own fd (just taken out of the File).
    if unsafe { libc::close(fd) } < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn fdatasync(f: &File) -> io::Result<()> {
    // SAFETY: fdatasync on a descriptor we own.
    if unsafe { libc::fdatasync(f.as_raw_fd()) } < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The writer thread's workload.
struct Writer {
    root: PathBuf,
    rng: Rng,
    m: Model,
    ops: u64,
    fsyncs: u64,
}

type Step = Result<(), String>;

fn ctx(what: String) -> impl FnOnce(io::Error) -> String {
    move |e| format!("{what}: {e} ({})", errno_name(errno_or(&e)))
}

impl Writer {
    fn p(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.rng.below(100) < percent
    }

    /// Runs until a syscall fails (the daemon is dead) or the deadline passes.
    fn run(&mut self, deadline: Instant) -> Step {
        while Instant::now() < deadline {
            self.step()?;
        }
        Ok(())
    }

    fn names_where(&self, bound: bool) -> Vec<String> {
        self.m.names.iter().filter(|(_, n)| n.hist.last().unwrap().is_some() == bound).map(|(k, _)| k.clone()).collect()
    }

    fn pick(&mut self, v: &[String]) -> Option<String> {
        if v.is_empty() { None } else { Some(v[self.rng.below(v.len())].clone()) }
    }

    fn step(&mut self) -> Step {
        let r = self.rng.below(100);
        let bound = self.names_where(true);
        let free = self.names_where(false);
        if r < 18 || bound.is_empty() {
            match self.pick(&free) {
                Some(name) => self.create(&name),
                None => self.unlink(&bound[0].clone()),
            }
        } else if r < 62 {
            let name = self.pick(&bound).unwrap();
            self.modify(&name)
        } else if r < 74 {
            let from = self.pick(&bound).unwrap();
            let all = all_names();
            let mut to = self.pick(&all).unwrap();
            if to == from {
                to = all[(all.iter().position(|n| *n == from).unwrap() + 1) % all.len()].clone();
            }
            self.rename(&from, &to)
        } else if r < 82 {
            let name = self.pick(&bound).unwrap();
            self.unlink(&name)
        } else if r < 95 {
            let dir = DIRS[self.rng.below(DIRS.len())];
            self.fsync_dir(dir)
        } else {
            let name = self.pick(&bound).unwrap();
            self.unlink_open(&name)
        }
    }

    fn log(&mut self, what: String) {
        self.m.oplog.push(what);
    }

    fn create(&mut self, name: &str) -> Step {
        let fid = self.m.new_file(Vec::new());
        self.m.bind(name, Some(fid));
        self.log(format!("create {name} = file#{fid}"));
        self.ops += 1;
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(self.p(name))
            .map_err(ctx(format!("create {name}")))?;
        let n = 1 + self.rng.below(5);
        self.data_ops(&f, fid, name, n)?;
        if self.chance(30) {
            self.fsync(&f, fid, name)?;
        }
        self.ops += 1;
        self.log(format!("close {name} file#{fid}"));
        close(f).map_err(ctx(format!("close {name}")))
    }

    fn modify(&mut self, name: &str) -> Step {
        let fid = self.m.current(name).unwrap();
        self.ops += 1;
        self.log(format!("open {name} file#{fid}"));
        let f = OpenOptions::new().read(true).write(true).open(self.p(name)).map_err(ctx(format!("open {name}")))?;
        let n = 1 + self.rng.below(6);
        self.data_ops(&f, fid, name, n)?;
        if self.chance(25) {
            self.fsync(&f, fid, name)?;
        }
        self.ops += 1;
        self.log(format!("close {name} file#{fid}"));
        close(f).map_err(ctx(format!("close {name}")))
    }

    fn unlink_open(&mut self, name: &str) -> Step {
        let fid = self.m.current(name).unwrap();
        self.ops += 1;
        let f = OpenOptions::new().read(true).write(true).open(self.p(name)).map_err(ctx(format!("open {name}")))?;
        self.m.bind(name, None);
        self.ops += 1;
        self.log(format!("unlink {name} while open (file#{fid})"));
        fs::remove_file(self.p(name)).map_err(ctx(format!("unlink open {name}")))?;
        let n = 1 + self.rng.below(3);
        self.data_ops(&f, fid, name, n)?;
        if self.chance(50) {
            self.fsync(&f, fid, name)?;
        }
        self.ops += 1;
        self.log(format!("close unlinked file#{fid}"));
        close(f).map_err(ctx(format!("close unlinked {name}")))
    }

    fn rename(&mut self, from: &str, to: &str) -> Step {
        let fid = self.m.current(from);
        self.m.bind(to, fid);
        self.m.bind(from, None);
        self.ops += 1;
        self.log(format!("rename {from} -> {to} ({})", describe_binding(fid)));
        fs::rename(self.p(from), self.p(to)).map_err(ctx(format!("rename {from} -> {to}")))
    }

    fn unlink(&mut self, name: &str) -> Step {
        let fid = self.m.current(name);
        self.m.bind(name, None);
        self.ops += 1;
        self.log(format!("unlink {name} ({})", describe_binding(fid)));
        fs::remove_file(self.p(name)).map_err(ctx(format!("unlink {name}")))
    }

    fn fsync_dir(&mut self, dir: &str) -> Step {
        self.ops += 1;
        let d = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(self.p(dir))
            .map_err(ctx(format!("open dir {dir}")))?;
        d.sync_all().map_err(ctx(format!("fsync dir {dir}")))?;
        self.fsyncs += 1;
        self.log(format!("fsync dir {dir} done"));
        self.m.dir_fsynced(dir);
        drop(d);
        Ok(())
    }

    fn fsync(&mut self, f: &File, fid: usize, name: &str) -> Step {
        self.ops += 1;
        let data_only = self.chance(30);
        if data_only {
            fdatasync(f).map_err(ctx(format!("fdatasync {name}")))?;
        } else {
            f.sync_all().map_err(ctx(format!("fsync {name}")))?;
        }
        self.fsyncs += 1;
        self.log(format!("fsync {name} file#{fid} done: state {} durable", self.m.files[fid].versions.len() - 1));
        self.m.fsynced(fid, name, if data_only { "fdatasync" } else { "fsync" });
        Ok(())
    }

    /// Bytes for a write: random, text, zeros, or a copy of another file's bytes (dedup).
    fn data(&mut self, len: usize) -> Vec<u8> {
        let seed = self.rng.next();
        match self.rng.below(10) {
            0..=3 => random_bytes(seed, len),
            4..=6 => text_bytes(seed % 1000, len),
            7 => vec![0u8; len],
            _ => {
                let donors: Vec<usize> =
                    (0..self.m.files.len()).filter(|&i| self.m.files[i].cur.len() >= len).collect();
                match donors.get(self.rng.below(donors.len().max(1))) {
                    Some(&d) => {
                        let cur = &self.m.files[d].cur;
                        let at = self.rng.below(cur.len() - len + 1);
                        cur[at..at + len].to_vec()
                    }
                    None => random_bytes(seed, len),
                }
            }
        }
    }

    fn write_len(&mut self) -> usize {
        if self.chance(50) { 1 + self.rng.below(4096) } else { 1 + self.rng.below(MAX_WRITE) }
    }

    fn data_ops(&mut self, f: &File, fid: usize, name: &str, n: usize) -> Step {
        for _ in 0..n {
            let len = self.m.files[fid].cur.len();
            let r = self.rng.below(100);
            if r < 40 {
                // Append (or, at the size cap, cut back).
                let add = self.write_len();
                if len + add > FILE_CAP {
                    let to = self.rng.below(len + 1) as u64;
                    self.truncate(f, fid, name, to)?;
                } else {
                    self.write_at(f, fid, name, len as u64, add)?;
                }
            } else if r < 80 && len > 0 {
                // Overwrite inside the file, often across a block boundary.
                let wlen = self.write_len();
                let off = if self.chance(40) && len > BLOCK {
                    let boundary = BLOCK * (1 + self.rng.below(len / BLOCK));
                    boundary.saturating_sub(self.rng.below(wlen))
                } else {
                    self.rng.below(len)
                };
                let wlen = wlen.min(FILE_CAP - off);
                self.write_at(f, fid, name, off as u64, wlen.max(1))?;
            } else if r < 92 {
                // Shrink, to a block boundary now and then.
                let to = if self.chance(30) { (len / BLOCK) * BLOCK } else { self.rng.below(len + 1) };
                self.truncate(f, fid, name, to as u64)?;
            } else {
                // Extend: a sparse tail that reads as zeros.
                let to = (len + 1 + self.rng.below(2 * BLOCK)).min(FILE_CAP);
                self.truncate(f, fid, name, to as u64)?;
            }
            if self.chance(20) {
                self.fsync(f, fid, name)?;
            }
        }
        Ok(())
    }

    fn write_at(&mut self, f: &File, fid: usize, name: &str, off: u64, len: usize) -> Step {
        let data = self.data(len);
        let o = off as usize;
        self.m.change(fid, |c| {
            if c.len() < o + data.len() {
                c.resize(o + data.len(), 0);
            }
            c[o..o + data.len()].copy_from_slice(&data);
        });
        self.ops += 1;
        let st = self.m.files[fid].versions.len() - 1;
        let size = self.m.files[fid].cur.len();
        self.log(format!("pwrite {name} file#{fid} off {off} len {len} -> state {st} size {size}"));
        let n = f.write_at(&data, off).map_err(ctx(format!("pwrite {name} {len} bytes at {off}")))?;
        if n != data.len() {
            return Err(format!("pwrite {name} {len} bytes at {off}: short write of {n} bytes"));
        }
        Ok(())
    }

    fn truncate(&mut self, f: &File, fid: usize, name: &str, to: u64) -> Step {
        self.m.change(fid, |c| c.resize(to as usize, 0));
        self.ops += 1;
        let st = self.m.files[fid].versions.len() - 1;
        self.log(format!("ftruncate {name} file#{fid} to {to} -> state {st}"));
        f.set_len(to).map_err(ctx(format!("ftruncate {name} to {to}")))
    }
}

/// What one crash iteration found.
struct Outcome {
    ops: u64,
    fsyncs: u64,
    states_checked: usize,
    failures: Vec<String>,
    observed: BTreeMap<String, Option<Vec<u8>>>,
    /// Tries of `s2sfs umount` on the dead mount that answered "busy" first.
    busy: usize,
}

/// One crash point: the workload runs on the mounted volume, the daemon is killed after
/// `delay`, and everything is checked after fsck and a remount (left mounted).
fn crash_once(vol: &Vol, model: Model, seed: u64, delay: Duration) -> Outcome {
    let root = vol.path("w");
    let pids = vol.pids();
    assert!(!pids.is_empty(), "no daemon for {}", vol.mnt.display());
    let killed = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let k = killed.clone();
    std::thread::Builder::new()
        .name("crash-writer".into())
        .spawn(move || {
            let mut w = Writer { root, rng: Rng::new(seed), m: model, ops: 0, fsyncs: 0 };
            let r = w.run(Instant::now() + delay + Duration::from_secs(10));
            // An error before the kill is a real failure; after it, the crash.
            let r = match r {
                Err(e) if !k.load(Ordering::SeqCst) => Err(e),
                _ => Ok(()),
            };
            let _ = tx.send((w, r));
        })
        .unwrap();
    std::thread::sleep(delay);
    killed.store(true, Ordering::SeqCst);
    kill9(&pids);
    let (w, result) = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
        panic!("HANG: the writer did not stop within 60 s of the daemon's SIGKILL (seed {seed:#x})")
    });
    let mut failures = Vec::new();
    if let Err(e) = result {
        failures.push(format!("workload error before the crash: {e}"));
    }
    let busy = match vol.clean_dead_mount() {
        Ok(n) => n,
        Err(e) => {
            failures.push(e);
            0
        }
    };
    let panics = vol.panics();
    if !panics.is_empty() {
        failures.push(format!("daemon panicked: {}", panics.join(" | ")));
    }
    let f = vol.fsck(false);
    if f.code != 0 || !f.problems().is_empty() {
        failures.push(format!("fsck after the crash is not clean: {}", f.describe()));
    }
    vol.mount();
    let m = w.m;
    let mut observed = BTreeMap::new();
    let mut states_checked = 0;
    for dir in DIRS {
        let listed = match list_timed(&vol.path(&format!("w/{dir}"))) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("listing w/{dir} after the crash: {e}"));
                continue;
            }
        };
        for n in &listed {
            if !m.names.contains_key(&format!("{dir}/{n}")) {
                failures.push(format!("{dir}/{n}: a name the workload never made"));
            }
        }
        for i in 0..NAMES_PER_DIR {
            let name = format!("{dir}/f{i}");
            let seen = if listed.contains(&format!("f{i}")) {
                match read_timed(&vol.path(&format!("w/{name}"))) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        failures.push(format!("{name}: read after the crash failed: {e}"));
                        continue;
                    }
                }
            } else {
                None
            };
            match m.verify(&name, seen.as_deref()) {
                Ok(n) => states_checked += n,
                Err(e) => failures.push(e),
            }
            observed.insert(name, seen);
        }
    }
    if !failures.is_empty() {
        let tail = m.journal.len().saturating_sub(25);
        failures.push(format!("last durability events:\n    {}", m.journal[tail..].join("\n    ")));
        let tail = m.oplog.len().saturating_sub(120);
        failures.push(format!("last syscalls (recorded before each call):\n    {}", m.oplog[tail..].join("\n    ")));
    }
    Outcome { ops: w.ops, fsyncs: w.fsyncs, states_checked, failures, observed, busy }
}

/// `iterations` crash points on one volume (each recovery is the next one's start).
fn crash_campaign(label: &str, iterations: usize) {
    let seed = seed_from_env("S2SFS_CRASH_SEED");
    summary(&format!(
        "{label}: seed {seed:#x} (S2SFS_CRASH_SEED={seed:#x} repeats the choices), {iterations} crash points"
    ));
    let vol = Vol::new("crash", &[]);
    vol.mount();
    for d in ["w", "w/a", "w/b"] {
        fs::create_dir(vol.path(d)).unwrap();
    }
    for d in ["", "w"] {
        File::open(vol.path(d)).unwrap().sync_all().unwrap();
    }
    let mut model = Model::from_observed(&all_names().into_iter().map(|n| (n, None)).collect());
    let mut rng = Rng::new(seed);
    let (mut ops, mut fsyncs, mut checked, mut survived) = (0u64, 0u64, 0usize, 0usize);
    let (mut largest, mut multi_block, mut busy) = (0usize, 0usize, 0usize);
    let mut failures: Vec<String> = Vec::new();
    let start = Instant::now();
    for it in 0..iterations {
        let it_seed = rng.next();
        // Mostly early (short runs, many crash points), sometimes past the 1 s metadata flush.
        let delay =
            Duration::from_millis(if rng.below(4) == 0 { 300 + rng.below(1500) } else { 20 + rng.below(600) } as u64);
        let out = crash_once(&vol, model, it_seed, delay);
        ops += out.ops;
        fsyncs += out.fsyncs;
        checked += out.states_checked;
        busy += out.busy;
        if out.failures.is_empty() {
            survived += 1;
        } else {
            let msg = format!(
                "crash point {it} (iteration seed {it_seed:#x}, kill after {delay:?}, {} ops, {} fsyncs):\n  {}",
                out.ops,
                out.fsyncs,
                out.failures.join("\n  ")
            );
            eprintln!("{msg}");
            failures.push(msg);
        }
        for c in out.observed.values().flatten() {
            largest = largest.max(c.len());
            multi_block += (c.len() > BLOCK) as usize;
        }
        model = Model::from_observed(&out.observed);
    }
    vol.umount();
    let f = vol.fsck(false);
    if f.code != 0 {
        failures.push(format!("fsck after the last clean unmount: {}", f.describe()));
    }
    summary(&format!(
        "{label}: {survived}/{iterations} crash points survived, {checked} fsync'd states checked \
         ({ops} syscalls, {fsyncs} fsyncs; {multi_block} multi-block files checked, largest {} KiB; \
         {busy} busy retries of the dead-mount umount; seed {seed:#x}; {:.1} s)",
        largest / KIB,
        start.elapsed().as_secs_f64()
    ));
    assert!(
        failures.is_empty(),
        "{} of {iterations} crash points failed (seed {seed:#x}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// 20 crash points at random moments of a random workload (about 30 s).
#[test]
fn crash_points_keep_every_fsynced_state() {
    crash_campaign("crash", 20);
}

/// The long run for release checks: S2SFS_CRASH_ITERATIONS crash points (default 500):
/// `S2SFS_CRASH_ITERATIONS=500 cargo test --release --test reliability -- --ignored crash_points_long --nocapture`
#[test]
#[ignore = "long: run for a release (S2SFS_CRASH_ITERATIONS, default 500)"]
fn crash_points_long() {
    let n = std::env::var("S2SFS_CRASH_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(500);
    crash_campaign("crash-long", n);
}

/// The daemon is killed while `s2sfs umount` has it committing and compacting (packs with
/// dead frames are rewritten at unmount): the store must stay consistent and every
/// fsync'd byte readable, whatever the moment.
#[test]
fn kill_during_unmount_compaction() {
    let seed = seed_from_env("S2SFS_CRASH_SEED");
    let mut rng = Rng::new(seed ^ 0xc0_4ac7);
    let vol = Vol::new("compact-kill", &[]);
    vol.mount();
    let mut big = random_bytes(seed, 12 * MIB);
    let text = text_bytes(7, 3 * MIB);
    fs::write(vol.path("text"), &text).unwrap();
    let f = File::create(vol.path("big")).unwrap();
    f.write_all_at(&big, 0).unwrap();
    f.sync_all().unwrap();
    drop(f);
    // Round 0 measures a clean unmount with compaction; the others kill within that time.
    let rounds = 8;
    let mut clean_unmount = Duration::ZERO;
    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut failed_rounds = std::collections::BTreeSet::new();
    for round in 0..=rounds {
        let failures_before = failures.len();
        // Dead data: overwrite half of the big file with new random bytes, durably.
        let off = rng.below(6 * MIB);
        let fresh = random_bytes(rng.next(), 6 * MIB);
        big[off..off + fresh.len()].copy_from_slice(&fresh);
        let f = OpenOptions::new().write(true).open(vol.path("big")).unwrap();
        f.write_all_at(&fresh, off as u64).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let packs_before = packs(&vol.store);
        let pids = vol.pids();
        let t0 = Instant::now();
        let mut umount = Command::new(BIN)
            .arg("umount")
            .arg(&vol.mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if round == 0 {
            let st = umount.wait().unwrap();
            clean_unmount = t0.elapsed();
            assert!(st.success(), "clean unmount failed");
            assert!(packs(&vol.store) != packs_before, "unmount did not compact: packs {:?}", packs(&vol.store));
        } else {
            let max = (clean_unmount.as_micros() as usize * 12 / 10).max(1000);
            let delay = Duration::from_micros(rng.below(max) as u64);
            while t0.elapsed() < delay {
                std::hint::spin_loop();
            }
            let seen = packs(&vol.store);
            let phase = if seen == packs_before {
                "before compaction"
            } else if seen.len() > packs_before.len() || seen.iter().any(|p| packs_before.contains(p)) {
                "during compaction"
            } else {
                "after compaction"
            };
            kill9(&pids);
            *phases.entry(phase).or_default() += 1;
            let waited = timed("s2sfs umount after the daemon was killed", CLI_TIMEOUT, move || umount.wait());
            let _ = waited;
            if let Err(e) = vol.clean_dead_mount() {
                failures.push(format!("round {round}: {e}"));
            }
            let f = vol.fsck(false);
            if f.code != 0 {
                failures.push(format!(
                    "round {round} (killed {delay:?} into the unmount, {phase}): fsck: {}",
                    f.describe()
                ));
            }
        }
        let out = vol.try_mount();
        if !out.status.success() {
            failures.push(format!("round {round}: mount after the kill failed: {}", out.describe()));
            break;
        }
        for (name, want) in [("big", &big), ("text", &text)] {
            match read_timed(&vol.path(name)) {
                Ok(got) if got == *want => {}
                Ok(got) => failures.push(format!(
                    "round {round}: {name}: WRONG CONTENT ({} bytes, want {})",
                    got.len(),
                    want.len()
                )),
                Err(e) => failures.push(format!("round {round}: {name}: {e}")),
            }
        }
        if !vol.panics().is_empty() {
            failures.push(format!("round {round}: daemon panicked: {:?}", vol.panics()));
        }
        if failures.len() > failures_before {
            failed_rounds.insert(round);
        }
    }
    vol.umount();
    let f = vol.fsck(false);
    if f.code != 0 {
        failures.push(format!("final fsck: {}", f.describe()));
    }
    summary(&format!(
        "compaction-kill: {}/{rounds} kills during unmount survived (clean unmount {:.0} ms; kills {}; seed {seed:#x})",
        rounds - failed_rounds.iter().filter(|&&r| r > 0).count(),
        clean_unmount.as_secs_f64() * 1000.0,
        phases.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The checker itself (no mount): it accepts the fsync'd state and later ones, and rejects
/// a rollback past an fsync, a torn state, and a name lost after its directory's fsync.
#[test]
fn crash_checker_rejects_rollbacks_and_torn_states() {
    let mut m = Model::from_observed(&all_names().into_iter().map(|n| (n, None)).collect());
    let fid = m.new_file(Vec::new());
    m.bind("a/f0", Some(fid));
    m.change(fid, |c| c.extend_from_slice(b"one"));
    m.fsynced(fid, "a/f0", "fsync");
    m.change(fid, |c| c.extend_from_slice(b" two"));
    // Before the directory fsync the name may be missing; the content is "one" or later.
    assert!(m.verify("a/f0", None).is_ok());
    assert!(m.verify("a/f0", Some(b"one")).is_ok());
    assert!(m.verify("a/f0", Some(b"one two")).is_ok());
    assert!(m.verify("a/f0", Some(b"")).unwrap_err().contains("ROLLBACK"), "the state before the fsync");
    assert!(m.verify("a/f0", Some(b"one tw")).unwrap_err().contains("WRONG CONTENT"), "a torn write");
    m.dir_fsynced("a");
    assert!(m.verify("a/f0", None).unwrap_err().contains("MISSING"));
    // A rename after the directory fsync: the old name may still be there, or gone.
    m.bind("b/f1", Some(fid));
    m.bind("a/f0", None);
    assert!(m.verify("a/f0", None).is_ok());
    assert!(m.verify("a/f0", Some(b"one two")).is_ok());
    assert!(m.verify("b/f1", None).is_ok());
    assert!(m.verify("b/f1", Some(b"one")).is_ok());
    m.dir_fsynced("b");
    assert!(m.verify("b/f1", None).is_err());
    assert!(m.verify("b/f2", Some(b"one")).is_err(), "a name that never named the file");
}
