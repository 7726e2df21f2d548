//! Reference-model tests: random operation sequences run against the real `Volume` (no FUSE)
//! and against a plain in-memory model of a POSIX tree; every result, every errno and, at the
//! end, the whole tree must agree. In the spirit of mountpoint-s3's `tests/reftests`.
//!
//! The harness plays the kernel's part: it resolves paths with `lookup` one component at a
//! time and never sends what the VFS would refuse before reaching a filesystem (rename of a
//! directory into itself, rename between two names of one inode, link of a directory).
//! Everything else, the error cases included, goes to the volume.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use s2sfs::volume::{Attr, Caller, DirEntry, FileKind, RenameFlags, ROOT_INO, SetAttr};
use s2sfs::{Error, Volume, VolumeOptions};

const NAMES: [&str; 3] = ["a", "b", "c"];
const TARGETS: [&str; 3] = ["a", "../b/c", "/elsewhere/entirely"];
const ROOT: Caller = Caller { uid: 0, gid: 0 };

// ------------------------------------------------------------------------------ operations

/// A path as indices into NAMES: [0, 2] is "/a/c". Generated operations may instead pick
/// among what exists when they run (`Pick`, `PickIn`), so that most of them find a target;
/// `step` turns those into plain paths first.
#[derive(Clone, PartialEq, Eq)]
enum P {
    Path(Vec<u8>),
    /// The n-th existing entry of that kind (any kind for `None`).
    Pick(u8, Option<FileKind>),
    /// Name `name` inside the n-th existing directory (the root included).
    PickIn(u8, u8),
}

impl std::ops::Deref for P {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            P::Path(v) => v,
            other => panic!("unresolved path {other:?}"),
        }
    }
}

impl std::fmt::Debug for P {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            P::Path(v) => write!(f, "p(\"{}\")", show(v)),
            P::Pick(n, k) => write!(f, "Pick({n}, {k:?})"),
            P::PickIn(n, name) => write!(f, "PickIn({n}, {name})"),
        }
    }
}

