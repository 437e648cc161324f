//! `App::update` driven by keys (through the keymap), and `App::on_report` by worker reports.

use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::engine::{EngineEvent, PathResult, StopReason};
use crate::lab;
use crate::lab::labels::{Label, LabelState};
use crate::tui::clipboard::ClipboardOutcome;
use crate::tui::exemplar::DiffLine;
use crate::tui::keymap::intent_for;
use crate::tui::session::Session;
use crate::tui::settings::Settings;

pub fn model_info() -> ModelInfo {
    ModelInfo {
        id: "test-model".into(),
        config_hash: "c0ffee".into(),
        n_params: 1000,
        vocab_size: 4096,
        dtype: "f32".into(),
        remote: None,
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
        settings: None,
    })
}

pub fn ready_app() -> App {
    let mut a = app();
    let cmds = a.on_report(Report::ModelLoaded(model_info()));
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
    match intent_for(app, KeyEvent::new(code, m)) {
        Some(i) => app.update(i),
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
            Command::StartGeneration { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a generation starts")
}

/// Feeds `texts[i]` to path i as one token per word, then finishes every path and the generation.
pub fn stream(app: &mut App, run: u64, texts: &[&str], finish: bool) {
    app.on_report(Report::Engine {
        id: run,
        request: 0,
        event: EngineEvent::Prefilled { prompt_tokens: 100, prefill_ms: 50.0 },
        at_ms: 50.0,
    });
    for (path, text) in texts.iter().enumerate() {
        let mut ms = 50.0;
        for (i, w) in text.split_inclusive(' ').enumerate() {
            ms += 25.0;
            app.on_report(Report::Engine {
                id: run,
                request: 0,
                event: EngineEvent::Token(crate::engine::TokenEvent {
                    path,
                    id: Some(i as u32 + 10),
                    text: w.to_string(),
                    ..Default::default()
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
            app.on_report(Report::Engine { id: run, request: 0, event: EngineEvent::Done(done), at_ms: 500.0 });
        }
        app.on_report(Report::GenerationFinished { id: run });
    }
}

/// A ready app that generated two paths on question 1 (the first answers 3, right; the second loops).
pub fn finished_app() -> App {
    let mut a = ready_app();
    a.update(Intent::MoveQuestion(1));
    let cmds = press(&mut a, KeyCode::Enter);
    let run = run_id(&cmds);
    stream(&mut a, run, &TWO_PATHS, true);
    // Shift-Tab from the questions: the paths take the keys (labels, notes).
    press(&mut a, KeyCode::BackTab);
    assert_eq!(a.focus, Focus::Paths);
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
    a.on_report(Report::ModelLoaded(model_info()));
    press(&mut a, KeyCode::Char('j'));
    press(&mut a, KeyCode::Char('+'));
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::StartGeneration { requests, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].paths, 3, "two by default, plus one");
    assert_eq!(requests[0].sampling, a.settings.sampling);
    let q1 = &lab::gsm8k::test_set()[1].question;
    assert!(requests[0].prompt.contains(q1.as_str()), "the prompt ends with question 1");
    assert_eq!(a.focus, Focus::Questions, "focus stays: digits still pick questions");
    assert_eq!(a.generation.as_ref().map(|r| r.panes.len()), Some(3));
    // A second Enter while it runs does nothing but say so.
    assert!(press(&mut a, KeyCode::Enter).is_empty());
}

#[test]
fn c_switches_the_calculator_for_the_next_generation_and_the_session_records_it() {
    let mut a = ready_app();
    let cmds = press(&mut a, KeyCode::Char('c'));
    assert!(matches!(cmds.as_slice(), [Command::SaveSettings(s)] if s.calculator), "{cmds:?}");
    assert!(a.status.as_ref().is_some_and(|s| s.text.starts_with("calculator on")));
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::StartGeneration { requests, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(requests[0].forcer.as_ref().map(|f| f.0.name()), Some("calculator"));
    let record = a.generation.as_ref().unwrap().record(&model_info());
    assert!(record.calculator, "the run record says the calculator wrote results");
    // Off again: the next request has no forcer.
    a.update(Intent::Cancel);
    a.on_report(Report::GenerationFinished { id: a.generation.as_ref().unwrap().id });
    press(&mut a, KeyCode::Char('c'));
    a.pinned = None;
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::StartGeneration { requests, .. }) =
        cmds.iter().find(|c| matches!(c, Command::StartGeneration { .. }))
    else {
        panic!("{cmds:?}")
    };
    assert!(requests[0].forcer.is_none());
}

#[test]
fn esc_cancels_the_running_generation_once() {
    let mut a = ready_app();
    let run = run_id(&press(&mut a, KeyCode::Enter));
    let cmds = press(&mut a, KeyCode::Esc);
    assert!(matches!(cmds.as_slice(), [Command::CancelGeneration { id: r }] if *r == run));
    assert!(press(&mut a, KeyCode::Esc).is_empty(), "already cancelling");
    stream(&mut a, run, &["x"], false);
    a.on_report(Report::GenerationFinished { id: run });
    let r = a.generation.as_ref().unwrap();
    assert!(!r.running);
    assert!(r.panes.iter().all(|p| p.finished()));
    assert_eq!(r.panes[1].stop, Some(StopReason::Cancelled));
}

#[test]
fn tokens_stream_into_panes_with_findings_and_vote() {
    let a = finished_app();
    let r = a.generation.as_ref().unwrap();
    assert_eq!(r.panes[0].answer.as_deref(), Some("3"));
    assert_eq!(r.correct(r.panes[0].answer.as_deref()), Some(true));
    assert_eq!(r.panes[0].token_ids.len(), TWO_PATHS[0].split_inclusive(' ').count());
    assert!(
        r.panes[1].labels.get(Label::Failure(crate::lab::detect::FailureKind::Repetition)).detected,
        "detectors pre-fill labels"
    );
    let v = r.vote();
    assert_eq!(v.majority.as_deref(), Some("3"));
    assert!(!a.unsaved(), "no annotation yet");
}

#[test]
fn label_toggle_undo_and_quit_confirmation() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Right);
    assert_eq!(a.pane, 1);
    // 1 = repetition: detected on path 2; the first press confirms it, the second overrules it.
    press(&mut a, KeyCode::Char('1'));
    assert_eq!(
        a.focused_pane().unwrap().labels.get(Label::Failure(crate::lab::detect::FailureKind::Repetition)),
        LabelState { detected: true, human: Some(true) }
    );
    assert_eq!(a.status.as_ref().map(|s| s.text.as_str()), Some("path 2: repetition confirmed"));
    press(&mut a, KeyCode::Char('1'));
    assert_eq!(
        a.focused_pane().unwrap().labels.get(Label::Failure(crate::lab::detect::FailureKind::Repetition)),
        LabelState { detected: true, human: Some(false) }
    );
    assert_eq!(a.status.as_ref().map(|s| s.text.as_str()), Some("path 2: repetition overruled"));
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
    assert_eq!(
        a.focused_pane().unwrap().labels.get(Label::Failure(crate::lab::detect::FailureKind::Repetition)),
        LabelState { detected: true, human: None }
    );
    press(&mut a, KeyCode::Char('u'));
    assert_eq!(a.status.as_ref().map(|s| s.text.as_str()), Some("nothing to undo"));
    // Everything undone is nothing unsaved: q quits at once. With a label, q asks and y quits.
    assert!(!a.unsaved());
    press(&mut a, KeyCode::Char('8'));
    press(&mut a, KeyCode::Char('q'));
    assert!(!a.quit);
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
    assert_eq!(session.run.question.index, 1);
    assert_eq!(session.run.paths.len(), 2);
    let l = session.run.paths[0]
        .labels
        .iter()
        .find(|l| l.label == Label::Failure(crate::lab::detect::FailureKind::ArithmeticError))
        .expect("label saved");
    assert_eq!((l.detected, l.human, l.value), (false, Some(true), true));
    assert_eq!(session.run.model, model_info());
    assert!(a.unsaved());
    a.on_report(Report::SessionSaved(PathBuf::from("sessions/x.yaml")));
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
    let sent = a.generation.as_ref().unwrap().prompts[0].clone();
    let session = Session::from_generation(a.generation.as_ref().unwrap(), &model_info());
    let mut b = ready_app();
    press(&mut b, KeyCode::Char('5'));
    b.on_report(Report::SessionOpened { path: PathBuf::from("sessions/s.yaml"), session: Box::new(session.clone()) });
    let r = b.generation.as_ref().unwrap();
    assert_eq!(r.panes.len(), 2);
    assert_eq!(r.panes[1].text, TWO_PATHS[1]);
    assert!(r.panes[0].labels.get(Label::Failure(crate::lab::detect::FailureKind::Repetition)).effective());
    assert_eq!(b.questions.selected_index(), Some(1));
    assert_eq!(Session::from_generation(r, &model_info()), session, "opened exactly as saved");
    let cmds = press(&mut b, KeyCode::Enter);
    let Some(Command::StartGeneration { requests, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(requests[0].prompt, sent.prompt);
    assert_eq!(requests[0].sampling, session.run.sampling);
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
fn ab_mode_runs_a_grid_of_ticked_templates_by_paths() {
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
    // The fifth tick is refused, saying why.
    assert!(n > 4, "the repository ships five templates");
    assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.contains("at most 4 templates")), "{:?}", a.status);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.ab.len(), 4);
    press(&mut a, KeyCode::Char('+'));
    assert_eq!(a.settings.paths, 3, "+ adds a path per template in the A/B view too");
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::StartGeneration { requests, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| r.paths == 3));
    assert_eq!(a.generation.as_ref().unwrap().panes.len(), 12);
}

#[test]
fn exemplar_goes_to_the_template_or_a_named_copy() {
    let mut a = finished_app();
    let before = a.templates[a.template].template.exemplars().len();
    press(&mut a, KeyCode::Char('e'));
    let Some(Overlay::Exemplar(p)) = &a.overlay else { panic!("no confirmation") };
    assert!(p.diff.iter().any(|d| matches!(d, DiffLine::Added(s) if s.contains("2 + 1 = 3"))), "{:?}", p.diff);
    assert!(p.warnings.iter().any(|w| w.contains("contaminates every eval")), "{:?}", p.warnings);
    assert!(press(&mut a, KeyCode::Char('a')).is_empty(), "the first press only warns");
    let cmds = press(&mut a, KeyCode::Char('a'));
    let Some(Command::WriteTemplate { path, template, .. }) = cmds.first() else { panic!("{cmds:?}") };
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
    assert!(press(&mut a, KeyCode::Enter).is_empty(), "a good name: the warnings first");
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::WriteTemplate { path, template, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(path, &PathBuf::from("templates/badmine.yaml"));
    assert_eq!(template.name, "badmine");
    a.on_report(Report::TemplateWritten { path: path.clone(), template: template.clone() });
    assert_eq!(a.templates[a.template].template.name, "badmine");
}

#[test]
fn copy_sends_the_exemplar_text() {
    let mut a = finished_app();
    let cmds = press(&mut a, KeyCode::Char('y'));
    let q = &lab::gsm8k::test_set()[1].question;
    let want = format!("Q: {}\nA: {}", q.trim(), TWO_PATHS[0].trim());
    assert!(matches!(cmds.as_slice(), [Command::Copy(t)] if *t == want), "{cmds:?}");
    a.on_report(Report::Copied(ClipboardOutcome::Osc52 { reason: "no DISPLAY".into() }));
    let s = a.status.clone().unwrap().text;
    assert!(
        s.contains("as an OSC 52 sequence") && s.contains("set-clipboard on") && s.contains("Y writes it to a file"),
        "{s}"
    );
    let cmds = press(&mut a, KeyCode::Char('Y'));
    let Some(Command::WriteExemplar { path, text }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!((path, text), (&PathBuf::from("sessions/exemplar-q1-path1.txt"), &want));
    a.on_report(Report::ExemplarWritten(path.clone()));
    assert_eq!(a.status.clone().unwrap().text, "wrote the exemplar to sessions/exemplar-q1-path1.txt");
}

#[test]
fn stale_events_of_an_old_run_are_ignored() {
    let mut a = ready_app();
    let run = run_id(&press(&mut a, KeyCode::Enter));
    a.on_report(Report::Engine {
        id: run + 10,
        request: 0,
        event: EngineEvent::Token(crate::engine::TokenEvent {
            path: 0,
            id: Some(1),
            text: "x".into(),
            ..Default::default()
        }),
        at_ms: 1.0,
    });
    assert!(a.generation.as_ref().unwrap().panes[0].text.is_empty());
}

#[test]
fn s_in_the_quit_question_saves_then_quits() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Char('2'));
    press(&mut a, KeyCode::Char('q'));
    let cmds = press(&mut a, KeyCode::Char('s'));
    assert!(matches!(cmds.as_slice(), [Command::SaveSession { .. }]));
    assert!(a.overlay.is_none() && !a.quit);
    let cmds = a.on_report(Report::SessionSaved(PathBuf::from("sessions/q.yaml")));
    assert!(a.quit && matches!(cmds.as_slice(), [Command::Quit]));
    // A failed save does not quit.
    let mut b = finished_app();
    press(&mut b, KeyCode::Char('2'));
    press(&mut b, KeyCode::Char('q'));
    press(&mut b, KeyCode::Char('s'));
    b.on_report(Report::Failed("disk full".into()));
    assert!(!b.quit && b.unsaved());
}

const REPETITION: Label = Label::Failure(crate::lab::detect::FailureKind::Repetition);

#[test]
fn a_detected_label_cycles_confirm_overrule_unreviewed_and_an_undetected_one_is_added() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Right);
    let state = |a: &App, l: Label| a.focused_pane().unwrap().labels.get(l);
    assert_eq!(state(&a, REPETITION), LabelState { detected: true, human: None }, "pre-filled");
    for (want, says) in [(Some(true), "confirmed"), (Some(false), "overruled"), (None, "not reviewed (as detected)")] {
        press(&mut a, KeyCode::Char('1'));
        assert_eq!(state(&a, REPETITION).human, want);
        assert_eq!(a.status.as_ref().map(|s| s.text.clone()), Some(format!("path 2: repetition {says}")));
    }
    press(&mut a, KeyCode::Char('9'));
    assert_eq!(state(&a, Label::Good), LabelState { detected: false, human: Some(true) });
    assert_eq!(a.status.as_ref().map(|s| s.text.as_str()), Some("path 2: good added"));
    press(&mut a, KeyCode::Char('9'));
    assert_eq!(state(&a, Label::Good), LabelState { detected: false, human: None });
}

