//! fsck: checks every record of the store against every other and every frame against
//! its block id, and repairs what can be repaired without guessing.
//!
//! Three steps, each in its own file: `scan` reads the whole tree with streaming scans and
//! decodes every frame; `check` turns what was read into problems and a plan of repairs
//! (with `namespace`, `blocks` and `lost_found`, one file per concern); `repair` applies
//! the plan as one atomic change. After a repair the store is checked again (frames are
//! not decoded twice: repairs never touch pack files) and the result of that second pass
//! is reported too.
//!
//! Problem kinds (stable names, used in `--json` output):
//!
//! | kind | meaning | repair |
//! |---|---|---|
//! | `bad_key` | a key with an unknown tag or the wrong length | none (reported with the key in hex) |
//! | `bad_inode` | an inode record that does not decode, or of an unknown file type | none: never rewritten |
//! | `bad_entry` | a name or readdir record that does not decode | rebuilt from its other half, else removed |
//! | `bad_block_record` | a block record that does not decode | removed; the blocks using it are unreadable |
//! | `root_missing` / `root_not_directory` | inode 1 is absent / not a directory | a new empty root / none |
//! | `dangling_entry` | a directory entry naming a missing inode | removed |
//! | `entry_in_non_directory` | an entry whose directory is missing or not a directory | removed |
//! | `entry_mismatch` | the name record and the readdir record of a name disagree | rebuilt when both name one inode |
//! | `entry_kind` | an entry's file type differs from its inode's | rewritten from the inode |
//! | `root_linked` | an entry naming the root directory | removed |
//! | `dir_multiple_names` | a directory with more than one name | the names other than the one ".." matches are removed |
//! | `dir_parent` | a directory's ".." is not the directory holding its name | set |
//! | `link_count` | nlink differs from the names (files) or 2 + subdirectories (directories) | set |
//! | `unreachable_inode` | an inode no path from the root leads to (not a pending orphan) | linked into /lost+found as `#<ino>` |
//! | `orphan_mark` | an orphan-list entry for an inode that is missing, named or has links | removed |
//! | `xattr_of_missing_inode` | an xattr of a missing inode | removed |
//! | `block_of_missing_inode` | block-map entries of a missing inode | removed |
//! | `block_of_non_file` | block-map entries of an inode that is not a regular file | removed |
//! | `block_past_eof` | block-map entries at or past the file's size | removed |
//! | `stored_blocks` | an inode's count of mapped blocks is wrong | set |
//! | `refcount` | a block record's refcount differs from the block-map entries using it | set |
//! | `orphaned_frame` | a block record no block-map entry uses | removed (compaction reclaims the bytes) |
//! | `lost_changes` | the metadata store ends before changes that had been made durable (its newest commit was damaged and the database fell back to an older one), so the files they made are missing or old | the loss is accepted (the durable watermark is set back); nothing else can bring them back |
//! | `unreadable_block` | blocks of a file whose frame is missing, outside its pack, does not decode, decodes to other data, or whose record is missing or damaged | file moved to /lost+found as `<ino>-<name>`, bad byte ranges in xattr `user.s2sfs.bad_ranges`; the blocks still read as EIO |
//! | `unavailable_block` | blocks of a file whose frame needs what this volume does not have now (a learned model that is missing or damaged); the frames are not damaged | none: the blocks and their records are left as they are, and read again once the model is back |
//! | `frame_info` | a block record's description of its frame (codec, model, plaintext length) differs from what the frame's header says | rewritten from the frame |
//!
//! Notes (information, not problems): `dead_pack` (a pack no record points into;
//! compaction reclaims it), `pending_orphan` (an inode unlinked while open, freed at the
//! next mount; a repair frees it now), `quarantined_file` (a file in /lost+found whose
//! unreadable ranges are already recorded in its xattr).
//!
//! A quarantined block is mapped to a quarantine id (derived from its block id) instead of
//! its content hash: reads of it fail, the file can still be deleted or overwritten, and
//! writing the same content again stores a fresh, good frame instead of sharing the bad one.

mod blocks;
mod checker;
mod lost_found;
mod namespace;
mod repair;
mod scan;
#[cfg(test)]
pub(super) mod tests;

use serde::Serialize;

use super::{FrameInfo, Store, StoreError};

/// The pack id of a block record that points at no frame (pack ids start at 1): fsck
/// quarantines a block this way when its frame is missing, lies outside its pack, cannot
/// be read, or decodes to other data. Reads of such a block fail.
pub const NO_PACK: u32 = 0;

/// Decodes and checks one frame, returning its plaintext (`Codecs::decode_frame`) and what
/// its header says the frame is (the store does not parse frames).
pub type Verify<'a> = &'a (dyn Fn(&[u8]) -> Result<(Vec<u8>, FrameInfo), VerifyError> + Sync);

