//! The experiments view driven by keys, fed the reports of a real run (the lab's runner on a fake
//! engine, through the worker's job function), and checked against `report` on the files it wrote.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crossterm::event::KeyCode;

use super::*;
use crate::engine::{CancelFlag, LocalEngine};
use crate::lab::labels::Label;
use crate::lab::settings::ModelSettings;
use crate::tui::app::tests::{press, ready_app, type_str};
use crate::tui::app::Focus;
use crate::tui::experiments::run_job;
use crate::tui::intent::Intent;
use crate::tui::report::Report;
use crate::tui::worker::Sink;

/// Paths 1, 2 and 3 of every question: 3 (strict), 18 (strict), and a flexible 8 after a wrong sum.
pub(crate) const TEXTS: [&str; 3] = [" The answer is 3.", " The answer is 18.", " The sum 3 + 4 = 8, so 8."];

fn engine() -> LocalEngine {
    let tok = tokenizers::Tokenizer::from_bytes(crate::model::embedded::TOKENIZER).unwrap();
    LocalEngine::fake(tok, &TEXTS, Some(2)).unwrap()
}

/// `x`, tick wei-8shot and cot-paths (in that order), questions `spec`, three greedy paths; Enter.
/// Returns the plan the app asked the event loop to run.
pub(crate) fn start(a: &mut App, spec: &str) -> Plan {
    a.settings.paths = 3;
    a.settings.sampling.temperature = 0.0;
    press(a, KeyCode::Char('x'));
    assert!(a.experiments_shown());
    let pos = |a: &App, n: &str| a.templates.iter().position(|t| t.template.name == n).unwrap();
    let (wei, cot) = (pos(a, "wei-8shot"), pos(a, "cot-paths"));
    assert_eq!(a.experiments.setup.as_ref().unwrap().picked, vec![wei], "starts from the normal view's template");
    // Move to cot-paths and tick it.
    let cursor = a.experiments.setup.as_ref().unwrap().cursor as isize;
    for _ in 0..(cot as isize - cursor).abs() {
        press(a, if cot as isize > cursor { KeyCode::Down } else { KeyCode::Up });
    }
    press(a, KeyCode::Char(' '));
    assert_eq!(a.experiments.setup.as_ref().unwrap().picked, vec![wei, cot]);
    press(a, KeyCode::Tab);
    for _ in 0.."0..10".len() {
        press(a, KeyCode::Backspace);
    }
    type_str(a, spec);
    let cmds = press(a, KeyCode::Enter);
    let plan = cmds.iter().find_map(|c| match c {
        Command::StartExperiment { plan, .. } => Some(plan.as_ref().clone()),
        _ => None,
    });
    plan.unwrap_or_else(|| panic!("no experiment started: {cmds:?} {:?}", a.status))
}

/// Runs `plan` into `dir` as the worker would and returns what it reports, stamped 100 ms apart (so
/// rates and estimates are the same every time).
pub(crate) fn worker_reports(id: u64, mut plan: Plan, dir: &Path, cancel_after: Option<usize>) -> Vec<Report> {
    plan.dir = dir.to_path_buf();
    plan.model = ModelSettings { id: "fake".into(), ..ModelSettings::default() };
    let got = Arc::new(Mutex::new(Vec::new()));
    let cancel = CancelFlag::new();
    let (g, c) = (Arc::clone(&got), cancel.clone());
    let sink: Sink = Arc::new(move |r| {
        let mut v = g.lock().unwrap();
        if let Report::Experiment { update, .. } = &r {
            if matches!(**update, ExperimentUpdate::Event(Event::Record { .. })) {
                let records = v.iter().filter(|x: &&Report| is_record(x)).count() + 1;
                if cancel_after == Some(records) {
                    c.cancel();
                }
            }
        }
        v.push(r);
    });
    run_job(&engine(), id, &plan, &cancel, &sink);
    let mut out = got.lock().unwrap().clone();
    for (i, r) in out.iter_mut().enumerate() {
        if let Report::Experiment { at_ms, .. } = r {
            *at_ms = 100.0 * (i + 1) as f64;
        }
    }
    out
}

fn is_record(r: &Report) -> bool {
    matches!(r, Report::Experiment { update, .. } if matches!(**update, ExperimentUpdate::Event(Event::Record { .. })))
}

fn run_id(a: &App) -> u64 {
    a.experiments.run.as_ref().unwrap().id
}

/// A ready app that ran wei-8shot and cot-paths over questions 0..4 into `dir`, every report applied.
pub(crate) fn finished_experiment(dir: &Path) -> App {
    let mut a = ready_app();
    let plan = start(&mut a, "0..4");
    for r in worker_reports(run_id(&a), plan, dir, None) {
        a.on_report(r);
    }
    a
}

