//! s2sfs: a FUSE filesystem that compresses file data block by block.
//!
//! The layers follow DESIGN.md: `fs` (thin fuser adapter) → `volume` (the filesystem,
//! no FUSE types) → `cache` / `codec` / `store` (sled metadata + pack files).

pub mod cache;
pub mod codec;
pub mod codectool;
pub mod coder;
pub mod error;
pub mod fs;
pub mod fsck;
pub mod store;
pub mod train;
pub mod volume;

pub use error::{Error, Result};
pub use volume::{Volume, VolumeOptions};
