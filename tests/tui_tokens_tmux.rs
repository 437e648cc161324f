//! End to end, inside a path: the real binary in tmux on the embedded default model, greedy. Generate
//! two paths, colour them by probability, put the token cursor on a token and read its alternatives,
//! branch with the second choice, save, reopen the session from the picker and see the tree.

mod common;

use std::path::Path;

use common::tmux::{have_tmux, Tmux};
use cotscope::tui::session::Session;

#[test]
fn probabilities_cursor_branch_save_and_reopen_in_tmux() {
    if !have_tmux() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_cotscope");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sessions = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    // Greedy, two paths, short: remembered settings the workbench starts with.
    let settings = config.path().join("cotscope/settings.yaml");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(
        &settings,
        "sampling: {temperature: 0.0, top_k: null, top_p: null, seed: 42, max_new_tokens: 40}\npaths: 2\n",
    )
    .unwrap();
    let name = format!("cotscope-tokens-{}", std::process::id());
    let cmd = format!(
        "XDG_CONFIG_HOME='{}' '{bin}' --sessions-dir '{}'; echo COTSCOPE_EXIT=$?; sleep 60",
        config.path().display(),
        sessions.path().display()
    );
    let t = Tmux::start(&name, 140, 45, repo, &cmd);
    t.wait_for("the model and the token count", 120, |s| {
        s.contains("model tiny-bloom-gsm8k (embedded)") && regex::Regex::new(r"\d+ tokens").unwrap().is_match(s)
    });
    let s = t.screen();
    assert!(s.contains("temperature 0 (greedy)"), "greedy from the settings:\n{s}");

    // Question 1, two greedy paths; the paths take the keys.
    t.keys(&["j"]);
    t.wait_for("question 1 selected", 10, |s| s.contains("question 1 (gold 3)"));
    t.keys(&["Enter"]);
    t.wait_for("the generation to finish", 180, |s| s.contains("done after"));
    t.keys(&["BTab"]);
    let s = t.wait_for("the token keys in the footer", 10, |s| s.contains("v tokens") && s.contains("p probabilities"));
    assert!(regex::Regex::new(r"[┏┌] 1 · .*lp -?\d+\.\d\d").unwrap().is_match(&s), "mean log-probability:\n{s}");

    // p colours the tokens (the footer offers plain text back), v puts the cursor on the last token.
    t.keys(&["p"]);
    t.wait_for("probability colours", 10, |s| s.contains("p plain"));
    t.keys(&["v"]);
    t.wait_for("the inspector", 10, |s| s.contains("Token ") && s.contains(" of path 1 "));
    // To the 4th token: its alternatives, five of them, with probabilities and the entropy.
    t.keys(&["g", "l", "l", "l"]);
    let s = t.wait_for("the inspector on token 4", 10, |s| s.contains("Token 4 of path 1"));
    assert!(s.contains("Alternatives (top 5)") && s.contains("entropy ") && s.contains("%"), "{s}");
    assert!(s.contains("● "), "the path's own token is marked:\n{s}");

    // b opens the picker on the 2nd choice (greedy: the path's own token is the 1st); b again branches.
    t.keys(&["b"]);
    let s = t.wait_for("the branch picker", 10, |s| s.contains("↻ resample from here"));
    let picked = s.lines().find(|l| l.contains("▸ ")).unwrap_or_else(|| panic!("a picked row:\n{s}")).to_string();
    t.keys(&["b"]);
    let s = t.wait_for("the branch to finish", 120, |s| s.contains("⟵ 1 @ token 4") && s.contains("done after"));
    assert!(s.contains("┏ 3 ⟵ 1"), "the branch is path 3, focused:\n{s}");

    // Save, reopen from the picker, and the tree shows the branch under its parent.
    t.keys(&["s"]);
    t.wait_for("the save", 20, |s| s.contains(" saved /"));
    t.keys(&["o"]);
    t.wait_for("the session list", 20, |s| s.contains("Open a session from") && s.contains("3 path(s)"));
    t.keys(&["Enter"]);
    let s = t.wait_for("the session to open", 20, |s| s.contains("opened "));
    assert!(s.contains("┌ 3 ⟵ 1 @ token 4"), "the branch's pane title after reopening:\n{s}");
    t.keys(&["T"]);
    t.wait_for("the tree", 10, |s| s.contains("Path tree (T)") && s.contains("└ 3 @4 "));
    // Enter runs it again, the branch from its forced tokens: greedy, the same text.
    t.keys(&["Enter"]);
    t.wait_for("the rerun", 120, |s| s.contains("rerun: identical to the saved session"));
    t.keys(&["q"]);
    t.wait_for("cotscope to exit", 20, |s| s.contains("COTSCOPE_EXIT=0"));

    // The file: the branch (parent, token index, forced token, sampling) and per-token probabilities.
    let files: Vec<_> = std::fs::read_dir(sessions.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let session: Session = serde_yaml::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let paths = &session.run.paths;
    assert_eq!(paths.len(), 3);
    let b = paths[2].branch.as_ref().expect("path 3 is a branch");
    assert_eq!((b.parent, b.at), (1, 3));
    assert_eq!(b.sampling.temperature, 0.0);
    let parent = &paths[0];
    assert_eq!(paths[2].token_ids[..3], parent.token_ids[..3], "the parent's tokens before the branch point");
    let second = parent.steps[3].top[1].clone();
    assert_eq!(b.token, second.id, "the 2nd choice at token 4");
    assert_eq!(paths[2].token_ids[3], second.id.unwrap());
    assert!(picked.contains(&format!("{:?}", second.text)), "the picker showed it: {picked:?}");
    for p in paths {
        assert_eq!(p.steps.len(), p.token_ids.len(), "a step per token in path {}", p.path);
        assert!(p.steps.iter().all(|s| s.logprob.is_some() && s.top.len() == 5), "path {}", p.path);
        assert!(p.logprob.is_some_and(|l| l < 0.0));
    }
}
