//! fsck's /lost+found: where a repair puts what it will not delete.
//!
//! A repair never throws a file away: an inode no path reaches, or a file with blocks
//! that cannot be read, is given a name in /lost+found, and what to keep is left to the
//! user. The directory is made only when something needs it; a check without repair plans
//! the same moves against a stand-in inode number, so that its report says what a repair
//! would do.

use std::collections::HashMap;

use super::checker::{At, Checker, ROOT, kind_name, lossy, new_dir};
use super::namespace::{Name, Reach};

const LOST_FOUND: &[u8] = b"lost+found";
const NAME_MAX: usize = 255;
/// Stands for the inode number of a /lost+found that a check without repair would create.
const PLANNED_INO: u64 = u64::MAX;

pub(super) enum LostFound {
    Unknown,
    Usable(u64),
    Unusable(String),
}

/// What linking the unreachable inodes did: each one's new name, or why it has none.
#[derive(Default)]
struct Placed {
    linked: HashMap<u64, Vec<u8>>,
    failed: HashMap<u64, String>,
}

impl Checker<'_> {
    /// The directory /lost+found, made when first needed.
    pub(super) fn lost_found(&mut self) -> Result<u64, String> {
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

    pub(super) fn existing_lost_found(&self) -> Option<u64> {
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
            self.lost_found_taken =
                self.names.iter().filter(|n| !n.removed && n.parent == ino).map(|n| n.name.clone()).collect();
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

    /// Gives `ino` a name in /lost+found: `wanted`, cut to fit and numbered where taken.
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
        let entry = Name {
            parent: lf,
            name: name.clone(),
            ino,
            kind,
            keys: Vec::new(),
            rewrite: false,
            added: true,
            removed: false,
        };
        self.push_name(entry);
        name
    }

    /// Moves a file into /lost+found as `<ino>-<name>` (its name where the root reaches it)
    /// and removes its other names; says what it did, for the problem's message.
    pub(super) fn move_to_lost_found(&mut self, ino: u64, live: &[usize]) -> Result<String, String> {
        let lf = self.lost_found()?;
        let first =
            self.current.first.get(&ino).copied().filter(|i| live.contains(i)).or_else(|| live.first().copied());
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

    /// Links every inode no path reaches into /lost+found as `#<ino>`, and reports each
    /// inode that was unreachable in the namespace as it is.
    pub(super) fn link_unreachable(&mut self, unreachable_now: Vec<u64>) {
        let mut reach = Reach::new(&self.names, |n| !n.removed);
        reach.walk(&self.names, ROOT);
        let placed = self.link_into_lost_found(&mut reach);
        for ino in unreachable_now {
            self.report_unreachable(ino, &reach, &placed);
        }
    }

    /// Directories without a name go first, then directories named only inside unreachable
    /// ones (cycles), then the rest: each directory linked brings its subtree along, whose
    /// inodes keep their names in it, and only what is left is linked one by one.
    fn link_into_lost_found(&mut self, reach: &mut Reach) -> Placed {
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
        let mut placed = Placed::default();
        for (_, ino) in todo {
            if reach.visited.contains(&ino) {
                continue;
            }
            let lf = match self.lost_found() {
                Ok(lf) => lf,
                Err(why) => {
                    placed.failed.insert(ino, why);
                    continue;
                }
            };
            if self.is_dir(ino) {
                for i in self.live_names(ino) {
                    self.names[i].removed = true;
                }
            }
            let name = self.add_to_lost_found(lf, ino, format!("#{ino}").into_bytes());
            placed.linked.insert(ino, name);
            for i in seen..self.names.len() {
                reach.attach(&self.names, i);
            }
            seen = self.names.len();
        }
        placed
    }

    fn report_unreachable(&mut self, ino: u64, reach: &Reach, placed: &Placed) {
        let Some(rec) = self.scan.inodes.get(&ino).and_then(|s| s.rec.as_ref()) else { return };
        let mut detail =
            format!("a {} with nlink {} that no path from the root reaches", kind_name(rec.kind), rec.nlink);
        if self.by_ino.get(&ino).is_some_and(|v| v.iter().any(|&i| !self.names[i].added)) {
            detail.push_str(" (its names lie in unreachable directories)");
        }
        let what = if let Some(name) = placed.linked.get(&ino) {
            Some(format!("linked as /lost+found/{}", lossy(name)))
        } else if reach.visited.contains(&ino) {
            Some("reachable again through /lost+found".to_string())
        } else {
            if let Some(why) = placed.failed.get(&ino) {
                detail.push_str(&format!("; cannot be linked into /lost+found: {why}"));
            }
            None
        };
        self.out.problem("unreachable_inode", Some(ino), At::Nowhere, detail, what);
    }
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
