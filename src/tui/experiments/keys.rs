//! Keys of the experiments view, and the footer hints that go with them (only keys that act now).

use crossterm::event::{KeyCode, KeyEvent};

use super::ExperimentIntent as X;
use crate::tui::app::{App, SetupField};
use crate::tui::intent::Intent;
use crate::tui::keymap::Hint;

/// The intent a key means while the experiments view has the screen (no overlay open).
pub fn intent_for(app: &App, key: KeyEvent) -> Option<Intent> {
    let code = key.code;
    let up = matches!(code, KeyCode::Up | KeyCode::Char('k'));
    let down = matches!(code, KeyCode::Down | KeyCode::Char('j'));
    let left = matches!(code, KeyCode::Left | KeyCode::Char('h'));
    let right = matches!(code, KeyCode::Right | KeyCode::Char('l'));
    let x = |i: X| Some(Intent::Experiment(i));
    if let Some(setup) = &app.experiments.setup {
        let typing = setup.field != SetupField::Templates;
        return match code {
            KeyCode::Enter => x(X::Start),
            KeyCode::Esc => x(X::Leave),
            KeyCode::Tab => x(X::Field(1)),
            KeyCode::BackTab => x(X::Field(-1)),
            KeyCode::Backspace if typing => x(X::Backspace),
            KeyCode::Char(c) if typing => x(X::Input(c)),
            KeyCode::Up | KeyCode::Down if typing => None,
            _ if up => x(X::Move { rows: -1, cols: 0 }),
            _ if down => x(X::Move { rows: 1, cols: 0 }),
            KeyCode::Char(' ') => x(X::Toggle),
            KeyCode::Char('q') => Some(Intent::Quit),
            KeyCode::Char('?') | KeyCode::F(1) => Some(Intent::Help),
            _ => None,
        };
    }
    let running = app.experiment_running();
    match code {
        _ if up => x(X::Move { rows: -1, cols: 0 }),
        _ if down => x(X::Move { rows: 1, cols: 0 }),
        _ if left => x(X::Move { rows: 0, cols: -1 }),
        _ if right => x(X::Move { rows: 0, cols: 1 }),
        KeyCode::PageUp => x(X::Move { rows: -10, cols: 0 }),
        KeyCode::PageDown => x(X::Move { rows: 10, cols: 0 }),
        KeyCode::Enter => x(X::OpenCell),
        KeyCode::Esc if running => x(X::Cancel),
        KeyCode::Esc | KeyCode::Char('x') => x(X::Leave),
        KeyCode::Char('n') => x(X::New),
        KeyCode::Char('q') => Some(Intent::Quit),
        KeyCode::Char('?') | KeyCode::F(1) => Some(Intent::Help),
        _ => None,
    }
}

fn h(keys: &'static str, what: &'static str) -> Hint {
    Hint { keys, what }
}

/// The keys that do something now in the experiments view.
pub fn hints(app: &App) -> Vec<Hint> {
    if let Some(setup) = &app.experiments.setup {
        let mut v = Vec::new();
        if setup.field == SetupField::Templates {
            v.push(h("↑↓", "template"));
            v.push(h("Space", "tick"));
        } else {
            v.push(h("type", if setup.field == SetupField::Questions { "questions" } else { "name" }));
        }
        v.push(h("Tab", "next field"));
        if app.model_info().is_some() && !app.experiment_running() {
            v.push(h("Enter", "run"));
        }
        v.push(h("Esc", if app.experiments.run.is_some() { "back to the grid" } else { "back" }));
        if setup.field == SetupField::Templates {
            v.push(h("?", "help"));
            v.push(h("q", "quit"));
        }
        return v;
    }
    let mut v = Vec::new();
    let running = app.experiment_running();
    if running {
        v.push(h("Esc", "cancel"));
    }
    if let Some(r) = &app.experiments.run {
        if r.rows().len() > 1 || r.templates.len() > 1 {
            v.push(h("↑↓←→", "cell"));
        }
        let has_line = r.rows().get(r.cursor.0).is_some_and(|&q| r.record(q, r.cursor.1).is_some());
        if has_line && !app.generating() {
            v.push(h("Enter", "open cell"));
        }
    }
    if !running {
        v.push(h("n", "new experiment"));
    }
    v.push(h(if running { "x" } else { "Esc/x" }, "normal view"));
    v.push(h("?", "help"));
    v.push(h("q", "quit"));
    v
}
