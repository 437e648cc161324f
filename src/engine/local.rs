//! The local engine: drives a [`DecoderModel`] in-process.
//!
//! One generation: encode the prompt (no special tokens added), prefill it once, fork the cache into
//! one row per path, then decode all live paths as one batch per step. Each path samples from its
//! own seeded stream, detokenizes incrementally and watches its stop strings; a path that stops is
//! dropped from the batch. Cancellation is checked before every model step.

use std::sync::Mutex;
use std::time::Instant;

use tokenizers::Tokenizer;

use super::sampler::Sampler;
use super::stop::StopMatcher;
use super::text_stream::TextStream;
use super::{
    CancelFlag, DecoderModel, Engine, EngineError, EngineEvent, GenerateRequest, GenerationStats, ModelInfo,
    PathResult, StopReason,
};

/// Most paths one request may ask for.
pub const MAX_PATHS: usize = 64;

/// An [`Engine`] over a model in this process. Concurrent generations take turns (the model is
/// behind a mutex).
pub struct LocalEngine {
    model: Mutex<Box<dyn DecoderModel>>,
    tokenizer: Tokenizer,
    eos_token_id: Option<u32>,
    info: ModelInfo,
}

impl LocalEngine {
    pub fn new(
        model: Box<dyn DecoderModel>,
        tokenizer: Tokenizer,
        eos_token_id: Option<u32>,
        info: ModelInfo,
    ) -> Self {
        Self { model: Mutex::new(model), tokenizer, eos_token_id, info }
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token_id
    }

    /// The ids the engine feeds the model for `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Tokenizer(format!("cannot encode the prompt: {e}")))
    }
}

/// Checks a request before any work is done.
pub fn validate(req: &GenerateRequest) -> Result<(), EngineError> {
    let invalid = |m: String| Err(EngineError::Invalid(m));
    let s = &req.sampling;
    if req.prompt.is_empty() {
        return invalid("the prompt is empty; give some text to continue".into());
    }
    if req.paths == 0 || req.paths > MAX_PATHS {
        return invalid(format!("paths must be between 1 and {MAX_PATHS}, got {}", req.paths));
    }
    if !s.temperature.is_finite() || s.temperature < 0.0 {
        return invalid(format!("temperature must be a number >= 0, got {}", s.temperature));
    }
    if let Some(p) = s.top_p {
        if !p.is_finite() || p <= 0.0 {
            return invalid(format!("top-p must be in (0, 1], got {p}"));
        }
    }
    if req.stop.iter().any(|s| s.is_empty()) {
        return invalid("a stop string is empty".into());
    }
    Ok(())
}

/// The state of one path during generation.
struct PathState {
    index: usize,
    sampler: Sampler,
    stream: TextStream,
    stop: StopMatcher,
    ids: Vec<u32>,
    text: String,
}

impl PathState {
    fn new(req: &GenerateRequest, index: usize) -> Self {
        Self {
            index,
            sampler: Sampler::new(&req.sampling, index),
            stream: TextStream::new(),
            stop: StopMatcher::new(&req.stop),
            ids: Vec::new(),
            text: String::new(),
        }
    }

    /// Takes the sampled token; returns the text it releases and, if the path ends with it, why.
    fn accept(
        &mut self,
        tok: u32,
        eos: Option<u32>,
        max_new_tokens: usize,
        tokenizer: &Tokenizer,
    ) -> Result<(String, Option<StopReason>), EngineError> {
        self.ids.push(tok);
        if Some(tok) == eos {
            let (text, stop) = self.flush(tokenizer)?;
            return Ok((text, Some(stop.unwrap_or(StopReason::Eos))));
        }
        let piece = self.stream.push(tokenizer, tok)?;
        let out = self.stop.push(&piece);
        let mut text = out.text;
        if let Some(s) = out.stopped {
            return Ok((text, Some(StopReason::StopString(s))));
        }
        if self.ids.len() >= max_new_tokens {
            let (rest, stop) = self.flush(tokenizer)?;
            text.push_str(&rest);
            return Ok((text, Some(stop.unwrap_or(StopReason::MaxTokens))));
        }
        Ok((text, None))
    }

    /// Releases all held-back text at the end of the path (it may still complete a stop string).
    fn flush(&mut self, tokenizer: &Tokenizer) -> Result<(String, Option<StopReason>), EngineError> {
        let rest = self.stream.finish(tokenizer)?;
        let out = self.stop.push(&rest);
        if let Some(s) = out.stopped {
            return Ok((out.text, Some(StopReason::StopString(s))));
        }
        Ok((out.text + &self.stop.finish(), None))
    }

