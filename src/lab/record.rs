//! The record of a run: a question, the prompts sent, the sampling, every path with its findings and
//! the human's labels and notes, and the vote. The TUI shows and saves it (sessions), and `eval` writes
//! its paths in the same shape, so a path reads the same wherever it was made.

use serde::{Deserialize, Serialize};

use super::analysis;
use super::answer::AnswerRule;
use super::detect::{DetectContext, Failure};
use super::labels::{Label, LabelState, Labels};
use super::path_tree::BranchRecord;
use super::token_steps::TokenStep;
use super::vote::Vote;
use crate::engine::{ModelInfo, SamplingParams, StopReason};

/// Which comparison a run makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    /// N sampled paths of one template; the vote is self-consistency.
    SelfConsistency,
    /// N paths each of up to four templates on the same question (a templates × paths grid).
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
        let prompt_sha256 = crate::hash::sha256_hex(&prompt);
        Self { template: template.to_string(), prompt_sha256, stop, instruction, ends_with_answer_marker, prompt }
    }

    /// What the detectors need for a path of this prompt on `question`.
    pub fn detect_context(&self, question: &str) -> DetectContext {
        DetectContext {
            question: question.to_string(),
            instruction: self.instruction.clone(),
            prompt_ends_with_answer_marker: self.ends_with_answer_marker,
        }
    }
}

/// The question of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestionRecord {
    /// 0-based row of GSM8K test.jsonl.
    pub index: usize,
    pub gold: String,
    pub text: String,
}

/// One label of one path as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelRecord {
    pub label: Label,
    /// Pre-filled by a detector.
    pub detected: bool,
    /// The human's decision: true confirmed/added, false overruled, null not reviewed.
    pub human: Option<bool>,
    /// What counts: the human's word, else the detector's.
    pub value: bool,
}

/// One path: its text, how it stopped, what the lab read in it, and what the human said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathRecord {
    /// The path's number as on screen (1-based, in order of the run's paths).
    #[serde(default)]
    pub path: usize,
    /// The template whose prompt it continues (in an eval line, the line's template).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
    pub text: String,
    /// Generated token ids (sessions keep them; eval lines only count them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_ids: Vec<u32>,
    /// Generated tokens.
    #[serde(default)]
    pub tokens: usize,
    /// The stop reason's contract name (`max_tokens`, `eos`, `stop_string`, `cancelled`, …).
    pub stop_reason: String,
    /// The stop string, when `stop_reason` is `stop_string`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_string: Option<String>,
    pub answer: Option<String>,
    pub answer_rule: AnswerRule,
    /// Against gold (null without an answer).
    #[serde(default)]
    pub correct: Option<bool>,
    /// What the detectors found.
    pub failures: Vec<Failure>,
    /// Labels the detectors or the human set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<LabelRecord>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// The labels were kept from an earlier run whose text for this path differed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Sum of the log-probabilities of the tokens the model chose (calculator-forced tokens
    /// excluded), when the run asked the engine for them (`eval --select weighted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprob: Option<f64>,
    /// Byte ranges of `text` the calculator wrote (`--calculator`); right by construction, so
    /// arithmetic_error findings there are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced_spans: Vec<std::ops::Range<usize>>,
    /// Per generated token: its probability, the alternatives the model considered, the entropy (the
    /// TUI asks for them; one line per token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<TokenStep>,
    /// Where this path branched off another one of the run (the TUI's `b`); None for a sampled path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<BranchRecord>,
}

/// The one place a [`StopReason`] becomes its recorded fields: the contract name and the stop string.
pub fn flatten_stop(stop: &StopReason) -> (String, Option<String>) {
    // The detail is the stop string, or the message of an `error` stop.
    let detail = stop.stop_string().or(stop.error());
    (stop.as_str().to_string(), detail.map(str::to_string))
}

/// The inverse of [`flatten_stop`]; the error names an unknown reason.
pub fn parse_stop(name: &str, stop_string: Option<&str>) -> Result<StopReason, String> {
    StopReason::from_name(name, stop_string).ok_or_else(|| format!("unknown stop_reason `{name}`"))
}