#[test]
fn digits_label_only_while_the_paths_have_focus() {
    let mut a = finished_app();
    let labels = |a: &App| a.generation.as_ref().unwrap().panes.iter().map(|p| p.labels.clone()).collect::<Vec<_>>();
    let before = labels(&a);
    press(&mut a, KeyCode::Tab); // questions
    assert_eq!(a.focus, Focus::Questions);
    type_str(&mut a, "5");
    assert_eq!(a.questions.selected_index(), Some(5), "a digit picks a question there");
    press(&mut a, KeyCode::Tab); // prompt
    assert_eq!(a.focus, Focus::Prompt);
    assert!(press(&mut a, KeyCode::Char('5')).is_empty());
    assert_eq!(labels(&a), before, "no path was labelled");
    assert!(!a.unsaved());
}

#[test]
fn focus_stays_put_after_the_template_picker_and_enter() {
    let mut a = ready_app();
    press(&mut a, KeyCode::Char('t'));
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Enter);
    assert!(a.overlay.is_none());
    assert_eq!(a.focus, Focus::Questions);
    press(&mut a, KeyCode::Enter);
    assert!(a.generating());
    assert_eq!(a.focus, Focus::Questions);
    type_str(&mut a, "12");
    assert_eq!(a.questions.selected_index(), Some(12), "digits typed after Enter still pick a question");
}

