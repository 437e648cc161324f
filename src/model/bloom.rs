//! BLOOM (BigScience's `BloomForCausalLM`) on candle, following transformers' `modeling_bloom.py`:
//! fused QKV in Hugging Face's `[batch, seq, n_head, 3, head_dim]` layout, ALiBi instead of position
//! embeddings, softmax in f32, tanh-approximated GELU, and an LM head tied to the word embeddings.

use candle_core::{DType, IndexOp, Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use super::alibi;
use super::config::Config;
use super::kv_cache::KvCache;
use super::linear::Linear;

fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    let weight = vb.get(size, "weight")?;
    let bias = vb.get(size, "bias")?;
    Ok(LayerNorm::new(weight, bias, eps))
}

/// Self-attention with ALiBi and a KV cache.
#[derive(Debug, Clone)]
struct Attention {
    query_key_value: Linear,
    dense: Linear,
    n_head: usize,
    head_dim: usize,
    /// `h, 1, 1`, f32.
    slopes: Tensor,
    cache: KvCache,
}

impl Attention {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let slopes = alibi::slopes(cfg.n_head);
        let slopes = Tensor::from_vec(slopes, (cfg.n_head, 1, 1), vb.device())?;
        Ok(Self {
            query_key_value: Linear::load(h, 3 * h, vb.pp("query_key_value"))?,
            dense: Linear::load(h, h, vb.pp("dense"))?,
            n_head: cfg.n_head,
            head_dim: cfg.head_dim(),
            slopes,
            cache: KvCache::default(),
        })
    }

    fn forward(&mut self, x: &Tensor, residual: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, s, hidden) = x.dims3()?;
        let qkv = self.query_key_value.forward(x)?; // b, s, 3 * hidden
        let qkv = qkv.reshape((b, s, self.n_head, 3, self.head_dim))?; // b, s, h, 3, d
        let q = qkv.i((.., .., .., 0))?.transpose(1, 2)?.contiguous()?; // b, h, s, d
        let k = qkv.i((.., .., .., 1))?.transpose(1, 2)?.contiguous()?; // b, h, s, d
        let v = qkv.i((.., .., .., 2))?.transpose(1, 2)?.contiguous()?; // b, h, s, d
        let (k, v) = self.cache.append(&k, &v)?; // b, h, kv, d
        let kv_len = k.dim(2)?;

        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?; // b, h, s, kv
        // ALiBi adds slope * key position; the query's own offset is constant per row, so softmax ignores it.
        let positions = Tensor::arange(0u32, kv_len as u32, x.device())?
            .to_dtype(DType::F32)?
            .reshape((1, 1, kv_len))?; // 1, 1, kv
        let bias = self.slopes.broadcast_mul(&positions)?; // h, 1, kv
        let mut scores = scores.broadcast_add(&bias)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?; // mask: s, kv
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?; // b, h, s, kv
        let ctx = probs.matmul(&v)?; // b, h, s, d
        let ctx = ctx.transpose(1, 2)?.reshape((b, s, hidden))?; // b, s, hidden
        self.dense.forward(&ctx)? + residual
    }
}

/// `dense_h_to_4h`, GELU (tanh approximation, as `bloom_gelu_forward`), `dense_4h_to_h`.
#[derive(Debug, Clone)]
struct Mlp {
    dense_h_to_4h: Linear,
    dense_4h_to_h: Linear,
}

impl Mlp {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            dense_h_to_4h: Linear::load(h, 4 * h, vb.pp("dense_h_to_4h"))?,
            dense_4h_to_h: Linear::load(4 * h, h, vb.pp("dense_4h_to_h"))?,
        })
    }

    fn forward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let x = self.dense_h_to_4h.forward(x)?.gelu()?;
        self.dense_4h_to_h.forward(&x)? + residual
    }
}

#[derive(Debug, Clone)]
struct Block {
    input_layernorm: LayerNorm,
    self_attention: Attention,
    post_attention_layernorm: LayerNorm,
    mlp: Mlp,
    residual_post_layernorm: bool,
}

