//! One file block's uncommitted contents.
//!
//! A write that covers a whole block keeps the whole block. A smaller write keeps only
//! the written bytes (`Partial`), over the committed block, which is loaded and merged
//! at commit time. So random small writes cost memory in proportion to what they wrote,
//! many of them fit under the dirty limit, and a block rewritten many times between
//! commits is decoded and compressed once.

use std::borrow::Cow;

/// Past this many separate writes or bytes, a partial block becomes a whole one: the
/// merge then costs less than keeping the pieces.
const MAX_PIECES: usize = 16;
const PIECE_OVERHEAD: usize = 32;

pub(super) enum DirtyBlock {
    /// The whole block; bytes past the end of file are zero.
    Full(Vec<u8>),
    /// Written pieces `(offset in block, bytes)`, in write order (later ones win).
    Partial(Vec<(u32, Vec<u8>)>),
}

impl DirtyBlock {
    /// Memory this block holds, for the volume's dirty limit.
    pub(super) fn cost(&self) -> usize {
        match self {
            DirtyBlock::Full(buf) => buf.len(),
            DirtyBlock::Partial(pieces) => pieces.iter().map(|(_, p)| p.len() + PIECE_OVERHEAD).sum(),
        }
    }

    /// Writes `data` at `offset` within the block. Returns true when the block should
    /// become whole (see [`DirtyBlock::make_full`]).
    pub(super) fn write(&mut self, offset: usize, data: &[u8], block_size: usize) -> bool {
        match self {
            DirtyBlock::Full(buf) => {
                buf[offset..offset + data.len()].copy_from_slice(data);
                false
            }
            DirtyBlock::Partial(pieces) => {
                pieces.push((offset as u32, data.to_vec()));
                pieces.len() > MAX_PIECES || self.cost() > block_size / 4
            }
        }
    }

    /// Turns a partial block into a whole one over `base`, the committed contents.
    pub(super) fn make_full(&mut self, base: Option<&[u8]>, block_size: usize) {
        if let DirtyBlock::Partial(_) = self {
            let full = self.contents(base, block_size).into_owned();
            *self = DirtyBlock::Full(full);
        }
    }

    /// The block's bytes (a whole block) over `base`, the committed contents.
    pub(super) fn contents<'a>(&'a self, base: Option<&[u8]>, block_size: usize) -> Cow<'a, [u8]> {
        match self {
            DirtyBlock::Full(buf) => Cow::Borrowed(buf),
            DirtyBlock::Partial(pieces) => {
                let mut buf = vec![0u8; block_size];
                if let Some(base) = base {
                    let n = base.len().min(block_size);
                    buf[..n].copy_from_slice(&base[..n]);
                }
                for (at, piece) in pieces {
                    let at = *at as usize;
                    buf[at..at + piece.len()].copy_from_slice(piece);
                }
                Cow::Owned(buf)
            }
        }
    }

    pub(super) fn needs_base(&self) -> bool {
        matches!(self, DirtyBlock::Partial(_))
    }

    /// Zeroes everything from `from` on (the file was truncated inside this block).
    /// Only for whole blocks: callers make a partial block whole first.
    pub(super) fn zero_from(&mut self, from: usize) {
        if let DirtyBlock::Full(buf) = self {
            buf[from..].fill(0);
        }
    }

    pub(super) fn into_full(self) -> Option<Vec<u8>> {
        match self {
            DirtyBlock::Full(buf) => Some(buf),
            DirtyBlock::Partial(_) => None,
        }
    }

    pub(super) fn clone_pieces(&self) -> Option<DirtyBlock> {
        match self {
            DirtyBlock::Full(_) => None,
            DirtyBlock::Partial(p) => Some(DirtyBlock::Partial(p.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_pieces_apply_in_order_over_the_base() {
        let base = vec![1u8; 16];
        let mut b = DirtyBlock::Partial(Vec::new());
        b.write(2, &[5, 5, 5], 16);
        b.write(3, &[7], 16);
        assert_eq!(&*b.contents(Some(&base), 16), &[1, 1, 5, 7, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(&*b.contents(None, 16), &[0, 0, 5, 7, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.make_full(Some(&base[..4]), 16);
        assert_eq!(b.cost(), 16);
        b.zero_from(3);
        assert_eq!(&*b.contents(None, 16), &[1, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn many_pieces_ask_to_become_whole() {
        let mut b = DirtyBlock::Partial(Vec::new());
        let asks: Vec<bool> = (0..20).map(|i| b.write(i, &[1], 4096)).collect();
        assert!(!asks[..MAX_PIECES].iter().any(|&a| a));
        assert!(asks[MAX_PIECES]);
    }
}
