//! Writes a model with random weights (`Model::random`) in the shape of the default
//! model's config with some fields changed, for measuring how fast a shape would code
//! before training it: the coder's speed does not depend on the weights' values (its
//! ratio does: measure speed only).
//!
//! cargo run --release --example random_model -- OUT_DIR [FIELD=N ...]
//! e.g. `dec_layers=1`, `d_model=96 d_ff=288`, `window=128`; then
//! `s2sfs codec eval --codec t5 --model OUT_DIR FILES`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use s2sfs::t5::{ByteBpe, Model, ModelConfig};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(args.first().context("usage: random_model OUT_DIR [FIELD=N ...]")?);
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let mut config = ModelConfig::load(&default.join("config.json"))?;
    for change in &args[1..] {
        let (field, value) = change.split_once('=').with_context(|| format!("{change:?} is not FIELD=N"))?;
        let value: usize = value.parse().with_context(|| format!("{change:?}: not a number"))?;
        let slot = match field {
            "d_model" => &mut config.d_model,
            "n_heads" => &mut config.n_heads,
            "d_ff" => &mut config.d_ff,
            "enc_layers" => &mut config.enc_layers,
            "dec_layers" => &mut config.dec_layers,
            "window" => &mut config.window,
            "segment" => &mut config.segment,
            _ => bail!("{field}: not one of d_model, n_heads, d_ff, enc_layers, dec_layers, window, segment"),
        };
        *slot = value;
    }
    let tokenizer = ByteBpe::load(&default.join("tokenizer.json"))?;
    let model = Model::random(config, tokenizer, 1)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    model.save(&out)?;
    println!("{}", out.display());
    Ok(())
}
