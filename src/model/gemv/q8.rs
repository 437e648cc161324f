//! q8_0 weights against activations quantized the same way, as llama.cpp multiplies them: every
//! 32-value block of an activation row gets its own scale and signed 8-bit values, each block's
//! dot product is an exact integer sum, and only the `Σ_b dw_b·dx_b·s_b` over blocks is in f32.
//!
//! Why not widen the weights to f32 (the kernel this one replaced): one q8_0 block then costs two widening
//! shuffles, two conversions, two scalings and two FMAs per activation row, and that kernel ran at
//! the DRAM's speed even with the weights in L2, so decode reached only 60–66% of the bandwidth
//! bound. With VNNI a 64-byte load of two blocks is one `vpdpbusd` per row, about a quarter of the
//! work. The activation rounding is the one llama.cpp (and candle's q8_0 matmul) applies; the
//! integer sums and the per-block scales are exact, the rest is f32.
//!
//! Kernels, one per instruction set, chosen at run time ([`Q8Simd::detect`]): AVX-512 VNNI
//! (`avx512_vnni`; Intel since Ice Lake, AMD Zen 4), AVX2 (`avx2`), and a portable loop. All compute
//! the same integers; they differ only in the order of the f32 sums. Within a kernel a row's result
//! does not depend on how many rows share the call.

use half::f16;

use super::{for_each_task, Epilogue, Out};
use crate::model::huge_arena::filled_vec;

/// Values per q8_0 block.
pub const BLOCK: usize = 32;

/// i32 lanes of a VNNI product over one block (4 values each).
const LANES: usize = BLOCK / 4;

/// Blocks per group of scales the AVX-512 kernel converts at once (16 f16 → 16 f32 lanes). Activation
/// rows are padded to whole groups so that kernel never reads past them.
const GROUP: usize = 16;

/// A q8_0 matrix (`rows × cols`, out × in as checkpoints store linear weights), ggml's values laid
/// out for integer dot products: per 32-value block an f16 scale `d` and 32 values `q` in
/// -127..=127 with `w ≈ d·q`. Every row's values are contiguous and the scales sit in a second
/// array: the same 34 bytes a block as ggml's layout, but two blocks fill one 64-byte load.
///
/// The values are stored as the unsigned bytes `q + 128`, the operand VNNI's `u8 × i8` product
/// takes unsigned: then the `128·Σ` it adds back depends on the activations alone and is made
/// once a call (see [`Acts`]), where with signed weights each 64-byte load of them took a second
/// `vpdpbusd` and a subtraction to remove `128·Σw`. The kernel alone read its weights 5–6% faster
/// (BENCHMARKS.md, Round 24). The integers, and so every result, are the same.
#[derive(Clone)]
pub struct Q8Weights {
    rows: usize,
    cols: usize,
    /// `rows × cols` values, as `q + 128`.
    qs: Vec<u8>,
    /// `rows × cols / 32` scales.
    d: Vec<f16>,
}

impl Q8Weights {
    /// Quantizes an f32 `rows × cols` matrix (`data`, row-major) as ggml's `quantize_row_q8_0`
    /// does: `d = max|w| / 127` per block, `q = round(w / d)`. `cols` must be a multiple of 32.
    pub fn quantize(data: &[f32], cols: usize) -> Self {
        assert!(cols > 0 && cols.is_multiple_of(BLOCK) && data.len().is_multiple_of(cols), "q8_0: bad shape");
        let rows = data.len() / cols;
        let mut w = Self::zeros(rows, cols);
        w.quantize_rows(0, data);
        w
    }

    /// An all-zero `rows × cols` matrix, filled a few rows at a time by [`Self::quantize_rows`]
    /// (so a caller can quantize a table from chunks it widens one at a time).
    pub fn zeros(rows: usize, cols: usize) -> Self {
        assert!(cols > 0 && cols.is_multiple_of(BLOCK), "q8_0: width {cols} is not a multiple of 32");
        // A weight's final buffers: on huge pages (see `huge_arena`).
        Self { rows, cols, qs: filled_vec(rows * cols, BIAS), d: filled_vec(rows * cols / BLOCK, f16::ZERO) }
    }

