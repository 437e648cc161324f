//! BLOOM (BigScience's `BloomForCausalLM`) on candle, following transformers' `modeling_bloom.py`:
//! fused QKV in Hugging Face's `[batch, seq, n_head, 3, head_dim]` layout, ALiBi instead of position
//! embeddings, softmax in f32, tanh-approximated GELU, and an LM head tied to the word embeddings.

use std::sync::Arc;

use candle_core::{DType, IndexOp, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::alibi;
use super::config::Config;
use super::f32_slices::with_f32_slices;
use super::gemv;
use super::kv_cache::KvCache;
use super::layer_norm::LayerNorm;
use super::linear::Linear;
use super::quant::{QMatrix, QuantKind};
use super::row_range;

/// One layer's keys and values (`1, h, len, d` each).
pub type Kv = (Tensor, Tensor);

/// What [`Bloom::forward_segments`] computes for each of its prompts' own tokens.
#[derive(Debug)]
pub struct Segments {
    /// f32 logits at each segment's last token.
    pub logits: Vec<Vec<f32>>,
    /// Each segment's keys and values, one per layer.
    pub kv: Vec<Vec<Kv>>,
}

/// A block's output over several prompts' tokens and each prompt's keys and values.
type SegmentsOutput = (Tensor, Vec<Kv>);

/// Layer norms run on f32 activations whatever the weights' dtype.
fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    LayerNorm::new(vb.get(size, "weight")?, vb.get(size, "bias")?, eps)
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
    /// The same slopes, for the fused prefill kernel.
    slope_values: Vec<f32>,
    cache: KvCache,
}

impl Attention {
    fn new(cfg: &Config, vb: VarBuilder, quant: Option<QuantKind>) -> Result<Self> {
        let h = cfg.hidden_size;
        let slopes = alibi::slopes(cfg.n_head);
        let slope_values = slopes.clone();
        let slopes = Tensor::from_vec(slopes, (cfg.n_head, 1, 1), vb.device())?;
        let query_key_value = Linear::load_quantized(h, 3 * h, vb.pp("query_key_value"), quant)?;
        let cache = KvCache::new(query_key_value.on_huge_pages());
        Ok(Self {
            query_key_value,
            dense: Linear::load_quantized(h, h, vb.pp("dense"), quant)?,
            n_head: cfg.n_head,
            head_dim: cfg.head_dim(),
            slopes,
            slope_values,
            cache,
        })
    }

    /// `into_prefix`: the tokens belong to the shared prompt (a prefill), whatever their count.
    /// `last_only`: every token's keys and values are cached, but only the last position's output
    /// is computed and returned (`b, 1, hidden`): nothing reads the others' in the last layer.
    fn forward(
        &mut self,
        x: &Tensor,
        residual: &Tensor,
        mask: Option<&Tensor>,
        into_prefix: bool,
        last_only: bool,
    ) -> Result<Tensor> {
        let (b, s, hidden) = x.dims3()?;
        let (h, d) = (self.n_head, self.head_dim);
        let qkv = self.query_key_value.forward(x)?; // b, s, 3 * hidden
        let (q, k, v) = split_qkv(&qkv, h, d)?; // b, h, s, d each
        if into_prefix {
            self.cache.append_prefix(&k, &v)?;
        } else {
            self.cache.append(&k, &v)?;
        }
        let kv_len = self.cache.len();
        // The last position sees every cached key: no causal mask for it.
        let (q, residual, mask, s) = if last_only && s > 1 {
            (q.narrow(2, s - 1, 1)?, &residual.narrow(1, s - 1, 1)?, None, 1)
        } else {
            (q, residual, mask, s)
        };
        if b == 1 && self.cache.row_lens().is_empty() {
            if let Some(ctx) = self.fused_prompt(&q, s)? {
                return self.dense.forward_then(&ctx, false, Some(residual));
            }
        }
        if s == 1 && !self.cache.row_lens().is_empty() {
            if let Some(ctx) = self.fused_step(&q)? {
                return self.dense.forward_then(&ctx, false, Some(residual));
            }
        }

        // Scores against the shared prompt (read once for all rows) and against each row's own
        // continuation, side by side along the key axis.
        let q = (q * (1.0 / (d as f64).sqrt()))?;
        let prefix = self.cache.prefix()?;
        let rows = self.cache.rows()?;
        let mut parts = Vec::with_capacity(2);
        if let Some((pk, _)) = &prefix {
            parts.push(shared_matmul(&q, &pk.t()?, b, s)?); // b, h, s, L
        }
        if let Some((rk, _)) = &rows {
            parts.push(q.matmul(&rk.t()?)?); // b, h, s, S
        }
        let scores = if parts.len() == 1 { parts.remove(0) } else { Tensor::cat(&parts, 3)? };
        let scores = scores.to_dtype(DType::F32)?; // b, h, s, kv
                                                   // ALiBi adds slope * key position; the query's own offset is constant per row, so softmax ignores it.
        let positions =
            Tensor::arange(0u32, kv_len as u32, x.device())?.to_dtype(DType::F32)?.reshape((1, 1, kv_len))?; // 1, 1, kv
        let bias = self.slopes.broadcast_mul(&positions)?; // h, 1, kv
        let mut scores = scores.broadcast_add(&bias)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?; // mask: s, kv
        }
        if let Some(rows_mask) = self.cache.row_mask()? {
            scores = scores.broadcast_add(&rows_mask)?; // b, 1, 1, kv: rows of other prompts' lengths
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?; // b, h, s, kv
        let mut ctx: Option<Tensor> = None;
        let mut at = 0;
        if let Some((_, pv)) = &prefix {
            let l = pv.dim(2)?;
            let p = probs.narrow(3, 0, l)?.to_dtype(pv.dtype())?;
            ctx = Some(shared_matmul(&p, pv, b, s)?); // b, h, s, d
            at = l;
        }
        if let Some((_, rv)) = &rows {
            let p = probs.narrow(3, at, kv_len - at)?.to_dtype(rv.dtype())?.contiguous()?;
            let part = p.matmul(rv)?; // b, h, s, d
            ctx = Some(match ctx {
                Some(c) => (c + part)?,
                None => part,
            });
        }
        let ctx = match ctx {
            Some(c) => c,
            None => candle_core::bail!("attention over an empty cache"),
        };
        let ctx = ctx.transpose(1, 2)?.reshape((b, s, hidden))?; // b, s, hidden
        self.dense.forward_then(&ctx, false, Some(residual))
    }
}