impl P {
    fn concrete(&self, model: &Model) -> P {
        let all = model.all_paths();
        match self {
            P::Path(_) => self.clone(),
            P::Pick(n, kind) => {
                let of_kind: Vec<&Vec<u8>> =
                    all.iter().filter(|(p, k)| !p.is_empty() && kind.is_none_or(|want| *k == want)).map(|(p, _)| p).collect();
                if of_kind.is_empty() {
                    P::Path(vec![n % NAMES.len() as u8])
                } else {
                    P::Path(of_kind[*n as usize % of_kind.len()].clone())
                }
            }
            P::PickIn(n, name) => {
                let dirs: Vec<&Vec<u8>> = all.iter().filter(|(_, k)| *k == FileKind::Directory).map(|(p, _)| p).collect();
                let mut p = dirs[*n as usize % dirs.len()].clone();
                p.push(*name);
                P::Path(p)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Zeros,
    /// Pseudo-random bytes that depend on the seed and the absolute file offset: equal seeds
    /// at equal offsets give equal blocks (dedup), and few seeds make that common.
    Random(u8),
    /// Compressible text.
    Text(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RenameMode {
    Plain,
    NoReplace,
    Exchange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// `create` (O_CREAT|O_EXCL) when `via_create`, else `mknod(S_IFREG)`.
    Create { path: P, via_create: bool },
    Mkdir { path: P },
    Symlink { path: P, target: u8 },
    /// Opens, writes, flushes unless `keep_dirty`, releases.
    Write { path: P, offset: u32, len: u32, fill: Fill, keep_dirty: bool },
    Read { path: P, offset: u32, len: u32 },
    Truncate { path: P, size: u32 },
    Rename { from: P, to: P, mode: RenameMode },
    Link { from: P, to: P },
    Unlink { path: P },
    Rmdir { path: P },
    Fsync { path: P, datasync: bool },
    ListDir { path: P },
    Remount,
}

fn path_strategy() -> impl Strategy<Value = P> {
    // Mostly short paths, so that most operations find what they name.
    let n = NAMES.len() as u8;
    prop_oneof![
        6 => prop::collection::vec(0u8..n, 1..=1),
        3 => prop::collection::vec(0u8..n, 2..=2),
        1 => prop::collection::vec(0u8..n, 3..=3),
    ]
    .prop_map(P::Path)
}

/// Something that exists, mostly (of `kind` when given).
fn existing(kind: Option<FileKind>) -> impl Strategy<Value = P> {
    prop_oneof![1 => path_strategy(), 3 => any::<u8>().prop_map(move |n| P::Pick(n, kind))]
}

/// A name in an existing directory, mostly.
fn new_name() -> impl Strategy<Value = P> {
    prop_oneof![1 => path_strategy(), 2 => (any::<u8>(), 0u8..NAMES.len() as u8).prop_map(|(n, c)| P::PickIn(n, c))]
}

fn fill_strategy() -> impl Strategy<Value = Fill> {
    prop_oneof![
        1 => Just(Fill::Zeros),
        3 => (0u8..4).prop_map(Fill::Random),
        2 => (0u8..4).prop_map(Fill::Text),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    const FILE: Option<FileKind> = Some(FileKind::RegularFile);
    const DIR: Option<FileKind> = Some(FileKind::Directory);
    prop_oneof![
        3 => (new_name(), any::<bool>()).prop_map(|(path, via_create)| Op::Create { path, via_create }),
        3 => new_name().prop_map(|path| Op::Mkdir { path }),
        1 => (new_name(), 0u8..TARGETS.len() as u8).prop_map(|(path, target)| Op::Symlink { path, target }),
        5 => (existing(FILE), 0u32..30_000, 1u32..12_000, fill_strategy(), prop::bool::weighted(0.3))
            .prop_map(|(path, offset, len, fill, keep_dirty)| Op::Write { path, offset, len, fill, keep_dirty }),
        3 => (existing(FILE), 0u32..40_000, 0u32..20_000).prop_map(|(path, offset, len)| Op::Read { path, offset, len }),
        2 => (existing(FILE), 0u32..40_000).prop_map(|(path, size)| Op::Truncate { path, size }),
        3 => (existing(None), prop_oneof![new_name(), existing(None)], prop_oneof![
                3 => Just(RenameMode::Plain),
                1 => Just(RenameMode::NoReplace),
                1 => Just(RenameMode::Exchange),
            ])
            .prop_map(|(from, to, mode)| Op::Rename { from, to, mode }),
        2 => (existing(None), new_name()).prop_map(|(from, to)| Op::Link { from, to }),
        2 => existing(None).prop_map(|path| Op::Unlink { path }),
        2 => existing(DIR).prop_map(|path| Op::Rmdir { path }),
        1 => (existing(FILE), any::<bool>()).prop_map(|(path, datasync)| Op::Fsync { path, datasync }),
        1 => existing(DIR).prop_map(|path| Op::ListDir { path }),
        1 => Just(Op::Remount),
    ]
}

impl Op {
    /// The same operation with every path spelled out against the model's current tree.
    fn concrete(&self, m: &Model) -> Op {
        let mut op = self.clone();
        match &mut op {
            Op::Create { path, .. }
            | Op::Mkdir { path }
            | Op::Symlink { path, .. }
            | Op::Write { path, .. }
            | Op::Read { path, .. }
            | Op::Truncate { path, .. }
            | Op::Unlink { path }
            | Op::Rmdir { path }
            | Op::Fsync { path, .. }
            | Op::ListDir { path } => *path = path.concrete(m),
            Op::Rename { from, to, .. } | Op::Link { from, to } => {
                *from = from.concrete(m);
                *to = to.concrete(m);
            }
            Op::Remount => {}
        }
        op
    }
}

fn fill_bytes(fill: Fill, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let at = offset + i;
            match fill {
                Fill::Zeros => 0,
                Fill::Random(seed) => {
                    let x = (at ^ ((seed as u64) << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    (x >> 56) as u8
                }
                Fill::Text(seed) => b"the quick brown fox jumps over the lazy dog "[(at as usize + seed as usize) % 44],
            }
        })
        .collect()
}

fn name(i: u8) -> &'static OsStr {
    OsStr::new(NAMES[i as usize])
}

fn show(p: &[u8]) -> String {
    p.iter().map(|i| format!("/{}", NAMES[*i as usize])).collect()
}

// ------------------------------------------------------------------------------- the model

type MIno = usize;

#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<&'static str, MIno>),
    Symlink(&'static str),
}

#[derive(Debug, Clone)]
struct Model {
    nodes: HashMap<MIno, Node>,
    /// Links of non-directories.
    nlink: HashMap<MIno, u32>,
    next: MIno,
}

/// What an operation did: failed with an errno, was not sent (the kernel refuses it first),
/// or succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Err(i32),
    Skipped,
    Done,
}

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EINVAL => "EINVAL",
        libc::EIO => "EIO",
        libc::EPERM => "EPERM",
        _ => "errno",
    }
}

impl Model {
    fn new() -> Model {
        let mut nodes = HashMap::new();
        nodes.insert(0, Node::Dir(BTreeMap::new()));
        Model { nodes, nlink: HashMap::new(), next: 1 }
    }

    /// Every path in the tree with its kind, the root ([]) first, in a stable order.
    fn all_paths(&self) -> Vec<(Vec<u8>, FileKind)> {
        let mut out = vec![(Vec::new(), FileKind::Directory)];
        let mut i = 0;
        while i < out.len() {
            let (path, kind) = out[i].clone();
            if kind == FileKind::Directory {
                let m = self.lookup_or_root(&path);
                for (name, &child) in self.children(m) {
                    let mut p = path.clone();
                    p.push(NAMES.iter().position(|n| n == name).unwrap() as u8);
                    out.push((p, self.kind(child)));
                }
            }
            i += 1;
        }
        out
    }

    fn lookup_or_root(&self, path: &[u8]) -> MIno {
        if path.is_empty() { 0 } else { self.lookup(path).unwrap() }
    }

    fn kind(&self, m: MIno) -> FileKind {
        match self.nodes[&m] {
            Node::File(_) => FileKind::RegularFile,
            Node::Dir(_) => FileKind::Directory,
            Node::Symlink(_) => FileKind::Symlink,
        }
    }

    fn children(&self, m: MIno) -> &BTreeMap<&'static str, MIno> {
        match &self.nodes[&m] {
            Node::Dir(c) => c,
            _ => panic!("not a dir"),
        }
    }

    fn children_mut(&mut self, m: MIno) -> &mut BTreeMap<&'static str, MIno> {
        match self.nodes.get_mut(&m) {
            Some(Node::Dir(c)) => c,
            _ => panic!("not a dir"),
        }
    }