#[test]
fn x_opens_the_setup_where_keys_pick_templates_questions_and_name() {
    let mut a = ready_app();
    press(&mut a, KeyCode::Char('x'));
    assert!(a.experiments_shown() && a.experiments.setup.is_some());
    // Space unticks the only template; Enter then refuses, saying why.
    press(&mut a, KeyCode::Char(' '));
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.contains("tick at least one")), "{:?}", a.status);
    press(&mut a, KeyCode::Char(' '));
    // In the questions field, letters are typed (q does not quit); a bad range is refused in one line.
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "q");
    assert!(!a.quit);
    assert_eq!(a.experiments.setup.as_ref().unwrap().questions, "0..10q");
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    let err = a.status.clone().unwrap();
    assert!(err.error && err.text.starts_with("questions \"0..10q\": ") && !err.text.contains('\n'), "{err:?}");
    press(&mut a, KeyCode::Backspace);
    // The name field: typed names are made safe for a folder.
    press(&mut a, KeyCode::Tab);
    type_str(&mut a, "my run/1");
    let s = a.experiments.setup.clone().unwrap();
    assert_eq!(s.field, SetupField::Name);
    assert_eq!(a.setup_dir(&s), PathBuf::from("experiments/my_run_1"));
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::StartExperiment { id, plan }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(plan.dir, PathBuf::from("experiments/my_run_1"));
    assert_eq!(plan.questions, (0..10).collect::<Vec<_>>());
    assert_eq!(plan.templates.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["wei-8shot"]);
    assert_eq!((&plan.sampling, plan.paths, &plan.stop), (&a.settings.sampling, a.settings.paths, &None));
    let r = a.experiments.run.as_ref().unwrap();
    assert_eq!((r.id, &r.state, r.rows().len()), (*id, &RunState::Opening, 10));
    assert!(a.experiments.setup.is_none(), "the grid shows");
    // Without a typed name, the name comes from the choice: the same choice again resumes its folder.
    let mut b = ready_app();
    let plan = start(&mut b, "0..4");
    assert_eq!(plan.dir, PathBuf::from("experiments/q0..4-wei-8shot+cot-paths"));
    // Esc in a setup with nothing run leaves the view.
    let mut c = ready_app();
    press(&mut c, KeyCode::Char('x'));
    press(&mut c, KeyCode::Esc);
    assert!(!c.experiments_shown());
}

#[test]
fn the_model_must_be_there_and_nothing_else_running() {
    let mut a = crate::tui::app::tests::app();
    press(&mut a, KeyCode::Char('x'));
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.contains("loading")));
    let mut b = ready_app();
    start(&mut b, "0..2");
    // In the normal view, Enter does not start a generation behind the experiment.
    press(&mut b, KeyCode::Char('x'));
    assert!(!b.experiments_shown());
    let head: String = crate::tui::widgets::header::line(&b, 200).spans.iter().map(|s| s.content.as_ref()).collect();
    assert!(head.contains("● experiment 0/2 (x)"), "the header says it goes on: {head}");
    assert!(press(&mut b, KeyCode::Enter).is_empty());
    assert!(
        b.status.as_ref().is_some_and(|s| s.error && s.text.contains("an experiment is running")),
        "{:?}",
        b.status
    );
}

#[test]
fn progress_fills_the_grid_cell_by_cell() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = ready_app();
    let plan = start(&mut a, "0..4");
    let reports = worker_reports(run_id(&a), plan, dir.path(), None);
    let mut it = reports.into_iter();
    a.on_report(it.next().unwrap());
    let r = a.experiments.run.as_ref().unwrap();
    assert_eq!((r.state.clone(), r.todo, r.questions_done()), (RunState::Running, Some(8), 0));
    // Three path ends of question 0, template A: the cell shows them, the rate counts them.
    for _ in 0..3 {
        a.on_report(it.next().unwrap());
    }
    let r = a.experiments.run.as_ref().unwrap();
    assert_eq!(r.partial.get(&(0, 0)), Some(&3));
    assert_eq!(r.paths_done, 3);
    assert_eq!(r.paths_per_s(), Some(3.0 / 0.4));
    // 8 cells × 3 paths, 3 ended: 21 left at 7.5 paths/s.
    assert!((r.eta_s().unwrap() - 21.0 / 7.5).abs() < 1e-9);
    assert!(r.cell(0, 0).is_none());
    a.on_report(it.next().unwrap());
    let r = a.experiments.run.as_ref().unwrap();
    let c = r.cell(0, 0).expect("the cell filled");
    // Question 0's gold is 18: paths say 3, 18, 8: a three-way tie, the first answer wins.
    assert_eq!((c.majority.as_deref(), c.correct, c.voters, c.paths), (Some("3"), false, 3, 3));
    assert!(r.partial.is_empty() && r.finished == 1 && r.questions_done() == 0);
    for rep in it.by_ref() {
        let last =
            matches!(&rep, Report::Experiment { update, .. } if matches!(**update, ExperimentUpdate::Finished { .. }));
        a.on_report(rep);
        if last {
            break;
        }
    }
    let r = a.experiments.run.as_ref().unwrap();
    assert_eq!((r.state.clone(), r.finished, r.questions_done()), (RunState::Done, 8, 4));
    assert_eq!(r.eta_s(), Some(0.0));
    // Question 1's gold is 3: right in both columns.
    assert!(r.cell(1, 0).unwrap().correct && r.cell(1, 1).unwrap().correct);
    assert!(a.status.as_ref().unwrap().text.contains("done: 8 cells run"), "{:?}", a.status);
}

