//! Keys → actions, depending on what has the keys (an overlay, a text field, the focused panel). The one
//! place that knows the key bindings; the footer and the help overlay read theirs from here too.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::Action;
use super::app::{App, Focus, Overlay};
use super::run::CompareMode;

/// The action a key press means now, if any.
pub fn action_for(app: &App, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q')) {
        return Some(Action::Quit);
    }
    if let Some(overlay) = &app.overlay {
        return overlay_key(overlay, key);
    }
    if app.questions.filtering || app.edit.is_some() {
        return text_key(key);
    }
    let code = key.code;
    // Keys that mean the same everywhere.
    let global = match code {
        KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Char('?') | KeyCode::F(1) => Some(Action::Help),
        KeyCode::Enter => Some(Action::Generate),
        KeyCode::Esc => Some(Action::Close),
        KeyCode::Tab => Some(Action::FocusNext),
        KeyCode::BackTab => Some(Action::FocusPrev),
        KeyCode::Char('+') | KeyCode::Char('=') => Some(Action::MorePaths),
        KeyCode::Char('-') => Some(Action::FewerPaths),
        KeyCode::Char('t') => Some(Action::ChooseTemplate),
        KeyCode::Char('m') => Some(Action::ToggleMode),
        KeyCode::Char('n') => Some(Action::EditNote),
        KeyCode::Char('u') => Some(Action::Undo),
        KeyCode::Char('s') => Some(Action::Save),
        KeyCode::Char('o') => Some(Action::Open),
        KeyCode::Char('y') => Some(Action::CopyExemplar),
        KeyCode::Char('e') => Some(Action::AppendExemplar),
        KeyCode::Char('/') => Some(Action::StartFilter),
        _ => None,
    };
    if global.is_some() {
        return global;
    }
    let digit = match code {
        KeyCode::Char(c @ '0'..='9') => Some(c as u8 - b'0'),
        _ => None,
    };
    let up = matches!(code, KeyCode::Up | KeyCode::Char('k'));
    let down = matches!(code, KeyCode::Down | KeyCode::Char('j'));
    let left = matches!(code, KeyCode::Left | KeyCode::Char('h'));
    let right = matches!(code, KeyCode::Right | KeyCode::Char('l'));
    match app.focus {
        Focus::Questions => match code {
            _ if up => Some(Action::MoveQuestion(-1)),
            _ if down => Some(Action::MoveQuestion(1)),
            KeyCode::PageUp => Some(Action::MoveQuestion(-10)),
            KeyCode::PageDown => Some(Action::MoveQuestion(10)),
            KeyCode::Home | KeyCode::Char('g') => Some(Action::QuestionHome),
            KeyCode::End | KeyCode::Char('G') => Some(Action::QuestionEnd),
            _ => digit.map(Action::JumpDigit),
        },
        Focus::Prompt => match code {
            _ if up => Some(Action::ScrollPrompt(-1)),
            _ if down => Some(Action::ScrollPrompt(1)),
            _ if left => Some(Action::PromptTab(-1)),
            _ if right => Some(Action::PromptTab(1)),
            KeyCode::PageUp => Some(Action::ScrollPrompt(-10)),
            KeyCode::PageDown => Some(Action::ScrollPrompt(10)),
            _ => digit.filter(|d| *d > 0).map(Action::ToggleLabel),
        },
        Focus::Settings => match code {
            _ if up => Some(Action::SelectSetting(-1)),
            _ if down => Some(Action::SelectSetting(1)),
            _ if left => Some(Action::AdjustSetting(-1)),
            _ if right => Some(Action::AdjustSetting(1)),
            KeyCode::Char('i') | KeyCode::F(2) => Some(Action::StartEdit(None)),
            KeyCode::Char(c) if c.is_ascii_digit() || c == '.' => Some(Action::StartEdit(Some(c))),
            _ => None,
        },
        Focus::Paths => match code {
            _ if up => Some(Action::ScrollPane(-1)),
            _ if down => Some(Action::ScrollPane(1)),
            _ if left => Some(Action::FocusPane(-1)),
            _ if right => Some(Action::FocusPane(1)),
            KeyCode::PageUp => Some(Action::ScrollPane(-10)),
            KeyCode::PageDown => Some(Action::ScrollPane(10)),
            KeyCode::Home | KeyCode::Char('g') => Some(Action::PaneTop),
            KeyCode::End | KeyCode::Char('G') => Some(Action::PaneBottom),
            _ => digit.filter(|d| *d > 0).map(Action::ToggleLabel),
        },
    }
}

