//! Causal ALiBi attention of a prompt's tokens, fused: scores, bias, mask, softmax and the weighted
//! sum of values in one pass per head, on the prefill GEMM's register tile.
//!
//! Why: through candle a 700-token prefill materialised four `h × s × L` score tensors per layer
//! (scores, + ALiBi, + mask, softmax: 31 MiB each, fresh pages every time) and ran both products on
//! its AVX2 GEMM over the whole square, future included. Here each head packs its keys and values
//! once, and each panel of 14 queries computes only the keys it may see, so the causal half is
//! never computed and no score tensor is ever allocated.
//!
//! Numerics follow transformers' `BloomAttention`: `score = q·k / √d + slope · key_position`, the
//! query's own offset dropped (softmax ignores a per-row constant), softmax in f32.

use std::arch::x86_64::*;

use super::cephes;
use super::gemm::{Tile, MR, NR};

/// One sequence's attention over a cache that ends with its own tokens.
pub(crate) struct Shape {
    pub heads: usize,
    pub head_dim: usize,
    /// Query tokens (the last `s` of the cache).
    pub s: usize,
    /// Cached positions, the query tokens included (`≥ s`).
    pub kv: usize,
}

/// Keys and values of consecutive positions in parts, each `(heads, len, d)` keys and values: a
/// cached template's part, then a question's own. The kernels read them part by part, so a prompt
/// after a cached prefix needs no concatenated copy of it.
pub(crate) type KvParts<'a> = [(&'a [f32], &'a [f32])];

/// Positions in `parts`, or `None` where a part's keys and values differ in length or are not whole
/// `(heads, len, d)` blocks.
pub(crate) fn parts_len(parts: &KvParts, heads: usize, d: usize) -> Option<usize> {
    let per = heads * d;
    parts
        .iter()
        .try_fold(0, |n, (k, v)| (per > 0 && k.len() == v.len() && k.len() % per == 0).then(|| n + k.len() / per))
}

/// Head `hh`'s share of each part: its first position, its length, and its `(len, d)` keys and values.
pub(crate) fn head_parts<'a>(
    parts: &'a KvParts<'a>,
    heads: usize,
    d: usize,
    hh: usize,
) -> impl Iterator<Item = (usize, usize, &'a [f32], &'a [f32])> + 'a {
    parts.iter().scan(0, move |j0, (k, v)| {
        let n = k.len() / (heads * d);
        let at = *j0;
        *j0 += n;
        Some((at, n, &k[hh * n * d..(hh + 1) * n * d], &v[hh * n * d..(hh + 1) * n * d]))
    })
}

/// `out (s, heads·d)` = attention of `q (heads, s, d)` over the keys and values in `kv` (parts of
/// `(heads, len, d)`, `shape.kv` positions in all), causal (query `i` sees keys `0 ..= kv − s + i`),
/// with ALiBi `slopes` (one per head). Returns `false` (and leaves `out` alone) when the CPU lacks
/// AVX2 and FMA; the caller then runs the unfused path.
pub(crate) fn causal_alibi(shape: &Shape, q: &[f32], kv_parts: &KvParts, slopes: &[f32], out: &mut [f32]) -> bool {
    let Shape { heads, head_dim: d, s, kv } = *shape;
    assert!(
        s <= kv
            && q.len() == heads * s * d
            && parts_len(kv_parts, heads, d) == Some(kv)
            && slopes.len() == heads
            && out.len() == s * heads * d,
        "attention: mismatched lengths"
    );
    if !super::gemm::available() {
        return false;
    }
    if s == 0 {
        return true;
    }
    let out_ptr = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(heads, |hs| {
        let mut scratch = Scratch::new(kv, d);
        for h in hs {
            for (j0, n, k, v) in head_parts(kv_parts, heads, d, h) {
                scratch.pack(k, v, j0, n, d);
            }
            // SAFETY: `gemm::available()` was checked above; the scratch holds all kv positions; this
            // task alone writes head h's columns h·d..(h+1)·d of every row of `out` (s × heads·d).
            unsafe {
                attend_packed(
                    shape,
                    &q[h * s * d..(h + 1) * s * d],
                    slopes[h],
                    (out_ptr as *mut f32).add(h * d),
                    &mut scratch,
                );
            }
        }
    });
    true
}

