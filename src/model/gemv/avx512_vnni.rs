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

/// Dot products of `R` quantized activation rows with `out.len()` consecutive q8_0 weight rows
/// (`qs`: their values as `q + 128`; `d`: their block scales) into `out[j][..R]`, one call a task
/// so the per-row cost is a loop turn, not a call (per-row calls cost 9% of a q8_0 step, 250880 of
/// them in the LM head). Each weight row goes two blocks per step: one 64-byte load of weights and,
/// per activation row, one `vpdpbusd` of the unsigned weights against the signed activations
/// starting from the row's `-128·Σx` lanes (`x.corr`), so each 8-lane half sums to the block's
/// exact integer dot; then one conversion and one FMA with the pair's two scales. Each row keeps
/// one accumulator (indexing two by the pair's parity spilled them to the stack; one FMA chain of 4
/// cycles a pair still outruns memory) and the same operations whatever `R`, so its result does not
/// depend on `R`.
///
/// Weights are prefetched into L2 4 KiB ahead, one hint per 64-byte line: rows follow each other in
/// memory, so the hints run on into the next row (the same reasons as `super::avx512`'s kernels;
/// 8 KiB ahead was no faster).
///
/// # Safety
/// The CPU must support avx512f, avx512bw, avx512vl, avx512vnni and f16c; `R ≤ 8`; `d.len()` is
/// `out.len()` rows of `nb` blocks and `qs.len() ≥ 32·d.len()`; `x` holds `R` rows of `x.nbp`
/// blocks (`x.nbp` a multiple of 16 and ≥ `nb`) with their corrections.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
pub unsafe fn q8<const R: usize>(x: &Rows, qs: &[u8], d: &[f16], out: &mut [[f32; 8]]) {
    const AHEAD: usize = 4096;
    let nb = d.len() / out.len();
    let (px, pdx, pc) = (x.q.as_ptr(), x.dx.as_ptr(), x.corr.as_ptr());
    for (j, o) in out.iter_mut().enumerate() {
        let pw = qs.as_ptr().add(j * nb * 32);
        let pd = (d.as_ptr() as *const u16).add(j * nb);
        let mut acc = [_mm512_setzero_ps(); R];
        let mut b0 = 0;
        while b0 < nb {
            let in_group = (nb - b0).min(16);
            // The group's weight scales; a short last group is masked (masked-off lanes read nothing).
            let h = if in_group == 16 {
                _mm256_loadu_si256(pd.add(b0) as *const __m256i)
            } else {
                _mm256_maskz_loadu_epi16(((1u32 << in_group) - 1) as u16, pd.add(b0) as *const i16)
            };
            // Scales are 1/16 of the bytes: one hint per group, as far ahead as the values' hints.
            _mm_prefetch::<_MM_HINT_T0>(pd.wrapping_add(b0 + AHEAD / 32) as *const i8);
            let dw = _mm512_cvtph_ps(h);
            let mut s = [_mm512_setzero_ps(); R];
            for (r, sr) in s.iter_mut().enumerate() {
                *sr = _mm512_mul_ps(dw, _mm512_loadu_ps(pdx.add(r * x.nbp + b0)));
            }
            for (p, lanes) in PAIR_LANES.iter().enumerate().take(in_group.div_ceil(2)) {
                let b = b0 + 2 * p;
                let wp = pw.add(b * 32);
                _mm_prefetch::<_MM_HINT_T1>(wp.wrapping_add(AHEAD) as *const i8);
                // An odd last block: only its 32 bytes; the zeros above meet padded activations,
                // whose values and corrections are 0.
                let wv = if b + 1 < nb {
                    _mm512_loadu_si512(wp as *const __m512i)
                } else {
                    _mm512_maskz_loadu_epi8(0xFFFF_FFFF, wp as *const i8)
                };
                let idx = _mm512_loadu_si512(lanes.as_ptr() as *const __m512i);
                for (r, ar) in acc.iter_mut().enumerate() {
                    let at = r * x.nbp + b;
                    let xv = _mm512_loadu_si512(px.add(at * 32) as *const __m512i);
                    let c = _mm512_loadu_si512(pc.add(at * 8) as *const __m512i);
                    let t = _mm512_dpbusd_epi32(c, wv, xv);
                    let sc = _mm512_permutexvar_ps(idx, s[r]);
                    *ar = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), sc, *ar);
                }
            }
            b0 += 16;
        }
        for (o, ar) in o.iter_mut().zip(&acc) {
            *o = _mm512_reduce_add_ps(*ar);
        }
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
