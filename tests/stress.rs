//! Stress tests through a real FUSE mount (see RELIABILITY.md for the measured figures):
//!
//! - `concurrent_ops_match_model`: 8 threads of overlapping reads, writes, truncates,
//!   renames and fsyncs, checked against a model (tests/stress/workload.rs says how it is
//!   kept linearizable-checkable), then a lock-free phase of 8 threads writing disjoint,
//!   unaligned stripes of one file; every file is compared with the model live, after
//!   umount + `s2sfs fsck` (must be clean) + remount. Prints ops/second per op type.
//! - `fio_verify_survives_remount`: fio random read/write and sequential write jobs with
//!   crc32c verification; umount, fsck, remount, `fio --verify_only` on the same files.
//!   Skipped (with a message) when fio is missing, except under CI=true, where it fails.
//! - `name_churn_never_hangs`: xfstests generic/007's churn (create, stat, unlink of 100
//!   names in one directory) from 4 threads; a stall of 30 s fails the test (the daemon is
//!   killed so that the test ends). Then the listing must match what stat sees, and fsck
//!   must be clean after umount. Prints ops/second.
//! - `bench_churn` (ignored): the same churn in $S2SFS_STRESS_DIR, for bench/metadata.sh.
//! - `bench_workload` (ignored): the same concurrency workload in $S2SFS_STRESS_DIR, any
//!   directory, for bench/reliability.sh (s2sfs vs bindfs).
//!
//! Knobs: S2SFS_STRESS_SECS (workload seconds, default 26), S2SFS_STRESS_SEED,
//! S2SFS_STRESS_MOUNT_ARGS (extra `s2sfs mount` arguments, e.g. "--cache-mb 1"),
//! S2SFS_FIO_MB (size of each fio file, default 128), S2SFS_CHURN_OPS (churn operations
//! per thread, default 100,000: the sled store hung in 3 of 4 such runs, in 5 of 7 runs
//! of 50,000 or 100,000), S2SFS_CHURN_THREADS (default 4).
//!
//! The tests take a lock so that they run one at a time: the ops/second figures and the fio
//! run should not share the two cores with each other.

#[path = "mounted/harness.rs"]
mod harness;

#[path = "stress/churn.rs"]
mod churn;
#[path = "stress/fio.rs"]
mod fio;
#[path = "stress/workload.rs"]
mod workload;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use harness::{Mounted, run_cli};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// `s2sfs fsck --store STORE --json` must exit 0 (clean); prints its totals and returns them.
#[track_caller]
fn fsck_clean(store: &Path, when: &str) -> serde_json::Value {
    let t = Instant::now();
    let args = ["fsck".as_ref(), "--store".as_ref(), store.as_os_str(), "--json".as_ref()];
    let out = run_cli(&args, None, Duration::from_secs(120));
    assert!(out.status.success(), "FSCK NOT CLEAN {when}: {}", out.describe());
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck --json {when}: not JSON ({e}): {}", out.describe()));
    println!("fsck {when}: clean in {:.1} s; totals {}", t.elapsed().as_secs_f64(), v["totals"]);
    v["totals"].clone()
}

/// The store holds exactly the model's files (no leaked inodes of unlinked or replaced
/// files) and exactly one block-map entry per non-zero block (zero blocks are holes).
#[track_caller]
fn assert_totals_match(totals: &serde_json::Value, exp: &workload::Expected, dirs: u64, block: usize, when: &str) {
    let files = exp.files.len() as u64;
    let blocks: u64 =
        exp.files.iter().map(|(_, d)| d.chunks(block).filter(|b| b.iter().any(|&x| x != 0)).count() as u64).sum();
    let got = |k: &str| totals[k].as_u64().unwrap_or_else(|| panic!("fsck totals have no {k}: {totals}"));
    assert_eq!(
        (got("files"), got("directories")),
        (files, dirs),
        "{when}: fsck counts (files, directories) differ from the model (leaked or lost inodes)"
    );
    assert_eq!(got("blocks"), blocks, "{when}: fsck's block-map entries differ from the model's non-zero blocks");
    assert!(got("frames") <= blocks, "{when}: more frames than mapped blocks: {totals}");
}

