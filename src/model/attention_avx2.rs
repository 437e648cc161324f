//! The attention kernels' vector pieces on AVX2+FMA (8 lanes, no mask registers), for CPUs without
//! AVX-512 (AMD Zen 2/3, older Intel): the same steps as the AVX-512 ones in `attention` and
//! `decode_attention`, with lane masks as integer vectors.

use std::arch::x86_64::*;

use super::cephes;

/// Lanes whose index is below `left` (all eight from 8 on), as a `maskload`/`maskstore` mask.
///
/// # Safety
/// The CPU must support avx2.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn lanes(left: usize) -> __m256i {
    let n = left.min(8) as i32;
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// Cephes' `expf` on 8 lanes, as `attention::exp` on 16: `2ⁿ · p(r)`, `r = x − n·ln 2`; inputs
/// below −87 give ~0. `2ⁿ` is built in the exponent bits (n ≥ −126 there, a normal number).
///
/// # Safety
/// The CPU must support avx2 and fma.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0)), _mm256_set1_ps(88.0));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(cephes::LN2_HI), x);
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(cephes::LN2_LO), r);
    let mut p = _mm256_set1_ps(cephes::POLY[0]);
    for c in cephes::POLY[1..].iter().copied() {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
    let pow2 =
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))));
    _mm256_mul_ps(p, pow2)
}

/// The largest of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce_max(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<0x55>(m, m)))
}

/// The sum of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn reduce_add(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<0x55>(s, s)))
}

/// `xs[j] = scale · xs[j] + slope · (pos0 + j)`: a score's scaling and its ALiBi term, the bias from
/// each key's position alone (exact in f32 below 2²⁴).
///
/// # Safety
/// The CPU must support avx2 and fma.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn scale_and_bias(xs: &mut [f32], scale: f32, slope: f32, pos0: usize) {
    let n = xs.len();
    let (vs, vsl) = (_mm256_set1_ps(scale), _mm256_set1_ps(slope));
    let lane = _mm256_setr_ps(0., 1., 2., 3., 4., 5., 6., 7.);
    let mut j = 0;
    while j < n {
        let m = lanes(n - j);
        let pos = _mm256_add_ps(_mm256_set1_ps((pos0 + j) as f32), lane);
        // SAFETY (load and store): lanes masked to n = xs.len().
        let t = _mm256_fmadd_ps(_mm256_maskload_ps(xs.as_ptr().add(j), m), vs, _mm256_mul_ps(vsl, pos));
        _mm256_maskstore_ps(xs.as_mut_ptr().add(j), m, t);
        j += 8;
    }
}

/// Softmax of `xs` in place, weights below f32's smallest normal as 0 (see
/// `attention::softmax_in_place`, which this mirrors on 8 lanes).
///
/// # Safety
/// The CPU must support avx2 and fma.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn softmax_in_place(xs: &mut [f32]) {
    let n = xs.len();
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut vmax = ninf;
    let mut j = 0;
    while j < n {
        let m = lanes(n - j);
        // SAFETY (all loads and stores here): lanes masked to n = xs.len().
        let x = _mm256_blendv_ps(ninf, _mm256_maskload_ps(xs.as_ptr().add(j), m), _mm256_castsi256_ps(m));
        vmax = _mm256_max_ps(vmax, x);
        j += 8;
    }
    let vmax = _mm256_set1_ps(reduce_max(vmax));
    let mut vsum = _mm256_setzero_ps();
    j = 0;
    while j < n {
        let m = lanes(n - j);
        let e = exp(_mm256_sub_ps(_mm256_maskload_ps(xs.as_ptr().add(j), m), vmax));
        let e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(xs.as_mut_ptr().add(j), m, e);
        vsum = _mm256_add_ps(vsum, e);
        j += 8;
    }
    let inv = _mm256_set1_ps(1.0 / reduce_add(vsum));
    let tiny = _mm256_set1_ps(f32::MIN_POSITIVE);
    j = 0;
    while j < n {
        let m = lanes(n - j);
        let p = _mm256_mul_ps(_mm256_maskload_ps(xs.as_ptr().add(j), m), inv);
        let normal = _mm256_cmp_ps::<_CMP_GE_OQ>(p, tiny);
        _mm256_maskstore_ps(xs.as_mut_ptr().add(j), m, _mm256_and_ps(p, normal));
        j += 8;
    }
}