#[test]
fn undo_back_to_the_saved_state_clears_unsaved() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Char('7'));
    assert!(a.unsaved());
    press(&mut a, KeyCode::Char('u'));
    assert!(!a.unsaved(), "undone to how the run began");
    press(&mut a, KeyCode::Char('8'));
    press(&mut a, KeyCode::Char('s'));
    a.on_report(Report::SessionSaved(PathBuf::from("sessions/u.yaml")));
    assert!(!a.unsaved());
    press(&mut a, KeyCode::Char('n'));
    type_str(&mut a, "hm");
    press(&mut a, KeyCode::Enter);
    press(&mut a, KeyCode::Char('7'));
    assert!(a.unsaved());
    press(&mut a, KeyCode::Char('u'));
    assert!(a.unsaved(), "the note is still new");
    press(&mut a, KeyCode::Char('u'));
    assert!(!a.unsaved(), "back to what was saved");
    press(&mut a, KeyCode::Char('u'));
    assert!(a.unsaved(), "undoing past the save differs from the file");
}

/// A finished app whose run was saved and opened again; returns it and the generation Enter starts.
fn reopened() -> (App, u64) {
    let mut a = finished_app();
    press(&mut a, KeyCode::Right);
    press(&mut a, KeyCode::Char('7'));
    press(&mut a, KeyCode::Char('n'));
    type_str(&mut a, "loops");
    press(&mut a, KeyCode::Enter);
    let session = Session::from_generation(a.generation.as_ref().unwrap(), &model_info());
    let mut b = ready_app();
    b.on_report(Report::SessionOpened { path: PathBuf::from("sessions/s.yaml"), session: Box::new(session) });
    let run = run_id(&press(&mut b, KeyCode::Enter));
    (b, run)
}

