//! The experiments view: the setup (templates ticked, questions, name), then the grid of questions ×
//! templates with report's accuracy ± 95% interval under it, progress, and bars of failure kinds per
//! template. Everything here reads the app; the numbers come from `report` (see `app::experiments`).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::summary::fit;
use super::{footer, header, panel};
use crate::lab::detect::FailureKind;
use crate::lab::report::{self, RunReport};
use crate::tui::app::{App, ExperimentRun, RunState, Setup, SetupField};
use crate::tui::wrap::truncate;

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let [head, body, status, foot] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(1), Constraint::Length(1)])
            .areas(area);
    frame.render_widget(header::line(app, head.width), head);
    match (&app.experiments.setup, &app.experiments.run) {
        (Some(s), _) => setup(app, s, frame, body),
        (None, Some(r)) => grid_view(app, r, frame, body),
        (None, None) => {}
    }
    frame.render_widget(footer::status(app, status.width), status);
    frame.render_widget(footer::keys(app, foot.width), foot);
}

fn setup(app: &App, s: &Setup, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let list_w = (area.width / 2).clamp(20, 60);
    let [left, right] = Layout::horizontal([Constraint::Length(list_w), Constraint::Min(10)]).areas(area);
    let on_list = s.field == SetupField::Templates;
    let rows: Vec<Line> = app
        .templates
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mark = match s.picked.iter().position(|p| *p == i) {
                Some(pos) => format!("[{}] ", report::label(pos)),
                None => "[ ] ".to_string(),
            };
            let text = truncate(&format!("{mark}{}", e.template.name), list_w.saturating_sub(2) as usize);
            let style = if i == s.cursor && on_list { t.selected() } else { t.base() };
            Line::from(Span::styled(text, style))
        })
        .collect();
    let cursor = s.cursor.min(rows.len().saturating_sub(1));
    let skip = cursor.saturating_sub(left.height.saturating_sub(3) as usize);
    let list = Paragraph::new(rows.into_iter().skip(skip).collect::<Vec<_>>()).block(panel(
        t,
        " Templates (Space ticks: the grid's columns) ".into(),
        on_list,
    ));
    frame.render_widget(list, left);

    let field = |label: &str, value: String, on: bool| {
        let caret = if on { "▏" } else { "" };
        Line::from(vec![
            Span::styled(format!("{label:<10}"), t.title()),
            Span::styled(format!("{value}{caret}"), if on { t.selected() } else { t.base() }),
        ])
    };
    let st = &app.settings;
    let sp = &st.sampling;
    let stop = match &st.stop_override {
        Some(s) => crate::tui::settings::format_stops(s),
        None => "each template's own".into(),
    };
    let name =
        if s.name.trim().is_empty() { format!("{} (from the choice)", app.setup_name(s)) } else { s.name.clone() };
    let lines = vec![
        field("questions", s.questions.clone(), s.field == SetupField::Questions),
        Line::from(Span::styled("          GSM8K test rows: 0..20, 5..=9, 1,3,7", t.dim())),
        field("name", name, s.field == SetupField::Name),
        Line::from(vec![
            Span::styled(format!("{:<10}", "saved in"), t.title()),
            Span::raw(format!("{}/", app.setup_dir(s).display())),
        ]),
        Line::from(""),
        Line::from(Span::styled("Settings (the settings panel's):", t.title())),
        Line::from(format!(
            "  paths {} · temperature {} · seed {} · max new {}",
            st.paths, sp.temperature, sp.seed, sp.max_new_tokens
        )),
        Line::from(format!(
            "  top-k {} · top-p {} · calculator {} · stop {stop}",
            sp.top_k.map_or("off".into(), |k| k.to_string()),
            sp.top_p.map_or("off".into(), |p| p.to_string()),
            if st.calculator { "on" } else { "off" }
        )),
        Line::from(""),
        Line::from(Span::styled(
            "Enter runs them as one experiment, one eval JSONL file per template; a name already run resumes it",
            t.dim(),
        )),
    ];
    let p = Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false });
    frame.render_widget(p.block(panel(t, " New experiment ".into(), !on_list)), right);
}

