//! The app's state and `App::update`, the one place it changes: an [`Action`] in, state changed, the
//! [`Command`]s to carry out returned. No I/O here, so every key's effect is testable without a terminal.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::engine::ModelInfo;

use super::action::Action;
use super::clipboard::ClipboardOutcome;
use super::command::Command;
use super::exemplar::{self, DiffLine};
use super::labels::{Label, LabelState};
use super::questions::QuestionList;
use super::run::{CompareMode, Pane, PromptSpec, Run, MAX_AB};
use super::session::{Session, SessionEntry};
use super::settings::{Field, Settings};
use super::theme::Theme;
use crate::lab::gsm8k::Problem;
use crate::lab::template::Template;

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

/// What `e` proposes: the template with the path appended, and the diff to confirm.
#[derive(Clone, Debug)]
pub struct ExemplarProposal {
    /// Index into `App::templates`.
    pub template: usize,
    pub updated: Template,
    pub diff: Vec<DiffLine>,
    pub scroll: usize,
    /// Some while the user types the name of a copy.
    pub new_name: Option<String>,
}

/// A window over the screen that takes the keys while open.
#[derive(Clone, Debug)]
pub enum Overlay {
    Help {
        scroll: usize,
    },
    /// Template chooser; `picked` are the A/B templates ticked.
    Templates {
        cursor: usize,
        picked: Vec<usize>,
    },
    /// Saved sessions (None while listing).
    Sessions {
        entries: Option<Vec<SessionEntry>>,
        cursor: usize,
    },
    Note {
        pane: usize,
        text: String,
    },
    ConfirmQuit,
    Exemplar(Box<ExemplarProposal>),
}

#[derive(Clone, Debug, PartialEq)]
enum UndoEntry {
    Label { run: u64, pane: usize, label: Label, prev: LabelState },
    Note { run: u64, pane: usize, prev: String },
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
}

