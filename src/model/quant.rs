//! Quantized weight matrices (ggml's q8_0 and q4_K blocks) multiplied with candle's CPU kernels.
//!
//! We keep the blocks ourselves rather than in a `QTensor`: on CPUs with AVX512-VNNI, candle's
//! `QMatMul` caches a repacked second copy of every q8_0/q4_K matrix beside the original, which
//! doubles (q8_0) or more than doubles (q4_K) resident memory and defeats loading bloom-7b1 in 6 GiB.
//! `k_quants::matmul` on the compact blocks reads each weight once per tile of 16 activation rows,
//! so a batched decode step over up to 16 paths reads the matrix once.

use std::fmt;

use candle_core::quantized::k_quants::{self, BlockQ4K, GgmlType, QK8_0, QK_K};
use candle_core::{DType, Result, Tensor};

use super::gemv;

/// A block format for `--quantize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantKind {
    /// 8-bit values, one f16 scale per 32 (8.5 bits per weight).
    Q8_0,
    /// 4-bit values in super-blocks of 256 with 6-bit scales and mins (4.5 bits per weight).
    Q4K,
}

impl QuantKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "q8_0" | "q8" => Some(QuantKind::Q8_0),
            "q4k" | "q4_k" | "q4_k_m" => Some(QuantKind::Q4K),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            QuantKind::Q8_0 => "q8_0",
            QuantKind::Q4K => "q4k",
        }
    }

    /// Elements per block: rows must be a multiple of it.
    pub fn block(self) -> usize {
        match self {
            QuantKind::Q8_0 => QK8_0,
            QuantKind::Q4K => QK_K,
        }
    }

    /// The format a row of `cols` values can take: q4_K needs multiples of 256 and falls back to
    /// q8_0 (multiples of 32); `None` means the matrix stays dense.
    pub fn for_width(self, cols: usize) -> Option<Self> {
        [self, QuantKind::Q8_0].into_iter().find(|k| cols > 0 && cols.is_multiple_of(k.block()))
    }
}

impl fmt::Display for QuantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// f32 values per chunk of [`QMatrix::quantize_by_rows`]: 16 MiB.
const CHUNK_VALUES: usize = 4 << 20;

#[derive(Clone)]
enum Blocks {
    Q8_0(gemv::Q8Weights),
    Q4K(Vec<BlockQ4K>),
}

/// A `rows × cols` matrix (`out × in`, as checkpoints store linear weights), row-major in blocks.
#[derive(Clone)]
pub struct QMatrix {
    rows: usize,
    cols: usize,
    blocks: Blocks,
}

impl fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QMatrix({}x{} {})", self.rows, self.cols, self.kind())
    }
}

impl QMatrix {
    /// Quantizes the rows of a `rows × cols` matrix; `None` if no block format fits the width.
    /// Chunks of rows are widened to f32 one at a time ([`QMatrix::quantize_by_rows`]), so an f16
    /// or bf16 table is never copied whole to f32.
    pub fn quantize(w: &Tensor, kind: QuantKind) -> Result<Option<Self>> {
        let (rows, cols) = w.dims2()?;
        Self::quantize_by_rows(rows, cols, kind, |r0, n| w.narrow(0, r0, n))
    }

    /// As [`QMatrix::quantize`] for a `rows × cols` matrix handed over by `read(r0, n)` (rows
    /// `r0..r0 + n` as an f32 `n × cols` tensor) in chunks of about 16 MiB, so no f32 copy of the
    /// whole matrix is ever held. `None` (nothing read) if no block format fits the width.
    pub fn quantize_by_rows(
        rows: usize,
        cols: usize,
        kind: QuantKind,
        read: impl FnMut(usize, usize) -> Result<Tensor>,
    ) -> Result<Option<Self>> {
        Self::quantize_in_chunks(rows, cols, kind, (CHUNK_VALUES / cols.max(1)).max(1), read)
    }