fn grid_view(app: &App, r: &ExperimentRun, frame: &mut Frame, area: Rect) {
    let [top, rest] = Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(area);
    frame.render_widget(Paragraph::new(vec![title_line(app, r, top.width), progress_line(app, r, top.width)]), top);
    let bars_w = if rest.width >= 110 { 46 } else { 0 };
    let [grid_area, bars_area] = Layout::horizontal([Constraint::Min(20), Constraint::Length(bars_w)]).areas(rest);
    grid(app, r, frame, grid_area);
    if bars_w > 0 {
        bars(app, r, frame, bars_area);
    }
}

fn title_line(app: &App, r: &ExperimentRun, width: u16) -> Line<'static> {
    let t = &app.theme;
    let state = match &r.state {
        RunState::Opening => "opening files…".to_string(),
        RunState::Running => "● running".to_string(),
        RunState::Cancelling => "● cancelling…".to_string(),
        RunState::Done => "done".to_string(),
        RunState::Cancelled => "cancelled (run it again to resume)".to_string(),
        RunState::Failed(e) => format!("failed: {e}"),
    };
    let style = if matches!(r.state, RunState::Failed(_)) { t.status_error() } else { t.title() };
    fit(
        vec![
            Span::styled(format!(" Experiment {} ", r.name), t.title()),
            Span::styled(format!("· {state} "), style),
            Span::styled(format!("· {}/", r.dir.display()), t.dim()),
        ],
        width,
    )
}

fn progress_line(app: &App, r: &ExperimentRun, width: u16) -> Line<'static> {
    let t = &app.theme;
    let mut text = format!(" questions {}/{}", r.questions_done(), r.questions.len());
    if let Some(todo) = r.todo {
        text.push_str(&format!(" · cells this run {}/{todo}", r.finished));
    }
    text.push_str(&format!(
        " · {} path(s) each, temperature {}, seed {}",
        r.paths, r.sampling.temperature, r.sampling.seed
    ));
    if let Some(rate) = r.paths_per_s() {
        text.push_str(&format!(" · {rate:.1} paths/s"));
    }
    if r.running() {
        if let Some(eta) = r.eta_s() {
            text.push_str(&format!(" · ~{} left", duration(eta)));
        }
    }
    fit(vec![Span::styled(text, t.base())], width)
}

