//! fsck's namespace checks: names, directories, link counts and what the root reaches.
//!
//! A name's two records, its inode's kind, its directory's ".." and the link counts only
//! make sense together, so they are judged on one model of the namespace rather than
//! record by record. Every name in it says whether the repair removes or adds it: problems
//! describe the namespace as it is, while the counts and ".." a repair writes are computed
//! on the namespace as the repair leaves it.

use std::collections::{HashMap, HashSet, VecDeque};

use super::checker::{At, Checker, ROOT, fix, kind_name, lossy, new_dir};
use super::scan::{NameGroup, block_kept};
use crate::store::StoreError;
use crate::store::records::*;

/// One name in the model of the namespace.
pub(super) struct Name {
    pub parent: u64,
    pub name: Vec<u8>,
    pub ino: u64,
    /// The file type the entry should carry.
    pub kind: u32,
    /// The records that hold it now.
    pub keys: Vec<Vec<u8>>,
    /// Its records are rewritten (they disagree, or carry the wrong type).
    pub rewrite: bool,
    /// Made by the repair.
    pub added: bool,
    /// Removed by the repair.
    pub removed: bool,
}

/// Which inodes a walk from the root reaches, and by which name each was first reached.
#[derive(Default)]
pub(super) struct Reach {
    children: HashMap<u64, Vec<usize>>,
    pub visited: HashSet<u64>,
    pub first: HashMap<u64, usize>,
}

impl Reach {
    pub(super) fn new(names: &[Name], include: impl Fn(&Name) -> bool) -> Reach {
        let mut r = Reach::default();
        for (i, n) in names.iter().enumerate() {
            if include(n) {
                r.children.entry(n.parent).or_default().push(i);
            }
        }
        r
    }

    pub(super) fn walk(&mut self, names: &[Name], start: u64) {
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
    pub(super) fn attach(&mut self, names: &[Name], i: usize) {
        let n = &names[i];
        self.children.entry(n.parent).or_default().push(i);
        if self.visited.contains(&n.parent) && !self.visited.contains(&n.ino) {
            self.first.insert(n.ino, i);
            self.walk(names, n.ino);
        }
    }
}

/// How many names and subdirectories each inode has, in the namespace as it is (`now_*`)
/// and as the repair leaves it (`fin_*`), and which directories hold the names that stay.
#[derive(Default)]
struct LinkCounts {
    now_names: HashMap<u64, u64>,
    now_subdirs: HashMap<u64, u64>,
    fin_names: HashMap<u64, u64>,
    fin_subdirs: HashMap<u64, u64>,
    fin_parents: HashMap<u64, Vec<u64>>,
}

impl Checker<'_> {
    /// Names of `ino` that the repair keeps.
    pub(super) fn live_names(&self, ino: u64) -> Vec<usize> {
        self.by_ino.get(&ino).map_or_else(Vec::new, |v| v.iter().copied().filter(|&i| !self.names[i].removed).collect())
    }

    pub(super) fn push_name(&mut self, name: Name) -> usize {
        let i = self.names.len();
        self.by_ino.entry(name.ino).or_default().push(i);
        self.names.push(name);
        i
    }

    pub(super) fn root(&mut self) {
        match self.scan.inodes.get(&ROOT).map(|s| s.rec.as_ref()) {
            None => {
                self.created.insert(ROOT, new_dir(0o755));
                let detail = "inode 1, the root directory, is missing".to_string();
                self.out.problem(
                    "root_missing",
                    Some(ROOT),
                    At::Nowhere,
                    detail,
                    fix("a new root keeps the entries found in it"),
                );
            }
            Some(Some(r)) if r.kind != libc::S_IFDIR => {
                let detail = format!("inode 1, the root directory, is a {}", kind_name(r.kind));
                self.out.problem("root_not_directory", Some(ROOT), At::Nowhere, detail, None);
            }
            _ => {}
        }
    }

