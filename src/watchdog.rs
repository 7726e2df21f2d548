//! Slow operations are never silent: store and metadata operations register while they
//! run (`watch`), and a background thread logs any that has run for longer than
//! `SLOW_AFTER`, naming it and its thread, then again every `SLOW_AFTER` while it lasts,
//! and once more when it ends. A daemon stuck in a lock or a syscall then says where.

use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

/// An operation that takes this long is reported (one takes milliseconds at most).
pub const SLOW_AFTER: Duration = Duration::from_secs(30);
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// One operation in progress.
struct Running {
    op: &'static str,
    since: Instant,
    /// How long it had run when last reported.
    reported: Option<Duration>,
}

/// The operations in progress on one thread (nested ones stack).
struct Slot {
    thread: String,
    running: Mutex<Vec<Running>>,
}

/// What a check found: an operation over the limit, or a reported one that ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Slow { op: &'static str, thread: String, secs: u64 },
    Ended { op: &'static str, thread: String, secs: u64 },
}

pub struct Watchdog {
    slow_after: Duration,
    slots: Mutex<Vec<Weak<Slot>>>,
    ended: Mutex<Vec<Report>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watchdog {
    pub fn new(slow_after: Duration) -> Watchdog {
        Watchdog { slow_after, slots: Mutex::new(Vec::new()), ended: Mutex::new(Vec::new()) }
    }

    fn slot(&self) -> Arc<Slot> {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        let slot = Arc::new(Slot { thread, running: Mutex::new(Vec::new()) });
        let mut slots = lock(&self.slots);
        slots.retain(|s| s.strong_count() > 0);
        slots.push(Arc::downgrade(&slot));
        slot
    }

    fn start(&self, slot: &Slot, op: &'static str) {
        lock(&slot.running).push(Running { op, since: Instant::now(), reported: None });
    }

    fn end(&self, slot: &Slot) {
        let Some(done) = lock(&slot.running).pop() else { return };
        if done.reported.is_some() {
            let secs = done.since.elapsed().as_secs();
            lock(&self.ended).push(Report::Ended { op: done.op, thread: slot.thread.clone(), secs });
        }
    }

    /// Operations over the limit not reported for `slow_after`, and reported ones that
    /// ended since the last check.
    pub fn check(&self) -> Vec<Report> {
        let mut out = std::mem::take(&mut *lock(&self.ended));
        let slots: Vec<Arc<Slot>> = lock(&self.slots).iter().filter_map(Weak::upgrade).collect();
        for slot in slots {
            for r in lock(&slot.running).iter_mut() {
                let ran = r.since.elapsed();
                let due = r.reported.map_or(self.slow_after, |last| last + self.slow_after);
                if ran >= due {
                    r.reported = Some(ran);
                    out.push(Report::Slow { op: r.op, thread: slot.thread.clone(), secs: ran.as_secs() });
                }
            }
        }
        out
    }
}

fn global() -> &'static Watchdog {
    static DOG: OnceLock<Watchdog> = OnceLock::new();
    DOG.get_or_init(|| {
        let started = std::thread::Builder::new().name("s2sfs-watchdog".into()).spawn(|| {
            loop {
                std::thread::sleep(CHECK_EVERY);
                for report in global().check() {
                    match report {
                        Report::Slow { op, thread, secs } => {
                            log::warn!("{op} has been running for {secs} s on thread {thread}: the daemon may be stuck")
                        }
                        Report::Ended { op, thread, secs } => {
                            log::warn!("{op} on thread {thread} ended after {secs} s")
                        }
                    }
                }
            }
        });
        if let Err(e) = started {
            log::warn!("no watchdog thread ({e}): slow operations will not be reported");
        }
        Watchdog::new(SLOW_AFTER)
    })
}

thread_local! {
    static SLOT: Arc<Slot> = global().slot();
}

/// Registered until dropped.
pub struct Watch(());

/// Registers `op` (a short name such as "metadata commit") as running on this thread.
pub fn watch(op: &'static str) -> Watch {
    SLOT.with(|slot| global().start(slot, op));
    Watch(())
}

impl Drop for Watch {
    fn drop(&mut self) {
        // A thread being torn down has no slot any more: nothing to unregister.
        let _ = SLOT.try_with(|slot| global().end(slot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_operations_are_reported_by_name_until_they_end() {
        let dog = Watchdog::new(Duration::from_millis(50));
        let slot = dog.slot();
        dog.start(&slot, "metadata commit");
        dog.start(&slot, "pack read");
        dog.end(&slot);
        assert_eq!(dog.check(), []);
        std::thread::sleep(Duration::from_millis(60));
        let thread = slot.thread.clone();
        assert_eq!(dog.check(), [Report::Slow { op: "metadata commit", thread: thread.clone(), secs: 0 }]);
        // Not again until another `slow_after` has passed.
        assert_eq!(dog.check(), []);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(dog.check().len(), 1);
        dog.end(&slot);
        assert_eq!(dog.check(), [Report::Ended { op: "metadata commit", thread, secs: 0 }]);
        assert_eq!(dog.check(), []);
    }

    #[test]
    fn the_global_watch_registers_and_unregisters() {
        let before = SLOT.with(|s| lock(&s.running).len());
        let w = watch("test op");
        assert_eq!(SLOT.with(|s| lock(&s.running).last().map(|r| r.op)), Some("test op"));
        drop(w);
        assert_eq!(SLOT.with(|s| lock(&s.running).len()), before);
    }
}
