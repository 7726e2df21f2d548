//! Recompression checked on real volumes, with the tiny random test model.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::super::*;
use super::*;
use crate::codec::{CodecKind, CodecSpec};
use crate::t5::fixtures;

const ME: Caller = Caller { uid: 0, gid: 0 };
const BS: usize = 4096;

fn opts() -> VolumeOptions {
    VolumeOptions { block_size: BS as u32, cache_bytes: 64 << 10, recompress_after: None, ..Default::default() }
}

/// Prose-like blocks (zstd -19 and the coder's matcher find something) and noise.
fn contents(seed: u64, blocks: usize) -> Vec<u8> {
    let mut out = fixtures::text(blocks * BS + 3000 + seed as usize * 7);
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    // One block of noise in the middle: nothing codes it smaller.
    let noise = BS * (blocks / 2);
    for b in &mut out[noise..noise + BS] {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *b = s as u8;
    }
    // Files differ from each other in their first bytes, so their first blocks do too.
    out[..8].copy_from_slice(&seed.to_le_bytes());
    out
}

fn write_file(v: &Volume, name: &str, data: &[u8]) -> u64 {
    let (a, fh) = v.create(ME, ROOT_INO, OsStr::new(name), 0o644, 0o022, libc::O_RDWR).unwrap();
    assert_eq!(v.write(a.ino, fh, 0, data).unwrap() as usize, data.len());
    v.release(a.ino, fh).unwrap();
    v.flush_all();
    a.ino
}

fn read_file(v: &Volume, name: &str) -> Vec<u8> {
    let a = v.lookup(ROOT_INO, OsStr::new(name)).unwrap();
    v.read(a.ino, 0, a.size as u32 + 1).unwrap()
}

fn records(v: &Volume) -> Vec<(BlockHash, BlockRecord)> {
    v.store.blocks_page(None, usize::MAX).unwrap()
}

fn everything(target: Target) -> RecompressRequest {
    RecompressRequest { older_than: Duration::ZERO, target }
}

fn run(v: &Volume, target: Target) -> RecompressReport {
    v.recompress(&everything(target), &|_| {}, &AtomicBool::new(false)).unwrap()
}

fn assert_clean(v: &Volume) {
    let report = v.check(&mut |_| {}).unwrap();
    assert_eq!(report.outcome, crate::store::FsckOutcome::Clean, "{report:?}");
}

impl Volume {
    /// Commits all dirty data (what a flusher tick or an fsync would do).
    fn flush_all(&self) {
        self.core.commit_all().unwrap();
        self.core.store.flush().unwrap();
    }
}

