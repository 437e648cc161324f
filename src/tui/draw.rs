//! The frame: a pure function of the app's state. Wide terminals show every panel; small ones (under
//! 80x24) show the focused panel only, with a tab line naming the others.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::app::{App, Focus};
use super::widgets::{experiments, footer, header, overlays, panes, prompt, questions, settings, summary};

/// Below this the full layout does not fit; one panel at a time.
const FULL_MIN: (u16, u16) = (80, 24);

pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < 12 || area.height < 4 {
        frame.render_widget(Paragraph::new("too small"), area);
        return;
    }
    if app.experiments_shown() {
        experiments::draw(app, frame, area);
    } else if area.width < FULL_MIN.0 || area.height < FULL_MIN.1 {
        draw_compact(app, frame, area);
    } else {
        draw_full(app, frame, area);
    }
    overlays::draw(app, frame, area);
}

/// The rows of the full layout: header, top panels, paths, vote, legend, status, keys.
fn full_rows(area: Rect) -> [Rect; 7] {
    let top_h = (area.height * 2 / 5).clamp(8, 18);
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(top_h),
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// Text width inside the focused path pane on a `screen` (columns, rows) terminal, as `draw` lays it out.
pub fn focused_pane_width(app: &App, screen: (u16, u16)) -> Option<usize> {
    let area = Rect::new(0, 0, screen.0, screen.1);
    if area.width < 12 || area.height < 4 {
        return None;
    }
    let paths = if area.width < FULL_MIN.0 || area.height < FULL_MIN.1 {
        if app.focus != Focus::Paths {
            return None;
        }
        compact_rows(app, area)[1]
    } else {
        full_rows(area)[2]
    };
    panes::focused_width(app, paths)
}

fn draw_full(app: &App, frame: &mut Frame, area: Rect) {
    let [head, top, paths, vote, legend, status, foot] = full_rows(area);
    frame.render_widget(header::line(app, head.width), head);
    let q_w = (area.width * 3 / 10).clamp(28, 48);
    let s_w = 30.min(area.width / 4);
    let [qa, pa, sa] =
        Layout::horizontal([Constraint::Length(q_w), Constraint::Min(20), Constraint::Length(s_w)]).areas(top);
    questions::draw(app, frame, qa);
    prompt::draw(app, frame, pa);
    settings::draw(app, frame, sa);
    panes::draw(app, frame, paths);
    frame.render_widget(summary::vote_line(app, vote.width), vote);
    frame.render_widget(summary::legend(app), legend);
    frame.render_widget(footer::status(app, status.width), status);
    frame.render_widget(footer::keys(app, foot.width), foot);
}

/// The rows of the compact layout: tabs, the focused panel, vote, status, keys.
fn compact_rows(app: &App, area: Rect) -> [Rect; 5] {
    let show_vote = app.focus == Focus::Paths && app.generation.is_some() && area.height >= 10;
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(u16::from(show_vote)),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

fn draw_compact(app: &App, frame: &mut Frame, area: Rect) {
    let show_vote = app.focus == Focus::Paths && app.generation.is_some() && area.height >= 10;
    let [tabs, body, vote, status, foot] = compact_rows(app, area);
    frame.render_widget(tab_line(app), tabs);
    match app.focus {
        Focus::Questions => questions::draw(app, frame, body),
        Focus::Prompt => prompt::draw(app, frame, body),
        Focus::Settings => settings::draw(app, frame, body),
        Focus::Paths => panes::draw(app, frame, body),
    }
    if show_vote {
        frame.render_widget(summary::vote_line(app, vote.width), vote);
    }
    frame.render_widget(footer::status(app, status.width), status);
    frame.render_widget(footer::keys(app, foot.width), foot);
}

/// "Questions │ Prompt │ Settings │ Paths" with the focused one marked (small terminals).
fn tab_line(app: &App) -> Line<'static> {
    let t = &app.theme;
    let mut spans = Vec::new();
    for (i, f) in Focus::ALL.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled("│", t.dim()));
        }
        let name = if *f == Focus::Paths && app.generating() { "Paths●" } else { f.title() };
        if *f == app.focus {
            spans.push(Span::styled(format!("[{name}]"), t.selected()));
        } else {
            spans.push(Span::raw(format!(" {name} ")));
        }
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod experiments_tests;
