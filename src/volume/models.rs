//! The volume's side of the store's model registry (`codec::ModelRegistry`): a model is
//! copied in before the first frame that needs it is written (`codec::open_codecs`,
//! `Core::add_model`) and kept while any frame needs it; at unmount, models no frame
//! needs any more (every block moved to another model, or back to zstd) are removed.

use std::collections::HashSet;

use super::Core;
use super::stats::describe_frame;
use crate::codec::{CodecId, ModelId};
use crate::error::Result;
use crate::store::FrameInfo;

impl Core {
    /// Removes the stored models that no block record names as its t5 frame's model,
    /// except the ones this volume writes or recompresses with. Keeps everything when a
    /// block cannot be classified (it might need any model). Call with no writer active.
    pub(super) fn prune_models(&self) -> Result<Vec<ModelId>> {
        let mut keep: HashSet<ModelId> = HashSet::new();
        keep.insert(self.codecs().writer().model());
        keep.extend(self.recompress_to().map(|t| t.model()));
        let stored = self.registry.ids();
        if stored.iter().all(|id| keep.contains(id)) {
            return Ok(Vec::new());
        }
        let totals = self.store.block_totals(&describe_frame)?;
        if totals.groups.keys().any(|(codec, _)| *codec == FrameInfo::UNKNOWN_CODEC) {
            log::warn!("some blocks could not be classified; every stored model is kept");
            return Ok(Vec::new());
        }
        let needed: HashSet<[u8; 8]> =
            totals.groups.keys().filter(|(codec, _)| *codec == CodecId::T5 as u8).map(|(_, model)| *model).collect();
        let mut removed = Vec::new();
        for id in stored.into_iter().filter(|id| !keep.contains(id) && !needed.contains(&id.tag())) {
            match self.registry.remove(&id) {
                Ok(()) => {
                    log::info!("model {} removed from the store: no block needs it any more", id.hex());
                    removed.push(id);
                }
                Err(e) => log::warn!("removing model {} that no block needs: {e}", id.hex()),
            }
        }
        Ok(removed)
    }
}