fn text_key(key: KeyEvent) -> Option<Action> {
    match key.code {
        KeyCode::Enter => Some(Action::Submit),
        KeyCode::Esc => Some(Action::Close),
        KeyCode::Backspace => Some(Action::Backspace),
        KeyCode::Char(c) => Some(Action::Input(c)),
        KeyCode::Tab => Some(Action::FocusNext),
        KeyCode::BackTab => Some(Action::FocusPrev),
        _ => None,
    }
}

fn overlay_key(overlay: &Overlay, key: KeyEvent) -> Option<Action> {
    let code = key.code;
    let up = matches!(code, KeyCode::Up | KeyCode::Char('k'));
    let down = matches!(code, KeyCode::Down | KeyCode::Char('j'));
    match overlay {
        Overlay::Help { .. } => match code {
            _ if up => Some(Action::OverlayMove(-1)),
            _ if down => Some(Action::OverlayMove(1)),
            KeyCode::PageUp => Some(Action::OverlayMove(-10)),
            KeyCode::PageDown => Some(Action::OverlayMove(10)),
            KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::Esc | KeyCode::Enter | KeyCode::F(1) => {
                Some(Action::Close)
            }
            _ => None,
        },
        Overlay::Templates { .. } | Overlay::Sessions { .. } => match code {
            _ if up => Some(Action::OverlayMove(-1)),
            _ if down => Some(Action::OverlayMove(1)),
            KeyCode::PageUp => Some(Action::OverlayMove(-10)),
            KeyCode::PageDown => Some(Action::OverlayMove(10)),
            KeyCode::Char(' ') | KeyCode::Char('x') => Some(Action::OverlayToggle),
            KeyCode::Enter => Some(Action::Submit),
            KeyCode::Esc | KeyCode::Char('q') => Some(Action::Close),
            _ => None,
        },
        Overlay::Note { .. } => text_key(key).filter(|a| !matches!(a, Action::FocusNext | Action::FocusPrev)),
        Overlay::ConfirmQuit => match code {
            KeyCode::Char('y') | KeyCode::Char('q') | KeyCode::Enter => Some(Action::Submit),
            KeyCode::Char('s') => Some(Action::Save),
            KeyCode::Char('n') | KeyCode::Esc => Some(Action::Close),
            _ => None,
        },
        Overlay::Exemplar(p) if p.new_name.is_some() => {
            text_key(key).filter(|a| !matches!(a, Action::FocusNext | Action::FocusPrev))
        }
        Overlay::Exemplar(_) => match code {
            _ if up => Some(Action::OverlayMove(-1)),
            _ if down => Some(Action::OverlayMove(1)),
            KeyCode::Char('a') | KeyCode::Enter => Some(Action::Submit),
            KeyCode::Char('c') => Some(Action::ExemplarAsCopy),
            KeyCode::Esc | KeyCode::Char('q') => Some(Action::Close),
            _ => None,
        },
    }
}

/// One key binding for the footer and the help overlay.
pub struct Hint {
    pub keys: &'static str,
    pub what: &'static str,
}

const fn h(keys: &'static str, what: &'static str) -> Hint {
    Hint { keys, what }
}

