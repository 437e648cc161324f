//! The inference worker: one thread that loads the model and then runs generations one after another,
//! and one that counts prompt tokens, so the UI thread never waits on the model. Everything they learn
//! goes back to the UI as [`Report`]s through `sink`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::{CancelFlag, Engine, EngineEvent, GenerateRequest, PathResult, StopReason};

use super::command::JudgeCandidates;
use super::experiments::{run_job, Plan};
use super::report::Report;
use crate::lab::judge::JudgePrompt;
use crate::lab::select::PathView;
use std::path::{Path, PathBuf};

/// Opens the model (on the worker thread); the error is one line.
pub type Loader = Box<dyn FnOnce() -> Result<Arc<dyn Engine>, String> + Send>;

/// Where the worker reports to.
pub type Sink = Arc<dyn Fn(Report) + Send + Sync>;

enum Job {
    Generate { id: u64, requests: Vec<GenerateRequest>, cancel: CancelFlag },
    Experiment { id: u64, plan: Box<Plan>, cancel: CancelFlag },
    Judge { id: u64, templates_dir: PathBuf, question: String, candidates: JudgeCandidates },
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
        Self::spawn_with(loader, sink, |f| {
            std::thread::Builder::new().name("cotscope-worker".into()).spawn(f).map(drop)
        })
    }

    /// [`spawn`](Self::spawn) with the thread started by `start`; if it cannot start, the UI hears
    /// `ModelFailed` instead of waiting on "loading model…" forever.
    fn spawn_with(
        loader: Loader,
        sink: Sink,
        start: impl FnOnce(Box<dyn FnOnce() + Send>) -> std::io::Result<()>,
    ) -> Worker {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (counts_tx, counts_rx) = mpsc::channel::<(String, String)>();
        let thread_sink = Arc::clone(&sink);
        let body = Box::new(move || {
            let sink = thread_sink;
            let engine = match catch_unwind(AssertUnwindSafe(loader)) {
                Ok(Ok(e)) => e,
                Ok(Err(msg)) => return sink(Report::ModelFailed(msg)),
                Err(p) => return sink(Report::ModelFailed(format!("panic while loading: {}", panic_message(&p)))),
            };
            sink(Report::ModelLoaded(engine.info()));
            let counter_engine = Arc::clone(&engine);
            let counter_sink = Arc::clone(&sink);
            let _ = std::thread::Builder::new().name("cotscope-counter".into()).spawn(move || {
                for (sha, text) in counts_rx {
                    let result = catch_unwind(AssertUnwindSafe(|| counter_engine.count_tokens(&text)))
                        .map_err(|p| format!("panic: {}", panic_message(&p)))
                        .and_then(|r| r.map_err(|e| e.to_string()));
                    counter_sink(Report::TokenCount { prompt_sha256: sha, result });
                }
            });
            for job in jobs_rx {
                match job {
                    Job::Generate { id, requests, cancel } => generate(&*engine, id, &requests, &cancel, &sink),
                    Job::Experiment { id, plan, cancel } => run_job(&*engine, id, &plan, &cancel, &sink),
                    Job::Judge { id, templates_dir, question, candidates } => {
                        judge(&*engine, id, &templates_dir, &question, &candidates, &sink)
                    }
                }
            }
        });
        if let Err(e) = start(body) {
            sink(Report::ModelFailed(format!("could not start the inference thread: {e}")));
        }
        Worker { jobs: jobs_tx, counts: counts_tx }
    }

    /// Queues generation `id`; its requests run one after another (A/B), sharing `cancel`.
    pub fn generate(&self, id: u64, requests: Vec<GenerateRequest>, cancel: CancelFlag) -> Result<(), String> {
        self.jobs
            .send(Job::Generate { id, requests, cancel })
            .map_err(|_| "the inference worker has stopped".to_string())
    }

    /// Queues experiment `id` (after the generations queued before it).
    pub fn experiment(&self, id: u64, plan: Box<Plan>, cancel: CancelFlag) -> Result<(), String> {
        self.jobs.send(Job::Experiment { id, plan, cancel }).map_err(|_| "the inference worker has stopped".to_string())
    }

    /// Queues the judging of generation `id`'s paths (after any generation queued before it).
    pub fn judge(
        &self,
        id: u64,
        templates_dir: PathBuf,
        question: String,
        candidates: JudgeCandidates,
    ) -> Result<(), String> {
        self.jobs
            .send(Job::Judge { id, templates_dir, question, candidates })
            .map_err(|_| "the inference worker has stopped".to_string())
    }

    pub fn count_tokens(&self, prompt_sha256: String, text: String) -> Result<(), String> {
        self.counts.send((prompt_sha256, text)).map_err(|_| "the token counter has stopped".to_string())
    }
}