    /// [`QMatrix::quantize_by_rows`] with `chunk` rows per read.
    fn quantize_in_chunks(
        rows: usize,
        cols: usize,
        kind: QuantKind,
        chunk: usize,
        mut read: impl FnMut(usize, usize) -> Result<Tensor>,
    ) -> Result<Option<Self>> {
        let Some(kind) = kind.for_width(cols) else {
            return Ok(None);
        };
        let mut blocks = match kind {
            QuantKind::Q8_0 => Blocks::Q8_0(gemv::Q8Weights::zeros(rows, cols)),
            QuantKind::Q4K => Blocks::Q4K(super::huge_arena::filled_vec(rows * cols / QK_K, BlockQ4K::zeros())),
        };
        let mut r0 = 0;
        while r0 < rows {
            let n = chunk.min(rows - r0);
            let t = read(r0, n)?.to_dtype(DType::F32)?.contiguous()?;
            if t.dims() != [n, cols] {
                candle_core::bail!("quantize: rows {r0}+{n} came as {:?}, expected [{n}, {cols}]", t.dims());
            }
            let data = t.flatten_all()?.to_vec1::<f32>()?;
            match &mut blocks {
                Blocks::Q8_0(w) => w.quantize_rows(r0, &data),
                Blocks::Q4K(b) => quantize_into(&data, cols, &mut b[r0 * cols / QK_K..(r0 + n) * cols / QK_K]),
            }
            r0 += n;
        }
        Ok(Some(Self { rows, cols, blocks }))
    }

    pub fn kind(&self) -> QuantKind {
        match self.blocks {
            Blocks::Q8_0(_) => QuantKind::Q8_0,
            Blocks::Q4K(_) => QuantKind::Q4K,
        }
    }

    /// Where rows `rows` of the main values lie (address, bytes), for hints; `None` for formats
    /// without a plain run of them per row.
    pub(crate) fn values_span(&self, rows: std::ops::Range<usize>) -> Option<(usize, usize)> {
        match &self.blocks {
            Blocks::Q8_0(w) => Some(w.values_span(rows)),
            Blocks::Q4K(_) => None,
        }
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes of the blocks.
    pub fn size_in_bytes(&self) -> usize {
        match &self.blocks {
            Blocks::Q8_0(w) => w.size_in_bytes(),
            Blocks::Q4K(b) => std::mem::size_of_val(b.as_slice()),
        }
    }

    /// `x · selfᵀ` for f32 `x` of shape `…, cols`: all leading dimensions flattened into one matmul,
    /// so the weights are streamed once for every row of the batch.
    pub fn matmul_t(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let k = dims.last().copied().unwrap_or(0);
        if k != self.cols {
            candle_core::bail!("quantized matmul: input width {k} does not match {}x{}", self.rows, self.cols);
        }
        let m = x.elem_count() / k.max(1);
        if m > gemv::MAX_ROWS {
            // Many rows (prefill): widen the matrix to f32 for this call and use the blocked GEMM,
            // far faster than block dot products row by row; the f32 copy lives for one matmul.
            let x = x.to_dtype(DType::F32)?.reshape((m, k))?;
            let w = Tensor::from_vec(self.dequantize_f32(), (self.rows, k), x.device())?;
            let y = match super::linear::many_rows(&w, None, &x, m)? {
                Some(y) => y,
                // No AVX-512: candle's GEMM.
                None => x.matmul(&w.t()?)?,
            };
            let mut out = dims;
            if let Some(last) = out.last_mut() {
                *last = self.rows;
            }
            return y.reshape(out);
        }
        let lhs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let mut dst = vec![0f32; m * self.rows];
        match &self.blocks {
            // Activations quantized per block against the blocks (as llama.cpp does), the same
            // arithmetic for 1 row as for 8, so a path decodes the same alone or in a batch.
            Blocks::Q8_0(w) => gemv::matmul_t_q8(&lhs, w, &mut dst),
            Blocks::Q4K(b) => k_quants::matmul((m, k, self.rows), &lhs, b, &mut dst)?,
        }
        let mut out = dims;
        if let Some(last) = out.last_mut() {
            *last = self.rows;
        }
        Tensor::from_vec(dst, out, x.device())
    }

    /// `y = epi(x · wᵀ)` for a few rows of f32 `x` (`m × cols`; `y`: `m × rows`) by the decode
    /// kernel with its epilogue; `false`, `y` untouched, for a format without one (q4_K).
    pub fn matmul_t_then(&self, x: &[f32], y: &mut [f32], epi: &gemv::Epilogue) -> bool {
        match &self.blocks {
            Blocks::Q8_0(w) => {
                gemv::matmul_t_q8_then(x, w, y, epi);
                true
            }
            Blocks::Q4K(_) => false,
        }
    }

    /// Rows `ids` dequantized to f32: `…ids, cols` (the embedding lookup of a quantized table).
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        let idx = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let mut out = vec![0f32; idx.len() * self.cols];
        for (dst, &row) in out.chunks_exact_mut(self.cols).zip(&idx) {
            let row = row as usize;
            if row >= self.rows {
                candle_core::bail!("token id {row} is outside the vocabulary of {}", self.rows);
            }
            match &self.blocks {
                Blocks::Q8_0(w) => w.dequantize_row(row, dst),
                Blocks::Q4K(b) => dequantize_row(b, row, self.cols, dst),
            }
        }
        let mut shape = ids.dims().to_vec();
        shape.push(self.cols);
        Tensor::from_vec(out, shape, ids.device())
    }

