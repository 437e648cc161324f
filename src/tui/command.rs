//! Side effects `App::update` asks for. The runner carries them out (on the worker thread for model work)
//! and reports back with actions.

use std::path::PathBuf;

use crate::engine::GenerateRequest;

use super::session::Session;
use crate::lab::template::Template;

#[derive(Clone, Debug)]
pub enum Command {
    /// Run these requests one after another on the worker as generation `run`.
    StartGeneration { run: u64, requests: Vec<GenerateRequest> },
    /// Set the cancel flag of generation `run`.
    CancelGeneration { run: u64 },
    /// Count the tokens of a prompt (off the UI thread).
    CountTokens { prompt_sha256: String, text: String },
    /// Write a session: to `path` when saving again, else to a new file in the sessions folder.
    SaveSession { session: Box<Session>, path: Option<PathBuf> },
    /// List the sessions folder.
    ListSessions,
    /// Read one session file.
    OpenSession(PathBuf),
    /// Put text on the clipboard (OSC 52 when there is none).
    Copy(String),
    /// Write a template file atomically.
    WriteTemplate { path: PathBuf, template: Box<Template> },
    /// Leave the UI loop.
    Quit,
}