fn generate(engine: &dyn Engine, id: u64, requests: &[GenerateRequest], cancel: &CancelFlag, sink: &Sink) {
    let t0 = Instant::now();
    let ms = || t0.elapsed().as_secs_f64() * 1000.0;
    for (request, req) in requests.iter().enumerate() {
        if cancel.is_cancelled() {
            // Requests never started still close their panes.
            for path in 0..req.paths {
                let done = PathResult::empty(path, StopReason::Cancelled);
                sink(Report::Engine { id, request, event: EngineEvent::Done(done), at_ms: ms() });
            }
            continue;
        }
        let mut on_event = |event: EngineEvent| sink(Report::Engine { id, request, event, at_ms: ms() });
        let result = catch_unwind(AssertUnwindSafe(|| engine.generate(req, cancel, &mut on_event)));
        let failure = match result {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(format!("panic in the engine: {}", panic_message(&p))),
        };
        if let Some(message) = failure {
            sink(Report::GenerationFailed { id, message });
            return;
        }
    }
    sink(Report::GenerationFinished { id });
}

/// One judgement per template: the model reads the question and its paths (`lab::judge`).
fn judge(
    engine: &dyn Engine,
    id: u64,
    templates_dir: &Path,
    question: &str,
    candidates: &JudgeCandidates,
    sink: &Sink,
) {
    let prompt = match JudgePrompt::resolve(None, templates_dir) {
        Ok((_, p)) => p,
        Err(e) => return sink(Report::Judged { id, prompt: 0, result: Err(e.to_string()) }),
    };
    for (pi, paths) in candidates {
        let views: Vec<PathView> = paths
            .iter()
            .map(|(text, answer)| PathView { text, answer: answer.as_deref(), arithmetic_error: false, logprob: None })
            .collect();
        let result = catch_unwind(AssertUnwindSafe(|| crate::lab::judge::judge(engine, &prompt, question, &views)))
            .map_err(|p| format!("panic in the judge: {}", panic_message(&p)))
            .and_then(|r| r.map_err(|e| e.to_string()));
        sink(Report::Judged { id, prompt: *pi, result });
    }
}