    /// Pairs every name record with its readdir record, and checks where they point.
    pub(super) fn resolve_names(&mut self) {
        let bad_dirents = self.undecodable_dirents();
        for ((parent, name), g) in std::mem::take(&mut self.scan.names) {
            let mut keys = Vec::new();
            if g.n.is_some() {
                keys.push(key_u64_bytes(TAG_NAME, parent, &name));
            }
            keys.extend(g.d.iter().map(|&(seq, _)| key_u64_u64(TAG_DIRENT, parent, seq)));
            let candidates: Vec<EntryRecord> = name_record(&g).into_iter().chain(g.d.iter().map(|&(_, r)| r)).collect();
            if self.unusable_name(parent, &name, &g, &candidates) {
                self.out.plan.delete.extend(keys);
                continue;
            }
            let mut targets: Vec<EntryRecord> = Vec::new();
            for r in &candidates {
                if self.kind_of(r.ino).is_some() && !targets.iter().any(|t| t.ino == r.ino) {
                    targets.push(*r);
                }
            }
            match targets[..] {
                [] => {
                    let detail = format!("points at inode {}, which does not exist", describe_inos(&candidates));
                    let at = At::Entry(parent, name);
                    self.out.problem("dangling_entry", candidates.first().map(|r| r.ino), at, detail, fix("removed"));
                    self.out.plan.delete.extend(keys);
                }
                [chosen] => self.agreed_name(parent, name, keys, &g, chosen, &bad_dirents),
                _ => self.disputed_name(parent, name, keys, &g, &targets),
            }
        }
    }

    /// The readdir records `records` found undecodable, as (directory, sequence).
    fn undecodable_dirents(&self) -> HashSet<(u64, u64)> {
        self.out
            .plan
            .delete
            .iter()
            .filter(|k| k.len() == 17 && k[0] == TAG_DIRENT)
            .map(|k| {
                (
                    u64::from_be_bytes(k[1..9].try_into().unwrap_or_default()),
                    u64::from_be_bytes(k[9..17].try_into().unwrap_or_default()),
                )
            })
            .collect()
    }

    /// Reports a name record that does not decode, and a name held by something that is not
    /// a directory; true when the name's records are to be removed for it.
    fn unusable_name(&mut self, parent: u64, name: &[u8], g: &NameGroup, candidates: &[EntryRecord]) -> bool {
        if let Some(Err(why)) = &g.n {
            let what = if candidates.is_empty() { "removed" } else { "rebuilt from its readdir record" };
            let detail = format!("name record does not decode ({why})");
            self.out.problem(
                "bad_entry",
                candidates.first().map(|r| r.ino),
                At::Entry(parent, name.to_vec()),
                detail,
                fix(what),
            );
            if candidates.is_empty() {
                return true;
            }
        }
        if parent == ROOT || matches!(self.kind_of(parent), Some(None) | Some(Some(libc::S_IFDIR))) {
            return false;
        }
        let holder = match self.kind_of(parent) {
            None => format!("inode {parent}, which does not exist"),
            Some(Some(k)) => format!("inode {parent}, a {}", kind_name(k)),
            Some(None) => format!("inode {parent}"),
        };
        let detail = format!("entry {:?} (inode {}) in {holder}", lossy(name), describe_inos(candidates));
        let ino = candidates.first().map(|r| r.ino);
        self.out.problem("entry_in_non_directory", ino, At::Nowhere, detail, fix("removed"));
        true
    }

    /// A name whose records name one existing inode: rebuilt where its records disagree
    /// otherwise, rewritten where it carries the wrong file type.
    fn agreed_name(
        &mut self,
        parent: u64,
        name: Vec<u8>,
        keys: Vec<Vec<u8>>,
        g: &NameGroup,
        chosen: EntryRecord,
        bad_dirents: &HashSet<(u64, u64)>,
    ) {
        let n_rec = name_record(g);
        let consistent = n_rec.is_some_and(|r| g.d.len() == 1 && g.d[0].0 == r.seq && g.d[0].1 == r);
        // An undecodable half is already reported as bad_entry.
        let covered = matches!(g.n, Some(Err(_)))
            || n_rec.is_some_and(|r| g.d.is_empty() && bad_dirents.contains(&(parent, r.seq)));
        if !consistent && !covered {
            let detail = mismatch(&g.n, &g.d);
            self.out.problem(
                "entry_mismatch",
                Some(chosen.ino),
                At::Entry(parent, name.clone()),
                detail,
                fix("rebuilt"),
            );
        }
        let kind = match self.kind_of(chosen.ino) {
            Some(Some(k)) => k,
            _ => chosen.kind,
        };
        if kind != chosen.kind {
            let detail = format!("entry says {}, the inode is a {}", kind_name(chosen.kind), kind_name(kind));
            self.out.problem("entry_kind", Some(chosen.ino), At::Entry(parent, name.clone()), detail, fix("rewritten"));
        }
        let rewrite = !consistent || kind != chosen.kind;
        self.push_name(Name { parent, name, ino: chosen.ino, kind, keys, rewrite, added: false, removed: false });
    }

