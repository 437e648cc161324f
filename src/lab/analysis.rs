//! One call for a finished path: its answer, whether it is right, and its failures.

use serde::{Deserialize, Serialize};

use super::answer::{self, AnswerRule};
use super::detect::{self, DetectContext, Failure, FailureKind, StreamDetector};

/// What the lab makes of one finished path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathAnalysis {
    pub answer: Option<String>,
    pub answer_rule: AnswerRule,
    /// Against gold, when gold is known; false when there is gold but no answer.
    pub correct: Option<bool>,
    pub failures: Vec<Failure>,
}

/// Extraction, gold comparison and every detector on `continuation`.
pub fn analyze(ctx: &DetectContext, continuation: &str, gold: Option<&str>) -> PathAnalysis {
    let failures = detect::detect_all(ctx, continuation);
    from_failures(continuation, gold, failures)
}

/// Like [`analyze`] for a path whose generation stopped at `stop_string`: a stop string that begins a
/// new question (`"\nQ:"`) means the model was inventing one, which the cut-off text no longer shows, so
/// a zero-width `runaway_question` is reported at the end of the text.
pub fn analyze_stopped(
    ctx: &DetectContext,
    continuation: &str,
    stop_string: Option<&str>,
    gold: Option<&str>,
) -> PathAnalysis {
    finish_stream(None, ctx, continuation, stop_string, gold)
}

/// [`analyze_stopped`] for a path whose text went through `detector` as it streamed: its work is
/// reused when it saw exactly `continuation` (the final text is authoritative; else it starts over).
pub fn finish_stream(
    detector: Option<StreamDetector>,
    ctx: &DetectContext,
    continuation: &str,
    stop_string: Option<&str>,
    gold: Option<&str>,
) -> PathAnalysis {
    let mut det = match detector {
        Some(d) if d.text() == continuation => d,
        _ => {
            let mut d = StreamDetector::new(ctx.clone());
            d.push(continuation);
            d
        }
    };
    let mut failures = det.finish();
    if let Some(f) = stop_failure(continuation, stop_string) {
        if !failures.iter().any(|x| x.kind == FailureKind::RunawayQuestion) {
            failures.push(f);
            failures.sort_by_key(|f| (f.start, f.end, f.kind));
        }
    }
    from_failures(continuation, gold, failures)
}

/// The `runaway_question` a question-opening stop string stands for, if it is one.
pub fn stop_failure(continuation: &str, stop_string: Option<&str>) -> Option<Failure> {
    let s = stop_string?;
    if !s.trim_start().starts_with("Q:") {
        return None;
    }
    let n = continuation.len();
    Some(Failure {
        kind: FailureKind::RunawayQuestion,
        start: n,
        end: n,
        detail: format!("generation stopped at {s:?}: the model began a new question of its own"),
    })
}

fn from_failures(continuation: &str, gold: Option<&str>, failures: Vec<Failure>) -> PathAnalysis {
    let ex = answer::extract(continuation);
    let correct = gold.map(|g| ex.answer.as_deref().is_some_and(|a| answer::matches_gold(a, g)));
    PathAnalysis { answer: ex.answer, answer_rule: ex.rule, correct, failures }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DetectContext {
        DetectContext {
            question: "Janet’s ducks lay 16 eggs per day.".to_string(),
            instruction: None,
            prompt_ends_with_answer_marker: true,
        }
    }

    #[test]
    fn right_answer() {
        let a = analyze(&ctx(), " She has 16 - 3 - 4 = 9 eggs. 9 * 2 = 18. The answer is 18.", Some("18"));
        assert_eq!(a.answer.as_deref(), Some("18"));
        assert_eq!(a.answer_rule, AnswerRule::Strict);
        assert_eq!(a.correct, Some(true));
        assert!(a.failures.is_empty(), "{:?}", a.failures);
    }

    #[test]
    fn wrong_flexible_answer_with_failures() {
        let a = analyze(&ctx(), " She has 16 - 3 = 12 eggs", Some("18"));
        assert_eq!((a.answer.as_deref(), a.answer_rule, a.correct), (Some("12"), AnswerRule::Flexible, Some(false)));
        let kinds: Vec<_> = a.failures.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, vec![FailureKind::ArithmeticError], "a final equation answers, in another format");
        let a = analyze(&ctx(), " She has 16 - 3 = 13 eggs. Then she", Some("18"));
        assert_eq!((a.answer.as_deref(), a.answer_rule, a.correct), (None, AnswerRule::None, Some(false)));
        assert_eq!(a.failures.iter().map(|f| f.kind).collect::<Vec<_>>(), vec![FailureKind::NoAnswer]);
        assert_eq!(analyze(&ctx(), " nothing", None).correct, None);
        assert_eq!(analyze(&ctx(), " nothing", Some("3")).correct, Some(false));
    }

    #[test]
    fn question_stop_string_counts_as_runaway() {
        let t = " 2 + 2 = 4. The answer is 4.";
        let a = analyze_stopped(&ctx(), t, Some("\nQ:"), Some("4"));
        assert_eq!(a.failures.len(), 1);
        assert_eq!(a.failures[0].kind, FailureKind::RunawayQuestion);
        assert_eq!((a.failures[0].start, a.failures[0].end), (t.len(), t.len()));
        assert!(analyze_stopped(&ctx(), t, Some("\n\n"), Some("4")).failures.is_empty());
        assert!(analyze_stopped(&ctx(), t, None, Some("4")).failures.is_empty());
    }
}
