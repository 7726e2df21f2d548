//! The background flusher: commits dirty data older than the volume's commit age, and
//! compacts packs once much of their space is dead. On t5 and auto volumes a second,
//! niced thread recompresses cold blocks (`recompress.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Core;

const TICK: Duration = Duration::from_secs(1);
/// Compaction in the background only when over half the pack bytes are dead: rewriting
/// costs I/O, and unmount compacts more eagerly anyway.
const BACKGROUND_COMPACT_DEAD: f64 = 0.5;
const COMPACT_EVERY: Duration = Duration::from_secs(60);
/// The first recompression pass starts this long after the mount (the mount itself, and
/// the first reads of a fresh mount, go first); later ones this long after the last ended.
const RECOMPRESS_FIRST: Duration = Duration::from_secs(2);
const RECOMPRESS_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Background {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
    recompressor: Option<Recompressor>,
}

/// The background recompression thread.
struct Recompressor {
    /// Ends a pass at its next block.
    stop: Arc<AtomicBool>,
    /// Dropped (or sent to) to end the wait between passes.
    wake: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Recompressor {
    /// Starts recompressing blocks older than the volume's `recompress_after` to its
    /// `recompress_to`; None when the volume does neither.
    fn start(core: &Arc<Core>) -> Option<Recompressor> {
        let (Some(target), Some(older_than)) = (core.recompress_to(), core.opts.recompress_after) else { return None };
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = mpsc::channel::<()>();
        let core: Weak<Core> = Arc::downgrade(core);
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("s2sfs-recompress".into())
            .spawn(move || {
                super::recompress::nice_this_thread();
                let mut wait = RECOMPRESS_FIRST;
                loop {
                    match woken.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    wait = RECOMPRESS_EVERY;
                    let Some(core) = core.upgrade() else { return };
                    // The target as it is now: `s2sfs recompress --codec/--model` may
                    // have changed it (or turned it off) for the rest of the mount.
                    if let Some(target) = core.recompress_to() {
                        core.background_pass(&super::RecompressRequest { older_than, target }, &stopped);
                    }
                    if stopped.load(Ordering::Relaxed) {
                        return;
                    }
                }
            })
            .inspect_err(|e| log::error!("no background recompression ({e}): `s2sfs recompress` still works"))
            .ok()?;
        log::info!(
            "blocks unwritten for {} are recompressed to {} in the background",
            humantime::format_duration(older_than),
            super::describe_target(target)
        );
        Some(Recompressor { stop, wake, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
        let _ = self.thread.join();
    }
}

impl Background {
    pub(super) fn start(core: &Arc<Core>) -> Background {
        let (stop, stopped) = mpsc::channel::<()>();
        let recompressor = Recompressor::start(core);
        let core: Weak<Core> = Arc::downgrade(core);
        let thread = std::thread::Builder::new()
            .name("s2sfs-flusher".into())
            .spawn(move || {
                let mut last_compact = Instant::now();
                loop {
                    match stopped.recv_timeout(TICK) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let Some(core) = core.upgrade() else { return };
                    if let Err(e) = core.commit_old() {
                        log::error!("background commit: {e}");
                    }
                    // Metadata changes reach the disk within a tick; space of deleted data
                    // comes back once the deletion is durable.
                    match core.store.flush_if_changed() {
                        Ok(()) => core.store.punch_freed(),
                        Err(e) => log::error!("background flush: {e}"),
                    }
                    if last_compact.elapsed() >= COMPACT_EVERY {
                        last_compact = Instant::now();
                        if core.store.dead_fraction() > BACKGROUND_COMPACT_DEAD
                            && let Err(e) = core.compact(BACKGROUND_COMPACT_DEAD)
                        {
                            log::error!("background compaction: {e}");
                        }
                    }
                }
            })
            .inspect_err(|e| log::error!("no background flusher ({e}): dirty data commits on close and fsync only"))
            .ok();
        Background { stop, thread, recompressor }
    }

    pub(super) fn stop(self) {
        // First, so that a pass in flight ends while the flusher finishes its tick.
        if let Some(r) = self.recompressor {
            r.stop();
        }
        let _ = self.stop.send(());
        if let Some(thread) = self.thread {
            let _ = thread.join();
        }
    }
}
