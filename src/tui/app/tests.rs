//! `App::update` driven by keys (through the keymap) and by worker reports.

use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::engine::{EngineEvent, PathResult, StopReason, TokenEvent};
use crate::lab;
use crate::tui::keymap::action_for;

pub fn model_info() -> ModelInfo {
    ModelInfo {
        id: "test-model".into(),
        config_hash: "c0ffee".into(),
        n_params: 1000,
        vocab_size: 4096,
        dtype: "f32".into(),
    }
}

/// The repository's templates (the lab core's shipped set).
pub fn templates() -> Vec<(PathBuf, Template)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let set = lab::template::load_dir(&dir);
    assert!(set.templates.len() >= 2, "the repository ships templates");
    set.templates
}

/// An app on the real GSM8K test set and templates, model not loaded yet.
pub fn app() -> App {
    App::new(AppConfig {
        problems: lab::gsm8k::test_set(),
        templates: templates(),
        template_errors: Vec::new(),
        templates_dir: PathBuf::from("templates"),
        sessions_dir: PathBuf::from("sessions"),
        theme: Theme::color(),
    })
}

pub fn ready_app() -> App {
    let mut a = app();
    let cmds = a.update(Action::ModelLoaded(model_info()));
    assert!(
        cmds.iter().any(|c| matches!(c, Command::CountTokens { .. })),
        "token counts are asked for once the model is there"
    );
    a
}

pub fn press(app: &mut App, code: KeyCode) -> Vec<Command> {
    press_mod(app, code, KeyModifiers::NONE)
}

pub fn press_mod(app: &mut App, code: KeyCode, m: KeyModifiers) -> Vec<Command> {
    match action_for(app, KeyEvent::new(code, m)) {
        Some(a) => app.update(a),
        None => Vec::new(),
    }
}

pub fn type_str(app: &mut App, s: &str) {
    for c in s.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn run_id(cmds: &[Command]) -> u64 {
    cmds.iter()
        .find_map(|c| match c {
            Command::StartGeneration { run, .. } => Some(*run),
            _ => None,
        })
        .expect("a generation starts")
}

/// Feeds `texts[i]` to path i as one token per word, then finishes every path and the generation.
pub fn stream(app: &mut App, run: u64, texts: &[&str], finish: bool) {
    app.update(Action::Engine {
        run,
        request: 0,
        event: EngineEvent::Prefilled { prompt_tokens: 100, prefill_ms: 50.0 },
        at_ms: 50.0,
    });
    for (path, text) in texts.iter().enumerate() {
        let mut ms = 50.0;
        for (i, w) in text.split_inclusive(' ').enumerate() {
            ms += 25.0;
            app.update(Action::Engine {
                run,
                request: 0,
                event: EngineEvent::Token(TokenEvent {
                    path,
                    id: Some(i as u32 + 10),
                    text: w.to_string(),
                    ..TokenEvent::default()
                }),
                at_ms: ms,
            });
        }
    }
    if finish {
        for (path, text) in texts.iter().enumerate() {
            let n = text.split_inclusive(' ').count();
            let done = PathResult {
                text: text.to_string(),
                token_ids: (0..n as u32).map(|i| i + 10).collect(),
                ..PathResult::empty(path, StopReason::StopString(if path == 0 { "\n\n" } else { "\nQ:" }.into()))
            };
            app.update(Action::Engine { run, request: 0, event: EngineEvent::Done(done), at_ms: 500.0 });
        }
        app.update(Action::GenerationFinished { run });
    }
}

/// A ready app that generated two paths on question 1 (the first answers 3, right; the second loops).
pub fn finished_app() -> App {
    let mut a = ready_app();
    a.update(Action::MoveQuestion(1));
    let cmds = press(&mut a, KeyCode::Enter);
    let run = run_id(&cmds);
    stream(&mut a, run, &TWO_PATHS, true);
    a
}

pub const TWO_PATHS: [&str; 2] = [
    " It takes 2 / 2 = 1 bolt of white fiber. So the total is 2 + 1 = 3 bolts. The answer is 3.",
    " The robe takes 2 bolts. The robe takes 2 bolts. The robe takes 2 bolts. 2 * 2 = 5.",
];

#[test]
fn generate_needs_a_model_then_starts_with_the_settings() {
    let mut a = app();
    let cmds = press(&mut a, KeyCode::Enter);
    assert!(cmds.is_empty());
    assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.contains("loading")));
    a.update(Action::ModelLoaded(model_info()));
    press(&mut a, KeyCode::Char('j'));
    press(&mut a, KeyCode::Char('+'));
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::StartGeneration { requests, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].paths, 3, "two by default, plus one");
    assert_eq!(requests[0].sampling, a.settings.sampling);
    let q1 = &lab::gsm8k::test_set()[1].question;
    assert!(requests[0].prompt.contains(q1.as_str()), "the prompt ends with question 1");
    assert_eq!(a.focus, Focus::Paths);
    assert_eq!(a.run.as_ref().map(|r| r.panes.len()), Some(3));
    // A second Enter while it runs does nothing but say so.
    assert!(press(&mut a, KeyCode::Enter).is_empty());
}