#[test]
fn recompression_recodes_blocks_and_every_file_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..3).map(|i| (format!("f{i}"), contents(i, 5))).collect();
    let target = {
        let v = Volume::open(dir.path(), opts()).unwrap();
        for (name, data) in &files {
            write_file(&v, name, data);
        }
        let before = records(&v);
        let target = v.add_model(fixtures::tiny_model()).unwrap();
        assert_eq!(target, crate::codec::learned_target(fixtures::tiny_model().id()));
        let progress = std::sync::Mutex::new(Vec::new());
        let r =
            v.recompress(&everything(target), &|p| progress.lock().unwrap().push(*p), &AtomicBool::new(false)).unwrap();
        assert_eq!(r.blocks_scanned, before.len() as u64);
        assert_eq!(r.blocks_examined, before.len() as u64, "{r:?}");
        assert_eq!(r.blocks_recompressed + r.blocks_kept, r.blocks_examined);
        assert!(r.blocks_recompressed > 0 && r.stored_after < r.stored_before, "{r:?}");
        assert_eq!((r.blocks_skipped, r.blocks_damaged, r.stopped), (0, 0, false));
        assert_eq!(r.stored_before, before.iter().map(|(_, rec)| rec.frame_len as u64).sum::<u64>());
        let last = *progress.lock().unwrap().last().unwrap();
        assert_eq!((last.blocks_done, last.blocks_total), (r.blocks_examined, r.blocks_examined));
        // Replaced records describe their new frames.
        let after = records(&v);
        let changed = after
            .iter()
            .filter(|(h, rec)| before.iter().any(|(b, old)| b == h && old.frame_len != rec.frame_len))
            .count();
        assert_eq!(changed as u64, r.blocks_recompressed);
        // A second pass has nothing left to do: done blocks by their records, the rest
        // remembered as tried.
        let again = run(&v, target);
        assert_eq!((again.blocks_examined, again.blocks_recompressed), (0, 0), "{again:?}");
        let status = v.recompress_status();
        assert_eq!((status.passes, status.blocks_recompressed, status.running), (2, r.blocks_recompressed, false));
        assert_eq!(status.bytes_saved, r.stored_before as i64 - r.stored_after as i64);
        // A block whose frame changed since (here: made raw, as a zstd pass might) is a
        // candidate again.
        let (hash, rec) = after[0];
        let plain = v.codecs().decode_frame(&v.store.read_frame(&hash).unwrap().unwrap()).unwrap();
        let raw = v.codecs().encode_as(&plain, Target::Raw).unwrap();
        let info = FrameInfo { codec: CodecId::Raw as u8, model: [0; 8], plain_len: plain.len() as u32 };
        assert!(v.store.replace_frame(&hash, &rec, raw, info).unwrap());
        let again = run(&v, target);
        assert_eq!((again.blocks_examined, again.blocks_recompressed), (1, 1), "{again:?}");
        for (name, data) in &files {
            assert_eq!(&read_file(&v, name), data);
        }
        assert_clean(&v);
        target
    };
    // Read back from the frames themselves (the cache is gone), the model from the store,
    // which keeps it as long as t5 frames need it (the tiny model may lose every block
    // to zstd -19, and then the unmount removed it).
    let v = Volume::open(dir.path(), opts()).unwrap();
    let t5_frames = records(&v).iter().any(|(_, r)| r.info.is_some_and(|i| i.codec == CodecId::T5 as u8));
    assert_eq!(v.codecs().has_model(target.model()), t5_frames);
    for (name, data) in &files {
        assert_eq!(&read_file(&v, name), data);
    }
    assert_clean(&v);
    // After a remount nothing is tried again either: blocks that gained nothing carry the
    // model they were weighed against in their records.
    assert_eq!(v.add_model(fixtures::tiny_model()).unwrap(), target);
    let again = run(&v, target);
    assert_eq!((again.blocks_examined, again.blocks_recompressed), (0, 0), "{again:?}");
}

#[test]
fn a_block_shared_by_files_is_recompressed_once() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let data = fixtures::text(2 * BS);
    write_file(&v, "a", &data);
    write_file(&v, "b", &data);
    let recs = records(&v);
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|(_, r)| r.refcount == 2));
    let target = v.add_model(fixtures::tiny_model()).unwrap();
    let r = run(&v, target);
    assert_eq!(r.blocks_examined, 2);
    assert_eq!(r.logical_bytes, 2 * BS as u64);
    let after = records(&v);
    assert!(after.iter().all(|(_, r)| r.refcount == 2));
    drop(v);
    let v = Volume::open(dir.path(), opts()).unwrap();
    assert_eq!(read_file(&v, "a"), data);
    assert_eq!(read_file(&v, "b"), data);
    assert_clean(&v);
}

