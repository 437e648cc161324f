//! BLOOM on candle and everything needed to load it: configs, weights (safetensors, shards, PyTorch),
//! tokenizers, the hub cache, and the embedded default model.

pub mod alibi;
pub mod alloc;
#[cfg(target_arch = "x86_64")]
mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_avx2;
pub mod bloom;
mod cephes;
pub mod config;
pub mod cpu;
#[cfg(target_arch = "x86_64")]
mod decode_attention;
#[cfg(target_arch = "x86_64")]
mod decode_attention_avx2;
pub mod embedded;
pub mod error;
mod f32_slices;
pub mod gelu;
pub mod gemm;
pub mod gemv;
pub mod hub;
mod huge_arena;
pub mod kv_cache;
mod layer_norm;
pub mod linear;
pub mod prefix_cache;
pub mod quant;
pub mod random;
pub mod row_range;
pub mod safetensors_read;
#[cfg(target_arch = "x86_64")]
mod segment_attention;
pub mod threads;
pub mod weights;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use crate::engine::{AddedRows, DecoderModel, EngineError, ModelInfo};
pub use bloom::Bloom;
pub use config::Config;
pub use error::LoadError;
use prefix_cache::PrefixCache;
use weights::WeightFiles;

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Compute dtype; `None` means f32 (the CPU default).
    pub dtype: Option<DType>,
    /// Quantize every matrix to this block format while loading (activations stay f32).
    pub quantize: Option<quant::QuantKind>,
    /// Memory for prompts' cached keys and values, in MiB (`None`: [`DEFAULT_PREFIX_CACHE_MB`]; 0: off).
    pub prefix_cache_mb: Option<usize>,
}

/// Default bound of the prefix cache: a few templates' 8-shot prompts of bloom-560m (about 140 MB
/// each in f32) with many questions after each (a few MB each: they share the template's part),
/// one template of bloom-7b1.
pub const DEFAULT_PREFIX_CACHE_MB: usize = 1024;

impl LoadOptions {
    /// The dtype tensors are read in: f32 when quantizing (the blocks are made from f32).
    /// The prefix cache's bound in bytes.
    pub fn prefix_cache_bytes(&self) -> usize {
        self.prefix_cache_mb.unwrap_or(DEFAULT_PREFIX_CACHE_MB).saturating_mul(1 << 20)
    }

    pub fn read_dtype(&self) -> DType {
        match self.quantize {
            Some(_) => DType::F32,
            None => self.dtype.unwrap_or(DType::F32),
        }
    }
}

/// `f32`, `f16` or `bf16`.
pub fn parse_dtype(s: &str) -> Result<DType, LoadError> {
    match s.to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(DType::F32),
        "f16" | "float16" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(LoadError::Invalid(format!("unknown dtype '{other}' (expected f32, f16 or bf16)"))),
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

/// A model ready for the local engine.
pub struct LoadedModel {
    pub model: Box<dyn DecoderModel>,
    pub tokenizer: Tokenizer,
    pub info: ModelInfo,
    pub eos_token_id: Option<u32>,
    /// Bytes of all parameters in memory.
    pub weight_bytes: usize,
    /// Bytes one decode step streams (all but the embedding table when the LM head is untied).
    pub decode_bytes_per_step: usize,
    /// Bytes of keys and values per cached position (all layers), read by every step that attends to it.
    pub kv_bytes_per_token: usize,
}

/// Loads `spec`: `None` for the embedded default model, else a model directory or a hub id
/// (resolved from the local Hugging Face cache, downloaded only if absent).
pub fn load(spec: Option<&str>, opts: &LoadOptions) -> Result<LoadedModel, LoadError> {
    let Some(spec) = spec else {
        return load_embedded(opts);
    };
    let path = Path::new(spec);
    if path.is_dir() {
        return load_dir(path, spec, opts);
    }
    if path.exists() {
        return Err(LoadError::file(path, "is not a model directory"));
    }
    if !hub::looks_like_hub_id(spec) {
        return Err(LoadError::file(path, "model directory does not exist"));
    }
    let dir = match hub::resolve_cached(spec, &hub::cache_dir()) {
        Some(dir) => dir,
        None => hub::download(spec)?,
    };
    load_dir(&dir, spec, opts)
}

/// Loads a model directory in Hugging Face layout; `id` is how the user named it.
pub fn load_dir(dir: &Path, id: &str, opts: &LoadOptions) -> Result<LoadedModel, LoadError> {
    let config_path = dir.join("config.json");
    let config_bytes = std::fs::read(&config_path).map_err(|e| LoadError::file(&config_path, io_msg(&e)))?;
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(LoadError::file(&tok_path, "not found"));
    }
    let tokenizer =
        Tokenizer::from_file(&tok_path).map_err(|e| LoadError::file(&tok_path, format!("invalid tokenizer: {e}")))?;
    let cfg = parse_config(&config_bytes).map_err(|m| LoadError::file(&config_path, m))?;
    let files = WeightFiles::find(dir)?;
    let dtype = opts.read_dtype();
    let vb = files.var_builder(dtype, &Device::Cpu)?;
    let model = build_with(&cfg, vb, opts).map_err(|e| LoadError::file(&files.describe(), e))?;
    Ok(finish(model, tokenizer, id, &config_bytes, opts))
}

