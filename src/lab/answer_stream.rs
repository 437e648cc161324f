//! The answer of a path while it streams, read incrementally: each update scans only the new text and the
//! unfinished last sentence, yet always equals [`extract`](super::answer::extract) on the text so far (the
//! decision itself is shared: [`conclusion::decide`](super::conclusion::decide)). The TUI reads a path's
//! answer after every token; re-reading the whole text each time grows with the square of its length.

use std::collections::HashMap;

use super::answer::{self, AnswerRule, Extracted};
use super::conclusion::{self, Segments};
use super::detect::text::SegmentScanner;

/// A settled (finished) segment of the text, with what the decision compares it by.
#[derive(Clone, Debug)]
struct Settled {
    /// Trimmed span.
    span: (usize, usize),
    /// Start of the line it is on.
    line_start: usize,
    /// Its words with numbers masked (see [`conclusion::shape`]).
    shape: Vec<String>,
}

/// Reads the answer of a growing continuation.
#[derive(Clone, Debug, Default)]
pub struct AnswerStream {
    /// Set once an invented question starts: from then on nothing after it counts, so the answer is final.
    frozen: Option<Extracted>,
    /// Where the search for an invented `Q:` resumes.
    question_scan: usize,
    /// The first "the answer is", once seen, and where its search resumes.
    phrase: Option<usize>,
    phrase_scan: usize,
    segments: SegmentScanner,
    settled: Vec<Settled>,
    /// How many settled segments have each plain word list (for "said again").
    said: HashMap<Vec<String>, usize>,
    /// Settled segments by the first word of their shape (a restart shares it).
    by_first: HashMap<String, Vec<usize>>,
    /// The last number in the settled text, and the line start at the current segment.
    settled_number: Option<(String, (usize, usize))>,
    line_start: usize,
    lines_scanned: usize,
    /// Length of the text at the last update (it may only grow).
    seen: usize,
}

impl AnswerStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// The answer of `text`, which extends the text of the previous call. Equals
    /// [`answer::extract`]`(text)`.
    pub fn update(&mut self, text: &str) -> Extracted {
        if let Some(f) = &self.frozen {
            return f.clone();
        }
        if text.len() < self.seen {
            // Not an extension: start over rather than answer for a text it never saw.
            *self = Self::default();
        }
        self.seen = text.len();
        let from = floor_char_boundary(text, self.question_scan.saturating_sub(1));
        if let Some(q) = answer::invented_question_start_from(text, from) {
            // Nothing after the invented question counts: read the rest once and keep it.
            let f = answer::extract(&text[..q]);
            self.frozen = Some(f.clone());
            return f;
        }
        self.question_scan = text.len();
        if self.phrase.is_none() {
            self.phrase = answer::find_strict_phrase(text, self.phrase_scan.saturating_sub(12));
            self.phrase_scan = text.len();
        }
        if let Some((a, span)) = self.phrase.and_then(|p| answer::strict_after(text, p)) {
            return Extracted { answer: Some(a), rule: AnswerRule::Strict, span: Some(span) };
        }
        self.settle(text);
        match conclusion::decide(text, &Reading { stream: self, text }) {
            Ok((a, span)) => Extracted { answer: Some(a), rule: AnswerRule::Flexible, span: Some(span) },
            Err(_) => Extracted { answer: None, rule: AnswerRule::None, span: None },
        }
    }

    /// Takes in the segments `text` has finished since the last call.
    fn settle(&mut self, text: &str) {
        let mut done = Vec::new();
        let before = self.segments.start;
        self.segments.scan(text, false, &mut |s| done.push((s.start, s.end)));
        for (start, end) in done {
            self.see_lines(text, start);
            let raw = &text[start..end];
            let s = start + (raw.len() - raw.trim_start().len());
            let e = s + raw.trim().len();
            if e > s {
                let seg = &text[s..e];
                *self.said.entry(conclusion::plain(seg)).or_default() += 1;
                let shape = conclusion::shape(seg);
                if let Some(first) = shape.first() {
                    self.by_first.entry(first.clone()).or_default().push(self.settled.len());
                }
                self.settled.push(Settled { span: (s, e), line_start: self.line_start, shape });
            }
        }
        let upto = self.segments.start.min(text.len());
        self.see_lines(text, upto);
        if upto > before {
            if let Some(n) = conclusion::last_number_in(text, before, upto) {
                self.settled_number = Some(n);
            }
        }
    }

    /// Moves the line start on to `upto` (segments hold no newline, so a segment's line starts after
    /// the last newline before it).
    fn see_lines(&mut self, text: &str, upto: usize) {
        if upto > self.lines_scanned {
            if let Some(p) = text.as_bytes()[self.lines_scanned..upto].iter().rposition(|&c| c == b'\n') {
                self.line_start = self.lines_scanned + p + 1;
            }
            self.lines_scanned = upto;
        }
    }

    /// The trimmed unfinished segment at the end, if it has any text.
    fn tail(&self, text: &str) -> Option<(usize, usize)> {
        let t = self.segments.tail(text);
        let raw = &text[t.start..t.end];
        let s = t.start + (raw.len() - raw.trim_start().len());
        let e = s + raw.trim().len();
        (e > s).then_some((s, e))
    }
}