    /// The directory that holds the last component.
    fn parent_of(&self, path: &[u8]) -> Result<MIno, i32> {
        let mut cur = 0;
        for &c in &path[..path.len() - 1] {
            let child = *self.children(cur).get(NAMES[c as usize]).ok_or(libc::ENOENT)?;
            if self.kind(child) != FileKind::Directory {
                return Err(libc::ENOTDIR);
            }
            cur = child;
        }
        Ok(cur)
    }

    fn lookup(&self, path: &[u8]) -> Result<MIno, i32> {
        let p = self.parent_of(path)?;
        self.children(p).get(NAMES[*path.last().unwrap() as usize]).copied().ok_or(libc::ENOENT)
    }

    fn add(&mut self, parent: MIno, n: u8, node: Node) -> MIno {
        let m = self.next;
        self.next += 1;
        if !matches!(node, Node::Dir(_)) {
            self.nlink.insert(m, 1);
        }
        self.nodes.insert(m, node);
        self.children_mut(parent).insert(NAMES[n as usize], m);
        m
    }

    /// Drops one name of `m` (already removed from its directory).
    fn drop_link(&mut self, m: MIno) {
        if self.kind(m) == FileKind::Directory {
            self.nodes.remove(&m);
            return;
        }
        let n = self.nlink.get_mut(&m).unwrap();
        *n -= 1;
        if *n == 0 {
            self.nlink.remove(&m);
            self.nodes.remove(&m);
        }
    }

    fn file(&mut self, m: MIno) -> &mut Vec<u8> {
        match self.nodes.get_mut(&m) {
            Some(Node::File(d)) => d,
            _ => panic!("not a file"),
        }
    }

    /// Is `a` a proper prefix of `b` (b lies inside a)?
    fn inside(a: &[u8], b: &[u8]) -> bool {
        b.len() > a.len() && b.starts_with(a)
    }

    fn create(&mut self, path: &[u8], node: Node) -> Outcome {
        let p = match self.parent_of(path) {
            Ok(p) => p,
            Err(e) => return Outcome::Err(e),
        };
        let n = *path.last().unwrap();
        if self.children(p).contains_key(NAMES[n as usize]) {
            return Outcome::Err(libc::EEXIST);
        }
        self.add(p, n, node);
        Outcome::Done
    }

    fn unlink(&mut self, path: &[u8], dir: bool) -> Outcome {
        let p = match self.parent_of(path) {
            Ok(p) => p,
            Err(e) => return Outcome::Err(e),
        };
        let n = NAMES[*path.last().unwrap() as usize];
        let Some(&m) = self.children(p).get(n) else { return Outcome::Err(libc::ENOENT) };
        let is_dir = self.kind(m) == FileKind::Directory;
        if dir && !is_dir {
            return Outcome::Err(libc::ENOTDIR);
        }
        if !dir && is_dir {
            return Outcome::Err(libc::EISDIR);
        }
        if dir && !self.children(m).is_empty() {
            return Outcome::Err(libc::ENOTEMPTY);
        }
        self.children_mut(p).remove(n);
        self.drop_link(m);
        Outcome::Done
    }

