//! Golden vectors: fixed blocks of text, code and binary data, and the exact frames the
//! shipped model (`models/default`) must turn them into, committed in
//! `tests/golden/t5.json`. A frame decodes only where the coder's probabilities are
//! bit-identical to the writer's, so any change in the integer network's arithmetic, on
//! any machine or thread count, shows up here as a changed frame.
//!
//! `S2SFS_BLESS=1 cargo test --lib golden` rewrites the file after a deliberate change
//! (a new default model); never to make a failure go away.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::codec::{Codecs, Target, load_model};
use crate::t5::fixtures::xorshift;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Vector {
    name: String,
    /// blake3 of the input block.
    input_blake3: String,
    frame_len: usize,
    frame_blake3: String,
    /// The whole frame, hex.
    frame_hex: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Golden {
    model_id: String,
    vectors: Vec<Vector>,
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden").join("t5.json")
}

/// Frames of a model that was the default before (`models/<short id>`), as volumes and
/// `codec compress` files written then hold them.
fn previous_path(model: &crate::t5::Model) -> PathBuf {
    let name = format!("t5-{}.json", &hex(&model.id().0)[..8]);
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden").join(name)
}

/// Frames of the network of `ac85efaf…` coded without in-block mixing (the default model
/// before `mixing`, id `88cfe51e…`), as volumes written then hold them.
fn unmixed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden").join("t5-unmixed.json")
}

/// The network and tokenizer of `ac85efaf…` with in-block mixing off.
fn unmixed_model() -> std::sync::Arc<crate::t5::Model> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models").join("ac85efaf");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("models/ac85efaf");
    let mut config: crate::t5::ModelConfig = serde_json::from_slice(&read("config.json")).expect("config");
    config.mixing = false;
    let model = crate::t5::Model::from_files(
        config.to_json().into_bytes(),
        read("tokenizer.json"),
        read("weights.safetensors"),
        &dir,
    );
    std::sync::Arc::new(model.expect("the unmixed model loads"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inputs, made here so that nothing but the frames needs committing: prose, source
/// code and markup written for this test, and deterministic binary data.
fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let prose = "It was late in the evening when the archivist finally closed the last of the \
        ledgers. The volumes had come from a warehouse by the river, where they had waited \
        for forty years in crates that smelled of tar and rain. Each page listed cargo, \
        weights and the names of ships, and each name came back, again and again, as the \
        seasons turned: the Mary Ellen in spring, the Northern Star in autumn.\n";
    let code = "fn checksum(data: &[u8]) -> u32 {\n    let mut a: u32 = 1;\n    let mut b: u32 = 0;\n    \
        for &byte in data {\n        a = (a + byte as u32) % 65521;\n        b = (b + a) % 65521;\n    }\n    \
        (b << 16) | a\n}\n\n#[test]\nfn checksum_of_nothing_is_one() {\n    assert_eq!(checksum(&[]), 1);\n}\n";
    let markup = "<table class=\"ledger\">\n  <tr><th>Ship</th><th>Cargo</th><th>Tons</th></tr>\n  \
        <tr><td>Mary Ellen</td><td>timber</td><td>412</td></tr>\n  <tr><td>Northern Star</td>\
        <td>grain</td><td>388</td></tr>\n</table>\n";
    let mut rng = xorshift(0x5eed);
    let random: Vec<u8> = (0..3000).map(|_| rng() as u8).collect();
    let mut rng = xorshift(42);
    let mut structured = Vec::new();
    for i in 0u32..700 {
        structured.extend_from_slice(&i.to_le_bytes());
        structured.extend_from_slice(&((rng() % 50) as u16).to_le_bytes());
    }
    vec![
        ("prose", prose.repeat(6).into_bytes()),
        ("code", code.repeat(5).into_bytes()),
        ("markup", markup.repeat(8).into_bytes()),
        ("random", random),
        ("structured", structured),
        ("empty", Vec::new()),
    ]
}

fn produce() -> Golden {
    produce_with(load_model(None).expect("the shipped model loads"))
}

fn produce_with(model: std::sync::Arc<crate::t5::Model>) -> Golden {
    let model_id = hex(&model.id().0);
    let mut codecs = Codecs::new(3);
    codecs.register(std::sync::Arc::new(crate::t5::T5Codec::new(model.clone())));
    codecs.set_writer(Target::Learned { model: model.id() }).expect("registered");
    let vectors = inputs()
        .into_iter()
        .map(|(name, data)| {
            let frame = codecs.encode_block(&data).expect("every block encodes");
            assert_eq!(codecs.decode_frame(&frame).expect("the frame decodes"), data, "{name}");
            Vector {
                name: name.to_string(),
                input_blake3: blake3::hash(&data).to_hex().to_string(),
                frame_len: frame.len(),
                frame_blake3: blake3::hash(&frame).to_hex().to_string(),
                frame_hex: hex(&frame),
            }
        })
        .collect();
    Golden { model_id, vectors }
}

#[test]
fn shipped_model_produces_the_golden_frames_with_any_thread_count() {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    assert!(source.join("config.json").is_file(), "models/default is missing");
    let got = produce();
    let path = golden_path();
    if std::env::var_os("S2SFS_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).expect("serializable") + "\n").expect("writable");
        return;
    }
    let want: Golden =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("tests/golden/t5.json")).expect("valid json");
    assert_eq!(got.model_id, want.model_id, "models/default changed: bless new golden vectors with it");
    for (g, w) in got.vectors.iter().zip(&want.vectors) {
        assert_eq!(g, w, "vector {}: the coder produced another frame", w.name);
    }
    assert_eq!(got.vectors.len(), want.vectors.len());
    // The same frames from a pool of several threads, coding concurrently (the frames of
    // one block never depend on which thread or how many run).
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("a thread pool");
    let again: Vec<Golden> = pool.install(|| {
        use rayon::prelude::*;
        (0..2).into_par_iter().map(|_| produce()).collect()
    });
    for g in again {
        assert_eq!(g, want, "frames differ when coded on several threads at once");
    }
}

