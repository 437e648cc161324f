//! The generation panes: side by side, a grid when narrow, a page of them when even that does not fit.
//! Each shows its header (path, tokens, tokens/s, answer ✓/✗, stop reason), the end of the prompt
//! (dimmed) followed by the generated text with failures highlighted, and a line of labels and note.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use ratatui::Frame;

use super::panel;
use crate::engine::StopReason;
use crate::lab::record::CompareMode;
use crate::tui::app::{App, Focus};
use crate::tui::generation::{Generation, Pane};
use crate::tui::highlight::{highlight_tokens, TokenMark};
use crate::tui::theme::LOW_P;
use crate::tui::wrap::{truncate, wrap_with_origins};

const MIN_W: u16 = 30;
const MIN_H: u16 = 6;

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let Some(run) = &app.generation else {
        let block = panel(t, " Paths ".into(), app.focus == Focus::Paths);
        let msg = match &app.model {
            crate::tui::app::ModelState::Loading => "loading model… (pick a question meanwhile)",
            _ => "Enter generates: the paths stream here side by side",
        };
        frame.render_widget(Paragraph::new(msg).style(t.dim()).block(block), area);
        return;
    };
    if run.panes.is_empty() || area.width == 0 || area.height == 0 {
        return;
    }
    let (area, side) = split_side(app, area);
    if let Some(side) = side {
        super::inspector::draw_side(app, run, frame, side);
    }
    let (cells, paged) = grid(app, run, area);
    for (i, cell) in cells {
        draw_pane(app, run, i, paged, frame, cell);
    }
}

/// The panes' area and, while the inspector or the tree is up, the column (or, when narrow, the band
/// at the bottom) beside them.
pub(crate) fn split_side(app: &App, area: Rect) -> (Rect, Option<Rect>) {
    if app.tokens.cursor.is_none() && !app.tokens.tree {
        return (area, None);
    }
    if area.width >= 70 {
        let w = (area.width / 3).clamp(30, 44);
        let [panes, side] = Layout::horizontal([Constraint::Min(20), Constraint::Length(w)]).areas(area);
        (panes, Some(side))
    } else {
        let h = (area.height / 2).min(12);
        let [panes, side] = Layout::vertical([Constraint::Min(3), Constraint::Length(h)]).areas(area);
        (panes, Some(side))
    }
}

/// Where each shown pane goes: side by side, a grid when narrow, a page of them when even that does
/// not fit (true: paged).
pub(crate) fn grid(app: &App, run: &Generation, area: Rect) -> (Vec<(usize, Rect)>, bool) {
    let n = run.panes.len();
    if n == 0 || area.width == 0 || area.height == 0 {
        return (Vec::new(), false);
    }
    let max_cols = (area.width / MIN_W).max(1) as usize;
    let max_rows = (area.height / MIN_H).max(1) as usize;
    let per_page = (max_cols * max_rows).min(n);
    let rows = n.div_ceil(max_cols).min(max_rows);
    let cols = per_page.div_ceil(rows).max(1);
    let page = app.pane.min(n - 1) / per_page;
    let first = page * per_page;
    let shown: Vec<usize> = (first..(first + per_page).min(n)).collect();
    let row_areas = Layout::vertical(vec![Constraint::Ratio(1, rows as u32); rows]).split(area);
    let mut out = Vec::new();
    for (r, row_area) in row_areas.iter().enumerate() {
        let in_row: Vec<usize> = shown.iter().skip(r * cols).take(cols).copied().collect();
        if in_row.is_empty() {
            continue;
        }
        let cells = Layout::horizontal(vec![Constraint::Ratio(1, cols as u32); cols]).split(*row_area);
        out.extend(in_row.iter().enumerate().map(|(c, &i)| (i, cells[c])));
    }
    (out, per_page < n)
}

/// Text width inside the focused pane when the paths get `area`.
pub(crate) fn focused_width(app: &App, area: Rect) -> Option<usize> {
    let run = app.generation.as_ref()?;
    let (area, _) = split_side(app, area);
    let (cells, _) = grid(app, run, area);
    cells.into_iter().find(|(i, _)| *i == app.pane).map(|(_, r)| r.width.saturating_sub(2) as usize)
}

/// Where each token of the focused pane starts when its text is wrapped to `width`: (line, column);
/// None for tokens that show no text.
pub(crate) fn token_positions(app: &App, width: usize) -> Vec<Option<(usize, usize)>> {
    let Some(run) = app.generation.as_ref() else { return Vec::new() };
    if run.panes.get(app.pane).is_none() {
        return Vec::new();
    }
    let (segs, firsts) = body(app, run, app.pane);
    let (_, origins) = wrap_with_origins(&segs, width);
    firsts.iter().map(|f| f.and_then(|s| origins.get(s).copied().flatten())).collect()
}

