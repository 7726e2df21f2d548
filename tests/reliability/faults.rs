//! Fault injection into an unmounted store: bit flips in pack files, a pack cut short, bytes
//! flipped in the sled metadata. What must hold: a read gives the right bytes or EIO, never
//! other bytes, never a hang, never a panic; fsck names every damaged file
//! (`unreadable_block`, exit 4) and `--repair` (exit 1) moves it to /lost+found with its
//! bad ranges in `user.s2sfs.bad_ranges`; the rest of the volume stays readable.
//!
//! Seeds: S2SFS_FAULT_SEED (decimal or 0x-hex) repeats a run; without it the clock picks
//! one, and it is printed.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::common::*;
use crate::harness::*;

/// Files of the sample volume: distinct contents (no shared blocks), text (zstd frames)
/// and random bytes (raw frames), one to six blocks, one in a subdirectory.
fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("small", text_bytes(101, 5000)),
        ("text", text_bytes(102, 5 * BLOCK + 777)),
        ("random", random_bytes(103, 3 * BLOCK)),
        ("mixed", [text_bytes(104, BLOCK + 100), random_bytes(105, 2 * BLOCK)].concat()),
        ("d/nested", text_bytes(106, 200 * KIB)),
        ("d/rand2", random_bytes(107, BLOCK / 2)),
    ]
}

/// A volume holding `files`, unmounted, with a pristine copy of its store at base/pristine.
fn sample_volume(tag: &str, files: &[(&str, Vec<u8>)]) -> Vol {
    let vol = Vol::new(tag, &[]);
    vol.mount();
    fs::create_dir(vol.path("d")).unwrap();
    for (name, data) in files {
        fs::write(vol.path(name), data).unwrap();
    }
    vol.umount();
    assert_eq!(vol.fsck(false).code, 0, "the sample store is not clean to begin with");
    copy_tree(&vol.store, &vol.base.path().join("pristine"));
    vol
}

/// The largest pack of a store (the sample volume has one).
fn main_pack(store: &Path) -> std::path::PathBuf {
    packs(store).into_iter().max_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0)).expect("no pack file")
}

/// Reads every file whole and block by block: each read must give the right bytes or EIO.
/// Returns the files that gave EIO; wrong bytes and other errors go to `failures`.
fn read_all(vol: &Vol, files: &[(&str, Vec<u8>)], failures: &mut Vec<String>, when: &str) -> BTreeSet<String> {
    let mut eio = BTreeSet::new();
    for (name, want) in files {
        let path = vol.path(name);
        match read_timed(&path) {
            Ok(got) if got == *want => {}
            Ok(got) => {
                failures.push(format!("{when}: {name}: WRONG BYTES: read {} bytes, want {}", got.len(), want.len()))
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                eio.insert(name.to_string());
            }
            Err(e) => failures.push(format!("{when}: {name}: read failed with {e}, want the bytes or EIO")),
        }
        let whole_ok = !eio.contains(*name);
        for blk in 0..want.len().div_ceil(BLOCK) {
            let off = blk * BLOCK;
            let end = (off + BLOCK).min(want.len());
            match pread_timed(&path, off as u64, BLOCK) {
                Ok(got) if got == want[off..end] => {}
                Ok(got) => failures.push(format!("{when}: {name} block {blk}: WRONG BYTES ({} bytes read)", got.len())),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    if whole_ok {
                        failures.push(format!("{when}: {name} block {blk}: EIO, but reading the whole file worked"));
                    }
                }
                Err(e) => failures.push(format!("{when}: {name} block {blk}: {e}, want the bytes or EIO")),
            }
        }
    }
    eio
}

