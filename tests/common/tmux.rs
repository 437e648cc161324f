//! A real terminal for the end-to-end tests: the workbench runs in a detached tmux session that the
//! test drives with keys and reads back, polling the screen against deadlines (never fixed sleeps).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Kills the tmux session however the test ends.
pub struct Tmux {
    name: String,
}

impl Tmux {
    /// Runs `script` with `sh -c` (not the user's shell, which may not be POSIX) in a detached session.
    pub fn start(name: &str, w: u16, h: u16, cwd: &Path, script: &str) -> Tmux {
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

    pub fn keys(&self, keys: &[&str]) {
        let status =
            Command::new("tmux").args(["send-keys", "-t", &self.name]).args(keys).status().expect("tmux send-keys");
        assert!(status.success());
    }

    pub fn screen(&self) -> String {
        let out =
            Command::new("tmux").args(["capture-pane", "-p", "-t", &self.name]).output().expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `ok` holds; panics with the last screen at the deadline.
    pub fn wait_for(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
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

/// False (test skipped) only outside CI; under CI a missing tmux fails the test.
pub fn have_tmux() -> bool {
    if tmux_available() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "tmux is required under CI (.ci/run installs it)");
    println!("SKIPPED: tmux is not installed (.ci/run installs it)");
    false
}