#[test]
fn rerunning_an_opened_session_reports_identical_text_and_keeps_labels() {
    let (mut b, run) = reopened();
    let p = &b.generation.as_ref().unwrap().panes[1];
    assert_eq!((p.labels.get(Label::WrongStep).human, p.note.as_str()), (Some(true), "loops"), "kept while it runs");
    stream(&mut b, run, &TWO_PATHS, true);
    let s = b.status.clone().unwrap();
    assert_eq!(s.text, "rerun: identical to the saved session (labels and notes kept)");
    let r = b.generation.as_ref().unwrap();
    assert!(r.panes.iter().all(|p| !p.stale));
    assert_eq!(r.panes[1].labels.get(Label::WrongStep).human, Some(true));
}

#[test]
fn rerunning_an_opened_session_names_the_paths_that_differ_and_marks_their_labels_stale() {
    let (mut b, run) = reopened();
    stream(&mut b, run, &[TWO_PATHS[0], " Something else entirely. The answer is 4."], true);
    let s = b.status.clone().unwrap();
    assert_eq!(s.text, "rerun: path(s) 2 differ from the saved session; their labels are kept, marked stale");
    let r = b.generation.as_ref().unwrap();
    assert!(!r.panes[0].stale && r.panes[1].stale);
    assert_eq!((r.panes[1].labels.get(Label::WrongStep).human, r.panes[1].note.as_str()), (Some(true), "loops"));
    let saved = Session::from_generation(r, &model_info());
    assert!(saved.run.paths[1].stale && !saved.run.paths[0].stale, "the mark is saved");
}

