//! BLOOM's GELU (`bloom_gelu_forward`: the tanh approximation) over f32 activations, vectorised.
//!
//! candle's `gelu` calls libm's `tanhf`/`expm1f` one element at a time, a tenth of a 700-token
//! prefill; here tanh comes from a polynomial `exp` that the compiler turns into AVX-512 or AVX2 code
//! (chosen at run time), accurate to a few ulp, on candle's thread pool.

use candle_core::{DType, Result, Tensor};

use super::cephes;

/// Elements per parallel work unit.
const CHUNK: usize = 1 << 14;

/// `x · ½ · (1 + tanh(√(2/π) · (x + 0.044715·x³)))`, element-wise, as f32.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    let shape = x.shape().clone();
    let v = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; v.len()];
    super::threads::for_each_chunk_mut(&mut out, CHUNK, |u, dst| {
        let lo = u * CHUNK;
        gelu_slice(&v[lo..lo + dst.len()], dst);
    });
    Tensor::from_vec(out, shape, x.device())
}

/// GELU of `y` in place, a stack buffer at a time: the same values as [`gelu`] gives element by
/// element (what a gemv task applies to its own columns).
pub(crate) fn gelu_in_place(y: &mut [f32]) {
    let mut buf = [0f32; 64];
    for c in y.chunks_mut(buf.len()) {
        let x = &mut buf[..c.len()];
        x.copy_from_slice(c);
        gelu_slice(x, c);
    }
}

fn gelu_slice(x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::cpu::features().avx512 {
        // SAFETY: avx512f (and with it avx2 and fma) was detected.
        return unsafe { gelu_avx512(x, y) };
    }
    #[cfg(target_arch = "x86_64")]
    if super::cpu::features().avx2 {
        // SAFETY: avx2 and fma were detected.
        return unsafe { gelu_avx2(x, y) };
    }
    gelu_portable(x, y)
}

/// The portable loop compiled for AVX2 + FMA (the compiler vectorises it 8 wide).
///
/// # Safety
/// The CPU must support avx2 and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(x: &[f32], y: &mut [f32]) {
    gelu_portable(x, y)
}

/// The portable loop compiled for AVX-512 (16 wide): half the instructions of the AVX2 loop.
///
/// # Safety
/// The CPU must support avx512f and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gelu_avx512(x: &[f32], y: &mut [f32]) {
    gelu_portable(x, y)
}

#[inline(always)]
fn gelu_portable(x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = gelu1(v);
    }
}

#[inline(always)]
fn gelu1(x: f32) -> f32 {
    const S: f32 = 0.797_884_6; // √(2/π)
    let u = S * x * (1.0 + 0.044715 * x * x);
    x * 0.5 * (1.0 + tanh(u))
}

/// tanh through exp(2u); |u| ≥ 9 is ±1 to f32 precision.
#[inline(always)]
fn tanh(u: f32) -> f32 {
    let u = u.clamp(-9.0, 9.0);
    let e = exp(2.0 * u);
    (e - 1.0) / (e + 1.0)
}

/// Cephes' `expf` for |x| ≤ 18: 2ⁿ · p(r) with r = x − n·ln 2 in [−½ ln 2, ½ ln 2].
#[inline(always)]
fn exp(x: f32) -> f32 {
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * cephes::LN2_HI + n * cephes::LN2_LO;
    let p = cephes::POLY[1..].iter().fold(cephes::POLY[0], |p, &c| p * r + c);
    let p = p * r * r + r + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_the_tanh_formula() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 / 100.0).collect();
        let t = Tensor::from_vec(xs.clone(), (4001,), &Device::Cpu).unwrap();
        let got = gelu(&t).unwrap().to_vec1::<f32>().unwrap();
        for (x, g) in xs.iter().zip(&got) {
            let x64 = *x as f64;
            let want =
                0.5 * x64 * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3))).tanh());
            assert!((*g as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()), "gelu({x}) = {g}, want {want}");
        }
    }
}
