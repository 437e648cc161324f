//! The AVX-512 VNNI kernel for q8_0 (`vpdpbusd`: 64 unsigned-by-signed byte products summed in
//! fours into 16 i32 lanes per instruction). Callers check the features first
//! (`super::super::cpu`). See `super::q8` for the arithmetic.

use std::arch::x86_64::*;

use half::f16;

use super::q8::Rows;

/// For the `p`-th pair of blocks in a group: lanes 0–7 take the group's scale `2p`, lanes 8–15
/// scale `2p + 1`, matching the lanes a `vpdpbusd` over the pair's 64 bytes fills.
const PAIR_LANES: [[i32; 16]; 8] = {
    let mut t = [[0i32; 16]; 8];
    let mut p = 0;
    while p < 8 {
        let mut l = 0;
        while l < 16 {
            t[p][l] = (2 * p + l / 8) as i32;
            l += 1;
        }
        p += 1;
    }
    t
};

/// Activation rows a task's weight rows are taken against at once: each keeps two accumulators
/// (eight registers for four rows, beside their four scale vectors); eight rows at once spilled to
/// the stack and ran at about two thirds of the speed.
const CHUNK: usize = 4;

/// Bytes ahead of a weight load that its line is hinted at (see [`q8`]).
const AHEAD: usize = 4096;

/// Dot products of `R` quantized activation rows with `out.len()` consecutive q8_0 weight rows
/// (`qs`: their values as `q + 128`; `d`: their block scales) into `out[j][..R]`, one call a task
/// so the per-row cost is a loop turn, not a call (per-row calls cost 9% of a q8_0 step, 250880 of
/// them in the LM head). Each weight row goes two blocks per step: one 64-byte load of weights and,
/// per activation row, one `vpdpbusd` of the unsigned weights against the signed activations
/// starting from the row's `-128·Σx` lanes (`x.corr`), so each 8-lane half sums to the block's
/// exact integer dot; then one conversion and one FMA with the pair's two scales.
///
/// Each activation row keeps two accumulators, one for even pairs of blocks and one for odd, added
/// at the end, so a pair does not wait on the FMA of the pair before it. More than [`CHUNK`] rows
/// go in chunks, each over the task's weight rows again (by then in L2). A row's operations do not
/// depend on `R` or on its chunk, so its result does not either: a path decodes the same alone or
/// in a batch. With the weights in cache the kernel ran 0–6% faster than with one accumulator and
/// hints into L2 for one row, 4–10% for two and four, the same for eight (Zen 4; BENCHMARKS.md,
/// Round 29).
///
/// Weights are prefetched into L1 4 KiB ahead, one hint per 64-byte line: rows follow each other
/// in memory, so the hints run on into the next row (8 KiB ahead, into L2, was no faster).
///
/// # Safety
/// The CPU must support avx512f, avx512bw, avx512vl, avx512vnni and f16c; `R ≤ 8`; `d.len()` is
/// `out.len()` rows of `nb` blocks and `qs.len() ≥ 32·d.len()`; `x` holds `R` rows of `x.nbp`
/// blocks (`x.nbp` a multiple of 16 and ≥ `nb`) with their corrections.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
pub unsafe fn q8<const R: usize>(x: &Rows, qs: &[u8], d: &[f16], out: &mut [[f32; 8]]) {
    let mut r = 0;
    while r < R {
        // Only the first chunk hints the weights; the others find them in L2.
        match (R - r, r == 0) {
            (1, true) => rows_dots::<1, true>(x, r, qs, d, out),
            (2, true) => rows_dots::<2, true>(x, r, qs, d, out),
            (3, true) => rows_dots::<3, true>(x, r, qs, d, out),
            (_, true) => rows_dots::<CHUNK, true>(x, r, qs, d, out),
            (1, false) => rows_dots::<1, false>(x, r, qs, d, out),
            (2, false) => rows_dots::<2, false>(x, r, qs, d, out),
            (3, false) => rows_dots::<3, false>(x, r, qs, d, out),
            (_, false) => rows_dots::<CHUNK, false>(x, r, qs, d, out),
        }
        r += CHUNK;
    }
}