#[test]
fn the_grid_numbers_are_reports_on_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = finished_experiment(dir.path());
    let r = a.experiments.run.as_ref().unwrap();
    let runs: Vec<Run> = ["wei-8shot", "cot-paths"]
        .iter()
        .map(|n| report::read_run(&dir.path().join(format!("{n}.jsonl"))).unwrap())
        .collect();
    let from_files = report::build(&runs, true).unwrap();
    assert_eq!(r.report.runs.len(), 2);
    for (grid, file) in r.report.runs.iter().zip(&from_files.runs) {
        assert_eq!(
            (grid.questions, grid.correct, grid.accuracy, grid.ci_low, grid.ci_high),
            (file.questions, file.correct, file.accuracy, file.ci_low, file.ci_high)
        );
        assert_eq!(grid.failures, file.failures);
        assert_eq!(grid.template, file.template);
    }
    assert_eq!(r.report.questions, from_files.questions, "every cell");
    // Not a trivial agreement: one question of four right, arithmetic errors on every question.
    let w = &from_files.runs[0];
    assert_eq!((w.questions, w.correct), (4, 1));
    assert_eq!((w.ci_low, w.ci_high), (crate::lab::stats::wilson(1, 4).low, crate::lab::stats::wilson(1, 4).high));
    assert!(w.failures.iter().any(|f| f.name == "arithmetic_error" && f.paths == 4));
}

#[test]
fn esc_cancels_once_and_a_rerun_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = ready_app();
    let plan = start(&mut a, "0..4");
    let id = run_id(&a);
    let cmds = press(&mut a, KeyCode::Esc);
    assert!(matches!(cmds.as_slice(), [Command::CancelExperiment { id: i }] if *i == id), "{cmds:?}");
    assert!(press(&mut a, KeyCode::Esc).is_empty(), "already cancelling");
    assert!(a.experiments_shown(), "Esc cancels, it does not leave");
    // The worker stops after three questions are written (cancelled within the fourth).
    for r in worker_reports(id, plan.clone(), dir.path(), Some(3)) {
        a.on_report(r);
    }
    let r = a.experiments.run.as_ref().unwrap();
    assert_eq!((r.state.clone(), r.finished), (RunState::Cancelled, 3));
    assert!(r.partial.is_empty());
    let on_disk: usize = plan.files().iter().map(|f| count_lines(&dir.path().join(f.file_name().unwrap()))).sum();
    assert_eq!(on_disk, 3, "the finished questions are written");
    assert!(a.status.as_ref().unwrap().text.contains("cancelled after 3 cells"), "{:?}", a.status);
    // Esc now leaves the view; x comes back to the grid; n sets up the same choice again.
    press(&mut a, KeyCode::Esc);
    assert!(!a.experiments_shown());
    press(&mut a, KeyCode::Char('x'));
    assert!(a.experiments.setup.is_none() && a.experiments.run.is_some());
    press(&mut a, KeyCode::Char('n'));
    let s = a.experiments.setup.clone().unwrap();
    assert_eq!((s.questions.as_str(), s.picked.len()), ("0..4", 2));
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::StartExperiment { id, plan: again }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(again.dir, plan.dir, "the same folder");
    let reports = worker_reports(*id, again.as_ref().clone(), dir.path(), None);
    for r in reports {
        a.on_report(r);
    }
    let r = a.experiments.run.as_ref().unwrap();
    assert_eq!((r.todo, r.finished, r.questions_done()), (Some(5), 5, 4));
    assert!(a.status.as_ref().unwrap().text.contains("done: 5 cells run"), "{:?}", a.status);
}

