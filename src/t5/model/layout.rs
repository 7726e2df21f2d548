//! The tensors a model's `weights.safetensors` must hold (CODER.md, "Weights"): names,
//! dtypes, shapes, and the range each one's values must lie in. The single source of
//! truth for loading, writing, random models and the trainer's export.

use super::super::ModelConfig;
use super::super::matcher::MATCH_BUCKETS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    I8,
    I32,
}

/// What a tensor is, which decides its dtype and the values it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A matrix `[out, in]` of q8 values; its exponent is the tensor `NAME.exp`.
    Matrix,
    /// The scalar I32 exponent of the matrix named without `.exp`.
    Exponent,
    /// q8 values at a fixed exponent (embeddings at E_X, gains at E_GAIN).
    Q8,
    /// I32 values at exponent E_S added to scores or logits (position bias, match boost).
    Bias,
}

impl Kind {
    pub fn dtype(self) -> Dtype {
        match self {
            Kind::Matrix | Kind::Q8 => Dtype::I8,
            Kind::Exponent | Kind::Bias => Dtype::I32,
        }
    }

    /// The values allowed. q8 excludes -128; exponents and biases are bounded so that
    /// every shift and sum of the integer network stays far inside i64 (and i32 where
    /// the kernels accumulate in it).
    pub fn range(self) -> (i64, i64) {
        match self {
            Kind::Matrix | Kind::Q8 => (-127, 127),
            Kind::Exponent => (MIN_EXP, MAX_EXP),
            Kind::Bias => (-MAX_BIAS, MAX_BIAS),
        }
    }
}

pub const MIN_EXP: i64 = -16;
pub const MAX_EXP: i64 = 40;
/// 2^20 eighths of a nat: far beyond any useful bias, far below overflow.
pub const MAX_BIAS: i64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub kind: Kind,
    /// `[]` for a scalar.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    pub fn dtype(&self) -> Dtype {
        self.kind.dtype()
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every tensor of a model of this shape, in a fixed order.
pub fn layout(config: &ModelConfig) -> Vec<TensorSpec> {
    let d = config.d_model;
    let mut specs = Vec::new();
    let q8 = |specs: &mut Vec<TensorSpec>, name: String, shape: Vec<usize>| {
        specs.push(TensorSpec { name, kind: Kind::Q8, shape })
    };
    q8(&mut specs, "embed".into(), vec![config.vocab, d]);
    q8(&mut specs, "latent_embed".into(), vec![config.latent_vocab + 1, d]);
    q8(&mut specs, "latent_pos".into(), vec![config.latent_max + 1, d]);
    let blocks = (0..config.enc_layers)
        .map(|i| (format!("enc.{i}."), false))
        .chain((0..config.dec_layers).map(|i| (format!("dec.{i}."), true)));
    for (prefix, decoder) in blocks {
        let norms: &[&str] = if decoder { &["ln1.g", "ln2.g", "ln3.g"] } else { &["ln1.g", "ln2.g"] };
        for norm in norms {
            q8(&mut specs, format!("{prefix}{norm}"), vec![d]);
        }
        let mut projections = vec!["self.q", "self.k", "self.v", "self.o"];
        if decoder {
            projections.extend(["cross.q", "cross.k", "cross.v", "cross.o"]);
        }
        for p in projections {
            matrix(&mut specs, format!("{prefix}{p}"), d, d);
        }
        specs.push(TensorSpec {
            name: format!("{prefix}self.rel"),
            kind: Kind::Bias,
            shape: vec![config.rel_buckets, config.n_heads],
        });
        matrix(&mut specs, format!("{prefix}ff.wi"), config.d_ff, d);
        matrix(&mut specs, format!("{prefix}ff.wo"), d, config.d_ff);
    }
    q8(&mut specs, "enc.ln_f.g".into(), vec![d]);
    q8(&mut specs, "dec.ln_f.g".into(), vec![d]);
    matrix(&mut specs, "out".into(), config.vocab, d);
    matrix(&mut specs, "latent_head".into(), config.latent_vocab + 1, d);
    specs.push(TensorSpec { name: "match.boost".into(), kind: Kind::Bias, shape: vec![MATCH_BUCKETS] });
    specs
}

fn matrix(specs: &mut Vec<TensorSpec>, name: String, rows: usize, cols: usize) {
    specs.push(TensorSpec { name: format!("{name}.exp"), kind: Kind::Exponent, shape: vec![] });
    specs.push(TensorSpec { name, kind: Kind::Matrix, shape: vec![rows, cols] });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout() {
        let specs = layout(&ModelConfig::default());
        let names: std::collections::HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), specs.len(), "names are unique");
        for name in ["embed", "dec.0.cross.v", "dec.0.cross.v.exp", "enc.0.self.rel", "match.boost", "out.exp"] {
            assert!(names.contains(name), "{name}");
        }
        assert!(!names.contains("enc.0.ln3.g") && !names.contains("enc.0.cross.q"));
        let out = specs.iter().find(|s| s.name == "out").expect("out");
        assert_eq!((out.shape.clone(), out.dtype()), (vec![2048, 128], Dtype::I8));
        assert!(!names.contains("dec.1.cross.v"), "one decoder block");
        // Embeddings, one encoder and one decoder block, final norms, heads, boost.
        assert_eq!(specs.len(), 3 + 15 + 24 + 2 + 4 + 1);
    }
}
