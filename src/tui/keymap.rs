//! Keys → actions, depending on what has the keys (an overlay, a text field, the focused panel). The one
//! place that knows the key bindings; the footer and the help overlay read theirs from here too.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{App, Focus, Overlay};
use super::experiments::ExperimentIntent;
use super::intent::Intent;
use crate::lab::record::CompareMode;

mod tokens;

/// The intent a key press means now, if any.
pub fn intent_for(app: &App, key: KeyEvent) -> Option<Intent> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q')) {
        return Some(Intent::Quit);
    }
    if let Some(overlay) = &app.overlay {
        return overlay_key(overlay, key);
    }
    if app.experiments_shown() {
        return super::experiments::keys::intent_for(app, key);
    }
    if app.questions.filtering || app.edit.is_some() {
        return text_key(key);
    }
    if let Some(intent) = tokens::intent(app, key) {
        return Some(intent);
    }
    let code = key.code;
    // Keys that mean the same everywhere.
    let global = match code {
        KeyCode::Char('q') => Some(Intent::Quit),
        KeyCode::Char('?') | KeyCode::F(1) => Some(Intent::Help),
        KeyCode::Char('!') => Some(Intent::TemplateErrors),
        KeyCode::Enter => Some(Intent::Generate),
        KeyCode::Esc => Some(Intent::Close),
        KeyCode::Tab => Some(Intent::FocusNext),
        KeyCode::BackTab => Some(Intent::FocusPrev),
        KeyCode::Char('+') | KeyCode::Char('=') => Some(Intent::MorePaths),
        KeyCode::Char('-') => Some(Intent::FewerPaths),
        KeyCode::Char('t') => Some(Intent::ChooseTemplate),
        KeyCode::Char('m') => Some(Intent::ToggleMode),
        KeyCode::Char('c') => Some(Intent::ToggleCalculator),
        KeyCode::Char('V') => Some(Intent::NextStrategy),
        KeyCode::Char('n') => Some(Intent::EditNote),
        KeyCode::Char('u') => Some(Intent::Undo),
        KeyCode::Char('s') => Some(Intent::Save),
        KeyCode::Char('o') => Some(Intent::Open),
        KeyCode::Char('y') => Some(Intent::CopyExemplar),
        KeyCode::Char('Y') => Some(Intent::ExemplarToFile),
        KeyCode::Char('e') => Some(Intent::AppendExemplar),
        KeyCode::Char('/') => Some(Intent::StartFilter),
        KeyCode::Char('x') => Some(Intent::Experiment(ExperimentIntent::Show)),
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
            _ if up => Some(Intent::MoveQuestion(-1)),
            _ if down => Some(Intent::MoveQuestion(1)),
            KeyCode::PageUp => Some(Intent::MoveQuestion(-10)),
            KeyCode::PageDown => Some(Intent::MoveQuestion(10)),
            KeyCode::Home | KeyCode::Char('g') => Some(Intent::QuestionHome),
            KeyCode::End | KeyCode::Char('G') => Some(Intent::QuestionEnd),
            _ => digit.map(|digit| Intent::JumpDigit { digit, at: std::time::Instant::now() }),
        },
        Focus::Prompt => match code {
            _ if up => Some(Intent::ScrollPrompt(-1)),
            _ if down => Some(Intent::ScrollPrompt(1)),
            _ if left => Some(Intent::PromptTab(-1)),
            _ if right => Some(Intent::PromptTab(1)),
            KeyCode::PageUp => Some(Intent::ScrollPrompt(-10)),
            KeyCode::PageDown => Some(Intent::ScrollPrompt(10)),
            _ => None,
        },
        Focus::Settings => match code {
            _ if up => Some(Intent::SelectSetting(-1)),
            _ if down => Some(Intent::SelectSetting(1)),
            _ if left => Some(Intent::AdjustSetting(-1)),
            _ if right => Some(Intent::AdjustSetting(1)),
            KeyCode::Char('i') | KeyCode::F(2) => Some(Intent::StartEdit(None)),
            KeyCode::Char('r') => Some(Intent::ResetSettings),
            KeyCode::Char(c) if c.is_ascii_digit() || c == '.' => Some(Intent::StartEdit(Some(c))),
            _ => None,
        },
        Focus::Paths => match code {
            _ if up => Some(Intent::ScrollPane(-1)),
            _ if down => Some(Intent::ScrollPane(1)),
            _ if left => Some(Intent::FocusPane(-1)),
            _ if right => Some(Intent::FocusPane(1)),
            KeyCode::PageUp => Some(Intent::ScrollPane(-10)),
            KeyCode::PageDown => Some(Intent::ScrollPane(10)),
            KeyCode::Home | KeyCode::Char('g') => Some(Intent::PaneTop),
            KeyCode::End | KeyCode::Char('G') => Some(Intent::PaneBottom),
            _ => digit.filter(|d| *d > 0).map(Intent::ToggleLabel),
        },
    }
}