    /// Quantizes the rows of `data` (whole rows, row-major) into rows `row0..` of this matrix.
    pub fn quantize_rows(&mut self, row0: usize, data: &[f32]) {
        use rayon::prelude::*;
        let cols = self.cols;
        let n = data.len() / cols;
        assert!(data.len() == n * cols && row0 + n <= self.rows, "q8_0: rows out of range");
        let qs = &mut self.qs[row0 * cols..(row0 + n) * cols];
        let ds = &mut self.d[row0 * cols / BLOCK..(row0 + n) * cols / BLOCK];
        qs.par_chunks_mut(BLOCK).zip(ds.par_iter_mut()).zip(data.par_chunks(BLOCK)).for_each(|((q, d), x)| {
            let (scale, values) = quantize_block(x, f32::round);
            *d = f16::from_f32(scale);
            for (q, v) in q.iter_mut().zip(values) {
                *q = biased(v);
            }
        });
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes of values and scales (34 per block, as ggml's).
    pub fn size_in_bytes(&self) -> usize {
        self.qs.len() + 2 * self.d.len()
    }

    /// Where rows `rows` of the values lie (address, bytes): for hints, which read nothing.
    pub(crate) fn values_span(&self, rows: std::ops::Range<usize>) -> (usize, usize) {
        let rows = rows.start.min(self.rows)..rows.end.min(self.rows);
        (self.qs[rows.start * self.cols..].as_ptr() as usize, rows.len() * self.cols)
    }

    /// Row `row` widened to f32 (`d·q`, exact) into `dst` (`cols` values).
    pub fn dequantize_row(&self, row: usize, dst: &mut [f32]) {
        let cols = self.cols;
        let qs = &self.qs[row * cols..(row + 1) * cols];
        let ds = &self.d[row * cols / BLOCK..(row + 1) * cols / BLOCK];
        for ((dst, q), d) in dst.chunks_exact_mut(BLOCK).zip(qs.chunks_exact(BLOCK)).zip(ds) {
            let d = d.to_f32();
            for (o, &q) in dst.iter_mut().zip(q) {
                *o = d * unbiased(q) as f32;
            }
        }
    }
}

/// What a stored weight byte `q + 128` holds for the value 0.
const BIAS: u8 = 128;

/// The stored byte of the value `q` (two's complement with the sign bit flipped: `q + 128`).
fn biased(q: i8) -> u8 {
    (q as u8) ^ BIAS
}

/// The value `q` of a stored byte `q + 128`.
fn unbiased(b: u8) -> i8 {
    (b ^ BIAS) as i8
}

/// ggml's q8_0 rounding of one block (`round`: ties away from zero for weights, as ggml's
/// reference quantizer; to even for activations, as its SIMD ones): its scale and values.
fn quantize_block(x: &[f32], round: fn(f32) -> f32) -> (f32, [i8; BLOCK]) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // |v·id| ≤ 127 (up to rounding, which `as` saturates), so every value fits an i8.
    (d, std::array::from_fn(|i| x.get(i).map_or(0, |v| round(v * id) as i8)))
}

/// `m` activation rows quantized per block, padded to whole [`GROUP`]s of blocks with zeros.
pub(super) struct Acts {
    /// Blocks per row, padded.
    pub nbp: usize,
    /// `m × nbp × 32` values `q` as bytes (two's complement).
    pub q: Vec<u8>,
    /// `m × nbp` block scales (f32, where llama.cpp rounds them to f16).
    pub dx: Vec<f32>,
    /// For the VNNI kernel (empty for the others), `m × nbp × 8`: per block, `-128·Σ` of each run
    /// of 4 values, the lanes a `vpdpbusd` of the block fills. Starting from these, its sums of
    /// `(w + 128)·x` come out as the exact `Σ w·x`.
    pub corr: Vec<i32>,
}

impl Acts {
    /// With the AVX-512 quantizer where `simd` is the VNNI kernel, the AVX2 one for the AVX2 kernel
    /// (both the same rounding as the scalar one).
    pub fn quantize(simd: Q8Simd, x: &[f32], k: usize) -> Self {
        let m = x.len() / k;
        let nb = k / BLOCK;
        let nbp = nb.div_ceil(GROUP) * GROUP;
        // The padding holds the value 0, whose correction is 0.
        let lanes = if simd == Q8Simd::Vnni { m * nbp * LANES } else { 0 };
        let mut a = Acts { nbp, q: vec![0; m * nbp * BLOCK], dx: vec![0.0; m * nbp], corr: vec![0; lanes] };
        for r in 0..m {
            let x = &x[r * k..(r + 1) * k];
            let q = &mut a.q[r * nbp * BLOCK..(r * nbp + nb) * BLOCK];
            let dx = &mut a.dx[r * nbp..r * nbp + nb];
            #[cfg(target_arch = "x86_64")]
            if simd == Q8Simd::Vnni {
                let corr = &mut a.corr[r * nbp * LANES..(r * nbp + nb) * LANES];
                // SAFETY: the VNNI kernel's features were detected, or checked by the test that
                // pinned it; x, q, dx and corr hold nb blocks.
                unsafe { super::avx512_vnni::quantize(x, q, dx, corr) };
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            if simd == Q8Simd::Avx2 {
                // SAFETY: AVX2 was detected, or checked by the test that pinned it; x, q and dx
                // hold nb blocks.
                unsafe { super::avx2::quantize(x, q, dx) };
                continue;
            }
            for ((x, q), dx) in x.chunks_exact(BLOCK).zip(q.chunks_exact_mut(BLOCK)).zip(dx) {
                let (d, v) = quantize_block(x, f32::round_ties_even);
                *dx = d;
                for (q, v) in q.iter_mut().zip(v) {
                    *q = v as u8;
                }
            }
        }
        a
    }
}

/// The q8_0 kernel family a call runs: the widest the CPU has, or one pinned by the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Q8Simd {
    Vnni,
    Avx2,
    Portable,
}

impl Q8Simd {
    pub fn detect() -> Self {
        let f = super::super::cpu::features();
        if f.avx512_vnni {
            Q8Simd::Vnni
        } else if f.avx2 {
            Q8Simd::Avx2
        } else {
            Q8Simd::Portable
        }
    }
}

/// `y[r·n + j] = Σᵢ x[r·k + i] · w[j][i]` for `m = x.len() / k` rows of `x`, each quantized per
/// block first (see the module). Runs on candle's barrier pool, as [`super::matmul_t`] does.
pub fn matmul_t_q8(x: &[f32], w: &Q8Weights, y: &mut [f32]) {
    matmul_t_q8_on(Q8Simd::detect(), x, w, y, &Epilogue::default())
}

/// [`matmul_t_q8`], then `epi` on each output (bias, GELU, residual), in the same tasks.
pub fn matmul_t_q8_then(x: &[f32], w: &Q8Weights, y: &mut [f32], epi: &Epilogue) {
    matmul_t_q8_on(Q8Simd::detect(), x, w, y, epi)
}

pub(super) fn matmul_t_q8_on(simd: Q8Simd, x: &[f32], w: &Q8Weights, y: &mut [f32], epi: &Epilogue) {
    let (n, k) = (w.rows, w.cols);
    let m = x.len() / k;
    assert!(x.len() == m * k && y.len() == m * n, "gemv q8_0: mismatched lengths");
    epi.check(m, n);
    let a = Acts::quantize(simd, x, k);
    let nb = k / BLOCK;
    let out = Out { ptr: y.as_mut_ptr(), n };
    for_each_task(n, |j0, j1| {
        let qs = &w.qs[j0 * k..j1 * k];
        let d = &w.d[j0 * nb..j1 * nb];
        let mut res = [[0f32; 8]; super::ROWS_PER_TASK];
        let res = &mut res[..j1 - j0];
        let mut r = 0;
        while r < m {
            let take = (m - r).min(8);
            dots(simd, &a, r, take, qs, d, res);
            for (j, v) in res.iter().enumerate() {
                for (i, v) in v[..take].iter().enumerate() {
                    // SAFETY: r + i < m, j0 + j < j1 ≤ n; columns j0..j1 belong to this task.
                    unsafe { out.put(r + i, j0 + j, *v) };
                }
            }
            r += take;
        }
        // SAFETY: `out` is y's m × n (asserted above, and `check`ed for epi); j0..j1 is this task's.
        unsafe { epi.apply(out, m, j0, j1) };
    });
}

/// Rows `r0..r0 + m` (m ≤ 8) of `a` against the weight rows in `qs`/`d` (`out.len()` of them) into
/// `out[j][..m]`.
fn dots(simd: Q8Simd, a: &Acts, r0: usize, m: usize, qs: &[u8], d: &[f16], out: &mut [[f32; 8]]) {
    #[cfg(target_arch = "x86_64")]
    {
        let nbp = a.nbp;
        let corr = if a.corr.is_empty() { &[][..] } else { &a.corr[r0 * nbp * LANES..(r0 + m) * nbp * LANES] };
        let rows =
            Rows { q: &a.q[r0 * nbp * BLOCK..(r0 + m) * nbp * BLOCK], dx: &a.dx[r0 * nbp..(r0 + m) * nbp], corr, nbp };
        macro_rules! rows {
            ($m:ident) => {
                match m {
                    8 => super::$m::q8::<8>(&rows, qs, d, out),
                    7 => super::$m::q8::<7>(&rows, qs, d, out),
                    6 => super::$m::q8::<6>(&rows, qs, d, out),
                    5 => super::$m::q8::<5>(&rows, qs, d, out),
                    4 => super::$m::q8::<4>(&rows, qs, d, out),
                    3 => super::$m::q8::<3>(&rows, qs, d, out),
                    2 => super::$m::q8::<2>(&rows, qs, d, out),
                    _ => super::$m::q8::<1>(&rows, qs, d, out),
                }
            };
        }
        match simd {
            // SAFETY: AVX-512 F/BW/VL/VNNI and F16C detected (or checked by the test that pinned
            // this path); `rows` holds m ≤ 8 rows padded to whole groups, `qs`/`d` whole weight rows.
            Q8Simd::Vnni => return unsafe { rows!(avx512_vnni) },
            // SAFETY: AVX2/FMA/F16C detected or checked as above; lengths as above.
            Q8Simd::Avx2 => return unsafe { rows!(avx2) },
            Q8Simd::Portable => {}
        }
    }
    let _ = simd;
    let nbp = a.nbp;
    let nb = d.len() / out.len();
    for (j, o) in out.iter_mut().enumerate() {
        for (i, o) in o[..m].iter_mut().enumerate() {
            let r = r0 + i;
            let mut acc = 0f32;
            let row = qs[j * nb * BLOCK..(j + 1) * nb * BLOCK].chunks_exact(BLOCK).zip(&d[j * nb..(j + 1) * nb]);
            for (b, (wq, dw)) in row.enumerate() {
                let xq = &a.q[(r * nbp + b) * BLOCK..(r * nbp + b + 1) * BLOCK];
                let s: i32 = wq.iter().zip(xq).map(|(&w, &x)| unbiased(w) as i32 * x as i8 as i32).sum();
                acc += dw.to_f32() * a.dx[r * nbp + b] * s as f32;
            }
            *o = acc;
        }
    }
}

/// A kernel's view of `R` quantized activation rows (row stride: `nbp` blocks).
#[cfg(target_arch = "x86_64")]
pub(super) struct Rows<'a> {
    pub q: &'a [u8],
    pub dx: &'a [f32],
    /// The VNNI kernel's corrections (see [`Acts::corr`]); empty for the others.
    pub corr: &'a [i32],
    pub nbp: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer-sized matrix's values and scales are made on the huge-page arena (the unit tests
    /// run on the binary's allocator); the LM head's sizes go to the system allocator, which maps
    /// them on their own.
    #[cfg(target_os = "linux")]
    #[test]
    fn layer_sized_matrices_are_made_on_the_huge_page_arena() {
        use crate::model::huge_arena::ARENA;
        let w = Q8Weights::zeros(3072, 1024);
        assert!(ARENA.owns(w.qs.as_ptr()) && ARENA.owns(w.d.as_ptr() as *const u8));
        let q = Q8Weights::quantize(&vec![0.5; 1024 * 64], 1024);
        assert!(ARENA.owns(q.qs.as_ptr()));
        let head = Q8Weights::zeros(32 * 1024 + 1, 1024);
        assert!(!ARENA.owns(head.qs.as_ptr()));
    }

