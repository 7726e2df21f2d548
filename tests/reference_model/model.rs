//! The reference model: a plain in-memory POSIX tree that answers every operation, errno
//! included, the way the volume should.

use std::collections::{BTreeMap, HashMap};

use s2sfs::volume::FileKind;

use crate::ops::{NAMES, RenameMode};

pub type MIno = usize;

#[derive(Debug, Clone)]
pub enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<&'static str, MIno>),
    Symlink(&'static str),
}

#[derive(Debug, Clone)]
pub struct Model {
    pub nodes: HashMap<MIno, Node>,
    /// Links of non-directories.
    pub nlink: HashMap<MIno, u32>,
    next: MIno,
}

/// What an operation did: failed with an errno, was not sent (the kernel refuses it first),
/// or succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Err(i32),
    Skipped,
    Done,
}

impl Model {
    pub fn new() -> Model {
        let mut nodes = HashMap::new();
        nodes.insert(0, Node::Dir(BTreeMap::new()));
        Model { nodes, nlink: HashMap::new(), next: 1 }
    }

    /// Every path in the tree with its kind, the root ([]) first, in a stable order.
    pub fn all_paths(&self) -> Vec<(Vec<u8>, FileKind)> {
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

    pub fn kind(&self, m: MIno) -> FileKind {
        match self.nodes[&m] {
            Node::File(_) => FileKind::RegularFile,
            Node::Dir(_) => FileKind::Directory,
            Node::Symlink(_) => FileKind::Symlink,
        }
    }

    pub fn children(&self, m: MIno) -> &BTreeMap<&'static str, MIno> {
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

    pub fn lookup(&self, path: &[u8]) -> Result<MIno, i32> {
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

    pub fn file(&mut self, m: MIno) -> &mut Vec<u8> {
        match self.nodes.get_mut(&m) {
            Some(Node::File(d)) => d,
            _ => panic!("not a file"),
        }
    }

    /// Is `a` a proper prefix of `b` (b lies inside a)?
    fn inside(a: &[u8], b: &[u8]) -> bool {
        b.len() > a.len() && b.starts_with(a)
    }

    pub fn create(&mut self, path: &[u8], node: Node) -> Outcome {
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

    pub fn unlink(&mut self, path: &[u8], dir: bool) -> Outcome {
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

    pub fn link(&mut self, from: &[u8], to: &[u8]) -> Outcome {
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

    pub fn rename(&mut self, from: &[u8], to: &[u8], mode: RenameMode) -> Outcome {
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
