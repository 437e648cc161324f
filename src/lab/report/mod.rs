//! The report over eval results files: per run, accuracy with a 95% Wilson interval, failure kinds and
//! stop reasons per 100 paths and mean tokens; per pair of runs, the questions that flipped each way
//! with an exact McNemar p-value; per question, who got it right. `report` prints it; the TUI's
//! experiments view shows the same numbers.

pub mod html;
pub mod load;
pub mod settings;
pub mod svg;
pub mod table;
pub mod text;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::detect::FailureKind;
use super::select::Strategy;
use super::stats;
pub use load::{read_run, Run};
use settings::{Comparison, Scope};

/// Errors building a report. One line each, naming the file or the runs.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: not an eval record: {message}")]
    BadLine { path: PathBuf, line: usize, message: String },
    #[error("{path}: no eval records in it")]
    Empty { path: PathBuf },
    #[error("runs {a} and {b} {why}; compare them anyway with --force")]
    SettingsDiffer { a: String, b: String, why: String },
}

/// The stop reasons `eval` writes, in the order reports list them; others follow as found.
pub const STOP_REASONS: [&str; 4] = ["eos", "stop_string", "max_tokens", "cancelled"];

/// A count of paths with something, and that as a rate per 100 paths.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rate {
    pub name: String,
    pub paths: usize,
    pub per_100_paths: f64,
}

/// One run (one results file).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    /// `A`, `B`, … in the order given.
    pub label: String,
    pub file: String,
    pub template: String,
    /// The settings as recorded (null for files of an older cotscope).
    pub settings: Option<serde_json::Value>,
    pub questions: usize,
    pub paths: usize,
    /// Questions whose majority answer is right.
    pub correct: usize,
    /// Majority-vote accuracy and its 95% Wilson interval.
    pub accuracy: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub first_correct: usize,
    /// First-path accuracy and its 95% Wilson interval.
    pub first_path_accuracy: f64,
    pub first_path_ci_low: f64,
    pub first_path_ci_high: f64,
    /// Questions whose vote was a tie.
    pub ties: usize,
    /// Paths with each failure kind (a path counts once per kind), every kind listed.
    pub failures: Vec<Rate>,
    /// Paths per stop reason.
    pub stop_reasons: Vec<Rate>,
    /// Generated tokens per path.
    pub mean_tokens: f64,
    /// Accuracy of each `eval --select` strategy the file records (empty without --select).
    pub selections: Vec<StrategyAccuracy>,
}

/// One selection strategy's accuracy over the questions that record it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StrategyAccuracy {
    pub strategy: String,
    pub questions: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Paired counts of two runs over the questions both ran.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Paired {
    pub questions: usize,
    pub both: usize,
    pub neither: usize,
    /// Right in run a only.
    pub a_only: usize,
    /// Right in run b only.
    pub b_only: usize,
    /// Exact (binomial) two-sided McNemar p-value of `a_only` against `b_only`.
    pub mcnemar_p: f64,
}

impl Paired {
    fn count(pairs: impl Iterator<Item = (bool, bool)>) -> Paired {
        let mut p = Paired { questions: 0, both: 0, neither: 0, a_only: 0, b_only: 0, mcnemar_p: 1.0 };
        for (a, b) in pairs {
            p.questions += 1;
            match (a, b) {
                (true, true) => p.both += 1,
                (false, false) => p.neither += 1,
                (true, false) => p.a_only += 1,
                (false, true) => p.b_only += 1,
            }
        }
        p.mcnemar_p = stats::mcnemar_exact(p.a_only, p.b_only);
        p
    }
}

/// Two runs compared question by question; the top-level counts are of majority answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairReport {
    pub a: String,
    pub b: String,
    #[serde(flatten)]
    pub majority: Paired,
    pub first_path: Paired,
    /// How their settings differ (compared with --force), or why they could not be checked.
    pub settings_differences: Vec<String>,
}

