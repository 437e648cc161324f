//! Layout failures: the answer marker the model had to write (`missing_answer_marker`) and a new
//! question of its own (`runaway_question`). Both are found by scanning only the new text.

use super::repetition::clip;
use super::RawSpan;

/// `missing_answer_marker`: the prompt leaves `A:` to the model and the answer does not come after it.
/// The marker is there when the continuation opens with `A:`, or when it first finishes the question
/// (a first line ending in `?`) and the next non-blank line opens with `A:`.
#[derive(Clone, Debug, Default)]
pub struct AnswerMarker {
    enabled: bool,
    first_nonblank: Option<usize>,
    scan: usize,
    /// Some(true) once the continuation is known not to bring `A:` where it belongs.
    missing: Option<bool>,
}

impl AnswerMarker {
    pub fn new(prompt_ends_with_marker: bool) -> Self {
        Self { enabled: !prompt_ends_with_marker, ..Self::default() }
    }

    pub fn update(&mut self, text: &str, at_end: bool) {
        if !self.enabled || self.missing.is_some() {
            return;
        }
        if self.first_nonblank.is_none() {
            match text[self.scan..].char_indices().find(|(_, c)| !c.is_whitespace()) {
                Some((p, _)) => self.first_nonblank = Some(self.scan + p),
                None => self.scan = text.len(),
            }
        }
        let Some(f) = self.first_nonblank else {
            if at_end {
                self.missing = Some(true);
            }
            return;
        };
        self.missing = match opens_with_marker(&text[f..]) {
            Some(true) => Some(false),
            Some(false) => match text[f..].find('\n') {
                Some(nl) if text[f..f + nl].trim_end().ends_with('?') => {
                    let rest = &text[f + nl + 1..];
                    match rest.char_indices().find(|(_, c)| !c.is_whitespace()) {
                        Some((p, _)) => match opens_with_marker(&rest[p..]) {
                            Some(has) => Some(!has),
                            None if at_end => Some(true),
                            None => None,
                        },
                        None if at_end => Some(true),
                        None => None,
                    }
                }
                Some(_) => Some(true),
                None if at_end => Some(true),
                None => None,
            },
            None if at_end => Some(true),
            None => None,
        };
        // Resume the search for the first non-blank byte only while it is unknown.
        self.scan = self.scan.max(f);
    }

    /// The span written where the answer should have opened: from the first non-blank byte to the
    /// model's own later `A:` line, or else to the end of the first line.
    pub fn span(&self, text: &str) -> Option<RawSpan> {
        if self.missing != Some(true) {
            return None;
        }
        let Some(f) = self.first_nonblank else {
            return Some(RawSpan {
                start: 0,
                end: text.len(),
                detail: "the continuation is empty: no \"A:\"".to_string(),
            });
        };
        let rest = &text[f..];
        let (end, detail) = match rest.find("\nA:") {
            Some(p) => (f + p, "the answer does not open with \"A:\"; the model writes something else first"),
            None => (f + rest.find('\n').unwrap_or(rest.len()), "the answer does not open with \"A:\""),
        };
        let end = f + text[f..end].trim_end().len();
        Some(RawSpan { start: f, end: end.max(f), detail: detail.to_string() })
    }
}

/// Whether `s` opens with `A:`; None while too short to tell.
fn opens_with_marker(s: &str) -> Option<bool> {
    if s.len() >= 2 {
        Some(s.starts_with("A:"))
    } else if s.is_empty() || "A".starts_with(s) {
        None
    } else {
        Some(false)
    }
}

/// `runaway_question`: the first `Q:` at the start of a line or after whitespace.
#[derive(Clone, Debug, Default)]
pub struct Runaway {
    scan: usize,
    found: Option<usize>,
}

impl Runaway {
    pub fn update(&mut self, text: &str) {
        if self.found.is_some() {
            return;
        }
        // Resume one byte early so a `Q` that ended the last chunk is seen with its `:`.
        let from = self.scan.saturating_sub(1);
        let from = if text.is_char_boundary(from) { from } else { self.scan };
        if let Some(p) = crate::lab::answer::invented_question_start_from(text, from) {
            self.found = Some(p);
        }
        self.scan = text.len();
    }

    pub fn span(&self, text: &str) -> Option<RawSpan> {
        let q = self.found?;
        let end = q + text[q..].trim_end().len();
        let line = text[q..].lines().next().unwrap_or("");
        Some(RawSpan {
            start: q,
            end,
            detail: format!("the model starts a new question of its own: \"{}\"", clip(line, 60)),
        })
    }
}
