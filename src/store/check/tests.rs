//! fsck against stores made through the store's own API, damaged through raw records,
//! checked, repaired, and checked again. These tests need the raw accessors of this layer
//! and nothing above it; fsck of volumes, with damage read back through the volume, is
//! tested through the public API in tests/reliability/fsck.rs.

use std::path::Path;

use super::checker::ROOT;
use super::{FsckOutcome, FsckReport, Problem};
use crate::codec::Codecs;
use crate::store::records::*;
use crate::store::{Store, StoreError, StoreOptions};

const BS: usize = 4096;

/// Compressible data, different for every seed and for every block of a file.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i / 7) as u8 ^ seed.wrapping_mul(17)).collect()
}

/// A small store, laid out as the volume lays out what it writes:
/// ```text
/// /d/          directory
/// /d/e/        directory
/// /d/f         3 blocks + 100 bytes
/// /g           2 blocks + 50 bytes, xattr user.k
/// /h, /d/e/h2  one file with two names, 1 block
/// /s           symlink to d/f
/// /dup         the same content as /g (shared frames)
/// /sparse      a hole, then one block
/// /last        1 block, written last (its frame ends the pack)
/// ```
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    d: u64,
    f: u64,
    g: u64,
    h: u64,
    last: u64,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut txn = store.begin();
    txn.put_inode(ROOT, &InodeRecord::new(libc::S_IFDIR, 0o755, 0, 0, ROOT));
    txn.commit(false).unwrap();
    let b = Builder { store: &store, codecs: Codecs::new(3) };
    let d = b.dir(ROOT, "d");
    let e = b.dir(d, "e");
    let f = b.file(d, "f", 0, &pattern(3 * BS + 100, 1));
    let g_data = pattern(2 * BS + 50, 2);
    let g = b.file(ROOT, "g", 0, &g_data);
    let mut txn = store.begin();
    txn.set_xattr(g, b"user.k", b"v");
    txn.commit(false).unwrap();
    let h = b.file(ROOT, "h", 0, &pattern(BS, 3));
    b.link(h, e, "h2");
    b.symlink(ROOT, "s", "d/f");
    b.file(ROOT, "dup", 0, &g_data);
    b.file(ROOT, "sparse", 5 * BS as u64, &pattern(BS, 4));
    let last = b.file(ROOT, "last", 0, &pattern(BS, 5));
    store.flush().unwrap();
    drop(store);
    Fixture { dir, d, f, g, h, last }
}

/// Makes what the volume makes, through the store's API: a name with its inode in one
/// change, a link count raised by each subdirectory or hard link, data in blocks named by
/// the blake3 of their bytes (the last one cut at the end of the file) and encoded by the
/// volume's codecs, and each file's count of mapped blocks.
struct Builder<'a> {
    store: &'a Store,
    codecs: Codecs,
}

impl Builder<'_> {
    fn add(&self, parent: u64, name: &str, rec: InodeRecord) -> u64 {
        let ino = self.store.new_ino().unwrap();
        let mut txn = self.store.begin();
        let mut dir = txn.inode(parent).unwrap().unwrap();
        if rec.kind == libc::S_IFDIR {
            dir.nlink += 1;
        }
        txn.add_entry(parent, name.as_bytes(), ino, rec.kind).unwrap();
        txn.put_inode(ino, &rec);
        txn.put_inode(parent, &dir);
        txn.commit(false).unwrap();
        ino
    }

    fn dir(&self, parent: u64, name: &str) -> u64 {
        self.add(parent, name, InodeRecord::new(libc::S_IFDIR, 0o755, 0, 0, parent))
    }

    fn symlink(&self, parent: u64, name: &str, target: &str) -> u64 {
        let mut rec = InodeRecord::new(libc::S_IFLNK, 0o777, 0, 0, parent);
        rec.size = target.len() as u64;
        rec.target = target.as_bytes().to_vec();
        self.add(parent, name, rec)
    }

    fn link(&self, ino: u64, parent: u64, name: &str) {
        let mut txn = self.store.begin();
        let mut rec = txn.inode(ino).unwrap().unwrap();
        rec.nlink += 1;
        txn.add_entry(parent, name.as_bytes(), ino, rec.kind).unwrap();
        txn.put_inode(ino, &rec);
        txn.commit(false).unwrap();
    }

    /// A file holding `data` from `offset` (a multiple of the block size) on.
    fn file(&self, parent: u64, name: &str, offset: u64, data: &[u8]) -> u64 {
        let ino = self.add(parent, name, InodeRecord::new(libc::S_IFREG, 0o644, 0, 0, parent));
        let mut txn = self.store.begin();
        let mut rec = txn.inode(ino).unwrap().unwrap();
        for (i, plain) in data.chunks(BS).enumerate() {
            let block = offset / BS as u64 + i as u64;
            let hash: BlockHash = *blake3::hash(plain).as_bytes();
            let frame = || -> Result<(Vec<u8>, FrameInfo), StoreError> {
                let frame = self.codecs.encode_block(plain).unwrap();
                let (_, info) = crate::volume::verify_frame(&self.codecs, &frame).unwrap();
                Ok((frame, info))
            };
            rec.stored_blocks += txn.set_block(ino, block, Some(hash), frame).unwrap() as u64;
        }
        rec.size = offset + data.len() as u64;
        txn.put_inode(ino, &rec);
        txn.commit(false).unwrap();
        ino
    }
}

