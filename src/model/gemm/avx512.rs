//! The AVX-512F register tile of the prefill GEMM: up to 14 weight rows (broadcast one value at a
//! time) against 32 tokens (two 16-lane registers), 28 accumulators.

use std::arch::x86_64::*;

use super::{MR, NR};

/// `out[r·ldo + t] (+)= Σₚ w_r[p] · xb[p·32 + t]` for `r < rows`, `t < 32`, `p < kc`, where row `r`
/// of the weight block starts at `w + r·stride`.
///
/// # Safety
/// The CPU must support avx512f; `rows ≤ MR`; `w + r·stride` has `kc` readable values for each
/// `r < rows`; `xb` has `kc · 32`; `out + r·ldo` has 32 writable values for each `r < rows`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile(
    rows: usize,
    w: *const f32,
    stride: usize,
    xb: *const f32,
    kc: usize,
    out: *mut f32,
    ldo: usize,
    accumulate: bool,
) {
    macro_rules! go {
        ($($r:literal),*) => {
            match rows {
                $($r => tile_n::<$r>(w, stride, xb, kc, out, ldo, accumulate),)*
                _ => {}
            }
        };
    }
    go!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
}

/// [`tile`] for a fixed row count, so the accumulators live in registers.
///
/// # Safety
/// As for [`tile`], with `R` rows.
#[target_feature(enable = "avx512f")]
unsafe fn tile_n<const R: usize>(
    w: *const f32,
    stride: usize,
    xb: *const f32,
    kc: usize,
    out: *mut f32,
    ldo: usize,
    accumulate: bool,
) {
    const { assert!(R <= MR && NR == 32) };
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let rows: [*const f32; R] = std::array::from_fn(|r| w.add(r * stride));
    for p in 0..kc {
        // SAFETY (all loads): p < kc, within the block the caller guarantees.
        let x0 = _mm512_loadu_ps(xb.add(p * NR));
        let x1 = _mm512_loadu_ps(xb.add(p * NR + 16));
        for r in 0..R {
            let wv = _mm512_set1_ps(*rows[r].add(p));
            acc[r][0] = _mm512_fmadd_ps(wv, x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(wv, x1, acc[r][1]);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let o = out.add(r * ldo);
        let (mut a0, mut a1) = (a[0], a[1]);
        if accumulate {
            a0 = _mm512_add_ps(a0, _mm512_loadu_ps(o));
            a1 = _mm512_add_ps(a1, _mm512_loadu_ps(o.add(16)));
        }
        _mm512_storeu_ps(o, a0);
        _mm512_storeu_ps(o.add(16), a1);
    }
}
