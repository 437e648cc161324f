//! The top line: model, view, question, and whether something is running.

use ratatui::text::{Line, Span};

use crate::tui::app::{App, ModelState};
use crate::tui::wrap::truncate;

pub fn line(app: &App, width: u16) -> Line<'static> {
    let t = &app.theme;
    let model = match &app.model {
        ModelState::Loading => "loading model…".to_string(),
        ModelState::Ready(i) => format!("model {} ({})", i.id, i.dtype),
        ModelState::Failed(_) => "no model".to_string(),
    };
    let q = match app.selected_problem() {
        Some(p) => format!("question {} (gold {})", p.index, p.gold),
        None => "no question".to_string(),
    };
    let state = match &app.generation {
        Some(r) if r.running && r.cancelling => " ● cancelling…".to_string(),
        Some(r) if r.running => format!(" ● generating {} tok", r.tokens()),
        _ => String::new(),
    };
    let unsaved = if app.unsaved() { " [unsaved labels]" } else { "" };
    // An experiment goes on while the normal view shows.
    let experiment = match &app.experiments.run {
        Some(r) if r.running() && !app.experiments_shown() => {
            format!(" ● experiment {}/{} (x)", r.questions_done(), r.questions.len())
        }
        _ => String::new(),
    };
    let text = format!(" cotscope │ {model} │ {} │ {q}{state}{experiment}{unsaved}", app.mode.title());
    Line::from(Span::styled(truncate(&text, width as usize), t.title()))
}
