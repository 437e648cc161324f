//! [`super::decode_attention`] on AVX2+FMA: one head's scores, softmax and weighted sum of values
//! for every row of a decode step, eight lanes at a time, for CPUs without AVX-512 (AMD Zen 2/3,
//! older Intel). The same steps as the AVX-512 kernels: a row's results do not depend on the rows
//! beside it (each query's dot products and each row's sums run in the same order whatever the
//! group), and each key's ALiBi term comes from its position alone, so a prompt read in parts
//! gives the whole's results bit for bit.

use std::arch::x86_64::*;

use super::attention::head_parts;
use super::attention_avx2::{lanes, softmax_in_place, sum8};
use super::decode_attention::{prefetch_row, Step, AHEAD};

/// Rows of the prompt's scores computed together: each key is read once per group.
const QUERIES: usize = 4;

/// Head `hh` of every row: scores over the prompt and the row's own keys, softmax, and the sum of
/// values into `out + (r·heads + hh)·d`. `probs` is scratch of `rows × stride` values.
///
/// # Safety
/// The CPU must support avx2 and fma; `st` is consistent (as `decode_attention::attend` asserts);
/// `probs` holds `rows` rows of `stride ≥ prompt_len + capacity`; this call alone writes head
/// `hh`'s channels of `out` (`rows × heads·d`).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn head(st: &Step, hh: usize, probs: &mut [f32], stride: usize, out: *mut f32) {
    macro_rules! go {
        ($($nv:literal => $g:literal),*) => {
            match st.head_dim.div_ceil(8) {
                $($nv => head_n::<$nv, $g>(st, hh, probs, stride, out),)*
                _ => unreachable!("head_dim ≤ 256 is checked by `attend`"),
            }
        };
    }
    // Rows per group in the sum of values: as many as keep G·NV accumulators within 16 registers.
    go!(1 => 4, 2 => 4, 3 => 2, 4 => 2, 5 => 2, 6 => 2, 7 => 1, 8 => 1, 9 => 1, 10 => 1, 11 => 1, 12 => 1,
        13 => 1, 14 => 1, 15 => 1, 16 => 1, 17 => 1, 18 => 1, 19 => 1, 20 => 1, 21 => 1, 22 => 1, 23 => 1,
        24 => 1, 25 => 1, 26 => 1, 27 => 1, 28 => 1, 29 => 1, 30 => 1, 31 => 1, 32 => 1)
}

/// [`head`] with `NV` eight-lane registers per row of `d` and rows summed in groups of `G`.
#[target_feature(enable = "avx2,fma")]
unsafe fn head_n<const NV: usize, const G: usize>(
    st: &Step,
    hh: usize,
    probs: &mut [f32],
    stride: usize,
    out: *mut f32,
) {
    let (h, d, l) = (st.heads, st.head_dim, st.prompt_len);
    let rows = st.lens.len();
    let (scale, slope) = (1.0 / (d as f32).sqrt(), st.slopes[hh]);
    let masks: [__m256i; NV] = std::array::from_fn(|i| lanes(d - 8 * i));
    let q = |r: usize| st.q[(r * h + hh) * d..].as_ptr();
    let base = probs.as_mut_ptr();
    // The prompt's scores, part by part, each key at its position in the whole prompt.
    for (j0, n, keys, _) in head_parts(st.prompt, h, d, hh) {
        let mut r = 0;
        while r < rows {
            let g = QUERIES.min(rows - r);
            let at = |i: usize| base.add((r + i) * stride + j0);
            match g {
                4 => scores::<4, NV>(
                    [q(r), q(r + 1), q(r + 2), q(r + 3)],
                    keys,
                    d,
                    n,
                    [at(0), at(1), at(2), at(3)],
                    &masks,
                    scale,
                    slope,
                    j0,
                ),
                3 => scores::<3, NV>(
                    [q(r), q(r + 1), q(r + 2)],
                    keys,
                    d,
                    n,
                    [at(0), at(1), at(2)],
                    &masks,
                    scale,
                    slope,
                    j0,
                ),
                2 => scores::<2, NV>([q(r), q(r + 1)], keys, d, n, [at(0), at(1)], &masks, scale, slope, j0),
                _ => scores::<1, NV>([q(r)], keys, d, n, [at(0)], &masks, scale, slope, j0),
            }
            r += g;
        }
    }
    // Each row's own keys after the prompt's, then its softmax.
    for r in 0..rows {
        let own_len = st.lens[r];
        if let Some((k, _)) = st.own {
            let at = (r * h + hh) * st.capacity * d;
            scores::<1, NV>(
                [q(r)],
                &k[at..at + own_len * d],
                d,
                own_len,
                [base.add(r * stride + l)],
                &masks,
                scale,
                slope,
                l,
            );
        }
        softmax_in_place(&mut probs[r * stride..r * stride + l + own_len]);
    }
    // Σⱼ pⱼ·vⱼ, the prompt's values part by part in position order, then the row's own.
    for r0 in (0..rows).step_by(G) {
        let g = G.min(rows - r0);
        let mut acc = [[_mm256_setzero_ps(); NV]; G];
        for (j0, n, _, pv) in head_parts(st.prompt, h, d, hh) {
            let pv = pv.as_ptr();
            for j in 0..n {
                prefetch_row(pv.wrapping_add((j + AHEAD) * d), d);
                for (k, acc_k) in acc.iter_mut().enumerate().take(g) {
                    let p = probs[(r0 + k) * stride + j0 + j];
                    if p != 0.0 {
                        let vp = _mm256_set1_ps(p);
                        for i in 0..NV {
                            acc_k[i] =
                                _mm256_fmadd_ps(vp, _mm256_maskload_ps(pv.add(j * d + 8 * i), masks[i]), acc_k[i]);
                        }
                    }
                }
            }
        }
        for (k, acc_k) in acc.iter_mut().enumerate().take(g) {
            let r = r0 + k;
            if let Some((_, ov)) = st.own {
                let ov = ov.as_ptr().add((r * h + hh) * st.capacity * d);
                for t in 0..st.lens[r] {
                    prefetch_row(ov.wrapping_add((t + AHEAD) * d), d);
                    let p = probs[r * stride + l + t];
                    if p != 0.0 {
                        let vp = _mm256_set1_ps(p);
                        for i in 0..NV {
                            acc_k[i] =
                                _mm256_fmadd_ps(vp, _mm256_maskload_ps(ov.add(t * d + 8 * i), masks[i]), acc_k[i]);
                        }
                    }
                }
            }
            let o = out.add((r * h + hh) * d);
            for i in 0..NV {
                _mm256_maskstore_ps(o.add(8 * i), masks[i], acc_k[i]);
            }
        }
    }
}