    /// Every q8_0 kernel family this CPU can run.
    fn families() -> Vec<Q8Simd> {
        let f = super::super::super::cpu::features();
        let mut v = vec![Q8Simd::Portable];
        if f.avx2 {
            v.push(Q8Simd::Avx2);
        }
        if f.avx512_vnni {
            v.push(Q8Simd::Vnni);
        }
        v
    }

    fn matrix(n: usize, k: usize) -> Vec<f32> {
        (0..n * k).map(|i| ((i * 7 % 31) as f32 - 15.0) / 16.0 * (1.0 + (i / 32 % 5) as f32)).collect()
    }

    fn acts(m: usize, k: usize) -> Vec<f32> {
        (0..m * k).map(|i| ((i * 11 % 23) as f32 - 11.0) / 10.0).collect()
    }

    /// The integer semantics in f64: per block `dw·dx·Σ q_w·q_x`.
    fn reference(x: &[f32], w: &Q8Weights) -> Vec<f64> {
        let (n, k) = w.dims();
        let m = x.len() / k;
        let mut y = vec![0f64; m * n];
        for r in 0..m {
            for j in 0..n {
                for b in 0..k / BLOCK {
                    let (dx, qx) = quantize_block(&x[r * k + b * BLOCK..r * k + (b + 1) * BLOCK], f32::round_ties_even);
                    let s: i64 = (0..BLOCK).map(|i| unbiased(w.qs[j * k + b * BLOCK + i]) as i64 * qx[i] as i64).sum();
                    y[r * n + j] += w.d[j * k / BLOCK + b].to_f64() * dx as f64 * s as f64;
                }
            }
        }
        y
    }

