//! What a few-row product does to its outputs after the dot products: `y = act(x·wᵀ + bias) +
//! residual`, applied by each task to its own columns while they are still in L1.
//!
//! Why in the kernel: a decode step of bloom-560m ran about 170 small element-wise ops a step
//! (bias, GELU, residual) between the pool's jobs, each a fresh tensor and a pass on one thread
//! while the other waited: about 2 ms of a 32 ms q8_0 step. The arithmetic and its order are the
//! ones those ops did (`(dot + bias)`, then GELU, then `+ residual`), so results are the same bits.

use super::Out;

/// The element-wise work after a product; `Epilogue::default()` is none.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Added to every row (`n` values).
    pub bias: Option<&'a [f32]>,
    /// BLOOM's GELU (see [`crate::model::gelu`]) after the bias.
    pub gelu: bool,
    /// Added last (`m × n`, row-major like `y`).
    pub residual: Option<&'a [f32]>,
}

impl Epilogue<'_> {
    /// Panics unless the vectors fit an `m × n` product.
    pub(super) fn check(&self, m: usize, n: usize) {
        assert!(
            self.bias.is_none_or(|b| b.len() == n) && self.residual.is_none_or(|r| r.len() == m * n),
            "gemv epilogue: mismatched lengths"
        );
    }

    fn is_none(&self) -> bool {
        self.bias.is_none() && !self.gelu && self.residual.is_none()
    }

    /// Applies the epilogue to columns `j0..j1` of every one of `m` rows of `out`.
    ///
    /// # Safety
    /// `out` must hold `m` rows of the `n` that [`Self::check`] was given, `j0 ≤ j1 ≤ n`, and no
    /// other thread may touch columns `j0..j1` meanwhile.
    pub(super) unsafe fn apply(&self, out: Out, m: usize, j0: usize, j1: usize) {
        if self.is_none() {
            return;
        }
        for r in 0..m {
            // SAFETY: row r's columns j0..j1 are inside `y` and this task's alone (the contract).
            let y = unsafe { std::slice::from_raw_parts_mut(out.ptr.add(r * out.n + j0), j1 - j0) };
            if let Some(b) = self.bias {
                for (y, b) in y.iter_mut().zip(&b[j0..j1]) {
                    *y += b;
                }
            }
            if self.gelu {
                crate::model::gelu::gelu_in_place(y);
            }
            if let Some(res) = self.residual {
                for (y, x) in y.iter_mut().zip(&res[r * out.n + j0..r * out.n + j1]) {
                    *y += x;
                }
            }
        }
    }
}