/// One run's result on one question.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    pub majority: Option<String>,
    pub correct: bool,
    pub first_correct: bool,
    /// Majority votes / voting paths.
    pub agreement: f64,
    pub voters: usize,
    pub paths: usize,
}

/// One question across the runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuestionRow {
    pub index: usize,
    pub gold: String,
    /// One per run, in run order; null where that run did not have the question.
    pub cells: Vec<Option<Cell>>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub runs: Vec<RunReport>,
    pub pairs: Vec<PairReport>,
    pub questions: Vec<QuestionRow>,
    /// Things the reader should know: lines left out, settings compared under --force.
    pub notes: Vec<String>,
}

/// Which of the rates `rates` picks occur in some run (their indices) and which in none (their names),
/// so charts draw bars only where there is something to see.
pub fn occurring(report: &Report, rates: fn(&RunReport) -> &Vec<Rate>) -> (Vec<usize>, Vec<String>) {
    let Some(first) = report.runs.first() else { return (Vec::new(), Vec::new()) };
    let seen = |k: usize| report.runs.iter().any(|r| rates(r).get(k).is_some_and(|x| x.paths > 0));
    let (shown, none): (Vec<usize>, Vec<usize>) = (0..rates(first).len()).partition(|&k| seen(k));
    (shown, none.into_iter().map(|k| rates(first)[k].name.clone()).collect())
}

/// The label of the i-th run: A…Z, then A1, B1, ….
pub fn label(i: usize) -> String {
    let letter = char::from(b'A' + (i % 26) as u8);
    if i < 26 {
        letter.to_string()
    } else {
        format!("{letter}{}", i / 26)
    }
}

