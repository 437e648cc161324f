//! Few-row matrix products for decode: `y = x · Wᵀ` with `x` a handful of rows (one per path) and
//! `W` the `out × in` weight, f32 or f16, streamed from memory exactly once per call.
//!
//! Why not candle's GEMM: for a few rows it packs the whole weight into its own layout first, so a
//! batched step reads (and writes) every weight twice or more, and 8 paths ran 5x slower per step
//! than one. Here each pair of weight rows is loaded once into registers/L1 and dotted with every
//! activation row, so one step costs about one pass over the weights whatever the path count.
//! f16 weights are widened to f32 in registers (F16C) and accumulated in f32.
//! SIMD is chosen at run time from `super::cpu::features()`, in this one dispatch: AVX-512 for 5 to
//! 8 rows (`avx512`), AVX2+FMA+F16C otherwise (`avx2`), a portable loop elsewhere.

use half::f16;

/// Weight rows handed to one rayon task: enough to amortise scheduling, few enough to balance.
const ROWS_PER_TASK: usize = 64;

/// Above this many activation rows, a blocked GEMM (candle's) is the better tool.
pub const MAX_ROWS: usize = 16;

/// Element types a weight matrix may hold.
pub trait WeightElem: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    /// Dot products of `R` activation rows with `RW` weight rows, using AVX2/FMA/F16C.
    ///
    /// # Safety
    /// The CPU must support avx2, fma and f16c; weight rows must have length `k` (x rows: `R·k`).
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const R: usize, const RW: usize>(x: &[f32], k: usize, w: [&[Self]; RW]) -> [[f32; RW]; R];
    /// As `dots_avx2` with AVX-512 (32 registers: room for 8 rows × 2 weight rows of accumulators).
    ///
    /// # Safety
    /// The CPU must support avx512f; lengths as for `dots_avx2`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx512<const R: usize>(x: &[f32], k: usize, w: [&[Self]; 2]) -> [[f32; 2]; R];
}

impl WeightElem for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const R: usize, const RW: usize>(x: &[f32], k: usize, w: [&[f32]; RW]) -> [[f32; RW]; R] {
        // SAFETY: the caller upholds `dots_avx2`'s contract, which is `avx2::dots`'s.
        avx2::dots::<R, RW, f32>(x, k, w)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx512<const R: usize>(x: &[f32], k: usize, w: [&[f32]; 2]) -> [[f32; 2]; R] {
        // SAFETY: the caller upholds `dots_avx512`'s contract, which is `avx512::dots`'s.
        avx512::dots::<R, f32>(x, k, w)
    }
}

impl WeightElem for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const R: usize, const RW: usize>(x: &[f32], k: usize, w: [&[f16]; RW]) -> [[f32; RW]; R] {
        // SAFETY: the caller upholds `dots_avx2`'s contract, which is `avx2::dots`'s.
        avx2::dots::<R, RW, f16>(x, k, w)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx512<const R: usize>(x: &[f32], k: usize, w: [&[f16]; 2]) -> [[f32; 2]; R] {
        // SAFETY: the caller upholds `dots_avx512`'s contract, which is `avx512::dots`'s.
        avx512::dots::<R, f16>(x, k, w)
    }
}

fn has_avx512() -> bool {
    super::cpu::features().avx512
}

fn has_avx2() -> bool {
    super::cpu::features().avx2
}

/// `y[r·n + j] = Σᵢ x[r·k + i] · w[j·k + i]` for `m = x.len() / k` rows and `n = w.len() / k` outputs.
///
/// Runs on candle's barrier pool, the same threads its quantized kernels and element-wise ops use,
/// so a decode step never has a second pool's threads competing for the cores.
pub fn matmul_t<W: WeightElem>(x: &[f32], w: &[W], k: usize, y: &mut [f32]) {
    let m = x.len() / k;
    let n = w.len() / k;
    assert!(x.len() == m * k && w.len() == n * k && y.len() == m * n, "gemv: mismatched lengths");
    let y_ptr = y.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(ROWS_PER_TASK), |tasks| {
        let mut out = vec![0f32; m * ROWS_PER_TASK];
        for t in tasks {
            let j0 = t * ROWS_PER_TASK;
            let j1 = n.min(j0 + ROWS_PER_TASK);
            let cols = j1 - j0;
            let out = &mut out[..m * cols];
            block(x, m, k, &w[j0 * k..j1 * k], out);
            for r in 0..m {
                // SAFETY: task t alone writes columns j0..j1 of every row of y, which has m·n elements.
                let dst = unsafe { std::slice::from_raw_parts_mut((y_ptr as *mut f32).add(r * n + j0), cols) };
                dst.copy_from_slice(&out[r * cols..(r + 1) * cols]);
            }
        }
    });
}

