//! Choosing one answer among a question's paths, by several strategies over the same generations:
//!
//! - `majority`: self-consistency, the plain vote of [`super::vote`]. Tie rule: of the answers with
//!   most votes, the one given first (lowest path index) wins, and the choice is marked `tie`.
//! - `weighted`: each path votes with its sequence probability, exp(sum of its own tokens'
//!   log-probabilities; calculator-forced tokens excluded, the model did not choose them). Weights are
//!   normalised over the voting paths. Tie rule as for `majority`. A path with an answer but no
//!   log-probability (an engine that reports none) makes the strategy fall back to `majority`.
//! - `verified`: the vote of the paths with an answer and no `arithmetic_error`; when no such path is
//!   left, the vote of all paths (`fallback`).
//! - `judge`: the model reads the candidates and names the best one; see [`super::judge`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::detect::FailureKind;
use super::evalfile::EvalRecord;
use super::gsm8k;
use super::judge::{self, JudgePrompt};
use super::record::PathRecord;
use super::stats::{self, Interval};
use super::vote::{self, answer_key};
use crate::engine::Engine;

/// A way to choose among paths. Serialized names are part of the `eval` contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Majority,
    Weighted,
    Verified,
    Judge,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [Strategy::Majority, Strategy::Weighted, Strategy::Verified, Strategy::Judge];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Majority => "majority",
            Strategy::Weighted => "weighted",
            Strategy::Verified => "verified",
            Strategy::Judge => "judge",
        }
    }

    /// Parses `--select`: comma-separated names, order kept, duplicates dropped. `majority` is always
    /// scored (first), since the others are compared with it.
    pub fn parse_list(spec: &str) -> Result<Vec<Strategy>, SelectError> {
        let mut out = vec![Strategy::Majority];
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let s = Strategy::ALL
                .into_iter()
                .find(|s| s.name() == part)
                .ok_or_else(|| SelectError::UnknownStrategy(part.to_string()))?;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        Ok(out)
    }
}

/// Errors of path selection. One line each.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("unknown selection strategy {0:?}; expected a comma list of majority, weighted, verified, judge")]
    UnknownStrategy(String),
    #[error("judge: {0}")]
    Judge(String),
}

/// What a strategy sees of one path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathView<'a> {
    pub text: &'a str,
    pub answer: Option<&'a str>,
    pub arithmetic_error: bool,
    /// Sum of the log-probabilities of the tokens the model chose, if the engine reported them.
    pub logprob: Option<f64>,
}

impl<'a> From<&'a PathRecord> for PathView<'a> {
    fn from(p: &'a PathRecord) -> Self {
        Self {
            text: &p.text,
            answer: p.answer.as_deref(),
            arithmetic_error: p.failures.iter().any(|f| f.kind == FailureKind::ArithmeticError),
            logprob: p.logprob,
        }
    }
}

/// How much one answer (or, for the judge, one candidate) counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The judge's label of the candidate, e.g. `A`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The path the judge's candidate is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<usize>,
    pub answer: String,
    /// Share of the weight (weighted) or of the label probability mass (judge); they sum to 1.
    pub p: f64,
}

/// A strategy's choice for one question.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The chosen answer, normalised as the vote compares answers; none if no path had one.
    pub answer: Option<String>,
    /// Another answer scored as high as the chosen one (the first given won).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tie: bool,
    /// The strategy could not apply and the plain majority vote chose instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<Score>,
}

/// One strategy's answer to one question, as `eval` records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub strategy: Strategy,
    #[serde(flatten)]
    pub choice: Choice,
    pub correct: bool,
}

fn answers(paths: &[PathView]) -> Vec<Option<String>> {
    paths.iter().map(|p| p.answer.map(str::to_string)).collect()
}

/// The plain majority vote.
pub fn majority(paths: &[PathView]) -> Choice {
    let v = vote::vote(&answers(paths));
    Choice { answer: v.majority, tie: v.tie, ..Choice::default() }
}

/// The majority vote of the paths with an answer and no arithmetic error; all paths if none is left.
pub fn verified(paths: &[PathView]) -> Choice {
    let clean: Vec<PathView> = paths.iter().filter(|p| p.answer.is_some() && !p.arithmetic_error).copied().collect();
    if clean.is_empty() {
        return Choice { fallback: true, ..majority(paths) };
    }
    majority(&clean)
}