/// The keys that apply now, most useful first (the footer shows as many as fit).
pub fn hints(app: &App) -> Vec<Hint> {
    if let Some(o) = &app.overlay {
        return match o {
            Overlay::Help { .. } => vec![h("↑↓", "scroll"), h("Esc/?", "close")],
            Overlay::Templates { .. } if app.mode == CompareMode::Ab => {
                vec![h("↑↓", "move"), h("Space", "tick (up to 4)"), h("Enter", "use ticked"), h("Esc", "cancel")]
            }
            Overlay::Templates { .. } => vec![h("↑↓", "move"), h("Enter", "use template"), h("Esc", "cancel")],
            Overlay::Sessions { .. } => vec![h("↑↓", "move"), h("Enter", "open"), h("Esc", "cancel")],
            Overlay::Note { .. } => vec![h("type", "note"), h("Enter", "keep"), h("Esc", "cancel")],
            Overlay::ConfirmQuit => vec![h("y", "quit without saving"), h("s", "save and quit"), h("n/Esc", "stay")],
            Overlay::Exemplar(p) if p.new_name.is_some() => {
                vec![h("type", "new template name"), h("Enter", "write copy"), h("Esc", "back")]
            }
            Overlay::Exemplar(_) => vec![
                h("a/Enter", "append to this template"),
                h("c", "copy under a new name"),
                h("↑↓", "scroll"),
                h("Esc", "cancel"),
            ],
        };
    }
    if app.questions.filtering {
        return vec![h("type", "filter questions"), h("Enter", "keep filter"), h("Esc", "clear filter")];
    }
    if app.edit.is_some() {
        return vec![h("type", "value"), h("Enter", "set"), h("Esc", "cancel")];
    }
    let mut v = Vec::new();
    if app.generating() {
        v.push(h("Esc", "cancel"));
    } else {
        v.push(h("Enter", "generate"));
    }
    v.push(h("Tab", "focus"));
    match app.focus {
        Focus::Questions => {
            v.push(h("↑↓/jk", "question"));
            v.push(h("0-9", "jump to #"));
            v.push(h("/", "filter"));
        }
        Focus::Prompt => {
            v.push(h("↑↓/jk", "scroll"));
            if app.prompts.len() > 1 {
                v.push(h("←→", "template"));
            }
        }
        Focus::Settings => {
            v.push(h("↑↓", "setting"));
            v.push(h("←→", "change"));
            v.push(h("i/0-9", "type value"));
        }
        Focus::Paths => {
            v.push(h("←→", "path"));
            v.push(h("↑↓", "scroll"));
            v.push(h("1-9", "label"));
            v.push(h("n", "note"));
            v.push(h("u", "undo"));
        }
    }
    if app.run.is_some() && app.focus != Focus::Paths {
        v.push(h("u", "undo"));
    }
    v.push(h("+/-", "paths"));
    v.push(h("t", "template"));
    v.push(h("m", "mode"));
    if app.run.is_some() {
        v.push(h("s", "save"));
        v.push(h("y", "copy"));
        v.push(h("e", "to template"));
    }
    v.push(h("o", "open"));
    v.push(h("?", "help"));
    v.push(h("q", "quit"));
    v
}

