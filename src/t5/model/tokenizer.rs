//! An exact byte-level BPE: any byte string, text or not, becomes token ids and back.
//!
//! The `tokenizers` crate works on `str`, and its own decoding goes through `String`,
//! which cannot hold arbitrary bytes. So the crate is used only for what it is good at,
//! learning merges and applying them to one word; everything around it is ours:
//! - each byte becomes one char through GPT-2's byte-to-unicode table, a bijection onto
//!   printable chars, so a mapped word is a valid `str` whatever the bytes;
//! - our own byte-level splitter cuts the input into short words, the same way when
//!   training and when encoding, and independently of any pre-tokenizer in a file;
//! - ids go back to bytes through a table built once from the vocabulary by inverting the
//!   byte-to-char map.
//!
//! All 256 single-byte tokens are required in the vocabulary, so the model never meets a
//! char it does not know and every input is encodable.

use std::collections::HashSet;
use std::path::Path;

use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::{Model, Tokenizer, Trainer};

use crate::t5::error::{CoderError, Result};

/// Longest word the splitter emits. Longer runs are cut: short words keep the model's
/// per-word work bounded and its word cache effective.
pub const MAX_WORD_LEN: usize = 64;

/// Whether GPT-2's table maps a byte to the char with the same code point: the printable
/// Latin-1 bytes do; the others are moved to U+0100 and up, in byte order.
const fn keeps_own_char(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

const BYTE_TO_CHAR: [char; 256] = {
    let mut table = ['\0'; 256];
    let mut moved = 0u32;
    let mut byte = 0usize;
    while byte < 256 {
        let code = if keeps_own_char(byte as u8) {
            byte as u32
        } else {
            moved += 1;
            255 + moved
        };
        table[byte] = match char::from_u32(code) {
            Some(c) => c,
            None => panic!("not a char"),
        };
        byte += 1;
    }
    table
};

/// One past the highest char in `BYTE_TO_CHAR` (68 bytes are moved above U+00FF).
const CHAR_LIMIT: usize = 256 + 68;

/// The inverse of `BYTE_TO_CHAR`; `NO_BYTE` where no byte maps to the char.
const CHAR_TO_BYTE: [u16; CHAR_LIMIT] = {
    let mut table = [NO_BYTE; CHAR_LIMIT];
    let mut byte = 0usize;
    while byte < 256 {
        table[BYTE_TO_CHAR[byte] as usize] = byte as u16;
        byte += 1;
    }
    table
};
const NO_BYTE: u16 = u16::MAX;

fn char_to_byte(c: char) -> Option<u8> {
    let byte = *CHAR_TO_BYTE.get(c as usize)?;
    u8::try_from(byte).ok()
}

fn push_mapped(out: &mut String, bytes: &[u8]) {
    out.extend(bytes.iter().map(|&b| BYTE_TO_CHAR[usize::from(b)]));
}

/// A byte-level BPE whose encode/decode round trip is exact for any bytes.
#[derive(Debug, Clone)]
pub struct ByteBpe {
    model: BPE,
    /// Token `id`'s bytes are `token_bytes[token_starts[id]..token_starts[id + 1]]`.
    token_bytes: Vec<u8>,
    token_starts: Vec<usize>,
    /// The single-byte tokens, for input the model rejects (it should never).
    byte_ids: [u32; 256],
}

impl ByteBpe {
    /// Learns a vocabulary of `vocab_size` tokens (at least the 256 single bytes) from
    /// documents of arbitrary bytes, split into words as `encode` splits them.
    pub fn train<I>(documents: I, vocab_size: usize) -> Result<ByteBpe>
    where
        I: Iterator<Item = Vec<u8>> + Send,
    {
        if vocab_size < 256 {
            return Err(CoderError::Train(format!(
                "a vocabulary of {vocab_size} cannot hold the 256 single-byte tokens"
            )));
        }
        let mut trainer = BpeTrainer::builder()
            .vocab_size(vocab_size)
            // A pair seen once is no better as a token than as two.
            .min_frequency(2)
            .show_progress(false)
            .initial_alphabet(BYTE_TO_CHAR.iter().copied().collect::<HashSet<char>>())
            .build();
        // The trainer wants `str` sequences that a closure splits into words: each
        // document is mapped to chars with its words separated by ' ', a char that the
        // byte table never produces (the space byte maps to U+0120).
        let mapped = documents.map(|doc| {
            let mut text = String::with_capacity(doc.len() * 2);
            for word in words(&doc) {
                push_mapped(&mut text, word);
                text.push(' ');
            }
            text
        });
        trainer
            .feed(mapped, |text| Ok(text.split_terminator(' ').map(str::to_owned).collect()))
            .map_err(|e| CoderError::Train(e.to_string()))?;
        let mut model = BPE::default();
        trainer.train(&mut model).map_err(|e| CoderError::Train(e.to_string()))?;
        ByteBpe::from_model(model)
    }

    /// Writes the vocabulary and merges as a standard `tokenizer.json` (model only: the
    /// splitting into words is this module's, not the file's).
    pub fn save(&self, path: &Path) -> Result<()> {
        let cannot_write = |reason: String| CoderError::TokenizerFile {
            path: path.to_owned(),
            reason: format!("cannot write: {reason}"),
        };
        let json = self.to_json().map_err(|e| cannot_write(e.to_string()))?;
        std::fs::write(path, json).map_err(|e| cannot_write(e.to_string()))
    }

    /// The text `save` writes.
    pub fn to_json(&self) -> Result<String> {
        Tokenizer::new(self.model.clone())
            .to_string(true)
            .map_err(|e| CoderError::Vocab(format!("cannot serialize: {e}")))
    }

    /// Loads a `tokenizer.json` whose model is a byte-level BPE that covers all 256
    /// bytes. Only the model is used: normalizers and pre-tokenizers in the file work on
    /// text, not bytes, and are ignored.
    pub fn load(path: &Path) -> Result<ByteBpe> {
        let json = std::fs::read(path).map_err(|source| CoderError::Io { path: path.to_owned(), source })?;
        ByteBpe::from_json(&json, path)
    }

    /// Parses the contents of a `tokenizer.json` as `load` does; `path` names it in errors.
    pub fn from_json(json: &[u8], path: &Path) -> Result<ByteBpe> {
        parse_model(json)
            .and_then(|model| ByteBpe::from_model(model).map_err(|e| e.to_string()))
            .map_err(|reason| CoderError::TokenizerFile { path: path.to_owned(), reason })
    }

    /// Checks that `model` maps every byte string exactly and builds the id-to-bytes table.
    fn from_model(model: BPE) -> Result<ByteBpe> {
        let bad = |reason: String| Err(CoderError::Vocab(reason));
        if model.continuing_subword_prefix.is_some() || model.end_of_word_suffix.is_some() {
            return bad(AFFIXES.into());
        }
        if model.dropout.is_some_and(|p| p > 0.0) {
            return bad("merge dropout makes encoding nondeterministic".into());
        }
        let mut vocab: Vec<(String, u32)> = model.get_vocab().into_iter().collect();
        vocab.sort_unstable_by_key(|&(_, id)| id);
        let mut token_bytes = Vec::new();
        let mut token_starts = Vec::with_capacity(vocab.len() + 1);
        for (expected, (token, id)) in vocab.iter().enumerate() {
            if *id as usize != expected {
                return bad(format!("token ids are not 0..{} without gaps", vocab.len()));
            }
            if token.is_empty() {
                return bad(format!("token {id} is empty"));
            }
            token_starts.push(token_bytes.len());
            for c in token.chars() {
                let Some(byte) = char_to_byte(c) else {
                    return bad(format!("token {id} ({token:?}) is not byte-level"));
                };
                token_bytes.push(byte);
            }
        }
        token_starts.push(token_bytes.len());
        let mut byte_ids = [0u32; 256];
        for (byte, id) in byte_ids.iter_mut().enumerate() {
            let mut single = String::new();
            push_mapped(&mut single, &[byte as u8]);
            match model.token_to_id(&single) {
                Some(found) => *id = found,
                None => return bad(format!("no token for the byte {byte:#04x}")),
            }
        }
        Ok(ByteBpe { model, token_bytes, token_starts, byte_ids })
    }

    pub fn encode(&self, bytes: &[u8]) -> Vec<u32> {
        let mut ids = Vec::with_capacity(bytes.len() / 3 + 1);
        let mut mapped = String::with_capacity(MAX_WORD_LEN * 2);
        for word in words(bytes) {
            mapped.clear();
            push_mapped(&mut mapped, word);
            match self.model.tokenize(&mapped) {
                Ok(tokens) => ids.extend(tokens.iter().map(|t| t.id)),
                // Cannot happen with all single bytes in the vocabulary (checked at load);
                // single-byte tokens are still an exact encoding.
                Err(_) => ids.extend(word.iter().map(|&b| self.byte_ids[usize::from(b)])),
            }
        }
        ids
    }

    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id).ok_or(CoderError::UnknownToken(id))?);
        }
        Ok(out)
    }

    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let id = usize::try_from(id).ok()?;
        let start = *self.token_starts.get(id)?;
        let end = *self.token_starts.get(id + 1)?;
        self.token_bytes.get(start..end)
    }

    pub fn vocab_size(&self) -> usize {
        self.token_starts.len() - 1
    }
}

