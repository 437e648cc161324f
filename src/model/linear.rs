//! A dense layer that multiplies as one 2-D GEMM. candle-nn's `Linear` broadcasts the weight over the
//! batch, so a batch of 8 decode rows would read the weight 8 times; flattening `b, s` into rows reads
//! it once per step.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub struct Linear {
    /// `out, in`, as stored in the checkpoint.
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Loads `weight` (`out, in`) and `bias` (`out`) under `vb`.
    pub fn load(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = vb.get(out_dim, "bias")?;
        Ok(Self::new(weight, Some(bias)))
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims.last().copied().unwrap_or(0);
        let rows = x.elem_count() / in_dim.max(1);
        let x2 = x.reshape((rows, in_dim))?; // rows, in
        let y = x2.matmul(&self.weight.t()?)?; // rows, out
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        y.reshape(out_dims) // …, out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
}
