//! The engine seam: prompt + sampling in, token events out.
//!
//! The TUI, `generate`, `eval` and `bench` talk to a model only through [`Engine`]. Today the one
//! implementation is the local candle engine ([`local`]); a remote engine speaking an OpenAI-compatible
//! streaming API (text-generation-inference, vLLM, llama.cpp's server) can implement the same trait.
//!
//! [`DecoderModel`] is the narrower interface the local engine drives: a causal LM with a batch-aware
//! KV cache. BLOOM implements it in `crate::model`.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// How to pick each next token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy (argmax); otherwise logits are divided by it before softmax.
    pub temperature: f64,
    /// Keep only the k most likely tokens (None or 0: no limit).
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches p (None or >= 1: no limit).
    pub top_p: Option<f64>,
    /// Seed of path 0; path i derives its own stream from (seed, i).
    pub seed: u64,
    /// Upper bound on generated tokens per path.
    pub max_new_tokens: usize,
    /// Hugging Face's repetition penalty: the logit of every token already in the prompt or the path is
    /// divided by it (multiplied when negative). 1.0 is off. Applies to greedy decoding too.
    #[serde(default = "no_penalty")]
    pub repetition_penalty: f64,
    /// Keep only tokens whose probability is at least this fraction of the most likely one's (None or 0: off).
    #[serde(default)]
    pub min_p: Option<f64>,
}

fn no_penalty() -> f64 {
    1.0
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: None,
            top_p: None,
            seed: 42,
            max_new_tokens: 128,
            repetition_penalty: 1.0,
            min_p: None,
        }
    }
}

/// Decides, after each token of a path, whether to insert text the model did not choose (the calculator
/// writes the result after `16 - 3 - 4 =`). Kept as a hook so the engine needs nothing from `lab`.
pub trait TokenForcer: Send + Sync {
    /// A short name (`calculator`), for `Debug` and for comparing requests.
    fn name(&self) -> &str;
    /// The text to append to a path whose generated text so far is `path_text`, or None to let the model
    /// go on. Engines call it whenever the path's text grows.
    fn force(&self, path_text: &str) -> Option<String>;
}

/// A shared [`TokenForcer`] on a request. Requests compare equal when their forcers have the same name.
#[derive(Clone)]
pub struct Forcer(pub Arc<dyn TokenForcer>);

impl Forcer {
    pub fn new(f: impl TokenForcer + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl fmt::Debug for Forcer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Forcer({})", self.0.name())
    }
}

impl PartialEq for Forcer {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

/// One generation: a prompt, how many paths to sample from it, and when to stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt: String,
    /// Number of reasoning paths (1..=8 in the TUI); all share one prefill of the prompt.
    pub paths: usize,
    pub sampling: SamplingParams,
    /// Generation of a path stops when its text contains one of these; the string is not returned.
    pub stop: Vec<String>,
    /// None: no log-probabilities. Some(k): each token event carries the chosen token's log-probability
    /// and the k most likely alternatives (log-softmax of the raw logits, before any sampling rule).
    #[serde(default)]
    pub logprobs: Option<usize>,
    /// Tokens every path has already generated (a branch: a path's tokens up to the branch point, then
    /// the alternative chosen there). They follow the prompt without sampling, and are part of each
    /// path: replayed as `Token` events (no logprob), in its `token_ids` and `text`, and counted in
    /// `max_new_tokens`. The model continues after them.
    #[serde(default)]
    pub prefix: Vec<u32>,
    /// Inserts text into paths as they generate (the calculator); its tokens are marked `forced`.
    #[serde(skip)]
    pub forcer: Option<Forcer>,
}

impl Default for GenerateRequest {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            paths: 1,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            logprobs: None,
            prefix: Vec::new(),
            forcer: None,
        }
    }
}

/// Why a path stopped. Serialized names are part of the CLI contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `max_new_tokens` reached.
    MaxTokens,
    /// The model produced its end-of-sequence token.
    Eos,
    /// The text reached this stop string.
    StopString(String),
    /// The caller cancelled.
    Cancelled,
    /// The engine could not go on with this path (e.g. a remote stream cut mid-way); the message says why.
    Error(String),
}

