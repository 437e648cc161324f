//! A dense layer that multiplies as one 2-D GEMM. candle-nn's `Linear` broadcasts the weight over the
//! batch, so a batch of 8 decode rows would read the weight 8 times; flattening `b, s` into rows reads
//! it once per step. The weight is a candle tensor (f32, f16), quantized blocks, or f16 in the
//! interleaved panels the AVX-512 decode kernels read as one stream (`gemv::F16Panels`).

use std::sync::Arc;

use candle_core::{CpuStorage, DType, Module, Result, Storage, Tensor};
use candle_nn::VarBuilder;

use super::f32_slices::with_f32_slices;
use super::quant::{QMatrix, QuantKind};
use super::{gemm, gemv};

#[derive(Debug, Clone)]
enum Weight {
    /// `out, in`, as stored in the checkpoint.
    Dense(Tensor),
    /// Quantized `out, in`; takes and returns f32 activations.
    Quant(Arc<QMatrix>),
    /// f16 `out, in` in panels of three rows (see [`gemv::F16Panels`]), where the CPU runs the
    /// kernels that read them.
    Panels(Arc<gemv::F16Panels>),
}

#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    out_dim: usize,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        let out_dim = weight.dims().first().copied().unwrap_or(0);
        Self { weight: Weight::Dense(weight), bias, out_dim }
    }

    pub fn quantized(weight: Arc<QMatrix>, bias: Option<Tensor>) -> Self {
        let out_dim = weight.dims().0;
        Self { weight: Weight::Quant(weight), bias, out_dim }
    }

    /// A layer whose weight is `panels` (the tied LM head over the embeddings' panels).
    pub(crate) fn from_panels(panels: Arc<gemv::F16Panels>, bias: Option<Tensor>) -> Self {
        let out_dim = panels.rows();
        Self { weight: Weight::Panels(panels), bias, out_dim }
    }

    /// `weight` quantized to `quant` when its width allows it (see [`QuantKind::for_width`]), else dense.
    pub fn maybe_quantized(weight: Tensor, bias: Option<Tensor>, quant: Option<QuantKind>) -> Result<Self> {
        if let Some(kind) = quant {
            if let Some(q) = QMatrix::quantize(&weight, kind)? {
                return Ok(Self::quantized(Arc::new(q), bias));
            }
        }
        Ok(Self::new(weight, bias))
    }

    /// Loads `weight` (`out, in`) and `bias` (`out`) under `vb`.
    pub fn load(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Self::load_quantized(in_dim, out_dim, vb, None)
    }

    /// As [`Linear::load`], quantizing the weight as soon as it is read (the f32 copy is dropped at once).
    /// An f16 weight goes in panels where [`gemv::panels_wanted`] (the tied embeddings and LM head
    /// are put in panels by `Bloom::new_quantized`, read in blocks of rows).
    pub fn load_quantized(in_dim: usize, out_dim: usize, vb: VarBuilder, quant: Option<QuantKind>) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        // Activations are f32 whatever the weights' format, and so are biases.
        let bias = vb.get(out_dim, "bias")?.to_dtype(DType::F32)?;
        let linear = Self::maybe_quantized(weight, Some(bias), quant)?;
        if gemv::panels_wanted() {
            return linear.into_panels();
        }
        Ok(linear)
    }

    /// `self` with a dense f16 weight moved into panels (anything else as it is). The rows are
    /// freed before the panels take the arena, where the rows were its last block (see
    /// [`gemv::F16Panels::into_arena`]).
    fn into_panels(self) -> Result<Self> {
        let Weight::Dense(w) = &self.weight else { return Ok(self) };
        if w.dtype() != DType::F16 || w.rank() != 2 {
            return Ok(self);
        }
        let k = w.dims()[1];
        let w = w.contiguous()?;
        let panels = {
            let (storage, layout) = w.storage_and_layout();
            let Storage::Cpu(CpuStorage::F16(v)) = &*storage else { return Ok(self) };
            gemv::F16Panels::from_rows(&v[layout.start_offset()..layout.start_offset() + w.elem_count()], k)
        };
        // Every handle on the rows goes before the panels take their place in the arena.
        let Self { weight, bias, out_dim } = self;
        drop((w, weight));
        Ok(Self { weight: Weight::Panels(Arc::new(panels.into_arena())), bias, out_dim })
    }

    /// Bytes of the weight matrix (not the bias), as streamed by one forward pass.
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            Weight::Quant(q) => q.size_in_bytes(),
            Weight::Panels(p) => p.size_in_bytes(),
        }
    }

    /// Bytes of the bias.
    pub fn bias_bytes(&self) -> usize {
        self.bias.as_ref().map(|b| b.elem_count() * b.dtype().size_in_bytes()).unwrap_or(0)
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self.weight, Weight::Quant(_))
    }

    /// Whether the weight matrix lies on transparent huge pages (as far as this process asked for
    /// them): quantized blocks and f16 matrices are made in the weights' arena, and matrices of
    /// 32 MiB or more are mapped on their own and advised (`super::alloc`).
    pub(crate) fn on_huge_pages(&self) -> bool {
        match &self.weight {
            Weight::Quant(_) => true,
            Weight::Panels(p) => {
                super::huge_arena::holds_weight(p.values().as_ptr() as *const u8, p.size_in_bytes())
                    || p.size_in_bytes() >= super::alloc::MAPPED_FROM
            }
            Weight::Dense(_) if self.weight_bytes() >= super::alloc::MAPPED_FROM => true,
            Weight::Dense(w) => dense_start(w)
                .is_some_and(|(start, _)| super::huge_arena::holds_weight(start as *const u8, self.weight_bytes())),
        }
    }

    /// Where each thread's share of the weight's rows lies in a few-row product (address, bytes;
    /// see `gemv::share_rows`), for a thread with nothing else to do to hint its share into its
    /// cache ahead of the product. Empty where the weight has no plain run of values per row.
    pub(crate) fn share_spans(&self) -> Vec<(usize, usize)> {
        let parts = gemv::pool_threads();
        let share = |i: usize| gemv::share_rows(self.out_dim, i, parts);
        match &self.weight {
            Weight::Quant(q) => (0..parts).map_while(|i| q.values_span(share(i))).collect(),
            // Shared out in whole panels, as the product's tasks are.
            Weight::Panels(p) => (0..parts).map(|i| p.span(gemv::share_rows(p.panels(), i, parts))).collect(),
            Weight::Dense(w) => match dense_start(w) {
                Some((start, size)) if w.is_contiguous() => {
                    let row_bytes = w.dims().get(1).copied().unwrap_or(0) * size;
                    (0..parts).map(share).map(|r| (start + r.start * row_bytes, r.len() * row_bytes)).collect()
                }
                _ => Vec::new(),
            },
        }
    }

    /// `act(x · wᵀ + bias) + residual`, with GELU as `act` when `gelu` and `residual` of the
    /// output's shape. For a few rows (a decode step) the product's own tasks add the bias, apply
    /// GELU and add the residual ([`gemv::Epilogue`]); otherwise tensor ops do, in the same order,
    /// so the values are the same either way.
    pub fn forward_then(&self, x: &Tensor, gelu: bool, residual: Option<&Tensor>) -> Result<Tensor> {
        if let Some(y) = self.few_rows_then(x, gelu, residual)? {
            return Ok(y);
        }
        let mut y = self.forward(x)?;
        if gelu {
            y = super::gelu::gelu(&y)?;
        }
        match residual {
            Some(r) => y + r,
            None => Ok(y),
        }
    }

    /// `x · wᵀ + bias` as plain values (`rows × out`, row-major): a decode step's logits go
    /// straight from the kernels' output to the sampler, not through a tensor and a copy of it.
    pub fn forward_values(&self, x: &Tensor) -> Result<Vec<f32>> {
        match self.few_rows_values(x, false, None)? {
            Some((y, _)) => Ok(y),
            None => self.forward(x)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1(),
        }
    }

    /// [`Linear::forward_then`] by the decode kernels with their epilogue: `None` where they do not
    /// apply (many rows, inputs other than f32, a weight format without such a kernel).
    fn few_rows_then(&self, x: &Tensor, gelu: bool, residual: Option<&Tensor>) -> Result<Option<Tensor>> {
        match self.few_rows_values(x, gelu, residual)? {
            Some((y, dims)) => Tensor::from_vec(y, dims, x.device()).map(Some),
            None => Ok(None),
        }
    }

    /// [`Linear::few_rows_then`]'s values and their shape.
    fn few_rows_values(
        &self,
        x: &Tensor,
        gelu: bool,
        residual: Option<&Tensor>,
    ) -> Result<Option<(Vec<f32>, Vec<usize>)>> {
        let k = x.dims().last().copied().unwrap_or(0);
        let rows = x.elem_count() / k.max(1);
        let mut out_dims = x.dims().to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.out_dim;
        }
        let in_dim = match &self.weight {
            Weight::Dense(w) => w.dims().get(1).copied(),
            Weight::Quant(q) => Some(q.dims().1),
            Weight::Panels(p) => Some(p.cols()),
        };
        // A width that does not match takes the general path, which reports it as an error.
        if rows == 0
            || rows > gemv::MAX_ROWS
            || in_dim != Some(k)
            || residual.is_some_and(|r| r.dims() != out_dims.as_slice())
        {
            return Ok(None);
        }
        let mut tensors = vec![x];
        tensors.extend(self.bias.as_ref());
        tensors.extend(residual);
        let mut y = vec![0f32; rows * self.out_dim];
        let done = with_f32_slices(&tensors, |t| -> Result<bool> {
            let mut rest = t[1..].iter().copied();
            let epi = gemv::Epilogue {
                bias: self.bias.as_ref().and_then(|_| rest.next()),
                gelu,
                residual: residual.and_then(|_| rest.next()),
            };
            match &self.weight {
                Weight::Dense(w) => {
                    if !w.is_contiguous() {
                        return Ok(false);
                    }
                    let (storage, layout) = w.storage_and_layout();
                    let (off, len) = (layout.start_offset(), w.elem_count());
                    match &*storage {
                        Storage::Cpu(CpuStorage::F32(v)) => {
                            gemv::matmul_t_then(t[0], &v[off..off + len], k, &mut y, &epi)
                        }
                        Storage::Cpu(CpuStorage::F16(v)) => {
                            gemv::matmul_t_then(t[0], &v[off..off + len], k, &mut y, &epi)
                        }
                        _ => return Ok(false),
                    }
                    Ok(true)
                }
                Weight::Quant(q) => Ok(q.matmul_t_then(t[0], &mut y, &epi)),
                Weight::Panels(p) => {
                    gemv::matmul_t_panels_then(t[0], p, &mut y, &epi);
                    Ok(true)
                }
            }
        })?;
        if done.transpose()? != Some(true) {
            return Ok(None);
        }
        Ok(Some((y, out_dims)))
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // A few rows (decode): the streaming kernels, the bias added by their tasks.
        if let Some(y) = self.few_rows_then(x, false, None)? {
            return Ok(y);
        }
        // x as `rows × in`, for the arms that take a matrix.
        let flat = || -> Result<(Tensor, usize)> {
            let in_dim = x.dims().last().copied().unwrap_or(0);
            let rows = x.elem_count() / in_dim.max(1);
            Ok((x.reshape((rows, in_dim))?, rows))
        };
        let y = match &self.weight {
            Weight::Dense(w) => {
                let (x2, rows) = flat()?;
                let blocked = if rows > gemv::MAX_ROWS { many_rows(w, self.bias.as_ref(), &x2, rows)? } else { None };
                if let Some(y) = blocked {
                    y // the kernel added the bias
                } else {
                    // Many rows without AVX-512 (or inputs the kernels do not take): candle's blocked
                    // GEMM, in f32 (an f16 weight is widened for it).
                    let y = if w.dtype() == x2.dtype() {
                        x2.matmul(&w.t()?)? // rows, out
                    } else {
                        x2.matmul(&w.to_dtype(x2.dtype())?.t()?)?
                    };
                    add_bias(y, self.bias.as_ref())?
                }
            }
            Weight::Quant(q) => add_bias(q.matmul_t(x)?.reshape(((), self.out_dim))?, self.bias.as_ref())?,
            Weight::Panels(p) => {
                let (x2, rows) = flat()?;
                match many_rows_panels(p, self.bias.as_ref(), &x2, rows)? {
                    Some(y) => y, // the kernel added the bias
                    None => {
                        // Without the prefill kernel (turned off to compare): candle's GEMM on the
                        // rows, widened to f32.
                        let w = Tensor::from_vec(p.to_rows(), (p.rows(), p.cols()), x.device())?;
                        add_bias(x2.matmul(&w.to_dtype(x2.dtype())?.t()?)?, self.bias.as_ref())?
                    }
                }
            }
        };
        let mut out_dims = x.dims().to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.out_dim;
        }
        y.reshape(out_dims) // …, out
    }
}

fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `x · wᵀ + bias` by the AVX-512 prefill kernel of [`gemm`] for f32 activations and an f32 or f16
/// weight (the bias is added in the kernel's first pass); `None` where the CPU lacks AVX-512 (candle's
/// GEMM then runs).
pub(super) fn many_rows(w: &Tensor, bias: Option<&Tensor>, x: &Tensor, rows: usize) -> Result<Option<Tensor>> {
    if !gemm::available() || x.dtype() != DType::F32 || !w.is_contiguous() {
        return Ok(None);
    }
    let (n, k) = w.dims2()?;
    if x.dims().last() != Some(&k) {
        return Ok(None); // the general path reports the mismatch as an error
    }
    let (storage, layout) = w.storage_and_layout();
    let off = layout.start_offset();
    blocked(bias, x, rows, n, k, |xv, bias, y| match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => gemm::matmul_t(xv, &v[off..off + n * k], k, bias, y),
        Storage::Cpu(CpuStorage::F16(v)) => gemm::matmul_t(xv, &v[off..off + n * k], k, bias, y),
        _ => false,
    })
}

/// [`many_rows`] for f16 weights in panels; `None` where the prefill kernel does not run.
fn many_rows_panels(w: &gemv::F16Panels, bias: Option<&Tensor>, x: &Tensor, rows: usize) -> Result<Option<Tensor>> {
    if !gemm::available() || x.dtype() != DType::F32 {
        return Ok(None);
    }
    if x.dims().last() != Some(&w.cols()) {
        // Checked here, as candle's matmul would: the kernel asserts it.
        candle_core::bail!("linear: input width {:?} does not match the weight's {}", x.dims().last(), w.cols());
    }
    blocked(bias, x, rows, w.rows(), w.cols(), |xv, bias, y| gemm::matmul_t_panels(xv, w, bias, y))
}