/// One task's packed operands, reused across its heads (and, for segments, across segments).
pub(super) struct Scratch {
    /// Keys as `[kv / NR][d][NR]`.
    keys: Vec<f32>,
    /// Values as `[d / NR][vstride][NR]`.
    values: Vec<f32>,
    /// Key positions each value panel has room for.
    vstride: usize,
    /// One panel of queries as `[d][MR]`.
    queries: Vec<f32>,
    /// One panel's scores, `MR` rows of `kv` rounded up to whole key panels.
    scores: Vec<f32>,
    /// One panel's probabilities as `[kv][MR]`.
    probs: Vec<f32>,
}

impl Scratch {
    /// Room for up to `kv` key positions of `d` channels.
    pub(super) fn new(kv: usize, d: usize) -> Self {
        let (kvp, dp) = (kv.next_multiple_of(NR), d.next_multiple_of(NR));
        Self {
            keys: vec![0.0; kvp * d],
            values: vec![0.0; dp * kv],
            vstride: kv,
            queries: vec![0.0; d * MR],
            scores: vec![0.0; MR * kvp],
            probs: vec![0.0; kv * MR],
        }
    }

    /// Packs keys and values `(n, d)` as positions `j0..j0 + n`. Position `j0 + n` is where the
    /// keys end: the rest of its key panel is zeroed, as the tile reads whole panels.
    pub(super) fn pack(&mut self, k: &[f32], v: &[f32], j0: usize, n: usize, d: usize) {
        assert!(k.len() == n * d && v.len() == n * d && j0 + n <= self.vstride, "attention: packing past the scratch");
        for j in j0..(j0 + n).next_multiple_of(NR) {
            let blk = &mut self.keys[(j / NR) * NR * d..][..NR * d];
            let c = j % NR;
            for p in 0..d {
                blk[p * NR + c] = if j < j0 + n { k[(j - j0) * d + p] } else { 0.0 };
            }
        }
        for (panel, c0) in (0..d).step_by(NR).enumerate() {
            let cols = NR.min(d - c0);
            let blk = &mut self.values[panel * self.vstride * NR..][..self.vstride * NR];
            for j in j0..j0 + n {
                let row = &mut blk[j * NR..(j + 1) * NR];
                row[..cols].copy_from_slice(&v[(j - j0) * d + c0..(j - j0) * d + c0 + cols]);
                row[cols..].fill(0.0);
            }
        }
    }
}

