//! Labelled corpora: generated continuations with the failure kinds and the answer a careful reader sees
//! in each, and how far the detectors agree with that reader (per-kind precision and recall). `cotscope
//! analyze --corpus FILE.jsonl` prints the table for anyone's labelled file.
//!
//! One JSON object per line. Read: `text` (the continuation), `kinds` (the failure kinds the reader sees,
//! by contract name), `answer` (the number the reader reads as the final answer, or null), and for the
//! detectors' context `question`, `instruction` and `prompt_ends_with_answer_marker` (default true).
//! Other fields (`id`, `source`, `gold`, …) are kept for people and ignored here except `id`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::analysis;
use super::answer::matches_gold;
use super::detect::{DetectContext, FailureKind};

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("corpus {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("corpus line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("corpus has no items")]
    Empty,
}

/// One labelled continuation.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Item {
    #[serde(default)]
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub question: String,
    #[serde(default)]
    pub instruction: Option<String>,
    #[serde(default = "yes")]
    pub prompt_ends_with_answer_marker: bool,
    /// The kinds the reader sees (validated on load).
    pub kinds: Vec<FailureKind>,
    /// The reader's answer; null when the path never answers.
    pub answer: Option<String>,
}

fn yes() -> bool {
    true
}

impl Item {
    pub fn context(&self) -> DetectContext {
        DetectContext {
            question: self.question.clone(),
            instruction: self.instruction.clone(),
            prompt_ends_with_answer_marker: self.prompt_ends_with_answer_marker,
        }
    }
}

/// Reads a JSONL corpus; blank lines are skipped.
pub fn parse(jsonl: &str) -> Result<Vec<Item>, CorpusError> {
    let mut items = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: Item =
            serde_json::from_str(line).map_err(|e| CorpusError::Line { line: i + 1, message: e.to_string() })?;
        items.push(item);
    }
    if items.is_empty() {
        return Err(CorpusError::Empty);
    }
    Ok(items)
}

/// Reads a JSONL corpus file.
pub fn load(path: &Path) -> Result<Vec<Item>, CorpusError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| CorpusError::Io { path: path.display().to_string(), source })?;
    parse(&text)
}

/// Agreement on one kind, counted per item (an item is flagged when any span of the kind is found).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindScore {
    pub kind: FailureKind,
    /// Items the reader labelled with the kind.
    pub labelled: usize,
    /// Items the detectors flag with it.
    pub flagged: usize,
    /// Items both labelled and flagged.
    pub agreed: usize,
    /// agreed / flagged; null when nothing is flagged.
    pub precision: Option<f64>,
    /// agreed / labelled; null when nothing is labelled.
    pub recall: Option<f64>,
}

/// An item on which the detectors and the reader disagree about a kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Disagreement {
    pub id: String,
    pub kind: FailureKind,
    pub reader: bool,
    pub detector: bool,
}

/// An item whose extracted answer is not the reader's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnswerMiss {
    pub id: String,
    pub reader: Option<String>,
    pub cotscope: Option<String>,
}

/// The whole comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub items: usize,
    pub kinds: Vec<KindScore>,
    /// Items whose extracted answer (or its absence) is the reader's.
    pub answers_agreed: usize,
    pub disagreements: Vec<Disagreement>,
    pub answer_misses: Vec<AnswerMiss>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Whether two answers are the same (both none, or equal numbers).
pub fn same_answer(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => matches_gold(x, y),
        _ => false,
    }
}