/// Votes weighted by sequence probability.
pub fn weighted(paths: &[PathView]) -> Choice {
    let voters: Vec<(&str, Option<f64>)> =
        paths.iter().filter_map(|p| p.answer.map(|a| (a, p.logprob.filter(|l| !l.is_nan())))).collect();
    if voters.is_empty() {
        return majority(paths);
    }
    if voters.iter().any(|(_, l)| l.is_none()) {
        return Choice { fallback: true, ..majority(paths) };
    }
    // exp(l - max): the best path weighs 1, so long paths do not underflow to all-zero weights.
    let max = voters.iter().filter_map(|(_, l)| *l).fold(f64::NEG_INFINITY, f64::max);
    let mut totals: Vec<(String, f64)> = Vec::new();
    for (a, l) in &voters {
        let w = if max.is_finite() { (l.unwrap_or(max) - max).exp() } else { 1.0 };
        let key = answer_key(a);
        match totals.iter_mut().find(|(k, _)| *k == key) {
            Some((_, t)) => *t += w,
            None => totals.push((key, w)),
        }
    }
    let sum: f64 = totals.iter().map(|(_, w)| w).sum();
    // Stable: among equal weights the answer given first stays first.
    totals.sort_by(|a, b| b.1.total_cmp(&a.1));
    let tie = totals.len() > 1 && totals[1].1 >= totals[0].1 * (1.0 - 1e-12);
    let scores = totals.iter().map(|(a, w)| Score { label: None, path: None, answer: a.clone(), p: w / sum }).collect();
    Choice { answer: totals.first().map(|(a, _)| a.clone()), tie, fallback: false, scores }
}

/// The choice of a strategy that needs no model; None for `judge` (it asks one: [`judge::judge`]).
pub fn choose_without_model(strategy: Strategy, paths: &[PathView]) -> Option<Choice> {
    match strategy {
        Strategy::Majority => Some(majority(paths)),
        Strategy::Weighted => Some(weighted(paths)),
        Strategy::Verified => Some(verified(paths)),
        Strategy::Judge => None,
    }
}

/// Picks the winner of scores already computed per candidate (the judge's label probabilities):
/// highest first, the earliest candidate on a tie.
pub fn best_of(scores: Vec<Score>) -> Choice {
    let mut best: Option<usize> = None;
    let mut tie = false;
    for (i, s) in scores.iter().enumerate() {
        match best {
            None => best = Some(i),
            Some(b) if s.p > scores[b].p => {
                best = Some(i);
                tie = false;
            }
            Some(b) if s.p == scores[b].p && answer_key(&s.answer) != answer_key(&scores[b].answer) => tie = true,
            Some(_) => {}
        }
    }
    Choice { answer: best.map(|b| answer_key(&scores[b].answer)), tie, fallback: false, scores }
}

/// Scores records with the strategies asked for; holds the judge's engine and prompt when `judge` is
/// among them.
pub struct Selector {
    pub strategies: Vec<Strategy>,
    pub judge: Option<(Arc<dyn Engine>, JudgePrompt)>,
}

impl Selector {
    /// The strategies of `strategies` that `record` has no answer for yet, scored and added (in
    /// [`Strategy::ALL`] order). Returns whether it added any.
    pub fn fill(&self, record: &mut EvalRecord) -> Result<bool, SelectError> {
        let missing: Vec<Strategy> =
            self.strategies.iter().copied().filter(|s| !record.select.iter().any(|x| x.strategy == *s)).collect();
        if missing.is_empty() {
            return Ok(false);
        }
        let views: Vec<PathView> = record.paths.iter().map(PathView::from).collect();
        for s in missing {
            let choice = match s {
                Strategy::Majority => majority(&views),
                Strategy::Weighted => weighted(&views),
                Strategy::Verified => verified(&views),
                Strategy::Judge => {
                    let (engine, prompt) =
                        self.judge.as_ref().ok_or_else(|| SelectError::Judge("no judge model was opened".into()))?;
                    let question = gsm8k::test_problem(record.index).map_err(|e| SelectError::Judge(e.to_string()))?;
                    judge::judge(engine.as_ref(), prompt, &question.question, &views).map_err(|e| {
                        let e = e.to_string();
                        SelectError::Judge(format!("question {}: {}", record.index, e.trim_start_matches("judge: ")))
                    })?
                }
            };
            let correct = is_correct(&choice, &record.gold);
            record.select.push(Selection { strategy: s, choice, correct });
        }
        record.select.sort_by_key(|x| x.strategy);
        Ok(true)
    }
}

/// Whether `choice` matches the gold answer.
pub fn is_correct(choice: &Choice, gold: &str) -> bool {
    choice.answer.as_deref().is_some_and(|a| super::answer::matches_gold(a, gold))
}