    /// A name whose records name different existing inodes: reported, not repaired (which
    /// one is right would be a guess); the name record's inode, where it exists, stands
    /// for it in the model.
    fn disputed_name(
        &mut self,
        parent: u64,
        name: Vec<u8>,
        keys: Vec<Vec<u8>>,
        g: &NameGroup,
        targets: &[EntryRecord],
    ) {
        let detail = format!("{}; they name different inodes ({})", mismatch(&g.n, &g.d), describe_inos(targets));
        let chosen = name_record(g).filter(|r| self.kind_of(r.ino).is_some()).unwrap_or(targets[0]);
        self.out.problem("entry_mismatch", Some(chosen.ino), At::Entry(parent, name.clone()), detail, None);
        let kind = self.kind_of(chosen.ino).flatten().unwrap_or(chosen.kind);
        let n = Name { parent, name, ino: chosen.ino, kind, keys, rewrite: false, added: false, removed: false };
        self.push_name(n);
    }

    pub(super) fn root_links(&mut self) {
        for i in self.by_ino.get(&ROOT).cloned().unwrap_or_default() {
            let n = &mut self.names[i];
            n.removed = true;
            let at = At::Entry(n.parent, n.name.clone());
            self.out.problem("root_linked", Some(ROOT), at, "an entry names the root directory".into(), fix("removed"));
        }
    }

