//! Attention of one new token per row over the shared prompt and the row's own continuation, with
//! ALiBi and each row's own length: a decode step's attention without materialising anything.
//!
//! Why: through candle each step built `b × h × kv` score tensors (scores, + ALiBi, + row mask,
//! softmax) and ran two one-row products on its GEMM, about a tenth of a one-path step at a
//! 700-token prompt. Here each (head, row) is a dot product per key, an in-place softmax and a
//! weighted sum of values, with the head's keys and values (~180 KiB each at 700 tokens) staying
//! in L2 while every row of the batch reads them.

use std::arch::x86_64::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::attention::{head_parts, lanes, parts_len, softmax_in_place, KvParts};

/// The operands of one step. Keys and values are `(heads, len, d)` for the prompt and
/// `(rows, heads, capacity, d)` for the rows' own positions.
pub(crate) struct Step<'a> {
    pub heads: usize,
    pub head_dim: usize,
    /// One query per row, `(rows, heads, d)`.
    pub q: &'a [f32],
    /// The shared prompt's keys and values in parts (none: no prompt), `prompt_len` positions in all.
    pub prompt: &'a KvParts<'a>,
    pub prompt_len: usize,
    /// The rows' own keys and values, if any, and their capacity per row.
    pub own: Option<(&'a [f32], &'a [f32])>,
    pub capacity: usize,
    /// Positions each row holds in `own` (its query is the last of them).
    pub lens: &'a [usize],
    pub slopes: &'a [f32],
    /// Where each thread's share of the next product's weights lies (see `Linear::share_spans`;
    /// may be empty): a thread out of heads hints its share into L2 while the others finish theirs.
    pub then: &'a [(usize, usize)],
}

/// The most of its share of the next weights a thread hints while waiting: about what it reads in
/// the wait (one head's passes, ~25 µs), well inside its 2 MiB L2.
const HINT_BYTES: usize = 256 << 10;

/// Hints the lines of `span` (address, bytes; at most [`HINT_BYTES`]) into L2, 16 at a time, for as
/// long as `waiting` says.
fn hint_while(span: (usize, usize), waiting: impl Fn() -> bool) {
    let (start, len) = (span.0, span.1.min(HINT_BYTES));
    let mut at = 0;
    while at < len && waiting() {
        let end = len.min(at + 16 * 64);
        while at < end {
            // SAFETY: a prefetch reads nothing and cannot fault, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(start.wrapping_add(at) as *const i8) };
            at += 64;
        }
    }
}

/// `out (rows, heads·d)`: every row's attention, on AVX-512 where the CPU has it, else on AVX2
/// (`decode_attention_avx2`). Returns `false` (and leaves `out` alone) where the CPU lacks AVX2 and
/// FMA; the caller then runs the general path.
pub(crate) fn attend(st: &Step, out: &mut [f32]) -> bool {
    attend_on(st, out, super::cpu::features().avx512)
}

/// [`attend`] on AVX-512 (`wide`, which the caller has checked) or on AVX2.
fn attend_on(st: &Step, out: &mut [f32], wide: bool) -> bool {
    let (h, d, rows) = (st.heads, st.head_dim, st.lens.len());
    assert!(
        st.q.len() == rows * h * d
            && st.slopes.len() == h
            && out.len() == rows * h * d
            && parts_len(st.prompt, h, d) == Some(st.prompt_len)
            && st.own.is_none_or(|(k, v)| k.len() == rows * h * st.capacity * d && v.len() == k.len())
            && st.lens.iter().all(|&n| n <= st.capacity && (n == 0 || st.own.is_some()))
            && (1..=256).contains(&d),
        "decode attention: mismatched lengths"
    );
    if !super::gemm::available() {
        return false;
    }
    let out_ptr = out.as_mut_ptr() as usize;
    let stride = st.prompt_len + st.capacity;
    // Heads one at a time from a shared cursor, as the pool's own chunking handed them out; a
    // thread out of heads hints its share of the next weights until every head is done.
    let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let pool = candle_core::utils::barrier_pool();
    pool.execute_chunked(super::gemv::pool_threads(), |_| {
        // Row r's probabilities over its keys (prompt then own) at r·stride.
        let mut probs = vec![0f32; rows * stride];
        loop {
            let hh = next.fetch_add(1, Ordering::Relaxed);
            if hh >= h {
                break;
            }
            head(st, hh, &mut probs, stride, out_ptr, wide);
            done.fetch_add(1, Ordering::Release);
        }
        if let Some(&span) = st.then.get(super::gemv::pool_place()) {
            hint_while(span, || done.load(Ordering::Acquire) < h);
        }
    });
    true
}