/// A pane's body: the end of the prompt, then the text with failures (and, when asked, each token's
/// probability and the token cursor) highlighted; with the segment each token starts in.
fn body(app: &App, run: &Generation, i: usize) -> (Vec<(String, Style)>, Vec<Option<usize>>) {
    let t = &app.theme;
    let p = &run.panes[i];
    let spec = run.prompts.get(p.prompt);
    let tail = spec.map(|s| prompt_tail(&s.prompt)).unwrap_or_default();
    let mut segs = vec![(tail, t.prompt_text())];
    let cursor = app.tokens.cursor.as_ref().filter(|_| i == app.pane).map(|c| c.token);
    let branch_at = p.branch.as_ref().map(|b| b.at);
    let forced = p.steps.iter().any(|s| s.forced);
    let marks: Vec<TokenMark> = if app.tokens.probs || cursor.is_some() || branch_at.is_some() || forced {
        p.token_spans()
            .into_iter()
            .enumerate()
            .map(|(k, range)| {
                let prob = p.steps.get(k).and_then(|s| s.prob()).filter(|_| app.tokens.probs);
                let mut style = prob.map_or(Style::default(), |x| t.token_prob(x));
                if p.steps.get(k).is_some_and(|s| s.forced) {
                    style = t.forced();
                }
                if branch_at == Some(k) {
                    // Where the branch leaves its parent.
                    style = style.add_modifier(Modifier::UNDERLINED);
                }
                let tag = prob.filter(|x| *x < LOW_P).map(|x| format!("p={}", short_p(x)));
                let over = cursor == Some(k);
                if over {
                    style = t.token_cursor();
                }
                TokenMark { range, style, over, tag }
            })
            .collect()
    } else {
        Vec::new()
    };
    let (text, firsts) = highlight_tokens(&p.text, &p.failures, t, t.generated(), &marks);
    let firsts = firsts.into_iter().map(|f| f.map(|s| s + 1)).collect();
    segs.extend(text);
    if p.token_ids.is_empty() && !p.finished() {
        let waiting = if p.started_ms.is_some() {
            " …"
        } else if run.cancelling {
            " (cancelling)"
        } else {
            " (waiting for the prompt)"
        };
        segs.push((waiting.to_string(), t.dim()));
    } else if !p.finished() {
        segs.push(("▌".to_string(), t.dim()));
    }
    (segs, firsts)
}

/// A probability in two decimals, or `<0.01`.
pub(crate) fn short_p(p: f64) -> String {
    if p < 0.005 {
        "<0.01".to_string()
    } else {
        format!("{p:.2}")
    }
}

fn draw_pane(app: &App, run: &Generation, i: usize, paged: bool, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let p = &run.panes[i];
    let focused = i == app.pane;
    let name = match run.mode {
        CompareMode::SelfConsistency if paged => format!(" {}/{}", i + 1, run.panes.len()),
        CompareMode::SelfConsistency => format!(" {}", i + 1),
        // A/B grid: the template's letter and the path's number within it (B2: path 2 of template B).
        CompareMode::Ab => {
            let name = run.prompts.get(p.prompt).map_or("?", |s| s.template.as_str());
            format!(" {}{} {}", (b'A' + (p.prompt % 26) as u8) as char, p.path + 1, name)
        }
    };
    let title = title_line(app, run, p, name, area.width.saturating_sub(2) as usize);
    // The focused pane is thick; coloured too while the paths panel has the keys.
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(if focused { BorderType::Thick } else { BorderType::Plain })
        .border_style(t.border(focused && app.focus == Focus::Paths))
        .title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let w = inner.width as usize;
    let footer = footer_line(app, p, w);
    let body_h = (inner.height as usize).saturating_sub(usize::from(footer.is_some())).max(1);

    let (segs, firsts) = body(app, run, i);
    let (lines, origins) = wrap_with_origins(&segs, w);
    let max_top = lines.len().saturating_sub(body_h);
    let mut top = max_top.saturating_sub(p.scroll_up);
    // The token cursor stays in view (its pane scrolls to it).
    let cursor_line = app.tokens.cursor.as_ref().filter(|_| focused).and_then(|c| {
        let seg = firsts.get(c.token).copied().flatten()?;
        origins.get(seg).copied().flatten().map(|(line, _)| line)
    });
    if let Some(line) = cursor_line.filter(|l| *l < top || *l >= top + body_h) {
        top = line.saturating_sub(body_h / 2).min(max_top);
    }
    let mut shown: Vec<Line> = lines.into_iter().skip(top).take(body_h).collect();
    if let Some(f) = footer {
        while shown.len() < body_h {
            shown.push(Line::default());
        }
        shown.push(f);
    }
    frame.render_widget(Paragraph::new(shown), inner);
}