pub(crate) fn open(dir: &Path) -> Store {
    Store::open(dir, &StoreOptions { block_size: BS as u32, meta_cache_bytes: 1 << 20, allow_lost_changes: false })
        .unwrap()
}

pub(crate) fn fsck(store: &Store, repair: bool) -> FsckReport {
    let codecs = Codecs::new(3);
    let verify = |f: &[u8]| crate::volume::verify_frame(&codecs, f);
    store.fsck(&verify, repair, &mut |_| {}).unwrap()
}

fn find<'a>(problems: &'a [Problem], kind: &str) -> &'a Problem {
    problems.iter().find(|p| p.kind == kind).unwrap_or_else(|| panic!("no {kind} among {problems:#?}"))
}

fn kinds(problems: &[Problem]) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = problems.iter().map(|p| p.kind).collect();
    k.sort_unstable();
    k.dedup();
    k
}

/// Everything found was repaired and the check after the repair is clean; so is a fresh
/// check of the reopened store.
fn assert_repaired(report: &FsckReport, dir: &Path, store: Store) {
    assert_eq!(report.outcome, FsckOutcome::Repaired, "{report:#?}");
    assert!(report.problems.iter().all(|p| p.repaired), "{:#?}", report.problems);
    assert!(report.after_repair.as_ref().unwrap().problems.is_empty(), "{report:#?}");
    drop(store);
    let again = fsck(&open(dir), false);
    assert!(again.problems.is_empty(), "after reopening: {:#?}", again.problems);
}

fn block_record(store: &Store, hash: &BlockHash) -> BlockRecord {
    BlockRecord::decode(&store.raw_get(&key_block(hash)).unwrap()).unwrap()
}

fn entry_keys(store: &Store, parent: u64, name: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let e = store.lookup(parent, name).unwrap().unwrap();
    (key_u64_bytes(TAG_NAME, parent, name), key_u64_u64(TAG_DIRENT, parent, e.seq))
}

#[test]
fn refcounts_and_orphaned_frames() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let hash = store.block(fx.f, 0).unwrap().unwrap();
    let mut rec = block_record(&store, &hash);
    rec.refcount = 5;
    store.raw_put(&key_block(&hash), &rec.encode());
    let stray = [9u8; 32];
    store.raw_put(&key_block(&stray), &BlockRecord { refcount: 1, ..rec }.encode());
    let shared = store.block(fx.g, 0).unwrap().unwrap();
    let mut srec = block_record(&store, &shared);
    assert_eq!(srec.refcount, 2, "g and dup share their frames");
    srec.refcount = 1;
    store.raw_put(&key_block(&shared), &srec.encode());

    let report = fsck(&store, false);
    assert_eq!(report.outcome, FsckOutcome::ProblemsRemain);
    assert_eq!(kinds(&report.problems), ["orphaned_frame", "refcount"]);
    let rc: Vec<&Problem> = report.problems.iter().filter(|p| p.kind == "refcount").collect();
    assert_eq!(rc.len(), 2);
    assert!(rc.iter().any(|p| p.path.as_deref() == Some("/d/f") && p.detail.contains("refcount 5, but 1")), "{rc:#?}");
    assert!(rc.iter().any(|p| p.detail.contains("refcount 1, but 2")), "{rc:#?}");
    assert!(report.problems.iter().all(|p| !p.repaired));
    assert_eq!(fsck(&store, false).problems.len(), 3, "a check alone changes nothing");

    let report = fsck(&store, true);
    assert_eq!(block_record(&store, &hash).refcount, 1);
    assert_eq!(block_record(&store, &shared).refcount, 2);
    assert!(store.raw_get(&key_block(&stray)).is_none());
    assert_repaired(&report, fx.dir.path(), store);
}

