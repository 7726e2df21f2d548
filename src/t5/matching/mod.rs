//! In-block repeats (CODER.md, "The match model" and "Match confidence"): the match
//! model predicts the token that followed the last occurrence of the current context,
//! and match confidence learns inside the block how often that prediction comes true.

pub(crate) mod confidence;
pub(crate) mod matcher;
