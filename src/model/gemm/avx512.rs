//! The AVX-512F register tile of the prefill GEMM: 14 packed tokens (broadcast one value at a time)
//! against 32 packed weight rows (two 16-lane registers), 28 accumulators.

use std::arch::x86_64::*;

use super::{MR, NR};

/// `c[r·ldc + j] = (bias[j] | c[r·ldc + j] | 0) + Σₚ a[p·MR + r] · b[p·NR + j]` for `r < rows`,
/// `j < cols`: `accumulate` adds to what `c` holds, otherwise `bias` (or zero) starts the sum.
///
/// # Safety
/// The CPU must support avx512f; `rows ≤ MR`, `cols ≤ NR`; `a` has `kc · MR` readable values and `b`
/// `kc · NR`; `c + r·ldc` has `cols` writable values for each `r < rows` (readable too when
/// `accumulate`); `bias`, when given, has at least `cols` values.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn tile(
    a: *const f32,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
) {
    const { assert!(NR == 32) };
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
