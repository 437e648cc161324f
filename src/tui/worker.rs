//! The inference worker: one thread that loads the model and then runs generations one after another,
//! and one that counts prompt tokens, so the UI thread never waits on the model. Everything they learn
//! goes back to the UI as [`Action`]s through `sink`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::{CancelFlag, Engine, EngineEvent, GenerateRequest, PathResult, StopReason};

use super::action::Action;

/// Opens the model (on the worker thread); the error is one line.
pub type Loader = Box<dyn FnOnce() -> Result<Arc<dyn Engine>, String> + Send>;

/// Where the worker reports to.
pub type Sink = Arc<dyn Fn(Action) + Send + Sync>;

enum Job {
    Generate { run: u64, requests: Vec<GenerateRequest>, cancel: CancelFlag },
}

/// Handle to the worker threads. Dropping it lets them end once their queues are empty.
pub struct Worker {
    jobs: mpsc::Sender<Job>,
    counts: mpsc::Sender<(String, String)>,
}

impl Worker {
    /// Starts the worker: it loads the model with `loader`, reports `ModelLoaded` or `ModelFailed`, then
    /// serves jobs. Jobs sent before the model is ready wait for it.
    pub fn spawn(loader: Loader, sink: Sink) -> Worker {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (counts_tx, counts_rx) = mpsc::channel::<(String, String)>();
        let _ = std::thread::Builder::new().name("cotscope-worker".into()).spawn(move || {
            let engine = match catch_unwind(AssertUnwindSafe(loader)) {
                Ok(Ok(e)) => e,
                Ok(Err(msg)) => return sink(Action::ModelFailed(msg)),
                Err(p) => return sink(Action::ModelFailed(format!("panic while loading: {}", panic_message(&p)))),
            };
            sink(Action::ModelLoaded(engine.info()));
            let counter_engine = Arc::clone(&engine);
            let counter_sink = Arc::clone(&sink);
            let _ = std::thread::Builder::new().name("cotscope-counter".into()).spawn(move || {
                for (sha, text) in counts_rx {
                    let result = catch_unwind(AssertUnwindSafe(|| counter_engine.count_tokens(&text)))
                        .map_err(|p| format!("panic: {}", panic_message(&p)))
                        .and_then(|r| r.map_err(|e| e.to_string()));
                    counter_sink(Action::TokenCount { prompt_sha256: sha, result });
                }
            });
            for job in jobs_rx {
                match job {
                    Job::Generate { run, requests, cancel } => generate(&*engine, run, &requests, &cancel, &sink),
                }
            }
        });
        Worker { jobs: jobs_tx, counts: counts_tx }
    }

    /// Queues generation `run`; its requests run one after another (A/B), sharing `cancel`.
    pub fn generate(&self, run: u64, requests: Vec<GenerateRequest>, cancel: CancelFlag) -> Result<(), String> {
        self.jobs.send(Job::Generate { run, requests, cancel }).map_err(|_| "the inference worker has stopped".to_string())
    }

    pub fn count_tokens(&self, prompt_sha256: String, text: String) -> Result<(), String> {
        self.counts.send((prompt_sha256, text)).map_err(|_| "the token counter has stopped".to_string())
    }
}

fn generate(engine: &dyn Engine, run: u64, requests: &[GenerateRequest], cancel: &CancelFlag, sink: &Sink) {
    let t0 = Instant::now();
    let ms = || t0.elapsed().as_secs_f64() * 1000.0;
    for (request, req) in requests.iter().enumerate() {
        if cancel.is_cancelled() {
            // Requests never started still close their panes.
            for path in 0..req.paths {
                let done = PathResult { path, text: String::new(), token_ids: Vec::new(), stop_reason: StopReason::Cancelled };
                sink(Action::Engine { run, request, event: EngineEvent::Done(done), at_ms: ms() });
            }
            continue;
        }
        let mut on_event = |event: EngineEvent| sink(Action::Engine { run, request, event, at_ms: ms() });
        let result = catch_unwind(AssertUnwindSafe(|| engine.generate(req, cancel, &mut on_event)));
        let failure = match result {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(format!("panic in the engine: {}", panic_message(&p))),
        };
        if let Some(message) = failure {
            sink(Action::GenerationFailed { run, message });
            return;
        }
    }
    sink(Action::GenerationFinished { run });
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown".into()
    }
}
