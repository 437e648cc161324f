//! The path tree (`T`): every path and branch of the run, branches under their parents, each with
//! where it branched, its answer and whether it is right.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use ratatui::Frame;

use super::panes::pane_label;
use crate::lab::path_tree::tree_order;
use crate::tui::app::App;
use crate::tui::generation::Generation;

pub fn draw(app: &App, run: &Generation, frame: &mut Frame, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(app.theme.border(false))
        .title(" Path tree (T) ");
    frame.render_widget(Paragraph::new(tree_lines(app, run, area.width)).block(block), area);
}

/// One line per path, in tree order, for a window `width` wide.
pub fn tree_lines(app: &App, run: &Generation, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    let w = width.saturating_sub(2) as usize;
    let parents: Vec<Option<usize>> =
        run.panes.iter().map(|p| p.branch.as_ref().map(|b| b.parent.saturating_sub(1))).collect();
    tree_order(&parents)
        .into_iter()
        .map(|(i, depth)| {
            let p = &run.panes[i];
            let indent = if depth == 0 { String::new() } else { format!("{}└ ", "  ".repeat(depth - 1)) };
            let mut head = format!("{indent}{}", pane_label(run, i));
            if let Some(b) = &p.branch {
                let to = if b.token.is_some() { format!("{:?}", b.to_text) } else { "↻".to_string() };
                head.push_str(&format!(" @{} {:?}→{to}", b.at + 1, b.from_text));
            }
            let style = if i == app.pane { t.selected() } else { t.base() };
            let mut spans = vec![Span::styled(head, style)];
            match &p.answer {
                Some(a) => {
                    spans.push(Span::raw(format!(" ans {a} ")));
                    spans.push(if run.correct(Some(a)) == Some(true) {
                        Span::styled("✓", t.right())
                    } else {
                        Span::styled("✗", t.wrong())
                    });
                }
                None if p.finished() => spans.push(Span::styled(" —", t.dim())),
                None => spans.push(Span::styled(" …", t.dim())),
            }
            if let Some(m) = p.mean_logprob() {
                spans.push(Span::styled(format!(" lp {m:.2}"), t.dim()));
            }
            fit(spans, w)
        })
        .collect()
}

/// Cuts styled spans to `w` columns.
fn fit(spans: Vec<Span<'static>>, w: usize) -> Line<'static> {
    super::summary::fit(spans, u16::try_from(w).unwrap_or(u16::MAX))
}
