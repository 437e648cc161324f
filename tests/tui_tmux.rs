//! End to end: the real binary in a real terminal (tmux), driven by keys like a user, on the embedded
//! default model. Pick a question, generate two paths, watch tokens arrive, label a failure, save the
//! session, quit; then read the saved YAML. Skipped (with a message) only where tmux is not installed.

mod common;

use std::path::Path;
use std::process::Command;

use common::tmux::{have_tmux, Tmux};
use cotscope::tui::session::Session;

/// The number in "NNN tok" of each pane header on the screen.
fn pane_tokens(screen: &str) -> Vec<usize> {
    let re = regex::Regex::new(r"[┌┏] \d+ · (\d+) tok").unwrap();
    re.captures_iter(screen).map(|c| c[1].parse().unwrap()).collect()
}

#[test]
fn pick_generate_label_save_quit_in_tmux() {
    if !have_tmux() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_cotscope");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sessions = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let name = format!("cotscope-e2e-{}", std::process::id());
    // The shell line keeps the pane open after cotscope exits, to read its exit status. Settings go to
    // a config dir of the test's own.
    let cmd = format!(
        "XDG_CONFIG_HOME='{}' '{bin}' --sessions-dir '{}'; echo COTSCOPE_EXIT=$?; sleep 60",
        config.path().display(),
        sessions.path().display()
    );
    let t = Tmux::start(&name, 140, 45, repo, &cmd);

    // The model loads off the UI thread; the prompt's token count appears once it is there.
    t.wait_for("the UI", 30, |s| s.contains("Questions 1319"));
    t.wait_for("the model and the token count", 120, |s| {
        s.contains("model tiny-bloom-gsm8k (embedded)") && regex::Regex::new(r"\d+ tokens").unwrap().is_match(s)
    });

    // Pick question 1 (the robe); two paths is the default.
    t.keys(&["j"]);
    t.wait_for("question 1 selected", 10, |s| s.contains("question 1 (gold 3)"));
    let s = t.screen();
    assert!(regex::Regex::new(r"paths\s+2").unwrap().is_match(&s), "two paths by default:\n{s}");

    // Generate: two panes, tokens arrive.
    t.keys(&["Enter"]);
    let s = t.wait_for("tokens in both panes", 120, |s| {
        let n = pane_tokens(s);
        n.len() == 2 && n.iter().all(|x| *x > 0)
    });
    assert!(s.contains("A:"), "the prompt's end is shown above the text:\n{s}");
    let s = t.wait_for("the generation to finish", 180, |s| s.contains("done after"));
    assert!(s.contains("Vote:"), "{s}");

    // Shift-Tab moves the focus to the paths; label path 1: 6 = arithmetic_error.
    t.keys(&["BTab"]);
    t.keys(&["6"]);
    t.wait_for("the label", 10, |s| s.contains("path 1: arithmetic_error"));
    t.wait_for("the unsaved mark", 10, |s| s.contains("[unsaved labels]"));

    // Save, then quit (nothing unsaved any more, so no question).
    t.keys(&["s"]);
    let s = t.wait_for("the save", 20, |s| s.contains(" saved /"));
    assert!(!s.contains("[unsaved labels]"), "{s}");
    t.keys(&["q"]);
    t.wait_for("cotscope to exit", 20, |s| s.contains("COTSCOPE_EXIT=0"));

    // The saved YAML.
    let files: Vec<_> = std::fs::read_dir(sessions.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let fname = files[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(regex::Regex::new(r"^\d{8}-\d{6}-q1-wei-8shot\.yaml$").unwrap().is_match(&fname), "{fname}");
    let session: Session = serde_yaml::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(session.run.question.index, 1);
    assert_eq!(session.run.question.gold, "3");
    assert_eq!(session.run.model.id, "tiny-bloom-gsm8k (embedded)");
    assert_eq!(session.run.model.config_hash.len(), 64);
    assert_eq!(session.run.templates.len(), 1);
    assert_eq!(session.run.templates[0].template, "wei-8shot");
    assert_eq!(session.run.templates[0].prompt_sha256, cotscope::hash::sha256_hex(&session.run.templates[0].prompt));
    assert!(session.run.templates[0].prompt.ends_with("How many bolts in total does it take?\nA:"));
    assert_eq!(session.run.sampling.seed, 42);
    assert_eq!(session.run.paths.len(), 2);
    for p in &session.run.paths {
        assert!(!p.token_ids.is_empty() && !p.text.is_empty(), "{p:?}");
        assert!(["max_tokens", "eos", "stop_string", "cancelled"].contains(&p.stop_reason.as_str()));
        assert_eq!(p.stop_reason == "stop_string", p.stop_string.is_some());
    }
    let l =
        session.run.paths[0].labels.iter().find(|l| l.label.name() == "arithmetic_error").expect("the label is saved");
    assert_eq!(l.human, Some(true), "the first press confirms a detected label or adds an undetected one");
    let answered = session.run.paths.iter().filter(|p| p.answer.is_some()).count();
    assert_eq!(session.run.vote.voters, answered);
}

#[test]
fn without_a_terminal_the_workbench_says_so_instead_of_hanging() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_cotscope")).stdin(std::process::Stdio::null()).output().expect("run cotscope");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: the workbench needs an interactive terminal"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// The A/B view as a templates × paths grid, then the session picker: run in an empty directory with
/// no --sessions-dir, so the session goes to ./sessions there.
#[test]
fn ab_grid_and_session_picker_in_tmux() {
    if !have_tmux() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_cotscope");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let name = format!("cotscope-grid-{}", std::process::id());
    let cmd = format!(
        "XDG_CONFIG_HOME='{}' '{bin}' --templates-dir '{}'; echo COTSCOPE_EXIT=$?; sleep 60",
        config.path().display(),
        repo.join("templates").display()
    );
    let t = Tmux::start(&name, 160, 50, cwd.path(), &cmd);
    t.wait_for("the model", 120, |s| {
        s.contains("model tiny-bloom-gsm8k (embedded)") && regex::Regex::new(r"\d+ tokens").unwrap().is_match(s)
    });

    // A/B view, two templates ticked by default, two paths each: a 2 × 2 grid.
    t.keys(&["m"]);
    t.wait_for("the A/B view", 10, |s| s.contains("A/B templates"));
    t.keys(&["Enter"]);
    let s = t.wait_for("the grid to finish", 180, |s| s.contains("done after"));
    for pane in ["A1 ", "A2 ", "B1 ", "B2 "] {
        assert!(s.contains(&format!("┌ {pane}")) || s.contains(&format!("┏ {pane}")), "pane {pane} of the grid:\n{s}");
    }
    assert!(s.contains(" A wei-8shot: ") && s.contains(" B "), "a vote per template:\n{s}");

    // Label and note path 1, save (to ./sessions of the directory it runs in).
    t.keys(&["BTab", "9", "n"]);
    t.wait_for("the note dialog", 10, |s| s.contains("Note on path 1"));
    t.keys(&["-l", "grid note"]);
    t.keys(&["Enter", "s"]);
    t.wait_for("the save", 20, |s| s.contains("saved sessions/"));

    // The picker tells sessions apart: question, templates, model, date, label counts, first note.
    t.keys(&["o"]);
    let s = t.wait_for("the session list", 20, |s| s.contains("Open a session from sessions"));
    let row = s.lines().find(|l| l.contains("q0 · wei-8shot+")).unwrap_or_else(|| panic!("no summary row:\n{s}"));
    for part in ["tiny-bloom-gsm8k (embedded)", "4 path(s)", "labels 1✓ 0✗", "“grid note”"] {
        assert!(row.contains(part), "{part} in {row:?}");
    }
    assert!(regex::Regex::new(r"· \d{4}-\d\d-\d\d \d\d:\d\d ·").unwrap().is_match(row), "the date in {row:?}");
    t.keys(&["Enter"]);
    t.wait_for("the session to open", 20, |s| s.contains("opened "));
    t.keys(&["q"]);
    t.wait_for("cotscope to exit", 20, |s| s.contains("COTSCOPE_EXIT=0"));

    let files: Vec<_> = std::fs::read_dir(cwd.path().join("sessions")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let yaml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        regex::Regex::new(r"(?m)^  token_ids: \[\d+(, \d+)*\]$").unwrap().is_match(&yaml),
        "token ids on one line:\n{yaml}"
    );
    let session: Session = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(session.run.paths.iter().map(|p| p.path).collect::<Vec<_>>(), vec![1, 2, 3, 4], "numbers as on screen");
    assert_eq!(session.run.templates.len(), 2);
    assert_eq!(session.cotscope_version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn eval_shows_its_progress_bar_on_a_terminal_even_for_one_question() {
    if !have_tmux() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_cotscope");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = format!("cotscope-evalbar-{}", std::process::id());
    let cmd = format!("'{bin}' eval --template wei-8shot --questions 0 --paths 1 --max-new-tokens 2 --temperature 0 > /dev/null; echo EVAL_EXIT=$?; sleep 60");
    let t = Tmux::start(&name, 120, 10, repo, &cmd);
    let s = t.wait_for("eval to finish", 120, |s| s.contains("EVAL_EXIT="));
    assert!(s.contains("EVAL_EXIT=0"), "{s}");
    assert!(s.contains("1/1 questions"), "the bar stays on stderr:\n{s}");
}
