//! The app's state and the two places it changes: [`App::update`] for what the user asked for (an
//! [`Intent`]) and [`App::on_report`] for what the worker and the event loop report (a [`Report`]). Both
//! return the [`Command`]s to carry out. No I/O here, so every key's effect is testable without a
//! terminal. The handlers live beside the state they touch: `annotate` (labels, notes, undo),
//! `overlays` (dialogs and text fields), `prompts` (question, template, mode, settings), `sessions`
//! (save, open, rerun), `exemplars` (`y`, `Y`, `e`) and `generating` (start, cancel, engine events).

mod annotate;
mod choosing;
mod exemplars;
mod experiments;
mod generating;
mod overlays;
mod prompts;
mod sessions;
mod token_view;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::engine::ModelInfo;
use crate::lab::gsm8k::Problem;
use crate::lab::record::{CompareMode, PromptSpec};
use crate::lab::template::Template;

use super::command::Command;
use super::experiments::ExperimentIntent;
use super::generation::{Generation, Pane};
use super::intent::Intent;
use super::questions::QuestionList;
use super::report::Report;
use super::settings::{Field, Settings};
use super::theme::Theme;

pub use annotate::Annotation;
pub use choosing::JUDGING;
pub use exemplars::ExemplarProposal;
pub use experiments::{ExperimentRun, Experiments, RunState, Setup, SetupField};
pub use overlays::Overlay;
pub use token_view::{TokenCursor, TokenView};

/// The panel keys go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Questions,
    Prompt,
    Settings,
    Paths,
}

impl Focus {
    pub const ALL: [Focus; 4] = [Focus::Questions, Focus::Prompt, Focus::Settings, Focus::Paths];

