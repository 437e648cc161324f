//! What the user asked for: keys become intents through the keymap; [`App::update`] is their one
//! consumer.
//!
//! [`App::update`]: super::app::App::update

#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// Leave (asks first when annotations are unsaved).
    Quit,
    /// Open or close the help overlay.
    Help,
    /// List every template file that failed to load.
    TemplateErrors,
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
    /// A digit typed on the question list at `at`: jump to that index (digits typed after a pause
    /// start a new number).
    JumpDigit {
        digit: u8,
        at: std::time::Instant,
    },
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
    /// Choose among the paths by the next strategy on the vote line (majority, weighted, verified,
    /// judge).
    NextStrategy,
    /// Switch the calculator in the loop on or off for the next generation.
    ToggleCalculator,
    /// Back to the default settings and the template's own stop strings.
    ResetSettings,
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
    /// Write the focused path as an exemplar to a file.
    ExemplarToFile,
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
    /// A key of the experiments view (`x` opens it).
    Experiment(super::experiments::ExperimentIntent),
    /// Colour every pane's tokens by their probability, or stop (`p`).
    ToggleProbs,
    /// Show or hide the path tree beside the panes (`T`).
    ToggleTree,
    /// Put the token cursor on the focused path, with its inspector, or take it away (`v`).
    TokenCursor,
    /// Close the branch picker, else take the token cursor away (Esc).
    LeaveTokens,
    /// Move the token cursor by tokens (positive: on).
    MoveToken(isize),
    /// Move the token cursor by screen lines (positive: down).
    MoveTokenLine(isize),
    /// Move the branch picker's choice by rows.
    PickAlternative(isize),
    /// Open the branch picker on the cursor's token; in the picker, start the branch (`b`).
    Branch,
}