/// Every kernel set this CPU has (`S2SFS_KERNELS`: portable, AVX2, AVX-512) writes the
/// golden frames: the sets differ in speed only, so a volume written on one machine reads
/// on any other.
#[test]
fn every_kernel_set_produces_the_golden_frames() {
    use crate::t5::{Kernels, with_kernels};
    let want: Golden = serde_json::from_str(&std::fs::read_to_string(golden_path()).expect("tests/golden/t5.json"))
        .expect("valid json");
    let mut ran = Vec::new();
    for k in Kernels::available() {
        let got = with_kernels(k, produce);
        assert_eq!(got, want, "the {k} kernels produced other frames");
        ran.push(k);
    }
    assert!(ran.contains(&Kernels::Portable));
}

/// Every model that was the default before (embedded for reading) still writes and reads
/// exactly the frames it wrote then.
#[test]
fn frames_of_previous_default_models_stay_exact() {
    let previous = crate::codec::previous_models().expect("the previous models load");
    assert!(!previous.is_empty());
    for model in previous {
        let path = previous_path(&model);
        let want: Golden =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).expect("valid json");
        let got = produce_with(model);
        assert_eq!(got, want, "{} no longer codes its frames", path.display());
    }
}

/// Volumes written before in-block mixing hold frames of the unmixed model: that model
/// (stored in their registry) still writes and reads exactly those frames.
#[test]
fn frames_of_the_unmixed_model_stay_exact() {
    let want: Golden =
        serde_json::from_str(&std::fs::read_to_string(unmixed_path()).expect("tests/golden/t5-unmixed.json"))
            .expect("valid json");
    let got = produce_with(unmixed_model());
    assert_eq!(got, want, "the unmixed model codes other frames than volumes hold");
}

/// The golden frames decode on the batched network (`t5::batched::candle_net`) as one batch: the
/// CPU in CI, the first GPU when built with `--features cuda` on a machine with one.
#[test]
fn golden_frames_decode_on_the_batched_network() {
    use crate::codec::{CodecId, FrameHeader, HEADER_LEN};
    use crate::t5::{T5Codec, batch_device};

    let want: Golden = serde_json::from_str(&std::fs::read_to_string(golden_path()).expect("tests/golden/t5.json"))
        .expect("valid json");
    let model = load_model(None).expect("the shipped model loads");
    assert_eq!(hex(&model.id().0), want.model_id, "models/default changed: bless new golden vectors with it");
    let codec = T5Codec::new(model);
    let frames: Vec<Vec<u8>> = want
        .vectors
        .iter()
        .map(|v| {
            (0..v.frame_hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&v.frame_hex[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect();
    let inputs: Vec<Vec<u8>> = inputs().into_iter().map(|(_, data)| data).collect();
    let mut items = Vec::new();
    let mut which = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let header = FrameHeader::parse(frame).expect("header");
        if header.codec == CodecId::T5 {
            items.push((&frame[HEADER_LEN..], header.plain_len as usize));
            which.push(i);
        }
    }
    assert!(items.len() >= 3, "prose, code and markup are t5 frames");
    let device = batch_device();
    for (i, got) in which.iter().zip(codec.decompress_batch(&items, &device)) {
        assert_eq!(got.expect("decodes"), inputs[*i], "vector {} on {device:?}", want.vectors[*i].name);
    }
}

/// Long repeats cost what LZ pays: with the shipped model alone (no chooser), a block of
/// one byte repeated, a block of a 1 KiB passage repeated and a block of two equal halves
/// are coded no larger than zstd -19 codes them.
#[test]
fn repeats_cost_no_more_than_zstd() {
    let model = load_model(None).expect("the shipped model loads");
    let mut codecs = Codecs::new(19);
    codecs.register(std::sync::Arc::new(crate::t5::T5Codec::new(model.clone())));
    let t5 = Target::Learned { model: model.id() };
    let mut rng = xorshift(7);
    let words = ["ledger", "cargo", "the", "ship", "river", "tons", "of", "grain", "timber", "and", "in", "spring"];
    let mut passage = Vec::new();
    while passage.len() < 64 * 1024 {
        passage.extend_from_slice(words[(rng() % words.len() as u64) as usize].as_bytes());
        passage.push(if rng().is_multiple_of(9) { b'\n' } else { b' ' });
    }
    passage.truncate(64 * 1024);
    let phrase: Vec<u8> = passage[..1024].repeat(128);
    let halves: Vec<u8> = passage.repeat(2);
    let one_byte = vec![0u8; 128 * 1024];
    for (name, block) in
        [("one byte repeated", one_byte), ("a 1 KiB passage repeated", phrase), ("two equal halves", halves)]
    {
        let learned = codecs.encode_as(&block, t5).expect("t5 codes");
        let zstd = codecs.encode_as(&block, Target::Zstd { level: 19 }).expect("zstd codes");
        assert_eq!(codecs.decode_frame(&learned).expect("decodes"), block, "{name}");
        assert!(learned.len() <= zstd.len(), "{name}: t5 {} bytes, zstd -19 {}", learned.len(), zstd.len());
    }
}
