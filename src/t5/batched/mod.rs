//! Batched decoding (CODER.md, "Batched decoding"): many frames decoded in lockstep, the
//! network of every block advanced by one step at once on candle (a GPU with the `cuda`
//! feature), each block's tables and range decoder on the CPU.

pub(crate) mod candle_net;
pub(crate) mod lockstep;
