//! The AVX2 + FMA + F16C kernels (8 f32 lanes, 16 registers). Callers check the features first
//! (`super::super::cpu`).

use std::arch::x86_64::*;

use half::f16;

use crate::model::attention_avx2::reduce_add;

/// Loads 8 weights starting at `p` as f32.
pub trait Load8 {
    /// # Safety
    /// `p..p + 8` must be readable, and the CPU must support avx2 and f16c.
    unsafe fn load8(p: *const Self) -> __m256;
}
impl Load8 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable values (unaligned load).
        unsafe { _mm256_loadu_ps(p) }
    }
}
impl Load8 for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable halves (16 bytes) and F16C.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
}

/// Quantizes `dx.len()` blocks of 32 activations as the scalar quantizer does (`d = max|x| / 127`,
/// `q = round(x / d)` to nearest even), storing `q` as signed bytes: 8 lanes at a time, where the
/// scalar loop called libm's `rintf` for every value (1.5% of a q8_0 decode step on Zen 3).
///
/// # Safety
/// The CPU must support avx2; `x` and `q` hold `32·dx.len()` values.
#[target_feature(enable = "avx2")]
pub unsafe fn quantize(x: &[f32], q: &mut [u8], dx: &mut [f32]) {
    let sign = _mm256_set1_ps(-0.0);
    // `packs` interleaves its operands' 128-bit lanes; this puts the 4-value runs back in order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (b, d) in dx.iter_mut().enumerate() {
        let p = x.as_ptr().add(b * 32);
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i)));
        let a = v.map(|v| _mm256_andnot_ps(sign, v));
        let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)));
        *d = amax / 127.0;
        let id = _mm256_set1_ps(if *d != 0.0 { 1.0 / *d } else { 0.0 });
        // The default rounding mode (to nearest even); |q| ≤ 127, so the narrowing saturates nothing.
        let qi = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, id)));
        let q16 = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
        let q8 = _mm256_permutevar8x32_epi32(q16, order);
        _mm256_storeu_si256(q.as_mut_ptr().add(b * 32) as *mut __m256i, q8);
    }
}

/// Dot products of `R` quantized activation rows with `out.len()` consecutive q8_0 weight rows
/// (`qs`: their values as `q + 128`; `d`: their block scales) into `out[j][..R]`. Per block, the signed values go through
/// `vpmaddubsw` as llama.cpp's AVX2 path does (|w| unsigned against x with w's sign, at most
/// 2·127·127 per pair, so nothing saturates), then `vpmaddwd` to 8 exact i32 sums. Each row keeps
/// one accumulator and the same operations whatever `R`.
///
/// The block scales `dw·dx` are multiplied 8 blocks at a time and each block's is broadcast from
/// memory (a load, no shuffle). A scalar product and a register broadcast per block and row, as
/// llama.cpp's AVX2 path has them, left a q8_0 decode step on Zen 3 8% slower (paired median of 4).
///
/// # Safety
/// The CPU must support avx2, fma and f16c; `R ≤ 8`; `d.len()` is `out.len()` rows of `nb` blocks
/// and `qs.len() ≥ 32·d.len()`; `x` holds `R` rows of `x.nbp` blocks (`x.nbp` a multiple of 8
/// and ≥ `nb`).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8<const R: usize>(x: &super::q8::Rows, qs: &[u8], d: &[f16], out: &mut [[f32; 8]]) {
    let nb = d.len() / out.len();
    let ones = _mm256_set1_epi16(1);
    let bias = _mm256_set1_epi8(i8::MIN);
    let (px, pdx) = (x.q.as_ptr(), x.dx.as_ptr());
    let mut sc = [[0f32; 8]; R];
    for (j, o) in out.iter_mut().enumerate() {
        let pd = d.as_ptr().add(j * nb);
        let mut acc = [_mm256_setzero_ps(); R];
        let pw = qs.as_ptr().add(j * nb * 32);
        let mut b0 = 0;
        while b0 < nb {
            let in_group = (nb - b0).min(8);
            // The group's 8 weight scales to f32; a short last group is copied out first.
            let h = if in_group == 8 {
                _mm_loadu_si128(pd.add(b0) as *const __m128i)
            } else {
                let mut h = [0u16; 8];
                for (i, v) in h.iter_mut().take(in_group).enumerate() {
                    *v = (*pd.add(b0 + i)).to_bits();
                }
                _mm_loadu_si128(h.as_ptr() as *const __m128i)
            };
            let dw = _mm256_cvtph_ps(h);
            for (r, s) in sc.iter_mut().enumerate() {
                // In bounds: x.nbp ≥ b0 + 8, as it is a multiple of 8 and b0 < nb ≤ x.nbp.
                _mm256_storeu_ps(s.as_mut_ptr(), _mm256_mul_ps(dw, _mm256_loadu_ps(pdx.add(r * x.nbp + b0))));
            }
            for i in 0..in_group {
                let b = b0 + i;
                if i % 2 == 0 {
                    // One hint per 64 bytes. A hint only, possibly past the matrix: wrapping_add,
                    // as `add` out of bounds is UB.
                    _mm_prefetch::<_MM_HINT_T0>(pw.wrapping_add(b * 32 + 2048) as *const i8);
                }
                // Stored as `q + 128`: flipping the sign bit gives `q` back.
                let ws = _mm256_xor_si256(_mm256_loadu_si256(pw.add(b * 32) as *const __m256i), bias);
                let aw = _mm256_sign_epi8(ws, ws);
                for (r, ar) in acc.iter_mut().enumerate() {
                    // Activations are stored signed (see `Acts`).
                    let xq = _mm256_loadu_si256(px.add((r * x.nbp + b) * 32) as *const __m256i);
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xq, ws)), ones);
                    let s = _mm256_broadcast_ss(&*sc.as_ptr().cast::<f32>().add(r * 8 + i));
                    *ar = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, *ar);
                }
            }
            b0 += 8;
        }
        for (o, ar) in o.iter_mut().zip(&acc) {
            *o = reduce_add(*ar);
        }
    }
}