/// Rows `r0..r0 + C` of `x` against every weight row of `qs`/`d` into `out[j][r0..r0 + C]`,
/// hinting the weights ahead where `HINT`.
///
/// # Safety
/// As [`q8`]'s, for rows `r0..r0 + C` of `x`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn rows_dots<const C: usize, const HINT: bool>(x: &Rows, r0: usize, qs: &[u8], d: &[f16], out: &mut [[f32; 8]]) {
    let nb = d.len() / out.len();
    let pdx = x.dx.as_ptr();
    for (j, o) in out.iter_mut().enumerate() {
        let pw = qs.as_ptr().add(j * nb * 32);
        let pd = (d.as_ptr() as *const u16).add(j * nb);
        let mut acc = [[_mm512_setzero_ps(); C]; 2];
        let mut b0 = 0;
        while b0 < nb {
            let in_group = (nb - b0).min(16);
            // The group's weight scales; a short last group is masked (masked-off lanes read nothing).
            let h = if in_group == 16 {
                _mm256_loadu_si256(pd.add(b0) as *const __m256i)
            } else {
                _mm256_maskz_loadu_epi16(((1u32 << in_group) - 1) as u16, pd.add(b0) as *const i16)
            };
            if HINT {
                // Scales are 1/16 of the bytes: one hint per group, as far ahead as the values' hints.
                _mm_prefetch::<_MM_HINT_T0>(pd.wrapping_add(b0 + AHEAD / 32) as *const i8);
            }
            let dw = _mm512_cvtph_ps(h);
            let mut s = [_mm512_setzero_ps(); C];
            for (c, sc) in s.iter_mut().enumerate() {
                *sc = _mm512_mul_ps(dw, _mm512_loadu_ps(pdx.add((r0 + c) * x.nbp + b0)));
            }
            // The pairs in twos, even into `acc[0]` and odd into `acc[1]`, each a fixed register
            // (indexing the accumulators by the pair's parity spilled them to the stack).
            let [even, odd] = &mut acc;
            if in_group == 16 {
                // A whole group: a fixed trip count the compiler unrolls.
                for q in 0..4 {
                    pair_dots::<C, HINT>(x, r0, pw, b0 + 4 * q, nb, &PAIR_LANES[2 * q], &s, even);
                    pair_dots::<C, HINT>(x, r0, pw, b0 + 4 * q + 2, nb, &PAIR_LANES[2 * q + 1], &s, odd);
                }
            } else {
                let pairs = in_group.div_ceil(2);
                let mut p = 0;
                while p < pairs {
                    pair_dots::<C, HINT>(x, r0, pw, b0 + 2 * p, nb, &PAIR_LANES[p], &s, even);
                    if p + 1 < pairs {
                        pair_dots::<C, HINT>(x, r0, pw, b0 + 2 * p + 2, nb, &PAIR_LANES[p + 1], &s, odd);
                    }
                    p += 2;
                }
            }
            b0 += 16;
        }
        for (c, o) in o[r0..r0 + C].iter_mut().enumerate() {
            *o = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][c], acc[1][c]));
        }
    }
}

/// Blocks `b` and `b + 1` of a weight row starting at `pw` against rows `r0..r0 + C` of `x`, into
/// `acc` with the pair's scales (`s`'s lanes `lanes`).
///
/// # Safety
/// As [`rows_dots`]'s; `b < nb`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn pair_dots<const C: usize, const HINT: bool>(
    x: &Rows,
    r0: usize,
    pw: *const u8,
    b: usize,
    nb: usize,
    lanes: &[i32; 16],
    s: &[__m512; C],
    acc: &mut [__m512; C],
) {
    let (px, pc) = (x.q.as_ptr(), x.corr.as_ptr());
    let wp = pw.add(b * 32);
    if HINT {
        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(AHEAD) as *const i8);
    }
    // An odd last block: only its 32 bytes; the zeros above meet padded activations, whose values
    // and corrections are 0.
    let wv = if b + 1 < nb {
        _mm512_loadu_si512(wp as *const __m512i)
    } else {
        _mm512_maskz_loadu_epi8(0xFFFF_FFFF, wp as *const i8)
    };
    let idx = _mm512_loadu_si512(lanes.as_ptr() as *const __m512i);
    for (c, a) in acc.iter_mut().enumerate() {
        let at = (r0 + c) * x.nbp + b;
        let xv = _mm512_loadu_si512(px.add(at * 32) as *const __m512i);
        let corr = _mm512_loadu_si512(pc.add(at * 8) as *const __m512i);
        let t = _mm512_dpbusd_epi32(corr, wv, xv);
        *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_permutexvar_ps(idx, s[c]), *a);
    }
}

/// One activation row quantized per 32-value block as ggml's AVX quantizer does: `d = max|x| /
/// 127`, `q = x / d` rounded to even, stored as signed bytes in `q` with `d` in `dx` and, per run
/// of 4 values, `-128·Σq` in `corr` (8 lanes a block; see `super::q8::Acts`).
///
/// # Safety
/// The CPU must support avx512f, avx512bw, avx512vl and avx512vnni; `x` and `q` hold
/// `32·dx.len()` values and `corr` `8·dx.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn quantize(x: &[f32], q: &mut [u8], dx: &mut [f32], corr: &mut [i32]) {
    let k128 = _mm256_set1_epi8(i8::MIN);
    for (b, d) in dx.iter_mut().enumerate() {
        let p = x.as_ptr().add(b * 32);
        let v = [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))];
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
        *d = amax / 127.0;
        let id = _mm512_set1_ps(if *d != 0.0 { 1.0 / *d } else { 0.0 });
        // The default rounding mode (to nearest even); |q| ≤ 127, so the narrowing is exact.
        let qb = v.map(|v| _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v, id))));
        let qv = _mm256_set_m128i(qb[1], qb[0]);
        _mm256_storeu_si256(q.as_mut_ptr().add(b * 32) as *mut __m256i, qv);
        // The bytes 0x80 read as the unsigned 128: 128·Σ of each run of 4, negated.
        let s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), k128, qv);
        _mm256_storeu_si256(corr.as_mut_ptr().add(b * 8) as *mut __m256i, _mm256_sub_epi32(_mm256_setzero_si256(), s));
    }
}
