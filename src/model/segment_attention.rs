//! Attention of several prompts' own tokens at once (a wave of eval questions after their shared
//! template): each segment causal over the shared prefix and its own tokens, never another's.
//!
//! Why: run one segment at a time through [`super::attention::causal_alibi`], every segment first
//! concatenated the prefix's keys and values in front of its own (~5 MB a layer at 584 tokens) and
//! packed them all again, a quarter of a wave's attention time. Here each head packs the prefix
//! once and each segment packs only its own tokens after it. The packed operands and the arithmetic
//! on them are the same, so the results are those of one segment at a time, bit for bit.

use super::attention::{attend_packed, head_parts, parts_len, KvParts, Scratch, Shape};

/// The operands: all segments' queries, keys and values in order along the token axis (`T` tokens).
pub(crate) struct Segments<'a> {
    pub heads: usize,
    pub head_dim: usize,
    /// `(heads, T, d)`.
    pub q: &'a [f32],
    /// The segments' own keys and values, `(heads, T, d)` each.
    pub k: &'a [f32],
    pub v: &'a [f32],
    /// The shared prefix's keys and values in parts (none: no prefix).
    pub prefix: &'a KvParts<'a>,
    /// Tokens per segment (their sum is `T`, none zero).
    pub lens: &'a [usize],
    /// Only each segment's last query is computed (its output row is the segment's index).
    pub last_only: bool,
    pub slopes: &'a [f32],
}

/// `out (rows, heads·d)`, `rows` = `T` (or the segment count when `last_only`). Returns `false` (and
/// leaves `out` alone) where the CPU lacks AVX2 and FMA.
pub(crate) fn attend(sg: &Segments, out: &mut [f32]) -> bool {
    let (h, d) = (sg.heads, sg.head_dim);
    let t: usize = sg.lens.iter().sum();
    let rows = if sg.last_only { sg.lens.len() } else { t };
    let prefix_len = parts_len(sg.prefix, h, d);
    let l = prefix_len.unwrap_or(0);
    assert!(
        sg.q.len() == h * t * d
            && sg.k.len() == sg.q.len()
            && sg.v.len() == sg.q.len()
            && prefix_len.is_some()
            && sg.lens.iter().all(|&s| s > 0)
            && sg.slopes.len() == h
            && out.len() == rows * h * d,
        "segment attention: mismatched lengths"
    );
    if !super::gemm::available() {
        return false;
    }
    let longest = sg.lens.iter().copied().max().unwrap_or(0);
    let out_ptr = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(h, |heads| {
        let mut sc = Scratch::new(l + longest, d);
        for hh in heads {
            for (j0, n, k, v) in head_parts(sg.prefix, h, d, hh) {
                sc.pack(k, v, j0, n, d);
            }
            let (mut at, mut row) = (0, 0);
            for &s in sg.lens {
                let own = (hh * t + at) * d..(hh * t + at + s) * d;
                sc.pack(&sg.k[own.clone()], &sg.v[own], l, s, d);
                let queries = if sg.last_only { 1 } else { s };
                let q0 = (hh * t + at + s - queries) * d;
                let shape = Shape { heads: h, head_dim: d, s: queries, kv: l + s };
                // SAFETY: `gemm::available()` was checked above; the scratch holds the prefix and this
                // segment (l + s positions); this task alone writes head hh's d channels of rows
                // row..row + queries of `out` (rows × h·d).
                unsafe {
                    attend_packed(
                        &shape,
                        &sg.q[q0..q0 + queries * d],
                        sg.slopes[hh],
                        (out_ptr as *mut f32).add(row * h * d + hh * d),
                        &mut sc,
                    );
                }
                at += s;
                row += queries;
            }
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::super::attention::causal_alibi;
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0) * 1.5).collect()
    }

    /// `(heads, n, d)` rows `a..a + len` of each head.
    fn tokens(x: &[f32], heads: usize, n: usize, d: usize, a: usize, len: usize) -> Vec<f32> {
        (0..heads).flat_map(|h| x[(h * n + a) * d..(h * n + a + len) * d].to_vec()).collect()
    }

    #[test]
    fn equals_each_segment_run_alone_over_the_prefix_and_its_own_tokens_bit_for_bit() {
        if !crate::model::gemm::available() {
            eprintln!("no AVX2 here: the segments run one at a time");
            return;
        }
        // Prefixes ending inside a key panel and on its edge, none at all; segments shorter and
        // longer than a query panel, and longer than the ones before them.
        for &(heads, d, l, ref lens) in
            &[(2, 64, 45, vec![3, 20, 1, 15]), (3, 40, 64, vec![30, 2]), (2, 64, 0, vec![5, 17]), (1, 8, 7, vec![1])]
        {
            let t: usize = lens.iter().sum();
            let (q, k, v) = (data(heads * t * 64, 1), data(heads * t * 64, 2), data(heads * t * 64, 3));
            let (q, k, v) = (&q[..heads * t * d], &k[..heads * t * d], &v[..heads * t * d]);
            let (pk, pv) = (data(heads * l * d, 4), data(heads * l * d, 5));
            let slopes = crate::model::alibi::slopes(heads);
            // The prefix whole, and in two parts cut inside a key panel (as a cached template's
            // part and a question's own are kept).
            let cut = l / 3;
            let (pk0, pk1) = (tokens(&pk, heads, l, d, 0, cut), tokens(&pk, heads, l, d, cut, l - cut));
            let (pv0, pv1) = (tokens(&pv, heads, l, d, 0, cut), tokens(&pv, heads, l, d, cut, l - cut));
            let whole: Vec<(&[f32], &[f32])> = if l > 0 { vec![(&pk[..], &pv[..])] } else { vec![] };
            let split: Vec<(&[f32], &[f32])> = vec![(&pk0[..], &pv0[..]), (&pk1[..], &pv1[..])];
            for (last_only, prefix) in [(false, &whole), (true, &whole), (false, &split), (true, &split)] {
                let rows = if last_only { lens.len() } else { t };
                let mut got = vec![f32::NAN; rows * heads * d];
                let sg = Segments { heads, head_dim: d, q, k, v, prefix, lens, last_only, slopes: &slopes };
                assert!(attend(&sg, &mut got));
                let (mut at, mut row) = (0, 0);
                for &s in lens {
                    let queries = if last_only { 1 } else { s };
                    let qs = tokens(q, heads, t, d, at + s - queries, queries);
                    let (ks, vs) = (tokens(k, heads, t, d, at, s), tokens(v, heads, t, d, at, s));
                    // The prefix's keys then the segment's, per head, as the cache concatenates them.
                    let cat = |p: &[f32], own: &[f32]| -> Vec<f32> {
                        (0..heads)
                            .flat_map(|h| [&p[h * l * d..(h + 1) * l * d], &own[h * s * d..(h + 1) * s * d]].concat())
                            .collect()
                    };
                    let shape = Shape { heads, head_dim: d, s: queries, kv: l + s };
                    let mut want = vec![0f32; queries * heads * d];
                    assert!(causal_alibi(&shape, &qs, &[(&cat(&pk, &ks), &cat(&pv, &vs))], &slopes, &mut want));
                    let have = &got[row * heads * d..(row + queries) * heads * d];
                    let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(have), bits(&want), "{heads}x{d} l={l} lens={lens:?} segment at {at}");
                    at += s;
                    row += queries;
                }
            }
        }
    }
}
