//! Flags shared by several commands.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::engine::remote::{RemoteConfig, RemoteEngine};
use crate::engine::{Engine, LocalEngine, SamplingParams};
use crate::model::{self, LoadOptions};

/// Which model to run: local (default), or served at `--endpoint`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// A model directory (Hugging Face layout) or a hub id such as bigscience/bloom-560m.
    /// Default: the embedded tiny-bloom-gsm8k. With --endpoint: the served model's name
    /// (default: the first the server lists at GET /v1/models).
    #[arg(long)]
    pub model: Option<String>,
    /// Use a model served by vLLM, text-generation-inference or llama.cpp's server through its
    /// OpenAI-compatible API, e.g. http://gpu-box:8000/v1.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// With --endpoint: the environment variable holding the API key (sent as a bearer token, never
    /// written anywhere). Default: OPENAI_API_KEY when it is set.
    #[arg(long, value_name = "VAR", requires = "endpoint")]
    pub api_key_env: Option<String>,
    /// With --endpoint: seconds to wait for an answer or the next bytes of a stream (connecting
    /// gives up after at most 10 s).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
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
    /// The one engine factory of the front ends: a remote engine with `--endpoint`, else the local
    /// model (the embedded default when `--model` is absent).
    pub fn open_engine(&self) -> anyhow::Result<Arc<dyn Engine>> {
        match &self.endpoint {
            Some(endpoint) => self.open_remote(endpoint),
            None => self.open_local(),
        }
    }

    /// The model as results record it (the config hash is filled in once the model is loaded).
    pub fn settings(&self) -> crate::lab::settings::ModelSettings {
        crate::lab::settings::ModelSettings {
            id: self.model.clone().unwrap_or_else(|| crate::lab::settings::EMBEDDED_MODEL.to_string()),
            config_hash: String::new(),
            dtype: self.dtype.clone(),
            quantize: self.quantize.clone(),
        }
    }

    /// Whether the engine is a server's.
    pub fn is_remote(&self) -> bool {
        self.endpoint.is_some()
    }

    /// How the engine is named in summaries.
    pub fn describe(&self) -> String {
        match (&self.endpoint, &self.model) {
            (Some(e), Some(m)) => format!("{m} at {e}"),
            (Some(e), None) => format!("the first model at {e}"),
            (None, Some(m)) => m.clone(),
            (None, None) => "default (tiny-bloom-gsm8k)".into(),
        }
    }

    fn open_remote(&self, endpoint: &str) -> anyhow::Result<Arc<dyn Engine>> {
        for (flag, set) in [
            ("--dtype", self.dtype.is_some()),
            ("--quantize", self.quantize.is_some()),
            ("--threads", self.threads != 0),
        ] {
            if set {
                anyhow::bail!("{flag} applies to a local model; the server decides it for --endpoint {endpoint}");
            }
        }
        if !self.timeout.is_finite() || self.timeout <= 0.0 {
            anyhow::bail!("--timeout must be a positive number of seconds, got {}", self.timeout);
        }
        let cfg = RemoteConfig {
            model: self.model.clone(),
            api_key_env: self.api_key_env.clone(),
            timeout: Duration::from_secs_f64(self.timeout),
            ..RemoteConfig::new(endpoint)
        };
        Ok(Arc::new(RemoteEngine::connect(&cfg)?))
    }

    /// The local model; its compute threads (`--threads`) are sized by `main` before any thread starts.
    fn open_local(&self) -> anyhow::Result<Arc<dyn Engine>> {
        let dtype = self.dtype.as_deref().map(model::parse_dtype).transpose().context("--dtype")?;
        let quantize = match self.quantize.as_deref() {
            Some(q) => Some(
                model::quant::QuantKind::parse(q).with_context(|| format!("--quantize '{q}': expected q8_0 or q4k"))?,
            ),
            None => None,
        };
        let mut loaded = model::load(
            self.model.as_deref(),
            &LoadOptions { dtype, quantize, prefix_cache_mb: self.prefix_cache_mb },
        )?;
        if self.model.is_none() {
            // Recorded in sessions and eval lines under its real name.
            loaded.info.id = crate::lab::settings::EMBEDDED_MODEL.to_string();
        }
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
