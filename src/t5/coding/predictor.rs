//! The coding distribution of every token: the decoder's logits, the match model's boost,
//! and the exp table, turned into the network's distribution (CODER.md, "Operations",
//! "Output"): a rounded `FreqTable`, or for `exact_tree` models the exp weights
//! themselves. The compressor and the decompressor both get their distributions from here,
//! in the same order of operations, which is what makes a frame decodable.

use crate::t5::confidence::MatchSse;
use crate::t5::config::ModelConfig;
use crate::t5::decoder::{Decoder, START_TOKEN};
use crate::t5::dist::{ExactDist, NetDist};
use crate::t5::error::Result;
use crate::t5::freq::FreqTable;
use crate::t5::intnet::{EXP, EXP_LEVELS};
use crate::t5::matcher::{MatchPrediction, Matcher};
use crate::t5::mix::{Io, LatentModel, MATCH_INPUTS, TokenMixer};
use crate::t5::model::Model;
use crate::t5::multiversion::multiversion;

pub struct Predictor<'m> {
    decoder: Decoder<'m>,
    matcher: Matcher,
    boost: &'m [i32],
    vocab: usize,
    inputs: Vec<u32>,
    logits: Vec<i32>,
    levels: Vec<u8>,
    table: FreqTable,
    /// The exact distribution, for `exact_tree` models (then `table` stays unused).
    exact: Option<ExactDist>,
    /// Match confidence stages, in the order CODER.md applies them.
    stages: Vec<Stage>,
    /// In-block mixing, when the model's config asks for it (CODER.md, "In-block mixing").
    mixing: Option<Mixing>,
    /// What the match models predict for this position (the main one, then the stages').
    predictions: [Option<MatchPrediction>; MATCH_INPUTS],
    /// Decoding: the token guessed for the position being decoded, whose successor's
    /// logits the last network call computed too (row 1 of `logits`).
    ahead: Option<u32>,
    /// Positions computed ahead, and how many of those guesses were right.
    guesses: (u64, u64),
    config: &'m ModelConfig,
}

/// Decoding runs the network one position ahead, on the match model's guess of the
/// token being decoded, when the match is at least this long: a batch of two costs
/// little more than one (the weights are read once), and a right guess saves the next
/// call. The logits are the same integers either way, so frames do not change.
const GUESS_FROM: u32 = 2;

struct Mixing {
    tokens: TokenMixer,
    latent: LatentModel,
}

/// One match-confidence stage: a match model of its own (None: the boosted one's
/// prediction) and its hit statistics.
struct Stage {
    matcher: Option<Matcher>,
    sse: MatchSse,
    /// The context and predicted token of the last table, until the coded token is known.
    pending: Option<(usize, u32)>,
}

impl Stage {
    fn new(matcher: Option<Matcher>) -> Stage {
        Stage { matcher, sse: MatchSse::new(), pending: None }
    }
}

