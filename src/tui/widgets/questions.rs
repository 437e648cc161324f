//! The question list: index, start of the question, gold answer; filter and jump shown in the title.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::panel;
use crate::tui::app::{App, Focus};
use crate::tui::wrap::truncate;

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let q = &app.questions;
    let total = app.problems.len();
    let mut title = if q.filter.is_empty() {
        format!(" Questions {total} ")
    } else {
        format!(" Questions {}/{total} ", q.visible.len())
    };
    if !q.jump.is_empty() {
        title.push_str(&format!("· jump {} ", q.jump));
    }
    let block = panel(t, title, app.focus == Focus::Questions);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let show_filter = q.filtering || !q.filter.is_empty();
    let rows = inner.height.saturating_sub(u16::from(show_filter)) as usize;
    let w = inner.width as usize;
    let n = q.visible.len();
    // Keep the selection in the middle of the window (stateless, so it needs no scroll offset).
    let start = q.selected.saturating_sub(rows / 2).min(n.saturating_sub(rows));
    let mut lines: Vec<Line> = Vec::new();
    for (pos, &idx) in q.visible.iter().enumerate().skip(start).take(rows) {
        let Some(p) = app.problems.get(idx) else { continue };
        let gold = truncate(&p.gold, 8);
        let num = format!("{idx:>4} ");
        let room = w.saturating_sub(num.width() + gold.width() + 1);
        let text = truncate(&p.question.replace('\n', " "), room);
        let pad = room.saturating_sub(text.width());
        let row = format!("{num}{text}{} {gold}", " ".repeat(pad));
        let style = if pos == q.selected { t.selected() } else { t.base() };
        lines.push(Line::from(Span::styled(truncate(&row, w), style)));
    }
    if n == 0 {
        lines.push(Line::from(Span::styled("no question matches", t.dim())));
    }
    if show_filter {
        while lines.len() < rows {
            lines.push(Line::default());
        }
        let cursor = if q.filtering { "▏" } else { "" };
        lines.push(Line::from(Span::styled(truncate(&format!("/{}{cursor}", q.filter), w), t.key())));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
