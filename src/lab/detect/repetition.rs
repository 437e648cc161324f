//! Repetition: text that loops. Three signals, merged into stretches by the caller:
//! - a short unit of words repeated back to back (`the the the the`, `2 bolts and 2 bolts and 2 bolts and`);
//! - a run of [`NGRAM`] words that already appeared earlier in the continuation (a sentence or an `A:`
//!   block said again, even when cut off midway);
//! - a whole sentence of at least [`MIN_SENTENCE_WORDS`] words said again.
//! Numbers and operators alone do not make a loop (`5 + 5 + 5 + 5` is arithmetic, not repetition).

use std::collections::HashMap;

use super::text::{normalize_word, Word};
use super::RawSpan;

/// Longest back-to-back unit looked for, in words.
const MAX_PERIOD: usize = 24;
/// Length of the word runs compared for a repeated stretch.
pub const NGRAM: usize = 8;
/// Letters-bearing words a repeated run needs (so lists of numbers do not count).
const NGRAM_MIN_ALPHA: usize = 3;
/// A repeated sentence must be at least this long.
pub const MIN_SENTENCE_WORDS: usize = 5;

#[derive(Clone, Debug, Default)]
pub struct Repetition {
    words: Vec<Word>,
    /// Per period p (index p), how many consecutive words equal the word p before them.
    runs: Vec<usize>,
    /// First occurrence (index of its last word) of each n-gram.
    seen: HashMap<String, usize>,
    /// The repeated stretch being extended: first word, last word, detail.
    open: Option<(usize, usize, String)>,
    sentences: HashMap<String, usize>,
    closed: Vec<RawSpan>,
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
        self.add_ngram(text, i);
    }

    /// The back-to-back loop of period `p` whose run ends at word `e`, if it is long enough.
    fn loop_span(&self, text: &str, p: usize, e: usize) -> Option<RawSpan> {
        let run = self.runs[p];
        if run == 0 {
            return None;
        }
        let total = run + p;
        let min_copies = if p == 1 { 4 } else { 3 };
        if total < min_copies * p {
            return None;
        }
        let first = e + 1 - total;
        let unit = &self.words[first..first + p];
        if !unit.iter().any(|w| w.alpha) {
            return None;
        }
        let unit_text = &text[unit[0].start..unit[p - 1].end];
        Some(RawSpan {
            start: self.words[first].start,
            end: self.words[e].end,
            detail: format!("\"{}\" repeated {} times in a row", clip(unit_text, 60), total / p),
        })
    }

    fn add_ngram(&mut self, text: &str, i: usize) {
        if i + 1 < NGRAM {
            return;
        }
        let gram = &self.words[i + 1 - NGRAM..=i];
        let repeated = if gram.iter().filter(|w| w.alpha).count() >= NGRAM_MIN_ALPHA {
            let key: Vec<&str> = gram.iter().map(|w| w.norm.as_str()).collect();
            let key = key.join("\u{1}");
            match self.seen.get(&key) {
                Some(&j) => Some(j),
                None => {
                    self.seen.insert(key, i);
                    None
                }
            }
        } else {
            None
        };
        match (repeated, self.open.take()) {
            (Some(_), Some((a, b, d))) if b + 1 >= i => self.open = Some((a, i, d)),
            (Some(j), prev) => {
                if let Some(prev) = prev {
                    self.closed.push(self.stretch_span(prev));
                }
                let first = &self.words[j + 1 - NGRAM];
                let _ = text;
                self.open = Some((i + 1 - NGRAM, i, format!("repeats the text at byte {}", first.start)));
            }
            (None, Some(prev)) => self.closed.push(self.stretch_span(prev)),
            (None, None) => {}
        }
    }

    fn stretch_span(&self, (a, b, detail): (usize, usize, String)) -> RawSpan {
        RawSpan { start: self.words[a].start, end: self.words[b].end, detail }
    }

    /// A completed sentence (`start..end` of `text`).
    pub fn add_sentence(&mut self, text: &str, start: usize, end: usize) {
        let seg = &text[start..end];
        let lead = seg.len() - seg.trim_start().len();
        let body = seg.trim();
        let content = body.strip_prefix("A:").or_else(|| body.strip_prefix("Q:")).unwrap_or(body);
        let words: Vec<String> = content.split_whitespace().map(normalize_word).collect();
        if words.len() < MIN_SENTENCE_WORDS || words.iter().filter(|w| w.chars().any(char::is_alphabetic)).count() < 2 {
            return;
        }
        let key = words.join(" ");
        let s = start + lead;
        match self.sentences.get(&key) {
            Some(&first) => self.closed.push(RawSpan {
                start: s,
                end: s + body.len(),
                detail: format!("repeats the sentence at byte {first}"),
            }),
            None => {
                self.sentences.insert(key, s);
            }
        }
    }

    /// Closes everything still open (the text is complete).
    pub fn finish(&mut self, text: &str) {
        if let Some(e) = self.words.len().checked_sub(1) {
            for p in 1..=MAX_PERIOD {
                if let Some(s) = self.loop_span(text, p, e) {
                    self.closed.push(s);
                }
                self.runs[p] = 0;
            }
        }
        if let Some(prev) = self.open.take() {
            self.closed.push(self.stretch_span(prev));
        }
    }

    /// Spans found so far, including loops still growing.
    pub fn spans(&self, text: &str) -> Vec<RawSpan> {
        let mut out = self.closed.clone();
        if let Some(e) = self.words.len().checked_sub(1) {
            for p in 1..=MAX_PERIOD {
                out.extend(self.loop_span(text, p, e));
            }
        }
        if let Some(prev) = self.open.clone() {
            out.push(self.stretch_span(prev));
        }
        out
    }
}

/// At most `n` characters of `s`, with an ellipsis when cut.
pub fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        return one_line;
    }
    let cut: String = one_line.chars().take(n).collect();
    format!("{cut}…")
}