#[test]
fn zstd_target_turns_t5_frames_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixtures::text(6 * BS);
    {
        let v = Volume::open(dir.path(), opts()).unwrap();
        let model = fixtures::tiny_model();
        v.add_model(model.clone()).unwrap();
        // Written by the learned coder alone where it saves 1/8 (the tiny model's matcher
        // does on this repetitive text): t5 frames.
        let mut codecs = (*v.codecs()).clone();
        codecs.set_writer(Target::Learned { model: model.id() }).unwrap();
        *v.codecs.write().unwrap() = Arc::new(codecs);
        write_file(&v, "f", &data);
        let t5 = |v: &Volume| {
            records(v).iter().filter(|(_, r)| r.info.is_some_and(|i| i.codec == CodecId::T5 as u8)).count()
        };
        let t5_before = t5(&v);
        assert!(t5_before > 0);
        let target = v.recompress_target(Some(RecompressCodec::Zstd), None).unwrap();
        assert_eq!(target, Target::Zstd { level: 3 });
        let r = run(&v, target);
        assert_eq!(r.blocks_recompressed as usize, t5_before, "{r:?}");
        assert_eq!(t5(&v), 0);
        // Nothing is left for zstd.
        assert_eq!(run(&v, target).blocks_examined, 0);
        assert_eq!(read_file(&v, "f"), data);
    }
    // That volume still wrote with the model, so it kept it; a zstd mount with no block
    // that needs it removes it at unmount.
    let reg = crate::codec::ModelRegistry::new(&dir.path().join("models"));
    assert_eq!(reg.ids().len(), 1);
    drop(Volume::open(dir.path(), opts()).unwrap());
    assert!(reg.ids().is_empty());
    let v = Volume::open(dir.path(), opts()).unwrap();
    assert_eq!(read_file(&v, "f"), data);
    assert_clean(&v);
}

#[test]
fn a_model_that_frames_need_is_kept_at_unmount() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixtures::text(6 * BS);
    let model = fixtures::tiny_model();
    {
        let v = Volume::open(dir.path(), opts()).unwrap();
        v.add_model(model.clone()).unwrap();
        let mut codecs = (*v.codecs()).clone();
        codecs.set_writer(Target::Learned { model: model.id() }).unwrap();
        *v.codecs.write().unwrap() = Arc::new(codecs);
        write_file(&v, "f", &data);
    }
    // A zstd volume now, but its t5 frames still need the model.
    let reg = crate::codec::ModelRegistry::new(&dir.path().join("models"));
    assert_eq!(reg.ids(), vec![model.id()]);
    let v = Volume::open(dir.path(), opts()).unwrap();
    assert_eq!(read_file(&v, "f"), data);
    drop(v);
    assert_eq!(reg.ids(), vec![model.id()]);
}

#[test]
fn recently_written_blocks_wait() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    write_file(&v, "f", &fixtures::text(3 * BS));
    let target = v.add_model(fixtures::tiny_model()).unwrap();
    let req = RecompressRequest { older_than: Duration::from_secs(3600), target };
    let r = v.recompress(&req, &|_| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!((r.blocks_scanned, r.blocks_examined), (3, 0));
}

#[test]
fn a_block_changed_meanwhile_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let v = Volume::open(dir.path(), opts()).unwrap();
    let data = fixtures::text(BS);
    write_file(&v, "f", &data);
    let target = v.add_model(fixtures::tiny_model()).unwrap();
    let (hash, seen) = records(&v)[0];
    // Someone else replaces the frame after the scan saw the record.
    let codecs = v.codecs();
    let raw = codecs.encode_as(&data, Target::Raw).unwrap();
    let info = FrameInfo { codec: CodecId::Raw as u8, model: [0; 8], plain_len: BS as u32 };
    assert!(v.store.replace_frame(&hash, &seen, raw.clone(), info).unwrap());
    let now = records(&v)[0].1;
    assert!(matches!(v.recode(&codecs, target, &hash, &seen).unwrap(), Outcome::Skipped));
    assert_eq!(records(&v)[0].1, now, "the newer frame stays");
    assert_eq!(v.store.read_frame(&hash).unwrap().unwrap(), raw);
    // Deleted meanwhile.
    v.unlink(ROOT_INO, OsStr::new("f")).unwrap();
    v.flush_all();
    assert!(matches!(v.recode(&codecs, target, &hash, &now).unwrap(), Outcome::Skipped));
    assert!(records(&v).is_empty());
}

