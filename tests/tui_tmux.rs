//! End to end: the real binary in a real terminal (tmux), driven by keys like a user, on the embedded
//! default model. Pick a question, generate two paths, watch tokens arrive, label a failure, save the
//! session, quit; then read the saved YAML. Skipped (with a message) only where tmux is not installed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cotscope::tui::session::Session;

/// Kills the tmux session however the test ends.
struct Tmux {
    name: String,
}

impl Tmux {
    /// Runs `script` with `sh -c` (not the user's shell, which may not be POSIX) in a detached session.
    fn start(name: &str, w: u16, h: u16, cwd: &Path, script: &str) -> Tmux {
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", name, "-x", &w.to_string(), "-y", &h.to_string(), "-c"])
            .arg(cwd)
            .args(["sh", "-c", script])
            .env_remove("NO_COLOR")
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        Tmux { name: name.to_string() }
    }

    fn keys(&self, keys: &[&str]) {
        let status =
            Command::new("tmux").args(["send-keys", "-t", &self.name]).args(keys).status().expect("tmux send-keys");
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out =
            Command::new("tmux").args(["capture-pane", "-p", "-t", &self.name]).output().expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `ok` holds; panics with the last screen at the deadline.
    fn wait_for(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).status();
    }
}

fn tmux_available() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// The number in "NNN tok" of each pane header on the screen.
fn pane_tokens(screen: &str) -> Vec<usize> {
    let re = regex::Regex::new(r"[┌┏] \d+ · (\d+) tok").unwrap();
    re.captures_iter(screen).map(|c| c[1].parse().unwrap()).collect()
}

#[test]
fn pick_generate_label_save_quit_in_tmux() {
    if !tmux_available() {
        println!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_cotscope");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sessions = tempfile::tempdir().unwrap();
    let name = format!("cotscope-e2e-{}", std::process::id());
    // The shell line keeps the pane open after cotscope exits, to read its exit status.
    let cmd = format!("'{bin}' --sessions-dir '{}'; echo COTSCOPE_EXIT=$?; sleep 60", sessions.path().display());
    let t = Tmux::start(&name, 140, 45, repo, &cmd);

    // The model loads off the UI thread; the prompt's token count appears once it is there.
    t.wait_for("the UI", 30, |s| s.contains("Questions 1319"));
    t.wait_for("the model and the token count", 120, |s| {
        s.contains("model default") && regex::Regex::new(r"\d+ tokens").unwrap().is_match(s)
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

    // Label a failure on path 1 (focus moved to the paths): 6 = arithmetic_error.
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
    assert_eq!(session.question.index, 1);
    assert_eq!(session.question.gold, "3");
    assert_eq!(session.model.id, "default");
    assert_eq!(session.model.config_hash.len(), 64);
    assert_eq!(session.templates.len(), 1);
    assert_eq!(session.templates[0].template, "wei-8shot");
    assert_eq!(session.templates[0].prompt_sha256, cotscope::tui::run::sha256_hex(&session.templates[0].prompt));
    assert!(session.templates[0].prompt.ends_with("How many bolts in total does it take?\nA:"));
    assert_eq!(session.sampling.seed, 42);
    assert_eq!(session.paths.len(), 2);
    for p in &session.paths {
        assert!(!p.token_ids.is_empty() && !p.text.is_empty(), "{p:?}");
        assert!(["max_tokens", "eos", "stop_string", "cancelled"].contains(&p.stop_reason.as_str()));
        assert_eq!(p.stop_reason == "stop_string", p.stop_string.is_some());
    }
    let l = session.paths[0].labels.iter().find(|l| l.label.name() == "arithmetic_error").expect("the label is saved");
    assert_eq!(l.human, Some(!l.detected), "the key flipped what the detector said");
    let answered = session.paths.iter().filter(|p| p.answer.is_some()).count();
    assert_eq!(session.vote.voters, answered);
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