    #[test]
    fn quantize_matches_ggml_rounding_and_dequantizes_exactly() {
        let x: Vec<f32> = (0..64).map(|i| i as f32 - 20.0).collect();
        let w = Q8Weights::quantize(&x, 64);
        // Block 0 holds -20..=11: d = 20/127, so -20 → -127 and 11 → round(69.85) = 70.
        assert_eq!((w.qs[0], w.qs[31]), (1, 198), "stored as q + 128");
        assert_eq!((unbiased(w.qs[0]), unbiased(w.qs[31])), (-127, 70));
        assert_eq!(w.d[0], f16::from_f32(20.0 / 127.0));
        let mut back = vec![0f32; 64];
        w.dequantize_row(0, &mut back);
        for (i, v) in back.iter().enumerate() {
            let want = w.d[i / 32].to_f32() * unbiased(w.qs[i]) as f32;
            assert_eq!(*v, want);
            assert!((v - x[i]).abs() <= 0.6 * w.d[i / 32].to_f32() + 0.02, "{i}: {v} vs {}", x[i]);
        }
        // An all-zero block has scale 0 and values 0 (no division by zero).
        let z = Q8Weights::quantize(&[0.0; 32], 32);
        assert_eq!((z.d[0].to_f32(), unbiased(z.qs[0])), (0.0, 0));
    }

