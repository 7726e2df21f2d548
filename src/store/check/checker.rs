//! fsck's judging side: turns what the scan read into problems, and plans the repairs that
//! need no guessing. The plan is made on a model of the namespace (every name, with flags
//! for names a repair removes or adds), so link counts, "..", and reachability are computed
//! on the namespace as it will be, while problems describe it as it is.
//!
//! The concerns depend on each other's findings, so one `Checker` carries them all and
//! this file fixes the order they run in; each concern keeps its own file: `namespace`
//! (names, directories, link counts, reachability), `blocks` (block maps against block
//! records against pack files, refcounts) and `lost_found` (where a repair puts what it
//! will not delete).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::Problem;
use super::lost_found::LostFound;
use super::namespace::{Name, Reach};
use super::scan::Scan;
use crate::store::packs::PACK_HEADER_LEN;
use crate::store::records::*;
use crate::store::txn::hex;
use crate::store::{Store, StoreError};

pub(super) const ROOT: u64 = 1;

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
pub(super) enum At {
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

/// What the checker reports and plans.
#[derive(Default)]
pub(super) struct Out {
    pub repair: bool,
    problems: Vec<Found>,
    notes: Vec<Found>,
    pub plan: Plan,
}

impl Out {
    pub(super) fn problem(
        &mut self,
        kind: &'static str,
        ino: Option<u64>,
        at: At,
        detail: String,
        fix: Option<String>,
    ) {
        self.problems.push(Found { kind, ino, at, detail, fix });
    }
    pub(super) fn note(&mut self, kind: &'static str, ino: Option<u64>, at: At, detail: String, fix: Option<String>) {
        self.notes.push(Found { kind, ino, at, detail, fix });
    }
}

pub(super) struct Checker<'a> {
    pub store: &'a Store,
    pub scan: Scan,
    pub names: Vec<Name>,
    pub by_ino: HashMap<u64, Vec<usize>>,
    /// Inodes the repair creates (a new root, /lost+found).
    pub created: BTreeMap<u64, InodeRecord>,
    /// Pending orphans the repair frees.
    pub freed: BTreeSet<u64>,
    pub lost_found: LostFound,
    pub lost_found_taken: HashSet<Vec<u8>>,
    /// New references to quarantine ids, with the record a new one gets.
    pub quarantine: BTreeMap<BlockHash, (u64, BlockRecord)>,
    /// Frame descriptions a repair rewrites from the frame's header.
    pub fixed_info: HashMap<BlockHash, FrameInfo>,
    /// The namespace as it is.
    pub current: Reach,
    pub out: Out,
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
        // Undecodable records first: pairing names then knows which readdir records did
        // not decode, and does not report those names a second time.
        c.records();
        c.root();
        c.resolve_names();
        c.root_links();
        c.orphans()?;
        // The namespace as it is, fixed before any repair adds or removes a name: paths in
        // messages and the list of unreachable inodes describe the store as found.
        c.current = Reach::new(&c.names, |n| !n.added);
        c.current.walk(&c.names, ROOT);
        let unreachable = c.unreachable_now();
        c.directories();
        c.blocks();
        // Unreadable files move into /lost+found first, under their own names
        // (`<ino>-<name>`); linking what is still unreachable then counts them as placed.
        c.unreadable();
        c.unavailable();
        c.link_unreachable(unreachable);
        // Descriptions before refcounts, which write each block record once with both.
        c.frame_infos();
        c.refcounts();
        // Link counts and entries last: they follow from every name added or removed above.
        c.counts();
        c.entries();
        Ok(c.finish())
    }
}

impl Checker<'_> {
    /// None: no such inode; Some(None): an inode whose record does not decode.
    pub(super) fn kind_of(&self, ino: u64) -> Option<Option<u32>> {
        if let Some(r) = self.created.get(&ino) {
            return Some(Some(r.kind));
        }
        self.scan.inodes.get(&ino).map(|s| s.rec.as_ref().map(|r| r.kind))
    }

    pub(super) fn is_dir(&self, ino: u64) -> bool {
        self.kind_of(ino) == Some(Some(libc::S_IFDIR))
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
            self.out.problem(
                "bad_block_record",
                None,
                At::Nowhere,
                format!("block record {}: {why}", hex(&hash)),
                fix("removed"),
            );
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
                let detail =
                    format!("pack {id:08}.pack ({size} bytes): no block record points into it; compaction reclaims it");
                self.out.note("dead_pack", None, At::Nowhere, detail, None);
            }
        }
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

pub(super) fn fix(what: &str) -> Option<String> {
    Some(what.to_string())
}

pub(super) fn new_dir(perm: u16) -> InodeRecord {
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

pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(super) fn full_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
