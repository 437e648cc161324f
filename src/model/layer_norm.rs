//! BLOOM's layer norm over the last dimension of f32 activations, with the arithmetic of
//! candle-nn's fused `layer_norm` op (one f32 pass for the sum and the sum of squares, then
//! `(x − mean)·inv_std·w + b`), so the values are the bits that op gives.
//!
//! Why not that op: it hands every call to rayon's pool, whose threads then spin for more work on
//! the same two cores as the barrier pool's, and a decode step of 8 rows spent ~2 ms in its 48
//! norms. Here a few rows are normed on the calling thread and many (a prefill) on the barrier pool.

use candle_core::{DType, Module, Result, Tensor};

use super::f32_slices::with_f32_slices;

/// Rows normed on the calling thread; more go to the barrier pool.
const SERIAL_ROWS: usize = 16;

#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    /// candle-nn's, for inputs the fused arithmetic does not cover (see [`LayerNorm::forward`]).
    inner: candle_nn::LayerNorm,
    eps: f32,
}

impl LayerNorm {
    /// `weight` and `bias` (`size`) as f32, whatever the checkpoint's dtype.
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Result<Self> {
        let (weight, bias) = (weight.to_dtype(DType::F32)?, bias.to_dtype(DType::F32)?);
        Ok(Self { inner: candle_nn::LayerNorm::new(weight, bias, eps), eps: eps as f32 })
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle-nn takes its fused op only for contiguous inputs; the others keep its composed ops.
        let Some(bias) = self.inner.bias().filter(|_| x.is_contiguous() && x.dtype() == DType::F32) else {
            return self.inner.forward(x);
        };
        let normed = with_f32_slices(&[x, self.inner.weight(), bias], |t| norm_rows(t[0], t[1], t[2], self.eps))?;
        match normed {
            Some(y) => Tensor::from_vec(y, x.shape(), x.device()),
            None => self.inner.forward(x),
        }
    }
}

/// Every `w.len()`-wide row of `x` normed.
fn norm_rows(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let dim = w.len();
    let rows = x.len() / dim.max(1);
    let mut y = vec![0f32; x.len()];
    if rows <= SERIAL_ROWS {
        for (x, y) in x.chunks_exact(dim).zip(y.chunks_exact_mut(dim)) {
            norm_row(x, w, b, eps, y);
        }
        return y;
    }
    super::threads::for_each_chunk_mut(&mut y, dim, |r, y| norm_row(&x[r * dim..(r + 1) * dim], w, b, eps, y));
    y
}

/// candle-nn's `LayerNorm` op on one row, operation for operation.
fn norm_row(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) {
    let dim = x.len() as f32;
    let (mut sum, mut sum2) = (0f32, 0f32);
    for &v in x {
        sum += v;
        sum2 += v * v;
    }
    let mean = sum / dim;
    let var = sum2 / dim - mean * mean;
    let inv_std = (var + eps).sqrt().recip();
    for ((y, &x), (&w, &b)) in y.iter_mut().zip(x).zip(w.iter().zip(b)) {
        *y = (x - mean) * inv_std * w + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The same bits as candle-nn's layer norm, for a decode's few rows and a prefill's many, and
    /// for a non-contiguous input (which candle-nn's composed ops norm).
    #[test]
    fn matches_candle_nn_bit_for_bit() {
        let dev = Device::Cpu;
        let dim = 96;
        let w = Tensor::arange(0f32, dim as f32, &dev).unwrap().affine(0.03, 0.5).unwrap().cos().unwrap();
        let b = Tensor::arange(0f32, dim as f32, &dev).unwrap().affine(0.07, 0.0).unwrap().sin().unwrap();
        let ours = LayerNorm::new(w.clone(), b.clone(), 1e-5).unwrap();
        let theirs = candle_nn::LayerNorm::new(w, b, 1e-5);
        for rows in [1, 8, 40] {
            let x = Tensor::arange(0f32, (rows * dim) as f32, &dev).unwrap().reshape((rows, 1, dim)).unwrap();
            let x = x.affine(0.013, -2.0).unwrap().sin().unwrap().affine(3.0, 0.25).unwrap();
            for x in [x.clone(), x.transpose(0, 1).unwrap()] {
                let (a, b) = (ours.forward(&x).unwrap(), theirs.forward(&x).unwrap());
                assert_eq!(a.dims(), b.dims());
                let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()), "{rows} rows");
            }
        }
    }
}