impl Block {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_epsilon);
        Ok(Self {
            input_layernorm: layer_norm(h, eps, vb.pp("input_layernorm"))?,
            self_attention: Attention::new(cfg, vb.pp("self_attention"))?,
            post_attention_layernorm: layer_norm(h, eps, vb.pp("post_attention_layernorm"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
            residual_post_layernorm: cfg.apply_residual_connection_post_layernorm,
        })
    }

    fn forward(&mut self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let ln = self.input_layernorm.forward(x)?;
        let residual = if self.residual_post_layernorm { &ln } else { x };
        let attn = self.self_attention.forward(&ln, residual, mask)?;
        let ln = self.post_attention_layernorm.forward(&attn)?;
        let residual = if self.residual_post_layernorm { &ln } else { &attn };
        self.mlp.forward(&ln, residual)
    }
}

/// The whole causal LM. `forward` returns logits at the last position only: the LM head is the
/// largest matrix, and nothing needs the others.
#[derive(Debug, Clone)]
pub struct Bloom {
    word_embeddings: candle_nn::Embedding,
    word_embeddings_layernorm: LayerNorm,
    h: Vec<Block>,
    ln_f: LayerNorm,
    /// `vocab, hidden`: the word embeddings when tied (BLOOM always ties them).
    lm_head: Tensor,
    cfg: Config,
}

impl Bloom {
    /// `vb` points at the transformer's root (`transformer.` already applied if the checkpoint has it);
    /// `lm_head` is the untied head when the config does not tie embeddings.
    pub fn new(cfg: &Config, vb: VarBuilder, lm_head: Option<Tensor>) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_epsilon);
        let emb = vb.pp("word_embeddings").get((cfg.vocab_size, h), "weight")?;
        let blocks = (0..cfg.n_layer)
            .map(|i| Block::new(cfg, vb.pp("h").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let lm_head = match lm_head {
            Some(w) if !cfg.tie_word_embeddings => w,
            _ => emb.clone(),
        };
        Ok(Self {
            word_embeddings: candle_nn::Embedding::new(emb, h),
            word_embeddings_layernorm: layer_norm(h, eps, vb.pp("word_embeddings_layernorm"))?,
            h: blocks,
            ln_f: layer_norm(h, eps, vb.pp("ln_f"))?,
            lm_head,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Positions already in the KV cache.
    pub fn cached_len(&self) -> usize {
        self.h.first().map(|b| b.self_attention.cache.len()).unwrap_or(0)
    }

    /// Runs `input_ids` (`b, s`) after what is cached; returns f32 logits `b, vocab` at the last position.
    pub fn forward(&mut self, input_ids: &Tensor) -> Result<Tensor> {
        let (_b, s) = input_ids.dims2()?;
        let offset = self.cached_len();
        let mut x = self.word_embeddings.forward(input_ids)?; // b, s, hidden
        x = self.word_embeddings_layernorm.forward(&x)?;
        let mask = if s > 1 { Some(causal_mask(s, offset, x.device())?) } else { None };
        for block in self.h.iter_mut() {
            x = block.forward(&x, mask.as_ref())?;
        }
        let last = x.narrow(1, s - 1, 1)?.squeeze(1)?; // b, hidden
        let last = self.ln_f.forward(&last)?;
        last.matmul(&self.lm_head.t()?)?.to_dtype(DType::F32) // b, vocab
    }

    pub fn clear_kv_cache(&mut self) {
        for b in self.h.iter_mut() {
            b.self_attention.cache.clear();
        }
    }

    /// Rebuilds every layer's cache from the given batch rows (repeats fork, omissions drop).
    pub fn select_cache_rows(&mut self, rows: &[u32]) -> Result<()> {
        for b in self.h.iter_mut() {
            b.self_attention.cache.select_rows(rows)?;
        }
        Ok(())
    }
}

/// `s, offset + s`: 0 where a query may see a key, -inf where the key lies in its future.
fn causal_mask(s: usize, offset: usize, dev: &candle_core::Device) -> Result<Tensor> {
    let kv = offset + s;
    let mask: Vec<f32> = (0..s)
        .flat_map(|i| (0..kv).map(move |j| if j > i + offset { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (s, kv), dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_hides_the_future_only() {
        let m: Vec<Vec<f32>> = causal_mask(2, 1, &candle_core::Device::Cpu).unwrap().to_vec2().unwrap();
        assert_eq!(m[0], vec![0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], vec![0.0, 0.0, 0.0]);
    }
}
