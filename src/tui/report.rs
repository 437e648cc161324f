//! What the worker and the event loop report back (the model, generations, files, the clipboard);
//! [`App::on_report`] is their one consumer.
//!
//! [`App::on_report`]: super::app::App::on_report

use std::path::PathBuf;

use crate::engine::{EngineEvent, ModelInfo};
use crate::lab::template::Template;

use super::clipboard::ClipboardOutcome;
use super::experiments::ExperimentUpdate;
use super::session::{Session, SessionEntry};

#[derive(Clone, Debug)]
pub enum Report {
    /// The model is loaded and ready.
    ModelLoaded(ModelInfo),
    /// Loading the model failed; the message names what is wrong.
    ModelFailed(String),
    /// Token count of the prompt with this sha256.
    TokenCount { prompt_sha256: String, result: Result<usize, String> },
    /// An engine event of generation `id`, request `request`, `at_ms` after it began.
    Engine { id: u64, request: usize, event: EngineEvent, at_ms: f64 },
    /// Generation `id` stopped with an error.
    GenerationFailed { id: u64, message: String },
    /// Generation `id` is over (every request done or cancelled).
    GenerationFinished { id: u64 },
    /// The judge's choice among the paths of generation `id`'s template `prompt` (or why it has none).
    Judged { id: u64, prompt: usize, result: Result<crate::lab::select::Choice, String> },
    /// The session was written to this file.
    SessionSaved(PathBuf),
    /// Saved sessions, newest first.
    SessionsListed(Vec<SessionEntry>),
    /// A session file was read.
    SessionOpened { path: PathBuf, session: Box<Session> },
    /// The clipboard copy went through (how it went).
    Copied(ClipboardOutcome),
    /// An exemplar was written to this file (`Y`).
    ExemplarWritten(PathBuf),
    /// A template file was written.
    TemplateWritten { path: PathBuf, template: Box<Template> },
    /// Experiment `id` moved on, `at_ms` after it began.
    Experiment { id: u64, update: Box<ExperimentUpdate>, at_ms: f64 },
    /// The terminal's size, at the start and whenever it changes (the token cursor moves by its lines).
    Resized { width: u16, height: u16 },
    /// A command of the runner failed; the message is one line.
    Failed(String),
}