impl PathRecord {
    /// A finished path read by the lab: answer, failures (the stop string counted) and correctness.
    pub fn analyzed(
        ctx: &DetectContext,
        text: String,
        token_ids: Vec<u32>,
        stop: &StopReason,
        gold: Option<&str>,
    ) -> PathRecord {
        let a = analysis::analyze_stopped(ctx, &text, stop.stop_string(), gold);
        let (stop_reason, stop_string) = flatten_stop(stop);
        PathRecord {
            path: 0,
            template: String::new(),
            text,
            tokens: token_ids.len(),
            token_ids,
            stop_reason,
            stop_string,
            answer: a.answer,
            answer_rule: a.answer_rule,
            correct: a.correct.filter(|_| gold.is_some()),
            failures: a.failures,
            labels: Vec::new(),
            note: String::new(),
            stale: false,
            logprob: None,
            forced_spans: Vec::new(),
            steps: Vec::new(),
            branch: None,
        }
    }

    pub fn stop(&self) -> Result<StopReason, String> {
        parse_stop(&self.stop_reason, self.stop_string.as_deref())
    }

    /// The labels as the annotation keys see them.
    pub fn labels(&self) -> Labels {
        let mut labels = Labels::default();
        for l in &self.labels {
            labels.set(l.label, LabelState { detected: l.detected, human: l.human });
        }
        labels
    }

    /// Records `labels` (only those detected or decided).
    pub fn set_labels(&mut self, labels: &Labels) {
        self.labels = labels
            .touched()
            .map(|(label, s)| LabelRecord { label, detected: s.detected, human: s.human, value: s.effective() })
            .collect();
    }
}

/// One answer's count in the vote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteCount {
    pub answer: String,
    pub count: usize,
}

/// The vote as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteRecord {
    pub counts: Vec<VoteCount>,
    pub majority: Option<String>,
    pub tie: bool,
    pub agreement: f64,
    pub voters: usize,
    /// Whether the majority matches gold (null without a majority).
    pub correct: Option<bool>,
}

impl VoteRecord {
    pub fn new(vote: &Vote, gold: &str) -> VoteRecord {
        VoteRecord {
            counts: vote.counts.iter().map(|(a, c)| VoteCount { answer: a.clone(), count: *c }).collect(),
            correct: vote.majority.as_deref().map(|m| super::answer::matches_gold(m, gold)),
            majority: vote.majority.clone(),
            tie: vote.tie,
            agreement: vote.agreement,
            voters: vote.voters,
        }
    }
}

/// A run: what was asked, how, of which model, and what came out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Model id or path, sha256 of its config.json, size and dtype.
    pub model: ModelInfo,
    pub mode: CompareMode,
    pub question: QuestionRecord,
    /// Prompts as sent: template name, sha256 of the rendered prompt, stop strings, the prompt itself.
    pub templates: Vec<PromptSpec>,
    pub sampling: SamplingParams,
    /// The calculator wrote the results of `expression =` (left out when off: older sessions read the same).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub calculator: bool,
    pub paths: Vec<PathRecord>,
    pub vote: VoteRecord,
}

impl RunRecord {
    /// The prompt (index into `templates`) and path index within it of each path, in order: paths of
    /// one template are numbered from 0 in the order they appear (branches after the sampled ones). Fails on a path of an unlisted template.
    pub fn path_slots(&self) -> Result<Vec<(usize, usize)>, String> {
        let mut seen = vec![0usize; self.templates.len()];
        self.paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let t = self.templates.iter().position(|t| t.template == p.template).ok_or_else(|| {
                    format!("path {} names template `{}`, which the session does not list", i + 1, p.template)
                })?;
                seen[t] += 1;
                Ok((t, seen[t] - 1))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_flatten_and_come_back() {
        for s in [StopReason::MaxTokens, StopReason::Eos, StopReason::Cancelled, StopReason::StopString("\nQ:".into())]
        {
            let (name, stop) = flatten_stop(&s);
            assert_eq!(parse_stop(&name, stop.as_deref()), Ok(s));
        }
        assert_eq!(parse_stop("bored", None), Err("unknown stop_reason `bored`".to_string()));
    }

    #[test]
    fn an_analyzed_path_counts_a_question_stop_as_runaway() {
        let ctx = DetectContext { question: "q".into(), instruction: None, prompt_ends_with_answer_marker: true };
        let stop = StopReason::StopString("\nQ:".into());
        let p = PathRecord::analyzed(&ctx, " 1 + 2 = 3. The answer is 3.".into(), vec![1, 2, 3], &stop, Some("3"));
        assert_eq!((p.tokens, p.answer.as_deref(), p.correct), (3, Some("3"), Some(true)));
        assert_eq!((p.stop_reason.as_str(), p.stop_string.as_deref()), ("stop_string", Some("\nQ:")));
        assert_eq!(p.failures.len(), 1);
        assert_eq!(p.stop(), Ok(stop));
    }
}
