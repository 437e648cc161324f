//! The AVX-512F kernels (16 f32 lanes, 32 registers: room for 8 activation rows against 2 weight
//! rows of accumulators). Callers check the features first (`super::super::cpu`).

use std::arch::x86_64::*;

use half::f16;

/// Loads 16 weights starting at `p` as f32.
pub trait Load16 {
    /// # Safety
    /// `p..p + 16` must be readable, and the CPU must support avx512f.
    unsafe fn load16(p: *const Self) -> __m512;
}
impl Load16 for f32 {
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable values (unaligned load).
        unsafe { _mm512_loadu_ps(p) }
    }
}
impl Load16 for f16 {
    #[inline(always)]
    unsafe fn load16(p: *const f16) -> __m512 {
        // SAFETY: the caller guarantees 16 readable halves (32 bytes).
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
}

/// Dot products of `R` activation rows (`x`, `R × k`) with 2 weight rows of length `k`.
///
/// # Safety
/// The CPU must support avx512f (and avx2, fma, f16c); `x.len() ≥ R·k` and `w[c].len() ≥ k`.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn dots<const R: usize, W: Load16 + super::WeightElem>(x: &[f32], k: usize, w: [&[W]; 2]) -> [[f32; 2]; R] {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let k16 = k & !15;
    let px = x.as_ptr();
    let pw = [w[0].as_ptr(), w[1].as_ptr()];
    let ahead = 2048 / std::mem::size_of::<W>();
    let mut i = 0;
    while i < k16 {
        _mm_prefetch::<_MM_HINT_T0>(pw[0].wrapping_add(i + ahead) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(pw[1].wrapping_add(i + ahead) as *const i8);
        let w0 = W::load16(pw[0].add(i));
        let w1 = W::load16(pw[1].add(i));
        for (r, ar) in acc.iter_mut().enumerate() {
            let xv = _mm512_loadu_ps(px.add(r * k + i));
            ar[0] = _mm512_fmadd_ps(xv, w0, ar[0]);
            ar[1] = _mm512_fmadd_ps(xv, w1, ar[1]);
        }
        i += 16;
    }
    let mut out = [[0f32; 2]; R];
    for r in 0..R {
        for c in 0..2 {
            let mut s = _mm512_reduce_add_ps(acc[r][c]);
            for t in k16..k {
                s += *x.get_unchecked(r * k + t) * w[c].get_unchecked(t).to_f32();
            }
            out[r][c] = s;
        }
    }
    out
}