    /// The orphan list: inodes unlinked while open are freed (a repair frees them now);
    /// marks of inodes that are missing, named or linked are wrong.
    pub(super) fn orphans(&mut self) -> Result<(), StoreError> {
        let marked: Vec<u64> = self.scan.inodes.iter().filter(|(_, s)| s.orphan_mark).map(|(&i, _)| i).collect();
        for ino in marked {
            let Some(rec) = self.scan.inodes[&ino].rec.clone() else { continue };
            let named = self.live_names(ino).len();
            if rec.kind != libc::S_IFDIR && rec.nlink == 0 && named == 0 {
                self.free_pending_orphan(ino, &rec)?;
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

    fn free_pending_orphan(&mut self, ino: u64, rec: &InodeRecord) -> Result<(), StoreError> {
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
            if block_kept(Some(rec), block, self.scan.block_size)
                && let Some(h) = self.scan.hashes.get_mut(&hash)
            {
                h.keep_refs = h.keep_refs.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Inodes no path from the root reaches in the namespace as it is (`current`), pending
    /// orphans aside.
    pub(super) fn unreachable_now(&self) -> Vec<u64> {
        self.scan
            .inodes
            .iter()
            .filter(|&(ino, s)| s.rec.is_some() && !self.freed.contains(ino) && !self.current.visited.contains(ino))
            .map(|(&ino, _)| ino)
            .collect()
    }

    /// Every directory has one name, and ".." names the directory holding it.
    pub(super) fn directories(&mut self) {
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
            let live = self.one_name_per_directory(ino, dotdot);
            if let [i] = live[..] {
                let holder = self.names[i].parent;
                if holder != dotdot {
                    let detail = format!("\"..\" names inode {dotdot}, but the directory's entry is in inode {holder}");
                    self.out.problem("dir_parent", Some(ino), At::Ino(ino), detail, fix("set"));
                }
            }
        }
    }

    /// A directory with several names keeps the one its ".." agrees with, when exactly one
    /// does (any other choice would be a guess). Returns the names it keeps.
    fn one_name_per_directory(&mut self, ino: u64, dotdot: u64) -> Vec<usize> {
        let live = self.live_names(ino);
        if live.len() <= 1 {
            return live;
        }
        let keep: Vec<usize> = live.iter().copied().filter(|&i| self.names[i].parent == dotdot).collect();
        let paths: Vec<String> = live.iter().map(|&i| self.name_label(i)).collect();
        let fix = keep.len() == 1;
        let mut detail = format!("a directory with {} names ({})", live.len(), paths.join(", "));
        if !fix {
            detail.push_str(&format!("; not exactly one lies in the directory \"..\" names (inode {dotdot})"));
        }
        let what = fix.then(|| format!("the names outside its \"..\" (inode {dotdot}) removed"));
        self.out.problem("dir_multiple_names", Some(ino), At::Ino(ino), detail, what);
        if !fix {
            return live;
        }
        for &i in &live {
            if i != keep[0] {
                self.names[i].removed = true;
            }
        }
        keep
    }

    /// Link counts and ".." as the names are now (problems) and as they will be (repairs);
    /// mapped-block counts.
    pub(super) fn counts(&mut self) {
        let links = self.link_counts();
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
            self.inode_counts(&links, ino, rec, created, stored);
        }
    }

    fn link_counts(&self) -> LinkCounts {
        let mut c = LinkCounts::default();
        for n in &self.names {
            let is_dir = match self.kind_of(n.ino) {
                Some(Some(k)) => k == libc::S_IFDIR,
                _ => n.kind == libc::S_IFDIR,
            };
            if !n.added {
                *c.now_names.entry(n.ino).or_default() += 1;
                if is_dir {
                    *c.now_subdirs.entry(n.parent).or_default() += 1;
                }
            }
            if !n.removed {
                *c.fin_names.entry(n.ino).or_default() += 1;
                if is_dir {
                    *c.fin_subdirs.entry(n.parent).or_default() += 1;
                }
                c.fin_parents.entry(n.ino).or_default().push(n.parent);
            }
        }
        c
    }

    /// Reports a wrong link count of one inode (not of one the repair creates), and plans
    /// the record the repair leaves: its link count, "..", and count of stored blocks.
    fn inode_counts(&mut self, links: &LinkCounts, ino: u64, rec: InodeRecord, created: bool, stored: u64) {
        let get = |m: &HashMap<u64, u64>| m.get(&ino).copied().unwrap_or(0);
        let is_dir = rec.kind == libc::S_IFDIR;
        let (now, fin) = if is_dir {
            (2 + get(&links.now_subdirs), 2 + get(&links.fin_subdirs))
        } else {
            (get(&links.now_names), get(&links.fin_names))
        };
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
            new.parent = match links.fin_parents.get(&ino).map(Vec::as_slice) {
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

    /// Names removed lose their records; names added or rebuilt get new ones.
    pub(super) fn entries(&mut self) {
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
    pub(super) fn path_of(&self, ino: u64) -> Option<String> {
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

    pub(super) fn entry_path(&self, parent: u64, name: &[u8]) -> Option<String> {
        let dir = self.path_of(parent)?;
        Some(if dir == "/" { format!("/{}", lossy(name)) } else { format!("{dir}/{}", lossy(name)) })
    }

    /// A name for messages: its path, or where it lies when no path leads to it.
    pub(super) fn name_label(&self, i: usize) -> String {
        let n = &self.names[i];
        self.entry_path(n.parent, &n.name).unwrap_or_else(|| format!("{:?} in inode {}", lossy(&n.name), n.parent))
    }
}

/// The name record, where it decodes.
fn name_record(g: &NameGroup) -> Option<EntryRecord> {
    match &g.n {
        Some(Ok(r)) => Some(*r),
        _ => None,
    }
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
        (Some(Ok(r)), [(seq, e)]) => {
            format!("name record ({}) and readdir record {seq} ({}) disagree", show(r), show(e))
        }
        (Some(Ok(_)), many) => format!("{} readdir records for one name", many.len()),
        (_, _) => "readdir record without a (readable) name record".into(),
    }
}
