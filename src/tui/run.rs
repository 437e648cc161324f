//! One generation as the screen shows it: the prompts sent, one pane per path, and how engine events
//! update the panes (text, live failure detection, answer, labels pre-filled from the detectors).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::{EngineEvent, GenerateRequest, GenerationStats, ModelInfo, SamplingParams, StopReason};

use super::labels::Labels;
use crate::lab;
use crate::lab::answer::AnswerRule;
use crate::lab::detect::{DetectContext, Failure, FailureKind, StreamDetector};
use crate::lab::vote::Vote;

/// Which comparison a generation makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    /// N sampled paths of one template; the vote is self-consistency.
    SelfConsistency,
    /// One path each of up to four templates on the same question.
    Ab,
}

impl CompareMode {
    pub fn title(self) -> &'static str {
        match self {
            CompareMode::SelfConsistency => "self-consistency",
            CompareMode::Ab => "A/B templates",
        }
    }
}

/// Most templates side by side in the A/B view.
pub const MAX_AB: usize = 4;

/// A prompt exactly as sent, with what the detectors need to know about its template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptSpec {
    pub template: String,
    pub prompt_sha256: String,
    pub stop: Vec<String>,
    pub instruction: Option<String>,
    pub ends_with_answer_marker: bool,
    pub prompt: String,
}

impl PromptSpec {
    pub fn new(
        template: &str,
        prompt: String,
        stop: Vec<String>,
        instruction: Option<String>,
        ends_with_answer_marker: bool,
    ) -> Self {
        Self {
            template: template.to_string(),
            prompt_sha256: sha256_hex(&prompt),
            stop,
            instruction,
            ends_with_answer_marker,
            prompt,
        }
    }
}

pub use crate::hash::sha256_hex;

/// One path on screen.
pub struct Pane {
    /// Index into [`Run::prompts`] (the request this path belongs to).
    pub prompt: usize,
    /// Path index within its request.
    pub path: usize,
    pub text: String,
    pub token_ids: Vec<u32>,
    pub stop: Option<StopReason>,
    /// Milliseconds from the start of the generation at which this path's prefill finished.
    pub started_ms: Option<f64>,
    pub last_ms: Option<f64>,
    pub failures: Vec<Failure>,
    pub answer: Option<String>,
    pub answer_rule: AnswerRule,
    pub labels: Labels,
    pub note: String,
    /// Lines scrolled up from the bottom; 0 follows the stream.
    pub scroll_up: usize,
    detector: Option<StreamDetector>,
}

impl Pane {
    pub fn new(prompt: usize, path: usize, ctx: DetectContext) -> Self {
        Self {
            prompt,
            path,
            text: String::new(),
            token_ids: Vec::new(),
            stop: None,
            started_ms: None,
            last_ms: None,
            failures: Vec::new(),
            answer: None,
            answer_rule: AnswerRule::None,
            labels: Labels::default(),
            note: String::new(),
            scroll_up: 0,
            detector: Some(StreamDetector::new(ctx)),
        }
    }

    /// A finished pane restored from a saved session (its findings as saved, no detector).
    #[allow(clippy::too_many_arguments)]
    pub fn restored(
        prompt: usize,
        path: usize,
        text: String,
        token_ids: Vec<u32>,
        stop: StopReason,
        failures: Vec<Failure>,
        answer: Option<String>,
        answer_rule: AnswerRule,
        labels: Labels,
        note: String,
    ) -> Self {
        Self {
            prompt,
            path,
            text,
            token_ids,
            stop: Some(stop),
            started_ms: None,
            last_ms: None,
            failures,
            answer,
            answer_rule,
            labels,
            note,
            scroll_up: 0,
            detector: None,
        }
    }

    pub fn finished(&self) -> bool {
        self.stop.is_some()
    }

    pub fn tokens_per_s(&self) -> Option<f64> {
        let (a, b) = (self.started_ms?, self.last_ms?);
        (b > a && !self.token_ids.is_empty()).then(|| self.token_ids.len() as f64 * 1000.0 / (b - a))
    }

    fn refresh_findings(&mut self, failures: Vec<Failure>) {
        let ex = lab::answer::extract(&self.text);
        self.answer = ex.answer;
        self.answer_rule = ex.rule;
        self.labels.set_detected(failures.iter().map(|f| f.kind));
        self.failures = failures;
    }

    fn push_token(&mut self, id: u32, text: &str, at_ms: f64) {
        self.token_ids.push(id);
        self.text.push_str(text);
        self.last_ms = Some(at_ms);
        if let Some(d) = self.detector.as_mut() {
            d.push(text);
            let f = d.failures();
            self.refresh_findings(f);
        }
    }

