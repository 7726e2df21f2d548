//! fsck's judging side: turns what the scan read into problems, and plans the repairs that
//! need no guessing. The plan is made on a model of the namespace (every name, with flags
//! for names a repair removes or adds), so link counts, "..", and reachability are computed
//! on the namespace as it will be, while problems describe it as it is.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use super::Problem;
use super::scan::{BAD_RANGES_XATTR, BadBlock, Scan, block_kept};
use crate::store::packs::PACK_HEADER_LEN;
use crate::store::records::*;
use crate::store::txn::hex;
use crate::store::{Store, StoreError};

const ROOT: u64 = 1;
const LOST_FOUND: &[u8] = b"lost+found";
const NAME_MAX: usize = 255;
/// Stands for the inode number of a /lost+found that a check without repair would create.
const PLANNED_INO: u64 = u64::MAX;
/// Pack id of quarantine records that point at no frame (pack ids start at 1).
pub(super) const NO_PACK: u32 = 0;

/// Everything a repair writes, applied as one change (deletes first, then writes).
#[derive(Default)]
pub(super) struct Plan {
    pub delete: BTreeSet<Vec<u8>>,
    pub delete_prefixes: Vec<Vec<u8>>,
    pub put: BTreeMap<Vec<u8>, Vec<u8>>,
    pub inodes: BTreeMap<u64, InodeRecord>,
    /// New directory entries: (directory, name, inode, kind).
    pub entries: Vec<(u64, Vec<u8>, u64, u32)>,
    pub xattrs: Vec<(u64, Vec<u8>, Vec<u8>)>,
}

impl Plan {
    pub(super) fn is_empty(&self) -> bool {
        self.delete.is_empty()
            && self.delete_prefixes.is_empty()
            && self.put.is_empty()
            && self.inodes.is_empty()
            && self.entries.is_empty()
            && self.xattrs.is_empty()
    }
}

pub(super) struct Findings {
    pub problems: Vec<Problem>,
    pub notes: Vec<Problem>,
    pub plan: Plan,
}

/// Where a problem is, for its path: resolved once the namespace is known.
enum At {
    Nowhere,
    Ino(u64),
    Entry(u64, Vec<u8>),
}

struct Found {
    kind: &'static str,
    ino: Option<u64>,
    at: At,
    detail: String,
    /// What a repair does about it; None when it cannot be repaired.
    fix: Option<String>,
}

/// One name in the model of the namespace.
struct Name {
    parent: u64,
    name: Vec<u8>,
    ino: u64,
    /// The file type the entry should carry.
    kind: u32,
    /// The records that hold it now.
    keys: Vec<Vec<u8>>,
    /// Its records are rewritten (they disagree, or carry the wrong type).
    rewrite: bool,
    /// Made by the repair.
    added: bool,
    /// Removed by the repair.
    removed: bool,
}

enum LostFound {
    Unknown,
    Usable(u64),
    Unusable(String),
}

/// What the checker reports and plans.
#[derive(Default)]
struct Out {
    repair: bool,
    problems: Vec<Found>,
    notes: Vec<Found>,
    plan: Plan,
}

impl Out {
    fn problem(&mut self, kind: &'static str, ino: Option<u64>, at: At, detail: String, fix: Option<String>) {
        self.problems.push(Found { kind, ino, at, detail, fix });
    }
    fn note(&mut self, kind: &'static str, ino: Option<u64>, at: At, detail: String, fix: Option<String>) {
        self.notes.push(Found { kind, ino, at, detail, fix });
    }
}

/// Which inodes a walk from the root reaches, and by which name each was first reached.
#[derive(Default)]
struct Reach {
    children: HashMap<u64, Vec<usize>>,
    visited: HashSet<u64>,
    first: HashMap<u64, usize>,
}

impl Reach {
    fn new(names: &[Name], include: impl Fn(&Name) -> bool) -> Reach {
        let mut r = Reach::default();
        for (i, n) in names.iter().enumerate() {
            if include(n) {
                r.children.entry(n.parent).or_default().push(i);
            }
        }
        r
    }

    fn walk(&mut self, names: &[Name], start: u64) {
        self.visited.insert(start);
        let mut queue = VecDeque::from([start]);
        while let Some(dir) = queue.pop_front() {
            let Some(kids) = self.children.get(&dir) else { continue };
            for &i in kids {
                let ino = names[i].ino;
                if self.visited.insert(ino) {
                    self.first.insert(ino, i);
                    queue.push_back(ino);
                }
            }
        }
    }

    /// Adds a name; walks on from it when its directory is reached.
    fn attach(&mut self, names: &[Name], i: usize) {
        let n = &names[i];
        self.children.entry(n.parent).or_default().push(i);
        if self.visited.contains(&n.parent) && !self.visited.contains(&n.ino) {
            self.first.insert(n.ino, i);
            self.walk(names, n.ino);
        }
    }
}

struct Checker<'a> {
    store: &'a Store,
    scan: Scan,
    names: Vec<Name>,
    by_ino: HashMap<u64, Vec<usize>>,
    /// Inodes the repair creates (a new root, /lost+found).
    created: BTreeMap<u64, InodeRecord>,
    /// Pending orphans the repair frees.
    freed: BTreeSet<u64>,
    lost_found: LostFound,
    lost_found_taken: HashSet<Vec<u8>>,
    /// New references to quarantine ids, with the record a new one gets.
    quarantine: BTreeMap<BlockHash, (u64, BlockRecord)>,
    /// Frame descriptions a repair rewrites from the frame's header.
    fixed_info: HashMap<BlockHash, FrameInfo>,
    /// The namespace as it is.
    current: Reach,
    out: Out,
}