/// `product(x, bias, y)` on the plain values of the f32 `x` (`rows × k`) and an f32 `bias` into a
/// new `rows × n` tensor; `None` where the bias is not f32, `x` is not on the CPU, or `product`
/// declines (returns `false`).
fn blocked(
    bias: Option<&Tensor>,
    x: &Tensor,
    rows: usize,
    n: usize,
    k: usize,
    product: impl FnOnce(&[f32], Option<&[f32]>, &mut [f32]) -> bool,
) -> Result<Option<Tensor>> {
    let bias = match bias {
        Some(b) if b.dtype() == DType::F32 => Some(b.flatten_all()?.to_vec1::<f32>()?),
        Some(_) => return Ok(None),
        None => None,
    };
    let x = x.contiguous()?;
    let (xs, xl) = x.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(xv)) = &*xs else { return Ok(None) };
    let xv = &xv[xl.start_offset()..xl.start_offset() + rows * k];
    let mut y = vec![0f32; rows * n];
    let done = product(xv, bias.as_deref(), &mut y);
    drop(xs);
    if !done {
        return Ok(None);
    }
    Ok(Some(Tensor::from_vec(y, (rows, n), x.device())?))
}

/// Where a dense f32 or f16 weight's first value lies, and its values' size in bytes; `None` for
/// other dtypes.
fn dense_start(w: &Tensor) -> Option<(usize, usize)> {
    let (storage, layout) = w.storage_and_layout();
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Some((v[layout.start_offset()..].as_ptr() as usize, 4)),
        Storage::Cpu(CpuStorage::F16(v)) => Some((v[layout.start_offset()..].as_ptr() as usize, 2)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn tells_which_weights_lie_on_huge_pages() {
        use crate::model::huge_arena::filled_vec;
        let dev = Device::Cpu;
        let (n, k) = (256, 256);
        let f16_on_arena = Tensor::from_vec(filled_vec(n * k, half::f16::ONE), (n, k), &dev).unwrap();
        let f16_in_heap = Tensor::from_vec(vec![half::f16::ONE; n * k], (n, k), &dev).unwrap();
        let f32_in_heap = Tensor::ones((n, k), DType::F32, &dev).unwrap();
        let f32_mapped = Tensor::ones(((8 << 20) / k, k), DType::F32, &dev).unwrap();
        assert!(Linear::new(f16_on_arena, None).on_huge_pages());
        assert!(!Linear::new(f16_in_heap, None).on_huge_pages());
        assert!(!Linear::new(f32_in_heap.clone(), None).on_huge_pages());
        assert!(Linear::new(f32_mapped, None).on_huge_pages(), "32 MiB and up are mapped and advised");
        let bf16_mapped = Tensor::ones(((16 << 20) / k, k), DType::BF16, &dev).unwrap();
        assert!(Linear::new(bf16_mapped, None).on_huge_pages(), "whatever the dtype");
        let q = Linear::maybe_quantized(f32_in_heap, None, Some(QuantKind::Q8_0)).unwrap();
        assert!(q.is_quantized() && q.on_huge_pages());
    }

    /// Each thread's share of the rows, end to end, is the whole matrix: dense (f32, f16) and
    /// q8_0, whose values alone are hinted.
    #[test]
    fn share_spans_cover_the_weight_s_rows_in_order() {
        let parts = gemv::pool_threads();
        let (out, inp) = (300, 64);
        let w = Tensor::from_vec(
            (0..out * inp).map(|i| (i % 13) as f32 - 6.0).collect::<Vec<_>>(),
            (out, inp),
            &Device::Cpu,
        )
        .unwrap();
        let cases = [
            (Linear::new(w.clone(), None), 4),
            (Linear::new(w.to_dtype(DType::F16).unwrap(), None), 2),
            (Linear::maybe_quantized(w.clone(), None, Some(QuantKind::Q8_0)).unwrap(), 1),
        ];
        for (lin, elem) in cases {
            let spans = lin.share_spans();
            assert_eq!(spans.len(), parts);
            assert_eq!(spans.iter().map(|s| s.1).sum::<usize>(), out * inp * elem, "{elem}-byte values");
            for (i, pair) in spans.windows(2).enumerate() {
                assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "share {i} runs into share {}", i + 1);
            }
            for (i, s) in spans.iter().enumerate() {
                assert_eq!(s.1, gemv::share_rows(out, i, parts).len() * inp * elem);
            }
        }
        // A weight that is not one run of rows gives none.
        assert!(Linear::new(w.t().unwrap(), None).share_spans().is_empty());
    }

    #[test]
    fn matches_candle_linear() {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &dev).unwrap();
        let b = Tensor::new(&[0.5f32, -1.], &dev).unwrap();
        let x = Tensor::arange(0f32, 12., &dev).unwrap().reshape((2, 2, 3)).unwrap();
        let ours = Linear::new(w.clone(), Some(b.clone())).forward(&x).unwrap();
        let theirs = candle_nn::Linear::new(w, Some(b)).forward(&x).unwrap();
        let d: f32 = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-6);
    }

    /// The fused bias, GELU and residual give the bits the separate tensor ops give, for each
    /// weight format, for decode's few rows (the kernels' epilogue) and a prefill's many (the ops).
    #[test]
    fn forward_then_matches_the_ops_it_fuses() {
        let dev = Device::Cpu;
        let (k, n) = (64, 100); // n: a task of 64 columns and a short one
        let w = Tensor::arange(0f32, (n * k) as f32, &dev).unwrap().reshape((n, k)).unwrap();
        let w = w.affine(1.7e-3, -0.3).unwrap().sin().unwrap();
        let b = Tensor::arange(0f32, n as f32, &dev).unwrap().affine(0.01, -0.4).unwrap();
        // Each layer beside the same weight without a bias: its plain products, to which the
        // reference adds the bias, GELU and residual as separate tensor ops.
        let w16 = w.to_dtype(DType::F16).unwrap();
        let q8 = |b: Option<Tensor>| Linear::maybe_quantized(w.clone(), b, Some(QuantKind::Q8_0)).unwrap();
        let layers = [
            (Linear::new(w.clone(), Some(b.clone())), Linear::new(w.clone(), None)),
            (Linear::new(w16.clone(), Some(b.clone())), Linear::new(w16, None)),
            (q8(Some(b.clone())), q8(None)),
        ];
        for (i, (layer, plain)) in layers.iter().enumerate() {
            for rows in [1, 3, 20] {
                let x = Tensor::arange(0f32, (rows * k) as f32, &dev).unwrap().reshape((rows, 1, k)).unwrap();
                let x = x.affine(0.37, 0.0).unwrap().cos().unwrap();
                let res = Tensor::arange(0f32, (rows * n) as f32, &dev).unwrap().reshape((rows, 1, n)).unwrap();
                let res = res.affine(0.11, 0.0).unwrap().sin().unwrap();
                for gelu in [false, true] {
                    for residual in [None, Some(&res)] {
                        let mut want = plain.forward(&x).unwrap().broadcast_add(&b).unwrap();
                        if gelu {
                            want = crate::model::gelu::gelu(&want).unwrap();
                        }
                        if let Some(r) = residual {
                            want = (want + r).unwrap();
                        }
                        let got = layer.forward_then(&x, gelu, residual).unwrap();
                        assert_eq!(got.dims(), &[rows, 1, n]);
                        let (got, want) = (got.flatten_all().unwrap(), want.flatten_all().unwrap());
                        let (got, want) = (got.to_vec1::<f32>().unwrap(), want.to_vec1::<f32>().unwrap());
                        assert!(
                            got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "weight {i}, {rows} rows, gelu {gelu}, residual {}",
                            residual.is_some()
                        );
                    }
                }
            }
        }
    }

    /// An f16 layer in panels gives its rows' bits: for decode's few rows and a prefill's many,
    /// with and without the fused epilogue; and it says where its values lie as the rows did.
    #[test]
    fn panels_give_the_rows_bits() {
        let dev = Device::Cpu;
        // A width of whole and half lines, an odd row count; over 64 KiB, so made in the arena.
        let (k, n) = (272, 131);
        let w = Tensor::arange(0f32, (n * k) as f32, &dev).unwrap().reshape((n, k)).unwrap();
        let w = w.affine(2.3e-3, -0.1).unwrap().sin().unwrap().to_dtype(DType::F16).unwrap();
        let b = Tensor::arange(0f32, n as f32, &dev).unwrap().affine(0.01, -0.4).unwrap();
        let rows_layer = Linear::new(w.clone(), Some(b.clone()));
        let panel_layer = Linear::new(w, Some(b)).into_panels().unwrap();
        assert!(matches!(panel_layer.weight, Weight::Panels(_)));
        assert_eq!(panel_layer.weight_bytes(), n.div_ceil(3) * 3 * k.next_multiple_of(32) * 2);
        let bits = |t: Tensor| -> Vec<u32> {
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
        };
        for rows in [1, 2, 8, 16, 17, 40] {
            let x = Tensor::arange(0f32, (rows * k) as f32, &dev).unwrap().reshape((rows, 1, k)).unwrap();
            let x = x.affine(0.37, 0.0).unwrap().cos().unwrap();
            let res = Tensor::arange(0f32, (rows * n) as f32, &dev).unwrap().reshape((rows, 1, n)).unwrap();
            let want = rows_layer.forward(&x).unwrap();
            let got = panel_layer.forward(&x).unwrap();
            assert_eq!(got.dims(), &[rows, 1, n]);
            assert_eq!(bits(got), bits(want), "{rows} rows");
            let want = rows_layer.forward_then(&x, true, Some(&res)).unwrap();
            assert_eq!(bits(panel_layer.forward_then(&x, true, Some(&res)).unwrap()), bits(want), "{rows} rows");
        }
        // Its shares' spans run end to end over the panels, each starting at its first row's panel.
        let spans = panel_layer.share_spans();
        assert_eq!(spans.len(), gemv::pool_threads());
        assert_eq!(spans.iter().map(|s| s.1).sum::<usize>(), panel_layer.weight_bytes());
        assert!(spans.windows(2).all(|p| p[0].0 + p[0].1 == p[1].0));
        assert!(panel_layer.on_huge_pages(), "panels are made in the weights' arena");
    }

    #[test]
    fn a_mismatched_width_is_an_error_not_a_panic() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((8, 64), DType::F32, &dev).unwrap();
        let dense = Linear::new(w.clone(), None);
        let panels = Linear::new(w.to_dtype(DType::F16).unwrap(), None).into_panels().unwrap();
        let q = Linear::maybe_quantized(w, None, Some(QuantKind::Q8_0)).unwrap();
        for rows in [1, 40] {
            let x = Tensor::zeros((rows, 1, 32), DType::F32, &dev).unwrap();
            for layer in [&dense, &panels, &q] {
                assert!(layer.forward(&x).is_err(), "{rows} rows");
                assert!(layer.forward_then(&x, true, None).is_err(), "{rows} rows");
            }
        }
    }

    #[test]
    fn quantized_linear_is_close_and_keeps_shape() {
        let dev = Device::Cpu;
        let w = Tensor::arange(0f32, 64. * 8., &dev).unwrap().reshape((8, 64)).unwrap().affine(1e-3, -0.25).unwrap();
        let b = Tensor::arange(0f32, 8., &dev).unwrap();
        let x =
            Tensor::arange(0f32, 2. * 3. * 64., &dev).unwrap().reshape((2, 3, 64)).unwrap().affine(1e-2, -1.).unwrap();
        let dense = Linear::new(w.clone(), Some(b.clone())).forward(&x).unwrap();
        let q = Linear::maybe_quantized(w, Some(b), Some(QuantKind::Q4K)).unwrap(); // width 64: q8_0
        assert!(q.is_quantized());
        let got = q.forward(&x).unwrap();
        assert_eq!(got.dims(), &[2, 3, 8]);
        let d: f32 = (got - dense).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 0.05, "{d}");
    }
}
