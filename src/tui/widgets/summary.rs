//! The vote line (answers with counts, majority, agreement, right or wrong) and the failure legend.

use ratatui::text::{Line, Span};

use crate::lab::detect::FailureKind;
use crate::tui::app::App;
use crate::tui::highlight::badge;
use crate::tui::run::CompareMode;
use crate::tui::wrap::truncate;

pub fn vote_line(app: &App, width: u16) -> Line<'static> {
    let t = &app.theme;
    let Some(run) = &app.run else {
        return Line::from(Span::styled(" Vote: no paths yet", t.dim()));
    };
    let mut spans = Vec::new();
    if run.mode == CompareMode::Ab {
        spans.push(Span::styled(" A/B: ", t.title()));
        for (i, p) in run.panes.iter().enumerate() {
            let name = run.prompts.get(p.prompt).map_or("?", |s| s.template.as_str());
            spans.push(Span::raw(format!("{} {name} ", (b'A' + (i % 26) as u8) as char)));
            match &p.answer {
                Some(a) => {
                    spans.push(Span::raw(format!("{a} ")));
                    spans.push(if run.correct(Some(a)) == Some(true) {
                        Span::styled("✓", t.right())
                    } else {
                        Span::styled("✗", t.wrong())
                    });
                }
                None => spans.push(Span::styled("—", t.dim())),
            }
            spans.push(Span::raw("  "));
        }
        spans.push(Span::raw(format!("│ gold {}", run.gold)));
        return fit(spans, width);
    }
    let v = run.vote();
    spans.push(Span::styled(" Vote: ", t.title()));
    if v.counts.is_empty() {
        spans.push(Span::styled("no answers yet", t.dim()));
    }
    for (i, (ans, n)) in v.counts.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" · "));
        }
        let style = if crate::lab::answer::matches_gold(ans, &run.gold) { t.right() } else { t.base() };
        spans.push(Span::styled(format!("{ans}×{n}"), style));
    }
    let silent = run.panes.iter().filter(|p| p.finished() && p.answer.is_none()).count();
    if silent > 0 {
        spans.push(Span::styled(format!(" · no answer×{silent}"), t.dim()));
    }
    if let Some(m) = &v.majority {
        let tie = if v.tie { " (tie)" } else { "" };
        spans.push(Span::raw(format!(
            " │ majority {m}{tie} · agreement {:.0}% ({}/{} voting) · ",
            v.agreement * 100.0,
            (v.agreement * v.voters as f64).round(),
            v.voters
        )));
        if crate::lab::answer::matches_gold(m, &run.gold) {
            spans.push(Span::styled("✓ right", t.right()));
        } else {
            spans.push(Span::styled("✗ wrong", t.wrong()));
        }
    }
    spans.push(Span::raw(format!(" (gold {})", run.gold)));
    fit(spans, width)
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
