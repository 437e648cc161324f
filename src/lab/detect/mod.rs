//! Failure detectors over a continuation (the text a model generated after the prompt).
//!
//! Everything runs incrementally in [`StreamDetector`]: each push scans only the new text (words and
//! sentences are handed on once settled, so the result never depends on how the text was chunked), and
//! [`StreamDetector::finish`] gives exactly what [`detect_all`] gives on the whole text.

pub(crate) mod arith;
mod echo;
mod markers;
mod repetition;
pub(crate) mod text;

use serde::{Deserialize, Serialize};

pub use repetition::clip as excerpt;

use text::{is_marker, SegmentScanner, WordScanner};

/// The six failure kinds. Serialized names are a contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Repetition,
    QuestionEcho,
    MissingAnswerMarker,
    RunawayQuestion,
    NoAnswer,
    ArithmeticError,
}

impl FailureKind {
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Repetition,
        FailureKind::QuestionEcho,
        FailureKind::MissingAnswerMarker,
        FailureKind::RunawayQuestion,
        FailureKind::NoAnswer,
        FailureKind::ArithmeticError,
    ];

    /// The contract name: `repetition`, `question_echo`, …
    pub fn name(&self) -> &'static str {
        match self {
            FailureKind::Repetition => "repetition",
            FailureKind::QuestionEcho => "question_echo",
            FailureKind::MissingAnswerMarker => "missing_answer_marker",
            FailureKind::RunawayQuestion => "runaway_question",
            FailureKind::NoAnswer => "no_answer",
            FailureKind::ArithmeticError => "arithmetic_error",
        }
    }

    /// The kind with this contract name.
    pub fn from_name(name: &str) -> Option<FailureKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One detected failure: a kind and a byte span of the continuation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub start: usize,
    pub end: usize,
    pub detail: String,
}

/// What the detectors need to know about the prompt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectContext {
    /// The target question (for `question_echo`).
    pub question: String,
    /// The template's instruction line, if any (also for `question_echo`).
    pub instruction: Option<String>,
    /// Whether the prompt ends with `A:`; if not, the continuation must open with it.
    pub prompt_ends_with_answer_marker: bool,
}

impl DetectContext {
    /// The context for `question` rendered with `template`.
    pub fn for_template(template: &crate::lab::template::Template, question: &str) -> Self {
        Self {
            question: question.to_string(),
            instruction: template.instruction().map(str::to_string),
            prompt_ends_with_answer_marker: template.ends_with_answer_marker(),
        }
    }
}

/// A span before merging, inside the detectors.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RawSpan {
    pub start: usize,
    pub end: usize,
    pub detail: String,
}

/// Incremental detection on a growing continuation.
#[derive(Clone, Debug)]
pub struct StreamDetector {
    text: String,
    words: WordScanner,
    segments: SegmentScanner,
    /// Start of the current (unfinished) line, and where the search for its end resumes.
    line_start: usize,
    line_scan: usize,
    repetition: repetition::Repetition,
    echoes: Vec<echo::Echo>,
    marker: markers::AnswerMarker,
    runaway: markers::Runaway,
    arithmetic: Vec<RawSpan>,
    finished: Option<Vec<Failure>>,
}

impl StreamDetector {
    pub fn new(ctx: DetectContext) -> Self {
        let mut echoes = vec![echo::Echo::new(echo::Source::Question, &ctx.question)];
        if let Some(i) = ctx.instruction.as_deref().filter(|i| !i.trim().is_empty()) {
            echoes.push(echo::Echo::new(echo::Source::Instruction, i));
        }
        Self {
            text: String::new(),
            words: WordScanner::default(),
            segments: SegmentScanner::default(),
            line_start: 0,
            line_scan: 0,
            repetition: repetition::Repetition::new(),
            echoes,
            marker: markers::AnswerMarker::new(ctx.prompt_ends_with_answer_marker),
            runaway: markers::Runaway::default(),
            arithmetic: Vec::new(),
            finished: None,
        }
    }

    /// Appends generated text. Ignored after [`finish`](Self::finish).
    pub fn push(&mut self, delta: &str) {
        if self.finished.is_some() || delta.is_empty() {
            return;
        }
        self.text.push_str(delta);
        self.advance(false);
    }

