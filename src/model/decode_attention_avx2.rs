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
        ($($nv:literal),*) => {
            match st.head_dim.div_ceil(8) {
                $($nv => head_n::<$nv>(st, hh, probs, stride, out),)*
                _ => unreachable!("head_dim ≤ 256 is checked by `attend`"),
            }
        };
    }
    go!(
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
        31, 32
    )
}

/// [`head`] with `NV` eight-lane registers per row of `d`.
#[target_feature(enable = "avx2,fma")]
unsafe fn head_n<const NV: usize>(st: &Step, hh: usize, probs: &mut [f32], stride: usize, out: *mut f32) {
    let (h, d, l) = (st.heads, st.head_dim, st.prompt_len);
    let rows = st.lens.len();
    let (scale, slope) = (1.0 / (d as f32).sqrt(), st.slopes[hh]);
    let masks: [__m256i; NV] = std::array::from_fn(|i| lanes(d - 8 * i));
    let q = |r: usize| st.q[(r * h + hh) * d..].as_ptr();
    let base = probs.as_mut_ptr();
    // The prompt's scores, part by part, each key at its position in the whole prompt, two rows
    // at a time and tile by tile, so that the rows after the first two read the tile's keys from L1
    // (and ask nothing ahead).
    let tile = tile_len(d);
    for (j0, n, keys, _) in head_parts(st.prompt, h, d, hh) {
        for t0 in (0..n).step_by(tile) {
            let (t1, p0) = (n.min(t0 + tile), j0 + t0);
            let keys = &keys[t0 * d..t1 * d];
            let at = |r: usize| base.add(r * stride + p0);
            for r in (0..rows).step_by(2) {
                let bias = (scale, slope, p0);
                if r + 1 < rows {
                    scores::<2, NV>([q(r), q(r + 1)], keys, d, [at(r), at(r + 1)], &masks, bias, r == 0);
                } else {
                    scores::<1, NV>([q(r)], keys, d, [at(r)], &masks, bias, r == 0);
                }
            }
        }
    }
    // Each row's own keys after the prompt's, then its softmax.
    for r in 0..rows {
        let own_len = st.lens[r];
        if let Some((k, _)) = st.own {
            let at = (r * h + hh) * st.capacity * d;
            let keys = &k[at..at + own_len * d];
            scores::<1, NV>([q(r)], keys, d, [base.add(r * stride + l)], &masks, (scale, slope, l), true);
        }
        softmax_in_place(&mut probs[r * stride..r * stride + l + own_len]);
    }
    // Σⱼ pⱼ·vⱼ: the prompt's values, then each row's own, every lane summed in position order.
    let o = |r: usize| out.add((r * h + hh) * d);
    for r in 0..rows {
        for (i, &m) in masks.iter().enumerate() {
            _mm256_maskstore_ps(o(r).add(8 * i), m, _mm256_setzero_ps());
        }
    }
    prompt_values::<NV>(st, hh, probs, stride, &masks, out);
    if let Some((_, ov)) = st.own {
        for r in 0..rows {
            let ov = ov.as_ptr().add((r * h + hh) * st.capacity * d);
            let mut acc: [__m256; NV] = std::array::from_fn(|i| _mm256_maskload_ps(o(r).add(8 * i), masks[i]));
            for t in 0..st.lens[r] {
                prefetch_row(ov.wrapping_add((t + AHEAD) * d), d);
                let p = probs[r * stride + l + t];
                if p != 0.0 {
                    let vp = _mm256_set1_ps(p);
                    for i in 0..NV {
                        acc[i] = _mm256_fmadd_ps(vp, _mm256_maskload_ps(ov.add(t * d + 8 * i), masks[i]), acc[i]);
                    }
                }
            }
            for i in 0..NV {
                _mm256_maskstore_ps(o(r).add(8 * i), masks[i], acc[i]);
            }
        }
    }
}

/// Bytes of the prompt's key or value rows taken as one tile: they stay in L1 while every row
/// reads them.
const TILE_BYTES: usize = 8192;

/// Positions of `d` values in a tile of [`TILE_BYTES`].
fn tile_len(d: usize) -> usize {
    (TILE_BYTES / (4 * d)).max(1)
}

