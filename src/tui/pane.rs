//! One path on screen: its text as it streams, what the detectors see in it so far, the human's labels
//! and note, and how far it is scrolled.

use crate::engine::{StopReason, TokenEvent};
use crate::lab;
use crate::lab::answer::AnswerRule;
use crate::lab::answer_stream::AnswerStream;
use crate::lab::detect::{DetectContext, Failure, StreamDetector};
use crate::lab::labels::Labels;
use crate::lab::path_tree::BranchRecord;
use crate::lab::record::{flatten_stop, PathRecord};
use crate::lab::token_steps::{self, TokenStep};

pub struct Pane {
    /// Index into [`Generation::prompts`](super::generation::Generation::prompts) (the request this
    /// path belongs to).
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
    /// The labels were kept from a run whose text for this path differed (a rerun of a session).
    pub stale: bool,
    /// Lines scrolled up from the bottom; 0 follows the stream.
    pub scroll_up: usize,
    /// What the model saw at each token (one per token event, in order).
    pub steps: Vec<TokenStep>,
    /// Byte ranges of the text the calculator wrote, kept up to date as tokens arrive.
    forced: Vec<std::ops::Range<usize>>,
    /// Some token event came without an id (a remote server): the ids cannot be replayed.
    pub ids_missing: bool,
    /// Where this path branched off another (its parent's number is 1-based).
    pub branch: Option<BranchRecord>,
    /// Tokens forced at the start of a branch (the parent's up to the branch point, then the chosen one).
    pub prefix: Vec<u32>,
    /// The parent's steps for the forced tokens (the engine replays them without probabilities).
    inherited: Vec<TokenStep>,
    detector: Option<StreamDetector>,
    /// The answer so far, read incrementally as the text streams.
    answers: AnswerStream,
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
            stale: false,
            scroll_up: 0,
            steps: Vec::new(),
            forced: Vec::new(),
            ids_missing: false,
            branch: None,
            prefix: Vec::new(),
            inherited: Vec::new(),
            detector: Some(StreamDetector::new(ctx)),
            answers: AnswerStream::new(),
        }
    }

    /// A finished pane restored from a saved path (its findings as saved, no detector).
    pub fn restored(prompt: usize, path: usize, record: &PathRecord) -> Result<Self, String> {
        Ok(Self {
            prompt,
            path,
            text: record.text.clone(),
            token_ids: record.token_ids.clone(),
            stop: Some(record.stop()?),
            started_ms: None,
            last_ms: None,
            failures: record.failures.clone(),
            answer: record.answer.clone(),
            answer_rule: record.answer_rule,
            labels: record.labels(),
            note: record.note.clone(),
            stale: record.stale,
            scroll_up: 0,
            steps: record.steps.clone(),
            forced: record.forced_spans.clone(),
            ids_missing: false,
            prefix: record.branch.as_ref().map_or_else(Vec::new, |b| {
                record.token_ids.get(..b.prefix_len()).unwrap_or(&record.token_ids).to_vec()
            }),
            branch: record.branch.clone(),
            inherited: Vec::new(),
            detector: None,
            answers: AnswerStream::new(),
        })
    }

    /// The path as recorded (`number` as on screen, `correct` against the run's gold).
    pub fn record(&self, number: usize, template: &str, correct: Option<bool>) -> PathRecord {
        let (stop_reason, stop_string) = flatten_stop(self.stop.as_ref().unwrap_or(&StopReason::Cancelled));
        let mut r = PathRecord {
            path: number,
            template: template.to_string(),
            text: self.text.clone(),
            token_ids: self.token_ids.clone(),
            tokens: self.token_ids.len(),
            stop_reason,
            stop_string,
            answer: self.answer.clone(),
            answer_rule: self.answer_rule,
            correct,
            failures: self.failures.clone(),
            labels: Vec::new(),
            note: self.note.clone(),
            stale: self.stale,
            logprob: token_steps::sum_logprob(&self.steps).map(|(sum, _)| sum),
            forced_spans: self.forced_spans(),
            steps: self.steps.clone(),
            branch: self.branch.clone(),
        };
        r.set_labels(&self.labels);
        r
    }

    /// A branch of a parent path: forced `prefix`, whose steps are the parent's `inherited` ones.
    pub fn branch_of(mut self, branch: BranchRecord, prefix: Vec<u32>, inherited: Vec<TokenStep>) -> Self {
        self.branch = Some(branch);
        self.prefix = prefix;
        self.inherited = inherited;
        self
    }

    /// Mean log-probability per token the model chose (None without probabilities).
    pub fn mean_logprob(&self) -> Option<f64> {
        token_steps::mean_logprob(&self.steps)
    }

    /// Byte range of the text each token released.
    pub fn token_spans(&self) -> Vec<std::ops::Range<usize>> {
        token_steps::spans(&self.steps, self.text.len())
    }

    pub fn finished(&self) -> bool {
        self.stop.is_some()
    }

    pub fn tokens_per_s(&self) -> Option<f64> {
        let (a, b) = (self.started_ms?, self.last_ms?);
        (b > a && !self.token_ids.is_empty()).then(|| self.token_ids.len() as f64 * 1000.0 / (b - a))
    }

    /// Byte ranges the calculator wrote.
    pub fn forced_spans(&self) -> Vec<std::ops::Range<usize>> {
        self.forced.clone()
    }

    fn set_findings(&mut self, answer: Option<String>, rule: AnswerRule, failures: Vec<Failure>) {
        // The calculator's results are right by construction: not arithmetic errors of the model's.
        let failures = lab::calculator::drop_forced_results(failures, &self.forced);
        self.answer = answer;
        self.answer_rule = rule;
        self.labels.set_detected(failures.iter().map(|f| f.kind));
        self.failures = failures;
    }

    /// A token event: its step (a replayed prefix token takes the parent's), then its text.
    pub(super) fn push_event(&mut self, t: &TokenEvent, at_ms: f64) {
        let mut step = TokenStep::from_event(t);
        if t.logprob.is_none() {
            if let Some(parent) = self.inherited.get(self.steps.len()) {
                step = TokenStep { len: step.len, ..parent.clone() };
            }
        }
        if step.forced && !t.text.is_empty() {
            let r = self.text.len()..self.text.len() + t.text.len();
            match self.forced.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => self.forced.push(r),
            }
        }
        self.steps.push(step);
        self.ids_missing |= t.id.is_none();
        self.push_token(t.id.unwrap_or_default(), &t.text, at_ms);
    }

    pub(super) fn push_token(&mut self, id: u32, text: &str, at_ms: f64) {
        self.token_ids.push(id);
        self.text.push_str(text);
        self.last_ms = Some(at_ms);
        let Some(d) = self.detector.as_mut() else { return };
        // Both read only the new text and the unfinished last sentence: a token costs the same at the
        // end of a long path as at its start.
        d.push(text);
        let failures = d.failures();
        let ex = self.answers.update(&self.text);
        self.set_findings(ex.answer, ex.rule, failures);
    }

    /// Final findings from the lab's analysis of the final text (which is authoritative).
    pub(super) fn finish(&mut self, text: String, token_ids: Vec<u32>, stop: StopReason, ctx: &DetectContext) {
        let a = lab::analysis::finish_stream(self.detector.take(), ctx, &text, stop.stop_string(), None);
        self.text = text;
        self.token_ids = token_ids;
        self.stop = Some(stop);
        // The final text is authoritative: read the calculator's ranges off it once more.
        self.forced = token_steps::forced_spans(&self.steps, self.text.len());
        self.set_findings(a.answer, a.answer_rule, a.failures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DetectContext {
        DetectContext { question: "How many bolts?".into(), instruction: None, prompt_ends_with_answer_marker: true }
    }

    #[test]
    fn streamed_findings_follow_every_token_and_end_equal_to_the_finished_texts() {
        let text = "She has 3 + 4 = 8 apples. She has 3 + 4 = 8 apples. Then 2 * 5 = 10. ".repeat(60);
        let mut p = Pane::new(0, 0, ctx());
        let mut ids = Vec::new();
        let mut shown_error_at = None;
        for (i, w) in text.split_inclusive(' ').enumerate() {
            p.push_token(i as u32, w, i as f64);
            ids.push(i as u32);
            // The answer shown is the whole text's answer after every token, not some tokens later.
            let now = lab::answer::extract(&p.text);
            assert_eq!((p.answer.clone(), p.answer_rule), (now.answer, now.rule), "after token {i}");
            if shown_error_at.is_none() && p.failures.iter().any(|f| f.kind == lab::FailureKind::ArithmeticError) {
                shown_error_at = Some(p.text.len());
            }
        }
        assert!(ids.len() > 1000);
        // The first wrong sum shows as soon as the word after its value settles it.
        assert_eq!(shown_error_at, Some("She has 3 + 4 = 8 apples. ".len()), "{shown_error_at:?}");
        p.finish(text.clone(), ids, StopReason::MaxTokens, &ctx());
        let whole = lab::analysis::analyze_stopped(&ctx(), &text, None, None);
        assert_eq!(p.failures, whole.failures);
        assert_eq!((p.answer.clone(), p.answer_rule), (whole.answer, whole.answer_rule));
    }

    fn event(text: &str, forced: bool) -> TokenEvent {
        TokenEvent { path: 0, id: Some(1), text: text.into(), logprob: Some(-0.5), top: vec![], forced, entropy: None }
    }

    #[test]
    fn calculator_results_are_marked_and_not_arithmetic_errors() {
        let run = |forced: bool| {
            let mut p = Pane::new(0, 0, ctx());
            for (i, (t, f)) in [(" She has 3 + 4 =", false), (" 8", forced), (" apples.", false), (" The", false)]
                .into_iter()
                .enumerate()
            {
                p.push_event(&event(t, f), i as f64);
            }
            p
        };
        let model = run(false);
        assert!(model.failures.iter().any(|f| f.kind == lab::FailureKind::ArithmeticError), "{:?}", model.failures);
        assert!(model.forced_spans().is_empty());
        let calc = run(true);
        assert!(!calc.failures.iter().any(|f| f.kind == lab::FailureKind::ArithmeticError), "{:?}", calc.failures);
        let at = " She has 3 + 4 =".len();
        assert_eq!(calc.forced_spans(), vec![at..at + 2]);
        assert_eq!(&calc.text[at..at + 2], " 8");
        // Recorded for the session, and still dropped once the path is finished.
        let mut done = calc;
        let text = done.text.clone();
        let ids = done.token_ids.clone();
        done.finish(text, ids, StopReason::MaxTokens, &ctx());
        assert!(!done.failures.iter().any(|f| f.kind == lab::FailureKind::ArithmeticError));
        assert_eq!(done.record(1, "t", None).forced_spans, vec![at..at + 2]);
    }
}