#[test]
fn a_refused_save_in_the_quit_question_does_not_quit_on_a_later_save() {
    let mut a = ready_app();
    let run = run_id(&press(&mut a, KeyCode::Enter));
    stream(&mut a, run, &["x y"], false);
    press(&mut a, KeyCode::BackTab);
    press(&mut a, KeyCode::Char('7'));
    press(&mut a, KeyCode::Char('q'));
    assert!(matches!(a.overlay, Some(Overlay::ConfirmQuit)));
    assert!(press(&mut a, KeyCode::Char('s')).is_empty(), "still generating: refused");
    a.on_report(Report::GenerationFinished { id: run });
    let cmds = press(&mut a, KeyCode::Char('s'));
    assert!(matches!(cmds.as_slice(), [Command::SaveSession { .. }]));
    let cmds = a.on_report(Report::SessionSaved(PathBuf::from("sessions/z.yaml")));
    assert!(!a.quit && cmds.is_empty(), "an ordinary save does not quit");
}

#[test]
fn a_copy_never_takes_another_templates_file() {
    let mut a = finished_app();
    // cot-paths.yaml holds a template; name it something else so only its file name collides.
    let i = a.templates.iter().position(|t| t.path.ends_with("cot-paths.yaml")).unwrap();
    a.templates[i].template.name = "renamed".into();
    press(&mut a, KeyCode::Char('e'));
    press(&mut a, KeyCode::Char('c'));
    for _ in 0..30 {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "cot-paths");
    assert!(press(&mut a, KeyCode::Enter).is_empty(), "refused");
    assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.contains("holds template renamed")), "{:?}", a.status);
    for _ in 0..30 {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "mine");
    assert!(press(&mut a, KeyCode::Enter).is_empty(), "the warnings first");
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::WriteTemplate { template, new, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert!(*new, "written only as a new file");
    assert!(
        template
            .description
            .starts_with(&format!("Copy of {} with exemplars added", a.templates[a.template].template.name)),
        "{}",
        template.description
    );
}