    fn result(&self, stop_reason: StopReason) -> PathResult {
        PathResult { path: self.index, text: self.text.clone(), token_ids: self.ids.clone(), stop_reason }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl Engine for LocalEngine {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        Ok(self.encode(text)?.len())
    }

    /// Events: `Prefilled`; per step, one `Token` per live path (its text is what became final:
    /// complete characters not possibly part of a stop string; the last token of a path also
    /// carries the rest); `Done` for each path as it stops; `Stats`. A path's `Done.text` is the
    /// concatenation of its `Token` texts, except after a cancel, when it also includes the text
    /// still held back at that moment.
    fn generate(
        &self,
        req: &GenerateRequest,
        cancel: &CancelFlag,
        sink: &mut dyn FnMut(EngineEvent),
    ) -> Result<GenerationStats, EngineError> {
        validate(req)?;
        let prompt = self.encode(&req.prompt)?;
        if prompt.is_empty() {
            return Err(EngineError::Invalid("the prompt encodes to no tokens".into()));
        }
        let mut model = self
            .model
            .lock()
            .map_err(|_| EngineError::Model("the model is unusable: an earlier generation panicked".into()))?;

        let started = Instant::now();
        let first_logits = model.prefill(&prompt)?;
        let prefill_ms = ms(started);
        sink(EngineEvent::Prefilled { prompt_tokens: prompt.len(), prefill_ms });

        let decode_start = Instant::now();
        let max_new = req.sampling.max_new_tokens;
        let mut paths: Vec<PathState> = (0..req.paths).map(|i| PathState::new(req, i)).collect();
        // `live[row]` is the path in batch row `row`.
        let mut live: Vec<usize> = (0..req.paths).collect();
        let mut generated = 0;

        if max_new == 0 || cancel.is_cancelled() {
            let reason = if max_new == 0 { StopReason::MaxTokens } else { StopReason::Cancelled };
            live.clear();
            for p in &paths {
                sink(EngineEvent::Done(p.result(reason.clone())));
            }
        } else {
            model.fork(req.paths)?;
        }

        // Logits of each row for the next token; before the first step all rows share the prefill's.
        let mut step_logits: Option<Vec<Vec<f32>>> = None;
        while !live.is_empty() {
            let mut kept_rows = Vec::with_capacity(live.len());
            let mut next_tokens = Vec::with_capacity(live.len());
            for (row, &p) in live.iter().enumerate() {
                let logits = match &step_logits {
                    None => &first_logits,
                    Some(rows) => &rows[row],
                };
                let path = &mut paths[p];
                let tok = path.sampler.sample(logits)?;
                let (text, stopped) = path.accept(tok, self.eos_token_id, max_new, &self.tokenizer)?;
                generated += 1;
                path.text.push_str(&text);
                sink(EngineEvent::Token { path: p, id: tok, text });
                match stopped {
                    Some(reason) => sink(EngineEvent::Done(path.result(reason))),
                    None => {
                        kept_rows.push(row);
                        next_tokens.push(tok);
                    }
                }
            }
            if kept_rows.is_empty() {
                break;
            }
            if cancel.is_cancelled() {
                for &row in &kept_rows {
                    let path = &mut paths[live[row]];
                    let (rest, _) = path.flush(&self.tokenizer)?;
                    path.text.push_str(&rest);
                    sink(EngineEvent::Done(path.result(StopReason::Cancelled)));
                }
                break;
            }
            if kept_rows.len() < live.len() {
                model.retain(&kept_rows)?;
                live = kept_rows.iter().map(|&r| live[r]).collect();
            }
            let rows = model.step(&next_tokens)?;
            if rows.len() != live.len() {
                return Err(EngineError::Model(format!(
                    "step returned {} logits rows for a batch of {}",
                    rows.len(),
                    live.len()
                )));
            }
            step_logits = Some(rows);
        }

        let decode_ms = ms(decode_start);
        let decode_tok_s = if decode_ms > 0.0 { generated as f64 / (decode_ms / 1000.0) } else { 0.0 };
        let stats = GenerationStats {
            prompt_tokens: prompt.len(),
            prefill_ms,
            decode_ms,
            generated_tokens: generated,
            decode_tok_s,
        };
        sink(EngineEvent::Stats(stats.clone()));
        Ok(stats)
    }
}