impl Attention {
    /// One prompt's attention over the shared prefix (which ends with its `s` tokens) by the fused
    /// kernel: `Some(ctx)` (`1, s, hidden`), or `None` where it does not apply (no AVX-512, f16 cache,
    /// non-x86 CPU) and the general path runs.
    #[cfg(target_arch = "x86_64")]
    fn fused_prompt(&self, q: &Tensor, s: usize) -> Result<Option<Tensor>> {
        if self.cache.prefix_parts().is_empty() {
            return Ok(None);
        }
        let shape =
            super::attention::Shape { heads: self.n_head, head_dim: self.head_dim, s, kv: self.cache.prefix_len() };
        let mut out = vec![0f32; s * self.n_head * self.head_dim];
        let mut tensors = vec![q];
        tensors.extend(self.cache.prefix_parts().iter().flat_map(|(k, v)| [k, v]));
        let done = with_f32_slices(&tensors, |t| {
            super::attention::causal_alibi(&shape, t[0], &kv_parts(&t[1..]), &self.slope_values, &mut out)
        })?;
        if done != Some(true) {
            return Ok(None);
        }
        Tensor::from_vec(out, (1, s, self.n_head * self.head_dim), q.device()).map(Some)
    }

    /// One decode step's attention (one query per row over the shared prompt and each row's own
    /// positions) by the fused kernel: `Some(ctx)` (`b, 1, hidden`), or `None` where it does not
    /// apply and the general path runs.
    #[cfg(target_arch = "x86_64")]
    fn fused_step(&self, q: &Tensor) -> Result<Option<Tensor>> {
        let Some((ok, ov)) = self.cache.rows_full() else { return Ok(None) };
        let mut tensors = vec![q, ok, ov];
        tensors.extend(self.cache.prefix_parts().iter().flat_map(|(k, v)| [k, v]));
        let hidden = self.n_head * self.head_dim;
        let rows = self.cache.row_lens().len();
        let capacity = ok.dim(2)?;
        let mut out = vec![0f32; rows * hidden];
        let then = self.dense.share_spans();
        let done = with_f32_slices(&tensors, |t| {
            let step = super::decode_attention::Step {
                heads: self.n_head,
                head_dim: self.head_dim,
                q: t[0],
                prompt: &kv_parts(&t[3..]),
                prompt_len: self.cache.prefix_len(),
                own: Some((t[1], t[2])),
                capacity,
                lens: self.cache.row_lens(),
                slopes: &self.slope_values,
                then: &then,
            };
            super::decode_attention::attend(&step, &mut out)
        })?;
        if done != Some(true) {
            return Ok(None);
        }
        Tensor::from_vec(out, (rows, 1, hidden), q.device()).map(Some)
    }

