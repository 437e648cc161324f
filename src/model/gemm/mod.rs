//! Many-row matrix products for prefill: `y = x · Wᵀ (+ bias)` with `x` the prompt's `m` activation
//! rows (f32) and `W` the `n × k` weight (f32 or f16), on AVX-512 where the CPU has it, else AVX2.
//!
//! Why not candle's GEMM: without a nightly compiler the `gemm` crate runs 8-wide AVX2 code, half of
//! what an AVX-512 core does, and an f16 weight had to be widened to a whole f32 copy first.
//!
//! The layout is BLIS's. Per block of `KC` of the inner dimension:
//! - the tokens are packed as `[m / MR][KC][MR]` (shared by all threads, kept in L2), and
//! - each task packs one panel of `NR` weight rows as `[KC][NR]` (24 KiB, kept in L1; f16 is widened
//!   here), then runs the register tile over every token panel against it.
//!
//! Few tokens (a question after its template's cached exemplars) turn the loops around: all blocks
//! of the tokens are packed first, and each task takes its weight rows through every block before
//! the next panel, reading them from memory start to end (see [`Order`]).
//!
//! The tile is `MR = 14` tokens (each value broadcast) × `NR = 32` outputs (two 16-lane registers):
//! 28 accumulators, two loads and 14 broadcasts per 28 FMAs, all from sequential packed memory. Both
//! operands are packed because their natural rows lie a power-of-two apart (`k · 4` bytes): 14 such
//! streams fall into one L1 set and evict each other, which held the unpacked kernel to ~45% of peak.
//! Outputs are lanes, so the tile stores whole rows of `y` in place (no transpose, no scratch).
//!
//! One dispatch: [`matmul_t`] returns `false` where the CPU lacks AVX2 and FMA (the caller then
//! uses candle's GEMM); the tile lives in [`avx512`], and in [`avx2`] as 8-lane micro-tiles of it.

use half::f16;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// One register tile's operands: `c[r·ldc + j] = (bias[j] | c[r·ldc + j] | 0) + Σₚ a[p·MR + r] ·
/// b[p·NR + j]` for `r < rows`, `j < cols`; `accumulate` adds to what `c` holds, otherwise `bias`
/// (or zero) starts the sum.
///
/// A tile is valid when `rows ≤ MR`, `cols ≤ NR`; `a` has `kc · MR` readable values and `b`
/// `kc · NR`; `c + r·ldc` has `cols` writable values for each `r < rows` (readable too when
/// `accumulate`); `bias`, when given, has at least `cols` values.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Tile<'a> {
    /// `kc` packed token columns of `MR` values each.
    pub(crate) a: *const f32,
    /// `kc` packed weight columns of `NR` values each.
    pub(crate) b: *const f32,
    pub(crate) kc: usize,
    /// Output row 0, column 0.
    pub(crate) c: *mut f32,
    /// Values between output rows.
    pub(crate) ldc: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) accumulate: bool,
}

/// The register tile, for kernels that pack their own operands (prefill attention): AVX-512 where
/// the CPU has it, else AVX2.
///
/// # Safety
/// [`available`] must hold, and `t` must be valid (see [`Tile`]).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) unsafe fn tile(t: &Tile) {
    // SAFETY: the caller checked `available()` (AVX2 and FMA at least) and keeps the contract.
    unsafe {
        if super::cpu::features().avx512 {
            avx512::tile(t)
        } else {
            avx2::tile(t)
        }
    }
}