impl StopReason {
    /// The contract name: `max_tokens`, `eos`, `stop_string`, `cancelled` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::MaxTokens => "max_tokens",
            StopReason::Eos => "eos",
            StopReason::StopString(_) => "stop_string",
            StopReason::Cancelled => "cancelled",
            StopReason::Error(_) => "error",
        }
    }

    /// The reason named `name` (see [`StopReason::as_str`]); `detail` is the stop string or error message.
    pub fn from_name(name: &str, detail: Option<&str>) -> Option<StopReason> {
        let detail = || detail.unwrap_or_default().to_string();
        Some(match name {
            "max_tokens" => StopReason::MaxTokens,
            "eos" => StopReason::Eos,
            "stop_string" => StopReason::StopString(detail()),
            "cancelled" => StopReason::Cancelled,
            "error" => StopReason::Error(detail()),
            _ => return None,
        })
    }

    /// The error message, if the path ended in an error.
    pub fn error(&self) -> Option<&str> {
        match self {
            StopReason::Error(s) => Some(s),
            _ => None,
        }
    }

    /// The stop string that ended the path, if one did.
    pub fn stop_string(&self) -> Option<&str> {
        match self {
            StopReason::StopString(s) => Some(s),
            _ => None,
        }
    }
}

/// The final state of one path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathResult {
    pub path: usize,
    /// Generated text only (no prompt), without any stop string.
    pub text: String,
    /// Generated token ids only.
    pub token_ids: Vec<u32>,
    pub stop_reason: StopReason,
    /// Log-probability of each token of `token_ids` when the request asked for logprobs (else empty).
    /// Tokens the model did not choose count as 0.0 (given): those replayed from the request's
    /// `prefix` and those the forcer inserted (their events still carry the model's logprob).
    #[serde(default)]
    pub token_logprobs: Vec<f32>,
    /// Byte ranges of `text` the request's forcer (the calculator) inserted, in order.
    #[serde(default)]
    pub forced_spans: Vec<Range<usize>>,
}

impl PathResult {
    /// A path that ended before producing anything (e.g. cancelled before it started).
    pub fn empty(path: usize, stop_reason: StopReason) -> Self {
        Self {
            path,
            text: String::new(),
            token_ids: Vec::new(),
            stop_reason,
            token_logprobs: Vec::new(),
            forced_spans: Vec::new(),
        }
    }

    /// The path's log-probability: the sum of its tokens' (0 when logprobs were not asked for).
    pub fn sum_logprob(&self) -> f64 {
        self.token_logprobs.iter().map(|&l| l as f64).sum()
    }
}

/// One of the most likely tokens at a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    /// None when a remote server reports text only.
    pub id: Option<u32>,
    /// The token's text decoded alone (a piece of a multi-byte character shows as U+FFFD).
    pub text: String,
    pub logprob: f32,
}

/// One token of one path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenEvent {
    pub path: usize,
    /// None when a remote server gives no ids.
    pub id: Option<u32>,
    /// The newly complete UTF-8 text this token released (may be empty while a multi-byte character or a
    /// possible stop string is still pending, and may include text held back from earlier tokens).
    pub text: String,
    /// Log-probability of this token under the model (log-softmax of the raw logits), when asked for and
    /// known (replayed prefix tokens have none).
    pub logprob: Option<f32>,
    /// The most likely tokens at this step, most likely first (empty unless asked for).
    pub top: Vec<TopLogprob>,
    /// The request's forcer (the calculator) put this token here, not the model's choice.
    pub forced: bool,
    /// Entropy in nats of the model's whole next-token distribution at this step, when logprobs were
    /// asked for and the engine has the logits (the local engine; not remote servers or replayed tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f32>,
}

/// Timing of one generation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// Tokens generated by all paths together.
    pub generated_tokens: usize,
    /// Decode rate of all paths together.
    pub decode_tok_s: f64,
    /// Prompt tokens whose keys and values came from the prefix cache instead of the prefill.
    #[serde(default)]
    pub cached_prompt_tokens: usize,
}

