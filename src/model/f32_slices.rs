//! Borrowing tensors' values as plain f32 slices for the hand-written kernels.

use candle_core::{CpuStorage, DType, Result, Storage, Tensor};

/// Runs `f` on the values of `tensors` as plain f32 slices (each made contiguous first, held
/// through candle's storage guards for the call); `None` when any of them is not f32 on the CPU.
pub(crate) fn with_f32_slices<R>(tensors: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Result<Option<R>> {
    if tensors.iter().any(|t| t.dtype() != DType::F32) {
        return Ok(None);
    }
    let contiguous = tensors.iter().map(|t| t.contiguous()).collect::<Result<Vec<_>>>()?;
    let guards: Vec<_> = contiguous.iter().map(|t| (t.storage_and_layout(), t.elem_count())).collect();
    let mut slices = Vec::with_capacity(guards.len());
    for ((storage, layout), n) in &guards {
        let Storage::Cpu(CpuStorage::F32(v)) = &**storage else { return Ok(None) };
        slices.push(&v[layout.start_offset()..layout.start_offset() + n]);
    }
    Ok(Some(f(&slices)))
}
