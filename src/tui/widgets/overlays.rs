//! Windows over the screen: help, template and session choosers, note entry, quit and exemplar
//! confirmations.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::centered;
use crate::tui::app::{App, ExemplarProposal, Overlay};
use crate::tui::exemplar::DiffLine;
use crate::tui::keymap::help;
use crate::tui::run::CompareMode;
use crate::tui::wrap::{truncate, wrap};

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let Some(o) = &app.overlay else { return };
    match o {
        Overlay::Help { scroll } => help_overlay(app, frame, area, *scroll),
        Overlay::Templates { cursor, picked } => templates(app, frame, area, *cursor, picked),
        Overlay::Sessions { entries, cursor } => sessions(app, frame, area, entries.as_deref(), *cursor),
        Overlay::Note { pane, text } => {
            let r = centered(area, 70, 5);
            let lines = vec![
                Line::from(format!("{text}▏")),
                Line::from(Span::styled("Enter keeps it · Esc cancels", app.theme.dim())),
            ];
            window(app, frame, r, format!(" Note on path {} ", pane + 1), lines);
        }
        Overlay::ConfirmQuit => {
            let r = centered(area, 52, 5);
            let lines = vec![
                Line::from("Labels or notes are not saved."),
                Line::from(vec![
                    Span::styled("y", app.theme.key()),
                    Span::raw(" quit anyway  "),
                    Span::styled("s", app.theme.key()),
                    Span::raw(" save and quit  "),
                    Span::styled("n", app.theme.key()),
                    Span::raw(" stay"),
                ]),
            ];
            window(app, frame, r, " Quit? ".into(), lines);
        }
        Overlay::Exemplar(p) => exemplar(app, frame, area, p),
    }
}

fn window(app: &App, frame: &mut Frame, r: Rect, title: String, lines: Vec<Line<'static>>) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(app.theme.border(true))
        .title(title);
    frame.render_widget(Clear, r);
    frame.render_widget(Paragraph::new(lines).block(block), r);
}

fn help_overlay(app: &App, frame: &mut Frame, area: Rect, scroll: usize) {
    let t = &app.theme;
    let r = centered(area, 100, area.height.saturating_sub(2));
    let inner_w = r.width.saturating_sub(2) as usize;
    // Keys in a column, descriptions wrapped beside them (under them when the window is narrow).
    let key_w = if inner_w >= 60 { 24 } else { 0 };
    let mut lines: Vec<Line> = Vec::new();
    for (section, keys) in help() {
        lines.push(Line::from(Span::styled(section, t.title())));
        for h in keys {
            let mut what =
                wrap(&[(h.what.to_string(), t.base())], inner_w.saturating_sub(key_w.max(4)).max(1)).into_iter();
            if key_w == 0 {
                if !h.keys.is_empty() {
                    lines.push(Line::from(Span::styled(format!("  {}", h.keys), t.key())));
                }
                for l in what {
                    let mut spans = vec![Span::raw("    ")];
                    spans.extend(l.spans);
                    lines.push(Line::from(spans));
                }
            } else {
                let first = what.next().unwrap_or_default();
                let mut spans = vec![Span::styled(format!("  {:<w$}", h.keys, w = key_w - 2), t.key())];
                spans.extend(first.spans);
                lines.push(Line::from(spans));
                for l in what {
                    let mut spans = vec![Span::raw(" ".repeat(key_w))];
                    spans.extend(l.spans);
                    lines.push(Line::from(spans));
                }
            }
        }
    }
    let scroll = scroll.min(lines.len().saturating_sub(1));
    let shown: Vec<Line> = lines.into_iter().skip(scroll).collect();
    window(app, frame, r, " Keys (Esc or ? closes, ↑↓ scroll) ".into(), shown);
}

fn list_window(app: &App, frame: &mut Frame, r: Rect, title: String, rows: Vec<(String, bool)>, cursor: usize) {
    let t = &app.theme;
    let h = r.height.saturating_sub(2) as usize;
    let w = r.width.saturating_sub(2) as usize;
    let start = cursor.saturating_sub(h.saturating_sub(1));
    let lines = rows
        .into_iter()
        .enumerate()
        .skip(start)
        .take(h)
        .map(|(i, (text, _))| {
            Line::from(Span::styled(truncate(&text, w), if i == cursor { t.selected() } else { t.base() }))
        })
        .collect();
    window(app, frame, r, title, lines);
}

fn templates(app: &App, frame: &mut Frame, area: Rect, cursor: usize, picked: &[usize]) {
    let ab = app.mode == CompareMode::Ab;
    let rows: Vec<(String, bool)> = app
        .templates
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mark = if ab {
                match picked.iter().position(|p| *p == i) {
                    Some(pos) => format!("[{}] ", (b'A' + pos as u8) as char),
                    None => "[ ] ".to_string(),
                }
            } else if i == app.template {
                "● ".to_string()
            } else {
                "  ".to_string()
            };
            (format!("{mark}{:<16} {}", e.template.name, e.template.description), false)
        })
        .collect();
    let r = centered(area, 80, (rows.len() as u16 + 2).max(4));
    let title =
        if ab { " A/B templates: Space ticks (up to 4), Enter uses them " } else { " Template: Enter uses it " };
    list_window(app, frame, r, title.into(), rows, cursor);
}

fn sessions(
    app: &App,
    frame: &mut Frame,
    area: Rect,
    entries: Option<&[crate::tui::session::SessionEntry]>,
    cursor: usize,
) {
    let title = format!(" Open a session from {} (newest first) ", app.sessions_dir.display());
    let r = centered(area, 80, area.height.saturating_sub(4).min(20));
    match entries {
        None => window(app, frame, r, title, vec![Line::from("listing…")]),
        Some([]) => window(app, frame, r, title, vec![Line::from("no saved sessions yet (s saves one)")]),
        Some(list) => list_window(app, frame, r, title, list.iter().map(|e| (e.name.clone(), false)).collect(), cursor),
    }
}

fn exemplar(app: &App, frame: &mut Frame, area: Rect, p: &ExemplarProposal) {
    let t = &app.theme;
    let entry = app.templates.get(p.template);
    let name = entry.map_or("?".to_string(), |e| e.template.name.clone());
    let file = entry.map_or(String::new(), |e| e.path.display().to_string());
    let r = centered(area, 100, area.height.saturating_sub(2));
    let w = r.width.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = Vec::new();
    match &p.new_name {
        None => lines.push(Line::from(vec![
            Span::styled("a", t.key()),
            Span::raw(format!(" append to {file}   ")),
            Span::styled("c", t.key()),
            Span::raw(" write a copy under a new name   "),
            Span::styled("Esc", t.key()),
            Span::raw(" cancel"),
        ])),
        Some(n) => {
            lines.push(Line::from(vec![Span::raw("name of the copy: "), Span::styled(format!("{n}▏"), t.key())]))
        }
    }
    lines.push(Line::default());
    let mut body: Vec<Line> = Vec::new();
    for d in &p.diff {
        let (prefix, text, style) = match d {
            DiffLine::Same(s) => ("  ", s.clone(), t.base()),
            DiffLine::Added(s) => ("+ ", s.clone(), t.diff_add()),
            DiffLine::Removed(s) => ("- ", s.clone(), t.diff_del()),
            DiffLine::Skipped(n) => ("  ", format!("… {n} unchanged lines"), t.dim()),
        };
        body.extend(wrap(&[(format!("{prefix}{text}"), style)], w));
    }
    lines.extend(body.into_iter().skip(p.scroll));
    window(app, frame, r, format!(" Add this path as an exemplar to {name}? "), lines);
}
