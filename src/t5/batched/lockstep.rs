//! Decoding many t5 frames as one batch: the network runs on `BatchNet` (a GPU with the
//! `cuda` feature), one step for every block at once; each block's match models, tables
//! and range decoder stay on the CPU. The blocks advance in lockstep, so they reach
//! segment boundaries (and read their latents) together; a block that is done rides along
//! until the longest is.

use candle_core::Device;

use crate::codec::CodecError;
use crate::t5::candle_net::BatchNet;
use crate::t5::decoder::START_TOKEN;
use crate::t5::predictor::Predictor;
use crate::t5::range::RangeDecoder;
use crate::t5::t5_codec::{T5Codec, token_count};

/// One block being decoded.
struct Lane<'a, 'm> {
    count: usize,
    input: RangeDecoder<'a>,
    predictor: Predictor<'m>,
    tokens: Vec<u32>,
}

impl T5Codec {
    /// Decodes the payloads `(payload, plaintext length)` as one batch, the network on
    /// `device`; the same bytes as `decompress` on each, or its error.
    pub fn decompress_batch(&self, items: &[(&[u8], usize)], device: &Device) -> Vec<Result<Vec<u8>, CodecError>> {
        let fail = |e: String| CodecError::Decompress(e);
        let model = self.model();
        // A lane per payload; one whose header does not parse fails now.
        let mut lanes: Vec<Result<Lane<'_, '_>, CodecError>> = items
            .iter()
            .map(|&(payload, plain_len)| {
                let (count, stream) = token_count(payload, plain_len)?;
                let predictor = Predictor::new(model, 1).map_err(|e| fail(e.to_string()))?;
                Ok(Lane { count, input: RangeDecoder::new(stream), predictor, tokens: Vec::with_capacity(count) })
            })
            .collect();
        let mut live: Vec<&mut Lane<'_, '_>> = lanes.iter_mut().filter_map(|l| l.as_mut().ok()).collect();
        let run = self.run_lanes(&mut live, device);
        lanes
            .into_iter()
            .zip(items)
            .map(|(lane, &(_, plain_len))| match (lane?, &run) {
                (_, Err(e)) => Err(fail(format!("batched network: {e}"))),
                (lane, Ok(())) => self.plain_from_tokens(&lane.tokens, plain_len),
            })
            .collect()
    }

    fn run_lanes(&self, lanes: &mut [&mut Lane<'_, '_>], device: &Device) -> Result<(), String> {
        let config = self.model().config();
        let vocab = config.vocab;
        let longest = lanes.iter().map(|l| l.count).max().unwrap_or(0);
        let mut net = BatchNet::new(self.model(), lanes.len(), device).map_err(|e| e.to_string())?;
        let mut inputs = vec![START_TOKEN; lanes.len()];
        let mut codes = Vec::with_capacity(config.latent_max);
        for pos in 0..longest {
            if pos % config.segment == 0 {
                for (b, lane) in lanes.iter_mut().enumerate().filter(|(_, l)| pos < l.count) {
                    lane.predictor.code_latent(&mut codes, &mut lane.input);
                    net.set_latent(b, &codes).map_err(|e| e.to_string())?;
                }
            }
            let logits = net.step(&inputs).map_err(|e| e.to_string())?;
            for (b, lane) in lanes.iter_mut().enumerate().filter(|(_, l)| pos < l.count) {
                let row = &logits[b * vocab..(b + 1) * vocab];
                let token =
                    lane.predictor.decode_from_logits(&lane.tokens, row, &mut lane.input).map_err(|e| e.to_string())?;
                lane.tokens.push(token);
                inputs[b] = token;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::t5::fixtures;

    #[test]
    fn a_batch_decodes_what_each_block_decodes_alone() {
        let codec = T5Codec::new(fixtures::tiny_model());
        let mut next = fixtures::xorshift(3);
        let random: Vec<u8> = (0..700).map(|_| next() as u8).collect();
        let blocks: Vec<Vec<u8>> =
            vec![fixtures::text(0), fixtures::text(9), fixtures::text(2500), random, fixtures::text(400)];
        let payloads: Vec<Vec<u8>> = blocks.iter().map(|b| codec.compress(b).expect("compress")).collect();
        let mut damaged = payloads[2].clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x10;
        let mut items: Vec<(&[u8], usize)> = payloads.iter().zip(&blocks).map(|(p, b)| (&p[..], b.len())).collect();
        items.push((&damaged, blocks[2].len()));
        items.push((&[0xff][..], 10));
        let got = codec.decompress_batch(&items, &Device::Cpu);
        assert_eq!(got.len(), items.len());
        for (i, block) in blocks.iter().enumerate() {
            assert_eq!(got[i].as_ref().expect("decodes"), block, "block {i}");
        }
        // A damaged payload gives what decoding it alone gives; a truncated one an error.
        let alone = codec.decompress(&damaged, blocks[2].len());
        assert_eq!(got[blocks.len()].as_ref().ok(), alone.as_ref().ok());
        assert!(got[blocks.len() + 1].is_err());
    }
}
