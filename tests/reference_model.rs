//! Reference-model tests: random operation sequences run against the real `Volume` (no FUSE)
//! and against a plain in-memory model of a POSIX tree; every result, every errno and, at the
//! end, the whole tree must agree. In the spirit of mountpoint-s3's `tests/reftests`.
//!
//! The harness plays the kernel's part: it resolves paths with `lookup` one component at a
//! time and never sends what the VFS would refuse before reaching a filesystem (rename of a
//! directory into itself, rename between two names of one inode, link of a directory).
//! Everything else, the error cases included, goes to the volume.
//!
//! `ops` generates the operations, `model` answers them in memory, `harness` runs them on the
//! volume and compares.

#[path = "reference_model/harness.rs"]
mod harness;
#[path = "reference_model/model.rs"]
mod model;
#[path = "reference_model/ops.rs"]
mod ops;

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;

use harness::{options, run};
use ops::{Fill, NAMES, Op, P, RenameMode, op_strategy};

fn config(default_cases: u32) -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default_cases),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Background flusher effectively off: each case is deterministic and shrinks well.
    #[test]
    fn volume_matches_reference_model(
        block_size in prop_oneof![Just(4096u32), Just(8192u32)],
        ops in prop::collection::vec(op_strategy(), 1..=40),
    ) {
        run(options(block_size, Duration::from_secs(3600)), &ops)?;
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// The background flusher commits dirty data while operations run.
    #[test]
    fn volume_matches_reference_model_with_busy_flusher(
        ops in prop::collection::vec(op_strategy(), 1..=40),
    ) {
        run(options(4096, Duration::from_millis(1)), &ops)?;
    }
}

// ------------------------------------------------------------- pinned cases and regressions

fn p(s: &str) -> P {
    P::Path(s.split('/').filter(|c| !c.is_empty()).map(|c| NAMES.iter().position(|n| *n == c).unwrap() as u8).collect())
}

fn pinned(ops: Vec<Op>) {
    if let Err(err) = run(options(4096, Duration::from_secs(3600)), &ops) {
        panic!("{err}");
    }
}

#[test]
fn pinned_write_past_eof_across_blocks_then_remount() {
    pinned(vec![
        Op::Create { path: p("a"), via_create: true },
        Op::Write { path: p("a"), offset: 10_000, len: 5000, fill: Fill::Random(1), keep_dirty: true },
        Op::Read { path: p("a"), offset: 0, len: 20_000 },
        Op::Truncate { path: p("a"), size: 9000 },
        Op::Write { path: p("a"), offset: 4095, len: 2, fill: Fill::Text(0), keep_dirty: false },
        Op::Remount,
        Op::Read { path: p("a"), offset: 4000, len: 6000 },
    ]);
}

#[test]
fn pinned_rename_and_link_errors() {
    pinned(vec![
        Op::Mkdir { path: p("a") },
        Op::Mkdir { path: p("a/b") },
        Op::Create { path: p("a/b/c"), via_create: false },
        Op::Create { path: p("b"), via_create: true },
        Op::Rename { from: p("b"), to: p("a"), mode: RenameMode::Plain }, // EISDIR
        Op::Rename { from: p("a"), to: p("b"), mode: RenameMode::Plain }, // ENOTDIR
        Op::Mkdir { path: p("c") },
        Op::Rename { from: p("c"), to: p("a"), mode: RenameMode::Plain }, // ENOTEMPTY
        Op::Rename { from: p("b"), to: p("c"), mode: RenameMode::NoReplace }, // EEXIST
        Op::Rename { from: p("b"), to: p("a/c"), mode: RenameMode::Exchange }, // ENOENT
        Op::Rmdir { path: p("a") },                                       // ENOTEMPTY
        Op::Rmdir { path: p("b") },                                       // ENOTDIR
        Op::Unlink { path: p("c") },                                      // EISDIR
        Op::Link { from: p("b"), to: p("a/b/c") },                        // EEXIST
        Op::Link { from: p("b"), to: p("a/b/a") },
        Op::Link { from: p("b/a"), to: p("a/a") }, // ENOTDIR
        Op::Rename { from: p("a/b/a"), to: p("b"), mode: RenameMode::Plain }, // same inode: skipped
        Op::Write { path: p("b"), offset: 0, len: 100, fill: Fill::Text(2), keep_dirty: false },
        Op::Unlink { path: p("b") },
        Op::Rename { from: p("a/b/a"), to: p("a/b/c"), mode: RenameMode::Plain }, // over a file
        Op::Remount,
    ]);
}
