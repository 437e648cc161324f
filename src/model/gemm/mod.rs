//! Many-row matrix products for prefill: `y = x · Wᵀ` with `x` the prompt's `m` activation rows (f32)
//! and `W` the `n × k` weight (f32 or f16), on AVX-512 where the CPU has it.
//!
//! Why not candle's GEMM: without a nightly compiler the `gemm` crate runs 8-wide AVX2 code, half of
//! what an AVX-512 core does, and an f16 weight had to be widened to a whole f32 copy first. Here
//! a 14 × 32 register tile (14 weight rows broadcast against 32 tokens held in two 16-lane registers,
//! 28 accumulators) runs over blocks of 256 of the inner dimension: the 14 weight rows' block (14 KiB)
//! stays in L1 while every token block passes, and the packed tokens' block stays in L2. The tile
//! is written output-major (`n × m`, tokens contiguous), so the kernel stores whole registers; one
//! cache-blocked transpose at the end gives `m × n`. f16 weights are widened per block in registers.
//!
//! One dispatch: [`matmul_t`] returns `false` where the CPU lacks AVX-512 (the caller then uses
//! candle's GEMM); the kernel itself lives in [`avx512`].

use half::f16;

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Weight rows per register tile.
pub(crate) const MR: usize = 14;
/// Tokens per register tile (two 16-lane registers).
pub(crate) const NR: usize = 32;
/// Inner-dimension block: the 14 weight rows' slice of it stays in L1.
const KC: usize = 256;
/// Weight-row tiles per parallel work unit.
const TILES_PER_TASK: usize = 2;

/// Element types a weight may hold here.
pub trait GemmWeight: Copy + Send + Sync + 'static {
    /// Widens `src` into `dst` (same length).
    fn widen(src: &[Self], dst: &mut [f32]);
    /// The slice itself when it already is f32 (read in place, no copy).
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
}

impl GemmWeight for f32 {
    fn widen(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn as_f32(s: &[f32]) -> Option<&[f32]> {
        Some(s)
    }
}

impl GemmWeight for f16 {
    fn widen(src: &[f16], dst: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        src.convert_to_f32_slice(dst);
    }
    fn as_f32(_: &[f16]) -> Option<&[f32]> {
        None
    }
}

/// Whether [`matmul_t`] runs on this CPU. `COTSCOPE_PREFILL_GEMM=candle` turns it off (to compare
/// against candle's GEMM in one sitting).
pub fn available() -> bool {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var("COTSCOPE_PREFILL_GEMM").is_ok_and(|v| v == "candle"));
    super::cpu::features().avx512 && !off
}

/// `y[i·n + j] = Σₚ x[i·k + p] · w[j·k + p]` for `m = x.len() / k` rows and `n = w.len() / k`
/// outputs. Returns `false` (and leaves `y` alone) when the CPU lacks AVX-512.
pub fn matmul_t<W: GemmWeight>(x: &[f32], w: &[W], k: usize, y: &mut [f32]) -> bool {
    let m = x.len() / k.max(1);
    let n = w.len() / k.max(1);
    assert!(k > 0 && x.len() == m * k && w.len() == n * k && y.len() == m * n, "gemm: mismatched lengths");
    if !available() || m == 0 || n == 0 {
        return m == 0 || n == 0;
    }
    let mp = m.next_multiple_of(NR);
    // Output-major result, tokens padded to whole tiles.
    let mut yt = vec![0f32; n * mp];
    let yt_ptr = yt.as_mut_ptr() as usize;
    let mut xt = vec![0f32; mp * KC];
    let tiles = n.div_ceil(MR);
    let mut p0 = 0;
    while p0 < k {
        let kc = KC.min(k - p0);
        pack_tokens(x, m, k, p0, kc, &mut xt);
        let xt = &xt;
        candle_core::utils::barrier_pool().execute_chunked(tiles.div_ceil(TILES_PER_TASK), |tasks| {
            let mut wbuf = vec![0f32; MR * KC];
            for t in tasks {
                for tile in t * TILES_PER_TASK..tiles.min((t + 1) * TILES_PER_TASK) {
                    let j0 = tile * MR;
                    let rows = MR.min(n - j0);
                    // SAFETY: avx512 was checked above; this task alone writes rows j0..j0+rows of yt
                    // (n × mp); `xt` holds mp tokens × kc and the weight rows have k ≥ p0 + kc values.
                    unsafe {
                        tile_rows(w, k, j0, rows, p0, kc, xt, mp, yt_ptr as *mut f32, p0 > 0, &mut wbuf);
                    }
                }
            }
        });
        p0 += kc;
    }
    transpose(&yt, n, mp, m, y);
    true
}

