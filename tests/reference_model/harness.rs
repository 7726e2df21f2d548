//! The volume side and the comparison: `Real` drives a `Volume` as the kernel would, `step`
//! runs one operation on both sides, `run` a whole case, ending with a walk of both trees.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use s2sfs::volume::{Attr, Caller, DirEntry, FileKind, ROOT_INO, RenameFlags, SetAttr};
use s2sfs::{Error, Volume, VolumeOptions};

use crate::model::{MIno, Model, Node, Outcome};
use crate::ops::{Fill, NAMES, Op, RenameMode, TARGETS, fill_bytes, show};

const ROOT: Caller = Caller { uid: 0, gid: 0 };

fn name(i: u8) -> &'static OsStr {
    OsStr::new(NAMES[i as usize])
}

/// A volume in a directory of its own; `remount` shuts it down and opens the directory again.
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

/// Runs one operation on both sides. Operations that change the tree compare outcomes
/// (errno or success); the others check their own results as they go.
fn step(model: &mut Model, real: &mut Real, op: &Op) -> Result<(), TestCaseError> {
    let op = &op.concrete(model);
    let (want, got) = match op {
        Op::Create { path, via_create } => create(model, real, path, *via_create)?,
        Op::Mkdir { path } => mkdir(model, real, path)?,
        Op::Symlink { path, target } => symlink(model, real, path, *target)?,
        Op::Unlink { path } => remove(model, real, path, false),
        Op::Rmdir { path } => remove(model, real, path, true),
        Op::Link { from, to } => link(model, real, from, to)?,
        Op::Rename { from, to, mode } => rename(model, real, from, to, *mode),
        Op::Write { path, offset, len, fill, keep_dirty } => {
            return write(model, real, path, *offset, *len, *fill, *keep_dirty);
        }
        Op::Read { path, offset, len } => return read(model, real, path, *offset, *len),
        Op::Truncate { path, size } => return truncate(model, real, path, *size),
        Op::Fsync { path, datasync } => return fsync(model, real, path, *datasync),
        Op::ListDir { path } => return list_dir(model, real, path),
        Op::Remount => return real.remount(),
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

/// What the model wants and what the volume gave.
type Outcomes = (Outcome, Outcome);

fn create(model: &mut Model, real: &Real, path: &[u8], via_create: bool) -> Result<Outcomes, TestCaseError> {
    let want = model.create(path, Node::File(Vec::new()));
    let got = real.parent_of(path).and_then(|p| {
        let n = name(*path.last().unwrap());
        let mode = libc::S_IFREG | 0o644;
        if via_create {
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
    Ok((want, out(got)))
}

fn mkdir(model: &mut Model, real: &Real, path: &[u8]) -> Result<Outcomes, TestCaseError> {
    let want = model.create(path, Node::Dir(BTreeMap::new()));
    let got = real
        .parent_of(path)
        .and_then(|p| real.vol().mkdir(ROOT, p, name(*path.last().unwrap()), 0o755, 0o022).map_err(e));
    if let Ok(a) = &got {
        prop_assert_eq!((a.kind, a.perm), (FileKind::Directory, 0o755));
    }
    Ok((want, out(got)))
}

fn symlink(model: &mut Model, real: &Real, path: &[u8], target: u8) -> Result<Outcomes, TestCaseError> {
    let t = TARGETS[target as usize];
    let want = model.create(path, Node::Symlink(t));
    let got = real
        .parent_of(path)
        .and_then(|p| real.vol().symlink(ROOT, p, name(*path.last().unwrap()), Path::new(t)).map_err(e));
    if let Ok(a) = &got {
        prop_assert_eq!((a.kind, a.size), (FileKind::Symlink, t.len() as u64));
    }
    Ok((want, out(got)))
}

/// `rmdir` when `dir`, else `unlink`.
fn remove(model: &mut Model, real: &Real, path: &[u8], dir: bool) -> Outcomes {
    let want = model.unlink(path, dir);
    let got = real.parent_of(path).and_then(|p| {
        let n = name(*path.last().unwrap());
        if dir { real.vol().rmdir(p, n) } else { real.vol().unlink(p, n) }.map_err(e)
    });
    (want, out(got))
}

fn link(model: &mut Model, real: &Real, from: &[u8], to: &[u8]) -> Result<Outcomes, TestCaseError> {
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
    Ok((want, got))
}

fn rename(model: &mut Model, real: &Real, from: &[u8], to: &[u8], mode: RenameMode) -> Outcomes {
    let want = model.rename(from, to, mode);
    let flags = RenameFlags { noreplace: mode == RenameMode::NoReplace, exchange: mode == RenameMode::Exchange };
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

fn write(
    model: &mut Model,
    real: &Real,
    path: &[u8],
    offset: u32,
    len: u32,
    fill: Fill,
    keep_dirty: bool,
) -> Result<(), TestCaseError> {
    let Some((m, a)) = resolve(model, real, path)? else { return Ok(()) };
    if a.kind != FileKind::RegularFile {
        return Ok(());
    }
    let (off, data) = (offset as u64, fill_bytes(fill, offset as u64, len as usize));
    let f = model.file(m);
    if f.len() < off as usize + data.len() {
        f.resize(off as usize + data.len(), 0);
    }
    f[off as usize..off as usize + data.len()].copy_from_slice(&data);
    let vol = real.vol();
    let fh = ok(vol.open_file(a.ino, libc::O_RDWR), "open_file")?;
    let n = ok(vol.write(a.ino, fh, off, &data), "write")?;
    prop_assert_eq!(n as usize, data.len(), "bytes written");
    if !keep_dirty {
        ok(vol.flush(a.ino), "flush")?;
    }
    ok(vol.release(a.ino, fh), "release")?;
    let size = ok(vol.getattr(a.ino), "getattr")?.size;
    prop_assert_eq!(size, model.file(m).len() as u64, "size after write to {}", show(path));
    Ok(())
}

fn read(model: &mut Model, real: &Real, path: &[u8], offset: u32, len: u32) -> Result<(), TestCaseError> {
    let Some((m, a)) = resolve(model, real, path)? else { return Ok(()) };
    if a.kind != FileKind::RegularFile {
        return Ok(());
    }
    let f = model.file(m);
    let start = (offset as usize).min(f.len());
    let want = f[start..(start + len as usize).min(f.len())].to_vec();
    let vol = real.vol();
    let fh = ok(vol.open_file(a.ino, libc::O_RDONLY), "open_file")?;
    let got = ok(vol.read(a.ino, offset as u64, len), "read")?;
    ok(vol.release(a.ino, fh), "release")?;
    check_bytes(&got, &want, &format!("read {} at {offset} len {len}", show(path)))
}

fn truncate(model: &mut Model, real: &Real, path: &[u8], size: u32) -> Result<(), TestCaseError> {
    let Some((m, a)) = resolve(model, real, path)? else { return Ok(()) };
    if a.kind != FileKind::RegularFile {
        return Ok(());
    }
    model.file(m).resize(size as usize, 0);
    let set = SetAttr { size: Some(size as u64), ..Default::default() };
    let attr = ok(real.vol().setattr(a.ino, &set), "setattr(size)")?;
    prop_assert_eq!(attr.size, size as u64, "size returned by setattr");
    Ok(())
}

fn fsync(model: &Model, real: &Real, path: &[u8], datasync: bool) -> Result<(), TestCaseError> {
    let Some((_, a)) = resolve(model, real, path)? else { return Ok(()) };
    if a.kind == FileKind::RegularFile {
        ok(real.vol().fsync(a.ino, datasync), "fsync")?;
    }
    Ok(())
}

fn list_dir(model: &Model, real: &Real, path: &[u8]) -> Result<(), TestCaseError> {
    let Some((m, a)) = resolve(model, real, path)? else { return Ok(()) };
    if a.kind == FileKind::Directory {
        let mut got: Vec<OsString> =
            real.readdir_all(a.ino, 2)?.into_iter().map(|d| d.name).filter(|n| n != "." && n != "..").collect();
        got.sort();
        let want: Vec<OsString> = model.children(m).keys().map(OsString::from).collect();
        prop_assert_eq!(got, want, "listing of {}", show(path));
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

pub fn options(block_size: u32, commit_age: Duration) -> VolumeOptions {
    VolumeOptions {
        block_size,
        cache_bytes: 3 * block_size as usize,
        dirty_limit_bytes: 6 * block_size as usize,
        commit_age,
        ..Default::default()
    }
}

pub fn run(opts: VolumeOptions, ops: &[Op]) -> Result<(), TestCaseError> {
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