    /// The whole matrix in f32, `rows × cols` row-major, widened on candle's pool (the prefill's
    /// threads) a task of rows at a time.
    fn dequantize_f32(&self) -> Vec<f32> {
        /// Rows per task: about a quarter MiB of f32 at bloom-560m's widths.
        const ROWS: usize = 64;
        let (rows, cols) = (self.rows, self.cols);
        let mut out = vec![0f32; rows * cols];
        super::threads::for_each_chunk_mut(&mut out, ROWS * cols, |t, task| {
            for (i, d) in task.chunks_exact_mut(cols).enumerate() {
                let row = t * ROWS + i;
                match &self.blocks {
                    Blocks::Q8_0(w) => w.dequantize_row(row, d),
                    Blocks::Q4K(b) => dequantize_row(b, row, cols, d),
                }
            }
        });
        out
    }

    /// The whole matrix back in f32 (tests and diagnostics).
    pub fn dequantize(&self, dev: &candle_core::Device) -> Result<Tensor> {
        let ids = Tensor::arange(0u32, self.rows as u32, dev)?;
        self.embedding(&ids)
    }
}

/// The rows of `data` quantized into `blocks` (as many blocks as `data` has values / block size).
fn quantize_into<T: GgmlType>(data: &[f32], cols: usize, blocks: &mut [T]) {
    use rayon::prelude::*;
    let per_row = cols / T::BLCK_SIZE;
    blocks.par_chunks_mut(per_row).zip(data.par_chunks(cols)).for_each(|(dst, src)| T::from_float(src, dst));
}