/// Files rewritten while passes run back and forth never lose what was last written.
#[test]
fn concurrent_writes_never_lose_data() {
    let dir = tempfile::tempdir().unwrap();
    let v = Arc::new(Volume::open(dir.path(), opts()).unwrap());
    let model = fixtures::tiny_model();
    let learned = v.add_model(model).unwrap();
    let zstd = Target::Zstd { level: 3 };
    for i in 0..4 {
        write_file(&v, &format!("f{i}"), &contents(i, 3));
    }
    let done = Arc::new(AtomicBool::new(false));
    let worker = {
        let (v, done) = (v.clone(), done.clone());
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(Ordering::Relaxed) || passes < 2 {
                let target = if passes % 2 == 0 { learned } else { zstd };
                let r = v.recompress(&everything(target), &|_| {}, &AtomicBool::new(false)).unwrap();
                assert_eq!(r.blocks_damaged, 0);
                passes += 1;
            }
            passes
        })
    };
    let mut last: Vec<Vec<u8>> = (0..4).map(|i| contents(i, 3)).collect();
    for round in 0..12u64 {
        let i = (round % 4) as usize;
        let a = v.lookup(ROOT_INO, OsStr::new(&format!("f{i}"))).unwrap();
        let fh = v.open_file(a.ino, libc::O_RDWR).unwrap();
        let mut data = contents(100 + round, 3);
        if round % 3 == 0 {
            // Partly the same as before: some blocks keep their hash, others are new.
            data[..BS].copy_from_slice(&last[i][..BS]);
        }
        v.setattr(a.ino, &SetAttr { size: Some(0), ..Default::default() }).unwrap();
        v.write(a.ino, fh, 0, &data).unwrap();
        v.release(a.ino, fh).unwrap();
        v.flush_all();
        last[i] = data;
        for (j, want) in last.iter().enumerate() {
            assert_eq!(&read_file(&v, &format!("f{j}")), want, "round {round}");
        }
    }
    done.store(true, Ordering::Relaxed);
    assert!(worker.join().unwrap() >= 2);
    assert_clean(&v);
    drop(v);
    let v = Volume::open(dir.path(), opts()).unwrap();
    for (j, want) in last.iter().enumerate() {
        assert_eq!(&read_file(&v, &format!("f{j}")), want);
    }
    assert_clean(&v);
}

#[test]
fn a_pass_waits_for_requests_in_flight_and_stops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let v = Arc::new(Volume::open(dir.path(), opts()).unwrap());
    write_file(&v, "f", &fixtures::text(3 * BS));
    let target = v.add_model(fixtures::tiny_model()).unwrap();
    let guard = v.begin_request();
    let pass = {
        let v = v.clone();
        std::thread::spawn(move || run(&v, target))
    };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(v.recompress_status().blocks_done, 0, "nothing coded while a request is in flight");
    drop(guard);
    let r = pass.join().unwrap();
    assert!(r.pauses >= 1 && r.blocks_examined == 3, "{r:?}");
    // Told to stop: nothing is done.
    write_file(&v, "g", &contents(9, 2));
    let r = v.recompress(&everything(target), &|_| {}, &AtomicBool::new(true)).unwrap();
    assert!(r.stopped);
    assert_eq!(r.blocks_examined, 0);
}

#[test]
fn targets_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    fixtures::tiny_model().save(&model_dir).unwrap();
    let store = dir.path().join("store");
    let v = Volume::open(&store, opts()).unwrap();
    let id = fixtures::tiny_model().id();
    assert!(matches!(v.recompress_target(None, Some(Path::new("relative/model"))), Err(Error::Invalid(_))));
    assert!(matches!(v.recompress_target(Some(RecompressCodec::Zstd), Some(&model_dir)), Err(Error::Invalid(_))));
    assert!(v.recompress_target(Some(RecompressCodec::T5), Some(&dir.path().join("nothing"))).is_err());
    assert!(!v.codecs().has_model(id));
    let t = v.recompress_target(Some(RecompressCodec::T5), Some(&model_dir)).unwrap();
    assert_eq!(t, crate::codec::learned_target(id));
    assert!(v.codecs().has_model(id));
    assert!(v.registry.ids().contains(&id), "copied into the store before any frame names it");
    drop(v);
    // An auto volume's default is its background target.
    let spec = CodecSpec { codec: Some(CodecKind::Auto), model: Some(model_dir), zstd_level: None };
    let v = Volume::open(&store, VolumeOptions { codec: spec, ..opts() }).unwrap();
    assert_eq!(v.recompress_target(None, None).unwrap(), crate::codec::learned_target(id));
    assert_eq!(v.recompress_target(Some(RecompressCodec::T5), None).unwrap(), crate::codec::learned_target(id));
}