fn count_lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

#[test]
fn a_settings_mismatch_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = finished_experiment(dir.path());
    press(&mut a, KeyCode::Char('n'));
    a.settings.sampling.seed = 7;
    let cmds = press(&mut a, KeyCode::Enter);
    let Some(Command::StartExperiment { id, plan }) = cmds.first() else { panic!("{cmds:?}") };
    for r in worker_reports(*id, plan.as_ref().clone(), dir.path(), None) {
        a.on_report(r);
    }
    let s = a.status.clone().unwrap();
    assert!(s.error && !s.text.contains('\n'), "{s:?}");
    assert_eq!(
        s.text,
        "experiment: wei-8shot.jsonl holds other settings (seed was 42 there, is 7 now): set them back, or give the \
         experiment another name"
    );
    assert!(matches!(a.experiments.run.as_ref().unwrap().state, RunState::Failed(_)));
    assert!(!a.experiment_running());
}

#[test]
fn enter_on_a_cell_opens_its_question_and_template_with_the_paths() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = finished_experiment(dir.path());
    // Row 1 (question 1), column B (cot-paths).
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Right);
    assert_eq!(a.experiments.run.as_ref().unwrap().cursor, (1, 1));
    press(&mut a, KeyCode::Enter);
    assert!(!a.experiments_shown(), "the normal view shows");
    assert_eq!(a.questions.selected_index(), Some(1));
    assert_eq!(a.focus, Focus::Paths);
    let g = a.generation.as_ref().unwrap();
    assert_eq!((g.question, g.prompts.len(), g.prompts[0].template.as_str()), (1, 1, "cot-paths"));
    assert!(g.saved_to.is_none(), "s saves a new session");
    let texts: Vec<&str> = g.panes.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts, TEXTS);
    let rec = a.experiments.run.as_ref().unwrap().record(1, 1).unwrap();
    assert_eq!(g.prompts[0].prompt_sha256, rec.prompt_hash, "the prompt the line was generated from");
    assert_eq!(g.sampling, rec.settings.as_ref().unwrap().sampling);
    // The detectors' findings pre-fill the labels, as after a generation; label and save as usual.
    let arith = Label::Failure(crate::lab::detect::FailureKind::ArithmeticError);
    assert!(g.panes[2].labels.get(arith).detected);
    press(&mut a, KeyCode::Right);
    press(&mut a, KeyCode::Char('7'));
    assert!(a.unsaved());
    let cmds = press(&mut a, KeyCode::Char('s'));
    let Some(Command::SaveSession { session, path: None }) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(session.run.question.index, 1);
    assert_eq!(
        session.run.paths[1].labels.iter().find(|l| l.label == Label::WrongStep).map(|l| l.human),
        Some(Some(true))
    );
    // Back to the grid with x; a cell without a line says so.
    press(&mut a, KeyCode::Char('x'));
    assert!(a.experiments_shown());
    let mut b = ready_app();
    start(&mut b, "0..2");
    assert!(press(&mut b, KeyCode::Enter).is_empty());
    assert!(
        b.status.as_ref().is_some_and(|s| s.error && s.text.contains("no result for wei-8shot yet")),
        "{:?}",
        b.status
    );
}

#[test]
fn the_footer_offers_only_the_keys_that_act() {
    let keys = |a: &App| crate::tui::keymap::hints(a).iter().map(|h| h.keys).collect::<Vec<_>>();
    let mut a = ready_app();
    assert!(keys(&a).contains(&"x"), "the normal view offers x");
    press(&mut a, KeyCode::Char('x'));
    let k = keys(&a);
    assert!(k.contains(&"Space") && k.contains(&"Enter") && !k.contains(&"x"), "{k:?}");
    press(&mut a, KeyCode::Tab);
    assert!(!keys(&a).contains(&"q"), "q is typed in a text field");
    let dir = tempfile::tempdir().unwrap();
    let mut b = ready_app();
    start(&mut b, "0..2");
    let k = keys(&b);
    assert!(k.contains(&"Esc") && !k.contains(&"n") && !k.contains(&"Enter"), "running, nothing to open: {k:?}");
    let mut c = finished_experiment(dir.path());
    let k = keys(&c);
    assert!(k.contains(&"Enter") && k.contains(&"n") && !k.contains(&"Esc"), "{k:?}");
    c.update(Intent::Help);
    assert!(!keys(&c).contains(&"Enter"), "the help overlay takes the keys");
}
