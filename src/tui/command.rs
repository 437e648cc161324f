//! Side effects the app asks for. The event loop carries them out (on the worker thread for model work)
//! and reports back.

use std::path::PathBuf;

use crate::engine::GenerateRequest;

use super::experiments::Plan;
use super::session::Session;
use super::settings::Settings;
use crate::lab::template::Template;

/// What the judge reads, per template: its prompt index and each path's (text, answer).
pub type JudgeCandidates = Vec<(usize, Vec<(String, Option<String>)>)>;

#[derive(Clone, Debug)]
pub enum Command {
    /// Run these requests one after another on the worker as generation `id`.
    StartGeneration { id: u64, requests: Vec<GenerateRequest> },
    /// Ask the model to judge generation `id`'s paths (the `judge` strategy), one judgement per
    /// template: `(prompt index, [(path text, its answer)])`; the judge prompt is read from `templates_dir`.
    Judge { id: u64, templates_dir: PathBuf, question: String, candidates: JudgeCandidates },
    /// Set the cancel flag of generation `id`.
    CancelGeneration { id: u64 },
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
    /// Write an exemplar's text to a file.
    WriteExemplar { path: PathBuf, text: String },
    /// Remember the settings for the next launch.
    SaveSettings(Settings),
    /// Write a template file atomically; `new` refuses to replace a file that is there.
    WriteTemplate { path: PathBuf, template: Box<Template>, new: bool },
    /// Run an experiment on the worker as job `id` (the event loop fills in the model's settings).
    StartExperiment { id: u64, plan: Box<Plan> },
    /// Set the cancel flag of experiment `id`.
    CancelExperiment { id: u64 },
    /// Leave the UI loop.
    Quit,
}
