//! Incremental word and sentence scanning over a growing text. Both emit an item only once the text
//! after it settles it (a word once whitespace follows; a sentence once its break is certain), so what
//! they emit depends on the text alone, never on how it arrived in chunks.

/// A whitespace-delimited word with its byte span and a normalized form for comparisons.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    pub start: usize,
    pub end: usize,
    /// Lowercased, with surrounding punctuation trimmed (kept when the word is all punctuation, like `+`).
    pub norm: String,
    /// Whether `norm` has a letter.
    pub alpha: bool,
}

/// Normalizes a raw word for comparisons.
pub fn normalize_word(raw: &str) -> String {
    let trimmed = raw.trim_matches(|c: char| !c.is_alphanumeric());
    let base = if trimmed.is_empty() { raw } else { trimmed };
    base.to_lowercase()
}

/// A normalized word as it counts for the shape of a sentence: numbers masked as `#` (a loop that only
/// changes numbers keeps its shape) and a plural ending dropped (`1 dollar`, `3 dollars`).
pub fn shape_word(norm: &str) -> String {
    if norm.chars().any(|c| c.is_ascii_digit()) {
        return "#".to_string();
    }
    for suffix in ["sses", "shes", "ches", "xes"] {
        if norm.ends_with(suffix) {
            return norm[..norm.len() - 2].to_string();
        }
    }
    match norm.strip_suffix('s') {
        Some(stem) if !stem.ends_with('s') && !stem.is_empty() => stem.to_string(),
        _ => norm.to_string(),
    }
}

/// Whether a raw word is a `Q:`/`A:` turn marker (these are layout, not content).
pub fn is_marker(raw: &str) -> bool {
    matches!(raw, "Q:" | "A:")
}

/// Emits completed words of a growing text.
#[derive(Clone, Debug, Default)]
pub struct WordScanner {
    /// Where scanning resumes: the start of a pending partial word, or past the last whitespace seen.
    pos: usize,
}

impl WordScanner {
    /// Scans `text` (which only ever grows) and calls `emit` for each word completed so far. With `at_end`,
    /// a trailing word without whitespace after it is complete too.
    pub fn scan(&mut self, text: &str, at_end: bool, emit: &mut dyn FnMut(Word)) {
        let b = text.as_bytes();
        let mut i = self.pos;
        loop {
            while i < b.len() && is_space_at(text, i) {
                i += space_len(text, i);
            }
            if i >= b.len() {
                self.pos = i;
                return;
            }
            let start = i;
            while i < b.len() && !is_space_at(text, i) {
                i += char_len(b[i]);
            }
            if i >= b.len() && !at_end {
                self.pos = start;
                return;
            }
            let raw = &text[start..i.min(b.len())];
            let norm = normalize_word(raw);
            let alpha = norm.chars().any(char::is_alphabetic);
            emit(Word { start, end: i.min(b.len()), norm, alpha });
        }
    }
}

fn char_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xff => 4,
        _ => 1,
    }
}

fn is_space_at(text: &str, i: usize) -> bool {
    text[i..].chars().next().is_some_and(char::is_whitespace)
}

fn space_len(text: &str, i: usize) -> usize {
    text[i..].chars().next().map_or(1, char::len_utf8)
}

/// A sentence (or line) of the text: the unit in which equations and repeated sentences are looked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub start: usize,
    pub end: usize,
}

/// Longest segment before a break is forced at the next whitespace (keeps per-token work bounded on
/// degenerate output that never ends a sentence).
pub const MAX_SEGMENT: usize = 1024;

/// Emits completed segments: a segment ends at a newline, or after `.`, `!`, `?` or `;` followed by
/// whitespace (so `3.5` and `$5.50` do not end one).
#[derive(Clone, Debug, Default)]
pub struct SegmentScanner {
    /// Start of the current (unfinished) segment.
    pub start: usize,
    /// Where the search for its end resumes.
    pos: usize,
}

impl SegmentScanner {
    pub fn scan(&mut self, text: &str, at_end: bool, emit: &mut dyn FnMut(Segment)) {
        let b = text.as_bytes();
        let mut i = self.pos.max(self.start);
        while i < b.len() {
            let c = b[i];
            let brk = if c == b'\n' {
                Some((i, i + 1))
            } else if matches!(c, b'.' | b'!' | b'?' | b';') {
                if i + 1 >= b.len() {
                    break; // the next byte decides
                }
                if is_space_at(text, i + 1) {
                    Some((i + 1, i + 1))
                } else {
                    None
                }
            } else if i - self.start >= MAX_SEGMENT && is_space_at(text, i) {
                Some((i, i))
            } else {
                None
            };
            if let Some((end, next)) = brk {
                if end > self.start {
                    emit(Segment { start: self.start, end });
                }
                self.start = next;
                i = next;
            } else {
                i += 1;
            }
        }
        self.pos = i;
        if at_end && self.start < b.len() {
            emit(Segment { start: self.start, end: b.len() });
            self.start = b.len();
            self.pos = b.len();
        }
    }

    /// The unfinished segment at the end of `text` (may be empty).
    pub fn tail(&self, text: &str) -> Segment {
        Segment { start: self.start.min(text.len()), end: text.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_chunked(text: &str, chunk: usize) -> Vec<Word> {
        let mut s = WordScanner::default();
        let mut out = vec![];
        let mut cur = String::new();
        let chars: Vec<char> = text.chars().collect();
        for c in chars.chunks(chunk) {
            cur.extend(c);
            s.scan(&cur, false, &mut |w| out.push(w));
        }
        s.scan(&cur, true, &mut |w| out.push(w));
        out
    }

    #[test]
    fn words_do_not_depend_on_chunking() {
        let t = " A robe’s 2 bolts,  of   fiber.\nQ: The€ end";
        let one = words_chunked(t, 1000);
        let norms: Vec<&str> = one.iter().map(|w| w.norm.as_str()).collect();
        assert_eq!(norms, vec!["a", "robe’s", "2", "bolts", "of", "fiber", "q", "the", "end"]);
        for k in [1, 2, 3, 7] {
            assert_eq!(words_chunked(t, k), one, "chunk {k}");
        }
        assert_eq!(&t[one[1].start..one[1].end], "robe’s");
    }

    fn segs_chunked(text: &str, chunk: usize) -> Vec<(usize, usize)> {
        let mut s = SegmentScanner::default();
        let mut out = vec![];
        let mut cur = String::new();
        let chars: Vec<char> = text.chars().collect();
        for c in chars.chunks(chunk) {
            cur.extend(c);
            s.scan(&cur, false, &mut |g| out.push((g.start, g.end)));
        }
        s.scan(&cur, true, &mut |g| out.push((g.start, g.end)));
        out
    }

    #[test]
    fn segments_break_at_sentence_ends_but_not_decimals() {
        let t = "It costs $5.50 each. So 3.5 * 2 = 7.\nThen 7 - 1 = 6";
        let segs = segs_chunked(t, 1000);
        let texts: Vec<&str> = segs.iter().map(|&(a, b)| &t[a..b]).collect();
        assert_eq!(texts, vec!["It costs $5.50 each.", " So 3.5 * 2 = 7.", "Then 7 - 1 = 6"]);
        for k in [1, 2, 5] {
            assert_eq!(segs_chunked(t, k), segs);
        }
    }
}