/// What a running generation reports, in order: `Prefilled`, then `Token`s and `Done`s interleaved
/// (one `Done` per path), then `Stats` last.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineEvent {
    /// The prompt is encoded and its KV cache computed.
    Prefilled { prompt_tokens: usize, prefill_ms: f64 },
    /// A path produced a token (see [`TokenEvent`]).
    Token(TokenEvent),
    /// Path finished.
    Done(PathResult),
    /// All paths finished.
    Stats(GenerationStats),
}

/// Errors an engine reports. Messages are one line and name what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Load(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model: {0}")]
    Model(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A server behind the remote engine failed (the message names the endpoint and the cause).
    #[error("{0}")]
    Remote(String),
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Model(e.to_string().lines().next().unwrap_or("candle error").to_string())
    }
}

/// What the front ends show and record about the model behind an engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// A hub id or a directory path, as the user named it (or `default` for the embedded model).
    pub id: String,
    /// sha256 of `config.json`'s bytes, hex.
    pub config_hash: String,
    pub n_params: usize,
    pub vocab_size: usize,
    pub dtype: String,
    /// Set when the model is served remotely (then `config_hash` is empty and sizes are unknown: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteModel>,
}

/// A model behind a server, as sessions record it (never with the API key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteModel {
    /// The API root, e.g. `http://gpu-box:8000/v1`.
    pub endpoint: String,
    /// The name requests ask for (`--model`, or the first the server listed).
    pub served_model: String,
    /// What the server says the name stands for (vLLM's `root`, text-generation-inference's
    /// `model_id`), else the served name.
    pub reported_model: String,
}

impl ModelInfo {
    /// Why replaying a session saved with `saved` on this model may not give the same text (empty: it
    /// should). Remote sampling depends on the server's kernels, batching and sampler, so a server
    /// on either side makes it unreliable.
    pub fn replay_warnings(&self, saved: &ModelInfo) -> Vec<String> {
        let mut out = Vec::new();
        if self.remote.is_some() || saved.remote.is_some() {
            let server = self.remote.as_ref().or(saved.remote.as_ref()).map_or("", |r| r.endpoint.as_str());
            out.push(format!("remote sampling ({server}) may not be bit-reproducible: the text can differ"));
            if self.id != saved.id {
                out.push(format!("saved with model {} (now {})", saved.id, self.id));
            }
        } else if self.config_hash != saved.config_hash {
            out.push(format!("saved with model {} (another config than the one loaded)", saved.id));
        }
        out
    }
}

/// A flag shared between the caller and a running generation; set it to stop within one token step.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A language model behind prompt-in, events-out. Implementations serialize concurrent calls.
pub trait Engine: Send + Sync {
    fn info(&self) -> ModelInfo;
    /// Number of tokens the prompt encodes to.
    fn count_tokens(&self, text: &str) -> Result<usize, EngineError>;
    /// Runs one generation on the calling thread, reporting each event to `sink` as it happens.
    /// Returns when every path has stopped, or within one token step of `cancel` being set
    /// (remaining paths then finish with [`StopReason::Cancelled`]).
    fn generate(
        &self,
        req: &GenerateRequest,
        cancel: &CancelFlag,
        sink: &mut dyn FnMut(EngineEvent),
    ) -> Result<GenerationStats, EngineError>;
    /// Runs several requests, decoding up to `max_rows` sequences (paths of any of them) together
    /// where the engine can; `sink(i, event)` gets request `i`'s events in `generate`'s order (the
    /// requests' events interleave). Output equals running each request alone. Default: one at a time.
    fn generate_many(
        &self,
        reqs: &[GenerateRequest],
        max_rows: usize,
        cancel: &CancelFlag,
        sink: &mut dyn FnMut(usize, EngineEvent),
    ) -> Result<Vec<GenerationStats>, EngineError> {
        let _ = max_rows;
        reqs.iter().enumerate().map(|(i, r)| self.generate(r, cancel, &mut |e| sink(i, e))).collect()
    }

    /// Log-probabilities (natural log of the softmax of the model's logits, temperature 1) that the
    /// token right after `prompt` is each of `tokens`, each a string that is one token. One forward
    /// pass over the prompt, nothing sampled (the `judge` selection strategy). `None` for a token the
    /// engine cannot score (a server that reports only its most likely tokens).
    fn next_token_logprobs(&self, prompt: &str, tokens: &[String]) -> Result<Vec<Option<f32>>, EngineError> {
        let _ = (prompt, tokens);
        Err(EngineError::Invalid(format!("the engine of {} cannot score next tokens", self.info().id)))
    }
}

