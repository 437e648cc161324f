//! Running a generation off the caller's thread, so a UI stays responsive while the model works.

use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{CancelFlag, Engine, EngineError, EngineEvent, GenerateRequest};

/// What a running generation sends: its events in order, then, if it failed, the error (last).
pub type GenerationMessage = Result<EngineEvent, EngineError>;

/// A generation running on its own thread.
///
/// Read `events` (blocking `recv`, or `try_recv` between key presses); the channel closes when the
/// generation is over. `cancel()` stops it within one token step; dropping `events` cancels too.
pub struct Generation {
    pub events: Receiver<GenerationMessage>,
    cancel: CancelFlag,
    handle: Option<JoinHandle<()>>,
}

impl Generation {
    pub fn spawn(engine: Arc<dyn Engine>, req: GenerateRequest) -> Self {
        let (tx, events) = mpsc::channel();
        let cancel = CancelFlag::new();
        let flag = cancel.clone();
        let err_tx = tx.clone();
        let spawned = std::thread::Builder::new().name("cotscope-generate".into()).spawn(move || {
            let mut sink = |ev: EngineEvent| {
                // Nobody is listening any more: stop working for them.
                if tx.send(Ok(ev)).is_err() {
                    flag.cancel();
                }
            };
            if let Err(e) = engine.generate(&req, &flag, &mut sink) {
                let _ = tx.send(Err(e));
            }
        });
        let handle = match spawned {
            Ok(h) => Some(h),
            Err(e) => {
                let _ = err_tx.send(Err(EngineError::Model(format!("cannot start the generation thread: {e}"))));
                None
            }
        };
        Self { events, cancel, handle }
    }

    /// Asks the generation to stop; remaining paths end with `StopReason::Cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel()
    }

    /// The flag behind [`Generation::cancel`], to cancel from elsewhere.
    pub fn cancel_flag(&self) -> CancelFlag {
        self.cancel.clone()
    }

    /// Whether the generation thread has ended (all its events are then in `events`).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for the thread to end. Errors only if it panicked (generation errors come as events).
    pub fn join(mut self) -> Result<(), EngineError> {
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| EngineError::Model("the generation thread panicked".into())),
            None => Ok(()),
        }
    }

    /// Waits for the end and returns every event, or the error the generation ended with.
    pub fn collect(self) -> Result<Vec<EngineEvent>, EngineError> {
        let mut out = Vec::new();
        for msg in self.events.iter() {
            out.push(msg?);
        }
        self.join()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Receiver, Sender};
    use std::sync::Mutex;

    use super::*;
    use crate::engine::fake::{fake_info, FakeModel};
    use crate::engine::{DecoderModel, LocalEngine, PathResult, SamplingParams, StopReason};

    /// A fake whose every `step` waits for a permit from the test (or for the permits to end).
    struct Gated {
        inner: FakeModel,
        permits: Mutex<Receiver<()>>,
    }

    impl DecoderModel for Gated {
        fn vocab_size(&self) -> usize {
            self.inner.vocab_size()
        }
        fn prefill(&mut self, prompt: &[u32]) -> Result<Vec<f32>, EngineError> {
            self.inner.prefill(prompt)
        }
        fn fork(&mut self, n: usize) -> Result<(), EngineError> {
            self.inner.fork(n)
        }
        fn step(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, EngineError> {
            if let Ok(rx) = self.permits.lock() {
                let _ = rx.recv();
            }
            self.inner.step(tokens)
        }
        fn retain(&mut self, rows: &[usize]) -> Result<(), EngineError> {
            self.inner.retain(rows)
        }
    }

    fn tokenizer() -> tokenizers::Tokenizer {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-bloom/tokenizer.json");
        tokenizers::Tokenizer::from_file(path).unwrap()
    }

    fn gated_engine() -> (Arc<dyn Engine>, Sender<()>) {
        let (tx, rx) = mpsc::channel();
        let model = Gated { inner: FakeModel::new(4096), permits: Mutex::new(rx) };
        (Arc::new(LocalEngine::new(Box::new(model), tokenizer(), None, fake_info(4096))), tx)
    }

    fn request(paths: usize) -> GenerateRequest {
        GenerateRequest {
            prompt: "Q: 1 + 1?".into(),
            paths,
            sampling: SamplingParams { temperature: 0.8, seed: 3, max_new_tokens: 1000, ..SamplingParams::default() },
            ..GenerateRequest::default()
        }
    }

    #[test]
    fn cancel_from_another_thread_stops_within_one_step() {
        let (engine, permits) = gated_engine();
        let generation = Generation::spawn(engine, request(2));
        let k = 4;
        // Let k - 1 steps through: each path then has exactly k tokens (the first comes from prefill).
        for _ in 0..k - 1 {
            permits.send(()).unwrap();
        }
        let mut tokens = [0usize; 2];
        while tokens.iter().any(|&n| n < k) {
            match generation.events.recv().unwrap().unwrap() {
                EngineEvent::Token(t) => tokens[t.path] += 1,
                EngineEvent::Done(r) => panic!("path ended early: {r:?}"),
                _ => {}
            }
        }
        generation.cancel();
        // The engine may already be waiting in the next step; let that one step (and only it) finish.
        drop(permits);
        let mut results: Vec<PathResult> = Vec::new();
        let mut saw_stats = false;
        for msg in generation.events.iter() {
            match msg.unwrap() {
                EngineEvent::Token(t) => tokens[t.path] += 1,
                EngineEvent::Done(r) => results.push(r),
                EngineEvent::Stats(_) => saw_stats = true,
                EngineEvent::Prefilled { .. } => panic!("second prefill"),
            }
        }
        generation.join().unwrap();
        assert!(saw_stats);
        assert_eq!(results.len(), 2);
        for r in results {
            assert_eq!(r.stop_reason, StopReason::Cancelled);
            assert!(r.token_ids.len() == k || r.token_ids.len() == k + 1, "{} tokens", r.token_ids.len());
            assert_eq!(tokens[r.path], r.token_ids.len());
        }
    }

    #[test]
    fn errors_arrive_as_the_last_message() {
        let (engine, _permits) = gated_engine();
        let mut req = request(1);
        req.paths = 0;
        let generation = Generation::spawn(engine, req);
        let err = generation.collect().unwrap_err();
        assert!(err.to_string().contains("paths"), "{err}");
    }

    #[test]
    fn collect_returns_all_events_of_a_finished_run() {
        let engine: Arc<dyn Engine> =
            Arc::new(LocalEngine::fake(tokenizer(), &["A: 2. The answer is 2."], Some(2)).unwrap());
        let events = Generation::spawn(engine, request(2)).collect().unwrap();
        let texts: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Done(r) => Some(r.text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 2);
        assert!(matches!(events.last(), Some(EngineEvent::Stats(_))));
    }
}