pub struct App {
    pub theme: Theme,
    pub problems: &'static [Problem],
    pub questions: QuestionList,
    pub templates: Vec<TemplateEntry>,
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
    pub run: Option<Run>,
    next_run: u64,
    pub overlay: Option<Overlay>,
    pub status: Option<Status>,
    undo: Vec<UndoEntry>,
    /// Bumped by every annotation change; compared with `saved_version` for "unsaved".
    version: u64,
    saved_version: u64,
    /// The action the user was warned would discard unsaved annotations (repeat it to go on).
    armed: Option<&'static str>,
    /// Quit as soon as the pending save is written (`s` in the quit question).
    quit_after_save: bool,
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
            templates_dir: cfg.templates_dir,
            sessions_dir: cfg.sessions_dir,
            template,
            ab,
            mode: CompareMode::SelfConsistency,
            settings: Settings::default(),
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
            run: None,
            next_run: 1,
            overlay: None,
            status: None,
            undo: Vec::new(),
            version: 0,
            saved_version: 0,
            armed: None,
            quit_after_save: false,
            quit: false,
        };
        if !cfg.template_errors.is_empty() {
            app.set_error(format!(
                "{} template(s) failed to load: {}",
                cfg.template_errors.len(),
                cfg.template_errors.join("; ")
            ));
        } else if app.templates.is_empty() {
            app.set_error(format!("no templates in {}", app.templates_dir.display()));
        }
        let mut ignored = Vec::new();
        app.refresh_prompts(&mut ignored);
        app
    }

    /// Whether some label or note changed since the last save (or since the run began).
    pub fn unsaved(&self) -> bool {
        self.version != self.saved_version
    }

    pub fn selected_problem(&self) -> Option<&'static Problem> {
        let problems = self.problems;
        self.questions.selected_index().and_then(|i| problems.get(i))
    }

    pub fn focused_pane(&self) -> Option<&Pane> {
        self.run.as_ref()?.panes.get(self.pane)
    }

    pub fn model_info(&self) -> Option<&ModelInfo> {
        match &self.model {
            ModelState::Ready(i) => Some(i),
            _ => None,
        }
    }

    pub fn generating(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.running)
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

    /// Applies one action; returns what the runner must do.
    pub fn update(&mut self, action: Action) -> Vec<Command> {
        let mut cmds = Vec::new();
        if action.is_from_user() {
            if !matches!(action, Action::JumpDigit(_)) {
                self.questions.jump.clear();
            }
            let keeps_arm = matches!(action, Action::Generate | Action::Open | Action::Submit | Action::OverlayMove(_));
            if !keeps_arm {
                self.armed = None;
            }
            if !matches!(action, Action::Input(_) | Action::Backspace) {
                self.status = None;
            }
        }
        match action {
            Action::Quit => self.quit(&mut cmds),
            Action::Help => {
                self.overlay = match self.overlay {
                    Some(Overlay::Help { .. }) => None,
                    _ => Some(Overlay::Help { scroll: 0 }),
                }
            }
            Action::Generate => self.generate(&mut cmds),
            Action::Cancel => {
                if let Some(run) = self.run.as_mut().filter(|r| r.running) {
                    if !run.cancelling {
                        run.cancelling = true;
                        cmds.push(Command::CancelGeneration { run: run.id });
                    }
                    self.set_status("cancelling…");
                }
            }
            Action::FocusNext | Action::FocusPrev => {
                let d = if matches!(action, Action::FocusNext) { 1 } else { -1 };
                self.focus = self.focus.step(d);
                self.edit = None;
                self.questions.filtering = false;
            }
            Action::MoveQuestion(d) => {
                self.questions.move_by(d);
                self.question_changed(&mut cmds);
            }
            Action::QuestionHome => {
                self.questions.home();
                self.question_changed(&mut cmds);
            }
            Action::QuestionEnd => {
                self.questions.end();
                self.question_changed(&mut cmds);
            }
            Action::StartFilter => {
                self.focus = Focus::Questions;
                self.questions.filtering = true;
            }
            Action::JumpDigit(d) => {
                self.questions.jump_digit(self.problems, d);
                self.question_changed(&mut cmds);
            }
            Action::ScrollPrompt(d) => {
                let max = self.shown_prompt().map_or(0, |p| p.prompt.chars().count());
                self.prompt_scroll_up = scroll(self.prompt_scroll_up, d, max);
            }
            Action::PromptTab(d) => {
                let n = self.prompts.len().max(1) as isize;
                self.prompt_tab = (self.prompt_tab as isize + d).rem_euclid(n) as usize;
                self.prompt_scroll_up = 0;
            }
            Action::SelectSetting(d) => {
                self.edit = None;
                self.setting = (self.setting as isize + d).clamp(0, Field::ALL.len() as isize - 1) as usize;
            }
            Action::AdjustSetting(d) => self.adjust_setting(d, &mut cmds),
            Action::StartEdit(first) => {
                let field = self.setting_field();
                if field.editable() {
                    self.edit = Some(match first {
                        Some(c) => c.to_string(),
                        None => self.settings.edit_text(field, &self.template_stop()),
                    });
                } else {
                    self.set_status(format!("{}: choose with ←/→", field.label()));
                }
            }
            Action::FocusPane(d) => {
                let n = self.run.as_ref().map_or(0, |r| r.panes.len());
                if n > 0 {
                    self.pane = (self.pane as isize + d).clamp(0, n as isize - 1) as usize;
                }
            }
            Action::ScrollPane(d) => {
                let pane = self.pane;
                if let Some(p) = self.run.as_mut().and_then(|r| r.panes.get_mut(pane)) {
                    let max = p.text.chars().count() + 2;
                    p.scroll_up = scroll(p.scroll_up, d, max);
                }
            }
            Action::PaneTop | Action::PaneBottom => {
                let pane = self.pane;
                if let Some(p) = self.run.as_mut().and_then(|r| r.panes.get_mut(pane)) {
                    p.scroll_up = if matches!(action, Action::PaneTop) { p.text.chars().count() + 2 } else { 0 };
                }
            }
            Action::MorePaths | Action::FewerPaths => {
                if self.mode == CompareMode::Ab {
                    self.set_status("the A/B view runs one path per template: t picks the templates");
                } else {
                    let d = if matches!(action, Action::MorePaths) { 1 } else { -1 };
                    self.settings.adjust(Field::Paths, d);
                    self.set_status(format!("{} path(s) next time (Enter generates)", self.settings.paths));
                }
            }
            Action::ChooseTemplate => self.open_template_chooser(),
            Action::ToggleMode => self.toggle_mode(&mut cmds),
            Action::ToggleLabel(k) => self.toggle_label(k),
            Action::EditNote => match self.focused_pane() {
                Some(p) => self.overlay = Some(Overlay::Note { pane: self.pane, text: p.note.clone() }),
                None => self.set_error("no path to annotate yet: Enter generates"),
            },
            Action::Undo => self.undo(),
            Action::Save => {
                // `s` in the quit question saves, then quits once the file is written.
                if matches!(self.overlay, Some(Overlay::ConfirmQuit)) {
                    self.overlay = None;
                    self.quit_after_save = true;
                }
                self.save(&mut cmds);
            }
            Action::Open => {
                if self.generating() {
                    self.set_error("a generation is running: Esc cancels it first");
                } else if self.guard_discard("o") {
                    self.overlay = Some(Overlay::Sessions { entries: None, cursor: 0 });
                    cmds.push(Command::ListSessions);
                }
            }
            Action::CopyExemplar => match self.focused_exemplar() {
                Some(text) => cmds.push(Command::Copy(text)),
                None => self.set_error("no path to copy yet: Enter generates"),
            },
            Action::AppendExemplar => self.propose_exemplar(),
            Action::ExemplarAsCopy => {
                if let Some(Overlay::Exemplar(p)) = self.overlay.as_mut() {
                    if p.new_name.is_none() {
                        let base = self.templates.get(p.template).map_or("template", |t| t.template.name.as_str());
                        p.new_name = Some(format!("{base}-plus"));
                    }
                }
            }
            Action::Input(c) => self.input(Some(c), &mut cmds),
            Action::Backspace => self.input(None, &mut cmds),
            Action::Submit => self.submit(&mut cmds),
            Action::Close => self.close(&mut cmds),
            Action::OverlayMove(d) => self.overlay_move(d),
            Action::OverlayToggle => {
                if let Some(Overlay::Templates { cursor, picked }) = self.overlay.as_mut() {
                    if let Some(pos) = picked.iter().position(|i| i == cursor) {
                        if picked.len() > 1 {
                            picked.remove(pos);
                        }
                    } else if picked.len() < MAX_AB {
                        picked.push(*cursor);
                    }
                }
            }

            Action::ModelLoaded(info) => {
                self.model = ModelState::Ready(info);
                self.refresh_prompts(&mut cmds);
            }
            Action::ModelFailed(msg) => {
                self.set_error(format!("model failed to load: {msg}"));
                self.model = ModelState::Failed(msg);
            }
            Action::TokenCount { prompt_sha256, result } => {
                let c = match result {
                    Ok(n) => TokenCount::Known(n),
                    Err(e) => TokenCount::Failed(e),
                };
                self.token_counts.insert(prompt_sha256, c);
            }
            Action::Engine { run, request, event, at_ms } => {
                if let Some(r) = self.run.as_mut().filter(|r| r.id == run) {
                    r.apply(request, event, at_ms);
                }
            }
            Action::GenerationFailed { run, message } => {
                if let Some(r) = self.run.as_mut().filter(|r| r.id == run) {
                    r.end(Some(message.clone()));
                    self.set_error(format!("generation failed: {message}"));
                }
            }
            Action::GenerationFinished { run } => {
                if let Some(r) = self.run.as_mut().filter(|r| r.id == run) {
                    let was_cancelled = r.cancelling;
                    r.end(None);
                    let rate: f64 = r.stats.iter().map(|s| s.decode_tok_s).sum::<f64>() / r.stats.len().max(1) as f64;
                    let msg = format!(
                        "{} after {} tokens ({rate:.1} tok/s): 1–9 label, n note, s save",
                        if was_cancelled { "cancelled" } else { "done" },
                        r.tokens()
                    );
                    if self.status.as_ref().is_none_or(|s| !s.error) {
                        self.set_status(msg);
                    }
                }
            }
            Action::SessionSaved(path) => {
                if let Some(r) = self.run.as_mut() {
                    r.saved_to = Some(path.clone());
                }
                self.saved_version = self.version;
                self.set_status(format!("saved {}", path.display()));
                if std::mem::take(&mut self.quit_after_save) {
                    self.quit(&mut cmds);
                }
            }
            Action::SessionsListed(list) => {
                if let Some(Overlay::Sessions { entries, cursor }) = self.overlay.as_mut() {
                    *cursor = 0;
                    *entries = Some(list);
                }
            }
            Action::SessionOpened { path, session } => self.open_session(path, *session, &mut cmds),
            Action::Copied(outcome) => match outcome {
                ClipboardOutcome::System => self.set_status("copied the path as an exemplar to the clipboard"),
                ClipboardOutcome::Osc52 { reason } => {
                    self.set_status(format!("no system clipboard ({reason}): sent it via OSC 52 to the terminal"))
                }
            },
            Action::TemplateWritten { path, template } => self.template_written(path, *template, &mut cmds),
            Action::Failed(msg) => {
                self.quit_after_save = false;
                self.set_error(msg)
            }
            Action::Resize => {}
        }
        cmds
    }

    fn quit(&mut self, cmds: &mut Vec<Command>) {
        if matches!(self.overlay, Some(Overlay::ConfirmQuit)) || !self.unsaved() {
            if let Some(r) = self.run.as_ref().filter(|r| r.running) {
                cmds.push(Command::CancelGeneration { run: r.id });
            }
            self.quit = true;
            cmds.push(Command::Quit);
        } else {
            self.overlay = Some(Overlay::ConfirmQuit);
        }
    }

    /// True when nothing unsaved would be lost, or when the user repeats `key` after the warning.
    fn guard_discard(&mut self, key: &'static str) -> bool {
        if !self.unsaved() || self.armed == Some(key) {
            self.armed = None;
            return true;
        }
        self.armed = Some(key);
        self.set_error(format!("unsaved labels/notes on these paths: s saves them, {key} again discards them"));
        false
    }

    fn generate(&mut self, cmds: &mut Vec<Command>) {
        if self.generating() {
            self.set_error("a generation is running: Esc cancels it");
            return;
        }
        let model = match &self.model {
            ModelState::Ready(i) => i.clone(),
            ModelState::Loading => return self.set_error("the model is still loading…"),
            ModelState::Failed(e) => return self.set_error(format!("no model: {e}")),
        };
        let Some(problem) = self.selected_problem() else {
            return self.set_error("no question selected (the filter matches none)");
        };
        if self.prompts.is_empty() {
            return self.set_error(format!("no template to render: add one to {}", self.templates_dir.display()));
        }
        if !self.guard_discard("Enter") {
            return;
        }
        let id = self.next_run;
        self.next_run += 1;
        let run = Run::start(
            id,
            self.mode,
            problem.index,
            &problem.question,
            &problem.gold,
            self.prompts.clone(),
            self.settings.sampling.clone(),
            self.settings.paths,
            Some(model),
        );
        let requests = run.requests();
        self.run = Some(run);
        self.pane = 0;
        self.undo.clear();
        self.saved_version = self.version;
        self.focus = Focus::Paths;
        self.set_status("generating… Esc cancels");
        cmds.push(Command::StartGeneration { run: id, requests });
    }

    fn question_changed(&mut self, cmds: &mut Vec<Command>) {
        self.pinned = None;
        self.prompt_scroll_up = 0;
        self.refresh_prompts(cmds);
    }

    fn spec_for(&self, t: usize, question: &str) -> Option<PromptSpec> {
        let entry = self.templates.get(t)?;
        let tpl = &entry.template;
        let stop = self.settings.stop_override.clone().unwrap_or_else(|| tpl.stop_strings().to_vec());
        Some(PromptSpec::new(
            &tpl.name,
            tpl.render(question),
            stop,
            tpl.instruction().map(str::to_string),
            tpl.ends_with_answer_marker(),
        ))
    }

    /// Re-renders what Enter would send and asks for token counts not known yet.
    fn refresh_prompts(&mut self, cmds: &mut Vec<Command>) {
        self.prompts = match (&self.pinned, self.selected_problem()) {
            (Some(pinned), _) => pinned
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    if let Some(s) = &self.settings.stop_override {
                        p.stop = s.clone();
                    }
                    p
                })
                .collect(),
            (None, Some(problem)) => {
                let ids: Vec<usize> = match self.mode {
                    CompareMode::SelfConsistency => vec![self.template],
                    CompareMode::Ab => self.ab.clone(),
                };
                ids.iter().filter_map(|t| self.spec_for(*t, &problem.question)).collect()
            }
            (None, None) => Vec::new(),
        };
        self.prompt_tab = self.prompt_tab.min(self.prompts.len().saturating_sub(1));
        if matches!(self.model, ModelState::Ready(_)) {
            for p in &self.prompts {
                if !self.token_counts.contains_key(&p.prompt_sha256) {
                    self.token_counts.insert(p.prompt_sha256.clone(), TokenCount::Pending);
                    cmds.push(Command::CountTokens { prompt_sha256: p.prompt_sha256.clone(), text: p.prompt.clone() });
                }
            }
        }
    }

    fn adjust_setting(&mut self, d: i32, cmds: &mut Vec<Command>) {
        match self.setting_field() {
            Field::Mode => self.toggle_mode(cmds),
            Field::Template => match self.mode {
                CompareMode::SelfConsistency if !self.templates.is_empty() => {
                    let n = self.templates.len() as i32;
                    self.template = (self.template as i32 + d).rem_euclid(n) as usize;
                    self.question_changed(cmds);
                }
                _ => self.open_template_chooser(),
            },
            field => self.settings.adjust(field, d),
        }
    }

    fn toggle_mode(&mut self, cmds: &mut Vec<Command>) {
        self.mode = match self.mode {
            CompareMode::SelfConsistency => CompareMode::Ab,
            CompareMode::Ab => CompareMode::SelfConsistency,
        };
        if self.mode == CompareMode::Ab && self.templates.len() < 2 {
            self.set_status("A/B view: only one template loaded");
        } else {
            self.set_status(format!("{} view: Enter generates", self.mode.title()));
        }
        self.prompt_tab = 0;
        self.question_changed(cmds);
    }

    fn open_template_chooser(&mut self) {
        if self.templates.is_empty() {
            return self.set_error(format!("no templates in {}", self.templates_dir.display()));
        }
        let cursor = match self.mode {
            CompareMode::SelfConsistency => self.template,
            CompareMode::Ab => self.ab.first().copied().unwrap_or(0),
        };
        self.overlay = Some(Overlay::Templates { cursor, picked: self.ab.clone() });
    }

    fn toggle_label(&mut self, key: u8) {
        let Some(label) = Label::from_key(key) else { return };
        let pane = self.pane;
        let Some(run) = self.run.as_mut() else {
            return self.set_error("no path to label yet: Enter generates");
        };
        let run_id = run.id;
        let Some(p) = run.panes.get_mut(pane) else { return };
        let prev = p.labels.toggle(label);
        let now = p.labels.get(label).effective();
        self.undo.push(UndoEntry::Label { run: run_id, pane, label, prev });
        self.version += 1;
        self.set_status(format!("path {}: {} {}", pane + 1, label.name(), if now { "on" } else { "off" }));
    }

    fn undo(&mut self) {
        let Some(entry) = self.undo.pop() else {
            return self.set_status("nothing to undo");
        };
        let run_id = self.run.as_ref().map(|r| r.id);
        let (run, pane) = match &entry {
            UndoEntry::Label { run, pane, .. } | UndoEntry::Note { run, pane, .. } => (*run, *pane),
        };
        if run_id != Some(run) {
            return;
        }
        let Some(p) = self.run.as_mut().and_then(|r| r.panes.get_mut(pane)) else { return };
        let msg = match entry {
            UndoEntry::Label { label, prev, .. } => {
                p.labels.set(label, prev);
                format!("undid {} on path {}", label.name(), pane + 1)
            }
            UndoEntry::Note { prev, .. } => {
                p.note = prev;
                format!("undid the note on path {}", pane + 1)
            }
        };
        self.version += 1;
        self.pane = pane;
        self.set_status(msg);
    }

    fn save(&mut self, cmds: &mut Vec<Command>) {
        let Some(run) = self.run.as_ref() else {
            return self.set_error("nothing to save yet: Enter generates");
        };
        if run.running {
            return self.set_error("wait for the generation to finish (or Esc) before saving");
        }
        let Some(model) = run.model.clone().or_else(|| self.model_info().cloned()) else {
            return self.set_error("no model info to save");
        };
        let session = Session::from_run(run, &model);
        cmds.push(Command::SaveSession { session: Box::new(session), path: run.saved_to.clone() });
        self.set_status("saving…");
    }

    fn focused_exemplar(&self) -> Option<String> {
        let run = self.run.as_ref()?;
        let p = run.panes.get(self.pane)?;
        Some(exemplar::exemplar_text(&run.question_text, &p.text))
    }

    fn propose_exemplar(&mut self) {
        let Some(run) = self.run.as_ref() else {
            return self.set_error("no path yet: Enter generates");
        };
        let Some(p) = run.panes.get(self.pane) else { return };
        if run.running {
            return self.set_error("wait for the generation to finish before adding it as an exemplar");
        }
        let reasoning = exemplar::reasoning(&p.text);
        if reasoning.is_empty() {
            return self.set_error("this path is empty");
        }
        let name = run.template_of(self.pane).map(|s| s.template.clone()).unwrap_or_default();
        let Some(ti) = self.templates.iter().position(|t| t.template.name == name) else {
            return self.set_error(format!("template {name} is not loaded from {}", self.templates_dir.display()));
        };
        let old = &self.templates[ti].template;
        let mut updated = old.clone();
        updated.push_exemplar(run.question_text.trim(), &reasoning);
        let diff = match (old.to_yaml(), updated.to_yaml()) {
            (Ok(a), Ok(b)) => exemplar::diff(&a, &b, 3),
            (Err(e), _) | (_, Err(e)) => return self.set_error(format!("template {name}: {e}")),
        };
        self.overlay = Some(Overlay::Exemplar(Box::new(ExemplarProposal {
            template: ti,
            updated,
            diff,
            scroll: 0,
            new_name: None,
        })));
    }

    fn input(&mut self, c: Option<char>, cmds: &mut Vec<Command>) {
        fn edit(buf: &mut String, c: Option<char>) {
            match c {
                Some(c) => buf.push(c),
                None => {
                    buf.pop();
                }
            }
        }
        match self.overlay.as_mut() {
            Some(Overlay::Note { text, .. }) => return edit(text, c),
            Some(Overlay::Exemplar(p)) => {
                if let Some(name) = p.new_name.as_mut() {
                    edit(name, c);
                }
                return;
            }
            Some(_) => return,
            None => {}
        }
        if self.questions.filtering {
            let mut f = self.questions.filter.clone();
            edit(&mut f, c);
            self.questions.set_filter(self.problems, &f);
            self.question_changed(cmds);
        } else if let Some(buf) = self.edit.as_mut() {
            edit(buf, c);
        }
    }

    fn submit(&mut self, cmds: &mut Vec<Command>) {
        match self.overlay.take() {
            Some(Overlay::Help { .. }) => {}
            Some(Overlay::ConfirmQuit) => {
                self.overlay = Some(Overlay::ConfirmQuit);
                self.quit(cmds);
            }
            Some(Overlay::Templates { cursor, picked }) => {
                match self.mode {
                    CompareMode::SelfConsistency => self.template = cursor.min(self.templates.len().saturating_sub(1)),
                    CompareMode::Ab => {
                        self.ab = picked;
                        if self.ab.is_empty() {
                            self.ab.push(cursor);
                        }
                    }
                }
                self.question_changed(cmds);
            }
            Some(Overlay::Sessions { entries, cursor }) => {
                if let Some(e) = entries.as_ref().and_then(|e| e.get(cursor)) {
                    cmds.push(Command::OpenSession(e.path.clone()));
                    self.set_status(format!("opening {}…", e.name));
                }
            }
            Some(Overlay::Note { pane, text }) => {
                let run_id = self.run.as_ref().map(|r| r.id);
                if let (Some(run), Some(p)) = (run_id, self.run.as_mut().and_then(|r| r.panes.get_mut(pane))) {
                    if p.note != text {
                        let prev = std::mem::replace(&mut p.note, text);
                        self.undo.push(UndoEntry::Note { run, pane, prev });
                        self.version += 1;
                        self.set_status(format!("note on path {} (u undoes)", pane + 1));
                    }
                }
            }
            Some(Overlay::Exemplar(p)) => self.write_exemplar(*p, cmds),
            None => {
                if self.questions.filtering {
                    self.questions.filtering = false;
                } else if let Some(buf) = self.edit.take() {
                    let field = self.setting_field();
                    match self.settings.apply_edit(field, &buf) {
                        Ok(()) => {
                            if field == Field::Stop {
                                self.refresh_prompts(cmds);
                            }
                        }
                        Err(e) => self.set_error(e),
                    }
                } else {
                    self.generate(cmds);
                }
            }
        }
    }

    fn write_exemplar(&mut self, p: ExemplarProposal, cmds: &mut Vec<Command>) {
        let Some(entry) = self.templates.get(p.template) else { return };
        match &p.new_name {
            None => {
                cmds.push(Command::WriteTemplate { path: entry.path.clone(), template: Box::new(p.updated) });
                self.set_status(format!("writing {}…", entry.path.display()));
            }
            Some(name) => {
                if !exemplar::valid_template_name(name) {
                    self.set_error(format!("`{name}` is not a usable template name (letters, digits, - _ .)"));
                } else if self.templates.iter().any(|t| t.template.name == *name) {
                    self.set_error(format!("a template named {name} already exists"));
                } else {
                    let mut t = p.updated.clone();
                    t.name = name.clone();
                    let path = self.templates_dir.join(format!("{name}.yaml"));
                    self.set_status(format!("writing {}…", path.display()));
                    cmds.push(Command::WriteTemplate { path, template: Box::new(t) });
                    return;
                }
                // Keep the dialog open to fix the name.
                self.overlay = Some(Overlay::Exemplar(Box::new(p)));
            }
        }
    }

    fn close(&mut self, cmds: &mut Vec<Command>) {
        if let Some(Overlay::Exemplar(p)) = self.overlay.as_mut() {
            if p.new_name.is_some() {
                p.new_name = None;
                return;
            }
        }
        if self.overlay.take().is_some() {
            return;
        }
        if self.questions.filtering {
            self.questions.filtering = false;
            self.questions.set_filter(self.problems, "");
            self.question_changed(cmds);
        } else if self.edit.take().is_none() {
            // Esc with nothing open cancels a generation.
            if self.generating() {
                cmds.extend(self.update(Action::Cancel));
            }
        }
    }

    fn overlay_move(&mut self, d: isize) {
        let n_templates = self.templates.len();
        match self.overlay.as_mut() {
            Some(Overlay::Help { scroll: s }) => *s = scroll(*s, -d, 200),
            Some(Overlay::Templates { cursor, .. }) => {
                *cursor = (*cursor as isize + d).clamp(0, n_templates.saturating_sub(1) as isize) as usize
            }
            Some(Overlay::Sessions { entries, cursor }) => {
                let n = entries.as_ref().map_or(0, Vec::len);
                *cursor = (*cursor as isize + d).clamp(0, n.saturating_sub(1) as isize) as usize;
            }
            Some(Overlay::Exemplar(p)) => p.scroll = (p.scroll as isize + d).clamp(0, p.diff.len() as isize) as usize,
            _ => {}
        }
    }

    fn open_session(&mut self, path: PathBuf, session: Session, cmds: &mut Vec<Command>) {
        if self.generating() {
            return self.set_error("a generation is running: Esc cancels it first");
        }
        let id = self.next_run;
        self.next_run += 1;
        let run = match session.to_run(id, Some(path.clone())) {
            Ok(r) => r,
            Err(e) => return self.set_error(format!("{}: {e}", path.display())),
        };
        let mut warnings = Vec::new();
        self.mode = session.mode;
        if !self.questions.select_index(self.problems, session.question.index) {
            warnings.push(format!("question {} is not in this GSM8K test set", session.question.index));
        }
        let find = |name: &str| self.templates.iter().position(|t| t.template.name == name);
        let found: Vec<usize> = session.templates.iter().filter_map(|t| find(&t.template)).collect();
        match self.mode {
            CompareMode::SelfConsistency => {
                if let Some(t) = found.first() {
                    self.template = *t;
                }
                self.settings.paths = session.paths.len().clamp(1, super::settings::MAX_PATHS);
            }
            CompareMode::Ab => {
                if !found.is_empty() {
                    self.ab = found;
                }
            }
        }
        for t in &session.templates {
            match self.templates.iter().find(|e| e.template.name == t.template) {
                None => warnings.push(format!("template {} is not loaded", t.template)),
                Some(e) if super::run::sha256_hex(e.template.render(&session.question.text)) != t.prompt_sha256 => {
                    warnings.push(format!("template {} changed since", t.template))
                }
                Some(_) => {}
            }
        }
        if let Some(info) = self.model_info() {
            if info.config_hash != session.model.config_hash {
                warnings.push(format!("saved with model {} (another config than the one loaded)", session.model.id));
            }
        }
        self.settings.sampling = session.sampling.clone();
        self.settings.stop_override = None;
        self.pinned = Some(session.templates.clone());
        self.prompt_tab = 0;
        self.prompt_scroll_up = 0;
        self.refresh_prompts(cmds);
        self.run = Some(run);
        self.pane = 0;
        self.undo.clear();
        self.saved_version = self.version;
        self.focus = Focus::Paths;
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        if warnings.is_empty() {
            self.set_status(format!("opened {name}: Enter runs it again with the prompt as saved"));
        } else {
            self.set_error(format!("opened {name}; {}; Enter runs the prompt as saved", warnings.join("; ")));
        }
    }

    fn template_written(&mut self, path: PathBuf, template: Template, cmds: &mut Vec<Command>) {
        let n = template.exemplars().len();
        let name = template.name.clone();
        let idx = match self.templates.iter().position(|t| t.path == path) {
            Some(i) => {
                self.templates[i].template = template;
                i
            }
            None => {
                self.templates.push(TemplateEntry { path: path.clone(), template });
                self.templates.len() - 1
            }
        };
        if self.mode == CompareMode::SelfConsistency {
            self.template = idx;
        }
        self.pinned = None;
        self.refresh_prompts(cmds);
        self.set_status(format!("wrote {} ({name}, {n} exemplars)", path.display()));
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