    fn link(&mut self, from: &[u8], to: &[u8]) -> Outcome {
        let src = match self.lookup(from) {
            Ok(m) => m,
            Err(e) => return Outcome::Err(e),
        };
        let dp = match self.parent_of(to) {
            Ok(p) => p,
            Err(e) => return Outcome::Err(e),
        };
        if self.kind(src) == FileKind::Directory {
            return Outcome::Skipped; // EPERM from the VFS
        }
        let n = NAMES[*to.last().unwrap() as usize];
        if self.children(dp).contains_key(n) {
            return Outcome::Err(libc::EEXIST);
        }
        self.children_mut(dp).insert(n, src);
        *self.nlink.get_mut(&src).unwrap() += 1;
        Outcome::Done
    }

    fn rename(&mut self, from: &[u8], to: &[u8], mode: RenameMode) -> Outcome {
        let sp = match self.parent_of(from) {
            Ok(p) => p,
            Err(e) => return Outcome::Err(e),
        };
        let dp = match self.parent_of(to) {
            Ok(p) => p,
            Err(e) => return Outcome::Err(e),
        };
        let (sn, dn) = (NAMES[*from.last().unwrap() as usize], NAMES[*to.last().unwrap() as usize]);
        let Some(&src) = self.children(sp).get(sn) else { return Outcome::Err(libc::ENOENT) };
        let dst = self.children(dp).get(dn).copied();
        let src_dir = self.kind(src) == FileKind::Directory;
        let dst_dir = dst.is_some_and(|d| self.kind(d) == FileKind::Directory);
        // The VFS answers these itself, whatever the flags: a directory moved into its own
        // subtree (EINVAL, or ENOENT for RENAME_EXCHANGE to a missing name), or over one of
        // its ancestors (ENOTEMPTY / EINVAL).
        if (src_dir && Self::inside(from, to)) || (dst_dir && Self::inside(to, from)) {
            return Outcome::Skipped;
        }
        if mode == RenameMode::NoReplace && dst.is_some() {
            return Outcome::Err(libc::EEXIST);
        }
        if mode == RenameMode::Exchange && dst.is_none() {
            return Outcome::Err(libc::ENOENT);
        }
        // Two names of one inode: the VFS returns success without asking the filesystem.
        if dst == Some(src) {
            return Outcome::Skipped;
        }
        if mode == RenameMode::Exchange {
            let d = dst.unwrap();
            self.children_mut(sp).insert(sn, d);
            self.children_mut(dp).insert(dn, src);
            return Outcome::Done;
        }
        if let Some(d) = dst {
            if src_dir && !dst_dir {
                return Outcome::Err(libc::ENOTDIR);
            }
            if !src_dir && dst_dir {
                return Outcome::Err(libc::EISDIR);
            }
            if dst_dir && !self.children(d).is_empty() {
                return Outcome::Err(libc::ENOTEMPTY);
            }
        }
        self.children_mut(sp).remove(sn);
        if let Some(d) = self.children_mut(dp).insert(dn, src) {
            self.drop_link(d);
        }
        Outcome::Done
    }
}

// ----------------------------------------------------------------------------- the volume

struct Real {
    dir: tempfile::TempDir,
    opts: VolumeOptions,
    vol: Option<Volume>,
}

fn e(err: Error) -> i32 {
    err.errno()
}

/// Turns an unexpected volume error into a test failure that names the call.
fn ok<T>(r: s2sfs::Result<T>, what: &str) -> Result<T, TestCaseError> {
    r.map_err(|err| TestCaseError::fail(format!("{what}: unexpected error {err} (errno {})", err.errno())))
}

impl Real {
    fn new(opts: VolumeOptions) -> Real {
        let dir = tempfile::Builder::new().prefix("s2sfs-refmodel-").tempdir_in(std::env::temp_dir()).unwrap();
        let vol = Volume::open(dir.path(), opts.clone()).expect("Volume::open on an empty directory");
        Real { dir, opts, vol: Some(vol) }
    }

    fn vol(&self) -> &Volume {
        self.vol.as_ref().unwrap()
    }

    fn remount(&mut self) -> Result<(), TestCaseError> {
        let vol = self.vol.take().unwrap();
        ok(vol.shutdown(), "shutdown")?;
        drop(vol);
        self.vol = Some(ok(Volume::open(self.dir.path(), self.opts.clone()), "Volume::open again")?);
        Ok(())
    }

