//! Reliability: what happens to an s2sfs volume when things go wrong. Real FUSE mounts of
//! the built binary, each test bounded in time (the whole binary takes 12-20 s on 2 cores, debug build).
//!
//! - `crash`: SIGKILL of the daemon at random moments of a random workload; after
//!   `s2sfs umount` of the dead mount, fsck must be clean and every fsync'd state must be
//!   there (or a later one). Also kills during unmount-time compaction. The long run for
//!   releases: `S2SFS_CRASH_ITERATIONS=500 cargo test --release --test reliability --
//!   --ignored crash_points_long --nocapture`.
//! - `faults`: bit flips and truncation in pack files, bit flips in the metadata database.
//! - `enospc`: a store on a 24 MiB tmpfs filled up.
//! - `cli`: wrong command lines; the packaged man pages and completions are current.
//! - `fsck`: `s2sfs fsck` on damaged stores (records, frames, packs, namespace) and
//!   what `--repair` makes of them, through the public API and real mounts.
//! - `logs`: the daemon log's bound (rotation) and journald-friendly foreground lines.
//!
//! Each test prints a one-line `[reliability] ...` summary (visible without --nocapture).
//! Seeds: S2SFS_CRASH_SEED, S2SFS_FAULT_SEED (decimal or 0x-hex) repeat a run.
//!
//! Needs root, /dev/fuse, fusermount3 and tmpfs mounts.

#[path = "mounted/harness.rs"]
mod harness;

#[path = "reliability/cli.rs"]
mod cli;
#[path = "reliability/common.rs"]
mod common;
#[path = "reliability/crash.rs"]
mod crash;
#[path = "reliability/enospc.rs"]
mod enospc;
#[path = "reliability/faults.rs"]
mod faults;
#[path = "reliability/fsck.rs"]
mod fsck;
#[path = "reliability/logs.rs"]
mod logs;