impl Store {
    pub(super) fn fsck_check(&self, scan: Scan, repair: bool) -> Result<Findings, StoreError> {
        let mut c = Checker {
            store: self,
            scan,
            names: Vec::new(),
            by_ino: HashMap::new(),
            created: BTreeMap::new(),
            freed: BTreeSet::new(),
            lost_found: LostFound::Unknown,
            lost_found_taken: HashSet::new(),
            quarantine: BTreeMap::new(),
            fixed_info: HashMap::new(),
            current: Reach::default(),
            out: Out { repair, problems: Vec::new(), notes: Vec::new(), plan: Plan::default() },
        };
        c.records();
        c.root();
        c.resolve_names();
        c.root_links();
        c.orphans()?;
        c.current = Reach::new(&c.names, |n| !n.added);
        c.current.walk(&c.names, ROOT);
        let unreachable: Vec<u64> = c
            .scan
            .inodes
            .iter()
            .filter(|&(ino, s)| s.rec.is_some() && !c.freed.contains(ino) && !c.current.visited.contains(ino))
            .map(|(&ino, _)| ino)
            .collect();
        c.directories();
        c.blocks();
        c.unreadable();
        c.unavailable();
        c.link_unreachable(unreachable);
        c.frame_infos();
        c.refcounts();
        c.counts();
        c.entries();
        Ok(c.finish())
    }
}

