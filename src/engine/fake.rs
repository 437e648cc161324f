//! A deterministic stand-in for a real model, for tests of everything above the model: the engine
//! loop, the CLI, and the TUI's screens.
//!
//! [`FakeModel`] implements [`DecoderModel`] with the same row protocol as BLOOM (prefill, fork,
//! step, retain) and checks that the caller follows it. Its logits are a fixed function of the
//! row's last token, or, when scripted, put a large margin on the next token of a script, so greedy
//! decoding follows the script exactly. It records every call ([`FakeCalls`]) so tests can check
//! that a prompt is prefilled once and paths are decoded as one batch.
//!
//! [`LocalEngine::fake`] wraps it with a real tokenizer: the quickest way to a working [`Engine`]
//! without model weights.
//!
//! [`Engine`]: super::Engine

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokenizers::Tokenizer;

use super::local::LocalEngine;
use super::{DecoderModel, EngineError, ModelInfo};

/// Calls a [`FakeModel`] received, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FakeCalls {
    /// The prompt of each `prefill`.
    pub prefills: Vec<Vec<u32>>,
    /// The `n` of each `fork`.
    pub forks: Vec<usize>,
    /// The batch (tokens) of each `step`.
    pub steps: Vec<Vec<u32>>,
    /// The rows kept by each `retain`.
    pub retains: Vec<Vec<usize>>,
}

/// A toy causal LM. See the module docs.
pub struct FakeModel {
    vocab: usize,
    /// Script of each path (row `r` of the fork follows script `r % len`); empty: hash logits.
    scripts: Vec<Vec<u32>>,
    /// Token that follows the end of a script (else the script's last token repeats).
    after_script: Option<u32>,
    step_delay: Option<Duration>,
    prompt_len: usize,
    /// Per row: which path it started as (rows keep it across `retain`) and its tokens so far.
    rows: Vec<(usize, Vec<u32>)>,
    calls: Arc<Mutex<FakeCalls>>,
}

/// splitmix64's mixer, for hash logits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl FakeModel {
    /// Logits are a fixed pseudo-random function of the last token (values in [0, 4)).
    pub fn new(vocab: usize) -> Self {
        Self {
            vocab,
            scripts: Vec::new(),
            after_script: None,
            step_delay: None,
            prompt_len: 0,
            rows: Vec::new(),
            calls: Arc::default(),
        }
    }

    /// Row `r` of the batch follows `scripts[r % scripts.len()]` (a margin of 20 over every other
    /// logit), then `after` (e.g. an end-of-sequence id) if given, else repeats its last token.
    pub fn scripted(vocab: usize, scripts: Vec<Vec<u32>>, after: Option<u32>) -> Self {
        Self {
            scripts: scripts.into_iter().filter(|s| !s.is_empty()).collect(),
            after_script: after,
            ..Self::new(vocab)
        }
    }

    /// Sleeps this long in every `prefill` and `step` (for screen tests that watch streaming).
    pub fn with_step_delay(mut self, delay: Duration) -> Self {
        self.step_delay = Some(delay);
        self
    }

    /// A handle on the record of calls, readable while the model is owned by an engine.
    pub fn calls(&self) -> Arc<Mutex<FakeCalls>> {
        Arc::clone(&self.calls)
    }

    fn record(&self, f: impl FnOnce(&mut FakeCalls)) {
        if let Ok(mut c) = self.calls.lock() {
            f(&mut c)
        }
    }

    fn pause(&self) {
        if let Some(d) = self.step_delay {
            std::thread::sleep(d);
        }
    }

    fn logits(&self, path: usize, history: &[u32]) -> Vec<f32> {
        let last = history.last().copied().unwrap_or(0) as u64;
        let mut out: Vec<f32> = (0..self.vocab as u64)
            .map(|j| (mix(last.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ j) >> 40) as f32 / (1u64 << 24) as f32 * 4.0)
            .collect();
        if !self.scripts.is_empty() {
            let script = &self.scripts[path % self.scripts.len()];
            let generated = history.len().saturating_sub(self.prompt_len);
            let target = match script.get(generated) {
                Some(&t) => Some(t),
                None => self.after_script.or(script.last().copied()),
            };
            if let Some(t) = target.filter(|&t| (t as usize) < self.vocab) {
                out[t as usize] = 24.0;
            }
        }
        out
    }

    fn check_ids(&self, ids: &[u32]) -> Result<(), EngineError> {
        match ids.iter().find(|&&t| t as usize >= self.vocab) {
            Some(t) => Err(EngineError::Model(format!("token id {t} is outside the vocabulary of {}", self.vocab))),
            None => Ok(()),
        }
    }
}

impl DecoderModel for FakeModel {
    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn prefill(&mut self, prompt: &[u32]) -> Result<Vec<f32>, EngineError> {
        if prompt.is_empty() {
            return Err(EngineError::Model("prefill of an empty prompt".into()));
        }
        self.check_ids(prompt)?;
        self.record(|c| c.prefills.push(prompt.to_vec()));
        self.pause();
        self.prompt_len = prompt.len();
        self.rows = vec![(0, prompt.to_vec())];
        Ok(self.logits(0, prompt))
    }