    #[test]
    fn every_family_quantizes_activations_as_the_scalar_quantizer() {
        // A block of scale 1 (max 127) whose other values are halves: ties, to even up and down,
        // either sign; an all-zero block; a block with one nonzero value; 5 blocks, a padded group.
        let k = 5 * BLOCK;
        let mut x = acts(3, k);
        for (i, v) in x[..BLOCK].iter_mut().enumerate() {
            *v = if i == 0 { 127.0 } else { i as f32 - 16.5 };
        }
        x[BLOCK..2 * BLOCK].fill(0.0);
        x[2 * BLOCK..3 * BLOCK].fill(0.0);
        x[2 * BLOCK + 7] = -3.0;
        let want = Acts::quantize(Q8Simd::Portable, &x, k);
        for simd in families() {
            let got = Acts::quantize(simd, &x, k);
            assert_eq!(got.nbp, want.nbp, "{simd:?}");
            assert_eq!(got.q, want.q, "{simd:?} values");
            assert_eq!(got.dx, want.dx, "{simd:?} scales");
            if simd == Q8Simd::Vnni {
                // -128 times each run of 4 values, the padding's included.
                let corr: Vec<i32> =
                    want.q.chunks_exact(4).map(|v| -128 * v.iter().map(|&b| b as i8 as i32).sum::<i32>()).collect();
                assert_eq!(got.corr, corr, "{simd:?} corrections");
            } else {
                assert!(got.corr.is_empty(), "{simd:?}");
            }
        }
    }