/// Runs every detector and the answer extraction on each item and compares with its labels.
pub fn score(items: &[Item]) -> Report {
    let mut counts = vec![(0usize, 0usize, 0usize); FailureKind::ALL.len()];
    let mut disagreements = Vec::new();
    let mut answer_misses = Vec::new();
    let mut answers_agreed = 0;
    for item in items {
        let a = analysis::analyze(&item.context(), &item.text, None);
        for (k, kind) in FailureKind::ALL.into_iter().enumerate() {
            let reader = item.kinds.contains(&kind);
            let detector = a.failures.iter().any(|f| f.kind == kind);
            counts[k].0 += usize::from(reader);
            counts[k].1 += usize::from(detector);
            counts[k].2 += usize::from(reader && detector);
            if reader != detector {
                disagreements.push(Disagreement { id: item.id.clone(), kind, reader, detector });
            }
        }
        if same_answer(item.answer.as_deref(), a.answer.as_deref()) {
            answers_agreed += 1;
        } else {
            answer_misses.push(AnswerMiss { id: item.id.clone(), reader: item.answer.clone(), cotscope: a.answer });
        }
    }
    let kinds = FailureKind::ALL
        .into_iter()
        .zip(counts)
        .map(|(kind, (labelled, flagged, agreed))| KindScore {
            kind,
            labelled,
            flagged,
            agreed,
            precision: ratio(agreed, flagged),
            recall: ratio(agreed, labelled),
        })
        .collect();
    Report { items: items.len(), kinds, answers_agreed, disagreements, answer_misses }
}

/// The table `analyze --corpus` prints.
pub fn table(report: &Report) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"));
    let mut s = format!(
        "{:<22} {:>8} {:>8} {:>7} {:>9} {:>7}\n",
        "kind", "labelled", "flagged", "agreed", "precision", "recall"
    );
    for k in &report.kinds {
        s.push_str(&format!(
            "{:<22} {:>8} {:>8} {:>7} {:>9} {:>7}\n",
            k.kind.name(),
            k.labelled,
            k.flagged,
            k.agreed,
            f(k.precision),
            f(k.recall)
        ));
    }
    s.push_str(&format!(
        "answer: the reader's on {} of {} items ({})\n",
        report.answers_agreed,
        report.items,
        f(ratio(report.answers_agreed, report.items))
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"{"id":"a","text":" 2 + 2 = 5. The answer is 5.","kinds":["arithmetic_error"],"answer":"5"}

{"id":"b","text":" Then he bought 5 glasses","kinds":["no_answer","repetition"],"answer":null,"question":"x","prompt_ends_with_answer_marker":true}
"#;

    #[test]
    fn scores_per_item_and_kind() {
        let items = parse(TWO).unwrap();
        assert_eq!(items.len(), 2);
        let r = score(&items);
        let k = |kind: FailureKind| r.kinds.iter().find(|k| k.kind == kind).unwrap().clone();
        let arith = k(FailureKind::ArithmeticError);
        assert_eq!((arith.labelled, arith.flagged, arith.agreed), (1, 1, 1));
        let rep = k(FailureKind::Repetition);
        assert_eq!((rep.labelled, rep.flagged, rep.agreed, rep.precision, rep.recall), (1, 0, 0, None, Some(0.0)));
        let none = k(FailureKind::NoAnswer);
        assert_eq!((none.labelled, none.flagged, none.agreed), (1, 1, 1));
        assert_eq!(r.answers_agreed, 2);
        assert_eq!(
            r.disagreements,
            vec![Disagreement { id: "b".into(), kind: FailureKind::Repetition, reader: true, detector: false }]
        );
        let t = table(&r);
        assert!(t.contains("repetition                    1        0       0         -    0.00"), "{t}");
        assert!(t.contains("answer: the reader's on 2 of 2 items (1.00)"), "{t}");
    }

    #[test]
    fn bad_lines_name_the_line() {
        let e = parse(
            "{\"text\":\"x\",\"kinds\":[],\"answer\":null}\n{\"text\":\"y\",\"kinds\":[\"loops\"],\"answer\":null}",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("corpus line 2:"), "{e}");
        assert!(e.to_string().contains("loops"), "{e}");
        assert!(matches!(parse("\n\n"), Err(CorpusError::Empty)));
        assert!(parse("{\"kinds\":[],\"answer\":null}").unwrap_err().to_string().contains("text"));
    }
}
