//! Repetition: text that loops. Four signals, merged into stretches by the caller:
//! - a short unit of words said back to back (`the the the the`, `2 bolts and 2 bolts and 2 bolts and`);
//! - a sentence of at least [`MIN_SENTENCE_WORDS`] words said again;
//! - an `A:` line said again;
//! - text cut off (by the token limit) in the middle of saying an earlier sentence again.
//!
//! Numbers and operators alone do not make a loop (`5 + 5 + 5 + 5` is arithmetic), and reusing a phrase
//! in a new sentence is not a loop either (gold reasoning does that all the time).

use std::collections::HashMap;

use super::text::{normalize_word, Word};
use super::RawSpan;

/// Longest back-to-back unit looked for, in words.
const MAX_PERIOD: usize = 24;
/// A repeated sentence must be at least this long.
pub const MIN_SENTENCE_WORDS: usize = 5;
/// A repeated `A:` line must have at least this many words after the marker.
const MIN_LINE_WORDS: usize = 4;

#[derive(Clone, Debug, Default)]
pub struct Repetition {
    words: Vec<Word>,
    /// Per period p (index p), how many consecutive words equal the word p before them.
    runs: Vec<usize>,
    /// Earlier sentences: normalized words and start byte.
    sentences: Vec<(Vec<String>, usize)>,
    sentence_index: HashMap<String, usize>,
    answer_lines: HashMap<String, usize>,
    closed: Vec<RawSpan>,
}

fn content_words(s: &str) -> Vec<String> {
    let body = s.trim();
    let body = body.strip_prefix("A:").or_else(|| body.strip_prefix("Q:")).unwrap_or(body);
    body.split_whitespace().map(normalize_word).collect()
}

fn alpha_count(words: &[String]) -> usize {
    words.iter().filter(|w| w.chars().any(char::is_alphabetic)).count()
}

fn trimmed(text: &str, start: usize, end: usize) -> (usize, usize) {
    let seg = &text[start..end];
    let s = start + (seg.len() - seg.trim_start().len());
    (s, s + seg.trim().len())
}

impl Repetition {
    pub fn new() -> Self {
        Self { runs: vec![0; MAX_PERIOD + 1], ..Self::default() }
    }

    pub fn add_word(&mut self, text: &str, w: Word) {
        self.words.push(w);
        let i = self.words.len() - 1;
        for p in 1..=MAX_PERIOD.min(i) {
            if self.words[i].norm == self.words[i - p].norm {
                self.runs[p] += 1;
            } else {
                if let Some(s) = self.loop_span(text, p, i - 1) {
                    self.closed.push(s);
                }
                self.runs[p] = 0;
            }
        }
    }

    /// The back-to-back loop of period `p` whose run ends at word `e`, if it is long enough.
    fn loop_span(&self, text: &str, p: usize, e: usize) -> Option<RawSpan> {
        let run = self.runs[p];
        if run == 0 {
            return None;
        }
        let total = run + p;
        let first = e + 1 - total;
        let unit = &self.words[first..first + p];
        // `5 cars + 5 cars + 5 cars` and `1 plus 1 plus 1` are sums, not loops.
        if !unit.iter().any(|w| w.alpha) || unit.iter().any(|w| super::arith::is_operator_word(&w.norm)) {
            return None;
        }
        let has_number = unit.iter().any(|w| w.norm.chars().any(|c| c.is_ascii_digit()));
        let min_copies = if p == 1 || (p == 2 && has_number) { 4 } else { 3 };
        if total < min_copies * p {
            return None;
        }
        let unit_text = &text[unit[0].start..unit[p - 1].end];
        Some(RawSpan {
            start: self.words[first].start,
            end: self.words[e].end,
            detail: format!("\"{}\" repeated {} times in a row", clip(unit_text, 60), total / p),
        })
    }

    /// A completed sentence (`start..end` of `text`).
    pub fn add_sentence(&mut self, text: &str, start: usize, end: usize) {
        let words = content_words(&text[start..end]);
        if words.len() < MIN_SENTENCE_WORDS || alpha_count(&words) < 2 {
            return;
        }
        let key = words.join(" ");
        let (s, e) = trimmed(text, start, end);
        match self.sentence_index.get(&key) {
            Some(&first) => {
                self.closed.push(RawSpan { start: s, end: e, detail: format!("repeats the sentence at byte {first}") })
            }
            None => {
                self.sentence_index.insert(key, s);
                self.sentences.push((words, s));
            }
        }
    }

    /// A completed line (`start..end` of `text`, without its newline).
    pub fn add_line(&mut self, text: &str, start: usize, end: usize) {
        if !text[start..end].trim_start().starts_with("A:") {
            return;
        }
        let words = content_words(&text[start..end]);
        if words.len() < MIN_LINE_WORDS || alpha_count(&words) < 1 {
            return;
        }
        let (s, e) = trimmed(text, start, end);
        let key = words.join(" ");
        match self.answer_lines.get(&key) {
            Some(&first) => {
                self.closed.push(RawSpan { start: s, end: e, detail: format!("repeats the A: block at byte {first}") })
            }
            None => {
                self.answer_lines.insert(key, s);
            }
        }
    }

    /// The last, unfinished sentence `start..end` when it is an earlier sentence said again and cut off.
    pub fn cut_off_span(&self, text: &str, start: usize, end: usize) -> Option<RawSpan> {
        let seg = &text[start..end];
        if seg.trim_end().ends_with(['.', '!', '?', ';']) {
            return None;
        }
        let t = content_words(seg);
        let n = t.len();
        if n < MIN_SENTENCE_WORDS || alpha_count(&t) < 2 {
            return None;
        }
        let (_, at) = self
            .sentences
            .iter()
            .find(|(s, _)| s.len() >= n && s[..n - 1] == t[..n - 1] && s[n - 1].starts_with(t[n - 1].as_str()))?;
        let (s, e) = trimmed(text, start, end);
        Some(RawSpan { start: s, end: e, detail: format!("starts the sentence at byte {at} over again") })
    }

    /// Closes the back-to-back loops still open (the text is complete).
    pub fn finish(&mut self, text: &str) {
        if let Some(e) = self.words.len().checked_sub(1) {
            for p in 1..=MAX_PERIOD {
                if let Some(s) = self.loop_span(text, p, e) {
                    self.closed.push(s);
                }
                self.runs[p] = 0;
            }
        }
    }

    /// Adds a final span (the cut-off repeat) found by the caller.
    pub fn push_closed_opt(&mut self, s: Option<RawSpan>) {
        self.closed.extend(s);
    }

    /// Spans found so far, including loops still growing.
    pub fn spans(&self, text: &str) -> Vec<RawSpan> {
        let mut out = self.closed.clone();
        if let Some(e) = self.words.len().checked_sub(1) {
            for p in 1..=MAX_PERIOD {
                out.extend(self.loop_span(text, p, e));
            }
        }
        out
    }
}

/// At most `n` characters of `s` on one line, with an ellipsis when cut.
pub fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        return one_line;
    }
    let cut: String = one_line.chars().take(n).collect();
    format!("{cut}…")
}