/// One head over keys and values already packed in `sc` (positions `0..shape.kv`): writes
/// `out + i·ldo + c` for query `i < s`, channel `c < d` (`ldo = heads · d`).
///
/// # Safety
/// `gemm::available()` must hold (AVX2 and FMA); `out + i·ldo` has `d` writable values for each
/// `i < s`; `sc` holds `shape.kv` packed positions.
pub(super) unsafe fn attend_packed(shape: &Shape, q: &[f32], slope: f32, out: *mut f32, sc: &mut Scratch) {
    let Shape { heads, head_dim: d, s, kv } = *shape;
    assert!(kv <= sc.vstride && q.len() >= s * d, "attention: more keys than packed");
    let ldo = heads * d;
    let kvp = kv.next_multiple_of(NR);
    let offset = kv - s;
    let scale = 1.0 / (d as f32).sqrt();
    for i0 in (0..s).step_by(MR) {
        let rows = MR.min(s - i0);
        for p in 0..d {
            for r in 0..MR {
                sc.queries[p * MR + r] = if r < rows { q[(i0 + r) * d + p] } else { 0.0 };
            }
        }
        // The last row of the panel sees the most keys; rows above it mask their own tail.
        let seen = offset + i0 + rows;
        for kp in 0..seen.div_ceil(NR) {
            // SAFETY: the packed panels hold d·MR and d·NR values; the scores buffer has MR rows of
            // kvp ≥ (kp + 1)·NR values.
            super::gemm::tile(&Tile {
                a: sc.queries.as_ptr(),
                b: sc.keys.as_ptr().add(kp * NR * d),
                kc: d,
                c: sc.scores.as_mut_ptr().add(kp * NR),
                ldc: kvp,
                rows: MR,
                cols: NR,
                bias: None,
                accumulate: false,
            });
        }
        for r in 0..MR {
            let visible = if r < rows { offset + i0 + r + 1 } else { 0 };
            softmax_into(&mut sc.scores[r * kvp..r * kvp + seen], visible, scale, slope, &mut sc.probs, r);
        }
        for c0 in (0..d).step_by(NR) {
            // SAFETY: probs holds seen·MR values, the value panel vstride·NR ≥ seen·NR; out rows
            // i0..i0+rows have d ≥ c0 + cols writable channels.
            super::gemm::tile(&Tile {
                a: sc.probs.as_ptr(),
                b: sc.values.as_ptr().add(c0 * sc.vstride),
                kc: seen,
                c: out.add(i0 * ldo + c0),
                ldc: ldo,
                rows,
                cols: NR.min(d - c0),
                bias: None,
                accumulate: false,
            });
        }
    }
}

/// Softmax of `scale · scores[j] + slope · j` over `j < visible`, written as column `r` of `probs`
/// (`[len][MR]`, `len = scores.len()`); columns past `visible` get 0. AVX-512 where the CPU has it,
/// else AVX2.
///
/// # Safety
/// The CPU must support avx2 and fma (`gemm::available()`).
unsafe fn softmax_into(scores: &mut [f32], visible: usize, scale: f32, slope: f32, probs: &mut [f32], r: usize) {
    // SAFETY: the features each path needs are checked here or by the caller.
    unsafe {
        if super::cpu::features().avx512 {
            softmax_into_512(scores, visible, scale, slope, probs, r);
            return;
        }
        super::attention_avx2::scale_and_bias(&mut scores[..visible], scale, slope, 0);
        super::attention_avx2::softmax_in_place(&mut scores[..visible]);
    }
    for (jj, p) in scores.iter().enumerate() {
        probs[jj * MR + r] = if jj < visible { *p } else { 0.0 };
    }
}

/// [`softmax_into`] on AVX-512.
///
/// # Safety
/// The CPU must support avx512f.
#[target_feature(enable = "avx512f")]
unsafe fn softmax_into_512(scores: &mut [f32], visible: usize, scale: f32, slope: f32, probs: &mut [f32], r: usize) {
    let n = visible;
    let (vs, vsl) = (_mm512_set1_ps(scale), _mm512_set1_ps(slope));
    let step = _mm512_set1_ps(16.0);
    let mut pos = _mm512_setr_ps(0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 15.);
    let mut j = 0;
    while j < n {
        let m = lanes(n - j);
        // SAFETY (loads and stores): j + 16 lanes masked to n ≤ scores.len().
        let t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, scores.as_ptr().add(j)), vs, _mm512_mul_ps(vsl, pos));
        _mm512_mask_storeu_ps(scores.as_mut_ptr().add(j), m, t);
        pos = _mm512_add_ps(pos, step);
        j += 16;
    }
    softmax_in_place(&mut scores[..n]);
    for (jj, p) in scores.iter().enumerate() {
        probs[jj * MR + r] = if jj < n { *p } else { 0.0 };
    }
}

