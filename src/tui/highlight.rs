//! Turns a path's text and its detected failures into styled segments: each failure span in its kind's
//! style, zero-width findings (no answer, missing `A:`) as a badge, and with `NO_COLOR` text markers
//! around every span so kinds stay apart without colour.

use ratatui::style::Style;

use super::labels::Label;
use super::theme::Theme;
use crate::lab::detect::{Failure, FailureKind};

/// Which style wins where spans overlap: the most specific finding first.
fn priority(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::ArithmeticError => 0,
        FailureKind::QuestionEcho => 1,
        FailureKind::Repetition => 2,
        FailureKind::RunawayQuestion => 3,
        FailureKind::MissingAnswerMarker => 4,
        FailureKind::NoAnswer => 5,
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A badge for a finding that has no text of its own (or that the human should notice at a glance).
pub fn badge(kind: FailureKind) -> String {
    format!("⟦{}⟧", Label::from_kind(kind).tag())
}

/// Styled segments of `text` with `failures` (byte spans into `text`) highlighted.
pub fn highlight(text: &str, failures: &[Failure], theme: &Theme, base: Style) -> Vec<(String, Style)> {
    // (position, is_open, failure index); closes sort before opens at the same position.
    let mut points: Vec<(usize, bool, usize)> = Vec::new();
    let mut badges: Vec<(usize, usize)> = Vec::new();
    for (i, f) in failures.iter().enumerate() {
        let end = floor_boundary(text, f.end.max(f.start));
        // "No answer" is about the whole path; colouring all of it would drown the other findings, so it
        // is a badge where the answer should have been.
        let start = if f.kind == FailureKind::NoAnswer { end } else { floor_boundary(text, f.start) };
        if start == end {
            badges.push((start, i));
        } else {
            points.push((start, true, i));
            points.push((end, false, i));
        }
    }
    points.sort_by_key(|(p, open, i)| (*p, *open, *i));
    badges.sort();

    let mut out: Vec<(String, Style)> = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    let mut pos = 0usize;
    let mut bi = 0usize;
    let style_now = |active: &Vec<usize>| -> Style {
        active
            .iter()
            .min_by_key(|i| (priority(failures[**i].kind), **i))
            .map_or(base, |i| base.patch(theme.failure(failures[*i].kind)))
    };
    let mut pi = 0usize;
    loop {
        let next_point = points.get(pi).map(|p| p.0);
        let next_badge = badges.get(bi).map(|b| b.0);
        let next = match (next_point, next_badge) {
            (None, None) => text.len(),
            (a, b) => a.unwrap_or(usize::MAX).min(b.unwrap_or(usize::MAX)),
        };
        if next > pos {
            out.push((text[pos..next].to_string(), style_now(&active)));
            pos = next;
        }
        if next_point.is_none() && next_badge.is_none() {
            break;
        }
        // Closing markers first, then badges, then opening markers at this position.
        while let Some(&(p, false, i)) = points.get(pi) {
            if p != pos {
                break;
            }
            active.retain(|a| *a != i);
            if theme.markers() {
                out.push(("⟧".into(), base.patch(theme.failure(failures[i].kind))));
            }
            pi += 1;
        }
        while let Some(&(p, i)) = badges.get(bi) {
            if p != pos {
                break;
            }
            out.push((badge(failures[i].kind), base.patch(theme.failure(failures[i].kind))));
            bi += 1;
        }
        while let Some(&(p, true, i)) = points.get(pi) {
            if p != pos {
                break;
            }
            active.push(i);
            if theme.markers() {
                let tag = Label::from_kind(failures[i].kind).tag();
                out.push((format!("⟦{tag} "), base.patch(theme.failure(failures[i].kind))));
            }
            pi += 1;
        }
    }
    out.retain(|(s, _)| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(kind: FailureKind, start: usize, end: usize) -> Failure {
        Failure { kind, start, end, detail: String::new() }
    }

    fn text_of(segs: &[(String, Style)]) -> String {
        segs.iter().map(|s| s.0.as_str()).collect()
    }

    #[test]
    fn spans_get_their_kind_style_and_the_rest_stays_plain() {
        let t = Theme::color();
        let segs = highlight("2 + 2 = 5. ok", &[f(FailureKind::ArithmeticError, 0, 9)], &t, Style::default());
        assert_eq!(segs[0], ("2 + 2 = 5".to_string(), t.failure(FailureKind::ArithmeticError)));
        assert_eq!(segs[1], (". ok".to_string(), Style::default()));
    }

    #[test]
    fn no_color_adds_tagged_markers_and_badges() {
        let t = Theme::no_color();
        let fs = [f(FailureKind::Repetition, 4, 11), f(FailureKind::NoAnswer, 11, 11)];
        let segs = highlight("abc the the x", &fs, &t, Style::default());
        assert_eq!(text_of(&segs), "abc ⟦rep the the⟧⟦noans⟧ x");
    }

    #[test]
    fn overlapping_and_out_of_range_spans_do_not_panic() {
        let t = Theme::no_color();
        let fs = [
            f(FailureKind::Repetition, 0, 8),
            f(FailureKind::ArithmeticError, 3, 50),
            f(FailureKind::NoAnswer, 99, 99),
        ];
        let segs = highlight("é 1+1=3", &fs, &t, Style::default());
        let plain: String = text_of(&segs).replace(['⟦', '⟧'], "");
        assert!(plain.contains("1+1=3"));
        // Mid-character offsets are floored to a boundary.
        let segs = highlight("éé", &[f(FailureKind::Repetition, 1, 3)], &Theme::color(), Style::default());
        assert_eq!(text_of(&segs), "éé");
    }
}