/// The store has been damaged: mount, read everything, write something new, then check
/// fsck, repair, /lost+found and the other files. Returns the files that read as EIO.
fn check_damaged(vol: &Vol, files: &[(&str, Vec<u8>)], what: &str, failures: &mut Vec<String>) -> BTreeSet<String> {
    let out = vol.try_mount();
    if !out.status.success() {
        failures.push(format!("{what}: mount refused: {}", out.describe()));
        return BTreeSet::new();
    }
    let eio = read_all(vol, files, failures, what);
    // The volume keeps working, and new frames do not change what old records read.
    let after = text_bytes(999, 50 * KIB);
    let f = File::create(vol.path("after")).unwrap();
    f.write_all_at(&after, 0).unwrap();
    f.sync_all().unwrap();
    drop(f);
    match read_timed(&vol.path("after")) {
        Ok(got) if got == after => {}
        other => failures.push(format!("{what}: a new file reads back wrong: {:?}", other.map(|g| g.len()))),
    }
    let again = read_all(vol, files, failures, &format!("{what}, after a new write"));
    if again != eio {
        failures.push(format!("{what}: files with EIO changed after a new write: {eio:?} -> {again:?}"));
    }
    vol.umount();
    for p in vol.panics() {
        failures.push(format!("{what}: daemon panicked: {p}"));
    }
    let want_paths: Vec<String> = eio.iter().map(|n| format!("/{n}")).collect();
    let f = vol.fsck(false);
    if eio.is_empty() {
        if f.code != 0 {
            failures.push(format!("{what}: every read was right, but fsck is not clean: {}", f.describe()));
        }
        return eio;
    }
    if f.code != 4 {
        failures.push(format!(
            "{what}: fsck exit {} (want 4) with damaged files {want_paths:?}: {}",
            f.code,
            f.describe()
        ));
    }
    let named = f.paths_of("unreadable_block");
    if named != want_paths {
        failures.push(format!(
            "{what}: fsck names unreadable files {named:?}, reads gave EIO for {want_paths:?}: {}",
            f.describe()
        ));
    }
    let others: Vec<_> = f.problems().into_iter().filter(|p| p.0 != "unreadable_block").collect();
    if !others.is_empty() {
        failures.push(format!("{what}: fsck reports other problems too: {others:?}"));
    }
    let r = vol.fsck(true);
    if r.code != 1 || !r.remaining().is_empty() {
        failures.push(format!("{what}: fsck --repair exit {} (want 1, nothing remaining): {}", r.code, r.describe()));
    }
    vol.mount();
    let lost = list_timed(&vol.path("lost+found")).unwrap_or_else(|e| {
        failures.push(format!("{what}: no /lost+found after the repair: {e}"));
        Vec::new()
    });
    for name in &eio {
        if vol.path(name).exists() {
            failures.push(format!("{what}: {name} is still in place after the repair"));
        }
        let base = file_name(Path::new(name));
        match lost.iter().find(|l| l.ends_with(&format!("-{base}"))) {
            None => failures.push(format!("{what}: {name} is not in /lost+found (it holds {lost:?})")),
            Some(l) => match get_xattr(&vol.path(&format!("lost+found/{l}")), "user.s2sfs.bad_ranges") {
                Ok(v) if !v.is_empty() => {}
                other => failures.push(format!("{what}: /lost+found/{l} has no user.s2sfs.bad_ranges: {other:?}")),
            },
        }
    }
    for (name, want) in files.iter().filter(|(n, _)| !eio.contains(*n)) {
        match read_timed(&vol.path(name)) {
            Ok(got) if got == *want => {}
            other => failures.push(format!("{what}: undamaged {name} after the repair: {:?}", other.map(|g| g.len()))),
        }
    }
    vol.umount();
    let f = vol.fsck(false);
    if f.code != 0 {
        failures.push(format!("{what}: fsck after the repair is not clean: {}", f.describe()));
    }
    eio
}