    /// Walks to the directory holding the last component, as the kernel does: lookup, then
    /// ENOTDIR for anything that is not a directory.
    fn parent_of(&self, path: &[u8]) -> Result<u64, i32> {
        let mut cur = ROOT_INO;
        for &c in &path[..path.len() - 1] {
            let a = self.vol().lookup(cur, name(c)).map_err(e)?;
            if a.kind != FileKind::Directory {
                return Err(libc::ENOTDIR);
            }
            cur = a.ino;
        }
        Ok(cur)
    }

    fn lookup(&self, path: &[u8]) -> Result<Attr, i32> {
        let p = self.parent_of(path)?;
        self.vol().lookup(p, name(*path.last().unwrap())).map_err(e)
    }

    fn readdir_all(&self, ino: u64, page: usize) -> Result<Vec<DirEntry>, TestCaseError> {
        let mut out: Vec<DirEntry> = Vec::new();
        let mut offset = 0;
        loop {
            let batch = ok(self.vol().readdir(ino, offset, page), "readdir")?;
            prop_assert!(batch.len() <= page, "readdir returned {} entries, max {page}", batch.len());
            let Some(last) = batch.last() else { break };
            offset = last.offset;
            out.extend(batch);
            prop_assert!(out.len() < 1000, "readdir of inode {ino} does not end: {out:?}");
        }
        Ok(out)
    }

    fn read_all(&self, ino: u64, size: u64) -> Result<Vec<u8>, TestCaseError> {
        let fh = ok(self.vol().open_file(ino, libc::O_RDONLY), "open_file")?;
        let mut data = Vec::new();
        loop {
            let chunk = ok(self.vol().read(ino, data.len() as u64, 7001), "read")?;
            if chunk.is_empty() {
                break;
            }
            data.extend(chunk);
            prop_assert!(data.len() as u64 <= size, "read past the size {size}");
        }
        ok(self.vol().release(ino, fh), "release")?;
        Ok(data)
    }
}

fn out<T>(r: Result<T, i32>) -> Outcome {
    match r {
        Ok(_) => Outcome::Done,
        Err(e) => Outcome::Err(e),
    }
}

/// Resolves `path` on both sides for an operation on an existing inode; agrees on errors
/// and kinds. Returns the model inode and the volume's attributes.
fn resolve(model: &Model, real: &Real, path: &[u8]) -> Result<Option<(MIno, Attr)>, TestCaseError> {
    let m = model.lookup(path);
    let r = real.lookup(path);
    match (m, r) {
        (Ok(m), Ok(a)) => {
            prop_assert_eq!(a.kind, model.kind(m), "kind of {}", show(path));
            Ok(Some((m, a)))
        }
        (Err(me), Err(re)) => {
            prop_assert_eq!(
                re,
                me,
                "lookup {}: volume says {}, model says {}",
                show(path),
                errno_name(re),
                errno_name(me)
            );
            Ok(None)
        }
        (m, r) => Err(TestCaseError::fail(format!("lookup {}: model {m:?}, volume {r:?}", show(path)))),
    }
}