/// Transposes a `16 × 16` block as [`avx512::transpose16`] does (two by two `8 × 8` blocks on AVX2).
///
/// # Safety
/// [`available`] must hold; the operands as [`avx512::transpose16`] says.
#[cfg(target_arch = "x86_64")]
unsafe fn transpose16(src: *const f32, lds: usize, dst: *mut f32, ldd: usize, width: usize) {
    // SAFETY: as the caller guarantees; each 8 × 8 quarter reads and writes inside the 16 × 16 block.
    unsafe {
        if super::cpu::features().avx512 {
            return avx512::transpose16(src, lds, dst, ldd, width);
        }
        for (ri, ci) in [(0, 0), (0, 8), (8, 0), (8, 8)] {
            // Source rows ri.. become destination columns ri..; source columns ci.. destination rows ci...
            let w = width.saturating_sub(ri).min(8);
            if w > 0 {
                avx2::transpose8(src.add(ri * lds + ci), lds, dst.add(ci * ldd + ri), ldd, w);
            }
        }
    }
}

/// Tokens per register tile (broadcast one at a time).
pub(crate) const MR: usize = 14;
/// Outputs per register tile (two 16-lane registers).
pub(crate) const NR: usize = 32;
/// Inner-dimension block: one packed weight panel (`KC × NR` f32, 24 KiB) and the token panel
/// streaming past it (10.5 KiB) fit L1 together (48 KiB on Sapphire Rapids and Zen 4; 256 did not).
const KC: usize = 192;
/// Weight panels per parallel work unit.
const PANELS_PER_TASK: usize = 2;
/// Token panels packed per parallel work unit.
const TOKEN_PANELS_PER_TASK: usize = 4;

/// Element types a weight may hold here.
pub trait GemmWeight: Copy + Send + Sync + 'static {
    /// Widens `src` into `dst` (same length).
    fn widen(src: &[Self], dst: &mut [f32]);
    /// The slice itself when it already is f32 (packed straight from the weight, no copy).
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
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
}

/// Where a product's weight rows come from: a row-major slice of `n × k` values, or f16 panels.
pub(crate) trait Source: Sync {
    /// Rows (`n`).
    fn rows(&self) -> usize;
    /// The matrix itself where it is row-major f32 (packed straight from it, no copy).
    fn as_f32(&self) -> Option<&[f32]>;
    /// Values `p0..p0 + dst.len()` of row `j`, widened into `dst`.
    fn widen(&self, j: usize, p0: usize, dst: &mut [f32]);
    /// Where value `p` of row `j` lies (for hints), and the bytes of a value.
    fn at(&self, j: usize, p: usize) -> (*const u8, usize);
}

/// A row-major weight of rows of `k` values.
struct Rows<'a, W> {
    w: &'a [W],
    k: usize,
}

impl<W: GemmWeight> Source for Rows<'_, W> {
    fn rows(&self) -> usize {
        self.w.len() / self.k
    }
    fn as_f32(&self) -> Option<&[f32]> {
        W::as_f32(self.w)
    }
    fn widen(&self, j: usize, p0: usize, dst: &mut [f32]) {
        let at = j * self.k + p0;
        W::widen(&self.w[at..at + dst.len()], dst);
    }
    fn at(&self, j: usize, p: usize) -> (*const u8, usize) {
        (self.w[j * self.k + p..].as_ptr() as *const u8, std::mem::size_of::<W>())
    }
}

impl Source for crate::model::gemv::F16Panels {
    fn rows(&self) -> usize {
        crate::model::gemv::F16Panels::rows(self)
    }
    fn as_f32(&self) -> Option<&[f32]> {
        None
    }
    fn widen(&self, j: usize, p0: usize, dst: &mut [f32]) {
        crate::model::gemv::F16Panels::widen(self, j, p0, dst)
    }
    fn at(&self, j: usize, p: usize) -> (*const u8, usize) {
        (self.value_at(j, p) as *const f16 as *const u8, std::mem::size_of::<f16>())
    }
}

/// Whether [`matmul_t`] runs on this CPU. `COTSCOPE_PREFILL_GEMM=candle` turns it off, and with it the
/// fused attention kernels built on its tile (to compare against candle's GEMM and attention in one sitting).
pub fn available() -> bool {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var("COTSCOPE_PREFILL_GEMM").is_ok_and(|v| v == "candle"));
    super::cpu::features().avx2 && !off
}