/// Adds every row's `Σⱼ pⱼ·vⱼ` over head `hh`'s prompt to the sums at `out + (r·heads + hh)·d`
/// (where they wait between tiles), tile by tile: rows in groups of up to 4 and columns in blocks
/// of registers, so each value load feeds the group's multiply-adds from L1. (Row by row, with
/// `d = 64` filling 8 registers, the 8 rows of an eval batch read each head's prompt values 8
/// times from L2.) Each lane still sums its positions in order.
///
/// A tile where the group's weights are all zero (far keys under a steep ALiBi slope) is skipped;
/// inside a tile every weight is added, zeros too: `s + 0·v = s` for the finite values a model
/// holds (a lone `-0` sum aside), and a branch per weight cost more than the adds it saved.
///
/// # Safety
/// As [`head`]; `out`'s head `hh` channels hold each row's sums so far; `masks[i]` are `lanes(d − 8i)`.
#[target_feature(enable = "avx2,fma")]
unsafe fn prompt_values<const NV: usize>(
    st: &Step,
    hh: usize,
    probs: &[f32],
    stride: usize,
    masks: &[__m256i; NV],
    out: *mut f32,
) {
    let (h, d) = (st.heads, st.head_dim);
    let rows = st.lens.len();
    let tile = tile_len(d);
    assert!(probs.len() >= rows * stride && stride >= st.prompt_len);
    for (j0, n, _, pv) in head_parts(st.prompt, h, d, hh) {
        for t0 in (0..n).step_by(tile) {
            let t1 = n.min(t0 + tile);
            for r0 in (0..rows).step_by(4) {
                let w = |k: usize| probs.as_ptr().add((r0 + k) * stride + j0);
                let o = |k: usize| out.add(((r0 + k) * h + hh) * d);
                let part = Tile { v: pv.as_ptr(), d, j: t0..t1, ahead: if r0 == 0 { t1 - t0 } else { 0 } };
                // Blocks of B registers: G·B of 8 or 9 sums in flight cover the multiply-add's latency.
                match rows - r0 {
                    1 => part.sum::<1, 8, NV>([w(0)], [o(0)], masks),
                    2 => part.sum::<2, 4, NV>([w(0), w(1)], [o(0), o(1)], masks),
                    3 => part.sum::<3, 3, NV>([w(0), w(1), w(2)], [o(0), o(1), o(2)], masks),
                    _ => part.sum::<4, 2, NV>([w(0), w(1), w(2), w(3)], [o(0), o(1), o(2), o(3)], masks),
                }
            }
        }
    }
}

/// Value rows `j` of a prompt part (`v`, rows of `d`), summed for a group of rows.
struct Tile {
    v: *const f32,
    d: usize,
    j: std::ops::Range<usize>,
    /// Positions ahead to hint into L2 (the next tile's), or 0 where another group did.
    ahead: usize,
}

impl Tile {
    /// `o[k] += Σⱼ w[k][j] · v[j]` for `G` rows, columns in blocks of `B` registers.
    ///
    /// # Safety
    /// As [`prompt_values`]: `w[k]` has a weight for every `j`, `o[k]` holds `d` sums, `v` the rows.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum<const G: usize, const B: usize, const NV: usize>(
        &self,
        w: [*const f32; G],
        o: [*mut f32; G],
        masks: &[__m256i; NV],
    ) {
        let (d, j0, j1) = (self.d, self.j.start, self.j.end);
        if w.iter().all(|&w| std::slice::from_raw_parts(w.add(j0), j1 - j0).iter().all(|&p| p == 0.0)) {
            return;
        }
        for b in (0..NV).step_by(B) {
            // Registers b.. of each row; those past NV (the last block's) load nothing from the
            // row's last register, never stored: no masked access past a row's end, as AMD leaves
            // faults on masked-off lanes open.
            let reg: [usize; B] = std::array::from_fn(|i| (b + i).min(NV - 1));
            let m: [__m256i; B] =
                std::array::from_fn(|i| if b + i < NV { masks[b + i] } else { _mm256_setzero_si256() });
            let mut acc = [[_mm256_setzero_ps(); B]; G];
            for (a, &o) in acc.iter_mut().zip(&o) {
                *a = std::array::from_fn(|i| _mm256_maskload_ps(o.add(8 * reg[i]), m[i]));
            }
            for j in j0..j1 {
                if self.ahead > 0 {
                    // The next tile's lines for this block, from memory into L2 (a hint only).
                    for i in (0..B).step_by(2) {
                        _mm_prefetch::<_MM_HINT_T1>(
                            self.v.wrapping_add((j + self.ahead) * d + 8 * (b + i)) as *const i8
                        );
                    }
                }
                let row = self.v.add(j * d);
                let v: [__m256; B] = std::array::from_fn(|i| _mm256_maskload_ps(row.add(8 * reg[i]), m[i]));
                for (a, &w) in acc.iter_mut().zip(&w) {
                    let vp = _mm256_broadcast_ss(&*w.add(j));
                    for i in 0..B {
                        a[i] = _mm256_fmadd_ps(vp, v[i], a[i]);
                    }
                }
            }
            for (a, &o) in acc.iter().zip(&o) {
                for i in 0..B.min(NV - b) {
                    _mm256_maskstore_ps(o.add(8 * (b + i)), m[i], a[i]);
                }
            }
        }
    }
}

