//! Word wrapping of styled text into terminal lines. Done here rather than by `Paragraph`'s wrap so the
//! line count is known (to follow a streaming path at its bottom and to scroll by lines).

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// Wraps styled segments (which may contain `\n`) to `width` columns, breaking at spaces where it can.
pub fn wrap(segments: &[(String, Style)], width: usize) -> Vec<Line<'static>> {
    wrap_cells(segments, width).into_iter().map(|l| to_line(l.into_iter().map(|(c, s, _)| (c, s)).collect())).collect()
}

/// [`wrap`], and where each segment begins on screen: (line, column) of its first character drawn
/// (None for a segment with nothing drawn, such as a bare newline).
pub fn wrap_with_origins(
    segments: &[(String, Style)],
    width: usize,
) -> (Vec<Line<'static>>, Vec<Option<(usize, usize)>>) {
    let cells = wrap_cells(segments, width);
    let mut origins = vec![None; segments.len()];
    for (y, line) in cells.iter().enumerate() {
        let mut x = 0;
        for (c, _, seg) in line {
            if origins[*seg].is_none() {
                origins[*seg] = Some((y, x));
            }
            x += c.width().unwrap_or(0);
        }
    }
    let lines = cells.into_iter().map(|l| to_line(l.into_iter().map(|(c, s, _)| (c, s)).collect())).collect();
    (lines, origins)
}

/// The wrapped lines as cells: character, style, and the segment it came from.
fn wrap_cells(segments: &[(String, Style)], width: usize) -> Vec<Vec<(char, Style, usize)>> {
    let width = width.max(1);
    let mut lines: Vec<Vec<(char, Style, usize)>> = Vec::new();
    let mut cur: Vec<(char, Style, usize)> = Vec::new();
    let mut cur_w = 0usize;
    for (seg, (text, style)) in segments.iter().enumerate() {
        for c in text.chars() {
            let c = match c {
                '\n' => {
                    lines.push(std::mem::take(&mut cur));
                    cur_w = 0;
                    continue;
                }
                '\t' => ' ',
                c if c.is_control() => continue,
                c => c,
            };
            let w = c.width().unwrap_or(0);
            if cur_w + w > width {
                if c == ' ' {
                    // A space at the break is dropped, like a word processor does.
                    lines.push(std::mem::take(&mut cur));
                    cur_w = 0;
                    continue;
                }
                match cur.iter().rposition(|(ch, _, _)| *ch == ' ') {
                    Some(sp) if sp > 0 => {
                        let rest = cur.split_off(sp + 1);
                        cur.pop();
                        lines.push(std::mem::replace(&mut cur, rest));
                        cur_w = cur.iter().map(|(ch, _, _)| ch.width().unwrap_or(0)).sum();
                    }
                    _ => {
                        lines.push(std::mem::take(&mut cur));
                        cur_w = 0;
                    }
                }
                if cur_w + w > width {
                    lines.push(std::mem::take(&mut cur));
                    cur_w = 0;
                }
            }
            cur.push((c, *style, seg));
            cur_w += w;
        }
    }
    lines.push(cur);
    lines
}

fn to_line(cells: Vec<(char, Style)>) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut buf = String::new();
    let mut style: Option<Style> = None;
    for (c, s) in cells {
        if style != Some(s) {
            if let Some(st) = style {
                spans.push(Span::styled(std::mem::take(&mut buf), st));
            }
            style = Some(s);
        }
        buf.push(c);
    }
    if let Some(st) = style {
        spans.push(Span::styled(buf, st));
    }
    Line::from(spans)
}

/// Cuts `s` to at most `width` columns, ending with `…` when cut.
pub fn truncate(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    let total: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= width {
        return s.to_string();
    }
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    #[test]
    fn wraps_at_spaces_and_keeps_newlines() {
        let s = vec![("one two three\nfour".to_string(), Style::default())];
        assert_eq!(plain(&wrap(&s, 8)), vec!["one two", "three", "four"]);
    }

    #[test]
    fn breaks_long_words_and_survives_width_one() {
        let s = vec![("abcdefghij".to_string(), Style::default())];
        assert_eq!(plain(&wrap(&s, 4)), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap(&s, 1).len(), 10);
        assert_eq!(wrap(&s, 0).len(), 10);
    }

    #[test]
    fn keeps_styles_across_a_break() {
        let red = Style::default().fg(ratatui::style::Color::Red);
        let s = vec![("aa ".to_string(), Style::default()), ("bb cc".to_string(), red)];
        let lines = wrap(&s, 5);
        assert_eq!(plain(&lines), vec!["aa bb", "cc"]);
        assert_eq!(lines[1].spans[0].style, red);
    }

    #[test]
    fn origins_say_where_each_segment_starts() {
        let s: Vec<(String, Style)> =
            ["aa ", "bb ", "cc", "\n", "dd"].iter().map(|t| (t.to_string(), Style::default())).collect();
        let (lines, origins) = wrap_with_origins(&s, 5);
        assert_eq!(plain(&lines), vec!["aa bb", "cc", "dd"]);
        assert_eq!(origins, vec![Some((0, 0)), Some((0, 3)), Some((1, 0)), None, Some((2, 0))]);
    }

    #[test]
    fn wide_characters_count_two_columns() {
        let s = vec![("日本語".to_string(), Style::default())];
        assert_eq!(plain(&wrap(&s, 4)), vec!["日本", "語"]);
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("hello world", 6), "hello…");
        assert_eq!(truncate("hi", 6), "hi");
        assert_eq!(truncate("hello", 0), "");
    }
}