/// `y[i·n + j] = bias[j] + Σₚ x[i·k + p] · w[j·k + p]` for `m = x.len() / k` rows and
/// `n = w.len() / k` outputs (no bias: 0). Returns `false` (and leaves `y` alone) when the CPU lacks
/// AVX2 and FMA. Every element of `y` is written, so it need not be initialised to anything.
pub fn matmul_t<W: GemmWeight>(x: &[f32], w: &[W], k: usize, bias: Option<&[f32]>, y: &mut [f32]) -> bool {
    let m = x.len() / k.max(1);
    let n = w.len() / k.max(1);
    assert!(k > 0 && x.len() == m * k && w.len() == n * k && y.len() == m * n, "gemm: mismatched lengths");
    matmul_t_from(x, &Rows { w, k }, k, bias, y)
}

/// [`matmul_t`] for f16 weights in panels: the same values, bit for bit, as from their rows.
pub fn matmul_t_panels(x: &[f32], w: &crate::model::gemv::F16Panels, bias: Option<&[f32]>, y: &mut [f32]) -> bool {
    let k = w.cols();
    let (m, n) = (x.len() / k.max(1), w.rows());
    assert!(k > 0 && x.len() == m * k && y.len() == m * n, "gemm: mismatched lengths");
    matmul_t_from(x, w, k, bias, y)
}

/// [`matmul_t`] from any [`Source`] of `k`-wide rows.
fn matmul_t_from(x: &[f32], w: &impl Source, k: usize, bias: Option<&[f32]>, y: &mut [f32]) -> bool {
    let (m, n) = (x.len() / k, w.rows());
    assert!(bias.is_none_or(|b| b.len() == n), "gemm: bias length is not n");
    if m == 0 || n == 0 {
        return true;
    }
    if !available() {
        return false;
    }
    let token_panels = m.div_ceil(MR);
    // Near-equal blocks in whole 16s (1024 = 5 × 176 + 144, not 5 × 192 + 64): a short block pays
    // the tile's stores for little work, and 16 columns are what the packing transposes at once.
    let block = k.div_ceil(k.div_ceil(KC)).next_multiple_of(16).min(KC);
    let order = if tokens_stay_in_l2(token_panels * MR * k * 4) { Order::PanelMajor } else { Order::BlockMajor };
    run(order, x, w, k, block, bias, y);
    true
}

/// Whether tokens whose packed copy, all of `k`, takes `bytes` are packed once to stay in L2 while
/// each weight panel goes through every block: up to half the L2 (the rest holds the weight rows
/// streaming past). Measured on Sapphire Rapids (2 MiB L2): 56 tokens of a 4096-wide MLP input ran
/// 10% faster panel-major, with no gain past 1 MiB.
fn tokens_stay_in_l2(bytes: usize) -> bool {
    bytes <= super::cpu::l2_bytes() / 2
}

/// The loop order of [`matmul_t`]. Both add the same products in the same order, so they agree bit
/// for bit; they differ in how the weights stream from memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Per inner block, every weight panel: the token panels of one block are all that must stay
    /// cached, so any number of tokens fits, and the weight reuse across tokens is high.
    BlockMajor,
    /// Per weight panel, every inner block: a task reads its `NR` rows (contiguous in memory, so
    /// the hardware prefetcher streams them) once, start to end. With few tokens a prefill is
    /// bound by reading the weights, and block-major order read each row in short pieces, one block
    /// per pass over the whole matrix, which the prefetcher barely followed.
    PanelMajor,
}

