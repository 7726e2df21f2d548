//! The FUSE side of s2sfs: a thin fuser adapter over [`crate::volume::Volume`] and the
//! `mount` / `umount` commands (preflight checks, daemonizing, signals, waiting for the
//! store to close). No fuser type leaves this module.
//!
//! - `adapter`: `impl fuser::Filesystem`, each operation converts arguments, calls the
//!   volume, and replies; errors become errnos only through [`crate::Error::errno`].
//! - `mount`: what `s2sfs mount` does besides parsing its command line, with `preflight`
//!   (checks that create and change nothing), `options` (`-o` and the fixed mount
//!   options), `daemon` (fork, detach, stop signals, sd_notify).
//! - `umount`: what `s2sfs umount` does; `mountinfo` finds mounts for both, `storelock`
//!   tells both whether a daemon still holds a store.
//! - `kernel_readahead`: widens the kernel's read-ahead for a new mount.
//! - `error`: [`CommandError`], the one-line error of both commands.
//! - `unsupported`: the operations s2sfs does not implement, each kind logged once.
//! - `control`: the daemon's control socket (a read-only fsck of a mounted store, its
//!   statistics and models, recompression).

mod adapter;
pub mod control;
mod daemon;
mod error;
mod kernel_readahead;
mod mount;
mod mountinfo;
mod options;
mod preflight;
mod storelock;
mod umount;
mod unsupported;

pub use error::CommandError;
pub use mount::{InProcessMount, MountRequest, default_store_dir, mount, mount_in_process, systemd_escape_path};
pub use umount::umount;