impl<'m> Predictor<'m> {
    /// A predictor at the start of a block; `max_batch` positions per decoder call when
    /// the tokens are known.
    pub fn new(model: &'m Model, max_batch: usize) -> Result<Predictor<'m>> {
        let vocab = model.config().vocab;
        Ok(Predictor {
            decoder: Decoder::new(model, max_batch),
            matcher: Matcher::new(),
            boost: &model.net().boost,
            vocab,
            inputs: Vec::with_capacity(max_batch),
            logits: Vec::with_capacity(vocab * max_batch),
            levels: Vec::with_capacity(vocab),
            table: FreqTable::from_weights(&vec![1; vocab])?,
            exact: model.config().exact_tree.then(ExactDist::default),
            stages: stages(model),
            mixing: model.config().mixing.then(|| Mixing {
                tokens: TokenMixer::new(vocab, |t| model.tokenizer().token_bytes(t).map(<[u8]>::to_vec)),
                latent: LatentModel::new(model.config().latent_max, model.config().latent_vocab),
            }),
            predictions: [None; MATCH_INPUTS],
            ahead: None,
            guesses: (0, 0),
            config: model.config(),
        })
    }

    /// Codes a segment's latent (replaced by the decoded one when decoding); the caller
    /// then hands it to the network (`set_latent`).
    pub fn code_latent(&mut self, codes: &mut Vec<u32>, io: &mut impl Io) {
        match &mut self.mixing {
            Some(m) => m.latent.code(codes, io),
            None => {
                let length = io.uniform(codes.len() as u32, self.config.latent_max as u32 + 1);
                codes.resize(length as usize, 0);
                for z in codes.iter_mut() {
                    *z = io.uniform(*z, self.config.latent_vocab as u32);
                }
            }
        }
    }

    /// Codes `token` (ignored when decoding) under this position's table; returns it.
    fn code_token(&mut self, token: u32, io: &mut impl Io) -> Result<u32> {
        match (&mut self.mixing, &self.exact) {
            (Some(m), Some(exact)) => Ok(m.tokens.code(exact, &self.predictions, token, io)),
            (Some(m), None) => Ok(m.tokens.code(&self.table, &self.predictions, token, io)),
            // A config with `exact_tree` has `mixing` (checked at load).
            (None, _) => io.symbol(&self.table, token as usize).map(|t| t as u32),
        }
    }

    /// The latent whose memory the next positions attend to.
    pub fn set_latent(&mut self, codes: &[u32]) {
        // A position computed ahead attended to the previous latent.
        if self.ahead.take().is_some() {
            self.decoder.rewind(1);
        }
        self.decoder.set_latent(codes);
    }

    /// For known tokens (compression): codes the positions `start..end` of `tokens` into
    /// `io`, in order. `start` must be where the previous call ended (0 first), and
    /// `end - start` at most the batch size.
    pub fn run_known(&mut self, tokens: &[u32], start: usize, end: usize, io: &mut impl Io) -> Result<()> {
        debug_assert_eq!(start, self.decoder.position());
        self.inputs.clear();
        if start == 0 {
            self.inputs.push(START_TOKEN);
        }
        self.inputs.extend_from_slice(&tokens[start.saturating_sub(1)..end.saturating_sub(1)]);
        self.decoder.forward(&self.inputs, &mut self.logits);
        for p in start..end {
            let row = p - start;
            self.fill_table(row, &tokens[..p])?;
            if tokens[p] as usize >= self.vocab {
                return Err(crate::t5::CoderError::SymbolOutOfRange { symbol: tokens[p] as usize, len: self.vocab });
            }
            self.code_token(tokens[p], io)?;
            self.push(&tokens[..=p]);
        }
        Ok(())
    }

    /// For decoding: the token after `tokens` (all of the block's tokens decoded so far,
    /// each below the vocabulary size), read from `io`. Push it onto `tokens` before the
    /// next call. With a batch of two (`new`), the network may run one position ahead.
    pub fn decode_next(&mut self, tokens: &[u32], io: &mut impl Io) -> Result<u32> {
        if tokens.is_empty() {
            debug_assert_eq!(self.decoder.position(), 0);
        } else {
            self.push(tokens);
        }
        let input = tokens.last().copied().unwrap_or(START_TOKEN);
        match self.ahead.take() {
            Some(guess) if guess == input => {
                // The guess was right: this position's logits are computed already.
                self.guesses.1 += 1;
                self.logits.copy_within(self.vocab..2 * self.vocab, 0);
            }
            ahead => {
                if ahead.is_some() {
                    self.decoder.rewind(1);
                }
                debug_assert_eq!(tokens.len(), self.decoder.position());
                let guess = (self.decoder.max_batch() >= 2)
                    .then(|| self.matcher.predict(tokens))
                    .flatten()
                    .filter(|p| p.len >= GUESS_FROM && (p.token as usize) < self.vocab);
                match guess {
                    Some(p) => {
                        self.decoder.forward(&[input, p.token], &mut self.logits);
                        self.ahead = Some(p.token);
                        self.guesses.0 += 1;
                    }
                    None => self.decoder.forward(&[input], &mut self.logits),
                }
            }
        }
        self.fill_table(0, tokens)?;
        self.code_token(0, io)
    }

    /// How many positions decoding computed ahead on a guess, and how many guesses were
    /// right (each a network call saved).
    pub fn guesses(&self) -> (u64, u64) {
        self.guesses
    }

    /// For decoding with the network run elsewhere (`BatchNet`): as `decode_next`, with
    /// `logits` the network's row for this position.
    pub fn decode_from_logits(&mut self, tokens: &[u32], logits: &[i32], io: &mut impl Io) -> Result<u32> {
        self.push(tokens);
        self.logits.clear();
        self.logits.extend_from_slice(&logits[..self.vocab]);
        self.fill_table(0, tokens)?;
        self.code_token(0, io)
    }

    /// The distribution for logits row `row`, the match models having seen `before`.
    fn fill_table(&mut self, row: usize, before: &[u32]) -> Result<()> {
        let logits = &mut self.logits[row * self.vocab..(row + 1) * self.vocab];
        let pred = self.matcher.predict(before);
        if let Some(pred) = pred
            && let (Some(l), Some(&boost)) =
                (logits.get_mut(pred.token as usize), self.boost.get(usize::from(pred.bucket)))
        {
            *l = l.saturating_add(boost);
        }
        match &mut self.exact {
            Some(exact) => exact.fill(logits),
            None => {
                exp_levels(logits, &mut self.levels);
                self.table.refill_from_levels(&self.levels, &EXP)?;
            }
        }
        self.predictions = [None; MATCH_INPUTS];
        self.predictions[0] = pred;
        let mut more = self.predictions[1..].iter_mut();
        for stage in &mut self.stages {
            let stage_pred = match &stage.matcher {
                Some(m) => {
                    let p = m.predict(before);
                    if let Some(slot) = more.next() {
                        *slot = p;
                    }
                    p
                }
                None => pred,
            };
            if let Some(p) = stage_pred.filter(|p| (p.token as usize) < self.vocab) {
                let dist: &mut dyn NetDist = match &mut self.exact {
                    Some(exact) => exact,
                    None => &mut self.table,
                };
                let ctx = stage.sse.apply(dist, p.token as usize, p.bucket);
                stage.pending = Some((ctx, p.token));
            }
        }
        Ok(())
    }

    /// Takes in the newest token (the last of `tokens`): the match models and the
    /// confidence stages learn from it.
    fn push(&mut self, tokens: &[u32]) {
        let Some(&token) = tokens.last() else { return };
        for stage in &mut self.stages {
            if let Some((ctx, predicted)) = stage.pending.take() {
                stage.sse.update(ctx, token == predicted);
            }
            if let Some(m) = &mut stage.matcher {
                m.push(tokens);
            }
        }
        self.matcher.push(tokens);
    }
}

multiversion! {
    /// Each logit's exp-table level: its gap below the largest, capped at the table's end.
    fn exp_levels(logits: &[i32], levels: &mut Vec<u8>) {
        let max = logits.iter().copied().max().unwrap_or(0);
        // Logits and boosts are bounded at load, so the gaps fit an i32 (saturate anyway).
        let top = EXP_LEVELS as i32 - 1;
        levels.clear();
        levels.extend(logits.iter().map(|&l| max.saturating_sub(l).min(top) as u8));
    }
}

/// The confidence stages a model's config asks for.
fn stages(model: &Model) -> Vec<Stage> {
    let config = model.config();
    let main = config.match_sse.then(|| Stage::new(None));
    let extra = config.extra_matchers.iter().map(|&min| Stage::new(Some(Matcher::with_min(min))));
    main.into_iter().chain(extra).collect()
}
