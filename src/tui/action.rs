//! Everything that can change the app's state: what the user asked for (from keys, via the keymap) and
//! what the worker and the runner report back. `App::update` is the only consumer.

use std::path::PathBuf;

use crate::engine::{EngineEvent, ModelInfo};

use super::clipboard::ClipboardOutcome;
use super::session::{Session, SessionEntry};
use crate::lab::template::Template;

#[derive(Clone, Debug)]
pub enum Action {
    // ---- the user ----
    /// Leave (asks first when annotations are unsaved).
    Quit,
    /// Open or close the help overlay.
    Help,
    /// Start a generation with the current question, template(s) and settings.
    Generate,
    /// Stop the running generation (within one token step).
    Cancel,
    /// Move keyboard focus to the next / previous panel.
    FocusNext,
    FocusPrev,
    /// Move the question selection by this many rows.
    MoveQuestion(isize),
    /// First / last question.
    QuestionHome,
    QuestionEnd,
    /// Start typing a question filter.
    StartFilter,
    /// A digit typed on the question list: jump to that index.
    JumpDigit(u8),
    /// Scroll the prompt view by lines (positive: down).
    ScrollPrompt(isize),
    /// Show the previous / next prompt (A/B view: one per template).
    PromptTab(isize),
    /// Move the settings cursor by rows.
    SelectSetting(isize),
    /// Step the selected setting (←/→).
    AdjustSetting(i32),
    /// Start typing a value for the selected setting, optionally with its first character.
    StartEdit(Option<char>),
    /// Move focus to the next / previous path pane.
    FocusPane(isize),
    /// Scroll the focused pane by lines (positive: down).
    ScrollPane(isize),
    /// Jump the focused pane to its top / back to following the stream.
    PaneTop,
    PaneBottom,
    /// One more / one fewer sampled path.
    MorePaths,
    FewerPaths,
    /// Open the template chooser.
    ChooseTemplate,
    /// Switch between self-consistency and A/B template comparison.
    ToggleMode,
    /// Toggle failure label 1–9 on the focused path.
    ToggleLabel(u8),
    /// Write a note on the focused path.
    EditNote,
    /// Undo the last label or note change.
    Undo,
    /// Save the session.
    Save,
    /// List saved sessions to open one.
    Open,
    /// Copy the focused path as an exemplar to the clipboard.
    CopyExemplar,
    /// Propose appending the focused path as an exemplar to its template.
    AppendExemplar,
    /// In the exemplar confirmation: write to a copy under a new name instead.
    ExemplarAsCopy,
    /// A character typed into the active text field (filter, setting, note, template name).
    Input(char),
    /// Delete the last character of the active text field.
    Backspace,
    /// Confirm the active field or overlay.
    Submit,
    /// Close the active field or overlay without doing anything.
    Close,
    /// Move the cursor of a list overlay, or scroll a text overlay.
    OverlayMove(isize),
    /// Tick/untick the item under the cursor (A/B template chooser).
    OverlayToggle,

    // ---- the worker and the runner ----
    /// The model is loaded and ready.
    ModelLoaded(ModelInfo),
    /// Loading the model failed; the message names what is wrong.
    ModelFailed(String),
    /// Token count of the prompt with this sha256.
    TokenCount {
        prompt_sha256: String,
        result: Result<usize, String>,
    },
    /// An engine event of generation `run`, request `request`, `at_ms` after it began.
    Engine {
        run: u64,
        request: usize,
        event: EngineEvent,
        at_ms: f64,
    },
    /// Generation `run` stopped with an error.
    GenerationFailed {
        run: u64,
        message: String,
    },
    /// Generation `run` is over (every request done or cancelled).
    GenerationFinished {
        run: u64,
    },
    /// The session was written to this file.
    SessionSaved(PathBuf),
    /// Saved sessions, newest first.
    SessionsListed(Vec<SessionEntry>),
    /// A session file was read.
    SessionOpened {
        path: PathBuf,
        session: Box<Session>,
    },
    /// The clipboard copy went through (how it went).
    Copied(ClipboardOutcome),
    /// A template file was written.
    TemplateWritten {
        path: PathBuf,
        template: Box<Template>,
    },
    /// A command of the runner failed; the message is one line.
    Failed(String),
    /// The terminal was resized (nothing to change; the next frame fits).
    Resize,
}

impl Action {
    /// Whether the action comes from the user (a key) rather than from the worker or the runner.
    pub fn is_from_user(&self) -> bool {
        !matches!(
            self,
            Action::ModelLoaded(_)
                | Action::ModelFailed(_)
                | Action::TokenCount { .. }
                | Action::Engine { .. }
                | Action::GenerationFailed { .. }
                | Action::GenerationFinished { .. }
                | Action::SessionSaved(_)
                | Action::SessionsListed(_)
                | Action::SessionOpened { .. }
                | Action::Copied(_)
                | Action::TemplateWritten { .. }
                | Action::Failed(_)
                | Action::Resize
        )
    }
}