    fn advance(&mut self, at_end: bool) {
        let text = self.text.as_str();
        let (rep, echoes) = (&mut self.repetition, &mut self.echoes);
        self.words.scan(text, at_end, &mut |w| {
            if is_marker(&text[w.start..w.end]) {
                return;
            }
            for e in echoes.iter_mut() {
                e.add_word(text, &w);
            }
            rep.add_word(text, w);
        });
        let arith = &mut self.arithmetic;
        self.segments.scan(text, at_end, &mut |s| {
            rep.add_sentence(text, s.start, s.end);
            arith.extend(arith::check_segment(&text[s.start..s.end], s.start).into_iter().map(|e| RawSpan {
                start: e.start,
                end: e.end,
                detail: e.detail,
            }));
        });
        let from = self.line_scan;
        for (p, _) in text[from..].match_indices('\n') {
            rep.add_line(text, self.line_start, from + p);
            self.line_start = from + p + 1;
        }
        self.line_scan = text.len();
        if at_end && self.line_start < text.len() {
            rep.add_line(text, self.line_start, text.len());
            self.line_start = text.len();
        }
        self.marker.update(text, at_end);
        self.runaway.update(text);
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Current findings, sorted by start. Loops and copies still growing are included; `no_answer`
    /// only comes with [`finish`](Self::finish).
    pub fn failures(&self) -> Vec<Failure> {
        if let Some(f) = &self.finished {
            return f.clone();
        }
        let text = self.text.as_str();
        let mut arith = self.arithmetic.clone();
        let tail = self.segments.tail(text);
        if tail.end > tail.start {
            let errors = arith::check_segment(&text[tail.start..tail.end], tail.start);
            arith.extend(errors.into_iter().filter(|e| value_is_settled(&text[e.end..])).map(|e| RawSpan {
                start: e.start,
                end: e.end,
                detail: e.detail,
            }));
        }
        let echo: Vec<RawSpan> = self.echoes.iter().flat_map(|e| e.spans(text)).collect();
        let mut rep = self.repetition.spans(text);
        rep.extend(self.repetition.cut_off_span(text, tail.start, tail.end));
        self.collect(rep, echo, arith, None)
    }

    /// Final findings, `no_answer` included; equals [`detect_all`] on the whole text. Later pushes are
    /// ignored; calling it again returns the same.
    pub fn finish(&mut self) -> Vec<Failure> {
        if let Some(f) = &self.finished {
            return f.clone();
        }
        // The last sentence, if unfinished, may be an earlier one said again and cut off.
        let tail = self.segments.tail(&self.text);
        let cut_off = self.repetition.cut_off_span(&self.text, tail.start, tail.end);
        self.advance(true);
        self.repetition.finish(&self.text);
        self.repetition.push_closed_opt(cut_off);
        let cut_loop = self.repetition.cut_loop(&self.text, tail.start, tail.end);
        self.repetition.push_closed_opt(cut_loop);
        for e in self.echoes.iter_mut() {
            e.finish(&self.text);
        }
        let no_answer = no_answer_span(&self.text);
        let echo: Vec<RawSpan> = self.echoes.iter().flat_map(|e| e.spans(&self.text)).collect();
        let all = self.collect(self.repetition.spans(&self.text), echo, self.arithmetic.clone(), no_answer);
        self.finished = Some(all.clone());
        all
    }

    fn collect(
        &self,
        repetition: Vec<RawSpan>,
        echo: Vec<RawSpan>,
        arithmetic: Vec<RawSpan>,
        no_answer: Option<RawSpan>,
    ) -> Vec<Failure> {
        let text = self.text.as_str();
        let mut out = Vec::new();
        out.extend(merge(FailureKind::Repetition, repetition));
        out.extend(merge(FailureKind::QuestionEcho, echo));
        out.extend(self.marker.span(text).map(|s| failure(FailureKind::MissingAnswerMarker, s)));
        out.extend(self.runaway.span(text).map(|s| failure(FailureKind::RunawayQuestion, s)));
        out.extend(no_answer.map(|s| failure(FailureKind::NoAnswer, s)));
        out.extend(arithmetic.into_iter().map(|s| failure(FailureKind::ArithmeticError, s)));
        out.sort_by_key(|f| (f.start, f.end, f.kind));
        out
    }
}

/// Whether the text after an equation's value shows the value and the equation are complete (a space
/// then something other than an operator), so a still-growing `= 5` is not reported before `= 50`.
fn value_is_settled(rest: &str) -> bool {
    let after = rest.trim_start();
    after.len() < rest.len() && after.chars().next().is_some_and(|c| !"+-*/×÷−–(=x".contains(c))
}

fn failure(kind: FailureKind, s: RawSpan) -> Failure {
    Failure { kind, start: s.start, end: s.end, detail: s.detail }
}

/// Unions overlapping spans of one kind; a merged span keeps the detail of its earliest part.
fn merge(kind: FailureKind, mut spans: Vec<RawSpan>) -> Vec<Failure> {
    spans.sort_by(|a, b| (a.start, a.end, &a.detail).cmp(&(b.start, b.end, &b.detail)));
    let mut out: Vec<Failure> = Vec::new();
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(failure(kind, s)),
        }
    }
    out
}

/// `no_answer`: the path gives no final answer at all (neither "The answer is N" nor a final statement
/// of a number; see [`crate::lab::answer`]). A bare final number is an answer in another format, which
/// `answer_rule: flexible` shows.
fn no_answer_span(text: &str) -> Option<RawSpan> {
    let why = crate::lab::answer::no_answer_reason(text)?;
    let start = text.len() - text.trim_start().len();
    let end = start + text.trim().len();
    Some(RawSpan { start, end, detail: why.to_string() })
}

/// Every detector on a finished continuation.
pub fn detect_all(ctx: &DetectContext, continuation: &str) -> Vec<Failure> {
    let mut d = StreamDetector::new(ctx.clone());
    d.push(continuation);
    d.finish()
}

#[cfg(test)]
mod tests;
