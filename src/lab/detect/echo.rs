//! Question echo: the continuation copies a long run of words of the target question, or of the
//! instruction line, verbatim (case and surrounding punctuation aside).
//!
//! Reference reasoning restates clauses of the question all the time (GSM8K gold copies up to 22 words),
//! so for the question a copy counts only when it parrots the question itself (ends in its `?`), or is
//! very long, or is most of the question, or copies the end of its ask (at least [`ASK_RUN`] words through
//! the `?`). The instruction is never restated by good reasoning, so any
//! run of [`MIN_WORDS`] of it counts. One row of the longest-common-substring table is kept: each new
//! word costs one pass over the source's words.

use super::text::{is_marker, Word, WordScanner};
use super::RawSpan;

/// Shortest run of the instruction line that counts.
pub const MIN_WORDS: usize = 8;
/// A run of the question that ends in its question mark counts from this length.
const QUESTION_RUN: usize = 12;
/// A run of at least this many words that ends with the question's last word, the `?` included, counts:
/// a partial echo of the ask (`How many pieces were taken by the guests?`).
const ASK_RUN: usize = 8;
/// A run of the question at least this long counts whatever it holds.
const LONG_RUN: usize = 32;
/// A run of at least `MIN_SHARE_WORDS` words covering this share of the question counts.
const SHARE: f64 = 0.75;
const MIN_SHARE_WORDS: usize = 10;

/// What is being copied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    Question,
    Instruction,
}

#[derive(Clone, Debug)]
pub struct Echo {
    what: Source,
    source: Vec<String>,
    /// Whether the source ends with a question mark (the ask).
    asks: bool,
    /// row[j]: length of the common run ending at the last continuation word and source word j.
    row: Vec<usize>,
    /// Byte spans of the continuation's words.
    words: Vec<(usize, usize)>,
    closed: Vec<RawSpan>,
}

impl Echo {
    pub fn new(what: Source, source: &str) -> Self {
        let mut words = Vec::new();
        WordScanner::default().scan(source, true, &mut |w| {
            if !is_marker(&source[w.start..w.end]) {
                words.push(w.norm)
            }
        });
        let n = words.len();
        let asks = source.trim_end().ends_with('?');
        Self { what, source: words, asks, row: vec![0; n], words: Vec::new(), closed: Vec::new() }
    }

    pub fn add_word(&mut self, text: &str, w: &Word) {
        self.words.push((w.start, w.end));
        let m = self.source.len();
        let mut new = vec![0; m];
        for (j, s) in self.source.iter().enumerate() {
            if *s == w.norm {
                new[j] = if j > 0 { self.row[j - 1] } else { 0 } + 1;
            }
        }
        let last = self.words.len() - 1;
        for j in 0..m {
            let len = self.row[j];
            if len >= ASK_RUN && (j + 1 >= m || new[j + 1] == 0) && last > 0 {
                if let Some(span) = self.span(text, last - 1, len, j) {
                    self.closed.push(span);
                }
            }
        }
        self.row = new;
    }

    /// The copy of `len` words ending at continuation word `last_word` and source word `j`, if it counts.
    fn span(&self, text: &str, last_word: usize, len: usize, j: usize) -> Option<RawSpan> {
        let first = last_word + 1 - len;
        let (start, end) = (self.words[first].0, self.words[last_word].1);
        let counts = match self.what {
            Source::Instruction => len >= MIN_WORDS,
            Source::Question => {
                (len >= QUESTION_RUN && text[start..end].contains('?'))
                    || (len >= ASK_RUN && self.asks && j + 1 == self.source.len() && text[start..end].ends_with('?'))
                    || len >= LONG_RUN
                    || (len >= MIN_SHARE_WORDS && len as f64 >= SHARE * self.source.len() as f64)
            }
        };
        let what = match self.what {
            Source::Question => "question",
            Source::Instruction => "instruction line",
        };
        counts.then(|| RawSpan { start, end, detail: format!("copies {len} words of the {what} verbatim") })
    }

    fn open_spans(&self, text: &str) -> Vec<RawSpan> {
        match self.words.len().checked_sub(1) {
            Some(last) => self
                .row
                .iter()
                .enumerate()
                .filter(|&(_, &l)| l >= ASK_RUN)
                .filter_map(|(j, &l)| self.span(text, last, l, j))
                .collect(),
            None => Vec::new(),
        }
    }

    pub fn finish(&mut self, text: &str) {
        let open = self.open_spans(text);
        self.closed.extend(open);
        self.row.iter_mut().for_each(|l| *l = 0);
    }

    pub fn spans(&self, text: &str) -> Vec<RawSpan> {
        let mut out = self.closed.clone();
        out.extend(self.open_spans(text));
        out
    }
}
