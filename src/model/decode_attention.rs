//! Attention of one new token per row over the shared prompt and the row's own continuation, with
//! ALiBi and each row's own length: a decode step's attention without materialising anything.
//!
//! Why: through candle each step built `b × h × kv` score tensors (scores, + ALiBi, + row mask,
//! softmax) and ran two one-row products on its GEMM, about a tenth of a one-path step at a
//! 700-token prompt. Here each (head, row) is a dot product per key, an in-place softmax and a
//! weighted sum of values, with the head's keys and values (~180 KiB each at 700 tokens) staying
//! in L2 while every row of the batch reads them.

use std::arch::x86_64::*;

use super::attention::{exp, lanes};

/// The operands of one step. Keys and values are `(heads, len, d)` for the prompt and
/// `(rows, heads, capacity, d)` for the rows' own positions.
pub(crate) struct Step<'a> {
    pub heads: usize,
    pub head_dim: usize,
    /// One query per row, `(rows, heads, d)`.
    pub q: &'a [f32],
    /// The shared prompt's keys and values (`prompt_len` positions), if any.
    pub prompt: Option<(&'a [f32], &'a [f32])>,
    pub prompt_len: usize,
    /// The rows' own keys and values, if any, and their capacity per row.
    pub own: Option<(&'a [f32], &'a [f32])>,
    pub capacity: usize,
    /// Positions each row holds in `own` (its query is the last of them).
    pub lens: &'a [usize],
    pub slopes: &'a [f32],
}

/// `out (rows, heads·d)`: every row's attention. Returns `false` (and leaves `out` alone) where the
/// CPU lacks AVX-512; the caller then runs the general path.
pub(crate) fn attend(st: &Step, out: &mut [f32]) -> bool {
    let (h, d, rows) = (st.heads, st.head_dim, st.lens.len());
    assert!(
        st.q.len() == rows * h * d
            && st.slopes.len() == h
            && out.len() == rows * h * d
            && st.prompt.is_none_or(|(k, v)| k.len() == h * st.prompt_len * d && v.len() == k.len())
            && st.own.is_none_or(|(k, v)| k.len() == rows * h * st.capacity * d && v.len() == k.len())
            && st.lens.iter().all(|&n| n <= st.capacity && (n == 0 || st.own.is_some())),
        "decode attention: mismatched lengths"
    );
    if !super::gemm::available() {
        return false;
    }
    let out_ptr = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(h, |heads| {
        let mut scores = vec![0f32; st.prompt_len + st.capacity];
        for hh in heads {
            for r in 0..rows {
                // SAFETY: avx512 was checked above; this task alone writes head hh's d channels of
                // each row of `out` (rows × heads·d).
                unsafe {
                    let o = std::slice::from_raw_parts_mut((out_ptr as *mut f32).add((r * h + hh) * d), d);
                    one(st, hh, r, &mut scores, o);
                }
            }
        }
    });
    true
}