const AFFIXES: &str = "subword prefixes and suffixes would put non-input bytes into tokens";

/// The BPE model of a `tokenizer.json`. The file's other sections are never handed to
/// `tokenizers`, and the model is screened first, because the crate panics on some
/// malformed models (a subword prefix longer than a merged token) instead of failing.
fn parse_model(json: &[u8]) -> std::result::Result<BPE, String> {
    use serde_json::Value;
    let file: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let model = file.get("model").ok_or("no \"model\" section")?;
    if model.get("type").and_then(Value::as_str) != Some("BPE") {
        return Err("the model is not BPE".into());
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
        if model.get(key).is_some_and(|v| !v.is_null()) {
            return Err(AFFIXES.into());
        }
    }
    // Through text: the crate's deserializer borrows strings, which a `Value` cannot lend.
    serde_json::from_str(&model.to_string()).map_err(|e| format!("bad BPE model: {e}"))
}

/// How the splitter sees a byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Letters, digits and every byte of a multi-byte UTF-8 char.
    Word,
    /// Spaces, tabs and line breaks.
    Blank,
    /// Punctuation, control bytes and anything else.
    Other,
}

fn class(byte: u8) -> Class {
    match byte {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | 0x80..=0xFF => Class::Word,
        b' ' | b'\t' | b'\n' | b'\r' => Class::Blank,
        _ => Class::Other,
    }
}

