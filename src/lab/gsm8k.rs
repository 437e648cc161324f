//! GSM8K (MIT licence, assets/gsm8k/LICENSE), embedded in the binary so it works from any directory.
//! A question is addressed everywhere by its 0-based row in test.jsonl (0 is Janet's ducks).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const TEST_JSONL: &str = include_str!("../../assets/gsm8k/test.jsonl");
const TRAIN_JSONL: &str = include_str!("../../assets/gsm8k/train.jsonl");

/// One GSM8K problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// 0-based row in its file.
    pub index: usize,
    pub question: String,
    /// The reference reasoning with the `<<…>>` calculator marks removed and without the `####` line.
    pub reasoning: String,
    /// The gold number after `####`, commas removed.
    pub gold: String,
}

#[derive(Deserialize)]
struct Row {
    question: String,
    answer: String,
}

/// The 1319 test problems, parsed on first use.
pub fn test_set() -> &'static [Problem] {
    static SET: OnceLock<Vec<Problem>> = OnceLock::new();
    SET.get_or_init(|| parse_jsonl(TEST_JSONL))
}

/// The 7473 training problems, parsed on first use.
pub fn train_set() -> &'static [Problem] {
    static SET: OnceLock<Vec<Problem>> = OnceLock::new();
    SET.get_or_init(|| parse_jsonl(TRAIN_JSONL))
}

/// Test problem `index`, or an error saying how many there are.
pub fn test_problem(index: usize) -> Result<&'static Problem, super::LabError> {
    let set = test_set();
    set.get(index).ok_or(super::LabError::QuestionOutOfRange { index, len: set.len() })
}

fn parse_jsonl(text: &str) -> Vec<Problem> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(index, line)| match serde_json::from_str::<Row>(line) {
            Ok(row) => problem_from_row(index, row),
            // The embedded data is fixed and tested to parse; a bad row keeps its place so indices hold.
            Err(e) => Problem {
                index,
                question: format!("(unreadable GSM8K row {index}: {e})"),
                reasoning: String::new(),
                gold: String::new(),
            },
        })
        .collect()
}

fn problem_from_row(index: usize, row: Row) -> Problem {
    let (reasoning, gold) = match row.answer.rfind("####") {
        Some(p) => (&row.answer[..p], row.answer[p + 4..].trim().replace(',', "")),
        None => (row.answer.as_str(), String::new()),
    };
    Problem { index, question: row.question, reasoning: strip_calculator_marks(reasoning).trim().to_string(), gold }
}

/// Removes GSM8K's `<<48/2=24>>` calculator annotations.
pub fn strip_calculator_marks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find("<<") {
        match rest[open..].find(">>") {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + close + 2..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_set_rows_and_first_problem() {
        let t = test_set();
        assert_eq!(t.len(), 1319);
        assert!(t.iter().all(|p| !p.question.starts_with("(unreadable")));
        assert!(t[0].question.starts_with("Janet\u{2019}s ducks lay 16 eggs"));
        assert_eq!(t[0].gold, "18");
        assert_eq!(
            t[0].reasoning,
            "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day at the farmer\u{2019}s market."
        );
        assert_eq!(t[2].gold, "70000");
        assert!(t.iter().enumerate().all(|(i, p)| p.index == i));
        assert!(t.iter().all(|p| !p.reasoning.contains("<<") && !p.reasoning.contains("####")));
    }

    #[test]
    fn train_set_rows() {
        let t = train_set();
        assert_eq!(t.len(), 7473);
        assert!(t.iter().all(|p| !p.gold.is_empty() && !p.gold.contains(',')));
    }

    #[test]
    fn out_of_range_is_an_error() {
        let e = test_problem(5000).unwrap_err();
        assert_eq!(e.to_string(), "question 5000 is out of range: GSM8K test has questions 0..1318");
    }
}