/// Per strategy totals over a run, compared with the majority vote on the same questions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategySummary {
    pub strategy: Strategy,
    /// Questions this strategy was scored on.
    pub questions: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// 95% Wilson score interval of the accuracy.
    pub wilson95: Interval,
    /// Questions it got right that the majority vote got wrong, and the reverse.
    pub right_where_majority_wrong: usize,
    pub wrong_where_majority_right: usize,
    /// Exact McNemar p-value against the majority vote (1 when they never disagree).
    pub mcnemar_p: f64,
    pub ties: usize,
    pub fallbacks: usize,
}

/// Totals per strategy found in `records`, in [`Strategy::ALL`] order.
pub fn summarize<'a>(records: impl IntoIterator<Item = &'a EvalRecord> + Clone) -> Vec<StrategySummary> {
    let mut out = Vec::new();
    for s in Strategy::ALL {
        let mut row = StrategySummary {
            strategy: s,
            questions: 0,
            correct: 0,
            accuracy: 0.0,
            wilson95: stats::wilson(0, 0),
            right_where_majority_wrong: 0,
            wrong_where_majority_right: 0,
            mcnemar_p: 1.0,
            ties: 0,
            fallbacks: 0,
        };
        for r in records.clone() {
            let Some(sel) = r.select.iter().find(|x| x.strategy == s) else { continue };
            row.questions += 1;
            row.correct += usize::from(sel.correct);
            row.ties += usize::from(sel.choice.tie);
            row.fallbacks += usize::from(sel.choice.fallback);
            row.right_where_majority_wrong += usize::from(sel.correct && !r.correct);
            row.wrong_where_majority_right += usize::from(!sel.correct && r.correct);
        }
        if row.questions == 0 {
            continue;
        }
        row.accuracy = row.correct as f64 / row.questions as f64;
        row.wilson95 = stats::wilson(row.correct, row.questions);
        row.mcnemar_p = stats::mcnemar_exact(row.right_where_majority_wrong, row.wrong_where_majority_right);
        out.push(row);
    }
    out
}