/// Loads the embedded tiny-bloom-gsm8k.
pub fn load_embedded(opts: &LoadOptions) -> Result<LoadedModel, LoadError> {
    let name = Path::new(embedded::ID);
    let cfg = parse_config(embedded::CONFIG).map_err(|m| LoadError::file(name, m))?;
    let tokenizer = Tokenizer::from_bytes(embedded::TOKENIZER)
        .map_err(|e| LoadError::file(name, format!("invalid tokenizer: {e}")))?;
    let dtype = opts.read_dtype();
    let vb = VarBuilder::from_slice_safetensors(embedded::WEIGHTS, dtype, &Device::Cpu)
        .map_err(|e| LoadError::file(name, e))?;
    let model = build_with(&cfg, vb, opts).map_err(|e| LoadError::file(name, e))?;
    Ok(finish(model, tokenizer, "default", embedded::CONFIG, opts))
}

/// Parses and validates `config.json`.
pub fn parse_config(bytes: &[u8]) -> Result<Config, String> {
    let cfg: Config = serde_json::from_slice(bytes).map_err(|e| format!("invalid config: {e}"))?;
    cfg.validate()?;
    Ok(cfg)
}

/// Builds BLOOM from a checkpoint whose tensor names may or may not carry the `transformer.` prefix.
pub fn build(cfg: &Config, vb: VarBuilder) -> candle_core::Result<Bloom> {
    build_with(cfg, vb, &LoadOptions::default())
}

/// As [`build`], quantizing as `opts` says (`vb` must then read f32: see [`LoadOptions::read_dtype`]).
pub fn build_with(cfg: &Config, vb: VarBuilder, opts: &LoadOptions) -> candle_core::Result<Bloom> {
    let root = if vb.contains_tensor("transformer.word_embeddings.weight") { vb.pp("transformer") } else { vb.clone() };
    let lm_head = if !cfg.tie_word_embeddings && vb.contains_tensor("lm_head.weight") {
        Some(vb.get((cfg.vocab_size, cfg.hidden_size), "lm_head.weight")?)
    } else {
        None
    };
    Bloom::new_quantized(cfg, root, lm_head, opts.quantize)
}

/// The name of the weights' format: `f32`, `f16`, `bf16`, `q8_0` or `q4k`.
pub fn format_name(opts: &LoadOptions) -> String {
    match opts.quantize {
        Some(q) => q.name().to_string(),
        None => dtype_name(opts.dtype.unwrap_or(DType::F32)).to_string(),
    }
}

fn finish(model: Bloom, tokenizer: Tokenizer, id: &str, config_bytes: &[u8], opts: &LoadOptions) -> LoadedModel {
    let cfg = model.config().clone();
    let (weight_bytes, decode_bytes_per_step) = (model.weight_bytes(), model.decode_bytes_per_step());
    let kv_bytes_per_token = model.kv_bytes_per_token();
    let eos_token_id = cfg.eos_token_id.or_else(|| tokenizer.token_to_id("</s>"));
    let info = ModelInfo {
        id: id.to_string(),
        config_hash: crate::hash::sha256_hex(config_bytes),
        n_params: cfg.n_params(),
        vocab_size: cfg.vocab_size,
        dtype: format_name(opts),
        remote: None,
    };
    let model = Box::new(BloomDecoder::with_prefix_cache(model, opts.prefix_cache_bytes()));
    LoadedModel { model, tokenizer, info, eos_token_id, weight_bytes, decode_bytes_per_step, kv_bytes_per_token }
}

fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        _ => e.to_string(),
    }
}

/// BLOOM behind the engine's [`DecoderModel`] interface, with a prefix cache: a prefill computes
/// only the prompt's tokens after the longest prefix whose keys and values an earlier prefill left.
pub struct BloomDecoder {
    model: Bloom,
    device: Device,
    prefixes: PrefixCache,
    /// Prompt tokens the last prefill took from `prefixes`.
    cached_prompt_tokens: usize,
    /// The tokens every row of the current batch of prompts begins with (see `start_batch`).
    batch_shared: Vec<u32>,
}

impl BloomDecoder {
    /// Without a prefix cache: every prefill computes the whole prompt.
    pub fn new(model: Bloom) -> Self {
        Self::with_prefix_cache(model, 0)
    }

    /// With a prefix cache of at most `bytes` of keys and values.
    pub fn with_prefix_cache(model: Bloom, bytes: usize) -> Self {
        Self {
            model,
            device: Device::Cpu,
            prefixes: PrefixCache::new(bytes),
            cached_prompt_tokens: 0,
            batch_shared: Vec::new(),
        }
    }

