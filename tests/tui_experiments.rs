//! End to end: the experiments view of the real binary in a real terminal (tmux), on the embedded
//! default model. Tick two templates, run them over five questions, watch the grid fill, open a cell,
//! label a path and save it; then read the experiment's eval JSONL (and `cotscope report` on it) and the
//! session YAML. Skipped (with a message) only where tmux is not installed; under CI it must run.

mod common;

use std::path::Path;
use std::process::Command;

use common::tmux::{have_tmux, Tmux};
use cotscope::lab::evalfile::EvalRecord;
use cotscope::tui::session::Session;
use cotscope::tui::settings::Settings;

fn lines(p: &Path) -> Vec<EvalRecord> {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn experiment_grid_fills_then_a_cell_is_labelled_and_saved_in_tmux() {
    if !have_tmux() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_cotscope");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    // Remembered settings of the test's own: two paths of at most 24 tokens keep it quick.
    let mut settings = Settings { paths: 2, ..Settings::default() };
    settings.sampling.max_new_tokens = 24;
    cotscope::tui::config::save(&config.path().join("cotscope/settings.yaml"), &settings).unwrap();
    let sessions = cwd.path().join("sessions");
    let name = format!("cotscope-exp-{}", std::process::id());
    let cmd = format!(
        "XDG_CONFIG_HOME='{}' '{bin}' --sessions-dir '{}' --templates-dir '{}'; echo COTSCOPE_EXIT=$?; sleep 60",
        config.path().display(),
        sessions.display(),
        repo.join("templates").display()
    );
    let t = Tmux::start(&name, 140, 45, cwd.path(), &cmd);
    t.wait_for("the model", 120, |s| {
        s.contains("model tiny-bloom-gsm8k (embedded)") && regex::Regex::new(r"\d+ tokens").unwrap().is_match(s)
    });

    // x: the setup, with the normal view's template ticked; tick the one above it as well.
    t.keys(&["x"]);
    t.wait_for("the setup", 10, |s| s.contains("[A] wei-8shot") && s.contains("New experiment"));
    t.keys(&["k", "Space"]);
    let s = t.wait_for("a second template", 10, |s| s.contains("[B] "));
    let other = regex::Regex::new(r"\[B\] (\S+)").unwrap().captures(&s).unwrap()[1].to_string();
    // The questions: 0..5.
    t.keys(&["Tab", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace"]);
    t.keys(&["-l", "0..5"]);
    let dir_name = format!("q0..5-wei-8shot+{other}");
    t.wait_for("the folder named after the choice", 10, |s| s.contains(&format!("experiments/{dir_name}/")));
    t.keys(&["Enter"]);

    // The grid fills in while it runs, then says done.
    let running = t.wait_for("the run", 60, |s| s.contains("● running") || s.contains(" · done "));
    let s = t.wait_for("the experiment to finish", 300, |s| s.contains(" · done ") && s.contains("questions 5/5"));
    let cells = regex::Regex::new(r"\S+ [✓✗] \d/2").unwrap();
    assert_eq!(cells.find_iter(&s).count(), 10, "ten cells:\n{s}");
    assert!(s.contains("paths/s"), "{s}");
    if running.contains("● running") {
        assert!(cells.find_iter(&running).count() < 10, "seen before it was full:\n{running}");
    }
    let summary = regex::Regex::new(r"(\d+)% \[(\d+)–(\d+)\]").unwrap();
    let shown: Vec<(u32, u32, u32)> = summary
        .captures_iter(&s)
        .map(|c| (c[1].parse().unwrap(), c[2].parse().unwrap(), c[3].parse().unwrap()))
        .collect();
    assert_eq!(shown.len(), 2, "a summary per template:\n{s}");
    assert!(s.contains("Failure kinds per 100 paths"), "{s}");

    // Enter on the first cell: question 0 of wei-8shot in the normal view, its paths to label.
    t.keys(&["Enter"]);
    t.wait_for("the cell opened", 10, |s| s.contains("question 0 · wei-8shot from experiment"));
    t.keys(&["7"]);
    t.wait_for("the label", 10, |s| s.contains("path 1: wrong_step"));
    t.keys(&["s"]);
    t.wait_for("the save", 20, |s| s.contains(" saved /"));
    t.keys(&["q"]);
    t.wait_for("cotscope to exit", 20, |s| s.contains("COTSCOPE_EXIT=0"));

    // The experiment: one eval file per template, five lines each, settings on every line.
    let dir = cwd.path().join("experiments").join(&dir_name);
    let files = [dir.join("wei-8shot.jsonl"), dir.join(format!("{other}.jsonl"))];
    for (f, template) in files.iter().zip(["wei-8shot", other.as_str()]) {
        let recs = lines(f);
        assert_eq!(recs.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2, 3, 4], "{}", f.display());
        for r in &recs {
            let st = r.settings.as_ref().expect("settings on every line");
            assert_eq!((st.template.as_str(), st.paths, st.sampling.max_new_tokens), (template, 2, 24));
            assert_eq!(st.model.id, "tiny-bloom-gsm8k (embedded)");
            assert_eq!(st.model.config_hash.len(), 64);
            assert_eq!(r.paths.len(), 2);
        }
    }
    // `cotscope report` reads them, and its numbers are the grid's.
    let out = Command::new(bin).arg("report").args(&files).args(["--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, (acc, lo, hi)) in shown.iter().enumerate() {
        let run = &report["runs"][i];
        let pct = |k: &str| (run[k].as_f64().unwrap() * 100.0).round() as u32;
        assert_eq!((pct("accuracy"), pct("ci_low"), pct("ci_high")), (*acc, *lo, *hi), "run {i}: {run}");
    }

    // The session: question 0 as the line has it, with the label.
    let saved: Vec<_> = std::fs::read_dir(&sessions).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let session: Session = serde_yaml::from_str(&std::fs::read_to_string(&saved[0]).unwrap()).unwrap();
    assert_eq!((session.run.question.index, session.run.templates[0].template.as_str()), (0, "wei-8shot"));
    let line = &lines(&files[0])[0];
    assert_eq!(session.run.templates[0].prompt_sha256, line.prompt_hash);
    let texts = |p: &[cotscope::lab::record::PathRecord]| p.iter().map(|p| p.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&session.run.paths), texts(&line.paths));
    let l = session.run.paths[0].labels.iter().find(|l| l.label.name() == "wrong_step").expect("the label is saved");
    assert_eq!(l.human, Some(true));
}
