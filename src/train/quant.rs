//! Fake quantization: the float model holds, wherever the integer network of CODER.md
//! rounds or clamps, exactly the value the integer network would hold, so the exported
//! model computes what training optimized.
//!
//! Forward: `clamp(floor(x·2^e + 1/2), lo, hi) / 2^e` (CODER.md rounds half up).
//! Backward: rounding is passed straight through; clamping passes the gradient only where
//! the value was inside the range. On the CPU this is one pass each way instead of the
//! seven or so that the same thing costs in candle's elementwise ops; other devices use
//! those ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor, bail};

use crate::t5::Q8_MAX;

/// Where a fake-quantized value lives: exponent `e` and the integer range.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    scale: f32,
    /// 1/scale, exact for a power of two: a multiplication where a division would stall
    /// the loop.
    inverse: f32,
    lo: f32,
    hi: f32,
}

impl Grid {
    /// q8 at exponent `e`: integers in ±127.
    pub fn q8(e: i32) -> Grid {
        Grid::clamped(e, Q8_MAX)
    }

    /// Integers in ±`max` at exponent `e`.
    pub fn clamped(e: i32, max: i32) -> Grid {
        Grid { lo: -(max as f32), hi: max as f32, ..Grid::rounded(e) }
    }

    /// Rounded at exponent `e`, never clamped (i32 scores, logits, biases).
    pub fn rounded(e: i32) -> Grid {
        Grid { scale: exp2(e), inverse: exp2(-e), lo: f32::NEG_INFINITY, hi: f32::INFINITY }
    }

    /// The integer the network holds for `x` (what export writes).
    pub fn integer(self, x: f32) -> f32 {
        floor(x * self.scale + 0.5).clamp(self.lo, self.hi)
    }

    fn quantize(self, x: f32) -> f32 {
        self.integer(x) * self.inverse
    }

    /// Whether the clamp left `x` alone, so that its gradient passes.
    fn passes(self, x: f32) -> bool {
        let v = x * self.scale;
        v >= self.lo && v <= self.hi
    }
}

/// `f32::floor` without a call into libm (the baseline x86-64 target has no rounding
/// instruction) and without branches, so that the loops over tensors vectorize: fake
/// quantization spent most of its time in floorf. Beyond 2^23 every f32 is whole already.
fn floor(v: f32) -> f32 {
    let t = v as i32 as f32;
    let t = t - if t > v { 1.0 } else { 0.0 };
    if v.abs() < 8_388_608.0 { t } else { v }
}

fn exp2(e: i32) -> f32 {
    (e as f32).exp2()
}

/// `x` as the integer network holds it on `grid`.
pub fn fake_quant(x: &Tensor, grid: Grid) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op1(FakeQuant(grid));
    }
    fake_quant_ops(x, grid)
}

/// The same in candle's own operations, for devices that have no custom op.
fn fake_quant_ops(x: &Tensor, grid: Grid) -> candle_core::Result<Tensor> {
    let clamped =
        if grid.lo.is_finite() { x.clamp(grid.lo * grid.inverse, grid.hi * grid.inverse)? } else { x.clone() };
    let rounded = clamped.affine(f64::from(grid.scale), 0.5)?.floor()?.affine(f64::from(grid.inverse), 0.0)?;
    &clamped + (rounded - &clamped)?.detach()
}

/// The largest exponent at which every weight of a tensor whose largest magnitude is
/// `max_abs` rounds into ±127: the finest power-of-two grid that holds the tensor.
pub fn weight_exponent(max_abs: f32) -> i32 {
    if !(max_abs.is_finite() && max_abs > 0.0) {
        return 0;
    }
    let max = f64::from(max_abs);
    let limit = f64::from(Q8_MAX) + 0.5;
    let mut e = (limit / max).log2().floor() as i32;
    // The log is only a first guess; the comparisons below decide, exactly.
    while max * f64::from(e + 1).exp2() < limit {
        e += 1;
    }
    while max * f64::from(e).exp2() >= limit {
        e -= 1;
    }
    e.clamp(-64, 64)
}

struct FakeQuant(Grid);

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fake quantization needs a contiguous tensor");
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