impl Checker<'_> {
    fn kind_of(&self, ino: u64) -> Option<Option<u32>> {
        if let Some(r) = self.created.get(&ino) {
            return Some(Some(r.kind));
        }
        self.scan.inodes.get(&ino).map(|s| s.rec.as_ref().map(|r| r.kind))
    }

    fn is_dir(&self, ino: u64) -> bool {
        self.kind_of(ino) == Some(Some(libc::S_IFDIR))
    }

    /// Names of `ino` that the repair keeps.
    fn live_names(&self, ino: u64) -> Vec<usize> {
        self.by_ino.get(&ino).map_or_else(Vec::new, |v| v.iter().copied().filter(|&i| !self.names[i].removed).collect())
    }

    fn push_name(&mut self, name: Name) -> usize {
        let i = self.names.len();
        self.by_ino.entry(name.ino).or_default().push(i);
        self.names.push(name);
        i
    }

    /// Key-level damage, undecodable records, dead packs.
    fn records(&mut self) {
        for (key, why) in std::mem::take(&mut self.scan.bad_keys) {
            self.out.problem("bad_key", None, At::Nowhere, format!("{why}: key {}", full_hex(&key)), None);
        }
        for (ino, why) in std::mem::take(&mut self.scan.bad_inodes) {
            let detail = format!("inode record does not decode ({why})");
            self.out.problem("bad_inode", Some(ino), At::Ino(ino), detail, None);
        }
        for (hash, why) in std::mem::take(&mut self.scan.bad_block_records) {
            self.out.problem("bad_block_record", None, At::Nowhere, format!("block record {}: {why}", hex(&hash)), fix("removed"));
            self.out.plan.delete.insert(key_block(&hash));
        }
        for (parent, seq, why) in std::mem::take(&mut self.scan.bad_dirents) {
            let detail = format!("readdir record {seq} of directory {parent} does not decode ({why})");
            self.out.problem("bad_entry", Some(parent), At::Ino(parent), detail, fix("removed"));
            self.out.plan.delete.insert(key_u64_u64(TAG_DIRENT, parent, seq));
        }
        let used: HashSet<u32> = self.scan.hashes.values().map(|h| h.rec.pack).collect();
        for (&id, &size) in &self.scan.packs {
            if size > PACK_HEADER_LEN && !used.contains(&id) {
                let detail = format!("pack {id:08}.pack ({size} bytes): no block record points into it; compaction reclaims it");
                self.out.note("dead_pack", None, At::Nowhere, detail, None);
            }
        }
    }

    fn root(&mut self) {
        match self.scan.inodes.get(&ROOT).map(|s| s.rec.as_ref()) {
            None => {
                self.created.insert(ROOT, new_dir(0o755));
                let detail = "inode 1, the root directory, is missing".to_string();
                self.out.problem("root_missing", Some(ROOT), At::Nowhere, detail, fix("a new root keeps the entries found in it"));
            }
            Some(Some(r)) if r.kind != libc::S_IFDIR => {
                let detail = format!("inode 1, the root directory, is a {}", kind_name(r.kind));
                self.out.problem("root_not_directory", Some(ROOT), At::Nowhere, detail, None);
            }
            _ => {}
        }
    }

    /// Pairs every name record with its readdir record, and checks where they point.
    fn resolve_names(&mut self) {
        let bad_dirents: HashSet<(u64, u64)> = self
            .out
            .plan
            .delete
            .iter()
            .filter(|k| k.len() == 17 && k[0] == TAG_DIRENT)
            .map(|k| (u64::from_be_bytes(k[1..9].try_into().unwrap_or_default()), u64::from_be_bytes(k[9..17].try_into().unwrap_or_default())))
            .collect();
        for ((parent, name), g) in std::mem::take(&mut self.scan.names) {
            let mut keys = Vec::new();
            if g.n.is_some() {
                keys.push(key_u64_bytes(TAG_NAME, parent, &name));
            }
            keys.extend(g.d.iter().map(|&(seq, _)| key_u64_u64(TAG_DIRENT, parent, seq)));
            let at = || At::Entry(parent, name.clone());
            let n_rec = match &g.n {
                Some(Ok(r)) => Some(*r),
                _ => None,
            };
            let candidates: Vec<EntryRecord> = n_rec.iter().copied().chain(g.d.iter().map(|&(_, r)| r)).collect();
            if let Some(Err(why)) = &g.n {
                let what = if candidates.is_empty() { "removed" } else { "rebuilt from its readdir record" };
                let detail = format!("name record does not decode ({why})");
                self.out.problem("bad_entry", candidates.first().map(|r| r.ino), at(), detail, fix(what));
                if candidates.is_empty() {
                    self.out.plan.delete.extend(keys);
                    continue;
                }
            }
            if !(parent == ROOT || matches!(self.kind_of(parent), Some(None) | Some(Some(libc::S_IFDIR)))) {
                let holder = match self.kind_of(parent) {
                    None => format!("inode {parent}, which does not exist"),
                    Some(Some(k)) => format!("inode {parent}, a {}", kind_name(k)),
                    Some(None) => format!("inode {parent}"),
                };
                let detail = format!("entry {:?} (inode {}) in {holder}", lossy(&name), describe_inos(&candidates));
                let ino = candidates.first().map(|r| r.ino);
                self.out.problem("entry_in_non_directory", ino, At::Nowhere, detail, fix("removed"));
                self.out.plan.delete.extend(keys);
                continue;
            }
            let consistent = n_rec.is_some_and(|r| g.d.len() == 1 && g.d[0].0 == r.seq && g.d[0].1 == r);
            let mut targets: Vec<EntryRecord> = Vec::new();
            for r in &candidates {
                if self.kind_of(r.ino).is_some() && !targets.iter().any(|t| t.ino == r.ino) {
                    targets.push(*r);
                }
            }
            let chosen = match targets.len() {
                0 => {
                    let detail = format!("points at inode {}, which does not exist", describe_inos(&candidates));
                    self.out.problem("dangling_entry", candidates.first().map(|r| r.ino), at(), detail, fix("removed"));
                    self.out.plan.delete.extend(keys);
                    continue;
                }
                1 => targets[0],
                _ => {
                    let detail = format!("{}; they name different inodes ({})", mismatch(&g.n, &g.d), describe_inos(&targets));
                    let chosen = n_rec.filter(|r| self.kind_of(r.ino).is_some()).unwrap_or(targets[0]);
                    self.out.problem("entry_mismatch", Some(chosen.ino), at(), detail, None);
                    let kind = self.kind_of(chosen.ino).flatten().unwrap_or(chosen.kind);
                    let n = Name { parent, name, ino: chosen.ino, kind, keys, rewrite: false, added: false, removed: false };
                    self.push_name(n);
                    continue;
                }
            };
            // An undecodable half is already reported as bad_entry.
            let covered = matches!(g.n, Some(Err(_))) || n_rec.is_some_and(|r| g.d.is_empty() && bad_dirents.contains(&(parent, r.seq)));
            if !consistent && !covered {
                let detail = mismatch(&g.n, &g.d);
                self.out.problem("entry_mismatch", Some(chosen.ino), at(), detail, fix("rebuilt"));
            }
            let kind = match self.kind_of(chosen.ino) {
                Some(Some(k)) => k,
                _ => chosen.kind,
            };
            if kind != chosen.kind {
                let detail = format!("entry says {}, the inode is a {}", kind_name(chosen.kind), kind_name(kind));
                self.out.problem("entry_kind", Some(chosen.ino), at(), detail, fix("rewritten"));
            }
            let rewrite = !consistent || kind != chosen.kind;
            self.push_name(Name { parent, name, ino: chosen.ino, kind, keys, rewrite, added: false, removed: false });
        }
    }

    fn root_links(&mut self) {
        for i in self.by_ino.get(&ROOT).cloned().unwrap_or_default() {
            let n = &mut self.names[i];
            n.removed = true;
            let at = At::Entry(n.parent, n.name.clone());
            self.out.problem("root_linked", Some(ROOT), at, "an entry names the root directory".into(), fix("removed"));
        }
    }

    /// The orphan list: inodes unlinked while open are freed (a repair frees them now);
    /// marks of inodes that are missing, named or linked are wrong.
    fn orphans(&mut self) -> Result<(), StoreError> {
        let marked: Vec<u64> = self.scan.inodes.iter().filter(|(_, s)| s.orphan_mark).map(|(&i, _)| i).collect();
        for ino in marked {
            let Some(rec) = self.scan.inodes[&ino].rec.clone() else { continue };
            let named = self.live_names(ino).len();
            if rec.kind != libc::S_IFDIR && rec.nlink == 0 && named == 0 {
                let detail = "unlinked while open; freed at the next mount".to_string();
                self.out.note("pending_orphan", Some(ino), At::Nowhere, detail, fix("freed now"));
                self.freed.insert(ino);
                let plan = &mut self.out.plan;
                plan.delete.insert(key_u64(TAG_INODE, ino));
                plan.delete.insert(key_u64(TAG_ORPHAN, ino));
                plan.delete_prefixes.push(key_u64(TAG_BLOCKMAP, ino));
                plan.delete_prefixes.push(key_u64(TAG_XATTR, ino));
                // Its blocks no longer hold their frames.
                for (k, v) in self.store.meta.collect_prefix(&key_u64(TAG_BLOCKMAP, ino))? {
                    let block = k.get(9..17).and_then(|b| b.try_into().ok()).map_or(u64::MAX, u64::from_be_bytes);
                    let Ok(hash) = BlockHash::try_from(v.as_slice()) else { continue };
                    if block_kept(Some(&rec), block, self.scan.block_size)
                        && let Some(h) = self.scan.hashes.get_mut(&hash)
                    {
                        h.keep_refs = h.keep_refs.saturating_sub(1);
                    }
                }
            } else {
                let detail = if rec.kind == libc::S_IFDIR {
                    "a directory on the orphan list".to_string()
                } else {
                    format!("on the orphan list (to be freed), but it has nlink {} and {named} names", rec.nlink)
                };
                self.out.problem("orphan_mark", Some(ino), At::Ino(ino), detail, fix("mark removed"));
                self.out.plan.delete.insert(key_u64(TAG_ORPHAN, ino));
            }
        }
        for ino in std::mem::take(&mut self.scan.stray_orphans) {
            let detail = "on the orphan list, but the inode does not exist".to_string();
            self.out.problem("orphan_mark", Some(ino), At::Nowhere, detail, fix("mark removed"));
            self.out.plan.delete.insert(key_u64(TAG_ORPHAN, ino));
        }
        Ok(())
    }

    /// Every directory has one name, and ".." names the directory holding it.
    fn directories(&mut self) {
        let dirs: Vec<(u64, u64)> = self
            .scan
            .inodes
            .iter()
            .filter_map(|(&ino, s)| s.rec.as_ref().filter(|r| r.kind == libc::S_IFDIR).map(|r| (ino, r.parent)))
            .collect();
        for (ino, dotdot) in dirs {
            if ino == ROOT {
                if dotdot != ROOT {
                    let detail = format!("\"..\" of the root names inode {dotdot}");
                    self.out.problem("dir_parent", Some(ino), At::Ino(ino), detail, fix("set to the root"));
                }
                continue;
            }
            let mut live = self.live_names(ino);
            if live.len() > 1 {
                let keep: Vec<usize> = live.iter().copied().filter(|&i| self.names[i].parent == dotdot).collect();
                let paths: Vec<String> = live.iter().map(|&i| self.name_label(i)).collect();
                let fix = keep.len() == 1;
                let mut detail = format!("a directory with {} names ({})", live.len(), paths.join(", "));
                if !fix {
                    detail.push_str(&format!("; not exactly one lies in the directory \"..\" names (inode {dotdot})"));
                }
                let what = fix.then(|| format!("the names outside its \"..\" (inode {dotdot}) removed"));
                self.out.problem("dir_multiple_names", Some(ino), At::Ino(ino), detail, what);
                if fix {
                    for &i in &live {
                        if i != keep[0] {
                            self.names[i].removed = true;
                        }
                    }
                    live = keep;
                }
            }
            if let [i] = live[..] {
                let holder = self.names[i].parent;
                if holder != dotdot {
                    let detail = format!("\"..\" names inode {dotdot}, but the directory's entry is in inode {holder}");
                    self.out.problem("dir_parent", Some(ino), At::Ino(ino), detail, fix("set"));
                }
            }
        }
    }

    /// Block-map entries and xattrs of missing inodes, entries past the end or of inodes
    /// that hold no data, and each inode's count of mapped blocks.
    fn blocks(&mut self) {
        for (ino, n) in std::mem::take(&mut self.scan.stray_blocks) {
            let detail = format!("{n} block-map entries of inode {ino}, which does not exist");
            self.out.problem("block_of_missing_inode", Some(ino), At::Nowhere, detail, fix("removed"));
            self.out.plan.delete_prefixes.push(key_u64(TAG_BLOCKMAP, ino));
        }
        for (ino, names) in std::mem::take(&mut self.scan.stray_xattrs) {
            let list: Vec<String> = names.iter().map(|n| lossy(n)).collect();
            let detail = format!("xattrs {} of inode {ino}, which does not exist", list.join(", "));
            self.out.problem("xattr_of_missing_inode", Some(ino), At::Nowhere, detail, fix("removed"));
            for n in names {
                self.out.plan.delete.insert(key_u64_bytes(TAG_XATTR, ino, &n));
            }
        }
        for (&ino, st) in &self.scan.inodes {
            let Some(rec) = &st.rec else { continue };
            if self.freed.contains(&ino) {
                continue;
            }
            if !st.drop_blocks.is_empty() {
                let (kind, detail) = if rec.kind == libc::S_IFREG {
                    let list = block_list(&st.drop_blocks);
                    ("block_past_eof", format!("blocks {list} are mapped at or past the end of the file ({} bytes)", rec.size))
                } else {
                    let n = st.drop_blocks.len();
                    ("block_of_non_file", format!("{n} block-map entries of a {}", kind_name(rec.kind)))
                };
                self.out.problem(kind, Some(ino), At::Ino(ino), detail, fix("removed"));
                for &b in &st.drop_blocks {
                    self.out.plan.delete.insert(key_u64_u64(TAG_BLOCKMAP, ino, b));
                }
            }
            let mapped = if rec.kind == libc::S_IFREG { st.mapped } else { 0 };
            if rec.stored_blocks != mapped {
                let detail = format!("records {} stored blocks, {mapped} are mapped", rec.stored_blocks);
                self.out.problem("stored_blocks", Some(ino), At::Ino(ino), detail, fix("set"));
            }
        }
    }

    /// Files with blocks that cannot be read are moved into /lost+found with their bad
    /// ranges recorded; those blocks are quarantined so they keep failing (never wrong
    /// bytes), while the file can still be deleted and its content written afresh.
    fn unreadable(&mut self) {
        let files: Vec<u64> = self
            .scan
            .inodes
            .iter()
            .filter(|&(ino, s)| !s.bad_blocks.is_empty() && !self.freed.contains(ino) && s.rec.as_ref().is_some_and(|r| r.kind == libc::S_IFREG))
            .map(|(&ino, _)| ino)
            .collect();
        let bs = self.scan.block_size;
        for ino in files {
            let Some(st) = self.scan.inodes.get_mut(&ino) else { continue };
            let mut bad = std::mem::take(&mut st.bad_blocks);
            bad.sort_unstable_by_key(|b| b.block);
            let size = st.rec.as_ref().map_or(0, |r| r.size);
            let recorded = st.bad_ranges.clone();
            let blocks: Vec<u64> = bad.iter().map(|b| b.block).collect();
            let ranges = byte_ranges(&blocks, bs, size);
            let live = self.live_names(ino);
            let lf = self.existing_lost_found();
            let in_lost_found = lf.is_some_and(|lf| !live.is_empty() && live.iter().all(|&i| self.names[i].parent == lf));
            if in_lost_found && recorded.as_deref() == Some(ranges.as_bytes()) {
                let detail = format!("bytes {ranges} cannot be read (recorded in {})", lossy(BAD_RANGES_XATTR));
                self.out.note("quarantined_file", Some(ino), At::Ino(ino), detail, None);
                continue;
            }
            let mut detail = format!("bytes {ranges} cannot be read: {}", causes(&bad));
            let placed = if in_lost_found { Ok(String::new()) } else { self.move_to_lost_found(ino, &live) };
            let what = match placed {
                Ok(moved) => {
                    self.quarantine_blocks(ino, &bad);
                    self.out.plan.xattrs.push((ino, BAD_RANGES_XATTR.to_vec(), ranges.into_bytes()));
                    Some(format!("{moved}ranges recorded in {}", lossy(BAD_RANGES_XATTR)))
                }
                Err(why) => {
                    detail.push_str(&format!("; cannot be moved into /lost+found: {why}"));
                    None
                }
            };
            self.out.problem("unreadable_block", Some(ino), At::Ino(ino), detail, what);
        }
    }

    /// Files with blocks whose frames need what the volume does not have now (a learned
    /// model): a problem, since they cannot be read, but not damage, so nothing is
    /// repaired: the blocks, their records and the files stay as they are.
    fn unavailable(&mut self) {
        let bs = self.scan.block_size;
        let mut found = Vec::new();
        for (&ino, st) in &self.scan.inodes {
            let Some(rec) = st.rec.as_ref().filter(|r| r.kind == libc::S_IFREG) else { continue };
            if st.unavailable_blocks.is_empty() || self.freed.contains(&ino) {
                continue;
            }
            let blocks: Vec<u64> = st.unavailable_blocks.iter().map(|b| b.block).collect();
            let ranges = byte_ranges(&blocks, bs, rec.size);
            let detail = format!(
                "bytes {ranges} cannot be read until what their frames need is back ({}); the frames are not damaged and are left as they are",
                causes(&st.unavailable_blocks)
            );
            found.push((ino, detail));
        }
        for (ino, detail) in found {
            self.out.problem("unavailable_block", Some(ino), At::Ino(ino), detail, None);
        }
    }

    fn move_to_lost_found(&mut self, ino: u64, live: &[usize]) -> Result<String, String> {
        let lf = self.lost_found()?;
        let first = self.current.first.get(&ino).copied().filter(|i| live.contains(i)).or_else(|| live.first().copied());
        let wanted = match first {
            Some(i) => [format!("{ino}-").into_bytes(), self.names[i].name.clone()].concat(),
            None => format!("#{ino}").into_bytes(),
        };
        let others: Vec<String> = live.iter().filter(|&&i| Some(i) != first).map(|&i| self.name_label(i)).collect();
        for &i in live {
            self.names[i].removed = true;
        }
        let name = self.add_to_lost_found(lf, ino, wanted);
        let mut msg = format!("moved to /lost+found/{}", lossy(&name));
        if !others.is_empty() {
            msg.push_str(&format!(" (its other names removed: {})", others.join(", ")));
        }
        msg.push_str("; ");
        Ok(msg)
    }

    /// Maps each bad block to a quarantine id: a block id no content has, whose record
    /// reads as an error, so the block keeps failing while the content's own id is free for
    /// a good copy written later.
    fn quarantine_blocks(&mut self, ino: u64, bad: &[BadBlock]) {
        for b in bad {
            let mut h = blake3::Hasher::new_derive_key("s2sfs fsck quarantined block v1");
            match b.hash {
                Some(hash) => h.update(b"block").update(&hash),
                None => h.update(b"entry").update(&ino.to_be_bytes()).update(&b.block.to_be_bytes()),
            };
            let id: BlockHash = *h.finalize().as_bytes();
            self.out.plan.put.insert(key_u64_u64(TAG_BLOCKMAP, ino, b.block), id.to_vec());
            // A frame that reads but does not decode keeps its place (evidence for salvage);
            // any other bad frame is not pointed at at all.
            let mut rec = BlockRecord { pack: NO_PACK, offset: 0, frame_len: 0, refcount: 0, info: None, written: 0 };
            if let Some(hs) = b.hash.and_then(|h| self.scan.hashes.get_mut(&h)) {
                hs.keep_refs = hs.keep_refs.saturating_sub(1);
                if hs.fault.as_ref().is_some_and(|f| f.keep_place) {
                    rec = hs.rec;
                }
            }
            self.quarantine.entry(id).or_insert((0, rec)).0 += 1;
        }
    }

    /// The directory /lost+found, made when first needed.
    fn lost_found(&mut self) -> Result<u64, String> {
        match &self.lost_found {
            LostFound::Usable(ino) => return Ok(*ino),
            LostFound::Unusable(why) => return Err(why.clone()),
            LostFound::Unknown => {}
        }
        let found = self.find_or_make_lost_found();
        self.lost_found = match &found {
            Ok(ino) => LostFound::Usable(*ino),
            Err(why) => LostFound::Unusable(why.clone()),
        };
        found
    }

    fn existing_lost_found(&self) -> Option<u64> {
        self.names
            .iter()
            .find(|n| !n.removed && n.parent == ROOT && n.name == LOST_FOUND)
            .map(|n| n.ino)
            .filter(|&ino| self.is_dir(ino))
    }

    fn find_or_make_lost_found(&mut self) -> Result<u64, String> {
        if !self.is_dir(ROOT) {
            return Err("the root directory is damaged".into());
        }
        if let Some(n) = self.names.iter().find(|n| !n.removed && n.parent == ROOT && n.name == LOST_FOUND) {
            let ino = n.ino;
            if !self.is_dir(ino) {
                return Err("/lost+found is not a directory".into());
            }
            self.lost_found_taken = self.names.iter().filter(|n| !n.removed && n.parent == ino).map(|n| n.name.clone()).collect();
            return Ok(ino);
        }
        let ino = if self.out.repair { self.store.new_ino().map_err(|e| e.to_string())? } else { PLANNED_INO };
        self.created.insert(ino, new_dir(0o700));
        let name = Name {
            parent: ROOT,
            name: LOST_FOUND.to_vec(),
            ino,
            kind: libc::S_IFDIR,
            keys: Vec::new(),
            rewrite: false,
            added: true,
            removed: false,
        };
        self.push_name(name);
        Ok(ino)
    }

    fn add_to_lost_found(&mut self, lf: u64, ino: u64, wanted: Vec<u8>) -> Vec<u8> {
        let mut name = truncate_name(&wanted, NAME_MAX);
        let mut n = 1u64;
        while self.lost_found_taken.contains(&name) {
            let suffix = format!(".{n}").into_bytes();
            name = [truncate_name(&wanted, NAME_MAX - suffix.len()), suffix].concat();
            n += 1;
        }
        self.lost_found_taken.insert(name.clone());
        let kind = self.kind_of(ino).flatten().unwrap_or(libc::S_IFREG);
        let entry = Name { parent: lf, name: name.clone(), ino, kind, keys: Vec::new(), rewrite: false, added: true, removed: false };
        self.push_name(entry);
        name
    }

    /// Links every inode no path reaches into /lost+found as `#<ino>`: directories without a
    /// name first (each brings its subtree along), then directories named only inside
    /// unreachable ones (cycles), then the rest.
    fn link_unreachable(&mut self, unreachable_now: Vec<u64>) {
        let mut reach = Reach::new(&self.names, |n| !n.removed);
        reach.walk(&self.names, ROOT);
        let mut seen = self.names.len();
        let mut todo: Vec<(u8, u64)> = self
            .scan
            .inodes
            .iter()
            .filter(|&(ino, s)| s.rec.is_some() && !self.freed.contains(ino) && !reach.visited.contains(ino))
            .map(|(&ino, _)| {
                let order = match (self.is_dir(ino), self.live_names(ino).is_empty()) {
                    (true, true) => 0,
                    (true, false) => 1,
                    (false, _) => 2,
                };
                (order, ino)
            })
            .collect();
        todo.sort_unstable();
        let mut linked: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut failed: HashMap<u64, String> = HashMap::new();
        for (_, ino) in todo {
            if reach.visited.contains(&ino) {
                continue;
            }
            let lf = match self.lost_found() {
                Ok(lf) => lf,
                Err(why) => {
                    failed.insert(ino, why);
                    continue;
                }
            };
            if self.is_dir(ino) {
                for i in self.live_names(ino) {
                    self.names[i].removed = true;
                }
            }
            let name = self.add_to_lost_found(lf, ino, format!("#{ino}").into_bytes());
            linked.insert(ino, name);
            for i in seen..self.names.len() {
                reach.attach(&self.names, i);
            }
            seen = self.names.len();
        }
        for ino in unreachable_now {
            let Some(rec) = self.scan.inodes.get(&ino).and_then(|s| s.rec.as_ref()) else { continue };
            let mut detail = format!("a {} with nlink {} that no path from the root reaches", kind_name(rec.kind), rec.nlink);
            if self.by_ino.get(&ino).is_some_and(|v| v.iter().any(|&i| !self.names[i].added)) {
                detail.push_str(" (its names lie in unreachable directories)");
            }
            let what = if let Some(name) = linked.get(&ino) {
                Some(format!("linked as /lost+found/{}", lossy(name)))
            } else if reach.visited.contains(&ino) {
                Some("reachable again through /lost+found".to_string())
            } else {
                if let Some(why) = failed.get(&ino) {
                    detail.push_str(&format!("; cannot be linked into /lost+found: {why}"));
                }
                None
            };
            self.out.problem("unreachable_inode", Some(ino), At::Nowhere, detail, what);
        }
    }

    /// A record's description of its frame agrees with the frame's header (checked where
    /// both exist: records written before descriptions have none, and a frame that does
    /// not decode says nothing reliable).
    fn frame_infos(&mut self) {
        let mut hashes: Vec<(&BlockHash, &super::scan::HashState)> = self.scan.hashes.iter().collect();
        hashes.sort_unstable_by_key(|(h, _)| **h);
        for (hash, hs) in hashes {
            let (Some(said), Some(header)) = (hs.rec.info, hs.header) else { continue };
            if said.describes(&header) {
                continue;
            }
            let detail = format!("block record {} describes its frame as {}, its header says {}", hex(hash), describe(&said), describe(&header));
            let at = hs.first_ref.map_or(At::Nowhere, At::Ino);
            self.out.problem("frame_info", hs.first_ref, at, detail, fix("rewritten from the frame"));
            self.fixed_info.insert(*hash, header);
        }
    }

    /// Refcounts equal the block-map entries using each record; unused records go.
    /// Rewritten records take the frame descriptions `frame_infos` corrected.
    fn refcounts(&mut self) {
        let mut hashes: Vec<(&BlockHash, &super::scan::HashState)> = self.scan.hashes.iter().collect();
        hashes.sort_unstable_by_key(|(h, _)| **h);
        for (hash, hs) in hashes {
            let r = hs.rec;
            if hs.refs == 0 {
                let detail = format!("block record {} ({}-byte frame in pack {}) is used by no block-map entry", hex(hash), r.frame_len, r.pack);
                self.out.problem("orphaned_frame", None, At::Nowhere, detail, fix("removed"));
            } else if hs.refs != r.refcount {
                let detail = format!("block record {}: refcount {}, but {} block-map entries use it", hex(hash), r.refcount, hs.refs);
                let at = hs.first_ref.map_or(At::Nowhere, At::Ino);
                self.out.problem("refcount", hs.first_ref, at, detail, fix("set"));
            }
            let want = hs.keep_refs + self.quarantine.remove(hash).map_or(0, |q| q.0);
            let info = self.fixed_info.get(hash).copied().or(r.info);
            if want == 0 {
                self.out.plan.delete.insert(key_block(hash));
            } else if want != r.refcount || info != r.info {
                self.out.plan.put.insert(key_block(hash), BlockRecord { refcount: want, info, ..r }.encode());
            }
        }
        for (id, (refs, rec)) in std::mem::take(&mut self.quarantine) {
            self.out.plan.put.insert(key_block(&id), BlockRecord { refcount: refs, ..rec }.encode());
        }
    }

    /// Link counts and ".." as the names are now (problems) and as they will be (repairs);
    /// mapped-block counts.
    fn counts(&mut self) {
        let mut now_names: HashMap<u64, u64> = HashMap::new();
        let mut now_subdirs: HashMap<u64, u64> = HashMap::new();
        let mut fin_names: HashMap<u64, u64> = HashMap::new();
        let mut fin_subdirs: HashMap<u64, u64> = HashMap::new();
        let mut fin_parents: HashMap<u64, Vec<u64>> = HashMap::new();
        for n in &self.names {
            let is_dir = match self.kind_of(n.ino) {
                Some(Some(k)) => k == libc::S_IFDIR,
                _ => n.kind == libc::S_IFDIR,
            };
            if !n.added {
                *now_names.entry(n.ino).or_default() += 1;
                if is_dir {
                    *now_subdirs.entry(n.parent).or_default() += 1;
                }
            }
            if !n.removed {
                *fin_names.entry(n.ino).or_default() += 1;
                if is_dir {
                    *fin_subdirs.entry(n.parent).or_default() += 1;
                }
                fin_parents.entry(n.ino).or_default().push(n.parent);
            }
        }
        let mut inodes: Vec<(u64, InodeRecord, bool, u64)> = Vec::new();
        for (&ino, st) in &self.scan.inodes {
            if let Some(rec) = &st.rec
                && !self.freed.contains(&ino)
                && !self.created.contains_key(&ino)
            {
                let stored = if rec.kind == libc::S_IFREG { st.mapped - st.drop_blocks.len() as u64 } else { 0 };
                inodes.push((ino, rec.clone(), false, stored));
            }
        }
        inodes.extend(self.created.iter().map(|(&ino, rec)| (ino, rec.clone(), true, 0)));
        for (ino, rec, created, stored) in inodes {
            let get = |m: &HashMap<u64, u64>| m.get(&ino).copied().unwrap_or(0);
            let is_dir = rec.kind == libc::S_IFDIR;
            let (now, fin) = if is_dir { (2 + get(&now_subdirs), 2 + get(&fin_subdirs)) } else { (get(&now_names), get(&fin_names)) };
            if !created && rec.nlink as u64 != now && (is_dir || now > 0) {
                let detail = if is_dir {
                    format!("nlink {}, but it has {} subdirectories (expected {now})", rec.nlink, now - 2)
                } else {
                    format!("nlink {}, but it has {now} names", rec.nlink)
                };
                self.out.problem("link_count", Some(ino), At::Ino(ino), detail, fix("set"));
            }
            let mut new = rec.clone();
            if is_dir || fin > 0 {
                new.nlink = u32::try_from(fin).unwrap_or(u32::MAX);
            }
            if is_dir {
                new.parent = match fin_parents.get(&ino).map(Vec::as_slice) {
                    _ if ino == ROOT => ROOT,
                    Some([p]) => *p,
                    _ => rec.parent,
                };
            }
            new.stored_blocks = stored;
            if created || new != rec {
                self.out.plan.inodes.insert(ino, new);
            }
        }
    }

    /// Names removed lose their records; names added or rebuilt get new ones.
    fn entries(&mut self) {
        for n in &self.names {
            if n.removed || n.rewrite || n.added {
                self.out.plan.delete.extend(n.keys.iter().cloned());
            }
            if !n.removed && (n.rewrite || n.added) {
                let kind = self.kind_of(n.ino).flatten().unwrap_or(n.kind);
                self.out.plan.entries.push((n.parent, n.name.clone(), n.ino, kind));
            }
        }
    }

    /// The path of an inode in the namespace as it is; None where no path leads.
    fn path_of(&self, ino: u64) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        let mut cur = ino;
        for _ in 0..4096 {
            if cur == ROOT {
                parts.reverse();
                return Some(format!("/{}", parts.join("/")));
            }
            let &i = self.current.first.get(&cur)?;
            parts.push(lossy(&self.names[i].name));
            cur = self.names[i].parent;
        }
        None
    }

    fn entry_path(&self, parent: u64, name: &[u8]) -> Option<String> {
        let dir = self.path_of(parent)?;
        Some(if dir == "/" { format!("/{}", lossy(name)) } else { format!("{dir}/{}", lossy(name)) })
    }

    /// A name for messages: its path, or where it lies when no path leads to it.
    fn name_label(&self, i: usize) -> String {
        let n = &self.names[i];
        self.entry_path(n.parent, &n.name).unwrap_or_else(|| format!("{:?} in inode {}", lossy(&n.name), n.parent))
    }

    fn finish(mut self) -> Findings {
        let out = std::mem::take(&mut self.out);
        let repair = out.repair;
        let convert = |f: Found| {
            let path = match &f.at {
                At::Nowhere => None,
                At::Ino(ino) => self.path_of(*ino),
                At::Entry(parent, name) => self.entry_path(*parent, name),
            };
            let repaired = repair && f.fix.is_some();
            let detail = match f.fix {
                Some(fix) if repaired => format!("{}; {fix}", f.detail),
                _ => f.detail,
            };
            Problem { kind: f.kind, ino: f.ino, path, detail, repaired }
        };
        let Out { problems, notes, plan, .. } = out;
        let problems = problems.into_iter().map(convert).collect();
        let notes = notes.into_iter().map(convert).collect();
        Findings { problems, notes, plan }
    }
}

