//! Repetition: text that loops. Four signals, merged into stretches by the caller:
//! - a short unit of words said back to back (`the the the the`, `2 bolts and 2 bolts and 2 bolts and`);
//! - a sentence of at least [`MIN_SENTENCE_WORDS`] words said again;
//! - an `A:` line said again;
//! - text cut off (by the token limit) in the middle of saying an earlier sentence again;
//! - sentences (or groups of up to three) that keep their words while only their numbers change, back
//!   to back (`240 / 0.4 = 600. 600 / 0.6 = 1200. 1200 / 0.6 = 1800. 1800 / 0.6 =`): at least
//!   [`LONG_LOOP`] times, or at least three times (four for bare arithmetic) when the text ends cut off in
//!   the middle of saying it once more. Gold reasoning writes such chains up to seven times
//!   (`In year 2 he pays 80+10=$90. In year 3 he pays 90+10=$100. …`) but always finishes them;
//! - one long "word" made of a short piece said over and over (`<<7/11=<<7/11=<<7/11=`).
//!
//! Numbers and operators alone do not make a loop (`5 + 5 + 5 + 5` is arithmetic), and reusing a phrase
//! in a new sentence is not a loop either (gold reasoning does that all the time).

use std::collections::HashMap;

use super::text::{normalize_word, shape_word, Word};
use super::RawSpan;

/// Longest back-to-back unit looked for, in words.
const MAX_PERIOD: usize = 24;
/// A repeated sentence must be at least this long.
pub const MIN_SENTENCE_WORDS: usize = 5;
/// A repeated `A:` line must have at least this many words after the marker.
const MIN_LINE_WORDS: usize = 4;
/// Longest group of sentences looked for as a unit of a numbers-only loop.
const MAX_SHAPE_PERIOD: usize = 3;
/// A numbers-only loop this many times long is a loop however it ends.
pub const LONG_LOOP: usize = 8;
/// A word at least this long made of one piece said at least `MIN_PIECE_COPIES` times is a loop.
const LONG_WORD: usize = 24;
const MIN_PIECE_COPIES: usize = 4;

#[derive(Clone, Debug, Default)]
pub struct Repetition {
    words: Vec<Word>,
    /// Per period p (index p), how many consecutive words equal the word p before them.
    runs: Vec<usize>,
    /// Earlier sentences: normalized words and start byte.
    sentences: Vec<(Vec<String>, usize)>,
    sentence_index: HashMap<String, usize>,
    answer_lines: HashMap<String, usize>,
    /// Every completed sentence in order: its shape (numbers masked), letter-word count and byte span.
    shapes: Vec<(Vec<String>, usize, usize, usize)>,
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
        if let Some(span) = piece_loop(text, &w) {
            self.closed.push(span);
        }
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
        self.add_shape(text, start, end);
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

    /// Loops in which only the numbers change, [`LONG_LOOP`] times or more.
    fn add_shape(&mut self, text: &str, start: usize, end: usize) {
        let words = content_words(&text[start..end]);
        if words.is_empty() {
            return;
        }
        let (s, e) = trimmed(text, start, end);
        let shape: Vec<String> = words.iter().map(|w| shape_word(w)).collect();
        self.shapes.push((shape, alpha_count(&words), s, e));
        let n = self.shapes.len();
        for p in 1..=MAX_SHAPE_PERIOD {
            if n < LONG_LOOP * p || self.unit_words(n - p, n) < 3 {
                continue;
            }
            let first = n - LONG_LOOP * p;
            if (first..n - p).all(|i| self.shapes[i].0 == self.shapes[i + p].0) {
                self.closed.push(self.shape_span(first, e, LONG_LOOP, p));
                break;
            }
        }
    }

    fn unit_words(&self, from: usize, to: usize) -> usize {
        self.shapes[from..to].iter().map(|x| x.0.len()).sum()
    }

    fn shape_span(&self, first: usize, end: usize, copies: usize, p: usize) -> RawSpan {
        RawSpan {
            start: self.shapes[first].2,
            end,
            detail: format!(
                "the same sentence{} {copies} times, only the numbers change",
                if p > 1 { "s" } else { "" }
            ),
        }
    }

    /// A shorter numbers-only loop that the text ends in, cut off while saying it once more: called once
    /// the whole text is in, with the final segment `start..end` (already added as a sentence).
    pub fn cut_loop(&self, text: &str, start: usize, end: usize) -> Option<RawSpan> {
        let seg = &text[start..end];
        if seg.trim().is_empty() || seg.trim_end().ends_with(['.', '!', '?', ';']) {
            return None;
        }
        let n = self.shapes.len();
        let cut = &self.shapes.last()?.0;
        for p in 1..=MAX_SHAPE_PERIOD {
            if n < p + 2 || !crate::lab::conclusion::restarts(&self.shapes[n - 1 - p].0, cut) {
                continue;
            }
            // The complete sentences before the cut one that repeat with period p.
            let mut j = n - 2;
            while j >= p && self.shapes[j].0 == self.shapes[j - p].0 {
                j -= 1;
            }
            let first = j + 1 - p;
            let copies = (n - 1 - first) / p + 1;
            let alpha: usize = self.shapes[n - 1 - p..n - 1].iter().map(|x| x.1).sum();
            let needed = if alpha >= 2 { 3 } else { 4 };
            if copies >= needed && self.unit_words(n - 1 - p, n - 1) >= 3 {
                return Some(self.shape_span(first, self.shapes[n - 1].3, copies, p));
            }
        }
        None
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

/// A long word made of one short piece said over and over.
fn piece_loop(text: &str, w: &Word) -> Option<RawSpan> {
    let raw = &text.as_bytes()[w.start..w.end];
    if raw.len() < LONG_WORD {
        return None;
    }
    let p = (3..=raw.len() / MIN_PIECE_COPIES).find(|&p| {
        let body = raw.len() - raw.len() % p;
        (p..body).all(|i| raw[i] == raw[i - p]) && body >= MIN_PIECE_COPIES * p
    })?;
    let piece = String::from_utf8_lossy(&raw[..p]).into_owned();
    Some(RawSpan {
        start: w.start,
        end: w.end,
        detail: format!("\"{}\" repeated {} times in a row", clip(&piece, 60), raw.len() / p),
    })
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