/// Dot products of `R` activation rows (`x`, `R × k`) with `RW` weight rows of length `k`, hinting
/// each weight row's lines into L1 as `hint` says: where this loop's caller reads that row's stream
/// next (see `super::groups`), this pass's part of it.
///
/// # Safety
/// The CPU must support avx2, fma and f16c; `x.len() ≥ R·k` and every `w[c].len() ≥ k`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dots<const R: usize, const RW: usize, W: Load8 + super::WeightElem>(
    x: &[f32],
    k: usize,
    w: [&[W]; RW],
    hint: super::Hint,
) -> [[f32; RW]; R] {
    let mut acc = [[_mm256_setzero_ps(); RW]; R];
    let k8 = k & !7;
    let px = x.as_ptr();
    let pw: [*const W; RW] = std::array::from_fn(|c| w[c].as_ptr());
    let mut i = 0;
    // The hardware prefetcher alone falls behind, so each weight row is prefetched where its
    // stream is read next, one line per 64 bytes its passes consume. (A fixed byte distance lands, for short
    // rows, on lines another row of the group is already loading; that left f16 decode at 64% of
    // the bandwidth bound.)
    let line = 64 / std::mem::size_of::<W>();
    // One hint per `parts` lines read, walking this part one line at a time; counters, not `%`,
    // as `parts` is known only at run time (a division per 8 values).
    let every = line * hint.parts;
    let (mut next, mut at) = (0, hint.ahead + hint.part * (k / hint.parts) / line * line);
    while i < k8 {
        if i == next {
            for p in pw.iter() {
                // A hint only, possibly past the matrix: wrapping_add, as `add` out of bounds is UB.
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at) as *const i8);
            }
            next += every;
            at += line;
        }
        let wv: [__m256; RW] = std::array::from_fn(|c| W::load8(pw[c].add(i)));
        for (r, ar) in acc.iter_mut().enumerate() {
            let xv = _mm256_loadu_ps(px.add(r * k + i));
            for (a, wc) in ar.iter_mut().zip(&wv) {
                *a = _mm256_fmadd_ps(xv, *wc, *a);
            }
        }
        i += 8;
    }
    let mut out = [[0f32; RW]; R];
    for r in 0..R {
        for c in 0..RW {
            let mut s = reduce_add(acc[r][c]);
            for t in k8..k {
                s += *x.get_unchecked(r * k + t) * w[c].get_unchecked(t).to_f32();
            }
            out[r][c] = s;
        }
    }
    out
}