/// Every key, by section, for the help overlay.
pub fn help() -> Vec<(&'static str, Vec<Hint>)> {
    vec![
        (
            "Anywhere",
            vec![
                h("Enter", "generate with the selected question, template(s) and settings"),
                h("Esc", "cancel the running generation (stops within one token); close a dialog"),
                h("Tab / Shift-Tab", "move focus: questions → prompt → settings → paths"),
                h("+ / -", "one more / one fewer sampled path (1–8)"),
                h("t", "choose the template (A/B view: tick up to four with Space)"),
                h("m", "switch view: N paths of one template ↔ A/B templates side by side"),
                h("/", "filter questions by text"),
                h("n", "note on the focused path"),
                h("u", "undo the last label or note"),
                h("s", "save the session (sessions/<time>-q<index>-<template>.yaml)"),
                h("o", "open a saved session (newest first)"),
                h("y", "copy the focused path as an exemplar (Q: …\\nA: …)"),
                h("e", "append the focused path to its template as an exemplar (diff first)"),
                h("?", "this help"),
                h("q / Ctrl-C", "quit (asks first when labels or notes are unsaved)"),
            ],
        ),
        (
            "Questions",
            vec![
                h("↑ ↓ / j k", "select a question"),
                h("PgUp PgDn g G", "page, first, last"),
                h("0–9", "type an index to jump to it"),
            ],
        ),
        (
            "Prompt",
            vec![
                h("↑ ↓ / j k, PgUp PgDn", "scroll the rendered prompt"),
                h("← →", "A/B view: which template's prompt"),
            ],
        ),
        (
            "Settings",
            vec![
                h("↑ ↓ / j k", "select a setting"),
                h("← → / h l", "change it (mode and template too)"),
                h("i or a digit", "type a value; Enter sets, Esc cancels"),
                h("stop", "stop strings separated by |, with \\n for a newline"),
            ],
        ),
        (
            "Paths",
            vec![
                h("← → / h l", "focus another path"),
                h("↑ ↓ / j k, g G", "scroll the focused path; G follows the stream again"),
                h("1–6", "toggle a failure label (pre-filled by the detectors; you confirm or overrule):"),
                h("", "1 repetition  2 question_echo  3 missing_answer_marker"),
                h("", "4 runaway_question  5 no_answer  6 arithmetic_error"),
                h("7 8 9", "toggle wrong_step / other / good"),
                h("chips", "rep? detected, not reviewed · rep✓ you confirmed · rep✗ you overruled"),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEvent;

    pub fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn every_action_key_in_the_issue_is_bound() {
        let app = super::super::app::tests::app();
        for (c, want) in [
            (KeyCode::Enter, "Generate"),
            (KeyCode::Esc, "Close"),
            (KeyCode::Tab, "FocusNext"),
            (KeyCode::BackTab, "FocusPrev"),
            (KeyCode::Char('+'), "MorePaths"),
            (KeyCode::Char('-'), "FewerPaths"),
            (KeyCode::Char('t'), "ChooseTemplate"),
            (KeyCode::Char('n'), "EditNote"),
            (KeyCode::Char('u'), "Undo"),
            (KeyCode::Char('s'), "Save"),
            (KeyCode::Char('o'), "Open"),
            (KeyCode::Char('y'), "CopyExemplar"),
            (KeyCode::Char('e'), "AppendExemplar"),
            (KeyCode::Char('q'), "Quit"),
            (KeyCode::Char('?'), "Help"),
            (KeyCode::Char('/'), "StartFilter"),
        ] {
            let a = action_for(&app, key(c)).map(|a| format!("{a:?}"));
            assert_eq!(a.as_deref(), Some(want), "{c:?}");
        }
    }

    #[test]
    fn digits_depend_on_focus() {
        let mut app = super::super::app::tests::app();
        let d = key(KeyCode::Char('3'));
        assert!(matches!(action_for(&app, d), Some(Action::JumpDigit(3))));
        app.focus = Focus::Paths;
        assert!(matches!(action_for(&app, d), Some(Action::ToggleLabel(3))));
        app.focus = Focus::Settings;
        assert!(matches!(action_for(&app, d), Some(Action::StartEdit(Some('3')))));
    }

    #[test]
    fn text_fields_take_letters() {
        let mut app = super::super::app::tests::app();
        app.questions.filtering = true;
        assert!(matches!(action_for(&app, key(KeyCode::Char('q'))), Some(Action::Input('q'))));
        assert!(matches!(action_for(&app, key(KeyCode::Esc)), Some(Action::Close)));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(matches!(action_for(&app, ctrl_c), Some(Action::Quit)));
    }
}