#[test]
fn esc_cancels_the_running_generation_once() {
    let mut a = ready_app();
    let run = run_id(&press(&mut a, KeyCode::Enter));
    let cmds = press(&mut a, KeyCode::Esc);
    assert!(matches!(cmds.as_slice(), [Command::CancelGeneration { run: r }] if *r == run));
    assert!(press(&mut a, KeyCode::Esc).is_empty(), "already cancelling");
    stream(&mut a, run, &["x"], false);
    a.update(Action::GenerationFinished { run });
    let r = a.run.as_ref().unwrap();
    assert!(!r.running);
    assert!(r.panes.iter().all(|p| p.finished()));
    assert_eq!(r.panes[1].stop, Some(StopReason::Cancelled));
}

#[test]
fn tokens_stream_into_panes_with_findings_and_vote() {
    let a = finished_app();
    let r = a.run.as_ref().unwrap();
    assert_eq!(r.panes[0].answer.as_deref(), Some("3"));
    assert_eq!(r.correct(r.panes[0].answer.as_deref()), Some(true));
    assert_eq!(r.panes[0].token_ids.len(), TWO_PATHS[0].split_inclusive(' ').count());
    assert!(r.panes[1].labels.get(Label::Repetition).detected, "detectors pre-fill labels");
    assert!(!r.panes[1].labels.get(Label::NoAnswer).detected, "its final `2 * 2 = 5.` is an answer, flexible");
    let v = r.vote();
    assert_eq!(v.majority.as_deref(), Some("3"));
    assert!(!a.unsaved(), "no annotation yet");
}

#[test]
fn label_toggle_undo_and_quit_confirmation() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Right);
    assert_eq!(a.pane, 1);
    // 1 = repetition: detected on path 2; pressing overrules it, pressing again confirms it.
    press(&mut a, KeyCode::Char('1'));
    assert_eq!(
        a.focused_pane().unwrap().labels.get(Label::Repetition),
        LabelState { detected: true, human: Some(false) }
    );
    press(&mut a, KeyCode::Char('1'));
    assert_eq!(
        a.focused_pane().unwrap().labels.get(Label::Repetition),
        LabelState { detected: true, human: Some(true) }
    );
    // 7 = wrong_step, a human-only label.
    press(&mut a, KeyCode::Char('7'));
    assert_eq!(
        a.focused_pane().unwrap().labels.get(Label::WrongStep),
        LabelState { detected: false, human: Some(true) }
    );
    assert!(a.unsaved());
    // q asks; n stays.
    let cmds = press(&mut a, KeyCode::Char('q'));
    assert!(cmds.is_empty() && !a.quit);
    assert!(matches!(a.overlay, Some(Overlay::ConfirmQuit)));
    press(&mut a, KeyCode::Char('n'));
    assert!(a.overlay.is_none());
    // Undo walks back one change at a time.
    press(&mut a, KeyCode::Char('u'));
    assert!(!a.focused_pane().unwrap().labels.get(Label::WrongStep).effective());
    press(&mut a, KeyCode::Char('u'));
    press(&mut a, KeyCode::Char('u'));
    assert_eq!(a.focused_pane().unwrap().labels.get(Label::Repetition), LabelState { detected: true, human: None });
    press(&mut a, KeyCode::Char('u'));
    assert_eq!(a.status.as_ref().map(|s| s.text.as_str()), Some("nothing to undo"));
    // q, then y, quits.
    press(&mut a, KeyCode::Char('q'));
    let cmds = press(&mut a, KeyCode::Char('y'));
    assert!(a.quit);
    assert!(matches!(cmds.as_slice(), [Command::Quit]));
}