    fn finish(&mut self, text: String, token_ids: Vec<u32>, stop: StopReason, ctx: DetectContext) {
        // The final text is authoritative; rebuild the detector if the stream differed from it.
        let mut det = match self.detector.take() {
            Some(d) if d.text() == text => d,
            _ => {
                let mut d = StreamDetector::new(ctx);
                d.push(&text);
                d
            }
        };
        let mut f = det.finish();
        // A stop string that opens a new question means the model was inventing one; the cut text no
        // longer shows it, so the lab reports it as a zero-width runaway_question at the end.
        if !f.iter().any(|x| x.kind == FailureKind::RunawayQuestion) {
            if let Some(r) = lab::analysis::stop_failure(&text, stop.stop_string()) {
                f.push(r);
                f.sort_by(|a, b| (a.start, a.end, a.kind).cmp(&(b.start, b.end, b.kind)));
            }
        }
        self.text = text;
        self.token_ids = token_ids;
        self.stop = Some(stop);
        self.refresh_findings(f);
    }
}

/// A generation (running or finished, or opened from a session).
pub struct Run {
    /// Matches engine events to the generation they belong to.
    pub id: u64,
    pub mode: CompareMode,
    pub question: usize,
    pub question_text: String,
    pub gold: String,
    pub prompts: Vec<PromptSpec>,
    pub sampling: SamplingParams,
    pub panes: Vec<Pane>,
    pub running: bool,
    pub cancelling: bool,
    pub error: Option<String>,
    pub stats: Vec<GenerationStats>,
    /// Model that produced it.
    pub model: Option<ModelInfo>,
    /// Session file it was last saved to or opened from.
    pub saved_to: Option<PathBuf>,
}

impl Run {
    /// A new run about to start: in self-consistency `paths` panes of prompt 0; in A/B one pane per prompt.
    pub fn start(
        id: u64,
        mode: CompareMode,
        question: usize,
        question_text: &str,
        gold: &str,
        prompts: Vec<PromptSpec>,
        sampling: SamplingParams,
        paths: usize,
        model: Option<ModelInfo>,
    ) -> Self {
        let mut panes = Vec::new();
        for (pi, spec) in prompts.iter().enumerate() {
            let n = if mode == CompareMode::SelfConsistency { paths.max(1) } else { 1 };
            for path in 0..n {
                panes.push(Pane::new(pi, path, detect_context(question_text, spec)));
            }
            if mode == CompareMode::SelfConsistency {
                break;
            }
        }
        let prompts =
            if mode == CompareMode::SelfConsistency { prompts.into_iter().take(1).collect() } else { prompts };
        Self {
            id,
            mode,
            question,
            question_text: question_text.to_string(),
            gold: gold.to_string(),
            prompts,
            sampling,
            panes,
            running: true,
            cancelling: false,
            error: None,
            stats: Vec::new(),
            model,
            saved_to: None,
        }
    }

    /// What the worker runs, in order (A/B: one request per template, run one after another).
    pub fn requests(&self) -> Vec<GenerateRequest> {
        self.prompts
            .iter()
            .enumerate()
            .map(|(pi, spec)| GenerateRequest {
                prompt: spec.prompt.clone(),
                paths: self.panes.iter().filter(|p| p.prompt == pi).count(),
                sampling: self.sampling.clone(),
                stop: spec.stop.clone(),
                ..GenerateRequest::default()
            })
            .collect()
    }

    fn pane_index(&self, request: usize, path: usize) -> Option<usize> {
        self.panes.iter().position(|p| p.prompt == request && p.path == path)
    }

    /// Applies one engine event of request `request`, stamped `at_ms` after the generation began.
    pub fn apply(&mut self, request: usize, event: EngineEvent, at_ms: f64) {
        match event {
            EngineEvent::Prefilled { .. } => {
                for p in self.panes.iter_mut().filter(|p| p.prompt == request) {
                    p.started_ms = Some(at_ms);
                }
            }
            EngineEvent::Token(t) => {
                if let Some(i) = self.pane_index(request, t.path) {
                    self.panes[i].push_token(t.id.unwrap_or_default(), &t.text, at_ms);
                }
            }
            EngineEvent::Done(res) => {
                if let Some(i) = self.pane_index(request, res.path) {
                    let ctx = self.prompts.get(request).map(|s| detect_context(&self.question_text, s));
                    if let Some(ctx) = ctx {
                        self.panes[i].last_ms.get_or_insert(at_ms);
                        self.panes[i].finish(res.text, res.token_ids, res.stop_reason, ctx);
                    }
                }
            }
            EngineEvent::Stats(s) => self.stats.push(s),
        }
    }