fn step(model: &mut Model, real: &mut Real, op: &Op) -> Result<(), TestCaseError> {
    let op = &op.concrete(model);
    let (want, got) = match op {
        Op::Create { path, via_create } => {
            let want = model.create(path, Node::File(Vec::new()));
            let got = real.parent_of(path).and_then(|p| {
                let n = name(*path.last().unwrap());
                let mode = libc::S_IFREG | 0o644;
                if *via_create {
                    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
                    let (a, fh) = real.vol().create(ROOT, p, n, mode, 0o022, flags).map_err(e)?;
                    real.vol().release(a.ino, fh).map_err(e)?;
                    Ok(a)
                } else {
                    real.vol().mknod(ROOT, p, n, mode, 0o022, 0).map_err(e)
                }
            });
            if let Ok(a) = &got {
                prop_assert_eq!(a.kind, FileKind::RegularFile);
                prop_assert_eq!((a.size, a.nlink, a.perm), (0, 1, 0o644), "new file's size, nlink, perm");
            }
            (want, out(got))
        }
        Op::Mkdir { path } => {
            let want = model.create(path, Node::Dir(BTreeMap::new()));
            let got = real
                .parent_of(path)
                .and_then(|p| real.vol().mkdir(ROOT, p, name(*path.last().unwrap()), 0o755, 0o022).map_err(e));
            if let Ok(a) = &got {
                prop_assert_eq!((a.kind, a.perm), (FileKind::Directory, 0o755));
            }
            (want, out(got))
        }
        Op::Symlink { path, target } => {
            let t = TARGETS[*target as usize];
            let want = model.create(path, Node::Symlink(t));
            let got = real
                .parent_of(path)
                .and_then(|p| real.vol().symlink(ROOT, p, name(*path.last().unwrap()), Path::new(t)).map_err(e));
            if let Ok(a) = &got {
                prop_assert_eq!((a.kind, a.size), (FileKind::Symlink, t.len() as u64));
            }
            (want, out(got))
        }
        Op::Write { path, offset, len, fill, keep_dirty } => {
            let Some((m, a)) = resolve(model, real, path)? else { return Ok(()) };
            if a.kind != FileKind::RegularFile {
                return Ok(());
            }
            let (off, data) = (*offset as u64, fill_bytes(*fill, *offset as u64, *len as usize));
            let f = model.file(m);
            if f.len() < off as usize + data.len() {
                f.resize(off as usize + data.len(), 0);
            }
            f[off as usize..off as usize + data.len()].copy_from_slice(&data);
            let vol = real.vol();
            let fh = ok(vol.open_file(a.ino, libc::O_RDWR), "open_file")?;
            let n = ok(vol.write(a.ino, fh, off, &data), "write")?;
            prop_assert_eq!(n as usize, data.len(), "bytes written");
            if !*keep_dirty {
                ok(vol.flush(a.ino), "flush")?;
            }
            ok(vol.release(a.ino, fh), "release")?;
            let size = ok(vol.getattr(a.ino), "getattr")?.size;
            prop_assert_eq!(size, model.file(m).len() as u64, "size after write to {}", show(path));
            return Ok(());
        }
        Op::Read { path, offset, len } => {
            let Some((m, a)) = resolve(model, real, path)? else { return Ok(()) };
            if a.kind != FileKind::RegularFile {
                return Ok(());
            }
            let f = model.file(m);
            let start = (*offset as usize).min(f.len());
            let want = f[start..(start + *len as usize).min(f.len())].to_vec();
            let vol = real.vol();
            let fh = ok(vol.open_file(a.ino, libc::O_RDONLY), "open_file")?;
            let got = ok(vol.read(a.ino, *offset as u64, *len), "read")?;
            ok(vol.release(a.ino, fh), "release")?;
            check_bytes(&got, &want, &format!("read {} at {offset} len {len}", show(path)))?;
            return Ok(());
        }
        Op::Truncate { path, size } => {
            let Some((m, a)) = resolve(model, real, path)? else { return Ok(()) };
            if a.kind != FileKind::RegularFile {
                return Ok(());
            }
            model.file(m).resize(*size as usize, 0);
            let set = SetAttr { size: Some(*size as u64), ..Default::default() };
            let attr = ok(real.vol().setattr(a.ino, &set), "setattr(size)")?;
            prop_assert_eq!(attr.size, *size as u64, "size returned by setattr");
            return Ok(());
        }
        Op::Fsync { path, datasync } => {
            let Some((_, a)) = resolve(model, real, path)? else { return Ok(()) };
            if a.kind == FileKind::RegularFile {
                ok(real.vol().fsync(a.ino, *datasync), "fsync")?;
            }
            return Ok(());
        }
        Op::ListDir { path } => {
            let Some((m, a)) = resolve(model, real, path)? else { return Ok(()) };
            if a.kind == FileKind::Directory {
                let mut got: Vec<OsString> = real
                    .readdir_all(a.ino, 2)?
                    .into_iter()
                    .map(|d| d.name)
                    .filter(|n| n != "." && n != "..")
                    .collect();
                got.sort();
                let want: Vec<OsString> = model.children(m).keys().map(OsString::from).collect();
                prop_assert_eq!(got, want, "listing of {}", show(path));
            }
            return Ok(());
        }
        Op::Unlink { path } | Op::Rmdir { path } => {
            let dir = matches!(op, Op::Rmdir { .. });
            let want = model.unlink(path, dir);
            let got = real.parent_of(path).and_then(|p| {
                let n = name(*path.last().unwrap());
                if dir { real.vol().rmdir(p, n) } else { real.vol().unlink(p, n) }.map_err(e)
            });
            (want, out(got))
        }
        Op::Link { from, to } => {
            let want = model.link(from, to);
            let got = match real.lookup(from).and_then(|a| Ok((a, real.parent_of(to)?))) {
                Err(err) => Outcome::Err(err),
                Ok(_) if want == Outcome::Skipped => Outcome::Skipped,
                Ok((a, dp)) => match real.vol().link(a.ino, dp, name(*to.last().unwrap())) {
                    Err(err) => Outcome::Err(err.errno()),
                    Ok(la) => {
                        prop_assert_eq!(la.ino, a.ino, "link returned another inode");
                        if let Ok(m) = model.lookup(from) {
                            prop_assert_eq!(la.nlink, model.nlink[&m], "nlink returned by link");
                        }
                        Outcome::Done
                    }
                },
            };
            (want, got)
        }
        Op::Rename { from, to, mode } => {
            let want = model.rename(from, to, *mode);
            let flags = RenameFlags { noreplace: *mode == RenameMode::NoReplace, exchange: *mode == RenameMode::Exchange };
            let got = match real.parent_of(from).and_then(|sp| Ok((sp, real.parent_of(to)?))) {
                Err(err) => Outcome::Err(err),
                Ok(_) if want == Outcome::Skipped => Outcome::Skipped,
                Ok((sp, dp)) => {
                    let r = real.vol().rename(sp, name(*from.last().unwrap()), dp, name(*to.last().unwrap()), flags);
                    out(r.map_err(e))
                }
            };
            (want, got)
        }
        Op::Remount => {
            real.remount()?;
            return Ok(());
        }
    };
    if got != want {
        let fmt = |o: &Outcome| match o {
            Outcome::Err(x) => format!("{} ({x})", errno_name(*x)),
            other => format!("{other:?}"),
        };
        return Err(TestCaseError::fail(format!("{op:?}: volume gave {}, model wants {}", fmt(&got), fmt(&want))));
    }
    Ok(())
}

