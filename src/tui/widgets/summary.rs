//! The vote line (answers with counts, majority, agreement, right or wrong) and the failure legend.

use ratatui::text::{Line, Span};

use crate::lab::detect::FailureKind;
use crate::lab::record::CompareMode;
use crate::lab::select::{PathView, Strategy};
use crate::tui::app::App;
use crate::tui::app::JUDGING;
use crate::tui::generation::Generation;
use crate::tui::highlight::badge;
use crate::tui::wrap::truncate;

pub fn vote_line(app: &App, width: u16) -> Line<'static> {
    let t = &app.theme;
    let Some(g) = &app.generation else {
        return Line::from(Span::styled(" Vote: no paths yet", t.dim()));
    };
    let mut spans = Vec::new();
    // One vote per template: all paths in self-consistency, each template's column in the A/B grid.
    for (pi, spec) in g.prompts.iter().enumerate() {
        let answers: Vec<Option<String>> =
            g.panes.iter().filter(|p| p.prompt == pi).map(|p| p.answer.clone()).collect();
        let v = crate::lab::vote::vote(&answers);
        if g.mode == CompareMode::Ab {
            spans.push(Span::styled(format!(" {} {}: ", (b'A' + (pi % 26) as u8) as char, spec.template), t.title()));
        } else {
            spans.push(Span::styled(" Vote: ", t.title()));
        }
        spans.push(Span::raw(crate::lab::vote::describe(&v, answers.len())));
        if let Some(m) = &v.majority {
            spans.push(Span::raw(" "));
            spans.push(if crate::lab::answer::matches_gold(m, &g.gold) {
                Span::styled("✓ right", t.right())
            } else {
                Span::styled("✗ wrong", t.wrong())
            });
        }
        if app.strategy != Strategy::Majority {
            spans.extend(chosen(app, g, pi));
        }
        spans.push(Span::raw(" │"));
    }
    spans.push(Span::raw(format!(" gold {}", g.gold)));
    if g.sampling.temperature == 0.0 && g.panes.iter().filter(|p| p.branch.is_none()).count() > g.prompts.len() {
        spans.push(Span::styled(" · temperature 0: greedy paths of a template are identical", t.dim()));
    }
    fit(spans, width)
}

/// ` · weighted: 18 ✓`: the answer the chosen strategy (`V`) picks among template `pi`'s paths.
fn chosen(app: &App, g: &Generation, pi: usize) -> Vec<Span<'static>> {
    let t = &app.theme;
    let name = app.strategy.name();
    let choice = match crate::lab::select::choose_without_model(app.strategy, &views(g, pi)) {
        Some(c) => c,
        None => match g.judged.get(&pi) {
            None if g.running => return vec![Span::styled(format!(" · {name}: after the paths"), t.dim())],
            None => return vec![Span::styled(format!(" · {name}: V asks it"), t.dim())],
            Some(Err(e)) if e == JUDGING => return vec![Span::styled(format!(" · {name}: {JUDGING}"), t.dim())],
            Some(Err(_)) => return vec![Span::styled(format!(" · {name}: failed (see status)"), t.wrong())],
            Some(Ok(c)) => c.clone(),
        },
    };
    let mut out = vec![Span::styled(format!(" · {name}: "), t.title())];
    match &choice.answer {
        None => out.push(Span::raw("no answer")),
        Some(a) => {
            out.push(Span::raw(a.clone()));
            out.push(Span::raw(" "));
            out.push(if crate::lab::answer::matches_gold(a, &g.gold) {
                Span::styled("✓", t.right())
            } else {
                Span::styled("✗", t.wrong())
            });
        }
    }
    if choice.fallback {
        out.push(Span::styled(" (fell back to majority)", t.dim()));
    }
    if let Some(best) = choice.scores.iter().find(|s| Some(&s.answer) == choice.answer.as_ref()) {
        out.push(Span::styled(format!(" p={:.2}", best.p), t.dim()));
    }
    out
}

/// What the strategies see of template `pi`'s paths.
fn views(g: &Generation, pi: usize) -> Vec<PathView<'_>> {
    g.panes
        .iter()
        .filter(|p| p.prompt == pi)
        .map(|p| PathView {
            text: &p.text,
            answer: p.answer.as_deref(),
            arithmetic_error: p.failures.iter().any(|f| f.kind == FailureKind::ArithmeticError),
            logprob: crate::lab::token_steps::sum_logprob(&p.steps).map(|(sum, _)| sum),
        })
        .collect()
}

pub fn legend(app: &App) -> Line<'static> {
    let t = &app.theme;
    let mut spans = vec![Span::styled(" Failures: ", t.title())];
    for k in FailureKind::ALL {
        let name = k.name().replace('_', " ");
        let text = if t.markers() { format!("{}{name}", badge(k)) } else { format!(" {name} ") };
        spans.push(Span::styled(text, t.failure(k)));
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled("│ ~ last number, ? glyphs", t.dim()));
    Line::from(spans)
}

/// Cuts a line of spans to `width` columns.
pub fn fit(spans: Vec<Span<'static>>, width: u16) -> Line<'static> {
    let w = width as usize;
    let mut used = 0;
    let mut out = Vec::new();
    for s in spans {
        let sw = unicode_width::UnicodeWidthStr::width(s.content.as_ref());
        if used + sw > w {
            out.push(Span::styled(truncate(&s.content, w.saturating_sub(used)), s.style));
            break;
        }
        used += sw;
        out.push(s);
    }
    Line::from(out)
}
