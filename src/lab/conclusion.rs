//! Whether a path without "The answer is N" still gives a final answer, as a reader decides it.
//!
//! A reader takes the last number as the answer only when the path ends on a statement that gives it:
//! `So she makes 13 x 2 = 26 dollars.`, `#### 26`, or a bare `18` on its own line. A path that stops in
//! the middle of a sentence (the token limit), ends on a question (an echo of the ask), ends by saying an
//! earlier sentence again (a loop), or ends on an expression (`#### 2 bolts + half that much`) has not
//! answered, whatever numbers it contains.

use super::detect::text::{normalize_word, shape_word, SegmentScanner};
use super::number;

/// Why a path gives no final answer.
pub(crate) const STOPS_MID_SENTENCE: &str = "the path stops in the middle of a sentence";
pub(crate) const ENDS_IN_QUESTION: &str = "the path ends on a question, not an answer";
pub(crate) const ENDS_IN_LOOP: &str = "the path ends by saying an earlier sentence again";
pub(crate) const ENDS_ON_EXPRESSION: &str = "the path ends on an expression, not a number";
pub(crate) const NO_NUMBER: &str = "the path states no number";

/// Unit words allowed after a final number that ends the text without a full stop (`= 26 dollars`).
const MAX_TRAILING_WORDS: usize = 3;

/// What [`decide`] reads of a text's segments (sentences or lines), however they were found: all at once
/// ([`WholeText`]) or as the text streamed in ([`crate::lab::answer_stream`]). One decision, two readers.
pub(crate) trait Segments {
    /// The last trimmed, non-empty segment.
    fn last(&self) -> Option<(usize, usize)>;
    /// Whether a segment before the last has exactly these plain words.
    fn said_before(&self, text: &str, words: &[String]) -> bool;
    /// Whether a segment before the last, numbers masked, [`restarts`] with `key`.
    fn restarted(&self, text: &str, key: &[String]) -> bool;
    /// The last number of the text (see [`last_number`]).
    fn last_number(&self, text: &str) -> Option<(String, (usize, usize))>;
    /// Start of the line holding byte `at` of the last segment (segments hold no newline).
    fn line_start(&self, text: &str, at: usize) -> usize;
}

/// The last number of `text` with its byte span, when the path ends on a statement that gives it; else
/// why not. `text` is the part of the continuation before any invented question.
pub(crate) fn final_number(text: &str) -> Result<(String, (usize, usize)), &'static str> {
    decide(text, &WholeText::new(text))
}

/// [`final_number`] over segments already read.
pub(crate) fn decide(text: &str, segs: &impl Segments) -> Result<(String, (usize, usize)), &'static str> {
    let Some((fs, fe)) = segs.last() else {
        return Err(NO_NUMBER);
    };
    let last = &text[fs..fe];
    if last.ends_with('?') {
        return Err(ENDS_IN_QUESTION);
    }
    let complete = last.ends_with(['.', '!', ';']);
    let (answer, (ns, ne)) = segs.last_number(text).ok_or(NO_NUMBER)?;
    if complete {
        // Said again word for word, computing nothing: a loop the token limit happened to cut at a stop.
        let words = plain(last);
        if words.len() >= 3 && !last.contains('=') && segs.said_before(text, &words) {
            return Err(ENDS_IN_LOOP);
        }
        if ns >= fs && continues_as_expression(&text[ne..fe]) {
            return Err(ENDS_ON_EXPRESSION);
        }
        return Ok((answer, (ns, ne)));
    }
    // Cut off while saying an earlier sentence again, perhaps with new numbers.
    let key = shape(last);
    if key.len() >= 3 && segs.restarted(text, &key) {
        return Err(ENDS_IN_LOOP);
    }
    if ns < fs || !bare_tail(&text[ne..fe]) {
        return Err(STOPS_MID_SENTENCE);
    }
    let line_start = segs.line_start(text, ns);
    let before = text[fs.max(line_start)..ns].trim_end().trim_end_matches(['$', '-']).trim_end();
    let stated = before.ends_with('=')
        || before.is_empty()
        || ["####", "A:", "answer:", "Answer:"].iter().any(|m| text[line_start..ns].trim() == *m);
    if stated {
        Ok((answer, (ns, ne)))
    } else {
        Err(STOPS_MID_SENTENCE)
    }
}

/// Segments of a whole text, read at once.
struct WholeText {
    segments: Vec<(usize, usize)>,
}

impl WholeText {
    fn new(text: &str) -> Self {
        Self { segments: segments(text) }
    }

    fn earlier(&self) -> &[(usize, usize)] {
        &self.segments[..self.segments.len().saturating_sub(1)]
    }
}

impl Segments for WholeText {
    fn last(&self) -> Option<(usize, usize)> {
        self.segments.last().copied()
    }

    fn said_before(&self, text: &str, words: &[String]) -> bool {
        self.earlier().iter().any(|&(s, e)| plain(&text[s..e]) == words)
    }

    fn restarted(&self, text: &str, key: &[String]) -> bool {
        self.earlier().iter().any(|&(s, e)| restarts(&shape(&text[s..e]), key))
    }

    fn last_number(&self, text: &str) -> Option<(String, (usize, usize))> {
        last_number(text)
    }

    fn line_start(&self, text: &str, at: usize) -> usize {
        text[..at].rfind('\n').map_or(0, |p| p + 1)
    }
}