#[test]
fn directory_entries() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let mut txn = store.begin();
    txn.add_entry(ROOT, b"ghost", 999_999, libc::S_IFREG).unwrap();
    txn.add_entry(424_242, b"nowhere", fx.g, libc::S_IFREG).unwrap();
    txn.commit(true).unwrap();
    // /g loses its readdir record, /s says it is a regular file.
    let (_, g_dirent) = entry_keys(&store, ROOT, b"g");
    store.raw_remove(&g_dirent);
    let (s_name, s_dirent) = entry_keys(&store, ROOT, b"s");
    let mut e = EntryRecord::decode(&store.raw_get(&s_name).unwrap()).unwrap();
    e.kind = libc::S_IFREG;
    store.raw_put(&s_name, &e.encode());
    store.raw_put(&s_dirent, &[e.encode(), b"s".to_vec()].concat());
    // An undecodable name record and readdir record.
    store.raw_put(&key_u64_bytes(TAG_NAME, ROOT, b"junk"), b"x");
    store.raw_put(&key_u64_u64(TAG_DIRENT, fx.d, 1 << 40), b"short");

    let report = fsck(&store, false);
    assert_eq!(
        kinds(&report.problems),
        ["bad_entry", "dangling_entry", "entry_in_non_directory", "entry_kind", "entry_mismatch"]
    );
    assert_eq!(find(&report.problems, "dangling_entry").path.as_deref(), Some("/ghost"));
    assert_eq!(find(&report.problems, "entry_mismatch").path.as_deref(), Some("/g"));
    assert_eq!(find(&report.problems, "entry_kind").path.as_deref(), Some("/s"));
    let bad: Vec<Option<&str>> =
        report.problems.iter().filter(|p| p.kind == "bad_entry").map(|p| p.path.as_deref()).collect();
    assert_eq!(bad, [Some("/d"), Some("/junk")]);
    assert_eq!(report.problems.iter().filter(|p| p.kind == "dangling_entry").count(), 1, "/junk is not dangling too");
    let p = find(&report.problems, "entry_in_non_directory");
    assert_eq!(p.ino, Some(fx.g));
    assert!(p.detail.contains("inode 424242, which does not exist"), "{}", p.detail);

    let report = fsck(&store, true);
    assert!(store.lookup(ROOT, b"ghost").unwrap().is_none());
    assert_eq!(store.lookup(ROOT, b"s").unwrap().unwrap().kind, libc::S_IFLNK);
    let listed: Vec<Vec<u8>> = store.entries_after(ROOT, 0, 100).unwrap().into_iter().map(|(_, n)| n).collect();
    assert!(listed.contains(&b"g".to_vec()), "readdir lists /g again");
    assert_eq!(store.inode(fx.g).unwrap().unwrap().nlink, 1);
    assert_repaired(&report, fx.dir.path(), store);
}

#[test]
fn undecodable_records_are_reported_not_rewritten() {
    let fx = fixture();
    let store = open(fx.dir.path());
    store.raw_put(b"Zjunk", b"x");
    store.raw_put(&key_u64(TAG_INODE, 555), &[1, 2, 3]);
    store.raw_put(&key_block(&[3u8; 32]), b"xx");
    store.raw_put(&[TAG_ORPHAN, 1, 2], b"");
    drop(store);
    // The store still opens with a block record it cannot decode.
    let store = open(fx.dir.path());
    let report = fsck(&store, true);
    assert_eq!(kinds(&report.problems), ["bad_block_record", "bad_inode", "bad_key"]);
    let bad_key: Vec<&Problem> = report.problems.iter().filter(|p| p.kind == "bad_key").collect();
    assert!(bad_key.iter().any(|p| p.detail.ends_with("key 5a6a756e6b") && !p.repaired), "{bad_key:#?}");
    assert!(bad_key.iter().any(|p| p.detail.ends_with("key 4f0102")), "{bad_key:#?}");
    assert_eq!(find(&report.problems, "bad_inode").ino, Some(555));
    assert!(find(&report.problems, "bad_block_record").repaired);
    assert_eq!(report.outcome, FsckOutcome::ProblemsRemain);
    let remaining = &report.after_repair.as_ref().unwrap().problems;
    assert_eq!(kinds(remaining), ["bad_inode", "bad_key"]);
    assert_eq!(store.raw_get(&key_u64(TAG_INODE, 555)).unwrap(), [1, 2, 3], "never rewritten");
    assert!(store.raw_get(&key_block(&[3u8; 32])).is_none());
}

#[test]
fn byte_ranges_merge_and_clip() {
    use super::blocks::byte_ranges;
    assert_eq!(byte_ranges(&[1, 4], 131_072, 10 << 20), "131072-262143,524288-655359");
    assert_eq!(byte_ranges(&[0, 1, 2, 5], 4096, 5 * 4096 + 10), "0-12287,20480-20489");
}

