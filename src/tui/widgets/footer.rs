//! The status line and the footer of keys that apply now.

use ratatui::text::{Line, Span};

use super::summary::fit;
use crate::tui::app::{App, ModelState};
use crate::tui::keymap::hints;

pub fn status(app: &App, width: u16) -> Line<'static> {
    let t = &app.theme;
    let (text, style) = match (&app.status, &app.model) {
        (Some(s), _) => (s.text.clone(), if s.error { t.status_error() } else { t.base() }),
        (None, ModelState::Loading) => ("loading model…".to_string(), t.dim()),
        (None, ModelState::Failed(e)) => (format!("model failed to load: {e}"), t.status_error()),
        (None, _) => (String::new(), t.base()),
    };
    fit(vec![Span::styled(format!(" {text}"), style)], width)
}

pub fn keys(app: &App, width: u16) -> Line<'static> {
    let t = &app.theme;
    let mut spans = vec![Span::raw(" ")];
    for h in hints(app) {
        spans.push(Span::styled(h.keys, t.key()));
        spans.push(Span::raw(format!(" {}  ", h.what)));
    }
    fit(spans, width)
}