/// Head `hh` of every row into `out` (at `out_ptr`, rows × heads·d), on AVX-512 where `wide`.
fn head(st: &Step, hh: usize, probs: &mut [f32], stride: usize, out_ptr: usize, wide: bool) {
    if !wide {
        // SAFETY: the caller checked avx2 and fma (`gemm::available()`); `probs` holds `rows` rows
        // of `stride`; this task alone writes head hh's channels of `out`.
        unsafe { super::decode_attention_avx2::head(st, hh, probs, stride, out_ptr as *mut f32) };
        return;
    }
    // SAFETY: the caller checked avx512; `probs` holds `rows` rows of `stride ≥ prompt_len`.
    unsafe { prompt_scores(st, hh, probs, stride) };
    for (r, pr) in probs.chunks_exact_mut(stride).enumerate() {
        // SAFETY: as above.
        unsafe { probabilities(st, hh, r, pr) };
    }
    // SAFETY: as above; this task alone writes head hh's d channels of each row of `out` (rows ×
    // heads·d).
    unsafe { sum_values(st, hh, probs, stride, out_ptr as *mut f32) };
}

/// Every row's scores over head `hh`'s prompt keys, into `probs[r·stride..][..prompt_len]`: rows
/// in groups of [`QUERIES`], so each key is read from memory (or L2) once per group, not per row.
///
/// # Safety
/// The CPU must support avx512f; `probs` holds `rows` rows of `stride ≥ prompt_len`.
#[target_feature(enable = "avx512f")]
unsafe fn prompt_scores(st: &Step, hh: usize, probs: &mut [f32], stride: usize) {
    let (h, d) = (st.heads, st.head_dim);
    let (scale, slope) = (1.0 / (d as f32).sqrt(), st.slopes[hh]);
    let rows = st.lens.len();
    let q = |r: usize| &st.q[(r * h + hh) * d..(r * h + hh + 1) * d];
    let base = probs.as_mut_ptr();
    // Part by part, each key's score at its position in the whole prompt.
    for (j0, n, keys, _) in head_parts(st.prompt, h, d, hh) {
        let out = |r: usize| base.add(r * stride + j0);
        let mut r = 0;
        while r < rows {
            let g = QUERIES.min(rows - r);
            match g {
                4 => scores_into::<4>(
                    [q(r), q(r + 1), q(r + 2), q(r + 3)],
                    keys,
                    d,
                    n,
                    [out(r), out(r + 1), out(r + 2), out(r + 3)],
                    scale,
                    slope,
                    j0,
                ),
                3 => scores_into::<3>(
                    [q(r), q(r + 1), q(r + 2)],
                    keys,
                    d,
                    n,
                    [out(r), out(r + 1), out(r + 2)],
                    scale,
                    slope,
                    j0,
                ),
                2 => scores_into::<2>([q(r), q(r + 1)], keys, d, n, [out(r), out(r + 1)], scale, slope, j0),
                _ => scores_into::<1>([q(r)], keys, d, n, [out(r)], scale, slope, j0),
            }
            r += g;
        }
    }
}

/// Queries per group in [`prompt_scores`].
const QUERIES: usize = 4;