pub(super) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{fake_info, FakeModel};
    use crate::engine::{LocalEngine, SamplingParams};
    use std::time::Duration;

    fn tokenizer() -> tokenizers::Tokenizer {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/tiny-bloom-gsm8k/tokenizer.json");
        tokenizers::Tokenizer::from_file(p).unwrap()
    }

    /// A worker over a fake model that writes long texts slowly, reporting into a channel each
    /// report with whether `cancel` was already set when the worker sent it (so what the worker did
    /// after a cancel is told apart from what merely waited in the channel for a slow reader).
    fn slow_worker(cancel: CancelFlag) -> (Worker, mpsc::Receiver<(Report, bool)>) {
        let (tx, rx) = mpsc::channel();
        let sink: Sink = Arc::new(move |a| {
            let _ = tx.send((a, cancel.is_cancelled()));
        });
        let loader: Loader = Box::new(|| {
            let tok = tokenizer();
            let text = "She has 3 + 4 = 7 apples. ".repeat(40);
            let model = FakeModel::from_texts(&tok, &[text.as_str()], None)
                .map_err(|e| e.to_string())?
                .with_step_delay(Duration::from_millis(3));
            let vocab = tok.get_vocab_size(true);
            Ok(Arc::new(LocalEngine::new(Box::new(model), tok, None, fake_info(vocab))) as Arc<dyn Engine>)
        });
        (Worker::spawn(loader, sink), rx)
    }

    fn req(paths: usize) -> GenerateRequest {
        GenerateRequest {
            prompt: "Q: apples?\nA:".into(),
            paths,
            sampling: SamplingParams { temperature: 0.0, seed: 1, max_new_tokens: 300, ..SamplingParams::default() },
            ..GenerateRequest::default()
        }
    }

    fn next<T>(rx: &mpsc::Receiver<T>) -> T {
        rx.recv_timeout(Duration::from_secs(60)).expect("the worker reports")
    }

    #[test]
    fn loads_counts_and_cancels_within_a_token_step() {
        let cancel = CancelFlag::new();
        let (w, rx) = slow_worker(cancel.clone());
        let report = || next(&rx).0;
        assert!(matches!(report(), Report::ModelLoaded(i) if i.id == "fake"));
        w.count_tokens("k".into(), "Q: apples?\nA:".into()).unwrap();
        let n = tokenizer().encode("Q: apples?\nA:", false).unwrap().get_ids().len();
        assert!(
            matches!(report(), Report::TokenCount { prompt_sha256, result: Ok(c) } if prompt_sha256 == "k" && c == n)
        );

        w.generate(7, vec![req(2), req(1)], cancel.clone()).unwrap();
        let mut after_cancel = 0;
        let mut done = Vec::new();
        loop {
            match next(&rx) {
                (Report::Engine { id: 7, event: EngineEvent::Token(_), .. }, sent_after_cancel) => {
                    if sent_after_cancel {
                        after_cancel += 1;
                    } else {
                        cancel.cancel();
                    }
                }
                (Report::Engine { id: 7, request, event: EngineEvent::Done(r), .. }, _) => {
                    done.push((request, r.path, r.stop_reason))
                }
                (Report::GenerationFinished { id: 7 }, _) => break,
                (Report::Engine { .. }, _) => {}
                (other, _) => panic!("unexpected {other:?}"),
            }
        }
        // At most the rest of the step in flight plus one more step of both paths, out of 600.
        assert!(after_cancel <= 3, "{after_cancel} tokens after cancel");
        done.sort_by_key(|d| (d.0, d.1));
        assert_eq!(
            done,
            vec![(0, 0, StopReason::Cancelled), (0, 1, StopReason::Cancelled), (1, 0, StopReason::Cancelled)],
            "every pane closes, the A/B request never started too"
        );
    }

    #[test]
    fn load_errors_and_panics_are_reported_not_raised() {
        let (tx, rx) = mpsc::channel();
        let sink: Sink = Arc::new(move |a| {
            let _ = tx.send(a);
        });
        let _w = Worker::spawn(Box::new(|| Err("config.json: missing".to_string())), Arc::clone(&sink));
        assert!(matches!(next(&rx), Report::ModelFailed(m) if m == "config.json: missing"));
        let _w = Worker::spawn(Box::new(|| panic!("boom")), Arc::clone(&sink));
        assert!(matches!(next(&rx), Report::ModelFailed(m) if m.contains("boom")));
        // No thread to load on: said at once, not "loading model…" forever.
        let _w = Worker::spawn_with(Box::new(|| Err("unused".to_string())), sink, |_| {
            Err(std::io::Error::other("no threads left"))
        });
        assert!(
            matches!(next(&rx), Report::ModelFailed(m) if m == "could not start the inference thread: no threads left")
        );
    }
}
