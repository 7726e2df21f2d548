//! The background flusher: commits dirty data older than the volume's commit age, and
//! compacts packs once much of their space is dead.

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

pub(super) struct Background {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub(super) fn start(core: &Arc<Core>) -> Background {
        let (stop, stopped) = mpsc::channel::<()>();
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
        Background { stop, thread }
    }

    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread {
            let _ = thread.join();
        }
    }
}