/// Row `r`'s softmax over head `hh`'s keys, written to `probs[..prompt_len + lens[r]]` (weights
/// below f32's smallest normal as 0, see [`softmax_in_place`]); the prompt's scores are already
/// there ([`prompt_scores`]).
///
/// # Safety
/// The CPU must support avx512f.
#[target_feature(enable = "avx512f")]
unsafe fn probabilities(st: &Step, hh: usize, r: usize, probs: &mut [f32]) {
    let (h, d, l) = (st.heads, st.head_dim, st.prompt_len);
    let own_len = st.lens[r];
    let n = l + own_len;
    let q = &st.q[(r * h + hh) * d..(r * h + hh + 1) * d];
    let scale = 1.0 / (d as f32).sqrt();
    let slope = st.slopes[hh];
    // The row's own keys after the prompt's, each position with its ALiBi term.
    if let Some((k, _)) = st.own {
        let base = (r * h + hh) * st.capacity * d;
        scores_into::<1>([q], &k[base..base + own_len * d], d, own_len, [probs.as_mut_ptr().add(l)], scale, slope, l);
    }
    softmax_in_place(&mut probs[..n]);
}

/// Every row's `Σⱼ probs[j] · vⱼ` for head `hh`, into `out + (r·heads + hh)·d`.
///
/// # Safety
/// The CPU must support avx512f; `out` has `rows · heads · d` values, of which this call alone
/// writes head `hh`'s.
#[target_feature(enable = "avx512f")]
unsafe fn sum_values(st: &Step, hh: usize, probs: &[f32], stride: usize, out: *mut f32) {
    macro_rules! go {
        ($($nv:literal => $g:literal),*) => {
            match st.head_dim.div_ceil(16) {
                $($nv => sum_values_n::<$nv, $g>(st, hh, probs, stride, out),)*
                _ => unreachable!("head_dim ≤ 256 is checked by `attend`"),
            }
        };
    }
    // Rows per group: as many as keep G·NV accumulators and NV values within 32 registers.
    go!(1 => 4, 2 => 4, 3 => 4, 4 => 4, 5 => 2, 6 => 2, 7 => 2, 8 => 2, 9 => 1, 10 => 1, 11 => 1, 12 => 1,
        13 => 1, 14 => 1, 15 => 1, 16 => 1);
}