/// Softmax of `xs` in place. Weights below f32's smallest normal become 0: they change no sum in
/// f32, and every FMA that reads a subnormal takes a microcode assist (~100 cycles) on x86; with
/// ALiBi most far keys land there, and the P·V products ran several times slower for them.
///
/// # Safety
/// The CPU must support avx512f.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn softmax_in_place(xs: &mut [f32]) {
    let n = xs.len();
    let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut j = 0;
    while j < n {
        let m = lanes(n - j);
        // SAFETY (all loads and stores here): lanes masked to n = xs.len().
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, xs.as_ptr().add(j)));
        j += 16;
    }
    let vmax = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    let mut vsum = _mm512_setzero_ps();
    j = 0;
    while j < n {
        let m = lanes(n - j);
        let e = _mm512_maskz_mov_ps(m, exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xs.as_ptr().add(j)), vmax)));
        _mm512_mask_storeu_ps(xs.as_mut_ptr().add(j), m, e);
        vsum = _mm512_add_ps(vsum, e);
        j += 16;
    }
    let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(vsum));
    let tiny = _mm512_set1_ps(f32::MIN_POSITIVE);
    j = 0;
    while j < n {
        let m = lanes(n - j);
        let p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xs.as_ptr().add(j)), inv);
        let normal = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(p, tiny);
        _mm512_mask_storeu_ps(xs.as_mut_ptr().add(j), m, _mm512_maskz_mov_ps(normal, p));
        j += 16;
    }
}

/// Mask of the first `min(left, 16)` lanes.
pub(crate) fn lanes(left: usize) -> __mmask16 {
    if left >= 16 {
        0xffff
    } else {
        ((1u32 << left) - 1) as __mmask16
    }
}

