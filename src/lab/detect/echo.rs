//! Question echo: the continuation copies a long run of words (at least [`MIN_WORDS`]) of the target
//! question, or of the instruction line, verbatim (case and surrounding punctuation aside).
//! One row of the longest-common-substring table is kept, so each new word costs one pass over the
//! source's words.

use super::text::{is_marker, Word, WordScanner};
use super::RawSpan;

pub const MIN_WORDS: usize = 8;

#[derive(Clone, Debug)]
pub struct Echo {
    what: &'static str,
    source: Vec<String>,
    /// row[j]: length of the common run ending at the last continuation word and source word j.
    row: Vec<usize>,
    /// Byte spans of the continuation's words.
    words: Vec<(usize, usize)>,
    closed: Vec<RawSpan>,
}

impl Echo {
    /// `what` names the source in details ("question", "instruction").
    pub fn new(what: &'static str, source: &str) -> Self {
        let mut words = Vec::new();
        WordScanner::default().scan(source, true, &mut |w| {
            if !is_marker(&source[w.start..w.end]) {
                words.push(w.norm)
            }
        });
        let n = words.len();
        Self { what, source: words, row: vec![0; n], words: Vec::new(), closed: Vec::new() }
    }

    pub fn add_word(&mut self, w: &Word) {
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
            if len >= MIN_WORDS && (j + 1 >= m || new[j + 1] == 0) && last > 0 {
                let span = self.span(last - 1, len);
                self.closed.push(span);
            }
        }
        self.row = new;
    }

    fn span(&self, last_word: usize, len: usize) -> RawSpan {
        let first = last_word + 1 - len;
        RawSpan {
            start: self.words[first].0,
            end: self.words[last_word].1,
            detail: format!("copies {len} words of the {} verbatim", self.what),
        }
    }

    fn open_spans(&self) -> Vec<RawSpan> {
        match self.words.len().checked_sub(1) {
            Some(last) => self.row.iter().filter(|&&l| l >= MIN_WORDS).map(|&l| self.span(last, l)).collect(),
            None => Vec::new(),
        }
    }

    pub fn finish(&mut self) {
        let open = self.open_spans();
        self.closed.extend(open);
        self.row.iter_mut().for_each(|l| *l = 0);
    }

    pub fn spans(&self) -> Vec<RawSpan> {
        let mut out = self.closed.clone();
        out.extend(self.open_spans());
        out
    }
}
