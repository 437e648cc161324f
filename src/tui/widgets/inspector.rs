//! The token inspector beside the panes (`v`): the token under the cursor, its probability, the
//! alternatives the model considered with theirs, the step's entropy; in the branch picker, the row
//! `b` would branch with. The path tree (`T`) shares the column.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::panes::{pane_label, short_p};
use crate::tui::app::App;
use crate::tui::generation::branch_token_text;
use crate::tui::generation::Generation;
use crate::tui::wrap::truncate;

/// The side column: the inspector (while the cursor is up) above the tree (while it is shown).
pub fn draw_side(app: &App, run: &Generation, frame: &mut Frame, area: Rect) {
    frame.render_widget(Clear, area);
    match (app.tokens.cursor.is_some(), app.tokens.tree) {
        (true, true) => {
            let h = inspector_lines(app, run, area.width).len() as u16 + 2;
            let [top, bottom] = Layout::vertical([Constraint::Max(h), Constraint::Min(3)]).areas(area);
            draw(app, run, frame, top);
            super::tree::draw(app, run, frame, bottom);
        }
        (true, false) => draw(app, run, frame, area),
        (false, _) => super::tree::draw(app, run, frame, area),
    }
}

pub fn draw(app: &App, run: &Generation, frame: &mut Frame, area: Rect) {
    let token = app.tokens.cursor.as_ref().map_or(0, |c| c.token);
    let title = format!(" Token {} of path {} ", token + 1, pane_label(run, app.pane));
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(app.theme.border(true))
        .title(title);
    frame.render_widget(Paragraph::new(inspector_lines(app, run, area.width)).block(block), area);
}

/// What the inspector says, line by line, for a window `width` wide.
pub fn inspector_lines(app: &App, run: &Generation, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    let w = width.saturating_sub(2) as usize;
    let Some(cursor) = app.tokens.cursor.as_ref() else { return Vec::new() };
    let Some(p) = run.panes.get(app.pane) else { return Vec::new() };
    let k = cursor.token;
    let step = p.steps.get(k);
    let own = p.token_ids.get(k).copied();
    let text = branch_token_text(p, k);
    let mut lines = vec![Line::from(vec![
        Span::styled(truncate(&format!("{text:?}"), w.saturating_sub(22).max(6)), t.title()),
        Span::raw(match step.and_then(|s| s.logprob) {
            Some(lp) => format!("  p {}  logp {lp:.3}", short_p((lp as f64).exp())),
            None => "  p unknown".to_string(),
        }),
    ])];
    let mut facts = Vec::new();
    if let Some(e) = step.and_then(|s| s.entropy) {
        facts.push(format!("entropy {e:.2} nats"));
    } else if step.is_some_and(|s| !s.top.is_empty()) {
        facts.push("entropy unknown".to_string());
    }
    if step.is_some_and(|s| s.forced) {
        facts.push("written by the calculator".to_string());
    }
    if p.branch.as_ref().is_some_and(|b| b.at == k) {
        facts.push("the branch point".to_string());
    }
    if !facts.is_empty() {
        lines.push(Line::from(Span::styled(truncate(&facts.join(" · "), w), t.dim())));
    }
    let top = step.map(|s| s.top.as_slice()).unwrap_or_default();
    if top.is_empty() {
        lines.push(Line::from(Span::styled("no alternatives recorded for this token", t.dim())));
        return lines;
    }
    lines.push(Line::from(Span::styled(format!("Alternatives (top {})", top.len()), t.title())));
    let bar_w = w.saturating_sub(24).min(12);
    for (row, alt) in top.iter().enumerate() {
        let picked = cursor.pick == Some(row);
        let chosen = alt.id.is_some() && alt.id == own;
        let prob = (alt.logprob as f64).exp();
        let bar = "█".repeat(((prob * bar_w as f64).round() as usize).min(bar_w));
        let label = truncate(&format!("{:?}", alt.text), 12);
        let pct = if prob < 0.001 { "<0.1%".to_string() } else { format!("{:.1}%", prob * 100.0) };
        let line =
            format!("{}{} {label:<12} {pct:>6} {bar}", if picked { "▸" } else { " " }, if chosen { "●" } else { " " });
        let style = if picked { t.selected() } else { t.base() };
        lines.push(Line::from(Span::styled(truncate(&line, w), style)));
    }
    if let Some(pick) = cursor.pick {
        let style = if pick >= top.len() { t.selected() } else { t.base() };
        let marker = if pick >= top.len() { "▸" } else { " " };
        lines.push(Line::from(Span::styled(format!("{marker} ↻ resample from here"), style)));
        lines.push(Line::from(Span::styled("Enter/b: branch with it · Esc: back", t.dim())));
    } else if let Some(why) = run.cannot_branch(app.pane) {
        lines.push(Line::from(Span::styled(truncate(&why, w), t.dim())));
    } else {
        lines.push(Line::from(Span::styled("● the path's token · b: branch here", t.dim())));
    }
    lines
}
