//! The operations a case is made of, and the proptest strategies that generate them.

use proptest::prelude::*;
use s2sfs::volume::FileKind;

use crate::model::Model;

pub const NAMES: [&str; 3] = ["a", "b", "c"];
pub const TARGETS: [&str; 3] = ["a", "../b/c", "/elsewhere/entirely"];

/// A path as indices into NAMES: [0, 2] is "/a/c". Generated operations may instead pick
/// among what exists when they run (`Pick`, `PickIn`), so that most of them find a target;
/// `step` turns those into plain paths first.
#[derive(Clone, PartialEq, Eq)]
pub enum P {
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
    pub fn concrete(&self, model: &Model) -> P {
        let all = model.all_paths();
        match self {
            P::Path(_) => self.clone(),
            P::Pick(n, kind) => {
                let of_kind: Vec<&Vec<u8>> = all
                    .iter()
                    .filter(|(p, k)| !p.is_empty() && kind.is_none_or(|want| *k == want))
                    .map(|(p, _)| p)
                    .collect();
                if of_kind.is_empty() {
                    P::Path(vec![n % NAMES.len() as u8])
                } else {
                    P::Path(of_kind[*n as usize % of_kind.len()].clone())
                }
            }
            P::PickIn(n, name) => {
                let dirs: Vec<&Vec<u8>> =
                    all.iter().filter(|(_, k)| *k == FileKind::Directory).map(|(p, _)| p).collect();
                let mut p = dirs[*n as usize % dirs.len()].clone();
                p.push(*name);
                P::Path(p)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Zeros,
    /// Pseudo-random bytes that depend on the seed and the absolute file offset: equal seeds
    /// at equal offsets give equal blocks (dedup), and few seeds make that common.
    Random(u8),
    /// Compressible text.
    Text(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameMode {
    Plain,
    NoReplace,
    Exchange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `create` (O_CREAT|O_EXCL) when `via_create`, else `mknod(S_IFREG)`.
    Create {
        path: P,
        via_create: bool,
    },
    Mkdir {
        path: P,
    },
    Symlink {
        path: P,
        target: u8,
    },
    /// Opens, writes, flushes unless `keep_dirty`, releases.
    Write {
        path: P,
        offset: u32,
        len: u32,
        fill: Fill,
        keep_dirty: bool,
    },
    Read {
        path: P,
        offset: u32,
        len: u32,
    },
    Truncate {
        path: P,
        size: u32,
    },
    Rename {
        from: P,
        to: P,
        mode: RenameMode,
    },
    Link {
        from: P,
        to: P,
    },
    Unlink {
        path: P,
    },
    Rmdir {
        path: P,
    },
    Fsync {
        path: P,
        datasync: bool,
    },
    ListDir {
        path: P,
    },
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

pub fn op_strategy() -> impl Strategy<Value = Op> {
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
    pub fn concrete(&self, m: &Model) -> Op {
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

pub fn fill_bytes(fill: Fill, offset: u64, len: usize) -> Vec<u8> {
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

pub fn show(p: &[u8]) -> String {
    p.iter().map(|i| format!("/{}", NAMES[*i as usize])).collect()
}
