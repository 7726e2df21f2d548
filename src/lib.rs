//! s2sfs: a FUSE filesystem that compresses file data block by block.
//!
//! The layers (ARCHITECTURE.md): `fs` (thin fuser adapter) → `volume` (the filesystem,
//! no FUSE types) → `cache` / `codec` / `store` (redb metadata + pack files); `watchdog`
//! reports store operations that run far too long; `logging` writes and bounds the log;
//! `durable` syncs directories after their entries change.

pub mod cache;
pub mod codec;
pub mod commands;
pub mod durable;
pub mod error;
pub mod fs;
pub mod logging;
pub mod store;
pub mod t5;
pub mod train;
pub mod volume;
pub mod watchdog;

pub use error::{Error, Result};
pub use volume::{Volume, VolumeOptions};