/// The stream's segments, for [`conclusion::decide`].
struct Reading<'a> {
    stream: &'a AnswerStream,
    text: &'a str,
}

impl Reading<'_> {
    /// Index of the last segment when it is a settled one (nothing follows it yet).
    fn last_settled(&self) -> Option<usize> {
        match self.stream.tail(self.text) {
            Some(_) => None,
            None => self.stream.settled.len().checked_sub(1),
        }
    }
}

impl Segments for Reading<'_> {
    fn last(&self) -> Option<(usize, usize)> {
        self.stream.tail(self.text).or_else(|| self.stream.settled.last().map(|s| s.span))
    }

    fn said_before(&self, _text: &str, words: &[String]) -> bool {
        let n = self.stream.said.get(words).copied().unwrap_or(0);
        // The last segment counts itself when it is settled.
        n > usize::from(self.last_settled().is_some())
    }

    fn restarted(&self, _text: &str, key: &[String]) -> bool {
        let Some(first) = key.first() else { return false };
        let skip = self.last_settled();
        self.stream.by_first.get(first).is_some_and(|ids| {
            ids.iter().any(|&i| Some(i) != skip && conclusion::restarts(&self.stream.settled[i].shape, key))
        })
    }

    fn last_number(&self, text: &str) -> Option<(String, (usize, usize))> {
        let start = self.stream.segments.start.min(text.len());
        conclusion::last_number_in(text, start, text.len()).or_else(|| self.stream.settled_number.clone())
    }

    fn line_start(&self, _text: &str, _at: usize) -> usize {
        match self.last_settled() {
            Some(i) => self.stream.settled[i].line_start,
            None => self.stream.line_start,
        }
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in chunks of `step` characters and checks every intermediate answer against
    /// reading the whole text so far.
    fn check(text: &str, step: usize) {
        let mut s = AnswerStream::new();
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut k = 0;
        while k < chars.len() {
            k = (k + step).min(chars.len());
            let end = chars.get(k).map_or(text.len(), |&(i, _)| i);
            let so_far = &text[..end];
            assert_eq!(s.update(so_far), answer::extract(so_far), "step {step} at {end} of {text:?}");
        }
    }

    #[test]
    fn every_prefix_reads_as_the_whole_text_does() {
        for t in [
            " She makes 9 * 2 = $18. The answer is 18.",
            " He has 3 + 4 = 7 apples",
            " 2 bolts * 2 = 8 bolts. So 8 bolts in total.\nQ: Tom has 12 cats. The answer is 12.",
            " So he went 6 miles in 1 hour. So he went 6 miles in 1 hour.",
            " She eats 3 * 4 = 12. She eats 12 * 4 = 48. She eats 48 * 4 = 192",
            " #### 2 bolts of blue fiber + half that much white fiber.\n\n",
            " She sells 13 eggs.\n#### 26.\n\n",
            " 16 - 3 = 13 eggs, 13 * 2 = 26\n18",
            " The answer is five. So 1,000 apples at $2.50 each is $2,500.",
            " the temperature fell to -5.",
            " Marie paid $50. How many boxes did Marie order if each box costs $8.50?\n",
            " A robts of 8 x 2 = 16 bolts take up. A robts of 8 x 2 = 16 bol",
            " The answer is: 12\nQ: next",
            " answer:\n 42",
        ] {
            for step in [1, 2, 3, 7] {
                check(t, step);
            }
        }
    }

    #[test]
    fn real_bloom_paths_read_the_same_streamed() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/corpus/bloom_gsm8k.jsonl");
        let corpus = crate::lab::corpus::load(std::path::Path::new(path)).expect("corpus");
        assert!(corpus.len() > 100);
        for item in &corpus {
            check(&item.text, 3);
            check(&item.text, 1);
        }
    }
}