fn per_100(n: usize, paths: usize) -> f64 {
    if paths == 0 {
        0.0
    } else {
        100.0 * n as f64 / paths as f64
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The numbers of one run.
pub fn run_report(i: usize, run: &Run) -> RunReport {
    let records = &run.records;
    let questions = records.len();
    let correct = records.iter().filter(|r| r.correct).count();
    let first_correct = records.iter().filter(|r| r.first_correct).count();
    let all_paths = || records.iter().flat_map(|r| r.paths.iter());
    let paths = all_paths().count();
    let failures = FailureKind::ALL
        .iter()
        .map(|&k| {
            let n = all_paths().filter(|p| p.failures.iter().any(|f| f.kind == k)).count();
            Rate { name: k.name().to_string(), paths: n, per_100_paths: per_100(n, paths) }
        })
        .collect();
    let mut stops: BTreeMap<&str, usize> = BTreeMap::new();
    for p in all_paths() {
        *stops.entry(p.stop_reason.as_str()).or_default() += 1;
    }
    let mut names: Vec<&str> = STOP_REASONS.to_vec();
    names.extend(stops.keys().filter(|k| !STOP_REASONS.contains(k)));
    let stop_reasons = names
        .into_iter()
        .map(|s| {
            let n = stops.get(s).copied().unwrap_or(0);
            Rate { name: s.to_string(), paths: n, per_100_paths: per_100(n, paths) }
        })
        .collect();
    let tokens: usize = all_paths().map(|p| p.tokens).sum();
    let (ci, first_ci) = (stats::wilson(correct, questions), stats::wilson(first_correct, questions));
    let selections = Strategy::ALL
        .iter()
        .filter_map(|&st| {
            let picks: Vec<bool> =
                records.iter().filter_map(|r| r.select.iter().find(|x| x.strategy == st).map(|x| x.correct)).collect();
            let n = picks.iter().filter(|&&c| c).count();
            let i = stats::wilson(n, picks.len());
            (!picks.is_empty()).then(|| StrategyAccuracy {
                strategy: st.name().to_string(),
                questions: picks.len(),
                correct: n,
                accuracy: ratio(n, picks.len()),
                ci_low: i.low,
                ci_high: i.high,
            })
        })
        .collect();
    RunReport {
        label: label(i),
        file: run.path.display().to_string(),
        template: run.template().to_string(),
        settings: run.settings.clone(),
        questions,
        paths,
        correct,
        accuracy: ratio(correct, questions),
        ci_low: ci.low,
        ci_high: ci.high,
        first_correct,
        first_path_accuracy: ratio(first_correct, questions),
        first_path_ci_low: first_ci.low,
        first_path_ci_high: first_ci.high,
        ties: records.iter().filter(|r| r.vote.tie).count(),
        failures,
        stop_reasons,
        mean_tokens: ratio(tokens, paths),
        selections,
    }
}

/// The rows of the per-question table: every question any run has, in order.
pub fn question_rows(runs: &[Run]) -> Vec<QuestionRow> {
    let mut rows: BTreeMap<usize, QuestionRow> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        for r in &run.records {
            let row = rows.entry(r.index).or_insert_with(|| QuestionRow {
                index: r.index,
                gold: r.gold.clone(),
                cells: vec![None; runs.len()],
            });
            row.cells[i] = Some(Cell {
                majority: r.vote.majority.clone(),
                correct: r.correct,
                first_correct: r.first_correct,
                agreement: r.vote.agreement,
                voters: r.vote.voters,
                paths: r.paths.len(),
            });
        }
    }
    rows.into_values().collect()
}

/// Builds the report. Runs are compared pairwise over the questions both have; pairs whose settings
/// differ (or cannot be checked) are an error unless `force`, and are then marked.
pub fn build(runs: &[Run], force: bool) -> Result<Report, ReportError> {
    let mut notes: Vec<String> = runs.iter().flat_map(|r| r.notes.iter().cloned()).collect();
    let questions = question_rows(runs);
    let mut pairs = Vec::new();
    for i in 0..runs.len() {
        for j in i + 1..runs.len() {
            let (a, b) = (&runs[i], &runs[j]);
            let name = |k: usize, r: &Run| format!("{} ({})", label(k), r.path.display());
            let differences = match settings::compare(a.settings.as_ref(), b.settings.as_ref(), Scope::BetweenRuns) {
                Comparison::Same => Vec::new(),
                Comparison::Differ(d) => d,
                Comparison::Unknown => vec!["settings not recorded, so not checked".to_string()],
            };
            if !differences.is_empty() {
                let why = match differences.as_slice() {
                    [only] if only.starts_with("settings not recorded") => {
                        "cannot be checked for equal settings (a file records none)".to_string()
                    }
                    d => format!("differ in settings: {}", d.join(", ")),
                };
                if !force {
                    return Err(ReportError::SettingsDiffer { a: name(i, a), b: name(j, b), why });
                }
                notes.push(format!("{} vs {} compared under --force: they {why}", label(i), label(j)));
            }
            let both = || questions.iter().filter_map(|q| Some((q.cells[i].as_ref()?, q.cells[j].as_ref()?)));
            let majority = Paired::count(both().map(|(x, y)| (x.correct, y.correct)));
            if majority.questions == 0 {
                notes.push(format!("{} and {} have no question in common: not compared", label(i), label(j)));
                continue;
            }
            let first_path = Paired::count(both().map(|(x, y)| (x.first_correct, y.first_correct)));
            pairs.push(PairReport {
                a: label(i),
                b: label(j),
                majority,
                first_path,
                settings_differences: differences,
            });
        }
    }
    Ok(Report { runs: runs.iter().enumerate().map(|(i, r)| run_report(i, r)).collect(), pairs, questions, notes })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lab::answer::AnswerRule;
    use crate::lab::detect::Failure;
    use crate::lab::evalfile::EvalRecord;
    use crate::lab::vote::vote;

    /// A record whose paths answer `answers` (None: no answer), each path stopping for `stop`.
    pub(crate) fn record(index: usize, template: &str, gold: &str, answers: &[Option<&str>], stop: &str) -> EvalRecord {
        // Built through serde, as a results file is read, so fields added later with defaults need no edit here.
        let paths: Vec<serde_json::Value> = answers
            .iter()
            .map(|a| {
                let failures = match a {
                    None => vec![Failure { kind: FailureKind::NoAnswer, start: 0, end: 1, detail: String::new() }],
                    Some(_) => vec![],
                };
                serde_json::json!({
                    "text": format!(" The answer is {}.", a.unwrap_or("?")),
                    "answer": a,
                    "answer_rule": if a.is_some() { AnswerRule::Strict } else { AnswerRule::None },
                    "failures": failures,
                    "stop_reason": stop,
                    "tokens": 10,
                })
            })
            .collect();
        let v = vote(&answers.iter().map(|a| a.map(str::to_string)).collect::<Vec<_>>());
        serde_json::from_value(serde_json::json!({
            "index": index,
            "template": template,
            "prompt_hash": "",
            "correct": v.majority.as_deref() == Some(gold),
            "first_correct": answers.first().copied().flatten() == Some(gold),
            "paths": paths,
            "vote": v,
            "gold": gold,
            "generation_ms": 1.0,
        }))
        .unwrap()
    }

    fn run(name: &str, records: Vec<EvalRecord>, temperature: Option<f64>) -> Run {
        let settings = temperature.map(|t| serde_json::json!({"model": {"id": "tiny"}, "template": name, "sampling": {"temperature": t}, "paths": 3}));
        Run { path: PathBuf::from(format!("{name}.jsonl")), records, settings, notes: vec![] }
    }

    #[test]
    fn one_run_in_numbers() {
        // q0: 2 of 3 say 5 (gold 5), first says 4; q1: all 7 (gold 7); q2: one no answer, 1 vs 2 tie (gold 3).
        let records = vec![
            record(0, "t", "5", &[Some("4"), Some("5"), Some("5")], "eos"),
            record(1, "t", "7", &[Some("7"), Some("7"), Some("7")], "stop_string"),
            record(2, "t", "3", &[None, Some("1"), Some("2")], "weird"),
        ];
        let r = run_report(0, &run("t", records, Some(0.7)));
        assert_eq!((r.questions, r.paths, r.correct, r.first_correct, r.ties), (3, 9, 2, 1, 1));
        assert!((r.accuracy - 2.0 / 3.0).abs() < 1e-12 && (r.first_path_accuracy - 1.0 / 3.0).abs() < 1e-12);
        // scipy 1.17.1 binomtest(2, 3).proportion_ci(method="wilson").
        assert!((r.ci_low - 0.20765960080204782).abs() < 1e-9 && (r.ci_high - 0.9385080552796038).abs() < 1e-9);
        let no_answer = r.failures.iter().find(|f| f.name == "no_answer").unwrap();
        assert_eq!(no_answer.paths, 1);
        assert!((no_answer.per_100_paths - 100.0 / 9.0).abs() < 1e-9);
        assert_eq!(r.failures.len(), FailureKind::ALL.len());
        let stops: Vec<(&str, usize)> = r.stop_reasons.iter().map(|s| (s.name.as_str(), s.paths)).collect();
        assert_eq!(stops, [("eos", 3), ("stop_string", 3), ("max_tokens", 0), ("cancelled", 0), ("weird", 3)]);
        assert_eq!(r.mean_tokens, 10.0);
        assert_eq!((r.label.as_str(), r.template.as_str()), ("A", "t"));
    }

    /// Right (majority and first path) on the questions in `right`, wrong elsewhere, over `questions`.
    fn scored(name: &str, questions: std::ops::Range<usize>, right: &[usize], temperature: Option<f64>) -> Run {
        let records = questions
            .map(|q| {
                let a = if right.contains(&q) { "1" } else { "2" };
                record(q, name, "1", &[Some(a)], "eos")
            })
            .collect();
        run(name, records, temperature)
    }

    #[test]
    fn pairs_count_flips_over_common_questions() {
        // A right on 0..6, B on {0, 8, 9} and on 10, 11 which A never ran.
        let a = scored("a", 0..10, &[0, 1, 2, 3, 4, 5], Some(0.7));
        let b = scored("b", 0..12, &[0, 8, 9, 10, 11], Some(0.7));
        let r = build(&[a, b], false).unwrap();
        let p = &r.pairs[0];
        assert_eq!((p.a.as_str(), p.b.as_str()), ("A", "B"));
        let m = p.majority;
        assert_eq!((m.questions, m.both, m.neither, m.a_only, m.b_only), (10, 1, 2, 5, 2));
        // By hand: 2·(C(7,0) + C(7,1) + C(7,2))/2⁷ = 2·29/128.
        assert_eq!(m.mcnemar_p, 58.0 / 128.0);
        assert!(p.settings_differences.is_empty());
        assert_eq!(r.questions.len(), 12);
        assert!(r.questions[10].cells[0].is_none() && r.questions[10].cells[1].as_ref().unwrap().correct);
        assert_eq!(r.runs[1].correct, 5);
    }

    #[test]
    fn differing_or_unknown_settings_need_force() {
        let a = scored("a", 0..3, &[0], Some(0.7));
        let b = scored("b", 0..3, &[1], Some(0.0));
        let e = build(&[a.clone(), b.clone()], false).unwrap_err().to_string();
        assert_eq!(
            e,
            "runs A (a.jsonl) and B (b.jsonl) differ in settings: sampling.temperature 0.7 vs 0.0; compare them anyway with --force"
        );
        let r = build(&[a.clone(), b], true).unwrap();
        assert_eq!(r.pairs[0].settings_differences, ["sampling.temperature 0.7 vs 0.0"]);
        assert!(r.notes.iter().any(|n| n.contains("--force")), "{:?}", r.notes);
        let old = scored("old", 0..3, &[1], None);
        let e = build(&[a.clone(), old.clone()], false).unwrap_err().to_string();
        assert!(e.contains("cannot be checked"), "{e}");
        assert_eq!(build(&[a, old], true).unwrap().pairs.len(), 1);
        // One run alone is never compared, so its settings need nothing.
        assert!(build(&[scored("c", 0..2, &[], None)], false).unwrap().pairs.is_empty());
    }

    #[test]
    fn runs_without_common_questions_are_not_paired() {
        let r = build(&[scored("a", 0..3, &[0], Some(0.7)), scored("b", 3..6, &[4], Some(0.7))], false).unwrap();
        assert!(r.pairs.is_empty());
        assert!(r.notes.iter().any(|n| n.contains("no question in common")), "{:?}", r.notes);
    }

    #[test]
    fn selection_strategies_are_counted_where_recorded() {
        use crate::lab::select::{Choice, Selection};
        let mut records: Vec<EvalRecord> = (0..4).map(|q| record(q, "t", "1", &[Some("1")], "eos")).collect();
        for (q, right) in [(0, true), (1, false), (2, true)] {
            records[q].select =
                vec![Selection { strategy: Strategy::Weighted, choice: Choice::default(), correct: right }];
        }
        let r = run_report(0, &run("t", records, None));
        assert_eq!(r.selections.len(), 1);
        let w = &r.selections[0];
        assert_eq!((w.strategy.as_str(), w.questions, w.correct), ("weighted", 3, 2));
        assert_eq!((w.ci_low, w.ci_high), (stats::wilson(2, 3).low, stats::wilson(2, 3).high));
        assert!(run_report(0, &scored("u", 0..2, &[0], None)).selections.is_empty());
    }

    #[test]
    fn labels() {
        assert_eq!((label(0), label(25), label(26), label(27)), ("A".into(), "Z".into(), "A1".into(), "B1".into()));
    }
}