/// `scores[g][j] = scale · (q[g] · keys[j]) + slope · (pos0 + j)` for the `n` keys (rows of `d`)
/// in `keys` and `Q` (1 or 2) queries: `8 / Q` keys at a time, the eight sums in eight registers,
/// so each query load serves those keys and each key load the `Q` queries. A key's dot product is
/// `NV` fused multiply-adds in lane order into one register, added across lanes by [`sum8`]
/// (whose tree is the same for every register), so a query's scores do not depend on `Q`. With
/// `ahead`, each key's row 32 on is hinted into L2.
///
/// # Safety
/// The CPU must support avx2 and fma; each `q[g]` holds `d` values and each `scores[g]` room for
/// `n`; `masks[i]` are `lanes(d − 8i)`.
#[target_feature(enable = "avx2,fma")]
unsafe fn scores<const Q: usize, const NV: usize>(
    q: [*const f32; Q],
    keys: &[f32],
    d: usize,
    scores: [*mut f32; Q],
    masks: &[__m256i; NV],
    bias: (f32, f32, usize),
    ahead: bool,
) {
    const { assert!(Q == 1 || Q == 2) };
    assert!(d <= 8 * NV);
    // Whole registers (d a multiple of 8) need no masks, which leaves their 8 registers free.
    if d == 8 * NV {
        scores_n::<Q, NV, true>(q, keys, d, scores, masks, bias, ahead)
    } else {
        scores_n::<Q, NV, false>(q, keys, d, scores, masks, bias, ahead)
    }
}

/// [`scores`], its loads masked unless `FULL`.
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_n<const Q: usize, const NV: usize, const FULL: bool>(
    q: [*const f32; Q],
    keys: &[f32],
    d: usize,
    scores: [*mut f32; Q],
    masks: &[__m256i; NV],
    (scale, slope, pos0): (f32, f32, usize),
    ahead: bool,
) {
    // Keys a block: sum `g·kb + t` is query g's with key t.
    let kb = 8 / Q;
    let n = keys.len() / d;
    let (vs, vslope) = (_mm256_set1_ps(scale), _mm256_set1_ps(slope));
    let lane = if Q == 1 {
        _mm256_setr_ps(0., 1., 2., 3., 4., 5., 6., 7.)
    } else {
        _mm256_setr_ps(0., 1., 2., 3., 0., 1., 2., 3.)
    };
    let kp = keys.as_ptr();
    // SAFETY (loads): lanes masked to d (or d = 8·NV); each query and each key read (< n) have d values.
    let ld = |p: *const f32, i: usize| if FULL { _mm256_loadu_ps(p) } else { _mm256_maskload_ps(p, masks[i]) };
    let mut j0 = 0;
    while j0 < n {
        let count = kb.min(n - j0);
        if ahead {
            for t in 0..kb {
                prefetch_row(kp.wrapping_add((j0 + AHEAD + t) * d), d);
            }
        }
        let mut acc = [_mm256_setzero_ps(); 8];
        for i in 0..NV {
            let qv: [__m256; Q] = std::array::from_fn(|g| ld(q[g].add(8 * i), i));
            let mut dot = |t: usize| {
                let kv = ld(kp.add((j0 + t) * d + 8 * i), i);
                for (g, qv) in qv.iter().enumerate() {
                    acc[g * kb + t] = _mm256_fmadd_ps(*qv, kv, acc[g * kb + t]);
                }
            };
            if count == kb {
                (0..kb).for_each(&mut dot);
            } else {
                (0..count).for_each(&mut dot);
            }
        }
        // Each key's bias from its position alone (exact in f32 below 2²⁴), as in the AVX-512 kernel.
        let alibi = _mm256_mul_ps(vslope, _mm256_add_ps(_mm256_set1_ps((pos0 + j0) as f32), lane));
        let s = _mm256_fmadd_ps(sum8(&acc), vs, alibi);
        let m = lanes(count);
        if Q == 1 {
            _mm256_maskstore_ps(scores[0].add(j0), m, s);
        } else {
            let m = _mm256_castsi256_si128(m);
            _mm_maskstore_ps(scores[0].add(j0), m, _mm256_castps256_ps128(s));
            _mm_maskstore_ps(scores[1].add(j0), m, _mm256_extractf128_ps::<1>(s));
        }
        j0 += kb;
    }
}