/// How pane `i` is named on screen: its number, or in the A/B grid its template's letter and its
/// number within the template (B2).
pub(crate) fn pane_label(run: &Generation, i: usize) -> String {
    match (run.mode, run.panes.get(i)) {
        (CompareMode::Ab, Some(p)) => format!("{}{}", (b'A' + (p.prompt % 26) as u8) as char, p.path + 1),
        _ => (i + 1).to_string(),
    }
}

/// The last line of the prompt (what the model continues), cut to its last 40 characters.
fn prompt_tail(prompt: &str) -> String {
    let last = prompt.rsplit('\n').next().unwrap_or("");
    let n = last.chars().count();
    if n > 40 {
        format!("…{}", last.chars().skip(n - 39).collect::<String>())
    } else {
        last.to_string()
    }
}

/// The pane's title: path (or template), tokens, tokens/s, answer with ✓/✗ and the stop reason, in the
/// longest form that fits `width` (narrow panes get abbreviations, then lose the rate and count).
fn title_line(app: &App, run: &Generation, p: &Pane, name: String, width: usize) -> Line<'static> {
    for level in 0..5 {
        let line = title_at(app, run, p, &name, level);
        if line.width() <= width || level == 4 {
            return line;
        }
    }
    Line::default()
}

fn title_at(app: &App, run: &Generation, p: &Pane, name: &str, level: u8) -> Line<'static> {
    let t = &app.theme;
    let full = level == 0;
    let mut spans = vec![Span::styled(name.to_string(), t.title())];
    if let Some(b) = &p.branch {
        let parent = pane_label(run, b.parent.saturating_sub(1));
        spans.push(Span::styled(
            // Where it branched matters more than its counts: it goes last.
            if level <= 3 { format!(" ⟵ {parent} {}", b.describe()) } else { format!(" ⟵ {parent} @{}", b.at + 1) },
            t.title(),
        ));
    }
    if level <= 2 {
        spans.push(Span::raw(if full {
            format!(" · {} tok", p.token_ids.len())
        } else {
            format!(" · {}t", p.token_ids.len())
        }));
        if let Some(m) = p.mean_logprob() {
            spans.push(Span::raw(if full { format!(" · mean lp {m:.2}") } else { format!(" · lp {m:.2}") }));
        }
    }
    if level <= 1 {
        if let Some(r) = p.tokens_per_s() {
            spans.push(Span::raw(if full { format!(" · {r:.1} tok/s") } else { format!(" · {r:.0}t/s") }));
        }
    }
    spans.push(Span::raw(" · "));
    match &p.answer {
        Some(a) => {
            let ok = run.correct(Some(a)) == Some(true);
            spans.push(Span::raw(if full { format!("ans {a} ") } else { a.clone() }));
            spans.push(if ok { Span::styled("✓", t.right()) } else { Span::styled("✗", t.wrong()) });
            if p.answer_rule == crate::lab::answer::AnswerRule::Flexible {
                spans.push(Span::raw(if full { " (flexible)" } else { "~" }));
            }
        }
        None => spans.push(Span::styled(if full { "no answer" } else { "—" }, t.dim())),
    }
    if level <= 3 {
        let stop = match (&p.stop, full) {
            (None, true) if p.started_ms.is_none() => "waiting".to_string(),
            (None, true) => "streaming".to_string(),
            (None, false) => "…".to_string(),
            (Some(StopReason::StopString(s)), true) => format!("stop {}", s.escape_default()),
            (Some(StopReason::StopString(s)), false) => s.escape_default().to_string(),
            (Some(StopReason::MaxTokens), false) => "max".to_string(),
            (Some(StopReason::Cancelled), false) => "cancel".to_string(),
            (Some(s), _) => s.as_str().to_string(),
        };
        spans.push(Span::raw(format!(" · {stop}")));
    }
    spans.push(Span::raw(" "));
    Line::from(spans)
}

/// Label chips (`rep?` detected, bold when the human decided, struck when off) and the note.
fn footer_line(app: &App, p: &Pane, w: usize) -> Option<Line<'static>> {
    let t = &app.theme;
    let mut spans: Vec<Span> = Vec::new();
    for (label, s) in p.labels.touched() {
        let on = s.effective();
        let mark = match s.human {
            None => "?",
            Some(true) => "✓",
            Some(false) => "✗",
        };
        spans
            .push(Span::styled(format!("{}{}{mark}", label.key(), label.tag()), t.label(label, on, s.human.is_some())));
        spans.push(Span::raw(" "));
    }
    if p.stale {
        spans.push(Span::styled("⚠ stale: labelled on another text ", t.wrong()));
    }
    if !p.note.is_empty() {
        spans.push(Span::styled(format!("✎ {}", p.note), t.dim()));
    }
    if spans.is_empty() {
        return p.finished().then(|| Line::from(Span::styled(truncate("no labels: 1-9 to add", w), t.dim())));
    }
    // Cut to the width, keeping styles.
    Some(super::summary::fit(spans, u16::try_from(w).unwrap_or(u16::MAX)))
}