/// `scores[g][j] = scale · (q[g] · keys[j]) + slope · (pos0 + j)` for `n` keys (rows of `d`) and `G`
/// queries, eight keys at a time: each key register serves the `G` queries, and a query's dot
/// product is `NV` fused multiply-adds in lane order into one register, whatever `G`.
///
/// # Safety
/// The CPU must support avx2 and fma; `keys` holds `n` rows of `d`, each `q[g]` `d` values, each
/// `scores[g]` room for `n`; `masks[i]` are `lanes(d − 8i)`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores<const G: usize, const NV: usize>(
    q: [*const f32; G],
    keys: &[f32],
    d: usize,
    n: usize,
    scores: [*mut f32; G],
    masks: &[__m256i; NV],
    scale: f32,
    slope: f32,
    pos0: usize,
) {
    assert!(keys.len() >= n * d && d <= 8 * NV);
    let mut part = [[_mm256_setzero_ps(); 8]; G];
    let (vs, vslope) = (_mm256_set1_ps(scale), _mm256_set1_ps(slope));
    let lane = _mm256_setr_ps(0., 1., 2., 3., 4., 5., 6., 7.);
    let mut j0 = 0;
    while j0 < n {
        let count = 8.min(n - j0);
        for t in 0..8 {
            prefetch_row(keys.as_ptr().wrapping_add((j0 + AHEAD + t) * d), d);
            if t < count {
                let kp = keys.as_ptr().add((j0 + t) * d);
                let mut acc = [_mm256_setzero_ps(); G];
                for (i, &mask) in masks.iter().enumerate() {
                    // SAFETY: lanes masked to d; key j0 + t < n and each query have d values.
                    let kv = _mm256_maskload_ps(kp.add(8 * i), mask);
                    for g in 0..G {
                        acc[g] = _mm256_fmadd_ps(_mm256_maskload_ps(q[g].add(8 * i), mask), kv, acc[g]);
                    }
                }
                for g in 0..G {
                    part[g][t] = acc[g];
                }
            } else {
                for p in part.iter_mut() {
                    p[t] = _mm256_setzero_ps();
                }
            }
        }
        let alibi = _mm256_mul_ps(vslope, _mm256_add_ps(_mm256_set1_ps((pos0 + j0) as f32), lane));
        let m = lanes(count);
        for g in 0..G {
            _mm256_maskstore_ps(scores[g].add(j0), m, _mm256_fmadd_ps(sum8(&part[g]), vs, alibi));
        }
        j0 += 8;
    }
}
