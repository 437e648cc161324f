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
    PathResult, StopReason, TokenEvent,
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
    pub fn new(model: Box<dyn DecoderModel>, tokenizer: Tokenizer, eos_token_id: Option<u32>, info: ModelInfo) -> Self {
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
        PathResult {
            text: self.text.clone(),
            token_ids: self.ids.clone(),
            ..PathResult::empty(self.index, stop_reason)
        }
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
                sink(EngineEvent::Token(TokenEvent { path: p, id: Some(tok), text, ..TokenEvent::default() }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{fake_info, FakeModel};
    use crate::engine::SamplingParams;

    fn tokenizer() -> Tokenizer {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-bloom/tokenizer.json");
        Tokenizer::from_file(path).unwrap()
    }

    const EOS: u32 = 2;

    fn request(prompt: &str, paths: usize, temperature: f64, max_new_tokens: usize) -> GenerateRequest {
        GenerateRequest {
            prompt: prompt.into(),
            paths,
            sampling: SamplingParams { temperature, seed: 7, max_new_tokens, ..SamplingParams::default() },
            ..GenerateRequest::default()
        }
    }

    fn run(engine: &LocalEngine, req: &GenerateRequest) -> Vec<EngineEvent> {
        let mut events = Vec::new();
        engine.generate(req, &CancelFlag::new(), &mut |e| events.push(e)).unwrap();
        events
    }

    fn done(events: &[EngineEvent]) -> Vec<PathResult> {
        let mut out: Vec<PathResult> = events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Done(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        out.sort_by_key(|r| r.path);
        out
    }

    fn token_texts(events: &[EngineEvent], path: usize) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Token(t) if t.path == path => Some(t.text.clone()),
                _ => None,
            })
            .collect()
    }

    /// The hash-logits fake: no end token, so every path runs to max tokens.
    fn hash_engine() -> (LocalEngine, std::sync::Arc<std::sync::Mutex<crate::engine::fake::FakeCalls>>) {
        let tok = tokenizer();
        let model = FakeModel::new(tok.get_vocab_size(true));
        let calls = model.calls();
        (LocalEngine::new(Box::new(model), tok, None, fake_info(4096)), calls)
    }

    #[test]
    fn events_come_in_contract_order_and_add_up() {
        let (engine, _) = hash_engine();
        let events = run(&engine, &request("Q: 2 + 2?\nA:", 3, 0.9, 12));
        assert!(matches!(events[0], EngineEvent::Prefilled { prompt_tokens, .. } if prompt_tokens > 0));
        let EngineEvent::Stats(stats) = events.last().unwrap() else { panic!("stats must come last") };
        let results = done(&events);
        assert_eq!(results.iter().map(|r| r.path).collect::<Vec<_>>(), vec![0, 1, 2]);
        for r in &results {
            assert_eq!(r.token_ids.len(), 12);
            assert_eq!(r.stop_reason, StopReason::MaxTokens);
            assert_eq!(token_texts(&events, r.path).concat(), r.text);
            assert_eq!(r.text, crate::engine::text_stream::decode(engine.tokenizer(), &r.token_ids).unwrap());
            // A path's Done comes after all its tokens.
            let done_at = events.iter().position(|e| matches!(e, EngineEvent::Done(d) if d.path == r.path));
            let last_tok = events.iter().rposition(|e| matches!(e, EngineEvent::Token(t) if t.path == r.path));
            assert!(done_at > last_tok);
        }
        assert_eq!(stats.generated_tokens, 36);
    }

    #[test]
    fn prompt_is_prefilled_once_and_paths_decode_as_one_batch() {
        let tok = tokenizer();
        let texts = ["A: 1 2 3 4 5", "A: 1", "A: 1 2 3"];
        let scripts: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(*t, false).unwrap().get_ids().to_vec()).collect();
        let lens: Vec<usize> = scripts.iter().map(|s| s.len() + 1).collect(); // + </s>
        let model = FakeModel::scripted(4096, scripts.clone(), Some(EOS));
        let calls = model.calls();
        let engine = LocalEngine::new(Box::new(model), tok, Some(EOS), fake_info(4096));
        let events = run(&engine, &request("Q: count", 3, 0.0, 50));
        let results = done(&events);
        for (r, t) in results.iter().zip(texts) {
            assert_eq!(r.stop_reason, StopReason::Eos);
            assert_eq!(r.text, t);
            assert_eq!(r.token_ids.last(), Some(&EOS));
        }
        let c = calls.lock().unwrap();
        assert_eq!(c.prefills.len(), 1);
        assert_eq!(c.forks, vec![3]);
        // Steps run for the longest path only, in batches that shrink as paths end.
        assert_eq!(c.steps.len(), lens.iter().max().unwrap() - 1);
        let widths: Vec<usize> = c.steps.iter().map(|s| s.len()).collect();
        assert_eq!(widths[0], 3);
        assert!(widths.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(*widths.last().unwrap(), 1);
        assert!(!c.retains.is_empty());
    }

    #[test]
    fn batched_paths_equal_single_runs() {
        let (engine, _) = hash_engine();
        let greedy = done(&run(&engine, &request("Q: x", 4, 0.0, 20)));
        let single = done(&run(&engine, &request("Q: x", 1, 0.0, 20)));
        for r in &greedy {
            assert_eq!(r.token_ids, single[0].token_ids);
        }
        // Path 0 of a sampled batch is the single-path run with the same seed; other paths differ.
        let sampled = done(&run(&engine, &request("Q: x", 4, 1.0, 20)));
        let sampled_single = done(&run(&engine, &request("Q: x", 1, 1.0, 20)));
        assert_eq!(sampled[0].token_ids, sampled_single[0].token_ids);
        assert!(sampled[1..].iter().any(|r| r.token_ids != sampled[0].token_ids));
        // And the same seed reproduces every path.
        assert_eq!(sampled, done(&run(&engine, &request("Q: x", 4, 1.0, 20))));
    }

    #[test]
    fn stop_string_ends_the_path_and_is_not_returned() {
        let tok = tokenizer();
        let script = "A: 3 + 3 = 6. The answer is 6.\nQ: What is 2 + 2?\nA: 4";
        let engine = LocalEngine::fake(tok, &[script], Some(EOS)).unwrap();
        let mut req = request("Q: 3 + 3?\n", 2, 0.0, 100);
        req.stop = vec!["\nQ:".into(), "never".into()];
        let events = run(&engine, &req);
        for r in done(&events) {
            assert_eq!(r.stop_reason, StopReason::StopString("\nQ:".into()));
            assert_eq!(r.text, "A: 3 + 3 = 6. The answer is 6.");
            let texts = token_texts(&events, r.path);
            assert_eq!(texts.concat(), r.text);
            assert!(texts.iter().all(|t| !t.contains('\n')), "held-back newline leaked: {texts:?}");
            // The token that completed the stop string is the last id, and it is part of the ids.
            assert_eq!(texts.len(), r.token_ids.len());
        }
    }

    #[test]
    fn hold_back_spans_token_boundaries_and_is_released_when_ruled_out() {
        let tok = tokenizer();
        let script = "6.\nQuick\nQ: next";
        let ids = tok.encode(script, false).unwrap().get_ids().to_vec();
        let engine = LocalEngine::fake(tok, &[script], Some(EOS)).unwrap();
        let mut req = request("Q", 1, 0.0, 100);
        req.stop = vec!["\nQ:".into()];
        let events = run(&engine, &req);
        let r = &done(&events)[0];
        assert_eq!(r.text, "6.\nQuick");
        let texts = token_texts(&events, 0);
        // The first "\n" is held back until "uick" rules the stop string out.
        assert!(ids.len() >= 5, "{ids:?}");
        assert!(texts.iter().any(|t| t.is_empty()));
        assert!(texts.iter().any(|t| t.starts_with("\nQ")), "{texts:?}");
    }

    #[test]
    fn utf8_characters_stream_intact_through_the_engine() {
        let tok = tokenizer();
        let script = "She sells them for €2 — she’s happy 😀 🧑‍🚀.";
        let engine = LocalEngine::fake(tok, &[script], Some(EOS)).unwrap();
        let events = run(&engine, &request("Q", 2, 0.0, 200));
        for r in done(&events) {
            assert_eq!(r.text, script);
            let texts = token_texts(&events, r.path);
            assert!(texts.iter().all(|t| !t.contains('\u{FFFD}')), "{texts:?}");
            assert_eq!(texts.concat(), script);
        }
    }

    #[test]
    fn cancel_stops_before_the_next_step() {
        for k in [1, 3] {
            let (engine, calls) = hash_engine();
            let cancel = CancelFlag::new();
            let mut events = Vec::new();
            let flag = cancel.clone();
            let mut seen = 0;
            engine
                .generate(&request("Q: x", 3, 0.8, 50), &cancel, &mut |e| {
                    if let EngineEvent::Token(TokenEvent { path: 0, .. }) = e {
                        seen += 1;
                        if seen == k {
                            flag.cancel();
                        }
                    }
                    events.push(e);
                })
                .unwrap();
            let results = done(&events);
            assert_eq!(results.len(), 3);
            for r in &results {
                assert_eq!(r.token_ids.len(), k, "path {} after cancel at {k}", r.path);
                assert_eq!(r.stop_reason, StopReason::Cancelled);
            }
            assert_eq!(calls.lock().unwrap().steps.len(), k - 1);
            assert!(matches!(events.last(), Some(EngineEvent::Stats(_))));
        }
    }

    #[test]
    fn cancelled_before_start_gives_empty_cancelled_paths() {
        let (engine, _) = hash_engine();
        let cancel = CancelFlag::new();
        cancel.cancel();
        let mut events = Vec::new();
        engine.generate(&request("Q", 2, 0.8, 10), &cancel, &mut |e| events.push(e)).unwrap();
        let results = done(&events);
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.token_ids.is_empty() && r.stop_reason == StopReason::Cancelled));
    }

    #[test]
    fn max_new_tokens_zero_generates_nothing() {
        let (engine, _) = hash_engine();
        let results = done(&run(&engine, &request("Q", 2, 0.8, 0)));
        assert!(results.iter().all(|r| r.token_ids.is_empty() && r.stop_reason == StopReason::MaxTokens));
    }

    #[test]
    fn bad_requests_are_rejected_with_clear_messages() {
        let (engine, _) = hash_engine();
        let cases: Vec<(GenerateRequest, &str)> = vec![
            (request("", 1, 0.0, 5), "prompt is empty"),
            (request("Q", 0, 0.0, 5), "paths must be between 1 and 64, got 0"),
            (request("Q", 65, 0.0, 5), "paths must be between 1 and 64, got 65"),
            (request("Q", 1, -1.0, 5), "temperature"),
            (request("Q", 1, f64::NAN, 5), "temperature"),
            (GenerateRequest { stop: vec!["".into()], ..request("Q", 1, 0.0, 5) }, "stop string is empty"),
            (
                GenerateRequest {
                    sampling: SamplingParams { top_p: Some(0.0), ..request("Q", 1, 1.0, 5).sampling },
                    ..request("Q", 1, 1.0, 5)
                },
                "top-p",
            ),
        ];
        for (req, want) in cases {
            let mut n = 0;
            let err = engine.generate(&req, &CancelFlag::new(), &mut |_| n += 1).unwrap_err();
            assert!(matches!(err, EngineError::Invalid(_)));
            assert!(err.to_string().contains(want), "{err} should say {want}");
            assert_eq!(n, 0, "no events for a rejected request");
        }
    }

    #[test]
    fn count_tokens_matches_the_tokenizer() {
        let (engine, _) = hash_engine();
        assert_eq!(engine.count_tokens("Q: There are 15 trees in the grove.").unwrap(), 10);
    }
}