/// One task: all `m` rows of `x` against `w`'s rows; `out` is `m × rows` row-major.
///
/// Weight rows go in groups of `RW` so that `R·RW` independent accumulators hide the FMA latency:
/// 4 weight rows for 1 or 2 activation rows, 2 for 3 or 4, 1 for 5 to 8. Every activation row is
/// dotted with a group in one pass, so for up to 8 paths each weight is read once, in order.
fn block<W: WeightElem>(x: &[f32], m: usize, k: usize, w: &[W], out: &mut [f32]) {
    let rows = w.len() / k;
    let done = match m {
        1 | 2 => groups::<4, W>(x, m, k, w, out),
        3 | 4 => groups::<2, W>(x, m, k, w, out),
        5..=8 if has_avx512() => groups512::<W>(x, m, k, w, out),
        _ => 0,
    };
    for j in done..rows {
        let mut r = 0;
        while r < m {
            let take = (m - r).min(8);
            let xs = &x[r * k..(r + take) * k];
            let d = dots_rows::<1, W>(xs, take, k, [&w[j * k..(j + 1) * k]]);
            for (i, v) in d[..take].iter().enumerate() {
                out[(r + i) * rows + j] = v[0];
            }
            r += take;
        }
    }
}

/// Whole groups of `RW` weight rows against all `m` (≤ 4) activation rows; returns the rows done.
fn groups<const RW: usize, W: WeightElem>(x: &[f32], m: usize, k: usize, w: &[W], out: &mut [f32]) -> usize {
    let rows = w.len() / k;
    let full = rows / RW * RW;
    let mut j = 0;
    while j < full {
        let ws: [&[W]; RW] = std::array::from_fn(|c| &w[(j + c) * k..(j + c + 1) * k]);
        let d = dots_rows::<RW, W>(x, m, k, ws);
        for (r, v) in d[..m].iter().enumerate() {
            out[r * rows + j..r * rows + j + RW].copy_from_slice(v);
        }
        j += RW;
    }
    full
}

/// 5 to 8 activation rows against pairs of weight rows with AVX-512; returns the rows done.
fn groups512<W: WeightElem>(x: &[f32], m: usize, k: usize, w: &[W], out: &mut [f32]) -> usize {
    let rows = w.len() / k;
    let full = rows / 2 * 2;
    let mut j = 0;
    while j < full {
        let ws = [&w[j * k..(j + 1) * k], &w[(j + 1) * k..(j + 2) * k]];
        let mut d = [[0f32; 2]; 8];
        // SAFETY: has_avx512() was checked by the caller; lengths are as required.
        unsafe {
            match m {
                8 => d = W::dots_avx512::<8>(x, k, ws),
                7 => d[..7].copy_from_slice(&W::dots_avx512::<7>(x, k, ws)),
                6 => d[..6].copy_from_slice(&W::dots_avx512::<6>(x, k, ws)),
                _ => d[..5].copy_from_slice(&W::dots_avx512::<5>(x, k, ws)),
            }
        }
        for (r, v) in d[..m].iter().enumerate() {
            out[r * rows + j..r * rows + j + 2].copy_from_slice(v);
        }
        j += 2;
    }
    full
}

/// `dots` for a run-time row count `m` ≤ 8 (unused entries of the result are zero).
fn dots_rows<const RW: usize, W: WeightElem>(x: &[f32], m: usize, k: usize, w: [&[W]; RW]) -> [[f32; RW]; 8] {
    let mut d = [[0f32; RW]; 8];
    match m {
        8 => d = dots::<8, RW, W>(x, k, w),
        7 => d[..7].copy_from_slice(&dots::<7, RW, W>(x, k, w)),
        6 => d[..6].copy_from_slice(&dots::<6, RW, W>(x, k, w)),
        5 => d[..5].copy_from_slice(&dots::<5, RW, W>(x, k, w)),
        4 => d[..4].copy_from_slice(&dots::<4, RW, W>(x, k, w)),
        3 => d[..3].copy_from_slice(&dots::<3, RW, W>(x, k, w)),
        2 => d[..2].copy_from_slice(&dots::<2, RW, W>(x, k, w)),
        _ => d[..1].copy_from_slice(&dots::<1, RW, W>(x, k, w)),
    }
    d
}

