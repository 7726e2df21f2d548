//! Choosing each segment's latent codes from the latent head's logits, so that the
//! choice is discrete forward (as the coder stores it) and differentiable backward.
//!
//! Per slot the choice is among K codes and END; the latent is the codes before the
//! first END (CODER.md, "Coding a block"). Training samples with the Gumbel-max trick and
//! passes the softmax's gradient straight through the one-hot choice; a slot's presence
//! is the product of "not END" over it and the slots before it, so the gradient reaches
//! both what a code is and whether the latent goes on.

use candle_core::{D, DType, Tensor};

type CResult<T> = candle_core::Result<T>;

/// How codes are picked.
pub enum LatentChoice<'a> {
    /// Training: argmax of logits plus this Gumbel noise [segments, slots, K+1], with the
    /// gradient of the noisy softmax at `temperature`.
    Sample { noise: &'a Tensor, temperature: f64 },
    /// Coding: the argmax of the logits (ties: lowest index), no gradient.
    Argmax,
}

/// The chosen latents of a batch's segments.
pub struct Latent {
    /// One-hot choice per slot [segments, slots, K+1] (K is END).
    pub onehot: Tensor,
    /// 1 for a slot holding a code of the latent, 0 from the first END on
    /// [segments, slots].
    pub presence: Tensor,
    /// Codes per segment [segments].
    pub codes: Tensor,
}

impl Latent {
    /// `slot_ok` [segments, slots] is 0 for a slot over an empty part of its segment,
    /// which ends the latent there.
    pub fn choose(logits: &Tensor, slot_ok: &Tensor, choice: LatentChoice) -> CResult<Latent> {
        let (segments, slots, k1) = logits.dims3()?;
        let onehot = match choice {
            LatentChoice::Argmax => one_hot_argmax(&logits.detach())?,
            LatentChoice::Sample { noise, temperature } => {
                let noisy = (logits + noise)?;
                let hard = one_hot_argmax(&noisy.detach())?;
                let soft = softmax_last(&(noisy / temperature)?)?;
                (hard + (&soft - soft.detach())?)?
            }
        };
        let keep = (1.0 - onehot.narrow(2, k1 - 1, 1)?.squeeze(2)?)?.mul(slot_ok)?;
        let mut running = keep.narrow(1, 0, 1)?;
        let mut columns = vec![running.clone()];
        for slot in 1..slots {
            running = (running * keep.narrow(1, slot, 1)?)?;
            columns.push(running.clone());
        }
        let presence = Tensor::cat(&columns, 1)?;
        let codes = presence.sum(1)?;
        debug_assert_eq!(presence.dims(), [segments, slots]);
        Ok(Latent { onehot, presence, codes })
    }

    /// Presence of every memory slot as attention keys [segments, 1, 1, 1 + slots]: the
    /// null slot is always there.
    pub fn presence_keys(&self) -> CResult<Tensor> {
        let (segments, slots) = self.presence.dims2()?;
        let null = Tensor::ones((segments, 1), DType::F32, self.presence.device())?;
        Tensor::cat(&[&null, &self.presence], 1)?.reshape((segments, 1, 1, slots + 1))
    }
}

fn one_hot_argmax(x: &Tensor) -> CResult<Tensor> {
    let k1 = x.dim(D::Minus1)?;
    let index = x.argmax_keepdim(D::Minus1)?;
    let codes = Tensor::arange(0u32, k1 as u32, x.device())?;
    index.broadcast_eq(&codes)?.to_dtype(DType::F32)
}

fn softmax_last(x: &Tensor) -> CResult<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn codes_stop_at_the_first_end_and_gradients_reach_the_logits() -> CResult<()> {
        // Two segments, three slots, K = 2 codes + END.
        let logits = Var::new(
            &[
                [[2.0f32, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 5.0, 0.0]],
                [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
            ],
            &Device::Cpu,
        )?;
        let all = Tensor::ones((2, 3), DType::F32, &Device::Cpu)?;
        let latent = Latent::choose(logits.as_tensor(), &all, LatentChoice::Argmax)?;
        assert_eq!(latent.codes.to_vec1::<f32>()?, [1.0, 3.0]);
        assert_eq!(latent.presence.to_vec2::<f32>()?, [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]);
        assert_eq!(latent.presence_keys()?.dims(), [2, 1, 1, 4]);

        let noise = Tensor::zeros((2, 3, 3), DType::F32, &Device::Cpu)?;
        let sampled =
            Latent::choose(logits.as_tensor(), &all, LatentChoice::Sample { noise: &noise, temperature: 1.0 })?;
        assert_eq!(sampled.codes.to_vec1::<f32>()?, [1.0, 3.0]);
        let grads = sampled.codes.sum_all()?.backward()?;
        let g = grads.get(logits.as_tensor()).expect("gradient");
        // More codes wanted: END's logit of the first segment's second slot goes down.
        assert!(g.to_vec3::<f32>()?[0][1][2] < 0.0);

        // An empty part ends the latent whatever the head says.
        let gaps = Tensor::new(&[[1.0f32, 1.0, 1.0], [1.0, 0.0, 1.0]], &Device::Cpu)?;
        let cut = Latent::choose(logits.as_tensor(), &gaps, LatentChoice::Argmax)?;
        assert_eq!(cut.codes.to_vec1::<f32>()?, [1.0, 1.0]);
        Ok(())
    }
}
