//! `s2sfs codec latents`: the latent the t5 encoder gives each segment of a file's
//! blocks, counted per file, so that one can see what the latent says about the data:
//! how long it is, and which latents go with which files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use super::{Result, read_file};
use crate::t5::T5Codec;

/// The most frequent latents listed per file.
const TOP: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct LatentRow {
    pub file: String,
    pub segments: u64,
    pub codes_per_segment: f64,
    /// Share of segments whose latent is empty.
    pub empty_share: f64,
    /// The most frequent latents (codes joined by '.', "-" for the empty one) and the
    /// segments that have each.
    pub top: Vec<(String, u64)>,
}

/// Every file cut into blocks of `block` bytes, as a volume cuts it.
pub fn latent_files(codec: &T5Codec, block: usize, files: &[PathBuf]) -> Result<Vec<LatentRow>> {
    files
        .iter()
        .map(|path| {
            let data = read_file(path)?;
            let latents: Vec<Vec<u32>> = data.par_chunks(block).flat_map_iter(|b| codec.latents(b)).collect();
            Ok(row(path.display().to_string(), &latents))
        })
        .collect()
}

fn row(file: String, latents: &[Vec<u32>]) -> LatentRow {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for latent in latents {
        *counts.entry(name(latent)).or_default() += 1;
    }
    let mut top: Vec<(String, u64)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP);
    let segments = latents.len() as u64;
    let share = |n: usize| n as f64 / segments.max(1) as f64;
    LatentRow {
        file,
        segments,
        codes_per_segment: share(latents.iter().map(Vec::len).sum()),
        empty_share: share(latents.iter().filter(|l| l.is_empty()).count()),
        top,
    }
}

fn name(latent: &[u32]) -> String {
    if latent.is_empty() {
        return "-".into();
    }
    latent.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

pub fn render_latents(out: &mut impl Write, rows: &[LatentRow]) -> std::io::Result<()> {
    writeln!(out, "{:<28} {:>8} {:>6} {:>6}  most frequent latents (segments)", "file", "segments", "codes", "empty")?;
    for r in rows {
        let top: Vec<String> = r.top.iter().map(|(l, n)| format!("{l} ({n})")).collect();
        let file = r.file.rsplit('/').next().unwrap_or(&r.file);
        writeln!(
            out,
            "{file:<28} {:>8} {:>6.2} {:>5.0}%  {}",
            r.segments,
            r.codes_per_segment,
            100.0 * r.empty_share,
            top.join(", ")
        )?;
    }
    writeln!(out, "(codes: mean latent length; a latent is its codes joined by '.', the empty one '-')")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_latents_and_rank_them() {
        let latents = vec![vec![3, 1], vec![], vec![3, 1], vec![7], vec![]];
        let r = row("f".into(), &latents);
        assert_eq!(r.segments, 5);
        assert!((r.codes_per_segment - 1.0).abs() < 1e-12);
        assert!((r.empty_share - 0.4).abs() < 1e-12);
        assert_eq!(r.top, [("-".to_string(), 2), ("3.1".to_string(), 2), ("7".to_string(), 1)]);
    }
}
