//! The AVX2 + FMA + F16C kernels (8 f32 lanes, 16 registers). Callers check the features first
//! (`super::super::cpu`).

use std::arch::x86_64::*;

use half::f16;

/// Loads 8 weights starting at `p` as f32.
pub trait Load8 {
    /// # Safety
    /// `p..p + 8` must be readable, and the CPU must support avx2 and f16c.
    unsafe fn load8(p: *const Self) -> __m256;
}
impl Load8 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable values (unaligned load).
        unsafe { _mm256_loadu_ps(p) }
    }
}
impl Load8 for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable halves (16 bytes) and F16C.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
}

/// Dot products of `R` activation rows with one q8_0 weight row. With few rows, each row
/// spreads its sums over several accumulators so the FMA latency does not serialise a block.
///
/// # Safety
/// The CPU must support avx2, fma and f16c; `x` must hold `R` rows of `k = 32 · row.len()` values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8<const R: usize>(x: &[f32], k: usize, row: &[super::Q8Block]) -> [f32; R] {
    let na = match R {
        1 => 4,
        2 => 2,
        _ => 1,
    };
    let mut acc = [[_mm256_setzero_ps(); 4]; R];
    let px = x.as_ptr();
    let pw = row.as_ptr();
    for b in 0..row.len() {
        let blk = &*pw.add(b);
        // A hint only: near the end it points past the row, so the pointer is formed with wrapping_add
        // (`add` past the allocation would be undefined behaviour even unread).
        _mm_prefetch::<_MM_HINT_T0>(pw.wrapping_add(b + 48) as *const i8);
        // The f16 scale to f32 in a register (F16C); `f16::to_f32` may be a call.
        let bits = std::ptr::read_unaligned(std::ptr::addr_of!(blk.d) as *const u16);
        let d = _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)));
        let q = blk.qs.as_ptr() as *const __m128i;
        let lo = _mm_loadu_si128(q);
        let hi = _mm_loadu_si128(q.add(1));
        let w: [__m256; 4] = [
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))),
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))),
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))),
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))),
        ];
        let base = b * 32;
        for (r, ar) in acc.iter_mut().enumerate() {
            let xr = px.add(r * k + base);
            for (c, wc) in w.iter().enumerate() {
                let a = c % na;
                ar[a] = _mm256_fmadd_ps(_mm256_loadu_ps(xr.add(8 * c)), *wc, ar[a]);
            }
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        let s = _mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3]));
        out[r] = hsum(s);
    }
    out
}

/// The sum of the 8 lanes.
///
/// # Safety
/// The CPU must support avx.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// Dot products of `R` activation rows (`x`, `R × k`) with `RW` weight rows of length `k`.
///
/// # Safety
/// The CPU must support avx2, fma and f16c; `x.len() ≥ R·k` and every `w[c].len() ≥ k`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dots<const R: usize, const RW: usize, W: Load8 + super::WeightElem>(
    x: &[f32],
    k: usize,
    w: [&[W]; RW],
) -> [[f32; RW]; R] {
    let mut acc = [[_mm256_setzero_ps(); RW]; R];
    let k8 = k & !7;
    let px = x.as_ptr();
    let pw: [*const W; RW] = std::array::from_fn(|c| w[c].as_ptr());
    let mut i = 0;
    // The hardware prefetcher alone falls behind, so each weight row is prefetched at the same
    // offset in the next group (`RW` rows on), where this loop reads next, one line per 64 bytes
    // consumed. (A fixed byte distance lands, for short rows, on lines another row of the group is
    // already loading; that left f16 decode at 64% of the bandwidth bound.)
    let ahead = RW * k;
    let line = 64 / std::mem::size_of::<W>();
    while i < k8 {
        if i % line == 0 {
            for p in pw.iter() {
                // A hint only, possibly past the matrix: wrapping_add, as `add` out of bounds is UB.
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i + ahead) as *const i8);
            }
        }
        let wv: [__m256; RW] = std::array::from_fn(|c| W::load8(pw[c].add(i)));
        for (r, ar) in acc.iter_mut().enumerate() {
            let xv = _mm256_loadu_ps(px.add(r * k + i));
            for (a, wc) in ar.iter_mut().zip(&wv) {
                *a = _mm256_fmadd_ps(xv, *wc, *a);
            }
        }
        i += 8;
    }
    let mut out = [[0f32; RW]; R];
    for r in 0..R {
        for c in 0..RW {
            let mut s = hsum(acc[r][c]);
            for t in k8..k {
                s += *x.get_unchecked(r * k + t) * w[c].get_unchecked(t).to_f32();
            }
            out[r][c] = s;
        }
    }
    out
}