/// [`matmul_t`]'s work in `order`, inner blocks of `block` values. Only where [`available`] holds:
/// the tile is called unchecked.
fn run(order: Order, x: &[f32], w: &impl Source, k: usize, block: usize, bias: Option<&[f32]>, y: &mut [f32]) {
    let (m, n) = (x.len() / k, w.rows());
    let token_panels = m.div_ceil(MR);
    let panels = n.div_ceil(NR);
    let y_ptr = y.as_mut_ptr() as usize;
    let pool = candle_core::utils::barrier_pool();
    let blocks = || (0..k).step_by(block).map(move |p0| (p0, block.min(k - p0)));
    // Packs the given blocks of every token panel into `xt`, in one pool job: block (p0, kc) at
    // (p0 − base)·token_panels·MR, its token panel tp at tp·MR·kc after that.
    let pack_blocks = |xt: &mut [f32], blocks: &[(usize, usize)], base: usize| {
        let (xt_ptr, len) = (xt.as_mut_ptr() as usize, xt.len());
        let tasks = token_panels.div_ceil(TOKEN_PANELS_PER_TASK);
        pool.execute_chunked(blocks.len() * tasks, |items| {
            for item in items {
                let ((p0, kc), first) = (blocks[item / tasks], (item % tasks) * TOKEN_PANELS_PER_TASK);
                for tp in first..token_panels.min(first + TOKEN_PANELS_PER_TASK) {
                    let at = (p0 - base) * token_panels * MR + tp * MR * kc;
                    assert!(at + MR * kc <= len, "gemm: token panel past the buffer");
                    // SAFETY: in bounds (checked); item (block, task) alone writes these token
                    // panels of that block.
                    let dst = unsafe { std::slice::from_raw_parts_mut((xt_ptr as *mut f32).add(at), MR * kc) };
                    pack_tokens(x, m, k, tp * MR, p0, kc, dst);
                }
            }
        });
    };
    // Runs weight panel `panel`, block (p0, kc), against every token panel of `xt` (that block's).
    let panel_block = |xt: &[f32], panel: usize, p0: usize, kc: usize, rows: &mut [f32], wp: &mut [f32]| {
        let j0 = panel * NR;
        let cols = NR.min(n - j0);
        pack_weights(w, k, j0, cols, p0, kc, rows, wp);
        if order == Order::BlockMajor {
            prefetch_panel(w, (j0 + NR).min(n), (j0 + 2 * NR).min(n), p0, kc);
        }
        let bias = bias.filter(|_| p0 == 0).map(|b| &b[j0..j0 + cols]);
        for tp in 0..token_panels {
            let i0 = tp * MR;
            // The next panel's outputs: `y`'s rows lie `n` values apart (a power of two), so a tile's
            // rows share a few cache sets and its stores and accumulations missed (a fifth of the
            // tile's samples in a 700-token prefill on Zen 3; about half that with this hint).
            prefetch_outputs(y_ptr as *const f32, n, (i0 + MR)..m.min(i0 + 2 * MR), j0, cols);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available()` was checked by `matmul_t`. Only the task holding this panel writes
            // columns j0..j0+cols of y (m × n); rows i0..i0+rows exist; the packed panels hold
            // kc·MR and kc·NR values; `bias`, when given, has `cols` values.
            unsafe {
                tile(&Tile {
                    a: xt.as_ptr().add(tp * MR * kc),
                    b: wp.as_ptr(),
                    kc,
                    c: (y_ptr as *mut f32).add(i0 * n + j0),
                    ldc: n,
                    rows: MR.min(m - i0),
                    cols,
                    bias,
                    accumulate: p0 > 0,
                });
            }
        }
    };
    match order {
        Order::BlockMajor => {
            let mut xt = vec![0f32; token_panels * MR * block];
            for (p0, kc) in blocks() {
                pack_blocks(&mut xt, &[(p0, kc)], p0);
                let xt = &xt;
                pool.execute_chunked(panels.div_ceil(PANELS_PER_TASK), |tasks| {
                    let (mut rows, mut wp) = (vec![0f32; NR * KC], vec![0f32; KC * NR]);
                    for t in tasks {
                        for panel in t * PANELS_PER_TASK..panels.min((t + 1) * PANELS_PER_TASK) {
                            panel_block(xt, panel, p0, kc, &mut rows, &mut wp);
                        }
                    }
                });
            }
        }
        Order::PanelMajor => {
            // Every block packed up front: block (p0, kc) at p0·token_panels·MR.
            let mut xt = vec![0f32; token_panels * MR * k];
            pack_blocks(&mut xt, &blocks().collect::<Vec<_>>(), 0);
            let xt = &xt;
            pool.execute_chunked(panels.div_ceil(PANELS_PER_TASK), |tasks| {
                let (mut rows, mut wp) = (vec![0f32; NR * KC], vec![0f32; KC * NR]);
                for t in tasks {
                    for panel in t * PANELS_PER_TASK..panels.min((t + 1) * PANELS_PER_TASK) {
                        for (p0, kc) in blocks() {
                            let xb = &xt[p0 * token_panels * MR..(p0 + kc) * token_panels * MR];
                            panel_block(xb, panel, p0, kc, &mut rows, &mut wp);
                        }
                    }
                }
            });
        }
    }
}

/// Hints weight rows `j0..j1`, inner block `p0..p0 + kc`, into L2: the next panel's, while this one
/// runs against every token panel. Block-major order reads each row in pieces of `kc` values a
/// whole matrix apart, which the hardware prefetcher does not follow; the packing then waited on
/// memory (on Zen 3 the GEMM ran at 98 GFLOP/s over weights from memory and 123 from cache).
fn prefetch_panel(w: &impl Source, j0: usize, j1: usize, p0: usize, kc: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        for j in j0..j1 {
            let per_line = 64 / w.at(j, p0).1;
            for off in (0..kc).step_by(per_line) {
                // SAFETY: a prefetch never faults and only loads a line; `p0 + off < k` stays in the row.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                        w.at(j, p0 + off).0 as *const i8,
                    )
                };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (w, j0, j1, p0, kc);
}

/// Hints rows `rows` of `y` (`n` wide), columns `j0..j0 + cols`, into L1: the next token panel's
/// outputs, while this one's tile runs.
#[inline(always)]
fn prefetch_outputs(y: *const f32, n: usize, rows: std::ops::Range<usize>, j0: usize, cols: usize) {
    #[cfg(target_arch = "x86_64")]
    for i in rows {
        for c in (0..cols).step_by(16) {
            // SAFETY: a prefetch never faults; the address is inside y (row i < m, column < n).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    y.wrapping_add(i * n + j0 + c) as *const i8
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (y, n, rows, j0, cols);
}

/// Packs tokens `i0..i0 + MR` (zeros past row `m`), inner block `p0..p0 + kc`, as `[kc][MR]`.
fn pack_tokens(x: &[f32], m: usize, k: usize, i0: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    let mut p = 0;
    #[cfg(target_arch = "x86_64")]
    if i0 + 16 <= m {
        // Whole 16 × 16 blocks: rows i0..i0+16 exist (the two past this panel are read, not stored).
        while p + 16 <= kc {
            // SAFETY: `available()` is checked by the caller (`matmul_t`); rows i0..i0+16 of x have k ≥
            // p0 + p + 16 values; dst has (p + 16)·MR ≤ kc·MR values and 14 lanes are stored per row.
            unsafe {
                transpose16(x.as_ptr().add(i0 * k + p0 + p), k, dst.as_mut_ptr().add(p * MR), MR, MR);
            }
            p += 16;
        }
    }
    for r in 0..MR {
        let i = i0 + r;
        for q in p..kc {
            dst[q * MR + r] = if i < m { x[i * k + p0 + q] } else { 0.0 };
        }
    }
}

/// Packs weight rows `j0..j0 + cols` (zeros for the rest of the panel), inner block `p0..p0 + kc`,
/// as `[kc][NR]`, widened to f32 (f16 first into `rows`, `NR × kc`).
#[allow(clippy::too_many_arguments)]
fn pack_weights(
    w: &impl Source,
    k: usize,
    j0: usize,
    cols: usize,
    p0: usize,
    kc: usize,
    rows: &mut [f32],
    dst: &mut [f32],
) {
    // The source: the weight itself (f32) or its rows' blocks widened into `rows`.
    let (src, lds): (&[f32], usize) = match w.as_f32() {
        Some(f) => (&f[j0 * k + p0..], k),
        None => {
            for c in 0..cols {
                w.widen(j0 + c, p0, &mut rows[c * kc..(c + 1) * kc]);
            }
            (&rows[..], kc)
        }
    };
    let mut p = 0;
    #[cfg(target_arch = "x86_64")]
    if cols == NR {
        while p + 16 <= kc {
            for c0 in [0, 16] {
                // SAFETY: `available()` is checked by the caller (`matmul_t`); source rows c0..c0+16 have
                // ≥ p + 16 values from `src`; dst has (p + 16)·NR values.
                unsafe {
                    transpose16(src.as_ptr().add(c0 * lds + p), lds, dst.as_mut_ptr().add(p * NR + c0), NR, 16);
                }
            }
            p += 16;
        }
    }
    for c in 0..NR {
        for q in p..kc {
            dst[q * NR + c] = if c < cols { src[c * lds + q] } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], k: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let (m, n) = (x.len() / k, w.len() / k);
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let b = bias.map_or(0.0, |b| b[j] as f64);
                y[i * n + j] = (b + (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64).sum::<f64>()) as f32;
            }
        }
        y
    }

    #[test]
    fn matches_naive_on_ragged_shapes_f32_and_f16_with_and_without_bias() {
        if !available() {
            eprintln!("no AVX2 here: the kernel is not used (candle's GEMM is)");
            return;
        }
        let shapes =
            [(1, 1, 1), (17, 15, 40), (33, 29, 300), (70, 64, 513), (100, 3, 1024), (14, 32, 256), (29, 97, 600)];
        for &(m, n, k) in &shapes {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 10.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 17) as f32 - 8.0) / 16.0).collect();
            let b: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 3.0).collect();
            for bias in [None, Some(&b[..])] {
                let want = naive(&x, &w, k, bias);
                let mut y = vec![f32::NAN; m * n];
                assert!(matmul_t(&x, &w, k, bias, &mut y));
                let d = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d < 1e-4 * k as f32, "f32 {m}x{n}x{k} bias {}: {d}", bias.is_some());
                let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect(); // exact in f16
                let mut yh = vec![f32::NAN; m * n];
                assert!(matmul_t(&x, &wh, k, bias, &mut yh));
                let d = yh.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d < 1e-4 * k as f32, "f16 {m}x{n}x{k} bias {}: {d}", bias.is_some());
            }
        }
    }

    #[test]
    fn both_loop_orders_agree_bit_for_bit_and_with_the_naive_product() {
        if !available() {
            return;
        }
        // Ragged token panels, weight panels and blocks; f32 and f16 weights; with and without bias.
        for &(m, n, k) in &[(1usize, 5usize, 7usize), (15, 33, 200), (29, 70, 513), (40, 64, 1024)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 9.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 17) as f32 - 8.0) / 7.0).collect();
            let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let b: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 3.0).collect();
            let block = k.div_ceil(k.div_ceil(KC)).next_multiple_of(16).min(KC);
            for bias in [None, Some(&b[..])] {
                let mut got =
                    [vec![f32::NAN; m * n], vec![f32::NAN; m * n], vec![f32::NAN; m * n], vec![f32::NAN; m * n]];
                run(Order::BlockMajor, &x, &Rows { w: &w, k }, k, block, bias, &mut got[0]);
                run(Order::PanelMajor, &x, &Rows { w: &w, k }, k, block, bias, &mut got[1]);
                run(Order::BlockMajor, &x, &Rows { w: &wh, k }, k, block, bias, &mut got[2]);
                run(Order::PanelMajor, &x, &Rows { w: &wh, k }, k, block, bias, &mut got[3]);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got[0]), bits(&got[1]), "f32 {m}x{n}x{k}");
                assert_eq!(bits(&got[2]), bits(&got[3]), "f16 {m}x{n}x{k}");
                // f16 weights in panels (`gemv::F16Panels`): the rows' bits, in either order.
                let panels = crate::model::gemv::F16Panels::from_rows(&wh, k);
                for order in [Order::BlockMajor, Order::PanelMajor] {
                    let mut yp = vec![f32::NAN; m * n];
                    run(order, &x, &panels, k, block, bias, &mut yp);
                    assert_eq!(bits(&yp), bits(&got[2]), "f16 panels {order:?} {m}x{n}x{k}");
                }
                let want = naive(&x, &w, k, bias);
                let d = got[0].iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d < 1e-4 * k as f32, "{m}x{n}x{k}: {d}");
            }
        }
    }

    #[test]
    fn packing_places_every_value_whatever_the_block_and_panel_edges() {
        if !available() {
            return;
        }
        // Panels whole and ragged, blocks with and without a 16-column tail, both weight types.
        for &(m, n, k, p0, kc) in
            &[(40, 64, 100, 0, 96), (40, 64, 100, 3, 97), (20, 45, 64, 16, 48), (16, 32, 16, 0, 16)]
        {
            let x: Vec<f32> = (0..m * k).map(|i| i as f32).collect();
            for i0 in (0..m).step_by(MR) {
                let mut dst = vec![f32::NAN; kc * MR];
                pack_tokens(&x, m, k, i0, p0, kc, &mut dst);
                for q in 0..kc {
                    for r in 0..MR {
                        let want = if i0 + r < m { x[(i0 + r) * k + p0 + q] } else { 0.0 };
                        assert_eq!(dst[q * MR + r], want, "tokens m={m} i0={i0} p0={p0} q={q} r={r}");
                    }
                }
            }
            let w: Vec<f32> = (0..n * k).map(|i| (i % 2048) as f32).collect();
            let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect(); // exact: integers < 2048
            for j0 in (0..n).step_by(NR) {
                let cols = NR.min(n - j0);
                let mut rows = vec![0f32; NR * kc];
                let (mut a, mut b) = (vec![f32::NAN; kc * NR], vec![f32::NAN; kc * NR]);
                pack_weights(&Rows { w: &w, k }, k, j0, cols, p0, kc, &mut rows, &mut a);
                pack_weights(&Rows { w: &wh, k }, k, j0, cols, p0, kc, &mut rows, &mut b);
                for q in 0..kc {
                    for c in 0..NR {
                        let want = if c < cols { w[(j0 + c) * k + p0 + q] } else { 0.0 };
                        assert_eq!((a[q * NR + c], b[q * NR + c]), (want, want), "weights j0={j0} q={q} c={c}");
                    }
                }
            }
        }
    }

    #[test]
    fn writes_every_output_and_nothing_past_it() {
        if !available() {
            return;
        }
        // Outputs start as NaN and a guard follows them: every output must be written (nothing is
        // read from y before the first block stores it) and the masked stores must stop at m × n.
        let (m, n, k) = (15, 33, 20);
        let x = vec![1f32; m * k];
        let w = vec![0.5f32; n * k];
        let mut buf = vec![f32::NAN; m * n + 64];
        buf[m * n..].fill(-7.0);
        assert!(matmul_t(&x, &w, k, None, &mut buf[..m * n]));
        assert!(buf[..m * n].iter().all(|v| *v == 10.0), "{buf:?}");
        assert!(buf[m * n..].iter().all(|v| *v == -7.0), "guard overwritten");
    }
}