    #[test]
    fn chunked_quantization_equals_whole() {
        let data = matrix(10, 64);
        let whole = Q8Weights::quantize(&data, 64);
        let mut parts = Q8Weights::zeros(10, 64);
        parts.quantize_rows(0, &data[..3 * 64]);
        parts.quantize_rows(3, &data[3 * 64..]);
        assert_eq!(whole.qs, parts.qs);
        assert_eq!(whole.d, parts.d);
    }

    #[test]
    fn every_family_computes_the_integer_semantics() {
        // Widths with a partial group of scales (96, 544: 3 and 17 blocks) and odd block counts.
        for simd in families() {
            for &(m, n, k) in
                &[(1, 5, 32), (3, 70, 64), (8, 33, 256), (11, 9, 96), (5, 131, 1024), (16, 1, 32), (2, 7, 544)]
            {
                let w = Q8Weights::quantize(&matrix(n, k), k);
                let x = acts(m, k);
                let want = reference(&x, &w);
                let mut y = vec![0f32; m * n];
                matmul_t_q8_on(simd, &x, &w, &mut y, &Epilogue::default());
                for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                    let d = (*a as f64 - b).abs() / (1.0 + b.abs());
                    assert!(d < 1e-5, "q8 {simd:?} {m}x{n}x{k} [{i}]: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn close_to_the_f32_product_of_the_dequantized_weights() {
        let (m, n, k) = (4, 40, 512);
        let w = Q8Weights::quantize(&matrix(n, k), k);
        let mut wf = vec![0f32; n * k];
        for j in 0..n {
            w.dequantize_row(j, &mut wf[j * k..(j + 1) * k]);
        }
        let x = acts(m, k);
        let mut y = vec![0f32; m * n];
        matmul_t_q8(&x, &w, &mut y);
        let scale: f32 = (0..m * n)
            .map(|t| (0..k).map(|i| (x[t / n * k + i] * wf[t % n * k + i]).abs()).sum::<f32>())
            .fold(0.0, f32::max);
        for t in 0..m * n {
            let exact: f32 = (0..k).map(|i| x[t / n * k + i] * wf[t % n * k + i]).sum();
            // Rounding the activations to 8 bits moves a dot by well under 1% of its terms' size.
            assert!((y[t] - exact).abs() < 0.01 * scale, "{t}: {} vs {exact}", y[t]);
        }
    }

    /// A path decodes the same alone or in a batch: every kernel runs the same operations on a row
    /// whatever the row count.
    #[test]
    fn batch_rows_equal_single_rows() {
        for simd in families() {
            for &(n, k) in &[(131, 96), (64, 1024), (3, 32)] {
                let w = Q8Weights::quantize(&matrix(n, k), k);
                let x = acts(8, k);
                for m in 1..=8 {
                    let mut y = vec![0f32; m * n];
                    matmul_t_q8_on(simd, &x[..m * k], &w, &mut y, &Epilogue::default());
                    for r in 0..m {
                        let mut one = vec![0f32; n];
                        matmul_t_q8_on(simd, &x[r * k..(r + 1) * k], &w, &mut one, &Epilogue::default());
                        assert_eq!(&y[r * n..(r + 1) * n], &one[..], "{simd:?} row {r} of {m}, {n}x{k}");
                    }
                }
            }
        }
    }
}
