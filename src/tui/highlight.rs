//! Turns a path's text and its detected failures into styled segments: each failure span in its kind's
//! style, zero-width findings (no answer, missing `A:`) as a badge, and with `NO_COLOR` text markers
//! around every span so kinds stay apart without colour.

use std::ops::Range;

use ratatui::style::Style;

use super::theme::Theme;
use crate::lab::detect::{Failure, FailureKind};
use crate::lab::labels::Label;

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

/// A token drawn in a style of its own over the text (its probability, the cursor).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenMark {
    /// Byte range of the text.
    pub range: Range<usize>,
    pub style: Style,
    /// Drawn over the failure highlights (the cursor); else under them.
    pub over: bool,
    /// With NO_COLOR: wrapped in `⟦tag …⟧`.
    pub tag: Option<String>,
}

/// Styled segments of `text` with `failures` (byte spans into `text`) highlighted, and tokens (`marks`,
/// in order, not overlapping) styled too; also returns, per mark, the index of the first segment of its
/// text (where the token starts on screen).
pub fn highlight_tokens(
    text: &str,
    failures: &[Failure],
    theme: &Theme,
    base: Style,
    marks: &[TokenMark],
) -> (Vec<(String, Style)>, Vec<Option<usize>>) {
    let mut out: Vec<(String, Style)> = Vec::new();
    let mut first = vec![None; marks.len()];
    let mut mi = 0usize;
    for piece in pieces(text, failures, theme, base) {
        let (r, kind) = match piece {
            Piece::Marker(m, style) => {
                out.push((m, style));
                continue;
            }
            Piece::Text(r, kind) => (r, kind),
        };
        let failure = kind.map(|k| theme.failure(k));
        let mut pos = r.start;
        while pos < r.end {
            while marks.get(mi).is_some_and(|m| m.range.end <= pos) {
                mi += 1;
            }
            let mark = marks.get(mi).filter(|m| m.range.start <= pos && pos < m.range.end);
            let end = match (mark, marks.get(mi)) {
                (Some(m), _) => m.range.end.min(r.end),
                (None, Some(m)) if m.range.start > pos => m.range.start.min(r.end),
                _ => r.end,
            };
            let end = floor_boundary(text, end).max(pos + text[pos..].chars().next().map_or(1, char::len_utf8));
            let end = end.min(r.end);
            let mut style = base;
            if let Some(m) = mark.filter(|m| !m.over) {
                style = style.patch(m.style);
            }
            if let Some(f) = failure {
                style = style.patch(f);
            }
            if let Some(m) = mark.filter(|m| m.over) {
                style = style.patch(m.style);
            }
            if let Some(m) = mark {
                if pos == m.range.start {
                    first[mi] = Some(out.len());
                    if let (Some(tag), true) = (&m.tag, theme.markers()) {
                        out.push((format!("⟦{tag} "), style));
                    }
                }
            }
            out.push((text[pos..end].to_string(), style));
            if let Some(m) = mark {
                if end == m.range.end && m.tag.is_some() && theme.markers() {
                    out.push(("⟧".into(), style));
                }
            }
            pos = end;
        }
    }
    (out, first)
}

/// A stretch of the text (with the failure kind whose style it takes) or a marker drawn between.
enum Piece {
    Text(Range<usize>, Option<FailureKind>),
    Marker(String, Style),
}

/// The text cut where failures begin and end, with their markers and badges.
fn pieces(text: &str, failures: &[Failure], theme: &Theme, base: Style) -> Vec<Piece> {
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

    let mut out: Vec<Piece> = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    let mut pos = 0usize;
    let mut bi = 0usize;
    let style_now = |active: &Vec<usize>| -> Option<FailureKind> {
        active.iter().min_by_key(|i| (priority(failures[**i].kind), **i)).map(|i| failures[*i].kind)
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
            out.push(Piece::Text(pos..next, style_now(&active)));
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
                out.push(Piece::Marker("⟧".into(), base.patch(theme.failure(failures[i].kind))));
            }
            pi += 1;
        }
        while let Some(&(p, i)) = badges.get(bi) {
            if p != pos {
                break;
            }
            out.push(Piece::Marker(badge(failures[i].kind), base.patch(theme.failure(failures[i].kind))));
            bi += 1;
        }
        while let Some(&(p, true, i)) = points.get(pi) {
            if p != pos {
                break;
            }
            active.push(i);
            if theme.markers() {
                let tag = Label::from_kind(failures[i].kind).tag();
                out.push(Piece::Marker(format!("⟦{tag} "), base.patch(theme.failure(failures[i].kind))));
            }
            pi += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn highlight(text: &str, failures: &[Failure], theme: &Theme, base: Style) -> Vec<(String, Style)> {
        highlight_tokens(text, failures, theme, base, &[]).0
    }

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
    fn tokens_take_their_style_under_failures_and_the_cursor_over_them() {
        let t = Theme::color();
        let red = Style::default().fg(ratatui::style::Color::Red);
        let cursor = t.selected();
        let marks = [
            TokenMark { range: 0..2, style: red, over: false, tag: None },
            TokenMark { range: 2..6, style: red, over: false, tag: None },
            TokenMark { range: 6..9, style: cursor, over: true, tag: None },
        ];
        let arith = t.failure(FailureKind::ArithmeticError);
        let (segs, first) =
            highlight_tokens("2 + 2 = 5. ok", &[f(FailureKind::ArithmeticError, 4, 9)], &t, Style::default(), &marks);
        assert_eq!(text_of(&segs), "2 + 2 = 5. ok");
        assert_eq!(segs[0], ("2 ".to_string(), red));
        assert_eq!(segs[1], ("+ ".to_string(), red));
        assert_eq!(segs[2], ("2 ".to_string(), red.patch(arith)), "the failure wins over the probability");
        assert_eq!(segs[3], ("= 5".to_string(), arith.patch(cursor)), "the cursor wins over the failure");
        assert_eq!(segs[4], (". ok".to_string(), Style::default()));
        assert_eq!(first, vec![Some(0), Some(1), Some(3)]);
    }

    #[test]
    fn no_color_tags_low_tokens() {
        let marks = [TokenMark { range: 4..7, style: Style::default(), over: false, tag: Some("p=0.03".into()) }];
        let (segs, _) = highlight_tokens("abc the x", &[], &Theme::no_color(), Style::default(), &marks);
        assert_eq!(text_of(&segs), "abc ⟦p=0.03 the⟧ x");
        // With colour, no tags.
        let (segs, _) = highlight_tokens("abc the x", &[], &Theme::color(), Style::default(), &marks);
        assert_eq!(text_of(&segs), "abc the x");
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
