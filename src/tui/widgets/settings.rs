//! The sampling settings panel.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::panel;
use crate::tui::app::{App, Focus};
use crate::tui::run::CompareMode;
use crate::tui::settings::Field;
use crate::tui::wrap::truncate;

pub fn draw(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.theme;
    let focused = app.focus == Focus::Settings;
    let block = panel(t, " Settings ".into(), focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let w = inner.width as usize;
    let stop = app.template_stop();
    let label_w = 11.min(w / 2);
    let mut lines = Vec::new();
    for (i, field) in Field::ALL.iter().enumerate() {
        let selected = focused && i == app.setting;
        let value = match field {
            Field::Mode => app.mode.title().to_string(),
            Field::Template => match app.mode {
                CompareMode::SelfConsistency => {
                    app.templates.get(app.template).map_or("—".into(), |e| e.template.name.clone())
                }
                CompareMode::Ab => app
                    .ab
                    .iter()
                    .filter_map(|i| app.templates.get(*i))
                    .map(|e| e.template.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            Field::Paths if app.mode == CompareMode::Ab => "1 per template".into(),
            Field::Stop if app.settings.stop_override.is_none() => {
                format!("{} (template)", app.settings.value_text(*field, &stop))
            }
            f => app.settings.value_text(*f, &stop),
        };
        let value = match (&app.edit, selected) {
            (Some(buf), true) => format!("{buf}▏"),
            _ => value,
        };
        let label = format!("{:<label_w$}", truncate(field.label(), label_w));
        let text = truncate(&format!("{label} {value}"), w);
        let style = if selected { t.selected() } else { t.base() };
        lines.push(Line::from(Span::styled(text, style)));
    }
    let skip = app.setting.saturating_sub((inner.height as usize).saturating_sub(1));
    frame.render_widget(Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()), inner);
}
