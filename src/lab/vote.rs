//! Self-consistency: a majority vote over the answers of several paths.

use serde::{Deserialize, Serialize};

use super::number;

/// The outcome of a vote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// Each answer with its votes, most first; equal counts in the order the answers first appeared
    /// (lowest path index first).
    pub counts: Vec<(String, usize)>,
    /// The answer with most votes (on a tie, the one that appeared first).
    pub majority: Option<String>,
    /// Whether another answer had as many votes as the majority.
    pub tie: bool,
    /// Majority votes / voting paths; 0 when nobody voted.
    pub agreement: f64,
    /// Paths that had an answer.
    pub voters: usize,
}

/// The form answers are compared and reported in: the number normalised (`$1,000` and `1000.0` are
/// `1000`), else the trimmed text.
pub fn answer_key(a: &str) -> String {
    number::normalize(a).unwrap_or_else(|| a.trim().to_string())
}

/// Votes over the paths' answers; paths without an answer do not vote. Answers are compared as numbers
/// (`18` and `18.0` are one answer).
pub fn vote(answers: &[Option<String>]) -> Vote {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for a in answers.iter().flatten() {
        let key = answer_key(a);
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    // Stable sort keeps first-appearance order among equal counts.
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let voters: usize = counts.iter().map(|(_, n)| n).sum();
    let majority = counts.first().map(|(a, _)| a.clone());
    let tie = counts.len() > 1 && counts[0].1 == counts[1].1;
    let agreement = match counts.first() {
        Some((_, n)) if voters > 0 => *n as f64 / voters as f64,
        _ => 0.0,
    };
    Vote { counts, majority, tie, agreement, voters }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|a| a.map(str::to_string)).collect()
    }

    #[test]
    fn majority_and_agreement() {
        let v = vote(&s(&[Some("18"), Some("16"), Some("18.0"), None]));
        assert_eq!(v.counts, vec![("18".to_string(), 2), ("16".to_string(), 1)]);
        assert_eq!(v.majority.as_deref(), Some("18"));
        assert!(!v.tie);
        assert_eq!(v.voters, 3);
        assert!((v.agreement - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn ties_go_to_the_first_answer_given_and_are_reported() {
        let v = vote(&s(&[None, Some("7"), Some("5"), Some("5"), Some("7")]));
        assert_eq!(v.majority.as_deref(), Some("7"));
        assert!(v.tie);
        assert_eq!(v.counts, vec![("7".to_string(), 2), ("5".to_string(), 2)]);
        assert_eq!(v.agreement, 0.5);
        let w = vote(&s(&[Some("5"), Some("7")]));
        assert_eq!(w.majority.as_deref(), Some("5"));
        assert!(w.tie);
    }

    #[test]
    fn nobody_votes() {
        let v = vote(&s(&[None, None]));
        assert_eq!(v.majority, None);
        assert_eq!(v.voters, 0);
        assert_eq!(v.agreement, 0.0);
        assert!(!v.tie);
        assert!(vote(&[]).counts.is_empty());
    }

    #[test]
    fn unanimous() {
        let v = vote(&s(&[Some("$1,000"), Some("1000")]));
        assert_eq!(v.counts, vec![("1000".to_string(), 2)]);
        assert_eq!(v.agreement, 1.0);
    }
}