    fn fork(&mut self, n: usize) -> Result<(), EngineError> {
        if self.rows.len() != 1 || n == 0 {
            return Err(EngineError::Model(format!(
                "fork({n}) needs exactly one cached row, found {}",
                self.rows.len()
            )));
        }
        self.record(|c| c.forks.push(n));
        let seq = self.rows[0].1.clone();
        self.rows = (0..n).map(|i| (i, seq.clone())).collect();
        Ok(())
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, EngineError> {
        if tokens.len() != self.rows.len() || tokens.is_empty() {
            return Err(EngineError::Model(format!("step with {} tokens for {} rows", tokens.len(), self.rows.len())));
        }
        self.check_ids(tokens)?;
        self.record(|c| c.steps.push(tokens.to_vec()));
        self.pause();
        for (row, &t) in self.rows.iter_mut().zip(tokens) {
            row.1.push(t);
        }
        Ok(self.rows.iter().map(|(path, h)| self.logits(*path, h)).collect())
    }

    fn retain(&mut self, rows: &[usize]) -> Result<(), EngineError> {
        let increasing = rows.windows(2).all(|w| w[0] < w[1]);
        if !increasing || rows.last().is_some_and(|&r| r >= self.rows.len()) {
            return Err(EngineError::Model(format!("retain({rows:?}) of {} rows", self.rows.len())));
        }
        self.record(|c| c.retains.push(rows.to_vec()));
        let old = std::mem::take(&mut self.rows);
        self.rows = rows.iter().map(|&r| old[r].clone()).collect();
        Ok(())
    }
}

impl FakeModel {
    /// [`FakeModel::scripted`] with the scripts given as texts, encoded by `tokenizer`; then
    /// `eos_token_id` (if given) ends each path.
    pub fn from_texts(tokenizer: &Tokenizer, texts: &[&str], eos_token_id: Option<u32>) -> Result<Self, EngineError> {
        let scripts = texts
            .iter()
            .map(|t| {
                tokenizer
                    .encode(*t, false)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| EngineError::Tokenizer(format!("cannot encode fake text: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::scripted(tokenizer.get_vocab_size(true), scripts, eos_token_id))
    }
}

impl LocalEngine {
    /// An engine over a [`FakeModel`] whose path `i` writes `texts[i % texts.len()]` (as this
    /// tokenizer encodes it) and then ends with `eos_token_id` (if given). Greedy decoding
    /// reproduces the texts exactly; sampling mostly does (the script has a margin of 20 logits).
    /// For a slower stream (screen tests), build the model with [`FakeModel::from_texts`] and
    /// [`FakeModel::with_step_delay`] and pass it to [`LocalEngine::new`] with [`fake_info`].
    pub fn fake(tokenizer: Tokenizer, texts: &[&str], eos_token_id: Option<u32>) -> Result<Self, EngineError> {
        let model = FakeModel::from_texts(&tokenizer, texts, eos_token_id)?;
        let vocab = model.vocab;
        Ok(Self::new(Box::new(model), tokenizer, eos_token_id, fake_info(vocab)))
    }
}

/// The [`ModelInfo`] of a fake model.
pub fn fake_info(vocab_size: usize) -> ModelInfo {
    ModelInfo {
        id: "fake".into(),
        config_hash: String::new(),
        n_params: 0,
        vocab_size,
        dtype: "f32".into(),
        remote: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_row_protocol() {
        let mut m = FakeModel::new(50);
        assert!(m.fork(2).is_err(), "fork before prefill");
        let l = m.prefill(&[1, 2, 3]).unwrap();
        assert_eq!(l.len(), 50);
        m.fork(3).unwrap();
        assert!(m.step(&[1, 2]).is_err(), "wrong batch size");
        let out = m.step(&[4, 5, 6]).unwrap();
        assert_eq!(out.len(), 3);
        assert!(m.retain(&[2, 0]).is_err(), "rows must increase");
        m.retain(&[0, 2]).unwrap();
        let out2 = m.step(&[4, 6]).unwrap();
        assert_eq!(out2.len(), 2);
        assert!(m.step(&[99, 1]).is_err(), "id outside the vocabulary");
        let calls = m.calls();
        let c = calls.lock().unwrap();
        assert_eq!(c.prefills, vec![vec![1, 2, 3]]);
        assert_eq!(c.forks, vec![3]);
        assert_eq!(c.steps, vec![vec![4, 5, 6], vec![4, 6]]);
        assert_eq!(c.retains, vec![vec![0, 2]]);
    }

    #[test]
    fn logits_depend_on_the_last_token_only() {
        let mut a = FakeModel::new(30);
        let mut b = FakeModel::new(30);
        assert_eq!(a.prefill(&[9, 4]).unwrap(), b.prefill(&[1, 4]).unwrap());
        assert_ne!(a.prefill(&[4, 9]).unwrap(), b.prefill(&[4, 1]).unwrap());
    }

    #[test]
    fn scripted_rows_follow_their_script_then_the_end_token() {
        let mut m = FakeModel::scripted(20, vec![vec![5, 6], vec![7]], Some(2));
        let argmax = |l: &[f32]| crate::engine::sampler::argmax(l).unwrap();
        assert_eq!(argmax(&m.prefill(&[1]).unwrap()), 5);
        m.fork(2).unwrap();
        let l = m.step(&[5, 7]).unwrap();
        assert_eq!((argmax(&l[0]), argmax(&l[1])), (6, 2));
        m.retain(&[1]).unwrap();
        let l = m.step(&[2]).unwrap();
        assert_eq!(argmax(&l[0]), 2, "row 1 keeps following path 1's script after retain");
    }
}
