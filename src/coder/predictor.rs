//! The coding distribution of every token: the decoder's logits, the match model's boost,
//! and the exp table, turned into a `FreqTable` (CODER.md, "Operations", "Output"). The
//! compressor and the decompressor both get their tables from here, in the same order of
//! operations, which is what makes a frame decodable.

use super::decoder::{Decoder, START_TOKEN};
use super::error::Result;
use super::freq::FreqTable;
use super::intnet::{EXP, EXP_LEVELS};
use super::matcher::Matcher;
use super::model::Model;
use super::multiversion::multiversion;
use super::sse::MatchSse;

pub struct Predictor<'m> {
    decoder: Decoder<'m>,
    matcher: Matcher,
    boost: &'m [i32],
    vocab: usize,
    inputs: Vec<u32>,
    logits: Vec<i32>,
    levels: Vec<u8>,
    table: FreqTable,
    /// Match confidence stages, in the order CODER.md applies them.
    stages: Vec<Stage>,
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
            stages: stages(model),
        })
    }

    /// The latent whose memory the next positions attend to.
    pub fn set_latent(&mut self, codes: &[u32]) {
        self.decoder.set_latent(codes);
    }

    /// For known tokens (compression): calls `code(table, position)` for the positions
    /// `start..end` of `tokens` in order, each table being that position's distribution.
    /// `start` must be where the previous call ended (0 first), and `end - start` at most
    /// the batch size.
    pub fn run_known(
        &mut self,
        tokens: &[u32],
        start: usize,
        end: usize,
        mut code: impl FnMut(&FreqTable, usize) -> Result<()>,
    ) -> Result<()> {
        debug_assert_eq!(start, self.decoder.position());
        self.inputs.clear();
        if start == 0 {
            self.inputs.push(START_TOKEN);
        }
        self.inputs
            .extend_from_slice(&tokens[start.saturating_sub(1)..end.saturating_sub(1)]);
        self.decoder.forward(&self.inputs, &mut self.logits);
        for p in start..end {
            let row = p - start;
            self.fill_table(row, &tokens[..p])?;
            code(&self.table, p)?;
            self.push(&tokens[..=p]);
        }
        Ok(())
    }

    /// For decoding: the distribution of the token after `tokens` (all of the block's
    /// tokens decoded so far, each below the vocabulary size). Push the decoded token
    /// onto `tokens` before the next call.
    pub fn next_table(&mut self, tokens: &[u32]) -> Result<&FreqTable> {
        if let Some(t) = tokens.len().checked_sub(1) {
            self.push(tokens);
            debug_assert_eq!(t + 1, self.decoder.position());
        }
        let input = tokens.last().copied().unwrap_or(START_TOKEN);
        self.decoder.forward(&[input], &mut self.logits);
        self.fill_table(0, tokens)?;
        Ok(&self.table)
    }

    /// For decoding with the network run elsewhere (`BatchNet`): as `next_table`, with
    /// `logits` the network's row for this position.
    pub fn table_from_logits(&mut self, tokens: &[u32], logits: &[i32]) -> Result<&FreqTable> {
        self.push(tokens);
        self.logits.clear();
        self.logits.extend_from_slice(&logits[..self.vocab]);
        self.fill_table(0, tokens)?;
        Ok(&self.table)
    }

    /// The table for logits row `row`, the match models having seen `before`.
    fn fill_table(&mut self, row: usize, before: &[u32]) -> Result<()> {
        let logits = &mut self.logits[row * self.vocab..(row + 1) * self.vocab];
        let pred = self.matcher.predict(before);
        if let Some(pred) = pred
            && let (Some(l), Some(&boost)) = (
                logits.get_mut(pred.token as usize),
                self.boost.get(usize::from(pred.bucket)),
            )
        {
            *l = l.saturating_add(boost);
        }
        exp_levels(logits, &mut self.levels);
        self.table.refill_from_levels(&self.levels, &EXP)?;
        for stage in &mut self.stages {
            let stage_pred = match &stage.matcher {
                Some(m) => m.predict(before),
                None => pred,
            };
            if let Some(p) = stage_pred.filter(|p| (p.token as usize) < self.vocab) {
                let ctx = stage.sse.apply(&mut self.table, p.token as usize, p.bucket);
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