    /// Several prompts' own tokens at once (`x`: `1, T, hidden`, segment `i` the `lens[i]` tokens
    /// after the segments before it), each attending causally to the cache's shared prefix and to
    /// its own tokens only, by the fused kernel. The cache is left as it is. Returns the output
    /// (`1, T, hidden`; `1, lens.len(), hidden`, each segment's last position only, when `last_only`)
    /// and each segment's keys and values (`1, h, lens[i], d`); `None` where the kernel does not apply.
    #[cfg(target_arch = "x86_64")]
    fn forward_segments(
        &self,
        x: &Tensor,
        residual: &Tensor,
        lens: &[usize],
        last_only: bool,
    ) -> Result<Option<SegmentsOutput>> {
        let (_, t, hidden) = x.dims3()?;
        let (h, d) = (self.n_head, self.head_dim);
        let (q, k, v) = split_qkv(&self.query_key_value.forward(x)?, h, d)?; // 1, h, T, d each
        let out_rows = if last_only { lens.len() } else { t };
        let mut out = vec![0f32; out_rows * hidden];
        // The kernel packs the shared prefix once per head and each segment's own tokens after it.
        let mut tensors = vec![&q, &k, &v];
        tensors.extend(self.cache.prefix_parts().iter().flat_map(|(k, v)| [k, v]));
        let done = with_f32_slices(&tensors, |sl| {
            let sg = super::segment_attention::Segments {
                heads: h,
                head_dim: d,
                q: sl[0],
                k: sl[1],
                v: sl[2],
                prefix: &kv_parts(&sl[3..]),
                lens,
                last_only,
                slopes: &self.slope_values,
            };
            super::segment_attention::attend(&sg, &mut out)
        })?;
        if done != Some(true) {
            return Ok(None);
        }
        let mut own = Vec::with_capacity(lens.len());
        let mut at = 0;
        for &s in lens {
            own.push((k.narrow(2, at, s)?, v.narrow(2, at, s)?)); // 1, h, s, d
            at += s;
        }
        let ctx = Tensor::from_vec(out, (1, out_rows, hidden), x.device())?;
        let residual =
            if last_only { residual.index_select(&last_positions(lens, x.device())?, 1)? } else { residual.clone() };
        Ok(Some((self.dense.forward_then(&ctx, false, Some(&residual))?, own)))
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn fused_step(&self, _q: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn forward_segments(
        &self,
        _x: &Tensor,
        _residual: &Tensor,
        _lens: &[usize],
        _last_only: bool,
    ) -> Result<Option<SegmentsOutput>> {
        Ok(None)
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn fused_prompt(&self, _q: &Tensor, _s: usize) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// `qkv` (`b, s, h·3·d`: per token and head its query, key and value, Hugging Face's fused layout)
/// split into `q`, `k` and `v` (`b, h, s, d` each) in one pass over its values.
///
/// Why not three strided copies through candle (a reshape, an index, a transpose and a copy each):
/// in a one-path q8_0 decode step of bloom-560m the time from the qkv product's end to the split's
/// fell from 12.7 to 6.5 µs a layer (timers around the pool's jobs): time the main thread works
/// alone while the pool's other thread waits.
fn split_qkv(qkv: &Tensor, h: usize, d: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, s, width) = qkv.dims3()?;
    if width != 3 * h * d {
        candle_core::bail!("split_qkv: width {width}, expected 3 × {h} heads × {d}");
    }
    let split = with_f32_slices(&[qkv], |t| {
        let n = b * h * s * d;
        let (mut q, mut k, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        // In the outputs' order: row, head, token.
        for bb in 0..b {
            for hh in 0..h {
                for tt in 0..s {
                    let at = ((bb * s + tt) * h + hh) * 3 * d;
                    let (qs, rest) = t[0][at..at + 3 * d].split_at(d);
                    let (ks, vs) = rest.split_at(d);
                    q.extend_from_slice(qs);
                    k.extend_from_slice(ks);
                    v.extend_from_slice(vs);
                }
            }
        }
        (q, k, v)
    })?;
    let dev = qkv.device();
    match split {
        Some((q, k, v)) => Ok((
            Tensor::from_vec(q, (b, h, s, d), dev)?,
            Tensor::from_vec(k, (b, h, s, d), dev)?,
            Tensor::from_vec(v, (b, h, s, d), dev)?,
        )),
        None => {
            // Activations other than f32 (none today): the same split by tensor ops.
            let qkv = qkv.reshape((b, s, h, 3, d))?; // b, s, h, 3, d
            let part = |i: usize| qkv.i((.., .., .., i))?.transpose(1, 2)?.contiguous(); // b, h, s, d
            Ok((part(0)?, part(1)?, part(2)?))
        }
    }
}

/// The index of each segment's last token in their concatenation (`lens.len()`, u32).
fn last_positions(lens: &[usize], dev: &candle_core::Device) -> Result<Tensor> {
    let ends: Vec<u32> = lens
        .iter()
        .scan(0, |end, &s| {
            *end += s;
            Some(*end as u32 - 1)
        })
        .collect();
    Tensor::new(ends.as_slice(), dev)
}

/// Slices of keys and values, alternating, as the kernels' parts.
#[cfg(target_arch = "x86_64")]
fn kv_parts<'a>(t: &[&'a [f32]]) -> Vec<(&'a [f32], &'a [f32])> {
    t.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

/// `a · m` where `a` is `b, h, s, x` and `m` is one row's `1, h, x, y` shared by all `b` rows:
/// the rows are stacked into one `h, b·s, x` operand so `m` is read once, not `b` times.
fn shared_matmul(a: &Tensor, m: &Tensor, b: usize, s: usize) -> Result<Tensor> {
    if b == 1 {
        return a.contiguous()?.matmul(m);
    }
    let (_, h, _, x) = a.dims4()?;
    let y = m.dim(3)?;
    let stacked = a.transpose(0, 1)?.reshape((h, b * s, x))?; // h, b·s, x
    let out = stacked.matmul(&m.squeeze(0)?)?; // h, b·s, y
    out.reshape((h, b, s, y))?.transpose(0, 1)?.contiguous() // b, h, s, y
}

/// `dense_h_to_4h`, GELU (tanh approximation, as `bloom_gelu_forward`), `dense_4h_to_h`.
#[derive(Debug, Clone)]
struct Mlp {
    dense_h_to_4h: Linear,
    dense_4h_to_h: Linear,
}

impl Mlp {
    fn new(cfg: &Config, vb: VarBuilder, quant: Option<QuantKind>) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            dense_h_to_4h: Linear::load_quantized(h, 4 * h, vb.pp("dense_h_to_4h"), quant)?,
            dense_4h_to_h: Linear::load_quantized(4 * h, h, vb.pp("dense_4h_to_h"), quant)?,
        })
    }