fn check_bytes(got: &[u8], want: &[u8], what: &str) -> Result<(), TestCaseError> {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        return Err(TestCaseError::fail(format!(
            "{what}: got {} bytes, want {}; first difference at {first}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            &got[first.min(got.len())..(first + 8).min(got.len())],
            &want[first.min(want.len())..(first + 8).min(want.len())],
        )));
    }
    Ok(())
}

/// Walks the whole tree on both sides: names, kinds, sizes, link counts, contents, symlink
/// targets, and which names share an inode.
fn compare_tree(model: &Model, real: &Real) -> Result<(), TestCaseError> {
    let mut ino_of: HashMap<MIno, u64> = HashMap::new();
    let mut mino_of: HashMap<u64, MIno> = HashMap::new();
    let mut stack = vec![(0 as MIno, ROOT_INO, String::new())];
    while let Some((m, ino, path)) = stack.pop() {
        let entries = real.readdir_all(ino, 3)?;
        let dots = |n: &str| entries.iter().filter(|d| d.name == n).count();
        prop_assert_eq!((dots("."), dots("..")), (1, 1), "\".\" and \"..\" in {}/", path);
        let mut got: Vec<&DirEntry> = entries.iter().filter(|d| d.name != "." && d.name != "..").collect();
        got.sort_by(|a, b| a.name.cmp(&b.name));
        let got_names: Vec<&OsStr> = got.iter().map(|d| d.name.as_os_str()).collect();
        let want_names: Vec<&OsStr> = model.children(m).keys().map(OsStr::new).collect();
        prop_assert_eq!(got_names, want_names, "listing of {}/", path);
        for d in got {
            let n = d.name.to_str().unwrap();
            let child = model.children(m)[n];
            let p = format!("{path}/{n}");
            let a = ok(real.vol().lookup(ino, &d.name), &format!("lookup {p}"))?;
            prop_assert_eq!(d.ino, a.ino, "readdir and lookup disagree on the inode of {}", p);
            prop_assert_eq!(d.kind, a.kind, "readdir and lookup disagree on the kind of {}", p);
            prop_assert_eq!(a.kind, model.kind(child), "kind of {}", p);
            prop_assert_eq!(*ino_of.entry(child).or_insert(a.ino), a.ino, "hard links of {} differ in inode", p);
            prop_assert_eq!(*mino_of.entry(a.ino).or_insert(child), child, "{} shares an inode it should not", p);
            match &model.nodes[&child] {
                Node::Dir(_) => stack.push((child, a.ino, p)),
                Node::File(data) => {
                    prop_assert_eq!(a.size, data.len() as u64, "size of {}", p);
                    prop_assert_eq!(a.nlink, model.nlink[&child], "nlink of {}", p);
                    let got = real.read_all(a.ino, a.size)?;
                    check_bytes(&got, data, &format!("contents of {p}"))?;
                }
                Node::Symlink(t) => {
                    prop_assert_eq!(a.nlink, model.nlink[&child], "nlink of {}", p);
                    let got = ok(real.vol().readlink(a.ino), "readlink")?;
                    prop_assert_eq!(got, t.as_bytes().to_vec(), "target of {}", p);
                }
            }
        }
    }
    Ok(())
}

fn options(block_size: u32, commit_age: Duration) -> VolumeOptions {
    VolumeOptions {
        block_size,
        cache_bytes: 3 * block_size as usize,
        dirty_limit_bytes: 6 * block_size as usize,
        commit_age,
        ..Default::default()
    }
}

