//! The AVX-512F register tile of the prefill GEMM: 14 packed tokens (broadcast one value at a time)
//! against 32 packed weight rows (two 16-lane registers), 28 accumulators.

use std::arch::x86_64::*;

use super::{Tile, MR, NR};

/// The tile `t` (see [`Tile`]) on AVX-512.
///
/// # Safety
/// The CPU must support avx512f; `t` must be valid.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile(t: &Tile) {
    const { assert!(NR == 32) };
    let &Tile { a, b, kc, c, ldc, rows, cols, bias, accumulate } = t;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let mut ap = a;
    let mut bp = b;
    for _ in 0..kc {
        // SAFETY (all loads): p < kc, within the packed panels the caller guarantees.
        let b0 = _mm512_loadu_ps(bp);
        let b1 = _mm512_loadu_ps(bp.add(16));
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ap.add(r));
            acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
            acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
        }
        ap = ap.add(MR);
        bp = bp.add(NR);
    }
    // Lanes past `cols` are masked off: the panel's padding never reaches memory.
    let full = if cols >= NR { u32::MAX } else { (1u32 << cols) - 1 };
    let (m0, m1) = (full as u16, (full >> 16) as u16);
    let (s0, s1) = match bias {
        Some(bv) => (_mm512_maskz_loadu_ps(m0, bv.as_ptr()), _mm512_maskz_loadu_ps(m1, bv.as_ptr().add(16))),
        None => (_mm512_setzero_ps(), _mm512_setzero_ps()),
    };
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        let o = c.add(r * ldc);
        let (base0, base1) =
            if accumulate { (_mm512_maskz_loadu_ps(m0, o), _mm512_maskz_loadu_ps(m1, o.add(16))) } else { (s0, s1) };
        _mm512_mask_storeu_ps(o, m0, _mm512_add_ps(base0, acc_r[0]));
        _mm512_mask_storeu_ps(o.add(16), m1, _mm512_add_ps(base1, acc_r[1]));
    }
}

/// Transposes a 16 × 16 block: row `i` of `src` (at `src + i·lds`) becomes column `i` of `dst`
/// (row `j` of `dst` at `dst + j·ldd`), of which the first `width` lanes are stored. Four rounds of
/// in-register shuffles instead of 256 scalar moves: the packing of both GEMM operands is a
/// transpose, and done one value at a time it cost a tenth of a prefill.
///
/// # Safety
/// The CPU must support avx512f; `src + i·lds` has 16 readable values for each `i < 16`, and
/// `dst + j·ldd` has `width ≤ 16` writable values for each `j < 16`.
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose16(src: *const f32, lds: usize, dst: *mut f32, ldd: usize, width: usize) {
    let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * lds)));
    // Pairs of rows interleaved: 2 × 2 blocks.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // 4 × 4 blocks within each 128-bit lane.
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let b = 4 * g;
        u[b] = _mm512_shuffle_ps::<0x44>(t[b], t[b + 2]);
        u[b + 1] = _mm512_shuffle_ps::<0xEE>(t[b], t[b + 2]);
        u[b + 2] = _mm512_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
        u[b + 3] = _mm512_shuffle_ps::<0xEE>(t[b + 1], t[b + 3]);
    }
    // 128-bit lanes: first across groups of 4 rows, then across groups of 8.
    let mut v = [_mm512_setzero_ps(); 16];
    for h in 0..2 {
        let b = 8 * h;
        for j in 0..4 {
            v[b + j] = _mm512_shuffle_f32x4::<0x88>(u[b + j], u[b + 4 + j]);
            v[b + 4 + j] = _mm512_shuffle_f32x4::<0xDD>(u[b + j], u[b + 4 + j]);
        }
    }
    let mask: __mmask16 = if width >= 16 { 0xffff } else { ((1u32 << width) - 1) as __mmask16 };
    for j in 0..8 {
        _mm512_mask_storeu_ps(dst.add(j * ldd), mask, _mm512_shuffle_f32x4::<0x88>(v[j], v[8 + j]));
        _mm512_mask_storeu_ps(dst.add((8 + j) * ldd), mask, _mm512_shuffle_f32x4::<0xDD>(v[j], v[8 + j]));
    }
}