/// Lane `t` of the result is the sum of the 8 lanes of `v[t]`: in-register shuffles and adds.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn sum8(v: &[__m256; 8]) -> __m256 {
    // [a0+a2, b0+b2, a1+a3, b1+b3] per 128-bit half, for (a, b) = (v[2i], v[2i+1]).
    let s: [__m256; 4] = std::array::from_fn(|i| {
        _mm256_add_ps(_mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]))
    });
    // Per half [a, b, c, d]: four vectors' sums over that half.
    let u: [__m256; 2] = std::array::from_fn(|i| {
        _mm256_add_ps(
            _mm256_shuffle_ps::<0x44>(s[2 * i], s[2 * i + 1]),
            _mm256_shuffle_ps::<0xEE>(s[2 * i], s[2 * i + 1]),
        )
    });
    // Halves added: lanes 0..4 from u[0], 4..8 from u[1].
    _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(u[0], u[1]), _mm256_permute2f128_ps::<0x31>(u[0], u[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avx2() -> bool {
        crate::model::cpu::features().avx2
    }

    #[test]
    fn exp_is_within_two_ulps_of_libm_over_the_softmax_range() {
        if !avx2() {
            return;
        }
        let xs: Vec<f32> = (0..=8000).map(|i| -80.0 + i as f32 * 0.01).collect();
        for chunk in xs.chunks_exact(8) {
            let mut got = [0f32; 8];
            // SAFETY: avx2 checked; 8 values in and out.
            unsafe { _mm256_storeu_ps(got.as_mut_ptr(), exp(_mm256_loadu_ps(chunk.as_ptr()))) };
            for (x, g) in chunk.iter().zip(got) {
                let want = x.exp();
                let ulps = (g.to_bits() as i64 - want.to_bits() as i64).abs();
                assert!(ulps <= 2, "exp({x}) = {g}, libm {want}");
            }
        }
    }

    #[test]
    fn softmax_matches_the_definition_at_every_tail_length() {
        if !avx2() {
            return;
        }
        for n in [1, 7, 8, 9, 17, 100] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 1.7).collect();
            let mut got = xs.clone();
            // SAFETY: avx2 checked.
            unsafe { softmax_in_place(&mut got) };
            let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = xs.iter().map(|&x| (x as f64 - max).exp()).sum();
            for (x, g) in xs.iter().zip(&got) {
                let want = (*x as f64 - max).exp() / sum;
                assert!((*g as f64 - want).abs() < 1e-6, "n {n}: {g} vs {want}");
            }
        }
    }

    #[test]
    fn sum8_adds_each_vectors_lanes_into_its_lane() {
        if !avx2() {
            return;
        }
        let vals: Vec<f32> = (0..64).map(|i| (i * i % 13) as f32 - 6.0).collect();
        // SAFETY: avx2 checked; 8 rows of 8 values.
        let got = unsafe {
            let v: [__m256; 8] = std::array::from_fn(|t| _mm256_loadu_ps(vals.as_ptr().add(8 * t)));
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), sum8(&v));
            out
        };
        for t in 0..8 {
            assert_eq!(got[t], vals[8 * t..8 * t + 8].iter().sum::<f32>(), "lane {t}");
        }
    }

    #[test]
    fn scale_and_bias_adds_each_positions_alibi_term() {
        if !avx2() {
            return;
        }
        let mut xs: Vec<f32> = (0..13).map(|i| i as f32 * 0.5).collect();
        // SAFETY: avx2 checked.
        unsafe { scale_and_bias(&mut xs, 0.25, -0.5, 100) };
        for (j, x) in xs.iter().enumerate() {
            assert_eq!(*x, (j as f32 * 0.5).mul_add(0.25, -0.5 * (100 + j) as f32), "{j}");
        }
    }
}
