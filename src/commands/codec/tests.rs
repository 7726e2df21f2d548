//! The codec tool on real files: round trips with zstd and with a small t5 model, and
//! damaged or foreign containers rejected with an error naming the problem.

use std::sync::Arc;

use super::*;
use crate::codec::{CodecKind, CodecSpec};
use crate::t5::fixtures::{text, tiny_model, xorshift};
use crate::t5::{Latents, Model, T5Codec};

/// The tool's codecs for `kind`, with `model` given as a model directory.
fn tool_codecs(kind: CodecKind, model: Option<Arc<Model>>) -> Codecs {
    let dir = tempfile::tempdir().unwrap();
    let model = model.map(|m| {
        let d = dir.path().join("model");
        m.save(&d).unwrap();
        d
    });
    codecs(&CodecSpec { codec: Some(kind), zstd_level: None, model }, Latents::Learned).unwrap().codecs
}

fn no_progress(_: u64) {}

fn sample() -> Vec<u8> {
    let mut data = text(9000);
    let mut rng = xorshift(5);
    data.extend((0..3000).map(|_| rng() as u8));
    data
}

fn round_trip(codecs: &Codecs, data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (input, packed, output) = (dir.path().join("in"), dir.path().join("packed"), dir.path().join("out"));
    std::fs::write(&input, data).unwrap();
    compress_file(codecs, 4096, &input, &packed, &no_progress).unwrap();
    decompress_file(codecs, &packed, &output, &no_progress).unwrap();
    (std::fs::read(&packed).unwrap(), std::fs::read(&output).unwrap())
}

#[test]
fn files_round_trip_with_zstd_and_t5() {
    let data = sample();
    for (codec, model) in [(CodecKind::Zstd, None), (CodecKind::T5, Some(tiny_model()))] {
        let codecs = tool_codecs(codec, model);
        let (packed, back) = round_trip(&codecs, &data);
        assert_eq!(back, data, "{codec:?}");
        assert!(packed.len() < data.len(), "{codec:?}: {} bytes for {}", packed.len(), data.len());
    }
    let (_, back) = round_trip(&tool_codecs(CodecKind::Zstd, None), &[]);
    assert!(back.is_empty());
}

#[test]
fn damaged_truncated_and_foreign_containers_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (input, packed, output) = (dir.path().join("in"), dir.path().join("packed"), dir.path().join("out"));
    std::fs::write(&input, sample()).unwrap();
    let t5 = tool_codecs(CodecKind::T5, Some(tiny_model()));
    compress_file(&t5, 4096, &input, &packed, &no_progress).unwrap();
    let good = std::fs::read(&packed).unwrap();
    let decode = |bytes: &[u8]| {
        std::fs::write(&packed, bytes).unwrap();
        decompress_file(&t5, &packed, &output, &no_progress).map(|_| ()).map_err(|e| e.to_string())
    };
    let mut flipped = good.clone();
    flipped[HEADER_LEN + 4 + 70] ^= 0x10;
    assert!(decode(&flipped).unwrap_err().contains("block 0"));
    assert!(decode(&good[..good.len() - 3]).unwrap_err().contains("truncated"));
    assert!(decode(b"not a container at all").unwrap_err().contains("not an s2sfs codec file"));
    // A reader without the model the frames name says so.
    std::fs::write(&packed, &good).unwrap();
    let err =
        decompress_file(&tool_codecs(CodecKind::Zstd, None), &packed, &output, &no_progress).unwrap_err().to_string();
    assert!(err.contains("needs model"), "{err}");
}

#[test]
fn an_output_that_exists_is_replaced_whole_keeping_its_mode_and_links() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (input, packed, target, link) =
        (dir.path().join("in"), dir.path().join("packed"), dir.path().join("target"), dir.path().join("link"));
    let data = sample();
    std::fs::write(&input, &data).unwrap();
    let zstd = tool_codecs(CodecKind::Zstd, None);
    compress_file(&zstd, 4096, &input, &packed, &no_progress).unwrap();
    std::fs::write(&target, b"older and longer than nothing").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("target", &link).unwrap();
    decompress_file(&zstd, &packed, &link, &no_progress).unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
    let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["in", "link", "packed", "target"], "a part file was left behind");
}

#[test]
fn eval_counts_every_byte_and_compares_with_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data = sample();
    std::fs::write(&path, &data).unwrap();
    let rows = eval_files(&tool_codecs(CodecKind::T5, Some(tiny_model())), 4096, &[path], &no_progress).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].file, "TOTAL");
    assert_eq!(rows[0].bytes, data.len() as u64);
    assert!(rows[0].frame_bytes > 0 && rows[0].zstd19_bytes > 0);
    assert!((rows[0].ratio - data.len() as f64 / rows[0].frame_bytes as f64).abs() < 1e-9);
    let r = &rows[0];
    assert_eq!(r.blocks_t5 + r.blocks_zstd + r.blocks_raw, data.len().div_ceil(4096) as u64);
    assert_eq!(r.blocks_zstd, 0, "t5 alone writes t5 or raw frames");
}

#[test]
fn auto_keeps_the_smallest_frame_per_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut data = sample();
    data.extend(std::iter::repeat_n(b"<a>1</a>".as_slice(), 1024).flatten());
    std::fs::write(&path, &data).unwrap();
    let t5 =
        eval_files(&tool_codecs(CodecKind::T5, Some(tiny_model())), 4096, std::slice::from_ref(&path), &no_progress)
            .unwrap();
    let auto = eval_files(&tool_codecs(CodecKind::Auto, Some(tiny_model())), 4096, &[path], &no_progress).unwrap();
    let (t5, auto) = (&t5[0], &auto[0]);
    assert!(auto.frame_bytes <= t5.frame_bytes, "auto {} > t5 alone {}", auto.frame_bytes, t5.frame_bytes);
    assert!(auto.blocks_zstd > 0, "the repetitive blocks go to zstd: {auto:?}");
    assert_eq!(auto.blocks_t5 + auto.blocks_zstd + auto.blocks_raw, t5.blocks_t5 + t5.blocks_zstd + t5.blocks_raw);
}

#[test]
fn batch_decoding_reports_what_it_checked() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, sample()).unwrap();
    let model = tiny_model();
    let codecs = tool_codecs(CodecKind::T5, Some(model.clone()));
    let report = batch_decode(&codecs, &T5Codec::new(model), 4096, &[input], 2, &no_progress).unwrap();
    // 9000 bytes of text in t5 frames (three blocks, the last partly random); the random
    // tail's last block is stored raw.
    assert_eq!(report.frames + report.other_frames, 3);
    assert!(report.frames >= 2, "{report:?}");
    assert!(report.bytes >= 8192);
    assert_eq!(report.batch, 2);
}