fn text_key(key: KeyEvent) -> Option<Intent> {
    match key.code {
        KeyCode::Enter => Some(Intent::Submit),
        KeyCode::Esc => Some(Intent::Close),
        KeyCode::Backspace => Some(Intent::Backspace),
        KeyCode::Char(c) => Some(Intent::Input(c)),
        KeyCode::Tab => Some(Intent::FocusNext),
        KeyCode::BackTab => Some(Intent::FocusPrev),
        _ => None,
    }
}

fn overlay_key(overlay: &Overlay, key: KeyEvent) -> Option<Intent> {
    let code = key.code;
    let up = matches!(code, KeyCode::Up | KeyCode::Char('k'));
    let down = matches!(code, KeyCode::Down | KeyCode::Char('j'));
    match overlay {
        Overlay::Help { .. } | Overlay::TemplateErrors { .. } => match code {
            _ if up => Some(Intent::OverlayMove(-1)),
            _ if down => Some(Intent::OverlayMove(1)),
            KeyCode::PageUp => Some(Intent::OverlayMove(-10)),
            KeyCode::PageDown => Some(Intent::OverlayMove(10)),
            KeyCode::Char('?')
            | KeyCode::Char('!')
            | KeyCode::Char('q')
            | KeyCode::Esc
            | KeyCode::Enter
            | KeyCode::F(1) => Some(Intent::Close),
            _ => None,
        },
        Overlay::Templates { .. } | Overlay::Sessions { .. } => match code {
            _ if up => Some(Intent::OverlayMove(-1)),
            _ if down => Some(Intent::OverlayMove(1)),
            KeyCode::PageUp => Some(Intent::OverlayMove(-10)),
            KeyCode::PageDown => Some(Intent::OverlayMove(10)),
            KeyCode::Char(' ') | KeyCode::Char('x') => Some(Intent::OverlayToggle),
            KeyCode::Enter => Some(Intent::Submit),
            KeyCode::Esc | KeyCode::Char('q') => Some(Intent::Close),
            _ => None,
        },
        Overlay::Note { .. } => text_key(key).filter(|a| !matches!(a, Intent::FocusNext | Intent::FocusPrev)),
        Overlay::ConfirmQuit => match code {
            KeyCode::Char('y') | KeyCode::Char('q') | KeyCode::Enter => Some(Intent::Submit),
            KeyCode::Char('s') => Some(Intent::Save),
            KeyCode::Char('n') | KeyCode::Esc => Some(Intent::Close),
            _ => None,
        },
        Overlay::Exemplar(p) if p.new_name.is_some() => {
            text_key(key).filter(|a| !matches!(a, Intent::FocusNext | Intent::FocusPrev))
        }
        Overlay::Exemplar(_) => match code {
            _ if up => Some(Intent::OverlayMove(-1)),
            _ if down => Some(Intent::OverlayMove(1)),
            KeyCode::Char('a') | KeyCode::Enter => Some(Intent::Submit),
            KeyCode::Char('c') => Some(Intent::ExemplarAsCopy),
            KeyCode::Esc | KeyCode::Char('q') => Some(Intent::Close),
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

/// The keys that do something now, most useful first (the footer shows as many as fit).
pub fn hints(app: &App) -> Vec<Hint> {
    if let Some(o) = &app.overlay {
        return match o {
            Overlay::Help { .. } => vec![h("↑↓", "scroll"), h("Esc/?", "close")],
            Overlay::TemplateErrors { .. } => vec![h("↑↓", "scroll"), h("Esc/!", "close")],
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
            Overlay::Exemplar(p) if p.confirmed => vec![h("Enter", "write it anyway"), h("Esc", "cancel")],
            Overlay::Exemplar(_) => vec![
                h("a/Enter", "append to this template"),
                h("c", "copy under a new name"),
                h("↑↓", "scroll"),
                h("Esc", "cancel"),
            ],
        };
    }
    if app.experiments_shown() {
        return super::experiments::keys::hints(app);
    }
    if app.questions.filtering {
        return vec![h("type", "filter questions"), h("Enter", "keep filter"), h("Esc", "clear filter")];
    }
    if app.edit.is_some() {
        return vec![h("type", "value"), h("Enter", "set"), h("Esc", "cancel")];
    }
    if let Some(v) = tokens::cursor_hints(app) {
        return v;
    }
    let has_paths = app.generation.as_ref().is_some_and(|g| !g.panes.is_empty());
    let finished = has_paths && !app.generating();
    let mut v = Vec::new();
    if app.generating() {
        v.push(h("Esc", "cancel"));
    } else if app.model_info().is_some() && !app.prompts.is_empty() {
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
            v.push(h("r", "reset"));
        }
        Focus::Paths if has_paths => {
            if app.generation.as_ref().is_some_and(|g| g.panes.len() > 1) {
                v.push(h("←→", "path"));
            }
            v.push(h("↑↓", "scroll"));
            tokens::path_hints(app, &mut v);
            v.push(h("1-9", "label"));
            v.push(h("n", "note"));
        }
        Focus::Paths => {}
    }
    if app.can_undo() {
        v.push(h("u", "undo"));
    }
    if finished {
        v.push(h("V", "vote by"));
        v.push(h("s", "save"));
        v.push(h("y/Y", "copy/file"));
        v.push(h("e", "to template"));
    }
    v.push(h("+/-", "paths"));
    if !app.templates.is_empty() {
        v.push(h("t", "template"));
    }
    if app.templates.len() > 1 {
        v.push(h("m", "A/B"));
    }
    v.push(h("c", if app.settings.calculator { "calc off" } else { "calc on" }));
    if !app.generating() {
        v.push(h("o", "open"));
        // x works while a generation streams too; then the footer keeps its room for the paths' keys.
        v.push(h("x", "experiments"));
    }
    if !app.template_errors.is_empty() {
        v.push(h("!", "template errors"));
    }
    v.push(h("?", "help"));
    v.push(h("q", "quit"));
    v
}

/// Every key and every glyph, by section, for the help overlay.
pub fn help() -> Vec<(&'static str, Vec<Hint>)> {
    vec![
        (
            "Anywhere",
            vec![
                h("Enter", "generate with the selected question, template(s) and settings"),
                h("Esc", "cancel the running generation (stops within one token); close a dialog"),
                h("Tab / Shift-Tab", "move focus: questions → prompt → settings → paths (Shift-Tab from the questions reaches the paths)"),
                h("+ / -", "one more / one fewer path per template (1–8)"),
                h("t", "choose the template (A/B view: tick up to four with Space)"),
                h("m", "switch view: N paths of one template ↔ A/B, a grid of up to four templates × N paths"),
                h("c", "calculator in the loop on/off: after \"expression =\" the engine writes the exact result (shown in its own style, not checked for arithmetic errors)"),
                h("V", "choose among the paths by: majority → weighted (by sequence probability) → verified (paths without arithmetic errors) → judge (the model reads them, templates/judge/judge.yaml)"),
                h("/", "filter questions by text"),
                h("u", "undo the last label or note"),
                h("s", "save the session (sessions/<time>-q<index>-<template>.yaml)"),
                h("o", "open a saved session (newest first); Enter then runs it again and compares"),
                h("y", "copy the focused path as an exemplar (Q: …\\nA: …); without a display it goes out as OSC 52"),
                h("Y", "write the focused path as an exemplar to a file in the sessions folder"),
                h("e", "append the focused path to its template as an exemplar (diff and warnings first)"),
                h("x", "experiments view: templates × questions, live grid, accuracy ± interval"),
                h("!", "every template file that failed to load, in full"),
                h("?", "this help"),
                h("q / Ctrl-C", "quit (asks first when labels or notes are unsaved)"),
            ],
        ),
        (
            "Questions",
            vec![
                h("↑ ↓ / j k", "select a question"),
                h("PgUp PgDn g G", "page, first, last"),
                h("0–9", "type an index to jump to it (a pause starts a new number)"),
            ],
        ),
        ("Prompt", vec![h("↑ ↓ / j k, PgUp PgDn", "scroll the rendered prompt"), h("← →", "A/B view: which template's prompt")]),
        (
            "Settings",
            vec![
                h("↑ ↓ / j k", "select a setting"),
                h("← → / h l", "change it (mode and template too)"),
                h("i or a digit", "type a value; Enter sets, Esc cancels"),
                h("r", "reset: default sampling and the template's own stop strings"),
                h("min-p", "keep tokens at least this fraction as likely as the most likely one (off: 0)"),
                h("rep penalty", "Hugging Face's repetition penalty: seen tokens' logits divided by it (1: off)"),
                h("stop", "stop strings separated by |, with \\n for a newline"),
                h("", "settings are remembered between launches"),
            ],
        ),
        (
            "Paths (only while they have focus)",
            vec![
                h("← → / h l", "focus another path"),
                h("↑ ↓ / j k, g G", "scroll the focused path; G follows the stream again"),
                h("n", "note on the focused path"),
                h("1–6", "a failure label: on one the detectors found, 1st press confirms, 2nd overrules, 3rd back to not reviewed; on another, adds it (again removes it)"),
                h("", "1 repetition  2 question_echo  3 missing_answer_marker"),
                h("", "4 runaway_question  5 no_answer  6 arithmetic_error"),
                h("7 8 9", "add or remove wrong_step / other / good"),
            ],
        ),
        tokens::help_section(),
        (
            "Experiments (x)",
            vec![
                h("setup", "Space ticks templates (the grid's columns), Tab to the questions (0..20, 1,5,9) and the name"),
                h("Enter", "run with the settings panel's values; a name already run resumes its files (same settings only)"),
                h("grid", "a cell is the majority answer, ✓/✗, and how many paths gave it (18 ✓ 4/5)"),
                h("↑↓←→ Enter", "open the cell's question and template with its paths, to label (1–9) and save (s)"),
                h("Esc", "cancel a running experiment (finished questions stay saved); else back"),
                h("n", "set up another experiment"),
                h("", "files: experiments/<name>/<template>.jsonl beside the sessions folder; cotscope report reads them"),
            ],
        ),
        (
            "What the glyphs mean",
            vec![
                h("rep? rep✓ rep✗", "label chips: detected, not reviewed · you confirmed or added · you overruled"),
                h("⚠ stale", "labels kept from a saved session whose text for this path came out different"),
                h("✓ ✗", "answer right / wrong against the gold answer"),
                h("~ (flexible)", "no \"The answer is N\": the answer is the last number in the text"),
                h("—", "no answer at all"),
                h("✎", "the path's note"),
                h("●", "a generation is running"),
                h("⟦kind …⟧", "with NO_COLOR: where a failure starts and ends"),
                h("[unsaved labels]", "labels or notes differ from the saved session"),
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
            (KeyCode::Char('Y'), "ExemplarToFile"),
            (KeyCode::Char('!'), "TemplateErrors"),
            (KeyCode::Char('q'), "Quit"),
            (KeyCode::Char('?'), "Help"),
            (KeyCode::Char('/'), "StartFilter"),
            (KeyCode::Char('c'), "ToggleCalculator"),
            (KeyCode::Char('V'), "NextStrategy"),
        ] {
            let a = intent_for(&app, key(c)).map(|a| format!("{a:?}"));
            assert_eq!(a.as_deref(), Some(want), "{c:?}");
        }
    }

    #[test]
    fn digits_depend_on_focus() {
        let mut app = super::super::app::tests::app();
        let d = key(KeyCode::Char('3'));
        assert!(matches!(intent_for(&app, d), Some(Intent::JumpDigit { digit: 3, .. })));
        app.focus = Focus::Paths;
        assert!(matches!(intent_for(&app, d), Some(Intent::ToggleLabel(3))));
        app.focus = Focus::Settings;
        assert!(matches!(intent_for(&app, d), Some(Intent::StartEdit(Some('3')))));
        app.focus = Focus::Prompt;
        assert_eq!(intent_for(&app, d), None, "digits label only the paths");
    }

    #[test]
    fn text_fields_take_letters() {
        let mut app = super::super::app::tests::app();
        app.questions.filtering = true;
        assert!(matches!(intent_for(&app, key(KeyCode::Char('q'))), Some(Intent::Input('q'))));
        assert!(matches!(intent_for(&app, key(KeyCode::Esc)), Some(Intent::Close)));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(matches!(intent_for(&app, ctrl_c), Some(Intent::Quit)));
    }
}