    pub fn prefix_cache(&self) -> &PrefixCache {
        &self.prefixes
    }

    pub fn bloom_mut(&mut self) -> &mut Bloom {
        &mut self.model
    }

    /// A batched prompt must begin with the batch's shared tokens and have one of its own at least.
    fn check_extends_shared(&self, prompt: &[u32]) -> Result<(), EngineError> {
        let shared = self.batch_shared.len();
        if prompt.len() <= shared || !prompt.starts_with(&self.batch_shared) {
            return Err(EngineError::Invalid(format!(
                "a batched prompt must extend the batch's {shared} shared tokens (got {} tokens)",
                prompt.len()
            )));
        }
        Ok(())
    }
}

impl DecoderModel for BloomDecoder {
    fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    fn prefill(&mut self, prompt: &[u32]) -> Result<Vec<f32>, EngineError> {
        if prompt.is_empty() {
            return Err(EngineError::Invalid("the prompt encodes to no tokens".into()));
        }
        self.model.clear_kv_cache();
        // At least the last token is computed: its logits are what the prefill returns.
        let hit = self.prefixes.lookup(prompt, prompt.len() - 1)?;
        let cached = hit.as_ref().map_or(0, |h| h.len());
        if let Some(hit) = &hit {
            self.model.set_prefix_kv(hit.layers())?;
        }
        let ids = Tensor::new(&prompt[cached..], &self.device)?.unsqueeze(0)?; // 1, s
        let logits = self.model.forward_prefix(&ids)?.squeeze(0)?.to_vec1()?;
        // Only the prompt's own positions are new to the cache: the part this prefill computed,
        // shared with the model's cache (no copy).
        self.prefixes.insert(prompt, hit.as_ref(), self.model.prefix_kv_from(cached)?)?;
        self.cached_prompt_tokens = cached;
        Ok(logits)
    }

    fn cached_prompt_tokens(&self) -> usize {
        self.cached_prompt_tokens
    }

    fn can_batch_prompts(&self) -> bool {
        true
    }

    fn start_batch(&mut self, shared: &[u32]) -> Result<(), EngineError> {
        self.model.clear_kv_cache();
        self.batch_shared = shared.to_vec();
        if !shared.is_empty() {
            // Its keys and values become the cache's shared prefix (and the prefix cache's).
            self.prefill(shared)?;
        }
        Ok(())
    }

    fn add_rows(&mut self, prompt: &[u32], n: usize) -> Result<Vec<f32>, EngineError> {
        self.check_extends_shared(prompt)?;
        let shared = self.batch_shared.len();
        // Prefill the prompt on its own (mostly from the prefix cache) with the batch set aside,
        // then add its tokens after the shared part as the new rows' own start.
        let batch = self.model.take_kv_caches();
        let logits = self.prefill(prompt);
        let own = self.model.prefix_kv_from(shared);
        self.model.restore_kv_caches(batch)?;
        let (logits, own) = (logits?, own?);
        self.model.add_cache_rows(&own, n)?;
        Ok(logits)
    }

    /// All prompts' own tokens in one pass over the weights (the batch's shared start is already
    /// cached, and its keys are what each prompt attends to first). The prompts do not go into the
    /// prefix cache: one question's whole prompt is rarely asked for again, and copying each
    /// would cost more than its own tokens.
    fn add_rows_many(&mut self, prompts: &[(&[u32], usize)]) -> Result<Vec<AddedRows>, EngineError> {
        for (prompt, _) in prompts {
            self.check_extends_shared(prompt)?;
        }
        let shared = self.batch_shared.len();
        if prompts.len() > 1 {
            let segments: Vec<&[u32]> = prompts.iter().map(|(p, _)| &p[shared..]).collect();
            if let Some(bloom::Segments { logits, kv }) = self.model.forward_segments(&segments)? {
                let rows: Vec<(&[(Tensor, Tensor)], usize)> =
                    prompts.iter().zip(&kv).map(|((_, n), layers)| (layers.as_slice(), *n)).collect();
                self.model.add_cache_rows_many(&rows)?;
                self.cached_prompt_tokens = shared;
                return Ok(logits
                    .into_iter()
                    .map(|logits| AddedRows { logits, cached_prompt_tokens: shared })
                    .collect());
            }
        }
        crate::engine::add_rows_one_at_a_time(self, prompts)
    }

    fn reserve_positions(&mut self, positions: usize) {
        self.model.set_row_room(positions);
    }

    fn fork(&mut self, n: usize) -> Result<(), EngineError> {
        Ok(self.model.select_cache_rows(&vec![0; n])?)
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, EngineError> {
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(1)?; // b, 1
        Ok(self.model.forward_logits(&ids)?)
    }

    fn retain(&mut self, rows: &[usize]) -> Result<(), EngineError> {
        let rows: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        Ok(self.model.select_cache_rows(&rows)?)
    }
}