/// Cuts bytes into words, GPT-2 style but on bytes and without Unicode tables: a run of
/// word bytes or of other bytes, either one optionally led by a single space; or a run of
/// blanks, less its last space when that space can lead the next word. So " the" and
/// "\n    " + " return" become words, and merges never span a word boundary. Words are
/// at most `MAX_WORD_LEN` bytes; their concatenation is the input.
fn words(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let first = *rest.first()?;
        let lead = usize::from(first == b' ' && rest.get(1).is_some_and(|&b| class(b) != Class::Blank));
        let kind = class(rest.get(lead).copied().unwrap_or(first));
        let run = rest[lead..].iter().take_while(|&&b| class(b) == kind).count();
        let mut len = lead + run;
        if kind == Class::Blank && len > 1 && rest[len - 1] == b' ' && len < rest.len() {
            len -= 1;
        }
        let (word, tail) = rest.split_at(len.min(MAX_WORD_LEN));
        rest = tail;
        Some(word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const SAMPLE: &str = "The quick brown fox jumps over the lazy dog. The dog sleeps.\n\
        def main():\n    return parse(argv[1:])  # the entry point\n\
        <p class=\"note\">Über naïve café — déjà vu.</p>\n\
        for (int i = 0; i < n; i++) { total += weights[i]; }\n";

    /// A few KB of mixed text, trained once for all the tests.
    fn small() -> &'static ByteBpe {
        static BPE: OnceLock<ByteBpe> = OnceLock::new();
        BPE.get_or_init(|| {
            let docs = (0..40).map(|i| format!("{i}: {SAMPLE}").into_bytes());
            ByteBpe::train(docs, 350).expect("training on text")
        })
    }

    #[test]
    fn byte_table_is_a_bijection() {
        let chars: HashSet<char> = BYTE_TO_CHAR.iter().copied().collect();
        assert_eq!(chars.len(), 256);
        for byte in 0..=255u8 {
            assert_eq!(char_to_byte(BYTE_TO_CHAR[usize::from(byte)]), Some(byte));
        }
        assert_eq!(BYTE_TO_CHAR[usize::from(b' ')], '\u{120}');
        assert_eq!(BYTE_TO_CHAR[usize::from(b'A')], 'A');
        assert_eq!(char_to_byte(' '), None);
        assert_eq!(char_to_byte('\u{2000}'), None);
    }

    #[test]
    fn splitter() {
        fn split(bytes: &[u8]) -> Vec<&[u8]> {
            words(bytes).collect()
        }
        assert_eq!(
            split(b"  hello, world!\n    return x"),
            [&b" "[..], b" hello", b",", b" world", b"!", b"\n   ", b" return", b" x"]
        );
        assert_eq!(split(b"a  "), [&b"a"[..], b"  "]);
        assert_eq!(split(b" "), [&b" "[..]]);
        assert_eq!(split(b" ("), [&b" ("[..]]);
        let long = vec![b'x'; 150];
        assert_eq!(split(&long).iter().map(|w| w.len()).collect::<Vec<_>>(), [64, 64, 22]);
        assert!(split(b"").is_empty());
    }

    #[test]
    fn trained_vocab_has_all_bytes_and_merges() {
        let bpe = small();
        assert_eq!(bpe.vocab_size(), 350);
        for byte in 0..=255u8 {
            assert_eq!(bpe.token_bytes(bpe.byte_ids[usize::from(byte)]), Some(&[byte][..]));
        }
        let text = SAMPLE.as_bytes();
        let ids = bpe.encode(text);
        assert!(ids.len() * 2 < text.len(), "{} tokens for {} bytes", ids.len(), text.len());
        assert_eq!(bpe.decode(&ids).expect("known ids"), text);
    }

    #[test]
    fn too_small_vocab_is_an_error() {
        assert!(ByteBpe::train(std::iter::empty(), 255).is_err());
        let bytes_only = ByteBpe::train(std::iter::empty(), 256).expect("bytes alone");
        assert_eq!(bytes_only.encode(b"\0\xffab"), [0, 255, 97, 98].map(|b| bytes_only.byte_ids[b]));
    }

    #[test]
    fn unknown_ids_are_errors() {
        let bpe = small();
        assert!(matches!(bpe.decode(&[1, 350]), Err(CoderError::UnknownToken(350))));
        assert!(bpe.token_bytes(u32::MAX).is_none());
    }

    #[test]
    fn save_and_load_encode_alike() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokenizer.json");
        small().save(&path).expect("save");
        let loaded = ByteBpe::load(&path).expect("load");
        assert_eq!(loaded.vocab_size(), small().vocab_size());
        let text = SAMPLE.as_bytes();
        assert_eq!(loaded.encode(text), small().encode(text));
    }

    #[test]
    fn bad_files_are_errors_naming_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.json");
        let err = ByteBpe::load(&missing).expect_err("missing file");
        assert!(err.to_string().contains("missing.json"), "{err}");

        let good = dir.path().join("good.json");
        small().save(&good).expect("save");
        let json = std::fs::read_to_string(&good).expect("read back");
        let broken = |name: &str, text: &str, reason: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let err = ByteBpe::load(&path).expect_err(name).to_string();
            assert!(err.contains(name) && err.contains(reason), "{err}");
        };
        broken("garbled.json", &json[..json.len() / 2], "not JSON");
        broken("empty.json", "", "not JSON");
        broken("no-model.json", "{}", "no \"model\"");
        // Each edit of the good file and the complaint it must draw. The crate itself
        // would panic on the prefix (longer than some tokens), so it must be screened.
        let edits = [
            ("\"type\": \"BPE\"", "\"type\": \"WordLevel\"", "not BPE"),
            ("\"Q\": ", "\"QQQQQ\": ", "byte 0x51"),
            ("\"Q\": ", "\"Q\u{2603}\": ", "not byte-level"),
            ("\"vocab\": {", "\"vocab\": {\"\u{100}\u{100}\": 99999,", "gaps"),
            ("\"continuing_subword_prefix\": null", "\"continuing_subword_prefix\": \"##\"", "prefix"),
        ];
        for (i, (from, to, reason)) in edits.into_iter().enumerate() {
            broken(&format!("edit{i}.json"), &json.replace(from, to), reason);
        }
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let bpe = small();
            let ids = bpe.encode(&bytes);
            prop_assert_eq!(bpe.decode(&ids).expect("own ids"), bytes);
        }

        /// Bytes drawn mostly from the training text's alphabet, so merges do fire.
        #[test]
        fn text_like_bytes_round_trip(picks in proptest::collection::vec(any::<u16>(), 0..4096)) {
            let alphabet = b"the quick \n\n  (\xc3\xa9\x00\xff) def ret_urn;:";
            let bytes: Vec<u8> = picks.iter().map(|&p| alphabet[usize::from(p) % alphabet.len()]).collect();
            let bpe = small();
            prop_assert_eq!(bpe.decode(&bpe.encode(&bytes)).expect("own ids"), bytes);
        }

        #[test]
        fn words_cover_input(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let parts: Vec<&[u8]> = words(&bytes).collect();
            prop_assert!(parts.iter().all(|w| !w.is_empty() && w.len() <= MAX_WORD_LEN));
            prop_assert_eq!(parts.concat(), bytes);
        }
    }
}