/// Trimmed, non-empty segments (sentences or lines) of `text`.
fn segments(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    SegmentScanner::default().scan(text, true, &mut |s| {
        let seg = &text[s.start..s.end];
        let start = s.start + (seg.len() - seg.trim_start().len());
        let end = start + seg.trim().len();
        if end > start {
            out.push((start, end));
        }
    });
    out
}

/// Whether `cut` is `earlier` again, cut off (its last word may be cut too).
pub(crate) fn restarts(earlier: &[String], cut: &[String]) -> bool {
    let n = cut.len();
    n > 0 && earlier.len() >= n && earlier[..n - 1] == cut[..n - 1] && earlier[n - 1].starts_with(cut[n - 1].as_str())
}

pub(crate) fn plain(s: &str) -> Vec<String> {
    s.split_whitespace().map(normalize_word).collect()
}

/// A sentence with its numbers masked: a loop that only changes numbers keeps its shape.
pub(crate) fn shape(s: &str) -> Vec<String> {
    s.split_whitespace().map(|w| shape_word(&normalize_word(w))).collect()
}

/// Whether what follows the last number, up to the end of the final sentence, is only a few words
/// (units), with no operator or digit.
fn bare_tail(rest: &str) -> bool {
    let rest = rest.trim_start_matches('%');
    let words: Vec<&str> = rest.split_whitespace().collect();
    words.len() <= MAX_TRAILING_WORDS
        && words.iter().all(|w| w.chars().all(|c| c.is_alphabetic() || "'’.!;,".contains(c)))
}

/// Whether an operator follows the last number inside the final sentence (`2 bolts + half that much`).
fn continues_as_expression(rest: &str) -> bool {
    rest.split_whitespace().any(|w| matches!(w, "+" | "-" | "*" | "/" | "x" | "×" | "÷" | "plus" | "minus" | "times"))
}

/// The last number in `text`, with a leading minus when it is a sign.
pub(crate) fn last_number(text: &str) -> Option<(String, (usize, usize))> {
    last_number_in(text, 0, text.len())
}

/// The last number starting in `text[from..to]` (read in the whole `text`, so a sign or digits outside
/// the range still count as they do for [`last_number`]). Equal to scanning from 0 when `from` is where
/// that scan passes: a segment's start (no number runs across a segment break).
pub(crate) fn last_number_in(text: &str, from: usize, to: usize) -> Option<(String, (usize, usize))> {
    let b = text.as_bytes();
    let mut found = None;
    let mut i = from;
    while i < to {
        if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()) {
            if let Some(lit) = number::scan_at(text, i) {
                let neg = i > 0 && b[i - 1] == b'-' && (i < 2 || !b[i - 2].is_ascii_alphanumeric());
                let start = if neg { i - 1 } else { i };
                let v = if neg { -lit.value.clone() } else { lit.value.clone() };
                found = Some((number::canonical(&v), (start, lit.end)));
                i = lit.end;
                continue;
            }
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(t: &str) -> Result<String, &'static str> {
        final_number(t).map(|(a, _)| a)
    }

    #[test]
    fn concluding_statements_answer() {
        assert_eq!(ans(" She makes 13 x 2 = 26 dollars every day."), Ok("26".into()));
        assert_eq!(ans(" She sells 13 eggs.\n#### 26.\n\n"), Ok("26".into()));
        assert_eq!(ans(" 16 - 3 = 13 eggs, 13 * 2 = 26\n18"), Ok("18".into()), "BLOOMZ: a bare final number");
        assert_eq!(ans(" He has 3 + 4 = 7 apples"), Ok("7".into()), "an equation ends the text");
        assert_eq!(ans(" So the percentage is 20% + 25% + (the rest) = 100%."), Ok("100".into()));
        assert_eq!(ans(" the temperature fell to -5."), Ok("-5".into()));
        // A conclusion said twice is still a conclusion.
        assert_eq!(ans(" The weight is 2 * 2 = 4.\nA: The weight is 2 * 2 = 4."), Ok("4".into()));
    }

    #[test]
    fn paths_that_never_answer() {
        assert_eq!(ans(" Then he bought 5 glasses"), Err(STOPS_MID_SENTENCE));
        assert_eq!(ans(" He drove 400 - 30"), Err(STOPS_MID_SENTENCE));
        assert_eq!(ans(" How many tests did John take? ** 4"), Err(STOPS_MID_SENTENCE));
        assert_eq!(
            ans(" Marie paid a total of $50. How many boxes did Marie order if each box costs $8.50?\n"),
            Err(ENDS_IN_QUESTION)
        );
        assert_eq!(ans(" So he went 6 miles in 1 hour. So he went 6 miles in 1 hour."), Err(ENDS_IN_LOOP));
        assert_eq!(ans(" She eats 3 * 4 = 12. She eats 12 * 4 = 48. She eats 48 * 4 = 192"), Err(ENDS_IN_LOOP));
        assert_eq!(ans(" #### 2 bolts of blue fiber + half that much white fiber.\n\n"), Err(ENDS_ON_EXPRESSION));
        assert_eq!(ans(" his age is <<7/11=<<7/11=<<7/11"), Err(STOPS_MID_SENTENCE));
        assert_eq!(ans(" A robts of 8 x 2 = 16 bolts take up. A robts of 8 x 2 = 16 bol"), Err(ENDS_IN_LOOP));
        assert_eq!(ans(" The robts are many."), Err(NO_NUMBER));
        assert_eq!(ans("   \n"), Err(NO_NUMBER));
    }
}