#[test]
fn pack_bit_flips_give_eio_never_wrong_bytes() {
    let seed = seed_from_env("S2SFS_FAULT_SEED");
    let files = sample_files();
    let vol = sample_volume("bitflip", &files);
    let pristine = vol.base.path().join("pristine");
    let mut rng = Rng::new(seed);
    let mut failures = Vec::new();
    let (mut rounds, mut detected, mut damaged_files) = (0, 0, 0);
    for flips in [1, 1, 2, 4, 8, 32] {
        restore(&pristine, &vol.store);
        let pack = main_pack(&vol.store);
        let mut bytes = fs::read(&pack).unwrap();
        let mut at = Vec::new();
        for _ in 0..flips {
            let pos = 16 + rng.below(bytes.len() - 16);
            bytes[pos] ^= 1 << rng.below(8);
            at.push(pos);
        }
        fs::write(&pack, &bytes).unwrap();
        let what = format!("{flips} bit flips in {} at {at:?} (seed {seed:#x})", file_name(&pack));
        let eio = check_damaged(&vol, &files, &what, &mut failures);
        rounds += 1;
        detected += !eio.is_empty() as usize;
        damaged_files += eio.len();
    }
    summary(&format!(
        "bit flips: {rounds} rounds (1-32 flipped bits in frames), {detected} detected, {damaged_files} damaged files \
         gave EIO and were quarantined by fsck --repair, 0 wrong bytes: {} (seed {seed:#x})",
        if failures.is_empty() { "pass" } else { "FAIL" }
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(detected > 0, "no bit flip was detected: every flip landed in a frame, so some read must fail");
}

#[test]
fn truncated_pack_gives_eio_never_wrong_bytes() {
    let seed = seed_from_env("S2SFS_FAULT_SEED");
    let files = sample_files();
    let vol = sample_volume("truncate", &files);
    let pristine = vol.base.path().join("pristine");
    let mut rng = Rng::new(seed ^ 0x7a7a);
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for round in 0..3 {
        restore(&pristine, &vol.store);
        let pack = main_pack(&vol.store);
        let bytes = fs::read(&pack).unwrap();
        let frames = frames_of(&bytes);
        assert!(frames.len() >= 10, "expected a pack of many frames, found {}", frames.len());
        // Round 0: the last frame; then frames around the middle. Always inside a frame.
        let idx = if round == 0 { frames.len() - 1 } else { frames.len() / 3 + rng.below(frames.len() / 3) };
        let (off, len) = frames[idx];
        let cut = off + 1 + rng.below(len - 1);
        let f = fs::OpenOptions::new().write(true).open(&pack).unwrap();
        f.set_len(cut as u64).unwrap();
        drop(f);
        let what =
            format!("pack cut at {cut} of {} (inside frame {idx} of {}; seed {seed:#x})", bytes.len(), frames.len());
        let eio = check_damaged(&vol, &files, &what, &mut failures);
        if eio.is_empty() {
            failures.push(format!("{what}: frames past the cut are gone, yet every file read fine"));
        }
        notes.push(eio.len());
    }
    summary(&format!(
        "truncated pack: 3 cuts inside frames, files with EIO per cut {notes:?}, quarantined by fsck --repair: {} (seed {seed:#x})",
        if failures.is_empty() { "pass" } else { "FAIL" }
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Fixed (a pack shorter than its records say is never appended to): a pack cut short at
/// a frame boundary used to be reopened as the active
/// pack and new frames are appended at the old offsets, where the lost frames' block
/// records still point. Frames of equal length (incompressible 128 KiB blocks are all
/// stored raw, 60 + 131072 bytes) then match those records, their own checksum is right,
/// and the old file reads the new file's bytes. Reads check the frame's xxh3 but not the
/// block id (blake3) the record was found by; only fsck compares that.
#[test]
fn truncated_pack_offsets_are_never_reused() {
    let old = random_bytes(201, 4 * BLOCK);
    let vol = Vol::new("pack-reuse", &[]);
    vol.mount();
    fs::write(vol.path("old"), &old).unwrap();
    vol.umount();
    let pack = main_pack(&vol.store);
    let bytes = fs::read(&pack).unwrap();
    let frames = frames_of(&bytes);
    assert_eq!(frames.len(), 4, "want one raw frame per block");
    // The pack's last two frames are lost, exactly at a frame boundary.
    let cut = frames[2].0;
    File::options().write(true).open(&pack).unwrap().set_len(cut as u64).unwrap();
    vol.mount();
    let mut failures = Vec::new();
    let eio = read_all(&vol, &[("old", old.clone())], &mut failures, "after the cut");
    assert!(eio.contains("old"), "blocks 2 and 3 of old are gone: want EIO");
    // New data of the same frame size.
    let new = random_bytes(202, 2 * BLOCK);
    let f = File::create(vol.path("new")).unwrap();
    f.write_all_at(&new, 0).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let _ = read_all(&vol, &[("old", old.clone()), ("new", new.clone())], &mut failures, "after writing new data");
    let wrong_is_new = (2..4).any(|b| {
        pread_timed(&vol.path("old"), (b * BLOCK) as u64, BLOCK).is_ok_and(|got| new.chunks(BLOCK).any(|c| c == got))
    });
    vol.umount();
    summary(&format!(
        "pack offset reuse: {}",
        if failures.is_empty() {
            "pass (lost frames of a cut pack stay EIO after new writes)".to_string()
        } else {
            format!(
                "FAIL (KNOWN BUG): {} wrong reads; the old file reads the new file's blocks: {wrong_is_new}",
                failures.len()
            )
        }
    ));
    assert!(failures.is_empty(), "KNOWN BUG: reused pack offsets give wrong bytes:\n{}", failures.join("\n"));
}

/// Flipped bits in the metadata store (STORE/meta.redb): the mount must either refuse with
/// one line naming the metadata store, or serve every file correctly (EIO allowed, never
/// wrong or missing files). Every page's checksum is verified at open; a commit slot that
/// fails makes redb fall back to the previous commit, which the durable watermark
/// (`STORE/durable`) turns into a refusal. A refused store must not be called clean by fsck.
#[test]
fn damaged_metadata_fails_cleanly_or_reads_correctly() {
    let seed = seed_from_env("S2SFS_FAULT_SEED");
    let files = sample_files();
    let late: Vec<(&str, Vec<u8>)> =
        vec![("late1", text_bytes(301, 150 * KIB)), ("d/late2", random_bytes(302, BLOCK + 5))];
    // Two stores: "fresh" mounted once; "aged" opened again (fsck, a remount) and then
    // written to, so that its file holds pages freed and reused by later commits.
    let vol = Vol::new("meta", &[]);
    vol.mount();
    fs::create_dir(vol.path("d")).unwrap();
    for (name, data) in &files {
        fs::write(vol.path(name), data).unwrap();
    }
    vol.umount();
    let fresh = vol.base.path().join("pristine-fresh");
    copy_tree(&vol.store, &fresh);
    assert_eq!(vol.fsck(false).code, 0);
    vol.mount();
    for (name, data) in &late {
        fs::write(vol.path(name), data).unwrap();
    }
    vol.umount();
    let aged = vol.base.path().join("pristine-aged");
    copy_tree(&vol.store, &aged);
    let aged_files: Vec<(&str, Vec<u8>)> = files.iter().chain(late.iter()).cloned().collect();
    let mut rng = Rng::new(seed ^ 0x3e7a);
    let mut failures = Vec::new();
    let (mut refused, mut intact, mut lossy) = (0, 0, 0);
    let rounds = 10;
    for round in 0..rounds {
        let (kind, pristine, files) =
            if round % 2 == 0 { ("fresh", &fresh, &files) } else { ("aged", &aged, &aged_files) };
        restore(pristine, &vol.store);
        let target = vol.store.join("meta.redb");
        let mut bytes = fs::read(&target).unwrap();
        let used = bytes.iter().rposition(|&b| b != 0).map_or(bytes.len(), |p| p + 1);
        let n = [1, 1, 2, 4][rng.below(4)];
        let mut at = Vec::new();
        for _ in 0..n {
            let pos = rng.below(used);
            bytes[pos] ^= 1 << rng.below(8);
            at.push(pos);
        }
        fs::write(&target, &bytes).unwrap();
        let what = format!(
            "round {round}: {n} bit flips in the {kind} store's {} at {at:?} of {used} used bytes (seed {seed:#x})",
            target.strip_prefix(&vol.store).unwrap().display()
        );
        let out = vol.try_mount();
        if !out.status.success() {
            refused += 1;
            let line = first_line(&out.stderr);
            if out.stderr.trim().lines().count() != 1
                || !(line.contains("meta") || line.contains(&*vol.store.to_string_lossy()))
            {
                failures.push(format!(
                    "{what}: mount refused, but not with one line naming the store/metadata: {}",
                    out.describe()
                ));
            }
            if is_mounted(&vol.mnt) {
                failures.push(format!("{what}: mount failed but left the mount point mounted"));
            }
            let f = vol.fsck(false);
            if f.code == 0 {
                failures.push(format!("{what}: mount refused, but fsck calls the store clean"));
            }
            continue;
        }
        let mut problems = Vec::new();
        let listed = list_timed(&vol.mnt);
        for (name, want) in files.iter() {
            match read_timed(&vol.path(name)) {
                Ok(got) if got == *want => {}
                Ok(got) => problems.push(format!("{name}: WRONG BYTES ({} bytes, want {})", got.len(), want.len())),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => problems.push(format!("{name}: MISSING (ENOENT)")),
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
        let out = vol.try_umount();
        if !out.status.success() {
            problems.push(format!("umount failed: {}", out.describe()));
            force_detach(&vol.mnt);
        }
        for p in vol.panics() {
            problems.push(format!("daemon panicked: {p}"));
        }
        let f = vol.fsck(false);
        if problems.is_empty() {
            intact += 1;
        } else {
            lossy += 1;
            failures.push(format!(
                "{what}: mounted without an error, then {} (root lists {:?}; fsck exit {})",
                problems.join("; "),
                listed.as_ref().map_err(|e| e.to_string()),
                f.code
            ));
        }
    }
    summary(&format!(
        "metadata damage: {rounds} rounds: {refused} refused to mount with a clear error, {intact} read correctly, \
         {lossy} SILENT LOSS (mounted, files missing/empty/wrong) (seed {seed:#x})"
    ));
    assert!(failures.is_empty(), "damaged metadata is not detected:\n{}", failures.join("\n"));
}