/// Row `r`'s query against head `hh`'s keys: `out` gets the `d` channels.
///
/// # Safety
/// The CPU must support avx512f.
#[target_feature(enable = "avx512f")]
unsafe fn one(st: &Step, hh: usize, r: usize, scores: &mut [f32], out: &mut [f32]) {
    let (h, d, l) = (st.heads, st.head_dim, st.prompt_len);
    let own_len = st.lens[r];
    let n = l + own_len;
    let q = &st.q[(r * h + hh) * d..(r * h + hh + 1) * d];
    let scale = 1.0 / (d as f32).sqrt();
    let slope = st.slopes[hh];
    let prompt = st.prompt.map(|(k, v)| (&k[hh * l * d..(hh + 1) * l * d], &v[hh * l * d..(hh + 1) * l * d]));
    let base = (r * h + hh) * st.capacity * d;
    let own = st.own.map(|(k, v)| (&k[base..base + own_len * d], &v[base..base + own_len * d]));
    let key = |j: usize| -> &[f32] {
        match (j < l, prompt, own) {
            (true, Some((k, _)), _) => &k[j * d..(j + 1) * d],
            (false, _, Some((k, _))) => &k[(j - l) * d..(j - l + 1) * d],
            _ => &[],
        }
    };
    let mut max = f32::NEG_INFINITY;
    for (j, s) in scores[..n].iter_mut().enumerate() {
        *s = dot(q, key(j)) * scale + slope * j as f32;
        max = max.max(*s);
    }
    let vmax = _mm512_set1_ps(max);
    let mut vsum = _mm512_setzero_ps();
    let mut j = 0;
    while j < n {
        let m = lanes(n - j);
        let e = _mm512_maskz_mov_ps(m, exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scores.as_ptr().add(j)), vmax)));
        _mm512_mask_storeu_ps(scores.as_mut_ptr().add(j), m, e);
        vsum = _mm512_add_ps(vsum, e);
        j += 16;
    }
    let inv = 1.0 / _mm512_reduce_add_ps(vsum);
    out.fill(0.0);
    for (j, &e) in scores[..n].iter().enumerate() {
        let p = e * inv;
        // Subnormal weights are skipped: they change nothing in f32 and would cost an assist each.
        if p < f32::MIN_POSITIVE {
            continue;
        }
        let v = match (j < l, prompt, own) {
            (true, Some((_, v)), _) => &v[j * d..(j + 1) * d],
            (false, _, Some((_, v))) => &v[(j - l) * d..(j - l + 1) * d],
            _ => continue,
        };
        axpy(out, p, v);
    }
}

/// `Σ a·b` over equal-length slices (an empty `b` gives 0).
#[target_feature(enable = "avx512f")]
unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        // SAFETY: lanes masked to n ≤ both lengths.
        acc = _mm512_fmadd_ps(
            _mm512_maskz_loadu_ps(m, a.as_ptr().add(i)),
            _mm512_maskz_loadu_ps(m, b.as_ptr().add(i)),
            acc,
        );
        i += 16;
    }
    _mm512_reduce_add_ps(acc)
}

/// `y += p · x` over equal-length slices.
#[target_feature(enable = "avx512f")]
unsafe fn axpy(y: &mut [f32], p: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let vp = _mm512_set1_ps(p);
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        // SAFETY: lanes masked to n ≤ both lengths.
        let yi = _mm512_maskz_loadu_ps(m, y.as_ptr().add(i));
        _mm512_mask_storeu_ps(
            y.as_mut_ptr().add(i),
            m,
            _mm512_fmadd_ps(vp, _mm512_maskz_loadu_ps(m, x.as_ptr().add(i)), yi),
        );
        i += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                        let (k, v) = st.prompt.unwrap();
                        (if which == 0 { k } else { v }, (hh * l + j) * d)
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

    #[test]
    fn rows_of_different_lengths_over_a_shared_prompt_match_the_definition() {
        if !crate::model::gemm::available() {
            eprintln!("no AVX-512 here: the general path runs");
            return;
        }
        // (heads, d, prompt, capacity, lens): with and without a prompt, ragged d, unequal rows.
        let cases: [(usize, usize, usize, usize, &[usize]); 4] =
            [(2, 64, 37, 8, &[1, 5, 8]), (3, 40, 0, 6, &[6, 2]), (1, 20, 50, 0, &[0]), (4, 64, 100, 64, &[3])];
        for (h, d, l, cap, lens) in cases {
            let rows = lens.len();
            let q = data(rows * h * d, 1);
            let (pk, pv) = (data(h * l * d, 2), data(h * l * d, 3));
            let (ok, ov) = (data(rows * h * cap * d, 4), data(rows * h * cap * d, 5));
            let slopes = crate::model::alibi::slopes(h);
            let st = Step {
                heads: h,
                head_dim: d,
                q: &q,
                prompt: (l > 0).then_some((&pk[..], &pv[..])),
                prompt_len: l,
                own: (cap > 0).then_some((&ok[..], &ov[..])),
                capacity: cap,
                lens,
                slopes: &slopes,
            };
            let want = naive(&st);
            let mut got = vec![f32::NAN; want.len()];
            assert!(attend(&st, &mut got));
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-5, "h={h} d={d} l={l} lens={lens:?}: {diff}");
        }
    }
}