#[test]
fn a_pause_between_digits_starts_a_new_question_number() {
    let mut a = app();
    let t = std::time::Instant::now();
    for (d, ms) in [(1, 0), (2, 300), (3, 600)] {
        a.update(Intent::JumpDigit { digit: d, at: t + std::time::Duration::from_millis(ms) });
    }
    assert_eq!(a.questions.selected_index(), Some(123));
    a.update(Intent::JumpDigit { digit: 5, at: t + std::time::Duration::from_millis(2600) });
    assert_eq!(a.questions.selected_index(), Some(5), "typed two seconds later: 5, not 1235");
}

#[test]
fn settings_reset_with_one_key_and_every_change_is_remembered() {
    let mut a = app();
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Tab);
    for _ in 0..3 {
        press(&mut a, KeyCode::Down);
    }
    let cmds = press(&mut a, KeyCode::Left);
    assert!(matches!(cmds.as_slice(), [Command::SaveSettings(s)] if s.sampling.temperature < 0.7), "{cmds:?}");
    a.update(Intent::SelectSetting(5));
    press(&mut a, KeyCode::Char('i'));
    for _ in 0..20 {
        press(&mut a, KeyCode::Backspace);
    }
    type_str(&mut a, "\\n\\n");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.prompts[0].stop, vec!["\n\n".to_string()]);
    let cmds = press(&mut a, KeyCode::Char('r'));
    assert!(matches!(cmds.as_slice(), [Command::SaveSettings(s)] if *s == Settings::default()), "{cmds:?}");
    assert_eq!(a.settings, Settings::default());
    assert_eq!(a.prompts[0].stop, a.template_stop(), "the template's stop strings again");
    // Remembered settings come back at the next launch.
    let mut remembered = Settings::default();
    remembered.sampling.seed = 9;
    let b = App::new(AppConfig { settings: Some(remembered.clone()), ..config() });
    assert_eq!(b.settings, remembered);
}

fn config() -> AppConfig {
    AppConfig {
        problems: lab::gsm8k::test_set(),
        templates: templates(),
        template_errors: Vec::new(),
        templates_dir: PathBuf::from("templates"),
        sessions_dir: PathBuf::from("sessions"),
        theme: Theme::color(),
        settings: None,
    }
}

#[test]
fn template_errors_are_listed_in_full_with_bang() {
    let long = format!("templates/broken.yaml: {}", "x".repeat(300));
    let mut a =
        App::new(AppConfig { template_errors: vec![long.clone(), "templates/other.yaml: bad".into()], ..config() });
    assert!(a
        .status
        .as_ref()
        .is_some_and(|s| s.error && s.text.contains("2 template file(s) failed to load: ! lists them")));
    press(&mut a, KeyCode::Char('!'));
    assert!(matches!(a.overlay, Some(Overlay::TemplateErrors { .. })));
    assert_eq!(a.template_errors[0], long, "kept in full");
    press(&mut a, KeyCode::Esc);
    assert!(a.overlay.is_none());
    let mut b = app();
    press(&mut b, KeyCode::Char('!'));
    assert!(b.overlay.is_none() && b.status.as_ref().is_some_and(|s| s.text.contains("every template")));
}

#[test]
fn the_footer_offers_only_keys_that_do_something() {
    let keys = |a: &App| crate::tui::keymap::hints(a).into_iter().map(|h| h.keys).collect::<Vec<_>>();
    let a = app();
    let k = keys(&a);
    assert!(!k.contains(&"Enter"), "no model yet: {k:?}");
    for absent in ["s", "y/Y", "e", "u", "1-9", "!"] {
        assert!(!k.contains(&absent), "{absent} in {k:?}");
    }
    let mut b = finished_app();
    let k = keys(&b);
    for present in ["Enter", "s", "y/Y", "e", "1-9", "n", "←→"] {
        assert!(k.contains(&present), "{present} not in {k:?}");
    }
    assert!(!k.contains(&"u"), "nothing to undo yet");
    press(&mut b, KeyCode::Char('7'));
    assert!(keys(&b).contains(&"u"));
}

