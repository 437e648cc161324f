//! The AVX-512F kernels (16 f32 lanes, 32 registers: room for 8 activation rows against 2 weight
//! rows of accumulators). Callers check the features first (`super::super::cpu`).
//!
//! Decode streams every weight once, so these are bound by how early the weights arrive: each
//! kernel issues one software prefetch per 64-byte line it consumes, aimed where the same kernel
//! will read next (see each kernel), because the hardware prefetcher alone reached only 40–65% of
//! the read bandwidth on f16 and q8_0 weights. The hints ask for L2 (`T1`), not L1: in perf
//! profiles the time of a stream prefetched into L1 sat on the prefetch instructions themselves,
//! waiting for one of L1's few miss buffers, and with L2 hints the decode attention took about a
//! fifth less time against the gemv, the q8_0 gemv ~5–9% less (`gemv_bench`), f32 and f16 alike.
//! (Measured on a Sapphire Rapids–class Xeon. One row of f16 weights, walked in strided runs, is
//! the exception: see `dots`.)

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

/// Above this many activation rows (and for f16 weights at 2 or more), each weight line is also
/// asked into L1 [`NEAR`] lines before its load, its data by then in L2 from the far hint. Every
/// added row cost a step about as much as its FMAs alone would take (16 FMAs per weight line at 8
/// rows): the loop no longer hid the wait for a line coming up from L2. In `gemv_bench` on
/// bloom-560m the near hint took 8 f32 rows from 103 to 95 ms and one f16 row from 45–49 to 42–43
/// ms (f16 widens in registers, so its loop has more to hide); f32 at 1 to 4 rows gained nothing or
/// lost up to 3%. (A near hint into L1 from memory is what stalled, see above: this one hits L2.)
const NEAR_FROM_ROWS: usize = 4;

/// Lines ahead of the load for the near (L1) hint: 4 gained less, 16 and 32 lost.
const NEAR: usize = 8;

/// Dot products of `R` activation rows (`x`, `R × k`) with the `RW` weight rows of `k` values at
/// `pw`. Each (activation row, weight row) pair has one accumulator and the same order of
/// operations whatever `R` and `RW`, so a row's result does not depend on how many rows share the
/// call, nor on the group size or which rows make a group.
///
/// The prefetch for each weight row runs `ahead` values on: where the walk ([`groups`]) reads
/// that row's stream next. (A fixed byte distance lands, for short rows, on the line another row
/// is already loading, and leaves the next group's later rows to the hardware.)
///
/// # Safety
/// The CPU must support avx512f (and avx2, fma, f16c); `x.len() ≥ R·k` and each `pw[c]` points at
/// `k` readable values.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn dots<const R: usize, const RW: usize, const PANEL: bool, W: Load16 + super::WeightElem>(
    x: &[f32],
    k: usize,
    pw: [*const W; RW],
    ahead: usize,
) -> [[f32; RW]; R] {
    // Where value `i` of a row lies from its first: in panels (`super::panels`) each line of 32 is
    // followed by the same line of the panel's other rows.
    use super::panels::{LINE, ROWS};
    let at = |i: usize| if PANEL { i + (i & !(LINE - 1)) * (ROWS - 1) } else { i };
    let mut acc = [[_mm512_setzero_ps(); RW]; R];
    // Values per 64-byte line (16 f32, 32 f16): the loop takes one line of each row per turn.
    let line = 64 / std::mem::size_of::<W>();
    let k16 = k & !15;
    let px = x.as_ptr();
    // One row of f16 weights (walked in strided runs, see `super::ONE_F16_ROW_RUN_BYTES`) hints each
    // line into L1 at the far distance and has no near hint, as the AVX2 kernels do: on a Zen 5 EPYC
    // that read at 60–62 GB/s in the host's fast phases and 46–47 in its slow ones, against 54–55
    // and 44 with the L2 and near hints (BENCHMARKS.md, Round 26).
    let one_f16_row = R == 1 && std::mem::size_of::<W>() < 4;
    let mut i = 0;
    while i < k16 {
        if i % line == 0 {
            for p in pw {
                // A hint only, possibly past the matrix: wrapping_add, as `add` out of bounds is UB.
                if one_f16_row {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at(i) + ahead) as *const i8);
                } else {
                    _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(at(i) + ahead) as *const i8);
                }
                if R > NEAR_FROM_ROWS || (std::mem::size_of::<W>() < 4 && !one_f16_row) {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at(i + NEAR * line)) as *const i8);
                }
            }
        }
        let wv: [__m512; RW] = std::array::from_fn(|c| W::load16(pw[c].add(at(i))));
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
                s += *x.get_unchecked(r * k + t) * (*pw[c].add(at(t))).to_f32();
            }
            out[r][c] = s;
        }
    }
    out
}

/// [`dots`] for `out.len()` groups of `RW` weight rows at `w`, group `g`'s results in `out[g][..R]`:
/// one call a task, so the next group's loads and prefetches follow at once (a call per group cost
/// a prologue, spills and a return 125 000 times in an LM head).
///
/// The rows go in runs of `RW·s`, each in `s` phases: phase `p` of a run takes rows `p + s·c`
/// (`c < RW`) of the run as its group (`out[run·s + p]`), so stream `c` reads `s` consecutive rows
/// before the run moves on, and each row is hinted where its stream reads next: the following row,
/// or after the last phase the next run's. With `s = 1` a group is `RW` consecutive rows. (Why a
/// stride: see `super::ONE_F16_ROW_RUN_BYTES`.)
///
/// # Safety
/// As [`dots`], with `s ≥ 1`, `out.len()` a multiple of `s`, `w.len() ≥ out.len()·RW·k`, and `R ≤ 8`.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn groups<const R: usize, const RW: usize, W: Load16 + super::WeightElem>(
    x: &[f32],
    k: usize,
    w: &[W],
    s: usize,
    out: &mut [[[f32; RW]; 8]],
) {
    for (g, o) in out.iter_mut().enumerate() {
        let (run, p) = (g / s, g % s);
        let first = run * RW * s + p;
        let pw: [*const W; RW] = std::array::from_fn(|c| w.as_ptr().add((first + s * c) * k));
        let ahead = if p + 1 < s { k } else { (RW * s - s + 1) * k };
        o[..R].copy_from_slice(&dots::<R, RW, false, W>(x, k, pw, ahead));
    }
}

/// Values of a panel stream (`super::panels`) ahead of the load that its rows' lines are hinted
/// at: 4 KiB, the distance of the bandwidth probe's single stream.
const PANEL_AHEAD: usize = 2048;

/// [`dots`] for the panels of f16 weights at `w` (`super::panels::F16Panels`, rows padded to
/// `k32` values), panel `g`'s rows' results in `out[g][..R]`. Each panel's rows are read in the
/// order [`groups`] reads plain rows, so the results are the same bits.
///
/// # Safety
/// As [`dots`], with `R ≤ 8`, `k ≤ k32`, and `w.len() ≥ out.len()·ROWS·k32`.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn panel_groups<const R: usize>(
    x: &[f32],
    k: usize,
    w: &[f16],
    k32: usize,
    out: &mut [[[f32; super::panels::ROWS]; 8]],
) {
    use super::panels::{LINE, ROWS};
    for (g, o) in out.iter_mut().enumerate() {
        let base = w.as_ptr().add(g * ROWS * k32);
        let pw: [*const f16; ROWS] = std::array::from_fn(|c| base.add(c * LINE));
        o[..R].copy_from_slice(&dots::<R, ROWS, true, f16>(x, k, pw, PANEL_AHEAD));
    }
}