/// Why `Verify` gives no plaintext for a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The frame is damaged: it does not decode, or not to what its header says. Its
    /// blocks are quarantined by a repair.
    Damaged(String),
    /// The frame needs what the volume does not have now, such as a learned model that is
    /// missing or damaged; says what. Not damage: the frame decodes once that is back, so
    /// fsck reports it and a repair leaves the blocks alone.
    Unavailable(String),
}

/// One thing fsck found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Stable snake_case name of the kind of problem (see the module documentation).
    pub kind: &'static str,
    /// The inode it concerns, if one.
    pub ino: Option<u64>,
    /// The affected file's path in the volume before any repair; None when no path leads
    /// to it (unreachable inodes, records of missing inodes).
    pub path: Option<String>,
    pub detail: String,
    /// Whether `--repair` fixed it (always false without `--repair`).
    pub repaired: bool,
}

/// What the check went through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub inodes: u64,
    pub directories: u64,
    pub files: u64,
    /// Symlinks, fifos, sockets and device nodes.
    pub other_inodes: u64,
    /// Block-map entries (mapped blocks of all files).
    pub blocks: u64,
    /// Block records (stored frames).
    pub frames: u64,
    /// Frames read and decoded.
    pub frames_verified: u64,
    /// Bytes of the frames read and decoded.
    pub bytes_verified: u64,
    /// Bytes of the frames that block records point at.
    pub live_frame_bytes: u64,
    /// Bytes of all pack files.
    pub pack_bytes: u64,
    pub packs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsckOutcome {
    /// No problems.
    Clean,
    /// Repairs were written and the second pass found the store clean.
    Repaired,
    /// Problems were found (without repair) or remain after repair.
    ProblemsRemain,
}

/// The second pass after a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassResult {
    pub problems: Vec<Problem>,
    pub notes: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    pub outcome: FsckOutcome,
    /// Block size of the volume.
    pub block_size: u32,
    pub totals: Totals,
    /// Problems the first pass found; with repair, each says whether it was repaired.
    pub problems: Vec<Problem>,
    /// Information that is not a problem (dead packs, pending orphans, quarantined files).
    pub notes: Vec<Problem>,
    /// Whether a repair wrote changes to the store.
    pub changes_written: bool,
    /// The check run again after the repair wrote changes.
    pub after_repair: Option<PassResult>,
}

/// Progress of the frame check, reported after every batch of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// 1 for the check, 2 for the check after a repair.
    pub pass: u32,
    pub frames_done: u64,
    pub frames_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

impl Store {
    /// Checks the whole store; with `repair`, fixes what can be fixed without guessing and
    /// checks again. `verify` decodes a frame (and checks its own checksum); fsck compares
    /// the plaintext's blake3 with the block id. Damage is reported, never an error: errors
    /// are for a store that cannot be read at all.
    pub fn fsck(
        &self,
        verify: Verify<'_>,
        repair: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<FsckReport, StoreError> {
        let scan = self.fsck_scan(verify, None, 1, progress)?;
        let totals = scan.totals.clone();
        let cache = scan.frame_cache();
        let found = self.fsck_check(scan, repair)?;
        let mut problems = found.problems;
        let mut accepted_loss = false;
        if let Some((found, durable)) = self.lost_changes {
            if repair {
                self.watermark.reset(found)?;
                accepted_loss = true;
            }
            let detail = format!(
                "the metadata store ends at change {found}, but changes up to {durable} had been made durable: \
                 whatever changes {}..={durable} did is missing (damaged metadata log)",
                found + 1
            );
            problems.insert(0, Problem { kind: "lost_changes", ino: None, path: None, detail, repaired: repair });
        }
        let mut report = FsckReport {
            outcome: FsckOutcome::Clean,
            block_size: self.superblock.block_size,
            totals,
            problems,
            notes: found.notes,
            changes_written: accepted_loss,
            after_repair: None,
        };
        if repair && (accepted_loss || !found.plan.is_empty()) {
            self.fsck_apply(found.plan)?;
            report.changes_written = true;
            let scan = self.fsck_scan(verify, Some(&cache), 2, progress)?;
            let again = self.fsck_check(scan, false)?;
            report.after_repair = Some(PassResult { problems: again.problems, notes: again.notes });
        }
        report.outcome = match &report.after_repair {
            Some(second) if second.problems.is_empty() => FsckOutcome::Repaired,
            Some(_) => FsckOutcome::ProblemsRemain,
            None if report.problems.is_empty() => FsckOutcome::Clean,
            None => FsckOutcome::ProblemsRemain,
        };
        Ok(report)
    }
}
