//! Random weights of a given BLOOM shape, made in memory on request, tensor by tensor: lets `bench`
//! measure the published bigscience shapes without a download, and never holds more than the one
//! tensor being built in f32 (a quantizing load turns it into blocks before asking for the next).

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use rayon::prelude::*;

/// A `VarBuilder` backend whose every tensor is made up from its name: layer-norm weights are one,
/// biases zero, matrices uniform with the standard deviation transformers initialises BLOOM with (0.02).
/// Names are those of a checkpoint without the `transformer.` prefix and with a tied LM head.
#[derive(Debug, Clone, Default)]
pub struct RandomWeights {
    pub seed: u64,
}

impl RandomWeights {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The tensor `name` (or, for a [`row_range`](super::row_range) name, those rows of it: `shape`
    /// is then the rows' shape, and the values are the same as in the whole tensor's rows).
    fn make(&self, shape: &Shape, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        if let Some((base, r0, _)) = super::row_range::parse(name) {
            let (n, cols) = shape.dims2()?;
            if dtype != DType::F32 || base.ends_with(".bias") || base.ends_with("layernorm.weight") {
                candle_core::bail!("random weights: rows of '{base}' are only made in f32");
            }
            return Tensor::from_vec(uniform_range(r0 * cols, n * cols, 0.02, self.seed ^ fnv(base)), (n, cols), dev);
        }
        let n = shape.elem_count();
        let fill = if name.ends_with("layernorm.weight") || name == "ln_f.weight" {
            Some(1.0)
        } else if name.ends_with(".bias") {
            Some(0.0)
        } else {
            None
        };
        let data = match fill {
            Some(v) => vec![v as f32; n],
            // f16 straight from the generator: an f32 copy of the embedding first would put 2 bytes
            // more per parameter at the peak of the load (bloom-560m f16: 1.38x the weights).
            None if dtype == DType::F16 => {
                return Tensor::from_vec(uniform_f16(n, 0.02, self.seed ^ fnv(name)), shape.clone(), dev);
            }
            None => uniform(n, 0.02, self.seed ^ fnv(name)),
        };
        let t = Tensor::from_vec(data, shape.clone(), dev)?;
        if dtype == DType::F32 {
            Ok(t)
        } else {
            t.to_dtype(dtype)
        }
    }
}

impl SimpleBackend for RandomWeights {
    fn get(&self, s: Shape, name: &str, _h: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.make(&s, name, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("random weights need a shape for '{name}'")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        !name.starts_with("transformer.") && name != "lm_head.weight"
    }
}

/// `n` values uniform in ±std·√3 (standard deviation `std`), from `seed`; chunked over rayon so a
/// 250880×4096 embedding takes seconds, and deterministic whatever the thread count.
fn uniform(n: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| fill_chunk(chunk, i, std, seed));
    out
}

/// Values `start..start + n` of [`uniform`]'s sequence, making only the chunks that hold them.
fn uniform_range(start: usize, n: usize, std: f32, seed: u64) -> Vec<f32> {
    let (c0, c1) = (start / CHUNK, (start + n).div_ceil(CHUNK));
    let mut all = vec![0f32; (c1 - c0) * CHUNK];
    all.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| fill_chunk(chunk, c0 + i, std, seed));
    all.drain(..start - c0 * CHUNK);
    all.truncate(n);
    all
}

/// [`uniform`]'s values rounded to f16, made chunk by chunk (no f32 copy of the whole tensor).
fn uniform_f16(n: usize, std: f32, seed: u64) -> Vec<half::f16> {
    use half::slice::HalfFloatSliceExt;
    // The weight's final form (random f16 weights are made only for a model kept in f16): on the
    // weights' arena, as the f16 a checkpoint is read into (`safetensors_read`).
    let mut out = super::huge_arena::filled_vec(n, half::f16::ZERO);
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| {
        let mut f = vec![0f32; chunk.len()];
        fill_chunk(&mut f, i, std, seed);
        chunk.convert_from_f32_slice(&f);
    });
    out
}

/// Values per independently seeded chunk (the unit of parallel generation).
const CHUNK: usize = 1 << 16;

/// Chunk `i` of the sequence for `seed`: uniform in ±std·√3.
fn fill_chunk(chunk: &mut [f32], i: usize, std: f32, seed: u64) {
    let half = std * 3f32.sqrt();
    let mut s = splitmix(seed.wrapping_add(i as u64));
    for v in chunk.iter_mut() {
        s = xorshift(s);
        // 24 random bits to [0, 1), then to [-half, half).
        let u = (s >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
        *v = (2.0 * u - 1.0) * half;
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

fn xorshift(mut s: u64) -> u64 {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    s
}

fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_with_the_right_spread() {
        let a = uniform(100_000, 0.02, 7);
        assert_eq!(a, uniform(100_000, 0.02, 7));
        assert_ne!(a, uniform(100_000, 0.02, 8));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let var = a.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 1e-3, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "{}", var.sqrt());
    }

    #[test]
    fn rows_of_a_matrix_are_the_same_rows_of_the_whole() {
        let rw = RandomWeights::new(3);
        let name = "word_embeddings.weight";
        let whole: Vec<f32> = rw
            .make(&Shape::from((700, 300)), name, DType::F32, &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Ranges inside one generation chunk, across chunk boundaries, and the last rows.
        for (r0, n) in [(0, 1), (5, 10), (200, 300), (650, 50)] {
            let part =
                rw.make(&Shape::from((n, 300)), &crate::model::row_range::name(name, r0, n), DType::F32, &Device::Cpu);
            let part: Vec<f32> = part.unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(part, whole[r0 * 300..(r0 + n) * 300], "rows {r0}+{n}");
        }
    }

    #[test]
    fn f16_tensors_are_the_f32_values_rounded() {
        let rw = RandomWeights::new(7);
        let shape = Shape::from((300, 500)); // spans several generation chunks, the last one partial
        let a = rw.make(&shape, "h.0.mlp.dense_h_to_4h.weight", DType::F32, &Device::Cpu).unwrap();
        let b = rw.make(&shape, "h.0.mlp.dense_h_to_4h.weight", DType::F16, &Device::Cpu).unwrap();
        assert_eq!(b.dtype(), DType::F16);
        let want: Vec<f32> =
            a.to_dtype(DType::F16).unwrap().flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap();
        let got: Vec<f32> = b.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn layer_norms_are_identity_and_biases_zero() {
        let r = RandomWeights::new(0);
        let dev = Device::Cpu;
        let w: Vec<f32> =
            r.make(&Shape::from(4), "h.0.input_layernorm.weight", DType::F32, &dev).unwrap().to_vec1().unwrap();
        assert_eq!(w, vec![1.0; 4]);
        let b: Vec<f32> =
            r.make(&Shape::from(4), "h.0.mlp.dense_h_to_4h.bias", DType::F32, &dev).unwrap().to_vec1().unwrap();
        assert_eq!(b, vec![0.0; 4]);
        assert!(r.contains_tensor("word_embeddings.weight"));
        assert!(!r.contains_tensor("transformer.word_embeddings.weight"));
        assert!(!r.contains_tensor("lm_head.weight"));
    }
}