    pub fn title(self) -> &'static str {
        match self {
            Focus::Questions => "Questions",
            Focus::Prompt => "Prompt",
            Focus::Settings => "Settings",
            Focus::Paths => "Paths",
        }
    }

    fn step(self, d: isize) -> Focus {
        let i = Focus::ALL.iter().position(|f| *f == self).unwrap_or(0) as isize;
        Focus::ALL[(i + d).rem_euclid(Focus::ALL.len() as isize) as usize]
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ModelState {
    Loading,
    Ready(ModelInfo),
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum TokenCount {
    Pending,
    Known(usize),
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

/// A template file as loaded.
#[derive(Clone, Debug)]
pub struct TemplateEntry {
    pub path: PathBuf,
    pub template: Template,
}

/// What the app starts from.
pub struct AppConfig {
    pub problems: &'static [Problem],
    pub templates: Vec<(PathBuf, Template)>,
    /// One line each, for templates that failed to load.
    pub template_errors: Vec<String>,
    pub templates_dir: PathBuf,
    pub sessions_dir: PathBuf,
    pub theme: Theme,
    /// Settings remembered from the last launch.
    pub settings: Option<Settings>,
}

pub struct App {
    pub theme: Theme,
    pub problems: &'static [Problem],
    pub questions: QuestionList,
    pub templates: Vec<TemplateEntry>,
    /// Every template that failed to load, in full (`!` lists them).
    pub template_errors: Vec<String>,
    pub templates_dir: PathBuf,
    pub sessions_dir: PathBuf,
    /// The template of the self-consistency view (index into `templates`).
    pub template: usize,
    /// The templates of the A/B view.
    pub ab: Vec<usize>,
    pub mode: CompareMode,
    pub settings: Settings,
    /// Settings cursor (index into `Field::ALL`).
    pub setting: usize,
    /// The value being typed for the selected setting.
    pub edit: Option<String>,
    pub focus: Focus,
    /// Focused path pane.
    pub pane: usize,
    /// Which of `prompts` the prompt view shows.
    pub prompt_tab: usize,
    /// Prompt view lines scrolled up from its end (0 shows the question at the end).
    pub prompt_scroll_up: usize,
    /// Prompts as saved in an opened session: used as they are until the question, template or mode changes.
    pub pinned: Option<Vec<PromptSpec>>,
    /// What Enter would send now (rendered when the question, template or settings change, not per frame).
    pub prompts: Vec<PromptSpec>,
    /// Token counts by prompt sha256.
    pub token_counts: HashMap<String, TokenCount>,
    pub model: ModelState,
    pub generation: Option<Generation>,
    next_generation: u64,
    pub overlay: Option<Overlay>,
    pub status: Option<Status>,
    /// The experiments view (`x`).
    pub experiments: Experiments,
    undo: Vec<annotate::UndoEntry>,
    /// The human's labels and notes as last saved (or as the run began); "unsaved" compares with it.
    saved_annotations: Vec<Annotation>,
    /// What the pending save writes, taken as the saved state once the file is written.
    saving_annotations: Option<Vec<Annotation>>,
    /// The intent the user was warned would discard unsaved annotations (repeat it to go on).
    armed: Option<&'static str>,
    /// Quit as soon as the pending save is written (`s` in the quit question).
    quit_after_save: bool,
    /// Probability colours, the token cursor and the path tree.
    pub tokens: TokenView,
    /// How the vote line chooses among the paths (`V`).
    pub strategy: crate::lab::select::Strategy,
    pub quit: bool,
}

impl App {
    pub fn new(cfg: AppConfig) -> App {
        let templates: Vec<TemplateEntry> =
            cfg.templates.into_iter().map(|(path, template)| TemplateEntry { path, template }).collect();
        let template = templates.iter().position(|t| t.template.name == "wei-8shot").unwrap_or(0);
        let mut ab = vec![template];
        if let Some(other) = (0..templates.len()).find(|i| *i != template) {
            ab.push(other);
        }
        let mut app = App {
            theme: cfg.theme,
            problems: cfg.problems,
            questions: QuestionList::new(cfg.problems),
            templates,
            template_errors: cfg.template_errors,
            templates_dir: cfg.templates_dir,
            sessions_dir: cfg.sessions_dir,
            template,
            ab,
            mode: CompareMode::SelfConsistency,
            settings: cfg.settings.unwrap_or_default(),
            setting: 0,
            edit: None,
            focus: Focus::Questions,
            pane: 0,
            prompt_tab: 0,
            prompt_scroll_up: 0,
            pinned: None,
            prompts: Vec::new(),
            token_counts: HashMap::new(),
            model: ModelState::Loading,
            generation: None,
            next_generation: 1,
            overlay: None,
            status: None,
            experiments: Experiments::default(),
            undo: Vec::new(),
            saved_annotations: Vec::new(),
            saving_annotations: None,
            armed: None,
            quit_after_save: false,
            tokens: TokenView::default(),
            strategy: crate::lab::select::Strategy::Majority,
            quit: false,
        };
        if !app.template_errors.is_empty() {
            app.set_error(format!("{} template file(s) failed to load: ! lists them", app.template_errors.len()));
        } else if app.templates.is_empty() {
            app.set_error(format!("no templates in {}", app.templates_dir.display()));
        }
        let mut ignored = Vec::new();
        app.refresh_prompts(&mut ignored);
        app
    }

    pub fn selected_problem(&self) -> Option<&'static Problem> {
        let problems = self.problems;
        self.questions.selected_index().and_then(|i| problems.get(i))
    }

    pub fn focused_pane(&self) -> Option<&Pane> {
        self.generation.as_ref()?.panes.get(self.pane)
    }

    pub fn model_info(&self) -> Option<&ModelInfo> {
        match &self.model {
            ModelState::Ready(i) => Some(i),
            _ => None,
        }
    }

    pub fn generating(&self) -> bool {
        self.generation.as_ref().is_some_and(|r| r.running)
    }

    /// Whether `u` has something to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// The settings row under the cursor.
    pub fn setting_field(&self) -> Field {
        Field::ALL[self.setting.min(Field::ALL.len() - 1)]
    }

    /// Stop strings of the selected template (what "template default" means in the settings panel).
    pub fn template_stop(&self) -> Vec<String> {
        self.templates.get(self.template).map(|t| t.template.stop_strings().to_vec()).unwrap_or_default()
    }

    /// The prompt the prompt view shows.
    pub fn shown_prompt(&self) -> Option<&PromptSpec> {
        self.prompts.get(self.prompt_tab.min(self.prompts.len().saturating_sub(1)))
    }

    fn set_status(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: false });
    }

    fn set_error(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: true });
    }

    /// Applies what the user asked for; returns what the event loop must do.
    pub fn update(&mut self, intent: Intent) -> Vec<Command> {
        let mut cmds = Vec::new();
        if !matches!(intent, Intent::JumpDigit { .. }) {
            self.questions.jump.clear();
        }
        let open_cell = Intent::Experiment(ExperimentIntent::OpenCell);
        if !matches!(intent, Intent::Generate | Intent::Open | Intent::Submit | Intent::OverlayMove(_))
            && intent != open_cell
        {
            self.armed = None;
        }
        let typing = matches!(intent, Intent::Experiment(ExperimentIntent::Input(_) | ExperimentIntent::Backspace));
        if !matches!(intent, Intent::Input(_) | Intent::Backspace) && !typing {
            self.status = None;
        }
        match intent {
            Intent::Quit => self.quit(&mut cmds),
            Intent::Help => self.toggle_help(),
            Intent::TemplateErrors => self.show_template_errors(),
            Intent::Generate => self.generate(&mut cmds),
            Intent::Cancel => self.cancel(&mut cmds),
            Intent::FocusNext => self.move_focus(1),
            Intent::FocusPrev => self.move_focus(-1),
            Intent::MoveQuestion(d) => {
                self.questions.move_by(d);
                self.question_changed(&mut cmds);
            }
            Intent::QuestionHome => {
                self.questions.home();
                self.question_changed(&mut cmds);
            }
            Intent::QuestionEnd => {
                self.questions.end();
                self.question_changed(&mut cmds);
            }
            Intent::StartFilter => {
                self.focus = Focus::Questions;
                self.questions.filtering = true;
            }
            Intent::JumpDigit { digit, at } => {
                self.questions.jump_digit(self.problems, digit, at);
                self.question_changed(&mut cmds);
            }
            Intent::ScrollPrompt(d) => {
                let max = self.shown_prompt().map_or(0, |p| p.prompt.chars().count());
                self.prompt_scroll_up = scroll(self.prompt_scroll_up, d, max);
            }
            Intent::PromptTab(d) => {
                let n = self.prompts.len().max(1) as isize;
                self.prompt_tab = (self.prompt_tab as isize + d).rem_euclid(n) as usize;
                self.prompt_scroll_up = 0;
            }
            Intent::SelectSetting(d) => {
                self.edit = None;
                self.setting = (self.setting as isize + d).clamp(0, Field::ALL.len() as isize - 1) as usize;
            }
            Intent::AdjustSetting(d) => self.adjust_setting(d, &mut cmds),
            Intent::StartEdit(first) => self.start_edit(first),
            Intent::ResetSettings => self.reset_settings(&mut cmds),
            Intent::ToggleCalculator => self.toggle_calculator(&mut cmds),
            Intent::NextStrategy => self.next_strategy(&mut cmds),
            Intent::FocusPane(d) => {
                let n = self.generation.as_ref().map_or(0, |r| r.panes.len());
                if n > 0 {
                    self.pane = (self.pane as isize + d).clamp(0, n as isize - 1) as usize;
                }
                self.clamp_cursor();
            }
            Intent::ScrollPane(d) => {
                let pane = self.pane;
                if let Some(p) = self.generation.as_mut().and_then(|r| r.panes.get_mut(pane)) {
                    let max = p.text.chars().count() + 2;
                    p.scroll_up = scroll(p.scroll_up, d, max);
                }
            }
            Intent::PaneTop | Intent::PaneBottom => {
                let pane = self.pane;
                if let Some(p) = self.generation.as_mut().and_then(|r| r.panes.get_mut(pane)) {
                    p.scroll_up = if intent == Intent::PaneTop { p.text.chars().count() + 2 } else { 0 };
                }
            }
            Intent::MorePaths => self.change_paths(1, &mut cmds),
            Intent::FewerPaths => self.change_paths(-1, &mut cmds),
            Intent::ChooseTemplate => self.open_template_chooser(),
            Intent::ToggleMode => self.toggle_mode(&mut cmds),
            Intent::ToggleLabel(k) => self.toggle_label(k),
            Intent::EditNote => self.edit_note(),
            Intent::Undo => self.undo(),
            Intent::Save => {
                // `s` in the quit question saves, then quits once the file is written (only if the save
                // was sent: a refused save must not quit on some later one).
                let quitting = matches!(self.overlay, Some(Overlay::ConfirmQuit));
                if quitting {
                    self.overlay = None;
                }
                let sent = self.save(&mut cmds);
                self.quit_after_save = quitting && sent;
            }
            Intent::Open => self.list_sessions(&mut cmds),
            Intent::CopyExemplar => self.copy_exemplar(&mut cmds),
            Intent::ExemplarToFile => self.exemplar_to_file(&mut cmds),
            Intent::AppendExemplar => self.propose_exemplar(),
            Intent::ExemplarAsCopy => self.exemplar_as_copy(),
            Intent::Input(c) => self.input(Some(c), &mut cmds),
            Intent::Backspace => self.input(None, &mut cmds),
            Intent::Submit => self.submit(&mut cmds),
            Intent::Close => self.close(&mut cmds),
            Intent::OverlayMove(d) => self.overlay_move(d),
            Intent::OverlayToggle => self.overlay_toggle(),
            Intent::Experiment(i) => self.experiment_intent(i, &mut cmds),
            Intent::ToggleProbs => self.toggle_probs(),
            Intent::ToggleTree => self.toggle_tree(),
            Intent::TokenCursor => self.enter_tokens(),
            Intent::LeaveTokens => self.leave_tokens(),
            Intent::MoveToken(d) => self.move_token(d),
            Intent::MoveTokenLine(d) => self.move_token_line(d),
            Intent::PickAlternative(d) => self.pick_alternative(d),
            Intent::Branch => self.branch(&mut cmds),
        }
        cmds
    }

    /// Applies what the worker or the event loop reported; returns what the event loop must do next.
    pub fn on_report(&mut self, report: Report) -> Vec<Command> {
        let mut cmds = Vec::new();
        match report {
            Report::ModelLoaded(info) => {
                self.model = ModelState::Ready(info);
                self.refresh_prompts(&mut cmds);
            }
            Report::ModelFailed(msg) => {
                self.set_error(format!("model failed to load: {msg}"));
                self.model = ModelState::Failed(msg);
            }
            Report::TokenCount { prompt_sha256, result } => {
                let c = match result {
                    Ok(n) => TokenCount::Known(n),
                    Err(e) => TokenCount::Failed(e),
                };
                self.token_counts.insert(prompt_sha256, c);
            }
            Report::Engine { id, request, event, at_ms } => {
                if let Some(r) = self.generation.as_mut().filter(|r| r.id == id) {
                    r.apply(request, event, at_ms);
                }
            }
            Report::GenerationFailed { id, message } => self.generation_failed(id, message),
            Report::GenerationFinished { id } => {
                self.generation_finished(id);
                self.judge_if_wanted(&mut cmds);
            }
            Report::Judged { id, prompt, result } => self.judged(id, prompt, result),
            Report::SessionSaved(path) => self.session_saved(path, &mut cmds),
            Report::SessionsListed(list) => {
                if let Some(Overlay::Sessions { entries, cursor }) = self.overlay.as_mut() {
                    *cursor = 0;
                    *entries = Some(list);
                }
            }
            Report::SessionOpened { path, session } => self.open_session(path, *session, &mut cmds),
            Report::Copied(outcome) => self.copied(outcome),
            Report::ExemplarWritten(path) => self.set_status(format!("wrote the exemplar to {}", path.display())),
            Report::TemplateWritten { path, template } => self.template_written(path, *template, &mut cmds),
            Report::Experiment { id, update, at_ms } => self.experiment_update(id, *update, at_ms),
            Report::Resized { width, height } => self.tokens.screen = Some((width, height)),
            Report::Failed(msg) => {
                self.quit_after_save = false;
                self.saving_annotations = None;
                self.set_error(msg)
            }
        }
        cmds
    }

    fn move_focus(&mut self, d: isize) {
        self.focus = self.focus.step(d);
        self.tokens.cursor = None;
        self.edit = None;
        self.questions.filtering = false;
    }
}

/// Scrolls a "lines up from the bottom" offset by `d` lines (positive: down), within 0..=max.
fn scroll(up: usize, d: isize, max: usize) -> usize {
    if d >= 0 {
        up.saturating_sub(d as usize)
    } else {
        (up + d.unsigned_abs()).min(max)
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
pub(crate) use experiments::tests as experiments_tests;