    /// The generation ended (normally, cancelled or failed): unfinished panes are closed as cancelled.
    pub fn end(&mut self, error: Option<String>) {
        self.running = false;
        self.cancelling = false;
        if error.is_some() {
            self.error = error;
        }
        for i in 0..self.panes.len() {
            if !self.panes[i].finished() {
                let ctx = self.prompts.get(self.panes[i].prompt).map(|s| detect_context(&self.question_text, s));
                if let Some(ctx) = ctx {
                    let text = self.panes[i].text.clone();
                    let ids = self.panes[i].token_ids.clone();
                    self.panes[i].finish(text, ids, StopReason::Cancelled, ctx);
                }
            }
        }
    }

    pub fn correct(&self, answer: Option<&str>) -> Option<bool> {
        answer.map(|a| lab::answer::matches_gold(a, &self.gold))
    }

    pub fn vote(&self) -> Vote {
        let answers: Vec<Option<String>> = self.panes.iter().map(|p| p.answer.clone()).collect();
        lab::vote::vote(&answers)
    }

    /// Paths generated so far, all panes together.
    pub fn tokens(&self) -> usize {
        self.panes.iter().map(|p| p.token_ids.len()).sum()
    }

    pub fn template_of(&self, pane: usize) -> Option<&PromptSpec> {
        self.prompts.get(self.panes.get(pane)?.prompt)
    }
}

pub fn detect_context(question: &str, spec: &PromptSpec) -> DetectContext {
    DetectContext {
        question: question.to_string(),
        instruction: spec.instruction.clone(),
        prompt_ends_with_answer_marker: spec.ends_with_answer_marker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{PathResult, TokenEvent};

    fn spec(name: &str) -> PromptSpec {
        PromptSpec::new(name, format!("{name}\nQ: q\nA:"), vec!["\nQ:".into()], None, true)
    }

    #[test]
    fn self_consistency_run_has_one_request_with_n_paths() {
        let run = Run::start(
            1,
            CompareMode::SelfConsistency,
            0,
            "q",
            "18",
            vec![spec("a"), spec("b")],
            SamplingParams::default(),
            3,
            None,
        );
        assert_eq!(run.panes.len(), 3);
        let reqs = run.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].paths, 3);
        assert_eq!(reqs[0].stop, vec!["\nQ:".to_string()]);
    }

    #[test]
    fn ab_run_has_one_request_per_template() {
        let run = Run::start(
            1,
            CompareMode::Ab,
            0,
            "q",
            "18",
            vec![spec("a"), spec("b")],
            SamplingParams::default(),
            3,
            None,
        );
        assert_eq!(run.panes.len(), 2);
        let reqs = run.requests();
        assert_eq!(reqs.iter().map(|r| r.paths).collect::<Vec<_>>(), vec![1, 1]);
        assert!(reqs[1].prompt.starts_with('b'));
    }

    #[test]
    fn events_fill_panes_and_done_text_wins() {
        let mut run = Run::start(
            1,
            CompareMode::SelfConsistency,
            0,
            "q",
            "18",
            vec![spec("a")],
            SamplingParams::default(),
            2,
            None,
        );
        run.apply(0, EngineEvent::Prefilled { prompt_tokens: 5, prefill_ms: 1.0 }, 10.0);
        let token =
            |id: u32, text: &str| TokenEvent { path: 1, id: Some(id), text: text.into(), ..TokenEvent::default() };
        run.apply(0, EngineEvent::Token(token(7, " The answer")), 20.0);
        run.apply(0, EngineEvent::Token(token(8, " is 18.")), 30.0);
        assert_eq!(run.panes[1].text, " The answer is 18.");
        assert_eq!(run.panes[1].answer.as_deref(), Some("18"));
        assert_eq!(run.panes[1].tokens_per_s(), Some(100.0));
        assert!(run.panes[0].text.is_empty());
        let done = PathResult {
            text: " The answer is 18.".into(),
            token_ids: vec![7, 8],
            ..PathResult::empty(1, StopReason::Eos)
        };
        run.apply(0, EngineEvent::Done(done), 31.0);
        assert!(run.panes[1].finished());
        assert_eq!(run.correct(run.panes[1].answer.as_deref()), Some(true));
        run.end(None);
        assert_eq!(run.panes[0].stop, Some(StopReason::Cancelled));
        // Path 0 has no answer: the no_answer detector fires on finish and pre-fills its label.
        assert!(run.panes[0].labels.get(super::super::labels::Label::NoAnswer).detected);
        let v = run.vote();
        assert_eq!(v.majority.as_deref(), Some("18"));
        assert_eq!(v.voters, 1);
    }
}