/// A causal LM with a batch-aware KV cache: what the local engine drives. Rows are paths.
pub trait DecoderModel: Send {
    fn vocab_size(&self) -> usize;
    /// Clears the cache and runs the prompt as one sequence; returns the logits at its last position.
    /// A model with a prefix cache may take the keys and values of the prompt's start from it.
    fn prefill(&mut self, prompt: &[u32]) -> Result<Vec<f32>, EngineError>;
    /// Prompt tokens the last `prefill` took from a prefix cache rather than computing them.
    fn cached_prompt_tokens(&self) -> usize {
        0
    }
    /// A hint: rows from now on take up to `positions` tokens of their own (the requests'
    /// `max_new_tokens`), so a model can size their caches once instead of growing them. Models
    /// without such caches ignore it.
    fn reserve_positions(&mut self, positions: usize) {
        let _ = positions;
    }
    /// Turns the single cached sequence into `n` identical rows (after `prefill`).
    fn fork(&mut self, n: usize) -> Result<(), EngineError>;
    /// Feeds one token to each cached row; returns one logits vector per row.
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, EngineError>;
    /// Keeps only the given rows (indices into the current rows, increasing), dropping the rest.
    fn retain(&mut self, rows: &[usize]) -> Result<(), EngineError>;
    /// Whether `start_batch` and `add_rows` work (rows of different prompts in one batch).
    fn can_batch_prompts(&self) -> bool {
        false
    }
    /// Starts a batch of rows from different prompts that all begin with the tokens `shared` (whose
    /// keys and values are then read once per step for all rows): clears the rows and prefills
    /// `shared` (empty: nothing shared). Models that cannot batch prompts say so.
    fn start_batch(&mut self, shared: &[u32]) -> Result<(), EngineError> {
        let _ = shared;
        Err(EngineError::Invalid("this model cannot decode several prompts in one batch".into()))
    }
    /// Prefills `prompt` (which begins with the batch's shared tokens and is longer) and adds `n`
    /// rows continuing it after the current rows; returns the logits at its last position. Rows
    /// already there keep their state, and `step`/`retain` then work on all rows alike.
    fn add_rows(&mut self, prompt: &[u32], n: usize) -> Result<Vec<f32>, EngineError> {
        let _ = (prompt, n);
        Err(EngineError::Invalid("this model cannot decode several prompts in one batch".into()))
    }
    /// [`DecoderModel::add_rows`] for several prompts (each with its row count), in order: the rows
    /// of `prompts[0]` first. A model may prefill all their own tokens in one pass over its weights;
    /// each prompt's logits and cached prompt tokens are as `add_rows` would give them.
    fn add_rows_many(&mut self, prompts: &[(&[u32], usize)]) -> Result<Vec<AddedRows>, EngineError> {
        add_rows_one_at_a_time(self, prompts)
    }
}

/// [`DecoderModel::add_rows_many`] by [`DecoderModel::add_rows`], one prompt after another (the
/// trait's default, and a model's fallback where it cannot do them in one pass).
pub fn add_rows_one_at_a_time<M: DecoderModel + ?Sized>(
    model: &mut M,
    prompts: &[(&[u32], usize)],
) -> Result<Vec<AddedRows>, EngineError> {
    prompts
        .iter()
        .map(|&(prompt, n)| {
            let logits = model.add_rows(prompt, n)?;
            Ok(AddedRows { logits, cached_prompt_tokens: model.cached_prompt_tokens() })
        })
        .collect()
}

/// What [`DecoderModel::add_rows_many`] reports for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct AddedRows {
    /// Logits at the prompt's last position.
    pub logits: Vec<f32>,
    /// Prompt tokens not computed for it (the batch's shared start, or a prefix cache's).
    pub cached_prompt_tokens: usize,
}

mod batch;
pub mod fake;
pub mod local;
pub mod logprobs;
pub mod penalty;
pub mod remote;
mod rng;
pub mod sampler;
mod score;
pub mod spawn;
pub mod stop;
pub mod text_stream;

pub use local::LocalEngine;
pub use spawn::Generation;