fn dequantize_row<T: GgmlType>(blocks: &[T], row: usize, cols: usize, dst: &mut [f32]) {
    let per_row = cols / T::BLCK_SIZE;
    T::to_float(&blocks[row * per_row..(row + 1) * per_row], dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn matrix(rows: usize, cols: usize) -> Tensor {
        let v: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.1).collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    #[test]
    fn q4k_falls_back_to_q8_0_then_dense_by_width() {
        assert_eq!(QuantKind::Q4K.for_width(512), Some(QuantKind::Q4K));
        assert_eq!(QuantKind::Q4K.for_width(64), Some(QuantKind::Q8_0));
        assert_eq!(QuantKind::Q8_0.for_width(48), None);
        assert!(QMatrix::quantize(&matrix(4, 48), QuantKind::Q8_0).unwrap().is_none());
    }

    #[test]
    fn many_rows_multiply_the_widened_matrix() {
        // 37 rows (a prefill): the dequantized f32 matrix through the blocked GEMM, which must give
        // what f32 arithmetic on the dequantized matrix gives, whatever the kernel.
        let dev = Device::Cpu;
        for kind in [QuantKind::Q8_0, QuantKind::Q4K] {
            let q = QMatrix::quantize(&matrix(70, 512), kind).unwrap().unwrap();
            let deq = q.dequantize(&dev).unwrap();
            assert_eq!(q.dequantize_f32(), deq.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            let x = matrix(37, 512).reshape((37, 1, 512)).unwrap();
            let want = x.reshape((37, 512)).unwrap().matmul(&deq.t().unwrap()).unwrap().reshape((37, 1, 70)).unwrap();
            let got = q.matmul_t(&x).unwrap();
            assert_eq!(got.dims(), &[37, 1, 70]);
            assert!(max_diff(&got, &want) < 1e-5, "{kind}: {}", max_diff(&got, &want));
        }
    }

    #[test]
    fn matmul_is_close_to_f32_and_batch_rows_equal_single_rows() {
        let dev = Device::Cpu;
        for kind in [QuantKind::Q8_0, QuantKind::Q4K] {
            let w = matrix(40, 512);
            let q = QMatrix::quantize(&w, kind).unwrap().unwrap();
            assert_eq!(q.kind(), kind);
            let x = matrix(3, 512).reshape((3, 1, 512)).unwrap();
            let want = x.reshape((3, 512)).unwrap().matmul(&w.t().unwrap()).unwrap().reshape((3, 1, 40)).unwrap();
            let got = q.matmul_t(&x).unwrap();
            assert_eq!(got.dims(), &[3, 1, 40]);
            let tol = if kind == QuantKind::Q8_0 { 0.01 } else { 0.05 };
            assert!(max_diff(&got, &want) < tol, "{kind}: {}", max_diff(&got, &want));
            let row1 = q.matmul_t(&x.get(1).unwrap()).unwrap();
            assert!(max_diff(&row1, &got.get(1).unwrap()) < 1e-6);
            let deq = q.dequantize(&dev).unwrap();
            assert!(max_diff(&deq, &w) < tol, "{kind}");
            let emb = q.embedding(&Tensor::new(&[[2u32, 39]], &dev).unwrap()).unwrap();
            assert_eq!(emb.dims(), &[1, 2, 512]);
            assert!(max_diff(&emb.get(0).unwrap().get(1).unwrap(), &deq.get(39).unwrap()) == 0.0);
        }
    }

    #[test]
    fn quantizing_by_chunks_of_rows_equals_quantizing_whole() {
        let (rows, cols) = (10, 256);
        let m = matrix(rows, cols);
        for kind in [QuantKind::Q8_0, QuantKind::Q4K] {
            let whole = QMatrix::quantize(&m, kind).unwrap().unwrap();
            let mut asked = Vec::new();
            let read = |r0, n| {
                asked.push((r0, n));
                m.narrow(0, r0, n)
            };
            let parts = QMatrix::quantize_in_chunks(rows, cols, kind, 4, read).unwrap().unwrap();
            assert_eq!(asked, vec![(0, 4), (4, 4), (8, 2)], "{kind}");
            let dev = Device::Cpu;
            let (a, b) = (whole.dequantize(&dev).unwrap(), parts.dequantize(&dev).unwrap());
            assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap(), "{kind}");
        }
        // A reader that hands back the wrong shape is an error, not a silent mix-up.
        let e = QMatrix::quantize_in_chunks(rows, cols, QuantKind::Q8_0, 4, |_, _| m.narrow(0, 0, 1));
        assert!(e.is_err());
    }

    #[test]
    fn out_of_range_id_is_an_error() {
        let q = QMatrix::quantize(&matrix(4, 64), QuantKind::Q8_0).unwrap().unwrap();
        assert!(q.embedding(&Tensor::new(&[4u32], &Device::Cpu).unwrap()).is_err());
    }
}