#[test]
fn concurrent_ops_match_model() {
    let _serial = serial();
    let cfg = workload::Config::new(env_f64("S2SFS_STRESS_SECS", 26.0));
    let extra = std::env::var("S2SFS_STRESS_MOUNT_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    // The volume's block size, for the expected block count.
    let block = extra
        .iter()
        .position(|a| *a == "--block-kib")
        .and_then(|i| extra.get(i + 1)?.parse::<usize>().ok())
        .map_or(harness::BLOCK, |k| k * 1024);
    let mut m = Mounted::new(&extra);
    let t = Instant::now();
    let exp = workload::run_all(&m.mnt, &cfg, "s2sfs");
    println!("stress workload done in {:.1} s (seed {:#x})", t.elapsed().as_secs_f64(), cfg.seed);
    m.unmount();
    let totals = fsck_clean(&m.store, "after the stress workload");
    assert_totals_match(&totals, &exp, 3, block, "after the stress workload");
    m.mount();
    exp.check("after umount, fsck and remount");
    m.unmount();
    let totals = fsck_clean(&m.store, "after the remount check");
    assert_totals_match(&totals, &exp, 3, block, "after the remount check");
}

#[test]
fn fio_verify_survives_remount() {
    let _serial = serial();
    if fio::find().is_none() {
        if fio::required() {
            panic!("fio is not installed and CI=true: install it (apt-get install -y fio); .ci/run does");
        }
        eprintln!("SKIPPED fio_verify_survives_remount: fio is not installed (apt-get install -y fio)");
        println!("SKIPPED fio_verify_survives_remount: fio is not installed");
        return;
    }
    let mb = env_f64("S2SFS_FIO_MB", 128.0) as u64;
    let mut m = Mounted::new(&[]);
    let work: PathBuf = m.outside("fio");
    let limit = Duration::from_secs(300);
    let jobs = [fio::Job::randrw(mb), fio::Job::seq(mb)];

    let mut verified = 0u64;
    let mut errors = 0usize;
    for job in &jobs {
        let r = fio::run(&format!("{} write+verify", job.name), &m.mnt, &job.write_and_verify(), &work, limit);
        r.assert_clean();
        println!(
            "fio {}: {:.1} s, wrote {} MB (all verified by fio's verify pass), read {} MB, {} errors",
            r.what,
            r.secs,
            r.write_bytes() / 1_000_000,
            r.read_bytes() / 1_000_000,
            r.errors()
        );
        verified += r.verified_bytes(false);
        errors += r.errors();
    }
    m.unmount();
    fsck_clean(&m.store, "after the fio jobs");
    m.mount();
    for job in &jobs {
        let r = fio::run(&format!("{} verify_only after remount", job.name), &m.mnt, &job.verify_only(), &work, limit);
        r.assert_clean();
        assert!(r.read_bytes() > 0, "fio {} read nothing back: {}", r.what, r.command);
        println!("fio {}: {:.1} s, verified {} MB, {} errors", r.what, r.secs, r.read_bytes() / 1_000_000, r.errors());
        verified += r.verified_bytes(true);
        errors += r.errors();
    }
    println!("FIO-RESULT verified_bytes={verified} errors={errors}");
    m.unmount();
    fsck_clean(&m.store, "after the verify_only pass");
}

fn churn_config() -> churn::Churn {
    let ops = env_f64("S2SFS_CHURN_OPS", 100_000.0) as u64;
    let seed = env_f64("S2SFS_STRESS_SEED", 7.0) as u64;
    churn::Churn { threads: env_f64("S2SFS_CHURN_THREADS", 4.0) as usize, ops, names: 100, seed }
}

#[test]
fn name_churn_never_hangs() {
    let _serial = serial();
    let mut m = Mounted::new(&[]);
    let dir = m.path("churn");
    std::fs::create_dir(&dir).unwrap();
    let cfg = churn_config();
    let pids = m.daemon_pids();
    let outcome = cfg.run(&dir, || {
        for pid in &pids {
            // SAFETY: kill(2) on the daemon's pid; no memory involved.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    });
    if let Some(secs) = outcome.stalled {
        // Unmount the dead daemon's mount so the test directory can go.
        let _ = std::process::Command::new("fusermount3").arg("-uz").arg(&m.mnt).status();
        panic!(
            "HANG: no operation completed for {secs:.0} s after {} of {} operations (daemon killed)",
            outcome.ops,
            cfg.ops * cfg.threads as u64
        );
    }
    println!(
        "CHURN-RESULT ops={} threads={} secs={:.1} ops_per_sec={:.0}",
        outcome.ops,
        cfg.threads,
        outcome.secs,
        outcome.ops_per_sec()
    );
    // What readdir lists is what lookup finds.
    let mut listed = harness::names(&dir);
    listed.sort();
    let mut present: Vec<String> =
        (0..cfg.names).map(|i| format!("name{i:03}")).filter(|n| dir.join(n).symlink_metadata().is_ok()).collect();
    present.sort();
    assert_eq!(listed, present, "readdir and lookup disagree after the churn");
    m.unmount();
    fsck_clean(&m.store, "after the name churn");
}

/// The name churn on any directory, for bench/metadata.sh (s2sfs vs bindfs).
#[test]
#[ignore = "benchmark driver for bench/metadata.sh (needs S2SFS_STRESS_DIR)"]
fn bench_churn() {
    let dir = std::env::var("S2SFS_STRESS_DIR").expect("set S2SFS_STRESS_DIR to an empty directory");
    let label = std::env::var("S2SFS_STRESS_LABEL").unwrap_or_else(|_| "dir".into());
    let cfg = churn_config();
    // A stalled run cannot be joined: the line tells bench/metadata.sh to kill the daemon,
    // which frees the stuck threads, and the panic ends the test.
    let outcome = cfg.run(Path::new(&dir), || {
        println!("CHURN-STALL label={label}: no operation completed for {} s", churn::STALL.as_secs());
        std::io::Write::flush(&mut std::io::stdout()).ok();
        panic!("{label}: no operation completed for {} s", churn::STALL.as_secs())
    });
    println!(
        "CHURN-RESULT label={label} ops={} threads={} secs={:.1} ops_per_sec={:.0}",
        outcome.ops,
        cfg.threads,
        outcome.secs,
        outcome.ops_per_sec()
    );
}

/// The concurrency workload on any directory: bench/reliability.sh runs it on s2sfs and on
/// bindfs. $S2SFS_STRESS_DIR must be an empty directory; $S2SFS_STRESS_LABEL names the run.
#[test]
#[ignore = "benchmark driver for bench/reliability.sh (needs S2SFS_STRESS_DIR)"]
fn bench_workload() {
    let dir = std::env::var("S2SFS_STRESS_DIR").expect("set S2SFS_STRESS_DIR to an empty directory");
    let label = std::env::var("S2SFS_STRESS_LABEL").unwrap_or_else(|_| "dir".into());
    let mut cfg = workload::Config::new(env_f64("S2SFS_STRESS_SECS", 26.0));
    // S2SFS_STRESS_PLAIN_RENAME=1: only rename(2), the same mix on every filesystem.
    let plain = std::env::var("S2SFS_STRESS_PLAIN_RENAME").is_ok_and(|v| v == "1");
    cfg.rename_flags = !plain && workload::supports_rename_flags(Path::new(&dir));
    // bindfs (libfuse high-level API) shows unlinked open files as .fuse_hidden*
    cfg.ignore_fuse_hidden = true;
    if !cfg.rename_flags {
        println!("note: renames use plain rename(2) only (RENAME_NOREPLACE/RENAME_EXCHANGE off)");
    }
    workload::run_all(Path::new(&dir), &cfg, &label);
}
