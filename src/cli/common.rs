//! Flags shared by several commands.

use std::sync::Arc;

use anyhow::Context;

use crate::engine::{Engine, LocalEngine, SamplingParams};
use crate::model::{self, LoadOptions};

/// Which model to run.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// A model directory (Hugging Face layout) or a hub id such as bigscience/bloom-560m.
    /// Default: the embedded tiny-bloom-gsm8k.
    #[arg(long)]
    pub model: Option<String>,
    /// Compute dtype: f32 (default on CPU), f16 or bf16.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Quantize the weights while loading: q8_0 or q4k (bloom-7b1 in q4k fits in 6 GiB).
    #[arg(long)]
    pub quantize: Option<String>,
    /// Compute threads (default: the available cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Memory for the keys and values of earlier prompts, in MiB: a prompt that starts like one of
    /// them (same template, another question) computes only the rest. 0 turns it off. [default: 1024]
    #[arg(long, value_name = "MB")]
    pub prefix_cache_mb: Option<usize>,
}

impl ModelArgs {
    /// Loads the model (the embedded default when `--model` is absent) into a local engine. The
    /// compute threads (`--threads`) are sized by `main` before any thread starts.
    pub fn open_engine(&self) -> anyhow::Result<Arc<dyn Engine>> {
        let dtype = self.dtype.as_deref().map(model::parse_dtype).transpose().context("--dtype")?;
        let quantize = match self.quantize.as_deref() {
            Some(q) => Some(
                model::quant::QuantKind::parse(q).with_context(|| format!("--quantize '{q}': expected q8_0 or q4k"))?,
            ),
            None => None,
        };
        let loaded = model::load(
            self.model.as_deref(),
            &LoadOptions { dtype, quantize, prefix_cache_mb: self.prefix_cache_mb },
        )?;
        Ok(Arc::new(LocalEngine::new(loaded.model, loaded.tokenizer, loaded.eos_token_id, loaded.info)))
    }
}

/// How to sample.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Number of reasoning paths sampled from the prompt in one batch.
    #[arg(long, default_value_t = 1)]
    pub paths: usize,
    /// Maximum generated tokens per path.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling: keep the most likely tokens up to this total probability.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Random seed (path i uses a stream derived from the seed and i).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Hugging Face's repetition penalty on tokens already in the prompt or the path (1 = off; 1.3 is
    /// a common setting). Applies to greedy decoding too.
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f64,
    /// Min-p sampling: keep tokens at least this fraction as likely as the most likely one.
    #[arg(long)]
    pub min_p: Option<f64>,
}

impl SamplingArgs {
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed,
            max_new_tokens: self.max_new_tokens,
            repetition_penalty: self.repetition_penalty,
            min_p: self.min_p,
        }
    }
}