fn fix(what: &str) -> Option<String> {
    Some(what.to_string())
}

fn new_dir(perm: u16) -> InodeRecord {
    InodeRecord::new(libc::S_IFDIR, perm, 0, 0, ROOT)
}

pub(super) fn kind_name(kind: u32) -> &'static str {
    match kind {
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "file of unknown type",
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn full_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_inos(recs: &[EntryRecord]) -> String {
    let mut inos: Vec<u64> = recs.iter().map(|r| r.ino).collect();
    inos.dedup();
    inos.iter().map(u64::to_string).collect::<Vec<_>>().join(" / ")
}

fn mismatch(n: &Option<Result<EntryRecord, String>>, d: &[(u64, EntryRecord)]) -> String {
    let show = |r: &EntryRecord| format!("inode {}, {}, position {}", r.ino, kind_name(r.kind), r.seq);
    match (n, d) {
        (Some(Ok(_)), []) => "name record without a readdir record".into(),
        (Some(Ok(r)), [(seq, e)]) => format!("name record ({}) and readdir record {seq} ({}) disagree", show(r), show(e)),
        (Some(Ok(_)), many) => format!("{} readdir records for one name", many.len()),
        (_, _) => "readdir record without a (readable) name record".into(),
    }
}

/// Block numbers as runs: "3,7-9".
fn block_list(blocks: &[u64]) -> String {
    runs(blocks).iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect::<Vec<_>>().join(",")
}

/// Inclusive byte ranges of blocks (sorted) of a file of `size` bytes: "131072-262143,524288-655359".
pub(super) fn byte_ranges(blocks: &[u64], bs: u64, size: u64) -> String {
    runs(blocks)
        .iter()
        .map(|&(a, b)| {
            let start = a.saturating_mul(bs);
            let end = b.saturating_add(1).saturating_mul(bs).min(size).max(start + 1) - 1;
            format!("{start}-{end}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn runs(sorted: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &b in sorted {
        match out.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(b) => *end = b,
            _ => out.push((b, b)),
        }
    }
    out
}

fn causes(bad: &[BadBlock]) -> String {
    let mut parts: Vec<String> = bad.iter().take(3).map(|b| format!("block {}: {}", b.block, b.why)).collect();
    if bad.len() > 3 {
        parts.push(format!("and {} more blocks", bad.len() - 3));
    }
    parts.join("; ")
}

/// A frame description for messages: "codec 2, model 0102030405060708, 131072 bytes".
fn describe(info: &FrameInfo) -> String {
    format!("codec {}, model {}, {} bytes", info.codec, full_hex(&info.model), info.plain_len)
}

fn truncate_name(name: &[u8], max: usize) -> Vec<u8> {
    if name.len() <= max {
        return name.to_vec();
    }
    // Cut on a UTF-8 boundary where the name is UTF-8.
    let mut end = max;
    while end > 0 && std::str::from_utf8(&name[..end]).is_err() && std::str::from_utf8(name).is_ok() {
        end -= 1;
    }
    name[..end].to_vec()
}