    fn weight_bytes(&self) -> usize {
        [&self.dense_h_to_4h, &self.dense_4h_to_h].iter().map(|l| l.weight_bytes() + l.bias_bytes()).sum()
    }

    fn forward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let x = self.dense_h_to_4h.forward_then(x, true, None)?;
        self.dense_4h_to_h.forward_then(&x, false, Some(residual))
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
    fn new(cfg: &Config, vb: VarBuilder, quant: Option<QuantKind>) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_epsilon);
        Ok(Self {
            input_layernorm: layer_norm(h, eps, vb.pp("input_layernorm"))?,
            self_attention: Attention::new(cfg, vb.pp("self_attention"), quant)?,
            post_attention_layernorm: layer_norm(h, eps, vb.pp("post_attention_layernorm"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"), quant)?,
            residual_post_layernorm: cfg.apply_residual_connection_post_layernorm,
        })
    }

    /// `last_only`: as for [`Attention::forward`]; the block then returns `b, 1, hidden`.
    fn forward(&mut self, x: &Tensor, mask: Option<&Tensor>, into_prefix: bool, last_only: bool) -> Result<Tensor> {
        let ln = self.input_layernorm.forward(x)?;
        let residual = if self.residual_post_layernorm { &ln } else { x };
        let attn = self.self_attention.forward(&ln, residual, mask, into_prefix, last_only)?;
        let ln = self.post_attention_layernorm.forward(&attn)?;
        let residual = if self.residual_post_layernorm { &ln } else { &attn };
        self.mlp.forward(&ln, residual)
    }

    /// [`Attention::forward_segments`] through the whole block.
    fn forward_segments(&self, x: &Tensor, lens: &[usize], last_only: bool) -> Result<Option<SegmentsOutput>> {
        let ln = self.input_layernorm.forward(x)?;
        let residual = if self.residual_post_layernorm { &ln } else { x };
        let Some((attn, own)) = self.self_attention.forward_segments(&ln, residual, lens, last_only)? else {
            return Ok(None);
        };
        let ln = self.post_attention_layernorm.forward(&attn)?;
        let residual = if self.residual_post_layernorm { &ln } else { &attn };
        Ok(Some((self.mlp.forward(&ln, residual)?, own)))
    }
}

/// The word embeddings: a candle table, quantized blocks dequantized row by row on lookup, or f16
/// panels (`gemv::F16Panels`) widened row by row, shared with the tied LM head.
#[derive(Debug, Clone)]
enum Embeddings {
    Dense(candle_nn::Embedding),
    Quant(Arc<QMatrix>),
    Panels(Arc<gemv::F16Panels>),
}

impl Embeddings {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Embeddings::Dense(e) => e.forward(ids)?.to_dtype(DType::F32),
            Embeddings::Quant(q) => q.embedding(ids),
            Embeddings::Panels(p) => {
                let flat = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
                let Some(rows) = p.lookup(&flat) else {
                    candle_core::bail!("a token id is past the vocabulary ({} tokens)", p.rows())
                };
                let mut dims = ids.dims().to_vec();
                dims.push(p.cols());
                Tensor::from_vec(rows, dims, ids.device()) // …, hidden
            }
        }
    }
}