#[test]
fn quit_without_annotations_does_not_ask() {
    let mut a = finished_app();
    let cmds = press(&mut a, KeyCode::Char('q'));
    assert!(a.quit && matches!(cmds.as_slice(), [Command::Quit]));
    let mut b = app();
    press_mod(&mut b, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(b.quit);
}

#[test]
fn notes_are_typed_kept_and_undone() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Char('n'));
    type_str(&mut a, "loops q");
    press(&mut a, KeyCode::Backspace);
    press(&mut a, KeyCode::Backspace);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.focused_pane().unwrap().note, "loops");
    assert!(a.unsaved());
    press(&mut a, KeyCode::Char('u'));
    assert_eq!(a.focused_pane().unwrap().note, "");
}

#[test]
fn save_records_labels_and_clears_unsaved() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Char('6'));
    let cmds = press(&mut a, KeyCode::Char('s'));
    let Some(Command::SaveSession { session, path: None }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(session.question.index, 1);
    assert_eq!(session.paths.len(), 2);
    let l = session.paths[0].labels.iter().find(|l| l.label == Label::ArithmeticError).expect("label saved");
    assert_eq!((l.detected, l.human, l.value), (false, Some(true), true));
    assert_eq!(session.model, model_info());
    assert!(a.unsaved());
    a.update(Action::SessionSaved(PathBuf::from("sessions/x.yaml")));
    assert!(!a.unsaved());
    // Saving again goes to the same file.
    let cmds = press(&mut a, KeyCode::Char('s'));
    assert!(
        matches!(cmds.first(), Some(Command::SaveSession { path: Some(p), .. }) if p == Path::new("sessions/x.yaml"))
    );
}

#[test]
fn enter_twice_discards_unsaved_labels() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Char('1'));
    assert!(press(&mut a, KeyCode::Enter).is_empty(), "first Enter warns");
    assert!(a.status.as_ref().is_some_and(|s| s.error));
    assert!(!press(&mut a, KeyCode::Enter).is_empty(), "second Enter generates");
}

#[test]
fn opened_session_shows_as_saved_and_regenerates_the_same_prompt() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Char('1'));
    let sent = a.run.as_ref().unwrap().prompts[0].clone();
    let session = Session::from_run(a.run.as_ref().unwrap(), &model_info());
    let mut b = ready_app();
    press(&mut b, KeyCode::Char('5'));
    b.update(Action::SessionOpened { path: PathBuf::from("sessions/s.yaml"), session: Box::new(session.clone()) });
    let r = b.run.as_ref().unwrap();
    assert_eq!(r.panes.len(), 2);
    assert_eq!(r.panes[1].text, TWO_PATHS[1]);
    assert!(r.panes[0].labels.get(Label::Repetition).effective());
    assert_eq!(b.questions.selected_index(), Some(1));
    assert_eq!(Session::from_run(r, &model_info()), session, "opened exactly as saved");
    let cmds = press(&mut b, KeyCode::Enter);
    let Some(Command::StartGeneration { requests, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(requests[0].prompt, sent.prompt);
    assert_eq!(requests[0].sampling, session.sampling);
    assert_eq!(requests[0].paths, 2);
}

#[test]
fn filter_and_jump_select_questions() {
    let mut a = app();
    press(&mut a, KeyCode::Char('/'));
    type_str(&mut a, "robe");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.questions.selected_index(), Some(1));
    assert!(a.prompts[0].prompt.contains("robe"));
    press(&mut a, KeyCode::Esc);
    press(&mut a, KeyCode::Char('/'));
    press(&mut a, KeyCode::Esc);
    assert!(a.questions.filter.is_empty());
    type_str(&mut a, "42");
    assert_eq!(a.questions.selected_index(), Some(42));
    press(&mut a, KeyCode::Down);
    type_str(&mut a, "7");
    assert_eq!(a.questions.selected_index(), Some(7), "another key starts a new number");
}

#[test]
fn settings_are_edited_by_keys() {
    let mut a = app();
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Tab);
    assert_eq!(a.focus, Focus::Settings);
    // Down to temperature, step it down, then type a seed.
    for _ in 0..3 {
        press(&mut a, KeyCode::Down);
    }
    assert_eq!(a.setting_field(), Field::Temperature);
    press(&mut a, KeyCode::Left);
    assert!((a.settings.sampling.temperature - 0.6).abs() < 1e-9);
    for _ in 0..4 {
        press(&mut a, KeyCode::Down);
    }
    assert_eq!(a.setting_field(), Field::Seed);
    type_str(&mut a, "123");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.settings.sampling.seed, 123);
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Char('i'));
    press(&mut a, KeyCode::Char('|'));
    type_str(&mut a, "\\n\\n");
    press(&mut a, KeyCode::Enter);
    let stops = a.settings.stop_override.clone().unwrap();
    assert_eq!(stops.last().map(String::as_str), Some("\n\n"));
    assert_eq!(a.prompts[0].stop, stops, "stop strings go into the request");
    // A bad value is refused with a message.
    press(&mut a, KeyCode::Up);
    type_str(&mut a, "9x");
    press(&mut a, KeyCode::Enter);
    assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.starts_with("seed")));
}