/// [`sum_values`] with `NV` registers per row and rows in groups of `G`: each of the prompt's value
/// rows is loaded once per group, not once per row.
#[target_feature(enable = "avx512f")]
unsafe fn sum_values_n<const NV: usize, const G: usize>(
    st: &Step,
    hh: usize,
    probs: &[f32],
    stride: usize,
    out: *mut f32,
) {
    let (h, d, l) = (st.heads, st.head_dim, st.prompt_len);
    let masks: [__mmask16; NV] = std::array::from_fn(|i| lanes(d - 16 * i));
    let rows = st.lens.len();
    for r0 in (0..rows).step_by(G) {
        let g = G.min(rows - r0);
        let mut acc = [[_mm512_setzero_ps(); NV]; G];
        // The prompt's values part by part, in position order (the sums do not depend on the cuts).
        for (j0, n, _, pv) in head_parts(st.prompt, h, d, hh) {
            let pv = pv.as_ptr();
            for j in 0..n {
                prefetch_row(pv.wrapping_add((j + AHEAD) * d), d);
                let v: [__m512; NV] = std::array::from_fn(|i| _mm512_maskz_loadu_ps(masks[i], pv.add(j * d + 16 * i)));
                for (k, acc_k) in acc.iter_mut().enumerate().take(g) {
                    let p = probs[(r0 + k) * stride + j0 + j];
                    if p != 0.0 {
                        let vp = _mm512_set1_ps(p);
                        for i in 0..NV {
                            acc_k[i] = _mm512_fmadd_ps(vp, v[i], acc_k[i]);
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
                        let vp = _mm512_set1_ps(p);
                        for i in 0..NV {
                            acc_k[i] =
                                _mm512_fmadd_ps(vp, _mm512_maskz_loadu_ps(masks[i], ov.add(t * d + 16 * i)), acc_k[i]);
                        }
                    }
                }
            }
            let o = out.add((r * h + hh) * d);
            for i in 0..NV {
                _mm512_mask_storeu_ps(o.add(16 * i), masks[i], acc_k[i]);
            }
        }
    }
}

/// Key and value rows asked for ahead of the one in use: a head's prompt keys and values (~180 KiB
/// each at 700 tokens) stream from memory once per step. In perf profiles of a q8_0 step of the
/// bloom-560m shape this cut the attention's time by 7–18% against the gemv's (64 rows: no better).
pub(super) const AHEAD: usize = 32;

/// Hints the `d` values at `p` (a key or value row, possibly past the end: only a hint) into L2:
/// hints into L1 stalled on L1's miss buffers (the profile's time sat on the prefetches), and with
/// L2 hints this attention's share of a q8_0 step fell from 0.29 to 0.22 of the gemv's.
#[inline(always)]
pub(super) fn prefetch_row(p: *const f32, d: usize) {
    for off in (0..d).step_by(16) {
        // SAFETY: a prefetch never faults and has no effect but loading a line; `wrapping_add`
        // keeps the address arithmetic defined past the slice.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(off) as *const i8) };
    }
}

/// `scores[g][j] = scale · (q[g] · keys[j]) + slope · (pos0 + j)` for `n` keys (rows of `d`) and
/// `G` queries, sixteen keys at a time: each key is loaded once for the `G` queries, and the sixteen
/// per-lane partial sums of a query are added up by [`sum16`] in registers (a store, a transpose
/// through memory and sixteen loads per sixteen keys made this the larger half of the attention
/// with 8 paths). A query's scores are the same whatever `G`.
///
/// # Safety
/// The CPU must support avx512f; `keys` holds `n` rows of `d`, each `q[g]` `d` values, and each
/// `scores[g]` has room for `n`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn scores_into<const G: usize>(
    q: [&[f32]; G],
    keys: &[f32],
    d: usize,
    n: usize,
    scores: [*mut f32; G],
    scale: f32,
    slope: f32,
    pos0: usize,
) {
    macro_rules! go {
        ($($nv:literal),*) => {
            match d.div_ceil(16) {
                $($nv => scores_into_n::<G, $nv>(q, keys, d, n, scores, scale, slope, pos0),)*
                _ => unreachable!("head_dim ≤ 256 is checked by `attend`"),
            }
        };
    }
    go!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
}

/// [`scores_into`] with `NV` registers a row (`d ≤ 16·NV`): the queries are loaded into registers
/// once, and each key's `NV` loads serve all `G` queries. A query's dot product with a key is `NV`
/// fused multiply-adds in lane order into one register, whatever `G`. (A loop over `d` per query and
/// key reloaded the query and recomputed the lane masks for every key: with 8 paths, the scores
/// over the prompt took 2.4× one path's time, for the same keys read from memory.)
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn scores_into_n<const G: usize, const NV: usize>(
    q: [&[f32]; G],
    keys: &[f32],
    d: usize,
    n: usize,
    scores: [*mut f32; G],
    scale: f32,
    slope: f32,
    pos0: usize,
) {
    assert!(keys.len() >= n * d && q.iter().all(|q| q.len() >= d) && d <= 16 * NV);
    let masks: [__mmask16; NV] = std::array::from_fn(|i| lanes(d.saturating_sub(16 * i)));
    // SAFETY (loads below): lanes are masked to d, and every row read has d values (asserted).
    let qv: [[__m512; NV]; G] =
        std::array::from_fn(|g| std::array::from_fn(|i| _mm512_maskz_loadu_ps(masks[i], q[g].as_ptr().add(16 * i))));
    let mut part = [[_mm512_setzero_ps(); 16]; G];
    let (vslope, lane) =
        (_mm512_set1_ps(slope), _mm512_setr_ps(0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 15.));
    let vs = _mm512_set1_ps(scale);
    let mut j0 = 0;
    while j0 < n {
        let count = 16.min(n - j0);
        for t in 0..16 {
            prefetch_row(keys.as_ptr().wrapping_add((j0 + AHEAD + t) * d), d);
            if t < count {
                let kp = keys.as_ptr().add((j0 + t) * d);
                let kv: [__m512; NV] = std::array::from_fn(|i| _mm512_maskz_loadu_ps(masks[i], kp.add(16 * i)));
                for g in 0..G {
                    let mut acc = _mm512_setzero_ps();
                    for i in 0..NV {
                        acc = _mm512_fmadd_ps(qv[g][i], kv[i], acc);
                    }
                    part[g][t] = acc;
                }
            } else {
                for p in part.iter_mut() {
                    p[t] = _mm512_setzero_ps();
                }
            }
        }
        let m = lanes(count);
        // Each key's bias from its position alone (exact in f32 below 2²⁴), not summed up block by
        // block: so a prompt read in parts gets the bias of the whole, bit for bit.
        let alibi = _mm512_mul_ps(vslope, _mm512_add_ps(_mm512_set1_ps((pos0 + j0) as f32), lane));
        for g in 0..G {
            _mm512_mask_storeu_ps(scores[g].add(j0), m, _mm512_fmadd_ps(sum16(&part[g]), vs, alibi));
        }
        j0 += 16;
    }
}

