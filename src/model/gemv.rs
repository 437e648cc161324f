//! Few-row matrix products for decode: `y = x · Wᵀ` with `x` a handful of rows (one per path) and
//! `W` the `out × in` weight, f32 or f16, streamed from memory exactly once per call.
//!
//! Why not candle's GEMM: for a few rows it packs the whole weight into its own layout first, so a
//! batched step reads (and writes) every weight twice or more, and 8 paths ran 5x slower per step
//! than one. Here each pair of weight rows is loaded once into registers/L1 and dotted with every
//! activation row, so one step costs about one pass over the weights whatever the path count.
//! f16 weights are widened to f32 in registers (F16C) and accumulated in f32.
//! SIMD is chosen at run time (AVX2+FMA+F16C), with a portable fallback.

use half::f16;
use rayon::prelude::*;

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
}

impl WeightElem for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const R: usize, const RW: usize>(x: &[f32], k: usize, w: [&[f32]; RW]) -> [[f32; RW]; R] {
        avx2::dots::<R, RW, f32>(x, k, w)
    }
}

impl WeightElem for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const R: usize, const RW: usize>(x: &[f32], k: usize, w: [&[f16]; RW]) -> [[f32; RW]; R] {
        avx2::dots::<R, RW, f16>(x, k, w)
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y[r·n + j] = Σᵢ x[r·k + i] · w[j·k + i]` for `m = x.len() / k` rows and `n = w.len() / k` outputs.
pub fn matmul_t<W: WeightElem>(x: &[f32], w: &[W], k: usize, y: &mut [f32]) {
    let m = x.len() / k;
    let n = w.len() / k;
    assert!(x.len() == m * k && w.len() == n * k && y.len() == m * n, "gemv: mismatched lengths");
    // Tasks own disjoint column ranges of y; collect per-task results and scatter them after, so
    // no two tasks write the same memory.
    let tasks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .map(|t| {
            let j0 = t * ROWS_PER_TASK;
            let j1 = n.min(j0 + ROWS_PER_TASK);
            let mut out = vec![0f32; m * (j1 - j0)];
            block(x, m, k, &w[j0 * k..j1 * k], &mut out);
            (j0, out)
        })
        .collect();
    for (j0, out) in tasks {
        let cols = out.len() / m.max(1);
        for r in 0..m {
            y[r * n + j0..r * n + j0 + cols].copy_from_slice(&out[r * cols..(r + 1) * cols]);
        }
    }
}

/// One task: all `m` rows of `x` against `w`'s rows; `out` is `m × rows` row-major.
///
/// Up to 4 activation rows go with pairs of weight rows (8 accumulators), 5 to 8 with one weight row
/// at a time (up to 8 accumulators), so that for up to 8 paths each weight row is read in a single
/// uninterrupted pass, which keeps the memory stream (and the prefetcher) busy.
fn block<W: WeightElem>(x: &[f32], m: usize, k: usize, w: &[W], out: &mut [f32]) {
    let rows = w.len() / k;
    let row = |j: usize| &w[j * k..(j + 1) * k];
    if m <= 4 {
        let mut j = 0;
        while j + 1 < rows {
            let pair = [row(j), row(j + 1)];
            let mut d = [[0f32; 2]; 4];
            match m {
                4 => d = dots::<4, 2, W>(x, k, pair),
                3 => d[..3].copy_from_slice(&dots::<3, 2, W>(x, k, pair)),
                2 => d[..2].copy_from_slice(&dots::<2, 2, W>(x, k, pair)),
                _ => d[..1].copy_from_slice(&dots::<1, 2, W>(x, k, pair)),
            }
            for (r, v) in d[..m].iter().enumerate() {
                out[r * rows + j] = v[0];
                out[r * rows + j + 1] = v[1];
            }
            j += 2;
        }
        if j < rows {
            one_row(x, m, k, row(j), j, rows, out);
        }
    } else {
        for j in 0..rows {
            one_row(x, m, k, row(j), j, rows, out);
        }
    }
}

/// Column `j` of `out` (`m × rows`): every activation row against weight row `wj`, 8 rows at a time.
fn one_row<W: WeightElem>(x: &[f32], m: usize, k: usize, wj: &[W], j: usize, rows: usize, out: &mut [f32]) {
    let mut r = 0;
    while r < m {
        let take = (m - r).min(8);
        let xs = &x[r * k..(r + take) * k];
        let mut d = [[0f32; 1]; 8];
        match take {
            8 => d = dots::<8, 1, W>(xs, k, [wj]),
            7 => d[..7].copy_from_slice(&dots::<7, 1, W>(xs, k, [wj])),
            6 => d[..6].copy_from_slice(&dots::<6, 1, W>(xs, k, [wj])),
            5 => d[..5].copy_from_slice(&dots::<5, 1, W>(xs, k, [wj])),
            4 => d[..4].copy_from_slice(&dots::<4, 1, W>(xs, k, [wj])),
            3 => d[..3].copy_from_slice(&dots::<3, 1, W>(xs, k, [wj])),
            2 => d[..2].copy_from_slice(&dots::<2, 1, W>(xs, k, [wj])),
            _ => d[..1].copy_from_slice(&dots::<1, 1, W>(xs, k, [wj])),
        }
        for (i, v) in d[..take].iter().enumerate() {
            out[(r + i) * rows + j] = v[0];
        }
        r += take;
    }
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
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    /// Loads 8 weights starting at `p` as f32.
    pub trait Load8 {
        unsafe fn load8(p: *const Self) -> __m256;
    }
    impl Load8 for f32 {
        #[inline(always)]
        unsafe fn load8(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
    }
    impl Load8 for f16 {
        #[inline(always)]
        unsafe fn load8(p: *const f16) -> __m256 {
            _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
        }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dots<const R: usize, const RW: usize, W: Load8 + super::WeightElem>(x: &[f32], k: usize, w: [&[W]; RW]) -> [[f32; RW]; R] {
        let mut acc = [[_mm256_setzero_ps(); RW]; R];
        let k8 = k & !7;
        let px = x.as_ptr();
        let pw: [*const W; RW] = std::array::from_fn(|c| w[c].as_ptr());
        let mut i = 0;
        while i < k8 {
            let wv: [__m256; RW] = std::array::from_fn(|c| W::load8(pw[c].add(i)));
            for r in 0..R {
                let xv = _mm256_loadu_ps(px.add(r * k + i));
                for c in 0..RW {
                    acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
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
}

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
