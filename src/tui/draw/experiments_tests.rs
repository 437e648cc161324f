//! The experiments view on ratatui's TestBackend: the setup, and the grid half-way through a run with
//! its summary row and failure bars (insta snapshots), at every size without panicking.

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::draw;
use crate::tui::app::experiments_tests::{start, worker_reports};
use crate::tui::app::tests::ready_app;
use crate::tui::app::App;
use crate::tui::report::Report;

fn render(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(app, f)).unwrap();
    t
}

fn text(t: &Terminal<TestBackend>) -> String {
    let b = t.backend().buffer();
    (0..b.area.height).map(|y| (0..b.area.width).map(|x| b[(x, y)].symbol()).collect::<String>() + "\n").collect()
}

/// wei-8shot and cot-paths over questions 0..4: five cells written, a sixth with one path ended.
fn midway() -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut a = ready_app();
    let plan = start(&mut a, "0..4");
    let id = a.experiments.run.as_ref().unwrap().id;
    let mut records = 0;
    for r in worker_reports(id, plan, dir.path(), None) {
        if let Report::Experiment { update, .. } = &r {
            use crate::lab::experiment::Event;
            use crate::tui::experiments::ExperimentUpdate;
            if records == 5 && matches!(**update, ExperimentUpdate::Event(Event::PathDone { .. })) {
                a.on_report(r);
                break;
            }
            if matches!(**update, ExperimentUpdate::Event(Event::Record { .. })) {
                records += 1;
            }
        }
        a.on_report(r);
    }
    (a, dir)
}

#[test]
fn snapshot_experiment_setup() {
    let mut a = ready_app();
    a.update(crate::tui::intent::Intent::Experiment(crate::tui::experiments::ExperimentIntent::Show));
    let t = render(&a, 140, 45);
    insta::assert_snapshot!("experiment_setup", t.backend());
    let s = text(&t);
    assert!(s.contains("[A] wei-8shot") && s.contains("experiments/q0..10-wei-8shot/"), "{s}");
}

#[test]
fn snapshot_experiment_grid_midway_with_summary_and_bars() {
    let (a, _dir) = midway();
    let t = render(&a, 140, 45);
    insta::assert_snapshot!("experiment_grid", t.backend());
    let s = text(&t);
    // Question 0 (gold 18): 3 wins the three-way tie; question 1 (gold 3) is right.
    assert!(s.contains("3 ✗ 1/3") && s.contains("3 ✓ 1/3"), "{s}");
    assert!(s.contains("⋯ 1/3"), "a cell in progress shows its paths:\n{s}");
    let r = a.experiments.run.as_ref().unwrap();
    let acc = &r.report.runs[0];
    let want = format!("{:.0}% [{:.0}–{:.0}]", acc.accuracy * 100.0, acc.ci_low * 100.0, acc.ci_high * 100.0);
    assert!(s.contains(&want), "summary {want}:\n{s}");
    assert!(s.contains("A arithmetic") && s.contains("B arithmetic"), "bars per template:\n{s}");
    assert!(s.contains("questions 2/4") && s.contains("paths/s") && s.contains("left"), "{s}");
}

#[test]
fn the_view_never_panics_at_any_size() {
    let (grid, _dir) = midway();
    let mut setup = ready_app();
    setup.update(crate::tui::intent::Intent::Experiment(crate::tui::experiments::ExperimentIntent::Show));
    for a in [&grid, &setup] {
        for (w, h) in [(140, 45), (100, 30), (80, 24), (60, 20), (40, 12), (30, 8), (12, 4), (5, 2), (1, 1)] {
            assert_eq!(render(a, w, h).backend().buffer().area.width, w);
        }
    }
}