/// A metadata store that ends before changes known durable (a database fallen back to an
/// older commit, imitated here by a watermark ahead of it) is refused at open; fsck
/// reports it and its repair accepts the loss, after which the store opens again.
#[test]
fn lost_durable_changes_are_refused_reported_and_accepted_by_repair() {
    let fx = fixture();
    let durable = {
        let store = open(fx.dir.path());
        let (wm, seq) = super::super::watermark::Watermark::open(&fx.dir.path().join("durable")).unwrap();
        let seq = seq.expect("a shut-down volume recorded its watermark");
        wm.reset(seq + 5).unwrap();
        drop(store);
        seq + 5
    };
    let opts = |allow| StoreOptions { block_size: BS as u32, meta_cache_bytes: 1 << 20, allow_lost_changes: allow };
    match Store::open(fx.dir.path(), &opts(false)) {
        Err(e @ StoreError::LostChanges { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("meta") && msg.contains(&format!("change {durable}")) && !msg.contains('\n'), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a store that lost durable changes opened"),
    }
    let store = Store::open(fx.dir.path(), &opts(true)).unwrap();
    let report = fsck(&store, false);
    assert_eq!(kinds(&report.problems), ["lost_changes"]);
    assert_eq!(report.outcome, FsckOutcome::ProblemsRemain);
    let report = fsck(&store, true);
    assert!(find(&report.problems, "lost_changes").repaired);
    assert_repaired(&report, fx.dir.path(), store);
}

/// A record's frame description that disagrees with the frame's header is reported and
/// rewritten from the frame; records without one (written before descriptions) are fine.
#[test]
fn frame_descriptions_are_checked_against_frames() {
    let fx = fixture();
    let store = open(fx.dir.path());
    let f0 = store.block(fx.f, 0).unwrap().unwrap();
    let good = block_record(&store, &f0);
    let described = good.info.expect("the volume describes the frames it writes");
    assert_eq!(described.plain_len, BS as u32);
    assert_eq!(described.model, [0; 8]);
    // Wrong plaintext length; the refcount is off as well, so one record gets both fixes.
    let wrong = BlockRecord { info: Some(FrameInfo { plain_len: 7, ..described }), refcount: 9, ..good };
    store.raw_put(&key_block(&f0), &wrong.encode());
    // A record from before descriptions: not a problem.
    let h0 = store.block(fx.h, 0).unwrap().unwrap();
    let h_rec = block_record(&store, &h0);
    let legacy = BlockRecord { info: None, written: 0, ..h_rec };
    store.raw_put(&key_block(&h0), &legacy.encode());
    assert_eq!(store.raw_get(&key_block(&h0)).unwrap().len(), 24);

    let report = fsck(&store, false);
    assert_eq!(kinds(&report.problems), ["frame_info", "refcount"]);
    let p = find(&report.problems, "frame_info");
    assert_eq!(p.path.as_deref(), Some("/d/f"));
    assert!(p.detail.contains("7 bytes") && p.detail.contains("4096 bytes"), "{}", p.detail);

    let report = fsck(&store, true);
    assert!(find(&report.problems, "frame_info").repaired);
    assert_eq!(block_record(&store, &f0), good);
    assert_eq!(block_record(&store, &h0), legacy, "left as it was");
    assert_repaired(&report, fx.dir.path(), store);
}

/// A frame replaced while a check of a mounted store runs (recompression), after the check
/// read the metadata and with the old frame's hole already punched, is judged by its
/// record as it is now, not reported as damage.
#[test]
fn a_frame_replaced_during_the_check_is_not_damage() {
    use crate::codec::{CodecId, FrameHeader, ModelId};
    let fx = fixture();
    let store = open(fx.dir.path());
    let hash = store.block(fx.last, 0).unwrap().unwrap();
    let old = block_record(&store, &hash);
    let plain = pattern(BS, 5);
    let raw = FrameHeader::new(CodecId::Raw, ModelId::NONE, &plain, &plain).unwrap().encode(&plain);
    let info = FrameInfo { codec: CodecId::Raw as u8, model: [0; 8], plain_len: BS as u32 };
    let codecs = Codecs::new(3);
    let verify = |f: &[u8]| crate::volume::verify_frame(&codecs, f);
    let mut replaced = false;
    // The first progress report comes after the metadata is read, before any frame is.
    let report = store
        .fsck(&verify, false, &mut |_| {
            if !replaced {
                replaced = true;
                assert!(store.replace_frame(&hash, &old, raw.clone(), info).unwrap());
                store.flush().unwrap();
                store.punch_freed();
            }
        })
        .unwrap();
    assert!(replaced);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(store.read_frame(&hash).unwrap().unwrap(), raw);
    let punched = store.packs.read(old.pack, old.offset, old.frame_len).unwrap();
    if punched.iter().all(|&b| b == 0) {
        // The filesystem punches holes: the check did read a hole where the record was.
    } else {
        eprintln!("this filesystem does not punch holes; the race was not reproduced");
    }
}