#[test]
fn ab_mode_runs_one_path_per_ticked_template() {
    let mut a = ready_app();
    press(&mut a, KeyCode::Char('m'));
    assert_eq!(a.mode, CompareMode::Ab);
    assert_eq!(a.prompts.len(), 2);
    press(&mut a, KeyCode::Char('t'));
    let n = a.templates.len();
    // Untick the first, keep the second.
    press(&mut a, KeyCode::Char(' '));
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.ab.len(), 1);
    press(&mut a, KeyCode::Char('t'));
    for i in 0..n {
        press(&mut a, KeyCode::Char(' '));
        if i + 1 < n {
            press(&mut a, KeyCode::Down);
        }
    }
    press(&mut a, KeyCode::Enter);
    assert!(a.ab.len() <= 4);
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::StartGeneration { requests, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(requests.len(), a.ab.len());
    assert!(requests.iter().all(|r| r.paths == 1));
    assert_eq!(a.run.as_ref().unwrap().panes.len(), a.ab.len());
}

#[test]
fn exemplar_goes_to_the_template_or_a_named_copy() {
    let mut a = finished_app();
    let before = a.templates[a.template].template.exemplars().len();
    press(&mut a, KeyCode::Char('e'));
    let Some(Overlay::Exemplar(p)) = &a.overlay else { panic!("no confirmation") };
    assert!(p.diff.iter().any(|d| matches!(d, DiffLine::Added(s) if s.contains("2 + 1 = 3"))), "{:?}", p.diff);
    let cmds = press(&mut a, KeyCode::Char('a'));
    let Some(Command::WriteTemplate { path, template }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(path, &a.templates[a.template].path);
    assert_eq!(template.exemplars().len(), before + 1);

    press(&mut a, KeyCode::Char('e'));
    press(&mut a, KeyCode::Char('c'));
    for _ in 0..30 {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "bad name");
    assert!(press(&mut a, KeyCode::Enter).is_empty(), "refused");
    for _ in 0..5 {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "mine");
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::WriteTemplate { path, template }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(path, &PathBuf::from("templates/badmine.yaml"));
    assert_eq!(template.name, "badmine");
    a.update(Action::TemplateWritten { path: path.clone(), template: template.clone() });
    assert_eq!(a.templates[a.template].template.name, "badmine");
}

#[test]
fn copy_sends_the_exemplar_text() {
    let mut a = finished_app();
    let cmds = press(&mut a, KeyCode::Char('y'));
    let q = &lab::gsm8k::test_set()[1].question;
    let want = format!("Q: {}\nA: {}", q.trim(), TWO_PATHS[0].trim());
    assert!(matches!(cmds.as_slice(), [Command::Copy(t)] if *t == want), "{cmds:?}");
    a.update(Action::Copied(ClipboardOutcome::Osc52 { reason: "no DISPLAY".into() }));
    assert!(a.status.as_ref().is_some_and(|s| s.text.contains("OSC 52")));
}

#[test]
fn stale_events_of_an_old_run_are_ignored() {
    let mut a = ready_app();
    let run = run_id(&press(&mut a, KeyCode::Enter));
    a.update(Action::Engine {
        run: run + 10,
        request: 0,
        event: EngineEvent::Token(TokenEvent { path: 0, id: Some(1), text: "x".into(), ..TokenEvent::default() }),
        at_ms: 1.0,
    });
    assert!(a.run.as_ref().unwrap().panes[0].text.is_empty());
}

#[test]
fn s_in_the_quit_question_saves_then_quits() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Char('2'));
    press(&mut a, KeyCode::Char('q'));
    let cmds = press(&mut a, KeyCode::Char('s'));
    assert!(matches!(cmds.as_slice(), [Command::SaveSession { .. }]));
    assert!(a.overlay.is_none() && !a.quit);
    let cmds = a.update(Action::SessionSaved(PathBuf::from("sessions/q.yaml")));
    assert!(a.quit && matches!(cmds.as_slice(), [Command::Quit]));
    // A failed save does not quit.
    let mut b = finished_app();
    press(&mut b, KeyCode::Char('2'));
    press(&mut b, KeyCode::Char('q'));
    press(&mut b, KeyCode::Char('s'));
    b.update(Action::Failed("disk full".into()));
    assert!(!b.quit && b.unsaved());
}