impl CustomOp1 for FakeQuant {
    fn name(&self) -> &'static str {
        "fake-quant"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout)?;
        let out: Vec<f32> = x.iter().map(|&v| self.0.quantize(v)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad_res.contiguous()?.apply_op2_no_bwd(&arg.contiguous()?, &PassInside(self.0))?;
        Ok(Some(grad))
    }
}

/// The gradient of `FakeQuant`: `grad` where the argument was inside the range, else 0.
struct PassInside(Grid);

impl CustomOp2 for PassInside {
    fn name(&self) -> &'static str {
        "fake-quant-grad"
    }

    fn cpu_fwd(
        &self,
        grad: &CpuStorage,
        grad_layout: &Layout,
        arg: &CpuStorage,
        arg_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let grad = contiguous(grad, grad_layout)?;
        let arg = contiguous(arg, arg_layout)?;
        let out: Vec<f32> = grad.iter().zip(arg).map(|(&g, &x)| if self.0.passes(x) { g } else { 0.0 }).collect();
        Ok((CpuStorage::F32(out), grad_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn rounds_half_up_and_clamps() -> candle_core::Result<()> {
        let x = Tensor::new(&[0.03125f32 * 2.5, -0.03125 * 2.5, 5.0, -5.0, 0.01], &Device::Cpu)?;
        let q = fake_quant(&x, Grid::q8(5))?.to_vec1::<f32>()?;
        assert_eq!(q, [3.0 / 32.0, -2.0 / 32.0, 127.0 / 32.0, -127.0 / 32.0, 0.0]);
        let r = fake_quant(&Tensor::new(&[100.06f32], &Device::Cpu)?, Grid::rounded(3))?;
        assert_eq!(r.to_vec1::<f32>()?, [100.0]);
        Ok(())
    }

    #[test]
    fn gradient_passes_inside_the_range_only() -> candle_core::Result<()> {
        let x = Var::new(&[0.5f32, 3.9, 4.5, -4.5], &Device::Cpu)?;
        let y = fake_quant(x.as_tensor(), Grid::q8(5))?;
        let grads = (y * 2.0)?.sum_all()?.backward()?;
        let g = grads.get(x.as_tensor()).expect("gradient").to_vec1::<f32>()?;
        assert_eq!(g, [2.0, 2.0, 0.0, 0.0]);
        Ok(())
    }

    #[test]
    fn candle_ops_compute_what_the_custom_op_computes() -> candle_core::Result<()> {
        let values: Vec<f32> = (0..2000).map(|i| (i as f32 - 1000.0) * 0.00731).collect();
        for grid in [Grid::q8(5), Grid::rounded(3), Grid::clamped(8, 32767)] {
            let x = Var::new(values.as_slice(), &Device::Cpu)?;
            let a = fake_quant(x.as_tensor(), grid)?;
            let b = fake_quant_ops(x.as_tensor(), grid)?;
            assert_eq!(a.to_vec1::<f32>()?, b.to_vec1::<f32>()?);
            let weights = Tensor::new(values.as_slice(), &Device::Cpu)?;
            let ga = a.mul(&weights)?.sum_all()?.backward()?;
            let gb = b.mul(&weights)?.sum_all()?.backward()?;
            let grad = |g: &candle_core::backprop::GradStore| g.get(x.as_tensor()).expect("gradient").to_vec1::<f32>();
            assert_eq!(grad(&ga)?, grad(&gb)?);
        }
        Ok(())
    }

    #[test]
    fn floor_is_libm_floor() {
        for v in [0.0f32, -0.0, 0.5, -0.5, 1.0, -1.0, 2.99, -2.99, 1e7, -1e7, 1e9, -3e9] {
            assert_eq!(floor(v), v.floor(), "{v}");
        }
        assert_eq!(floor(f32::INFINITY), f32::INFINITY);
        assert!(floor(f32::NAN).is_nan());
    }

    #[test]
    fn weight_exponent_is_the_finest_grid_that_fits() {
        assert_eq!(weight_exponent(1.0), 6);
        assert_eq!(weight_exponent(127.49 / 64.0), 6);
        assert_eq!(weight_exponent(127.5 / 64.0), 5);
        assert_eq!(weight_exponent(0.01), 13);
        assert_eq!(weight_exponent(0.0), 0);
        assert_eq!(weight_exponent(f32::NAN), 0);
    }
}
