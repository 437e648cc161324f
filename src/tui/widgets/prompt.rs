//! The rendered prompt of the template in use, scrollable, with its token count; the target question at
//! its end in bold.

use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::panel;
use crate::tui::app::{App, Focus, TokenCount};
use crate::tui::wrap::wrap;

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let Some(spec) = app.shown_prompt() else {
        let block = panel(t, " Prompt ".into(), app.focus == Focus::Prompt);
        let msg = if app.templates.is_empty() {
            format!("no templates in {}", app.templates_dir.display())
        } else {
            "select a question".to_string()
        };
        frame.render_widget(Paragraph::new(msg).style(t.dim()).block(block), area);
        return;
    };
    let count = match app.token_counts.get(&spec.prompt_sha256) {
        Some(TokenCount::Known(n)) => format!("{n} tokens"),
        Some(TokenCount::Pending) => "counting tokens…".into(),
        Some(TokenCount::Failed(_)) => "? tokens".into(),
        None => "tokens: when the model is loaded".into(),
    };
    let tab =
        if app.prompts.len() > 1 { format!("{}/{} ", app.prompt_tab + 1, app.prompts.len()) } else { String::new() };
    let pinned = if app.pinned.is_some() { " · as saved" } else { "" };
    let title = format!(" Prompt {tab}· {} · {count}{pinned} ", spec.template);
    let block = panel(t, title, app.focus == Focus::Prompt);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    // The target question (from the last "Q:") in bold.
    let split = spec.prompt.rfind("Q:").unwrap_or(spec.prompt.len());
    let segs = vec![
        (spec.prompt[..split].to_string(), t.base()),
        (spec.prompt[split..].to_string(), t.base().add_modifier(Modifier::BOLD)),
    ];
    let lines = wrap(&segs, inner.width as usize);
    let h = inner.height as usize;
    let max_top = lines.len().saturating_sub(h);
    let top = max_top.saturating_sub(app.prompt_scroll_up);
    let shown: Vec<_> = lines.into_iter().skip(top).take(h).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}