fn run(opts: VolumeOptions, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::new();
    let mut real = Real::new(opts);
    // The operations with their paths spelled out, for the failure report (and for pinning).
    let mut done: Vec<Op> = Vec::new();
    let report = |done: &[Op], msg: String| {
        let list: Vec<String> = done.iter().map(|op| format!("        {op:?},")).collect();
        TestCaseError::fail(format!("{msg}\n    concrete operations:\n{}", list.join("\n")))
    };
    for (i, op) in ops.iter().enumerate() {
        done.push(op.concrete(&model));
        if let Err(err) = step(&mut model, &mut real, op) {
            return Err(match err {
                TestCaseError::Fail(r) => report(&done, format!("op #{i}: {r}")),
                other => other,
            });
        }
    }
    compare_tree(&model, &real).map_err(|err| report(&done, format!("at the end: {err}")))?;
    real.remount().map_err(|err| report(&done, format!("final remount: {err}")))?;
    compare_tree(&model, &real).map_err(|err| report(&done, format!("after the final remount: {err}")))?;
    Ok(())
}

fn config(default_cases: u32) -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default_cases),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Background flusher effectively off: each case is deterministic and shrinks well.
    #[test]
    fn volume_matches_reference_model(
        block_size in prop_oneof![Just(4096u32), Just(8192u32)],
        ops in prop::collection::vec(op_strategy(), 1..=40),
    ) {
        run(options(block_size, Duration::from_secs(3600)), &ops)?;
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// The background flusher commits dirty data while operations run.
    #[test]
    fn volume_matches_reference_model_with_busy_flusher(
        ops in prop::collection::vec(op_strategy(), 1..=40),
    ) {
        run(options(4096, Duration::from_millis(1)), &ops)?;
    }
}

// ------------------------------------------------------------- pinned cases and regressions

fn p(s: &str) -> P {
    P::Path(s.split('/').filter(|c| !c.is_empty()).map(|c| NAMES.iter().position(|n| *n == c).unwrap() as u8).collect())
}

fn pinned(ops: Vec<Op>) {
    if let Err(err) = run(options(4096, Duration::from_secs(3600)), &ops) {
        panic!("{err}");
    }
}

#[test]
fn pinned_write_past_eof_across_blocks_then_remount() {
    pinned(vec![
        Op::Create { path: p("a"), via_create: true },
        Op::Write { path: p("a"), offset: 10_000, len: 5000, fill: Fill::Random(1), keep_dirty: true },
        Op::Read { path: p("a"), offset: 0, len: 20_000 },
        Op::Truncate { path: p("a"), size: 9000 },
        Op::Write { path: p("a"), offset: 4095, len: 2, fill: Fill::Text(0), keep_dirty: false },
        Op::Remount,
        Op::Read { path: p("a"), offset: 4000, len: 6000 },
    ]);
}

#[test]
fn pinned_rename_and_link_errors() {
    pinned(vec![
        Op::Mkdir { path: p("a") },
        Op::Mkdir { path: p("a/b") },
        Op::Create { path: p("a/b/c"), via_create: false },
        Op::Create { path: p("b"), via_create: true },
        Op::Rename { from: p("b"), to: p("a"), mode: RenameMode::Plain },          // EISDIR
        Op::Rename { from: p("a"), to: p("b"), mode: RenameMode::Plain },          // ENOTDIR
        Op::Mkdir { path: p("c") },
        Op::Rename { from: p("c"), to: p("a"), mode: RenameMode::Plain },          // ENOTEMPTY
        Op::Rename { from: p("b"), to: p("c"), mode: RenameMode::NoReplace },      // EEXIST
        Op::Rename { from: p("b"), to: p("a/c"), mode: RenameMode::Exchange },     // ENOENT
        Op::Rmdir { path: p("a") },                                                // ENOTEMPTY
        Op::Rmdir { path: p("b") },                                                // ENOTDIR
        Op::Unlink { path: p("c") },                                               // EISDIR
        Op::Link { from: p("b"), to: p("a/b/c") },                                 // EEXIST
        Op::Link { from: p("b"), to: p("a/b/a") },
        Op::Link { from: p("b/a"), to: p("a/a") },                                 // ENOTDIR
        Op::Rename { from: p("a/b/a"), to: p("b"), mode: RenameMode::Plain },      // same inode: skipped
        Op::Write { path: p("b"), offset: 0, len: 100, fill: Fill::Text(2), keep_dirty: false },
        Op::Unlink { path: p("b") },
        Op::Rename { from: p("a/b/a"), to: p("a/b/c"), mode: RenameMode::Plain },  // over a file
        Op::Remount,
    ]);
}