/// One tile of `rows` (≤ MR) weight rows from `j0` against every token block, inner block `p0..p0 + kc`.
///
/// # Safety
/// The CPU must support avx512f; `yt` points at an `n × mp` buffer whose rows `j0..j0 + rows` no
/// other thread touches; `xt` holds `mp × kc` packed tokens; `w` has rows of `k ≥ p0 + kc` values.
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows<W: GemmWeight>(
    w: &[W],
    k: usize,
    j0: usize,
    rows: usize,
    p0: usize,
    kc: usize,
    xt: &[f32],
    mp: usize,
    yt: *mut f32,
    accumulate: bool,
    wbuf: &mut [f32],
) {
    // Row r's block starts at `base + r·stride`: in the weight itself (f32), or widened into `wbuf`.
    let (base, stride): (*const f32, usize) = match W::as_f32(&w[j0 * k..(j0 + rows) * k]) {
        Some(f) => (f.as_ptr().add(p0), k),
        None => {
            for r in 0..rows {
                let src = &w[(j0 + r) * k + p0..(j0 + r) * k + p0 + kc];
                W::widen(src, &mut wbuf[r * kc..(r + 1) * kc]);
            }
            (wbuf.as_ptr(), kc)
        }
    };
    for b in 0..mp / NR {
        let xb = xt.as_ptr().add(b * NR * kc);
        let out = yt.add(j0 * mp + b * NR);
        #[cfg(target_arch = "x86_64")]
        avx512::tile(rows, base, stride, xb, kc, out, mp, accumulate);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (base, stride, xb, out, accumulate);
    }
}

/// Packs tokens' inner block `p0..p0 + kc` as `[mp / NR][kc][NR]` (zeros past row `m`): the kernel
/// then reads each step's 32 tokens as two contiguous registers.
fn pack_tokens(x: &[f32], m: usize, k: usize, p0: usize, kc: usize, xt: &mut [f32]) {
    let mp = m.next_multiple_of(NR);
    let xt = &mut xt[..mp * kc];
    for (b, blk) in xt.chunks_exact_mut(NR * kc).enumerate() {
        for t in 0..NR {
            let i = b * NR + t;
            if i < m {
                let row = &x[i * k + p0..i * k + p0 + kc];
                for (p, v) in row.iter().enumerate() {
                    blk[p * NR + t] = *v;
                }
            } else {
                for p in 0..kc {
                    blk[p * NR + t] = 0.0;
                }
            }
        }
    }
}

/// `y (m × n) = first m columns of yt (n × mp)ᵀ`, in 32 × 32 blocks so both sides stay in cache.
fn transpose(yt: &[f32], n: usize, mp: usize, m: usize, y: &mut [f32]) {
    const B: usize = 32;
    for i0 in (0..m).step_by(B) {
        for j0 in (0..n).step_by(B) {
            for i in i0..(i0 + B).min(m) {
                let dst = &mut y[i * n..(i + 1) * n];
                for j in j0..(j0 + B).min(n) {
                    dst[j] = yt[j * mp + i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], k: usize) -> Vec<f32> {
        let (m, n) = (x.len() / k, w.len() / k);
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64).sum::<f64>() as f32;
            }
        }
        y
    }

    #[test]
    fn matches_naive_on_ragged_shapes_f32_and_f16() {
        if !available() {
            eprintln!("no AVX-512 here: the kernel is not used (candle's GEMM is)");
            return;
        }
        for &(m, n, k) in &[(1, 1, 1), (17, 15, 40), (33, 29, 300), (70, 64, 513), (100, 3, 1024)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 10.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 17) as f32 - 8.0) / 16.0).collect();
            let want = naive(&x, &w, k);
            let mut y = vec![f32::NAN; m * n];
            assert!(matmul_t(&x, &w, k, &mut y));
            let d = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(d < 1e-4 * k as f32, "f32 {m}x{n}x{k}: {d}");
            let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect(); // exact in f16
            let mut yh = vec![f32::NAN; m * n];
            assert!(matmul_t(&x, &wh, k, &mut yh));
            let d = yh.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(d < 1e-4 * k as f32, "f16 {m}x{n}x{k}: {d}");
        }
    }
}