/// The whole causal LM. `forward` returns logits at the last position only: the LM head is the
/// largest matrix, and nothing needs the others.
#[derive(Debug, Clone)]
pub struct Bloom {
    word_embeddings: Embeddings,
    word_embeddings_layernorm: LayerNorm,
    h: Vec<Block>,
    ln_f: LayerNorm,
    /// `vocab, hidden`: the word embeddings when tied (BLOOM always ties them), no bias.
    lm_head: Linear,
    tied: bool,
    cfg: Config,
}

impl Bloom {
    /// `vb` points at the transformer's root (`transformer.` already applied if the checkpoint has it);
    /// `lm_head` is the untied head when the config does not tie embeddings.
    pub fn new(cfg: &Config, vb: VarBuilder, lm_head: Option<Tensor>) -> Result<Self> {
        Self::new_quantized(cfg, vb, lm_head, None)
    }

    /// As [`Bloom::new`], with every matrix (embeddings and LM head included) quantized to `quant` as
    /// it is read, so no f32 copy of more than one tensor is ever held. Layer norms and biases stay f32.
    pub fn new_quantized(
        cfg: &Config,
        vb: VarBuilder,
        lm_head: Option<Tensor>,
        quant: Option<QuantKind>,
    ) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_epsilon);
        let (vocab, vemb) = (cfg.vocab_size, vb.pp("word_embeddings"));
        // Quantized from chunks of rows where the backend reads them (see `row_range`): the whole f32
        // table (1 GB at bloom-560m, 4 GB at bloom-7b1) beside its blocks made a q8_0 load peak at
        // 2.2x the weights.
        let qemb = match quant {
            Some(kind) if vemb.contains_tensor(&row_range::name("weight", 0, 1)) => {
                let read = |r0, n| vemb.get((n, h), &row_range::name("weight", r0, n));
                QMatrix::quantize_by_rows(vocab, h, kind, read)?.map(Arc::new)
            }
            Some(kind) => QMatrix::quantize(&vemb.get((vocab, h), "weight")?, kind)?.map(Arc::new),
            None => None,
        };
        let tied = lm_head.is_none() || cfg.tie_word_embeddings;
        // A tied f16 table in panels where the layers are (see `Linear::load_quantized`), read in
        // blocks of rows so that it never lies whole in rows beside its panels.
        let panels = quant.is_none()
            && tied
            && vb.dtype() == DType::F16
            && gemv::panels_wanted()
            && vemb.contains_tensor(&row_range::name("weight", 0, 1));
        let (word_embeddings, tied_head) = match qemb {
            Some(q) => (Embeddings::Quant(q.clone()), Linear::quantized(q, None)),
            None if panels => {
                let v32 = vemb.to_dtype(DType::F32);
                let read = |r0, n| v32.get((n, h), &row_range::name("weight", r0, n))?.flatten_all()?.to_vec1::<f32>();
                let wrong = |r0| candle_core::Error::Msg(format!("word_embeddings.weight: rows from {r0} misshapen"));
                let p = Arc::new(gemv::F16Panels::from_row_blocks(vocab, h, read, wrong)?);
                (Embeddings::Panels(p.clone()), Linear::from_panels(p, None))
            }
            None => {
                let emb = vemb.get((vocab, h), "weight")?;
                (Embeddings::Dense(candle_nn::Embedding::new(emb.clone(), h)), Linear::new(emb, None))
            }
        };
        let lm_head = match lm_head {
            Some(w) if !tied => Linear::maybe_quantized(w, None, quant)?,
            _ => tied_head,
        };
        let blocks = (0..cfg.n_layer).map(|i| Block::new(cfg, vb.pp("h").pp(i), quant)).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings,
            word_embeddings_layernorm: layer_norm(h, eps, vb.pp("word_embeddings_layernorm"))?,
            h: blocks,
            ln_f: layer_norm(h, eps, vb.pp("ln_f"))?,
            lm_head,
            tied,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Bytes of all parameters as held in memory (a tied table counted once).
    pub fn weight_bytes(&self) -> usize {
        let emb = if self.tied { 0 } else { self.embedding_bytes() };
        self.decode_bytes_per_step() + emb
    }

    /// Bytes a decode step streams from memory: every matrix, bias and norm of the blocks and the
    /// LM head (the embedding lookup itself touches one row per token).
    pub fn decode_bytes_per_step(&self) -> usize {
        let norm = |ln: &LayerNorm| 2 * ln.weight().elem_count() * ln.weight().dtype().size_in_bytes();
        let blocks: usize = self
            .h
            .iter()
            .map(|b| {
                let a = &b.self_attention;
                norm(&b.input_layernorm)
                    + norm(&b.post_attention_layernorm)
                    + a.query_key_value.weight_bytes()
                    + a.query_key_value.bias_bytes()
                    + a.dense.weight_bytes()
                    + a.dense.bias_bytes()
                    + b.mlp.weight_bytes()
            })
            .sum();
        blocks + norm(&self.ln_f) + norm(&self.word_embeddings_layernorm) + self.lm_head.weight_bytes()
    }

    /// Bytes of keys and values one cached position holds over all layers: a decode step reads
    /// this much per position it attends to, beside the weights. Activations, and so the cache,
    /// are f32 whatever the weights' format.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.cfg.n_layer * 2 * self.cfg.hidden_size * DType::F32.size_in_bytes()
    }

    fn embedding_bytes(&self) -> usize {
        match &self.word_embeddings {
            Embeddings::Dense(e) => e.embeddings().elem_count() * e.embeddings().dtype().size_in_bytes(),
            Embeddings::Quant(q) => q.size_in_bytes(),
            Embeddings::Panels(p) => p.size_in_bytes(),
        }
    }

    /// Positions already in the KV cache.
    pub fn cached_len(&self) -> usize {
        self.h.first().map(|b| b.self_attention.cache.len()).unwrap_or(0)
    }

    /// Runs `input_ids` (`b, s`) after what is cached; returns f32 logits `b, vocab` at the last position.
    pub fn forward(&mut self, input_ids: &Tensor) -> Result<Tensor> {
        self.run(input_ids, false)
    }

    /// Runs prompt tokens (`1, s`, any `s`) into the shared prefix of the cache, after what it holds.
    pub fn forward_prefix(&mut self, input_ids: &Tensor) -> Result<Tensor> {
        self.run(input_ids, true)
    }

    /// Computes several prompts' own tokens in one pass over the weights, each segment after the
    /// cache's shared prefix (its rows are ignored and nothing is cached). Returns each segment's
    /// f32 logits at its last token and its keys and values per layer (`1, h, len, d`), or `None`
    /// where the fused attention does not apply (no AVX-512, an f16 cache): the caller then runs
    /// the prompts one at a time.
    pub fn forward_segments(&self, segments: &[&[u32]]) -> Result<Option<Segments>> {
        if segments.iter().any(|s| s.is_empty()) {
            candle_core::bail!("forward_segments: an empty segment");
        }
        let lens: Vec<usize> = segments.iter().map(|s| s.len()).collect();
        let ids: Vec<u32> = segments.concat();
        let ids = Tensor::new(ids.as_slice(), &candle_core::Device::Cpu)?.unsqueeze(0)?; // 1, T
        let mut x = self.word_embeddings.forward(&ids)?; // 1, T, hidden
        x = self.word_embeddings_layernorm.forward(&x)?;
        let layers = self.h.len();
        // own[layer][segment]
        let mut own = Vec::with_capacity(layers);
        for (i, block) in self.h.iter().enumerate() {
            let Some((y, kv)) = block.forward_segments(&x, &lens, i + 1 == layers)? else { return Ok(None) };
            x = y;
            own.push(kv);
        }
        let x = self.ln_f.forward(&x)?; // 1, segments, hidden
        let logits = self.lm_head.forward(&x)?.to_dtype(DType::F32)?.squeeze(0)?.to_vec2()?; // segments, vocab

        // own[segment][layer]
        let mut by_segment: Vec<Vec<Kv>> = (0..lens.len()).map(|_| Vec::with_capacity(layers)).collect();
        for layer in own {
            for (seg, kv) in by_segment.iter_mut().zip(layer) {
                seg.push(kv);
            }
        }
        Ok(Some(Segments { logits, kv: by_segment }))
    }

    /// [`Bloom::forward`]'s logits as one vector per row, straight from the LM head's kernels: a
    /// decode step's logits (a megabyte a row at BLOOM's vocabulary) are not copied out of a tensor.
    pub fn forward_logits(&mut self, input_ids: &Tensor) -> Result<Vec<Vec<f32>>> {
        let last = self.run_to_head(input_ids, false)?; // b, hidden
        let rows = last.dim(0)?;
        let mut flat = self.lm_head.forward_values(&last)?; // b · vocab
        if rows <= 1 {
            return Ok(if rows == 0 { Vec::new() } else { vec![flat] });
        }
        // The first row keeps the buffer; the others are split off its end, the last first.
        let vocab = flat.len() / rows;
        let mut out: Vec<Vec<f32>> = (1..rows).rev().map(|r| flat.split_off(r * vocab)).collect();
        out.push(flat);
        out.reverse();
        Ok(out)
    }

    fn run(&mut self, input_ids: &Tensor, into_prefix: bool) -> Result<Tensor> {
        let last = self.run_to_head(input_ids, into_prefix)?;
        self.lm_head.forward(&last)?.to_dtype(DType::F32) // b, vocab
    }

    /// The final layer norm's output at each row's last position (`b, hidden`), the LM head's input.
    fn run_to_head(&mut self, input_ids: &Tensor, into_prefix: bool) -> Result<Tensor> {
        let (_b, s) = input_ids.dims2()?;
        let offset = self.cached_len();
        let mut x = self.word_embeddings.forward(input_ids)?; // b, s, hidden
        x = self.word_embeddings_layernorm.forward(&x)?;
        let mask = if s > 1 { Some(causal_mask(s, offset, x.device())?) } else { None };
        let layers = self.h.len();
        for (i, block) in self.h.iter_mut().enumerate() {
            // Only the logits at the last position are returned, so the last layer computes only
            // that position past its keys and values (a 24th of a prefill's matrix work at 24 layers).
            x = block.forward(&x, mask.as_ref(), into_prefix, i + 1 == layers)?;
        }
        let last = x.narrow(1, x.dim(1)? - 1, 1)?.squeeze(1)?; // b, hidden
        self.ln_f.forward(&last)
    }

    /// Gives every layer's rows room for `positions` of their own (see [`KvCache::set_room`]).
    pub fn set_row_room(&mut self, positions: usize) {
        for b in self.h.iter_mut() {
            b.self_attention.cache.set_room(positions);
        }
    }

    pub fn clear_kv_cache(&mut self) {
        for b in self.h.iter_mut() {
            b.self_attention.cache.clear();
        }
    }

    /// Each layer's shared prompt positions from `start` on (`1, h, L - start, d`): the part the
    /// prefill computed where it is exactly that (no copy), else a copy of just those positions, so
    /// they never keep more of the prompt's memory alive. Empty when nothing is prefilled.
    pub fn prefix_kv_from(&self, start: usize) -> Result<Vec<(Tensor, Tensor)>> {
        let mut layers = Vec::with_capacity(self.h.len());
        for b in &self.h {
            let c = &b.self_attention.cache;
            if let Some(kv) = c.prefix_range(start, c.prefix_len().saturating_sub(start))? {
                layers.push(kv);
            }
        }
        Ok(layers)
    }

    /// Makes `layers` (per layer, its parts' `(k, v)` of `1, h, Lᵢ, d`, in position order: a prompt's
    /// cached keys and values) the whole cache.
    pub fn set_prefix_kv(&mut self, layers: Vec<Vec<(Tensor, Tensor)>>) -> Result<()> {
        if layers.len() != self.h.len() {
            candle_core::bail!("prefix kv for {} layers, the model has {}", layers.len(), self.h.len());
        }
        for (b, parts) in self.h.iter_mut().zip(layers) {
            b.self_attention.cache.set_prefix(parts)?;
        }
        Ok(())
    }

    /// Takes every layer's cache out, leaving empty ones (to prefill another prompt meanwhile).
    pub fn take_kv_caches(&mut self) -> Vec<KvCache> {
        self.h.iter_mut().map(|b| std::mem::take(&mut b.self_attention.cache)).collect()
    }

    /// Puts caches taken by [`Bloom::take_kv_caches`] back.
    pub fn restore_kv_caches(&mut self, caches: Vec<KvCache>) -> Result<()> {
        if caches.len() != self.h.len() {
            candle_core::bail!("kv caches for {} layers, the model has {}", caches.len(), self.h.len());
        }
        for (b, c) in self.h.iter_mut().zip(caches) {
            b.self_attention.cache = c;
        }
        Ok(())
    }

    /// Adds `n` rows to every layer's batch, each starting with that layer's `(k, v)` (`1, h, s, d`).
    pub fn add_cache_rows(&mut self, layers: &[(Tensor, Tensor)], n: usize) -> Result<()> {
        self.add_cache_rows_many(&[(layers, n)])
    }

    /// [`Bloom::add_cache_rows`] for several prompts, in order, in one copy of each layer's batch.
    pub fn add_cache_rows_many(&mut self, prompts: &[(&[(Tensor, Tensor)], usize)]) -> Result<()> {
        if let Some((layers, _)) = prompts.iter().find(|(layers, _)| layers.len() != self.h.len()) {
            candle_core::bail!("row kv for {} layers, the model has {}", layers.len(), self.h.len());
        }
        for (i, b) in self.h.iter_mut().enumerate() {
            let parts: Vec<(&Tensor, &Tensor, usize)> =
                prompts.iter().map(|(layers, n)| (&layers[i].0, &layers[i].1, *n)).collect();
            b.self_attention.cache.add_rows_many(&parts)?;
        }
        Ok(())
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
    let mask: Vec<f32> =
        (0..s).flat_map(|i| (0..kv).map(move |j| if j > i + offset { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(mask, (s, kv), dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The one-pass split gives exactly what the strided tensor ops gave: each row, head and
    /// token's query, key and value where `b, h, s, d` puts them.
    #[test]
    fn split_qkv_matches_the_tensor_ops_it_replaced() {
        let dev = Device::Cpu;
        let (h, d) = (3, 4);
        for (b, s) in [(1, 1), (3, 1), (2, 5)] {
            let qkv =
                Tensor::arange(0f32, (b * s * 3 * h * d) as f32, &dev).unwrap().reshape((b, s, 3 * h * d)).unwrap();
            let (q, k, v) = split_qkv(&qkv, h, d).unwrap();
            let fused = qkv.reshape((b, s, h, 3, d)).unwrap();
            for (i, got) in [q, k, v].iter().enumerate() {
                let want = fused.i((.., .., .., i)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
                assert_eq!(got.dims(), &[b, h, s, d]);
                let (got, want) = (got.flatten_all().unwrap(), want.flatten_all().unwrap());
                assert_eq!(got.to_vec1::<f32>().unwrap(), want.to_vec1::<f32>().unwrap(), "part {i}, b {b}, s {s}");
            }
        }
        let wrong = Tensor::zeros((1, 1, 10), DType::F32, &dev).unwrap();
        assert!(split_qkv(&wrong, h, d).is_err(), "a width that is not 3·h·d");
    }

    /// A prefill keeps the prompt's keys and values on huge pages where the layers' weights are:
    /// f16 (read onto the weights' arena) and quantized, not f32 matrices under 32 MiB.
    #[test]
    fn the_prompt_s_keys_and_values_go_on_huge_pages_where_the_weights_are() {
        use crate::model::huge_arena::KV_ARENA;
        // qkv 384 × 128: 96 KiB in f16, one the arena takes. 2048 positions of 2 heads × 64: 1 MiB.
        let cfg = Config { hidden_size: 128, n_layer: 1, n_head: 2, ..Config::tiny(300) };
        let prompt =
            Tensor::from_vec((0..2048u32).map(|i| i % 300).collect::<Vec<_>>(), (1, 2048), &Device::Cpu).unwrap();
        for (dtype, quant, huge) in
            [(DType::F16, None, true), (DType::F32, Some(QuantKind::Q8_0), true), (DType::F32, None, false)]
        {
            let vb =
                VarBuilder::from_backend(Box::new(super::super::random::RandomWeights::new(7)), dtype, Device::Cpu);
            let mut model = Bloom::new_quantized(&cfg, vb, None, quant).unwrap();
            model.forward_prefix(&prompt).unwrap();
            let cache = &model.h[0].self_attention.cache;
            let parts: Vec<&Tensor> = cache.prefix_parts().iter().flat_map(|(k, v)| [k, v]).collect();
            assert_eq!(parts.len(), 2);
            for t in parts {
                let (s, l) = t.storage_and_layout();
                let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(x)) = &*s else { panic!("f32 keys") };
                let on = KV_ARENA.owns(x[l.start_offset()..].as_ptr() as *const u8);
                assert_eq!(on, huge, "{dtype:?} {quant:?}");
            }
        }
    }

    /// A decode step's logits taken straight from the LM head's kernels are the bits `forward`
    /// returns, for one row and several, dense and quantized.
    #[test]
    fn forward_logits_are_forward_s_logits() {
        let cfg = Config::tiny(300);
        let vb =
            || VarBuilder::from_backend(Box::new(super::super::random::RandomWeights::new(7)), DType::F32, Device::Cpu);
        for quant in [None, Some(QuantKind::Q8_0)] {
            let mut model = Bloom::new_quantized(&cfg, vb(), None, quant).unwrap();
            let prompt = Tensor::new(&[[5u32, 17, 42, 9]], &Device::Cpu).unwrap();
            model.forward_prefix(&prompt).unwrap();
            for ids in [vec![11u32], vec![11, 250, 3]] {
                let mut a = model.clone();
                a.select_cache_rows(&vec![0; ids.len()]).unwrap();
                let mut b = a.clone();
                let ids = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(1).unwrap(); // rows, 1
                let want: Vec<Vec<f32>> = a.forward(&ids).unwrap().to_vec2().unwrap();
                let got = b.forward_logits(&ids).unwrap();
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.len(), cfg.vocab_size);
                    assert!(g.iter().zip(w).all(|(x, y)| x.to_bits() == y.to_bits()), "{quant:?}");
                }
                // The rows differ (different tokens): a mix-up of rows would show.
                if want.len() > 1 {
                    assert_ne!(want[0], want[1]);
                }
            }
        }
    }

    #[test]
    fn mask_hides_the_future_only() {
        let m: Vec<Vec<f32>> = causal_mask(2, 1, &candle_core::Device::Cpu).unwrap().to_vec2().unwrap();
        assert_eq!(m[0], vec![0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], vec![0.0, 0.0, 0.0]);
    }
}
