//! The AVX-512F kernels (16 f32 lanes, 32 registers: room for 8 activation rows against 2 weight
//! rows of accumulators). Callers check the features first (`super::super::cpu`).
//!
//! Decode streams every weight once, so these are bound by how early the weights arrive: each
//! kernel issues one software prefetch per 64-byte line it consumes, aimed where the same kernel
//! will read next (see each kernel), because the hardware prefetcher alone reached only 40–65% of
//! the read bandwidth on f16 and q8_0 weights.

use std::arch::x86_64::*;

use half::f16;

/// Loads 16 weights starting at `p` as f32.
pub trait Load16 {
    /// # Safety
    /// `p..p + 16` must be readable, and the CPU must support avx512f.
    unsafe fn load16(p: *const Self) -> __m512;
}
impl Load16 for f32 {
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable values (unaligned load).
        unsafe { _mm512_loadu_ps(p) }
    }
}
impl Load16 for f16 {
    #[inline(always)]
    unsafe fn load16(p: *const f16) -> __m512 {
        // SAFETY: the caller guarantees 16 readable halves (32 bytes).
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
}

/// Dot products of `R` activation rows (`x`, `R × k`) with the `RW` consecutive weight rows at
/// `w` (`RW·k` values). Each accumulator is independent, so `RW` does not change any result either. Each (activation row, weight row) pair has one accumulator and the same
/// order of operations whatever `R`, so a row's result does not depend on how many rows share the
/// call.
///
/// The prefetch for each weight row runs `RW` rows ahead: the same offset in the next group, which
/// is where this loop reads next. (A fixed byte distance lands, for short rows, on the line another
/// row is already loading, and leaves the next group's later rows to the hardware.)
///
/// # Safety
/// The CPU must support avx512f (and avx2, fma, f16c); `x.len() ≥ R·k` and `w.len() ≥ RW·k`.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn dots<const R: usize, const RW: usize, W: Load16 + super::WeightElem>(
    x: &[f32],
    k: usize,
    w: &[W],
) -> [[f32; RW]; R] {
    let mut acc = [[_mm512_setzero_ps(); RW]; R];
    // Values per 64-byte line (16 f32, 32 f16): the loop takes one line of each row per turn.
    let line = 64 / std::mem::size_of::<W>();
    let k16 = k & !15;
    let px = x.as_ptr();
    let pw: [*const W; RW] = std::array::from_fn(|c| w.as_ptr().add(c * k));
    let ahead = RW * k;
    let mut i = 0;
    while i < k16 {
        if i % line == 0 {
            for p in pw {
                // A hint only, possibly past the matrix: wrapping_add, as `add` out of bounds is UB.
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i + ahead) as *const i8);
            }
        }
        let wv: [__m512; RW] = std::array::from_fn(|c| W::load16(pw[c].add(i)));
        for (r, ar) in acc.iter_mut().enumerate() {
            let xv = _mm512_loadu_ps(px.add(r * k + i));
            for c in 0..RW {
                ar[c] = _mm512_fmadd_ps(xv, wv[c], ar[c]);
            }
        }
        i += 16;
    }
    let mut out = [[0f32; RW]; R];
    for r in 0..R {
        for c in 0..RW {
            let mut s = _mm512_reduce_add_ps(acc[r][c]);
            for t in k16..k {
                s += *x.get_unchecked(r * k + t) * w.get_unchecked(c * k + t).to_f32();
            }
            out[r][c] = s;
        }
    }
    out
}

/// Dot products of `R` activation rows with one q8_0 weight row: each block's 32 values are widened
/// to f32 in registers (`vpmovsxbd` + `vcvtdq2ps`) and scaled once, then dotted with every
/// activation row. Every row keeps two accumulators (a block's first and second 16 values) and
/// the same order of operations whatever `R`, so a row's result does not depend on `R`. The
/// products `d·q` are exact in f32 (11-bit by 8-bit), so this equals the dequantized f32 dot up to
/// summation order.
///
/// # Safety
/// The CPU must support avx512f (and avx2, fma, f16c); `x` must hold `R` rows of
/// `k = 32 · row.len()` values.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn q8<const R: usize>(x: &[f32], k: usize, row: &[super::Q8Block]) -> [f32; R] {
    // Rows follow each other in memory, so a fixed distance ahead (~4 KiB, where 2–8 KiB measured
    // alike) runs into the next row's blocks as this one ends.
    const AHEAD: usize = 4096 / std::mem::size_of::<super::Q8Block>();
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let px = x.as_ptr();
    let pw = row.as_ptr();
    for b in 0..row.len() {
        let blk = pw.add(b);
        // Blocks are 34 bytes, so one per block is about two per line: cheap, and never a gap.
        _mm_prefetch::<_MM_HINT_T0>(pw.wrapping_add(b + AHEAD) as *const i8);
        // The f16 scale to f32 in a register (F16C), broadcast; `f16::to_f32` may be a call.
        let bits = std::ptr::read_unaligned(std::ptr::addr_of!((*blk).d) as *const u16);
        let d = _mm512_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)));
        let q = std::ptr::addr_of!((*blk).qs) as *const __m128i;
        let w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(q))));
        let w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(q.add(1)))));
        let base = b * 32;
        for (r, ar) in acc.iter_mut().enumerate() {
            let xr = px.add(r * k + base);
            ar[0] = _mm512_fmadd_ps(_mm512_loadu_ps(xr), w0, ar[0]);
            ar[1] = _mm512_fmadd_ps(_mm512_loadu_ps(xr.add(16)), w1, ar[1]);
        }
    }
    let mut out = [0f32; R];
    for (o, ar) in out.iter_mut().zip(&acc) {
        *o = _mm512_reduce_add_ps(_mm512_add_ps(ar[0], ar[1]));
    }
    out
}