/// Cephes' `expf` on 16 lanes (as `gelu`'s scalar one): `2ⁿ · p(r)`, `r = x − n·ln 2`; inputs below
/// −87 give ~0 (as they would: e⁻⁸⁷ is at the bottom of f32's normal range).
///
/// # Safety
/// The CPU must support avx512f.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp(x: __m512) -> __m512 {
    let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        x,
        _mm512_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(cephes::LN2_HI), x);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(cephes::LN2_LO), r);
    let mut p = _mm512_set1_ps(cephes::POLY[0]);
    for c in cephes::POLY[1..].iter().copied() {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
    _mm512_scalef_ps(p, n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The textbook computation in f64.
    fn naive(shape: &Shape, q: &[f32], k: &[f32], v: &[f32], slopes: &[f32]) -> Vec<f32> {
        let Shape { heads, head_dim: d, s, kv } = *shape;
        let mut out = vec![0f32; s * heads * d];
        for h in 0..heads {
            for i in 0..s {
                let visible = kv - s + i + 1;
                let sc: Vec<f64> = (0..visible)
                    .map(|j| {
                        let dot: f64 =
                            (0..d).map(|p| q[(h * s + i) * d + p] as f64 * k[(h * kv + j) * d + p] as f64).sum();
                        dot / (d as f64).sqrt() + slopes[h] as f64 * j as f64
                    })
                    .collect();
                let max = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|x| (x - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for c in 0..d {
                    let y: f64 = (0..visible).map(|j| e[j] / sum * v[(h * kv + j) * d + c] as f64).sum();
                    out[i * heads * d + h * d + c] = y as f32;
                }
            }
        }
        out
    }

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0) * 1.5).collect()
    }

    #[test]
    fn matches_the_textbook_on_ragged_shapes_with_and_without_a_cached_prefix() {
        if !crate::model::gemm::available() {
            eprintln!("no AVX2 here: the unfused path runs");
            return;
        }
        // (heads, d, s, kv): panels of 14 queries and 32 keys cut unevenly; kv > s is a cached prefix.
        for &(heads, d, s, kv) in &[(1, 8, 1, 1), (2, 64, 15, 15), (3, 40, 29, 61), (4, 64, 70, 70), (2, 96, 33, 100)] {
            let shape = Shape { heads, head_dim: d, s, kv };
            let (q, k, v) = (data(heads * s * d, 1), data(heads * kv * d, 2), data(heads * kv * d, 3));
            let slopes: Vec<f32> = crate::model::alibi::slopes(heads);
            let want = naive(&shape, &q, &k, &v, &slopes);
            let mut got = vec![f32::NAN; want.len()];
            assert!(causal_alibi(&shape, &q, &[(&k, &v)], &slopes, &mut got));
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-5, "{heads}x{d} s={s} kv={kv}: {diff}");
        }
    }

    /// Keys and values `(heads, n, d)` cut at the positions `cuts` into parts of their own.
    pub(crate) fn cut(k: &[f32], v: &[f32], heads: usize, d: usize, cuts: &[usize]) -> Vec<(Vec<f32>, Vec<f32>)> {
        let n = k.len() / (heads * d);
        let positions = |x: &[f32], a: usize, b: usize| -> Vec<f32> {
            (0..heads).flat_map(|h| x[(h * n + a) * d..(h * n + b) * d].to_vec()).collect()
        };
        let bounds: Vec<usize> = [0].into_iter().chain(cuts.iter().copied()).chain([n]).collect();
        bounds.windows(2).map(|w| (positions(k, w[0], w[1]), positions(v, w[0], w[1]))).collect()
    }

    #[test]
    fn keys_and_values_in_parts_give_the_concatenation_bit_for_bit() {
        if !crate::model::gemm::available() {
            return;
        }
        // Cuts inside a key panel, on its edge, one position long, and the query tokens split too.
        for &(heads, d, s, kv, ref cuts) in
            &[(2, 64, 15, 61, vec![37]), (3, 40, 29, 100, vec![1, 32, 64, 90]), (1, 8, 3, 5, vec![2, 3])]
        {
            let shape = Shape { heads, head_dim: d, s, kv };
            let (q, k, v) = (data(heads * s * d, 1), data(heads * kv * d, 2), data(heads * kv * d, 3));
            let slopes: Vec<f32> = crate::model::alibi::slopes(heads);
            let mut whole = vec![f32::NAN; s * heads * d];
            assert!(causal_alibi(&shape, &q, &[(&k, &v)], &slopes, &mut whole));
            let owned = cut(&k, &v, heads, d, cuts);
            let parts: Vec<(&[f32], &[f32])> = owned.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            assert_eq!(parts_len(&parts, heads, d), Some(kv));
            let mut split = vec![f32::NAN; s * heads * d];
            assert!(causal_alibi(&shape, &q, &parts, &slopes, &mut split));
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&split), bits(&whole), "{heads}x{d} cuts {cuts:?}");
        }
        assert_eq!(parts_len(&[(&[0.0; 6][..], &[0.0; 4][..])], 1, 2), None, "keys and values differ");
        assert_eq!(parts_len(&[(&[0.0; 6][..], &[0.0; 6][..])], 2, 2), None, "not whole positions");
    }

    #[test]
    fn exp_is_within_two_ulps_of_libm_over_the_softmax_range() {
        if !crate::model::cpu::features().avx512 {
            return;
        }
        let xs: Vec<f32> = (0..4000).map(|i| -90.0 + i as f32 * 0.0226).collect();
        for chunk in xs.chunks_exact(16) {
            let mut got = [0f32; 16];
            // SAFETY: avx512 checked above; 16 values in and out.
            unsafe { _mm512_storeu_ps(got.as_mut_ptr(), exp(_mm512_loadu_ps(chunk.as_ptr()))) };
            for (x, g) in chunk.iter().zip(got) {
                let want = x.exp();
                if *x < -87.0 {
                    assert!(g <= 2e-38, "exp({x}) = {g}");
                } else {
                    assert!((g - want).abs() <= 2.0 * f32::EPSILON * want, "exp({x}) = {g}, libm {want}");
                }
            }
        }
    }
}