fn dots<const R: usize, const RW: usize, W: WeightElem>(x: &[f32], k: usize, w: [&[W]; RW]) -> [[f32; RW]; R] {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the features were detected above; lengths are as `dots_avx2` requires.
        return unsafe { W::dots_avx2::<R, RW>(x, k, w) };
    }
    let mut out = [[0f32; RW]; R];
    for (r, o) in out.iter_mut().enumerate() {
        let xr = &x[r * k..(r + 1) * k];
        for (c, wc) in w.iter().enumerate() {
            o[c] = xr.iter().zip(wc.iter()).map(|(a, b)| a * b.to_f32()).sum();
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod avx2;

/// A q8_0 block as ggml lays it out (and candle's `BlockQ8_0`, `#[repr(C)]`): an f16 scale and 32
/// signed 8-bit values.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Q8Block {
    pub d: f16,
    pub qs: [i8; 32],
}
const _: () = assert!(std::mem::size_of::<Q8Block>() == 34);

/// [`matmul_t`] for q8_0 weights (`n` rows of `k / 32` blocks): each block is widened to f32 in
/// registers and dotted with every activation row, so a few rows cost one pass over the blocks
/// (candle's q8_0 kernel redoes its integer dot products per row, 6x slower for 8 rows).
pub fn matmul_t_q8(x: &[f32], w: &[Q8Block], k: usize, y: &mut [f32]) {
    let m = x.len() / k;
    let per_row = k / 32;
    let n = w.len() / per_row.max(1);
    assert!(
        k.is_multiple_of(32) && x.len() == m * k && w.len() == n * per_row && y.len() == m * n,
        "gemv q8_0: mismatched lengths"
    );
    let y_ptr = y.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(ROWS_PER_TASK), |tasks| {
        for t in tasks {
            let j0 = t * ROWS_PER_TASK;
            let j1 = n.min(j0 + ROWS_PER_TASK);
            for j in j0..j1 {
                let row = &w[j * per_row..(j + 1) * per_row];
                let mut r = 0;
                while r < m {
                    let take = (m - r).min(8);
                    let d = q8_dots(&x[r * k..(r + take) * k], take, k, row);
                    for (i, v) in d[..take].iter().enumerate() {
                        // SAFETY: task t alone writes columns j0..j1 of y (m·n elements).
                        unsafe { *(y_ptr as *mut f32).add((r + i) * n + j) = *v };
                    }
                    r += take;
                }
            }
        }
    });
}

fn q8_dots(x: &[f32], m: usize, k: usize, row: &[Q8Block]) -> [f32; 8] {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        let mut d = [0f32; 8];
        // SAFETY: features detected; x holds m rows of k = 32·row.len() values.
        unsafe {
            match m {
                8 => d = avx2::q8::<8>(x, k, row),
                7 => d[..7].copy_from_slice(&avx2::q8::<7>(x, k, row)),
                6 => d[..6].copy_from_slice(&avx2::q8::<6>(x, k, row)),
                5 => d[..5].copy_from_slice(&avx2::q8::<5>(x, k, row)),
                4 => d[..4].copy_from_slice(&avx2::q8::<4>(x, k, row)),
                3 => d[..3].copy_from_slice(&avx2::q8::<3>(x, k, row)),
                2 => d[..2].copy_from_slice(&avx2::q8::<2>(x, k, row)),
                _ => d[..1].copy_from_slice(&avx2::q8::<1>(x, k, row)),
            }
        }
        return d;
    }
    let mut d = [0f32; 8];
    for (r, o) in d[..m].iter_mut().enumerate() {
        let xr = &x[r * k..(r + 1) * k];
        *o = row
            .iter()
            .enumerate()
            .map(|(b, blk)| blk.d.to_f32() * blk.qs.iter().zip(&xr[b * 32..]).map(|(q, v)| *q as f32 * v).sum::<f32>())
            .sum();
    }
    d
}

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], k: usize) -> Vec<f32> {
        let (m, n) = (x.len() / k, w.len() / k);
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                y[r * n + j] = (0..k).map(|i| x[r * k + i] * w[j * k + i]).sum();
            }
        }
        y
    }

    #[test]
    fn q8_matches_dequantized_f32() {
        for &(m, n, k) in &[(1, 5, 32), (3, 70, 64), (8, 33, 256), (11, 9, 96)] {
            let w: Vec<Q8Block> = (0..n * k / 32)
                .map(|b| Q8Block {
                    d: f16::from_f32(0.01 * (b % 5 + 1) as f32),
                    qs: std::array::from_fn(|i| ((i * 7 + b) % 255) as i8),
                })
                .collect();
            let wf: Vec<f32> = w.iter().flat_map(|b| b.qs.iter().map(move |q| *q as f32 * b.d.to_f32())).collect();
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 10.0).collect();
            let want = naive(&x, &wf, k);
            let mut y = vec![0f32; m * n];
            matmul_t_q8(&x, &w, k, &mut y);
            let d = y.iter().zip(&want).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0f32, f32::max);
            assert!(d < 1e-4, "q8 {m}x{n}x{k}: {d}");
        }
    }

    #[test]
    fn matches_naive_for_odd_shapes_and_f16() {
        for &(m, n, k) in &[(1, 1, 1), (1, 7, 13), (3, 130, 64), (5, 129, 100), (8, 300, 1024), (16, 65, 40)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 10.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 17) as f32 - 8.0) / 16.0).collect();
            let want = naive(&x, &w, k);
            let mut y = vec![0f32; m * n];
            matmul_t(&x, &w, k, &mut y);
            let d = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(d < 1e-3 * (k as f32).sqrt(), "f32 {m}x{n}x{k}: {d}");
            // The f16 weights here are exact (multiples of 1/16), so only summation order differs.
            let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let mut yh = vec![0f32; m * n];
            matmul_t(&x, &wh, k, &mut yh);
            let d = yh.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(d < 1e-3 * (k as f32).sqrt(), "f16 {m}x{n}x{k}: {d}");
        }
    }
}