#[test]
fn auto_volumes_recompress_cold_blocks_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    fixtures::tiny_model().save(&model_dir).unwrap();
    let spec = CodecSpec { codec: Some(CodecKind::Auto), model: Some(model_dir), zstd_level: None };
    let opts = VolumeOptions { codec: spec, recompress_after: Some(Duration::ZERO), ..opts() };
    let store = dir.path().join("store");
    let files: Vec<(String, Vec<u8>)> = (0..2).map(|i| (format!("f{i}"), contents(i, 4))).collect();
    {
        let v = Volume::open(&store, opts.clone()).unwrap();
        assert!(v.recompress_status().background);
        for (name, data) in &files {
            write_file(&v, name, data);
        }
        let start = std::time::Instant::now();
        while v.recompress_status().passes == 0 {
            assert!(start.elapsed() < Duration::from_secs(60), "no background pass");
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = v.recompress_status();
        let last = status.last_pass.clone().unwrap();
        assert!(last.blocks_recompressed > 0, "{status:?}");
        assert_eq!(status.backlog, 0);
        for (name, data) in &files {
            assert_eq!(&read_file(&v, name), data);
        }
        // Shutdown does not wait for passes.
        let closing = std::time::Instant::now();
        drop(v);
        assert!(closing.elapsed() < Duration::from_secs(10));
    }
    let v = Volume::open(&store, VolumeOptions { recompress_after: None, ..opts }).unwrap();
    for (name, data) in &files {
        assert_eq!(&read_file(&v, name), data);
    }
    assert_clean(&v);
}

#[test]
fn on_demand_codec_or_model_retargets_t5_and_auto_volumes_for_the_mount() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("tiny");
    fixtures::tiny_model().save(&model_dir).unwrap();
    let spec = |kind| CodecSpec { codec: Some(kind), zstd_level: None, model: Some(model_dir.clone()) };
    let tiny = crate::codec::learned_target(fixtures::tiny_model().id());
    // A t5 volume turned into a fast one: zstd writes, no background target.
    let v = Volume::open(&dir.path().join("t5"), VolumeOptions { codec: spec(CodecKind::T5), ..opts() }).unwrap();
    assert_eq!((v.codecs().writer(), v.recompress_to()), (tiny, Some(tiny)));
    let zstd = v.recompress_target(Some(RecompressCodec::Zstd), None).unwrap();
    v.retarget(zstd).unwrap();
    assert_eq!((v.codecs().writer(), v.recompress_to()), (Target::Zstd { level: 3 }, None));
    drop(v);
    // An auto volume keeps writing zstd and recompresses to the model asked for.
    let v = Volume::open(&dir.path().join("auto"), VolumeOptions { codec: spec(CodecKind::Auto), ..opts() }).unwrap();
    let other = Arc::new(crate::t5::Model::random(fixtures::tiny_config(), fixtures::tiny_bpe(), 99).unwrap());
    let other_target = v.add_model(other).unwrap();
    v.retarget(other_target).unwrap();
    assert_eq!((v.codecs().writer(), v.recompress_to()), (Target::Zstd { level: 3 }, Some(other_target)));
    drop(v);
    // A zstd volume's recompression is one pass: nothing changes.
    let v = Volume::open(&dir.path().join("zstd"), opts()).unwrap();
    v.retarget(tiny_target(&v)).unwrap();
    assert_eq!((v.codecs().writer(), v.recompress_to()), (Target::Zstd { level: 3 }, None));
}

fn tiny_target(v: &Volume) -> Target {
    v.add_model(fixtures::tiny_model()).unwrap()
}
