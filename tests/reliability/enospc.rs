//! A full disk under the store: the store lives on a 24 MiB tmpfs and random (so
//! incompressible) data is written until something fails. The failure must be ENOSPC,
//! never EIO or a hang; what was fsync'd before stays intact; deleting files must give the
//! space back.

use std::fs::{self, File};
use std::io;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::FileExt;

use crate::common::*;
use crate::harness::*;

const STORE_SIZE: &str = "24m";
const FILE_SIZE: usize = MIB;

/// What the data of `data_seed` is for.
const FILL: u64 = 1;
const AFTER_DELETE: u64 = 2;
const OVERWRITE: u64 = 3;

/// The seed of the `n`th file written for `purpose`. Seeds are mixed (splitmix64), not
/// offset: data written twice would be deduplicated, need no new frame and so find room
/// on a full disk (with `seed + i` for the fill and `seed ^ 0x77` for an overwrite, one
/// seed in a few dozen made an overwrite repeat a filled file).
fn data_seed(seed: u64, purpose: u64, n: u64) -> u64 {
    let mut z = seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Filled {
    /// Files whose write, fsync and close all succeeded.
    kept: Vec<(String, Vec<u8>)>,
    /// The file whose write, fsync or close failed, the step, and the errno.
    failed: String,
    stage: &'static str,
    errno: i32,
}

fn close(f: File) -> io::Result<()> {
    let fd = f.into_raw_fd();
    // SAFETY: we own fd (just taken out of the File).
    if unsafe { libc::close(fd) } < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Writes 1 MiB random files (64 KiB writes, fsync, close) until one step fails.
fn fill(vol: &Vol, seed: u64) -> Filled {
    let mut kept = Vec::new();
    for i in 0..64u64 {
        let name = format!("f{i:02}");
        let data = random_bytes(data_seed(seed, FILL, i), FILE_SIZE);
        let path = vol.path(&name);
        let d = data.clone();
        let r: Result<(), (&'static str, io::Error)> =
            timed(&format!("writing {name} on a full store"), OP_TIMEOUT, move || {
                let f = File::create(&path).map_err(|e| ("create", e))?;
                for (k, chunk) in d.chunks(64 * KIB).enumerate() {
                    f.write_all_at(chunk, (k * 64 * KIB) as u64).map_err(|e| ("write", e))?;
                }
                f.sync_all().map_err(|e| ("fsync", e))?;
                close(f).map_err(|e| ("close", e))
            });
        match r {
            Ok(()) => kept.push((name, data)),
            Err((stage, e)) => return Filled { kept, failed: name, stage, errno: errno_or(&e) },
        }
    }
    panic!("64 MiB of random data written to a store on a {STORE_SIZE} tmpfs without an error");
}

/// A store on a small tmpfs, mounted and filled (by `fill`) until a write failed with
/// ENOSPC; `salt` varies the data between tests. Returns the seed used, too.
fn full_store(tag: &str, salt: u64) -> (Vol, Filled, u64) {
    let seed = seed_from_env("S2SFS_FAULT_SEED") ^ salt;
    let vol = Vol::on_tmpfs(tag, STORE_SIZE, &[]);
    vol.mount();
    let filled = fill(&vol, seed);
    assert_eq!(
        filled.errno,
        libc::ENOSPC,
        "{} of {} failed with {}",
        filled.stage,
        filled.failed,
        errno_name(filled.errno)
    );
    (vol, filled, seed)
}

fn check_kept(vol: &Vol, kept: &[(String, Vec<u8>)], when: &str, failures: &mut Vec<String>) {
    for (name, want) in kept {
        match read_timed(&vol.path(name)) {
            Ok(got) if got == *want => {}
            Ok(got) => failures.push(format!("{when}: fsync'd {name}: WRONG BYTES ({} bytes)", got.len())),
            Err(e) => failures.push(format!("{when}: fsync'd {name}: {e}")),
        }
    }
}

#[test]
fn full_disk_gives_enospc_and_keeps_fsynced_files() {
    let seed = seed_from_env("S2SFS_FAULT_SEED");
    let vol = Vol::on_tmpfs("enospc", STORE_SIZE, &[]);
    vol.mount();
    let filled = fill(&vol, seed);
    let mut failures = Vec::new();
    if filled.errno != libc::ENOSPC {
        failures.push(format!(
            "{} of {} failed with {}, want ENOSPC",
            filled.stage,
            filled.failed,
            errno_name(filled.errno)
        ));
    }
    check_kept(&vol, &filled.kept, "on the full store", &mut failures);
    // The failed file must not hang a reader, whatever it holds.
    let _ = read_timed(&vol.path(&filled.failed));
    remove_failed(&vol, &filled.failed);
    let out = vol.try_umount();
    if !out.status.success() {
        failures.push(format!("umount of the full volume failed: {}", out.describe()));
        force_detach(&vol.mnt);
    }
    let f = vol.fsck(false);
    if f.code != 0 {
        failures.push(format!("fsck of the full store: {}", f.describe()));
    }
    vol.mount();
    check_kept(&vol, &filled.kept, "after a remount", &mut failures);
    vol.umount();
    for p in vol.panics() {
        failures.push(format!("daemon panicked: {p}"));
    }
    summary(&format!(
        "enospc: {} of file {} failed with {} after {} MiB fsync'd on a {STORE_SIZE} store; {} fsync'd files intact: {}",
        filled.stage,
        filled.failed,
        errno_name(filled.errno),
        filled.kept.len(),
        filled.kept.len(),
        if failures.is_empty() { "pass" } else { "FAIL" }
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Space freed by deleting files on a full disk comes back at once: the frames whose last
/// reference went have holes punched in their packs once the deletion is durable.
/// Compaction could not do it here, since it copies live frames before it frees anything.
#[test]
fn space_comes_back_after_deleting_files() {
    let (vol, filled, seed) = full_store("enospc-free", 0x5bac);
    let mut failures = Vec::new();
    // Delete the failed file and every other fsync'd one: half the data.
    remove_failed(&vol, &filled.failed);
    let mut kept = Vec::new();
    let mut deleted = 0;
    for (i, (name, data)) in filled.kept.into_iter().enumerate() {
        if i % 2 == 0 {
            fs::remove_file(vol.path(&name)).unwrap();
            deleted += 1;
        } else {
            kept.push((name, data));
        }
    }
    let log_before = vol.log().len();
    let out = vol.try_umount();
    let shutdown_errors: Vec<String> = vol.log()[log_before..]
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("failed"))
        .map(str::to_string)
        .collect();
    let first_umount = exit_code(&out);
    if !out.status.success() {
        failures.push(format!("umount after deleting files failed: {}", out.describe()));
        force_detach(&vol.mnt);
    }
    vol.mount();
    // Room for 2 MiB must be back after deleting half of ~23 MiB.
    let new = random_bytes(data_seed(seed, AFTER_DELETE, 0), 2 * MIB);
    let path = vol.path("new");
    let d = new.clone();
    let r = timed("writing after deleting files", OP_TIMEOUT, move || -> io::Result<()> {
        let f = File::create(&path)?;
        f.write_all_at(&d, 0)?;
        f.sync_all()?;
        close(f)
    });
    let wrote = r.is_ok();
    match r {
        Ok(()) => match read_timed(&vol.path("new")) {
            Ok(got) if got == new => {}
            other => failures.push(format!("the new file reads back wrong: {:?}", other.map(|g| g.len()))),
        },
        Err(e) => {
            failures.push(format!(
                "writing 2 MiB after deleting {deleted} of {} MiB failed with {e} ({}); packs: {:?}; shutdown log: {:?}",
                deleted + kept.len(),
                errno_name(errno_or(&e)),
                packs(&vol.store).iter().map(|p| (file_name(p), fs::metadata(p).map(|m| m.len()).unwrap_or(0))).collect::<Vec<_>>(),
                shutdown_errors
            ));
            let _ = fs::remove_file(vol.path("new"));
        }
    }
    check_kept(&vol, &kept, "after deleting files", &mut failures);
    let out = vol.try_umount();
    if !out.status.success() {
        failures.push(format!("final umount failed: {}", out.describe()));
        force_detach(&vol.mnt);
    }
    let f = vol.fsck(false);
    if f.code != 0 {
        failures.push(format!("final fsck: {}", f.describe()));
    }
    summary(&format!(
        "enospc recovery: deleted {deleted} of {} fsync'd MiB, then a 2 MiB write {}{}",
        deleted + kept.len(),
        if wrote { "worked: pass" } else { "FAILED with ENOSPC" },
        match shutdown_errors.last() {
            None => String::new(),
            Some(last) => format!(
                "; `s2sfs umount` exited {first_umount} while the daemon logged {:?}",
                last.rsplit("] ").next().unwrap_or(last)
            ),
        }
    ));
    assert!(failures.is_empty(), "deleting files does not free space on a full store:\n{}", failures.join("\n"));
}

/// Data the daemon cannot commit at unmount (the disk is full) is not lost silently:
/// `s2sfs umount` exits non-zero and says so; what was fsync'd before stays intact.
#[test]
fn umount_reports_data_it_could_not_commit() {
    let (vol, filled, seed) = full_store("enospc-umount", 0x0c1e);
    // The failed file stays (deleting it would give space back), and a filler beside the
    // store takes the last free bytes. Overwrite an fsync'd file without fsync: the close
    // fails (no room for the new frames) and the data stays in the daemon, which cannot
    // commit it at unmount either. Space the store gives back on its own after the filler
    // was written (a metadata commit, a punched hole) can still let an overwrite through:
    // that is correct behaviour but tests nothing here, so the filler is topped up and the
    // next fsync'd file tried, a few times.
    let filler = vol.store.join("filler");
    let mut filler_file = File::create(&filler).unwrap();
    let mut failures = Vec::new();
    let mut overwritten = Vec::new();
    let mut tries = filled.kept.iter();
    let (name, old, r) = loop {
        let (name, old) = tries.next().cloned().expect("an fsync'd file left to overwrite");
        let free_before = top_up(&mut filler_file, &vol.store);
        let path = vol.path(&name);
        let new = random_bytes(data_seed(seed, OVERWRITE, overwritten.len() as u64), FILE_SIZE);
        let want = new.clone();
        let r = timed("overwriting a file on the full store", OP_TIMEOUT, move || -> io::Result<()> {
            let f = fs::OpenOptions::new().write(true).open(&path)?;
            f.write_all_at(&new, 0)?;
            close(f)
        });
        if r.is_err() || overwritten.len() == 2 {
            break (name, old, r);
        }
        eprintln!(
            "the overwrite of {name} found room ({free_before} bytes free after the filler, {} now); trying again",
            free_bytes(&vol.store)
        );
        overwritten.push((name, want));
    };
    match &r {
        Ok(()) => failures.push(format!(
            "{} overwrites in a row found room on a full disk ({} bytes free now)",
            overwritten.len() + 1,
            free_bytes(&vol.store)
        )),
        Err(e) if errno_or(e) != libc::ENOSPC => failures.push(format!("the overwrite failed with {e}, want ENOSPC")),
        Err(_) => {}
    }
    drop(filler_file);
    let out = vol.try_umount();
    if out.status.success() {
        failures
            .push(format!("umount exited 0 although the daemon could not commit the overwrite: {}", out.describe()));
    } else if !out.stderr.contains("could not commit") || out.stderr.trim().lines().count() != 1 {
        failures
            .push(format!("umount failed, but not with one line saying what was not committed: {}", out.describe()));
    }
    if is_mounted(&vol.mnt) {
        failures.push("umount left the volume mounted".to_string());
        force_detach(&vol.mnt);
    }
    fs::remove_file(&filler).unwrap();
    let f = vol.fsck(false);
    if f.code != 0 {
        failures.push(format!("fsck after the failed commit: {}", f.describe()));
    }
    vol.mount();
    match read_timed(&vol.path(&name)) {
        Ok(got) if got == old => {}
        other => failures.push(format!("the fsync'd {name} changed: {:?}", other.map(|g| g.len()))),
    }
    let untouched: Vec<_> =
        filled.kept.iter().filter(|(n, _)| overwritten.iter().all(|(o, _)| o != n)).cloned().collect();
    check_kept(&vol, &untouched, "after the failed unmount", &mut failures);
    // An overwrite whose close succeeded was committed: it must read back.
    check_kept(&vol, &overwritten, "after the failed unmount (closed without error)", &mut failures);
    vol.umount();
    summary(&format!(
        "enospc at unmount: close {} (after {} overwrites that found room), `s2sfs umount` exit {} ({}): {}",
        match &r {
            Ok(()) => "succeeded".to_string(),
            Err(e) => errno_name(errno_or(e)).to_string(),
        },
        overwritten.len(),
        exit_code(&out),
        first_line(&out.stderr),
        if failures.is_empty() { "pass" } else { "FAIL" }
    ));
    if !failures.is_empty() {
        let log = vol.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        failures.push(format!("--- end of daemon.log ---\n{}", tail.join("\n")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Fills the store's disk with `filler`; returns the bytes still free afterwards.
fn top_up(filler: &mut File, store: &std::path::Path) -> u64 {
    use std::io::Write;
    let zeros = vec![0u8; 4 * KIB];
    while filler.write_all(&zeros).is_ok() {}
    free_bytes(store)
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let st = statvfs(path);
    st.f_bavail * st.f_frsize
}

/// Changes that add data are refused below a free-space margin, so the metadata database
/// never meets a full disk: on a full disk, metadata operations give ENOSPC (they once gave
/// EIO and then failed for good, unlink included, when the database met the full disk),
/// unlink still frees space, and the store mounts and checks afterwards.
#[test]
fn full_disk_metadata_gives_enospc_and_unlink_still_frees() {
    let (vol, filled, _) = full_store("enospc-meta", 0x3e7a_da7a);
    remove_failed(&vol, &filled.failed);
    let mut failures = Vec::new();
    // Metadata only now: empty files with long names and an xattr each.
    let mut made = Vec::new();
    let mut meta_err = None;
    for i in 0..20_000 {
        let name = format!("m{i:05}-{}", "n".repeat(200));
        let path = vol.path(&name);
        let r = timed(
            "a metadata operation on a full store",
            OP_TIMEOUT,
            move || -> Result<(), (&'static str, io::Error)> {
                File::create(&path).map_err(|e| ("create", e))?;
                set_xattr(&path, "user.pad", &[b'x'; 2000]).map_err(|e| ("setxattr", e))
            },
        );
        match r {
            Ok(()) => made.push(name),
            Err((op, e)) => {
                meta_err = Some((i, op, errno_or(&e)));
                break;
            }
        }
    }
    if let Some((i, op, errno)) = meta_err
        && errno != libc::ENOSPC
    {
        failures.push(format!(
            "{op} of metadata entry {i} on the full store failed with {}, want ENOSPC",
            errno_name(errno)
        ));
    }
    // The next metadata operation: ENOSPC again (or success), not EIO.
    let next = vol.path("one-more");
    let next_err =
        timed("a create on a full store", OP_TIMEOUT, move || File::create(next).err().map(|e| errno_or(&e)));
    if let Some(e) = next_err
        && e != libc::ENOSPC
    {
        failures.push(format!("the create after that failed with {}, want ENOSPC", errno_name(e)));
    }
    // Deleting must still work: it is how space is freed.
    let mut unlink_errors = Vec::new();
    for (name, _) in filled.kept.iter().take(4) {
        let p = vol.path(name);
        if let Err(e) = timed("unlink on a full store", OP_TIMEOUT, move || fs::remove_file(p)) {
            unlink_errors.push(format!("{name}: {}", errno_name(errno_or(&e))));
        }
    }
    if !unlink_errors.is_empty() {
        failures.push(format!("unlink on the full store failed: {}", unlink_errors.join(", ")));
    }
    let out = vol.try_umount();
    if !out.status.success() {
        failures.push(format!("umount failed: {}", out.describe()));
        force_detach(&vol.mnt);
    }
    let remount = vol.try_mount();
    if !remount.status.success() {
        failures.push(format!(
            "after `s2sfs umount` exited {}, the store cannot be mounted again: {}",
            exit_code(&out),
            first_line(&remount.stderr)
        ));
    } else {
        let names = list_timed(&vol.mnt).unwrap_or_default();
        let lost = made.iter().filter(|n| !names.contains(n)).count();
        if lost > 0 {
            failures.push(format!(
                "{lost} of {} entries created before the error are gone after a clean unmount",
                made.len()
            ));
        }
        check_kept(&vol, &filled.kept[4..], "after a remount", &mut failures);
        let _ = vol.try_umount();
    }
    summary(&format!(
        "enospc metadata: {} entries made, then {}, the next create {}; {}",
        made.len(),
        match meta_err {
            Some((_, op, e)) => format!("{op} failed with {}", errno_name(e)),
            None => "no error".into(),
        },
        next_err.map_or("worked".to_string(), |e| format!("failed with {}", errno_name(e))),
        if failures.is_empty() {
            "pass".to_string()
        } else {
            format!("FAIL - KNOWN BUG ({} problems)", failures.len())
        }
    ));
    assert!(failures.is_empty(), "KNOWN BUG: a full disk wedges the metadata store:\n{}", failures.join("\n"));
}

/// Removes the file whose write hit the full disk. A create on a full store fails with
/// ENOSPC itself, and then there is no file to remove.
fn remove_failed(vol: &Vol, name: &str) {
    match fs::remove_file(vol.path(name)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => other.unwrap(),
    }
}