/// Lane `t` of the result is the sum of the 16 lanes of `v[t]`: a tree of in-register shuffles and
/// adds (45 operations for 256 values), pairing lanes within 128-bit quarters first, then quarters.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn sum16(v: &[__m512; 16]) -> __m512 {
    // Per quarter [a0+a2, b0+b2, a1+a3, b1+b3] for the pair (a, b) = (v[2i], v[2i+1]).
    let s: [__m512; 8] = std::array::from_fn(|i| {
        _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]))
    });
    // Per quarter [a, b, c, d]: each of four vectors' sums over that quarter.
    let u: [__m512; 4] = std::array::from_fn(|i| {
        _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(s[2 * i], s[2 * i + 1]),
            _mm512_shuffle_ps::<0xEE>(s[2 * i], s[2 * i + 1]),
        )
    });
    // Quarters pairwise: [u0 q0+q1, u0 q2+q3, u1 q0+q1, u1 q2+q3], and the same for (u2, u3).
    let w: [__m512; 2] = std::array::from_fn(|i| {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(u[2 * i], u[2 * i + 1]),
            _mm512_shuffle_f32x4::<0xDD>(u[2 * i], u[2 * i + 1]),
        )
    });
    _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(w[0], w[1]), _mm512_shuffle_f32x4::<0xDD>(w[0], w[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel families this CPU runs: AVX-512 (`true`) where it has it, and AVX2 (`false`).
    fn families() -> Vec<bool> {
        match (crate::model::gemm::available(), crate::model::cpu::features().avx512) {
            (false, _) => vec![],
            (true, true) => vec![true, false],
            (true, false) => vec![false],
        }
    }

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0) * 1.5).collect()
    }

    /// Row r's attention from the definition, in f64: keys are the prompt's then the row's own.
    fn naive(st: &Step) -> Vec<f32> {
        let (h, d, l) = (st.heads, st.head_dim, st.prompt_len);
        let rows = st.lens.len();
        let mut out = vec![0f32; rows * h * d];
        for r in 0..rows {
            for hh in 0..h {
                let kv = |j: usize, which: usize| -> Vec<f64> {
                    let (src, at) = if j < l {
                        let (j0, n, k, v) = head_parts(st.prompt, h, d, hh).find(|&(j0, n, ..)| j < j0 + n).unwrap();
                        debug_assert!(j >= j0 && n > 0);
                        (if which == 0 { k } else { v }, (j - j0) * d)
                    } else {
                        let (k, v) = st.own.unwrap();
                        (if which == 0 { k } else { v }, ((r * h + hh) * st.capacity + j - l) * d)
                    };
                    src[at..at + d].iter().map(|x| *x as f64).collect()
                };
                let n = l + st.lens[r];
                let q: Vec<f64> = st.q[(r * h + hh) * d..(r * h + hh + 1) * d].iter().map(|x| *x as f64).collect();
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        let k = kv(j, 0);
                        q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt()
                            + st.slopes[hh] as f64 * j as f64
                    })
                    .collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    let v = kv(j, 1);
                    for (c, vc) in v.iter().enumerate() {
                        out[(r * h + hh) * d + c] += (ej / sum * vc) as f32;
                    }
                }
            }
        }
        out
    }

    /// A path attends the same alone as in a batch, bit for bit (rows share key loads in groups).
    #[test]
    fn a_row_alone_equals_the_row_in_a_batch() {
        for wide in families() {
            a_row_alone_equals_the_row_in_a_batch_on(wide);
        }
    }

    fn a_row_alone_equals_the_row_in_a_batch_on(wide: bool) {
        let (h, d, l, cap) = (2, 64, 37, 6);
        let lens = [3, 1, 6, 2, 4, 5];
        let rows = lens.len();
        let q = data(rows * h * d, 1);
        let (pk, pv) = (data(h * l * d, 2), data(h * l * d, 3));
        let (ok, ov) = (data(rows * h * cap * d, 4), data(rows * h * cap * d, 5));
        let slopes = crate::model::alibi::slopes(h);
        let step = |q: &[f32], own: (&[f32], &[f32]), lens: &[usize]| {
            let st = Step {
                heads: h,
                head_dim: d,
                q,
                prompt: &[(&pk[..], &pv[..])],
                prompt_len: l,
                own: Some(own),
                capacity: cap,
                lens,
                slopes: &slopes,
                then: &[],
            };
            let mut out = vec![0f32; lens.len() * h * d];
            assert!(attend_on(&st, &mut out, wide));
            out
        };
        let all = step(&q, (&ok, &ov), &lens);
        for r in 0..rows {
            let (qs, os) = (r * h * d..(r + 1) * h * d, r * h * cap * d..(r + 1) * h * cap * d);
            let one = step(&q[qs.clone()], (&ok[os.clone()], &ov[os]), &lens[r..r + 1]);
            assert_eq!(one, all[qs], "row {r}, wide {wide}");
        }
    }

    /// Threads out of heads hint their share of the next weights, which changes no output: with
    /// spans over a real buffer, over none, and past any mapping, the bits are the same.
    #[test]
    fn hinting_the_next_weights_changes_no_output() {
        if !crate::model::gemm::available() {
            eprintln!("no AVX2 here: the general path runs");
            return;
        }
        let (h, d, l, cap, lens) = (4, 64, 300, 8, [3usize, 5]);
        let rows = lens.len();
        let (q, pk, pv) = (data(rows * h * d, 1), data(h * l * d, 2), data(h * l * d, 3));
        let (ok, ov) = (data(rows * h * cap * d, 4), data(rows * h * cap * d, 5));
        let slopes = crate::model::alibi::slopes(h);
        let next = vec![1u8; 1 << 20];
        let half = next.len() / 2;
        let real = [(next.as_ptr() as usize, half), (next.as_ptr() as usize + half, half)];
        let wild = [(usize::MAX - 4096, 1 << 20), (0, 1 << 20)];
        for wide in [false, crate::model::cpu::features().avx512] {
            let run = |then: &[(usize, usize)]| {
                let st = Step {
                    heads: h,
                    head_dim: d,
                    q: &q,
                    prompt: &[(&pk[..], &pv[..])],
                    prompt_len: l,
                    own: Some((&ok, &ov)),
                    capacity: cap,
                    lens: &lens,
                    slopes: &slopes,
                    then,
                };
                let mut out = vec![0f32; rows * h * d];
                assert!(attend_on(&st, &mut out, wide));
                out
            };
            let plain = run(&[]);
            assert_eq!(run(&real), plain, "wide {wide}");
            assert_eq!(run(&wild), plain, "wide {wide}");
        }
    }

    #[test]
    fn rows_of_different_lengths_over_a_shared_prompt_match_the_definition() {
        if !crate::model::gemm::available() {
            eprintln!("no AVX2 here: the general path runs");
            return;
        }
        // (heads, d, prompt, capacity, lens): with and without a prompt, ragged d, unequal rows.
        // Rows are summed in groups (of 4 on AVX2; on AVX-512 4 at d ≤ 64, 2 at d ≤ 128): six rows
        // leave a partial group. AVX2 sums the prompt's values in tiles of 8 KiB (32 positions at
        // d = 64, 51 at d = 40, whose 5 registers leave a block of one).
        let cases: [(usize, usize, usize, usize, &[usize]); 8] = [
            (2, 64, 37, 8, &[1, 5, 8]),
            (3, 40, 0, 6, &[6, 2]),
            (1, 20, 50, 0, &[0]),
            (4, 64, 100, 64, &[3]),
            (2, 64, 30, 5, &[1, 2, 3, 4, 5, 1]),
            (1, 96, 20, 3, &[3, 1, 2]),
            (2, 40, 130, 4, &[1, 2, 3, 4, 1]),
            (2, 64, 70, 4, &[2, 4, 1, 3, 2, 1, 4, 3]),
        ];
        for (h, d, l, cap, lens) in cases {
            let rows = lens.len();
            let q = data(rows * h * d, 1);
            let (pk, pv) = (data(h * l * d, 2), data(h * l * d, 3));
            let (ok, ov) = (data(rows * h * cap * d, 4), data(rows * h * cap * d, 5));
            let slopes = crate::model::alibi::slopes(h);
            let prompt: Vec<(&[f32], &[f32])> = if l > 0 { vec![(&pk[..], &pv[..])] } else { vec![] };
            let st = Step {
                heads: h,
                head_dim: d,
                q: &q,
                prompt: &prompt,
                prompt_len: l,
                own: (cap > 0).then_some((&ok[..], &ov[..])),
                capacity: cap,
                lens,
                slopes: &slopes,
                then: &[],
            };
            let want = naive(&st);
            for wide in families() {
                let mut got = vec![f32::NAN; want.len()];
                assert!(attend_on(&st, &mut got, wide));
                let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-5, "h={h} d={d} l={l} lens={lens:?} wide {wide}: {diff}");
            }
        }
    }

    /// A prompt kept in parts (a cached template's, then a question's own) attends as the whole.
    #[test]
    fn a_prompt_in_parts_equals_the_whole_bit_for_bit() {
        for wide in families() {
            a_prompt_in_parts_equals_the_whole_on(wide);
        }
    }

    fn a_prompt_in_parts_equals_the_whole_on(wide: bool) {
        let (h, d, l, cap) = (2, 64, 75, 8);
        let lens = [1, 8, 3, 5, 2];
        let rows = lens.len();
        let q = data(rows * h * d, 1);
        let (pk, pv) = (data(h * l * d, 2), data(h * l * d, 3));
        let (ok, ov) = (data(rows * h * cap * d, 4), data(rows * h * cap * d, 5));
        let slopes = crate::model::alibi::slopes(h);
        let attend_over = |prompt: &KvParts| {
            let st = Step {
                heads: h,
                head_dim: d,
                q: &q,
                prompt,
                prompt_len: l,
                own: Some((&ok[..], &ov[..])),
                capacity: cap,
                lens: &lens,
                slopes: &slopes,
                then: &[],
            };
            let mut out = vec![f32::NAN; rows * h * d];
            assert!(attend_on(&st, &mut out, wide));
            out.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        let whole = attend_over(&[(&pk[..], &pv[..])]);
        // Cuts inside a 16-key block, on its edge, and one position long.
        for cuts in [vec![37], vec![16, 17, 64]] {
            let owned = crate::model::attention::tests::cut(&pk, &pv, h, d, &cuts);
            let parts: Vec<(&[f32], &[f32])> = owned.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            assert_eq!(attend_over(&parts), whole, "cuts {cuts:?}, wide {wide}");
        }
    }
}