/// `42 s`, `3 min 5 s`, `1 h 2 min`.
fn duration(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// `18 ✓ 4/5`: the majority answer, right or wrong, and how many of the paths gave it.
fn cell_text(c: &report::Cell) -> String {
    let agree = (c.agreement * c.voters as f64).round() as usize;
    let answer = c.majority.clone().unwrap_or_else(|| "—".into());
    let mark = if c.correct { "✓" } else { "✗" };
    format!("{answer} {mark} {agree}/{}", c.paths)
}

/// `40% [12–74]`: accuracy (majority vote) with its 95% Wilson interval, in percent.
fn summary_text(run: &RunReport) -> String {
    if run.questions == 0 {
        return "—".into();
    }
    format!("{:.0}% [{:.0}–{:.0}]", run.accuracy * 100.0, run.ci_low * 100.0, run.ci_high * 100.0)
}

fn grid(app: &App, r: &ExperimentRun, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let cols = r.templates.len();
    let rows = r.rows();
    let header = std::iter::once(Cell::from("  q")).chain(std::iter::once(Cell::from("gold"))).chain(
        r.templates.iter().enumerate().map(|(i, n)| Cell::from(format!("{} {n}", report::label(i))).style(t.title())),
    );
    let body: Vec<Row> = rows
        .iter()
        .enumerate()
        .map(|(ri, &q)| {
            let gold = app.problems.get(q).map_or(String::new(), |p| p.gold.clone());
            let mut cells = vec![Cell::from(format!("{q:>3}")), Cell::from(gold)];
            for col in 0..cols {
                let (text, mut style) = match (r.cell(q, col), r.partial.get(&(col, q))) {
                    (Some(c), _) => (cell_text(c), if c.correct { t.right() } else { t.wrong() }),
                    (None, Some(n)) => (format!("⋯ {n}/{}", r.paths), t.dim()),
                    (None, None) => ("·".into(), t.dim()),
                };
                if (ri, col) == r.cursor {
                    style = style.patch(t.selected());
                }
                cells.push(Cell::from(text).style(style));
            }
            Row::new(cells)
        })
        .collect();
    let summary = std::iter::once(Cell::from("acc"))
        .chain(std::iter::once(Cell::from("95%")))
        .chain((0..cols).map(|i| Cell::from(r.report.runs.get(i).map_or("—".into(), summary_text)).style(t.title())));
    let mut widths = vec![Constraint::Length(4), Constraint::Length(6)];
    widths.extend((0..cols).map(|_| Constraint::Min(14)));
    let [table_area, sum_area] = Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(area);
    let block = panel(t, format!(" Questions × templates ({} rows) ", rows.len()), true);
    let table =
        Table::new(body, widths.clone()).header(Row::new(header.collect::<Vec<_>>())).block(block).column_spacing(1);
    let mut state = TableState::default().with_selected(Some(r.cursor.0.min(rows.len().saturating_sub(1))));
    frame.render_stateful_widget(table, table_area, &mut state);
    // The summary row stays in sight below the scrolling rows.
    let sum_block = panel(t, " Majority-vote accuracy ± 95% Wilson interval (as report) ".into(), false);
    let sum = Table::new(vec![Row::new(summary.collect::<Vec<_>>())], widths).block(sum_block).column_spacing(1);
    frame.render_widget(sum, sum_area);
}

/// Failure kinds per 100 paths, one group of bars per template (the kinds that occur somewhere).
fn bars(app: &App, r: &ExperimentRun, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let block = panel(t, " Failure kinds per 100 paths ".into(), false);
    let (shown, _) = report::occurring(&r.report, |run| &run.failures);
    if shown.is_empty() {
        let text = if r.report.runs.iter().any(|x| x.paths > 0) { "no failures found" } else { "no paths yet" };
        frame.render_widget(Paragraph::new(Span::styled(format!(" {text}"), t.dim())).block(block), area);
        return;
    }
    let groups: Vec<BarGroup> = r
        .report
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let bars: Vec<Bar> = shown
                .iter()
                .filter_map(|&k| {
                    let rate = run.failures.get(k)?;
                    let kind = FailureKind::from_name(&rate.name);
                    let style = kind.map_or(Style::default(), |k| t.failure(k));
                    Some(
                        Bar::default()
                            .value((rate.per_100_paths * 10.0).round() as u64)
                            .text_value(format!("{:.1}", rate.per_100_paths))
                            .label(Line::from(format!("{} {}", report::label(i), short(&rate.name))))
                            .style(style),
                    )
                })
                .collect();
            BarGroup::default().bars(&bars)
        })
        .collect();
    let mut chart = BarChart::default()
        .block(block)
        .direction(ratatui::layout::Direction::Horizontal)
        .bar_width(1)
        .bar_gap(0)
        .group_gap(1)
        .max(1000);
    for g in groups {
        chart = chart.data(g);
    }
    frame.render_widget(chart, area);
}

/// The kind's name short enough for a bar label.
fn short(name: &str) -> &str {
    match name {
        "missing_answer_marker" => "no marker",
        "runaway_question" => "runaway",
        "arithmetic_error" => "arithmetic",
        "question_echo" => "echo",
        "no_answer" => "no answer",
        other => other,
    }
}