#[test]
fn exemplar_warns_about_a_wrong_or_flagged_path_and_refuses_a_duplicate() {
    let mut a = finished_app();
    press(&mut a, KeyCode::Right); // path 2: wrong (5), loops
    press(&mut a, KeyCode::Char('e'));
    let Some(Overlay::Exemplar(p)) = &a.overlay else { panic!("no proposal") };
    let w = p.warnings.join(" | ");
    assert!(w.contains("wrong (gold 3)") && w.contains("flagged: repetition"), "{w}");
    press(&mut a, KeyCode::Esc);
    // A template that already holds this question refuses it.
    let q = a.generation.as_ref().unwrap().question_text.clone();
    let t = a.template;
    a.templates[t].template.push_exemplar(&q, "It takes 3 bolts. The answer is 3.");
    press(&mut a, KeyCode::Left);
    press(&mut a, KeyCode::Char('e'));
    assert!(a.overlay.is_none());
    assert!(
        a.status.as_ref().is_some_and(|s| s.error && s.text.contains("already has this question")),
        "{:?}",
        a.status
    );
}

#[test]
fn the_vote_line_reads_plainly() {
    let mut a = ready_app();
    a.update(Intent::MoveQuestion(1));
    a.settings.sampling.temperature = 0.0;
    a.settings.paths = 4;
    let run = run_id(&press(&mut a, KeyCode::Enter));
    stream(&mut a, run, &[" The answer is 48.", " The answer is 12.", " The answer is 7.", " nothing"], true);
    let line: String =
        crate::tui::widgets::summary::vote_line(&a, 400).spans.iter().map(|s| s.content.to_string()).collect();
    assert!(
        line.contains(
            "majority 48 · 1 of 4 path(s) agree (1 without an answer) · tie broken by the first path to give it"
        ),
        "{line}"
    );
    assert!(line.contains("✗ wrong") && line.contains("gold 3"), "{line}");
    assert!(line.contains("temperature 0: greedy paths of a template are identical"), "{line}");
    let legend: String = crate::tui::widgets::summary::legend(&a).spans.iter().map(|s| s.content.to_string()).collect();
    assert!(legend.contains("~ last number, ? glyphs"), "{legend}");
}

#[test]
fn v_chooses_among_the_paths_by_each_strategy_and_the_judge_asks_the_worker_once() {
    use crate::lab::select::{Choice, Score, Strategy};
    let mut a = finished_app();
    let line = |a: &App| {
        let l = crate::tui::widgets::summary::vote_line(a, 400);
        l.spans.iter().map(|s| s.content.as_ref()).collect::<String>()
    };
    assert!(!line(&a).contains("verified:"), "majority alone by default: {}", line(&a));
    assert!(press(&mut a, KeyCode::Char('V')).is_empty());
    assert_eq!(a.strategy, Strategy::Weighted);
    assert!(press(&mut a, KeyCode::Char('V')).is_empty());
    assert_eq!(a.strategy, Strategy::Verified);
    // Path 2's "2 * 2 = 5" is an arithmetic error: verified keeps path 1's 3, which is right.
    assert!(line(&a).contains("verified: 3 ✓"), "{}", line(&a));
    let cmds = press(&mut a, KeyCode::Char('V'));
    assert_eq!(a.strategy, Strategy::Judge);
    let Some(Command::Judge { id, question, candidates, .. }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(*id, a.generation.as_ref().unwrap().id);
    assert_eq!(question, &lab::gsm8k::test_set()[1].question);
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].1.len(), 2);
    assert_eq!(candidates[0].1[0], (TWO_PATHS[0].to_string(), Some("3".to_string())));
    assert!(line(&a).contains("judge: judging…"), "{}", line(&a));
    // The worker's answer shows; V again does not ask twice.
    let choice = Choice {
        answer: Some("3".into()),
        scores: vec![Score { label: Some("A".into()), path: Some(0), answer: "3".into(), p: 0.8 }],
        ..Choice::default()
    };
    a.on_report(Report::Judged { id: *id, prompt: 0, result: Ok(choice) });
    assert!(line(&a).contains("judge: 3 ✓ p=0.80"), "{}", line(&a));
    press(&mut a, KeyCode::Char('V'));
    assert_eq!(a.strategy, Strategy::Majority);
    for _ in 0..2 {
        press(&mut a, KeyCode::Char('V'));
    }
    // Back on the judge: already judged, not asked again.
    assert!(!press(&mut a, KeyCode::Char('V')).iter().any(|c| matches!(c, Command::Judge { .. })));
    assert_eq!(a.strategy, Strategy::Judge);
}