/// The per-strategy lines of the summary for people.
pub fn summary_lines(rows: &[StrategySummary]) -> String {
    let mut t = String::from(
        "selection (95% Wilson interval; vs majority: right where it was wrong / wrong where it was right):\n",
    );
    for r in rows {
        t.push_str(&format!(
            "  {:<9} {:>4}/{:<4} = {:>5.1}%  [{:.1}%, {:.1}%]",
            r.strategy.name(),
            r.correct,
            r.questions,
            100.0 * r.accuracy,
            100.0 * r.wilson95.low,
            100.0 * r.wilson95.high
        ));
        if r.strategy != Strategy::Majority {
            t.push_str(&format!(
                "  +{} -{} (McNemar p {:.3})",
                r.right_where_majority_wrong, r.wrong_where_majority_right, r.mcnemar_p
            ));
        }
        let mut notes = Vec::new();
        if r.ties > 0 {
            notes.push(format!("ties {}", r.ties));
        }
        if r.fallbacks > 0 {
            notes.push(format!("fell back to majority {}", r.fallbacks));
        }
        if !notes.is_empty() {
            t.push_str(&format!("  ({})", notes.join(", ")));
        }
        t.push('\n');
    }
    t.push_str("  ties go to the answer given first (lowest path index)\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(answer: Option<&'static str>, arithmetic_error: bool, logprob: Option<f64>) -> PathView<'static> {
        PathView { text: "", answer, arithmetic_error, logprob }
    }

    #[test]
    fn parse_list_keeps_order_adds_majority_and_rejects_unknown_names() {
        use Strategy::*;
        assert_eq!(Strategy::parse_list("majority").unwrap(), vec![Majority]);
        assert_eq!(Strategy::parse_list("judge, verified,judge").unwrap(), vec![Majority, Judge, Verified]);
        assert_eq!(Strategy::parse_list("majority,weighted,verified,judge").unwrap(), Strategy::ALL.to_vec());
        let e = Strategy::parse_list("majority,best").unwrap_err().to_string();
        assert!(e.contains("\"best\"") && e.contains("majority, weighted, verified, judge"), "{e}");
    }

    #[test]
    fn majority_tie_goes_to_the_first_answer() {
        let c = majority(&[p(None, false, None), p(Some("7"), false, None), p(Some("5"), false, None)]);
        assert_eq!((c.answer.as_deref(), c.tie, c.fallback), (Some("7"), true, false));
        let c = majority(&[p(Some("5"), false, None), p(Some("7"), false, None), p(Some("7.0"), false, None)]);
        assert_eq!((c.answer.as_deref(), c.tie), (Some("7"), false));
    }

    #[test]
    fn verified_drops_paths_with_arithmetic_errors_and_falls_back_when_none_is_left() {
        // Majority says 5 (two wrong sums); the one clean path says 7.
        let paths =
            [p(Some("5"), true, None), p(Some("7"), false, None), p(Some("5"), true, None), p(None, false, None)];
        assert_eq!(majority(&paths).answer.as_deref(), Some("5"));
        let c = verified(&paths);
        assert_eq!((c.answer.as_deref(), c.fallback, c.tie), (Some("7"), false, false));
        let all_bad = [p(Some("5"), true, None), p(Some("7"), true, None), p(Some("7"), true, None)];
        let c = verified(&all_bad);
        assert_eq!((c.answer.as_deref(), c.fallback), (Some("7"), true));
        // A clean tie follows the majority's tie rule.
        let c = verified(&[p(Some("9"), true, None), p(Some("3"), false, None), p(Some("4"), false, None)]);
        assert_eq!((c.answer.as_deref(), c.tie), (Some("3"), true));
        assert_eq!(verified(&[p(None, false, None)]).answer, None);
    }

    #[test]
    fn weighted_lets_one_likely_path_outvote_two_unlikely_ones() {
        // ln weights: 18 has one path at -2; 16 has two at -5 and -4: e^-2 > e^-5 + e^-4.
        let paths =
            [p(Some("16"), false, Some(-5.0)), p(Some("18"), false, Some(-2.0)), p(Some("16.0"), false, Some(-4.0))];
        assert_eq!(majority(&paths).answer.as_deref(), Some("16"));
        let c = weighted(&paths);
        assert_eq!((c.answer.as_deref(), c.tie, c.fallback), (Some("18"), false, false));
        let (a, b) = ((-2f64).exp(), (-5f64).exp() + (-4f64).exp());
        assert_eq!(c.scores[0].answer, "18");
        assert!((c.scores[0].p - a / (a + b)).abs() < 1e-12);
        assert_eq!(c.scores[1].answer, "16");
        assert!((c.scores[1].p - b / (a + b)).abs() < 1e-12);
        // With -1 for 16's second path it flips back: e^-5 + e^-1 > e^-2.
        let paths =
            [p(Some("16"), false, Some(-5.0)), p(Some("18"), false, Some(-2.0)), p(Some("16"), false, Some(-1.0))];
        assert_eq!(weighted(&paths).answer.as_deref(), Some("16"));
    }

    #[test]
    fn weighted_survives_very_long_paths_and_ties_go_first() {
        // e^-2000 underflows; the weights are relative to the best path.
        let paths = [p(Some("3"), false, Some(-2001.0)), p(Some("4"), false, Some(-2000.0))];
        assert_eq!(weighted(&paths).answer.as_deref(), Some("4"));
        let tie = [p(None, false, None), p(Some("4"), false, Some(-3.0)), p(Some("3"), false, Some(-3.0))];
        let c = weighted(&tie);
        assert_eq!((c.answer.as_deref(), c.tie), (Some("4"), true));
    }

    #[test]
    fn weighted_without_logprobs_falls_back_to_majority() {
        let paths = [p(Some("4"), false, Some(-1.0)), p(Some("3"), false, None), p(Some("3"), false, Some(-9.0))];
        let c = weighted(&paths);
        assert_eq!((c.answer.as_deref(), c.fallback), (Some("3"), true));
        // A path without an answer needs no log-probability.
        let c = weighted(&[p(Some("4"), false, Some(-1.0)), p(None, false, None)]);
        assert_eq!((c.answer.as_deref(), c.fallback), (Some("4"), false));
    }

    #[test]
    fn best_of_picks_the_highest_and_the_first_on_a_tie() {
        let s = |a: &str, p: f64| Score { label: None, path: None, answer: a.into(), p };
        let c = best_of(vec![s("1", 0.2), s("2", 0.5), s("3", 0.3)]);
        assert_eq!((c.answer.as_deref(), c.tie), (Some("2"), false));
        let c = best_of(vec![s("1", 0.4), s("2", 0.4), s("3", 0.2)]);
        assert_eq!((c.answer.as_deref(), c.tie), (Some("1"), true));
        // Two candidates with the same answer at the top are no tie.
        let c = best_of(vec![s("2", 0.4), s("2.0", 0.4), s("3", 0.2)]);
        assert_eq!((c.answer.as_deref(), c.tie), (Some("2"), false));
        assert_eq!(best_of(vec![]).answer, None);
    }
}
