//! The experiments view (`x`): several templates run over a range of questions as one experiment, a
//! grid of questions × templates filling in as questions finish, and a cell opened in the normal view.
//! The grid's numbers are `report`'s: [`lab::report::build`] over the same lines the files hold.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::engine::SamplingParams;
use crate::lab;
use crate::lab::evalfile::EvalRecord;
use crate::lab::experiment::{self, Event, Plan};
use crate::lab::labels::Labels;
use crate::lab::record::{CompareMode, PromptSpec, QuestionRecord, RunRecord, VoteRecord};
use crate::lab::report::{self, Run};

use super::super::command::Command;
use super::super::experiments::{experiments_dir, ExperimentIntent, ExperimentUpdate, BATCH_ROWS};
use super::super::session::{self, Session};
use super::{App, ModelState};

/// The view's state: hidden or shown, the setup being filled in, the last experiment.
#[derive(Debug, Default)]
pub struct Experiments {
    pub shown: bool,
    /// Filled in before a run (None: the grid shows).
    pub setup: Option<Setup>,
    pub run: Option<ExperimentRun>,
}

/// Which field of the setup takes the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupField {
    Templates,
    Questions,
    Name,
}

impl SetupField {
    const ALL: [SetupField; 3] = [SetupField::Templates, SetupField::Questions, SetupField::Name];
}

/// What the next experiment runs: the ticked templates, the questions, and its name (its folder).
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// Ticked templates (indices into `App::templates`), in the order ticked: the grid's columns.
    pub picked: Vec<usize>,
    pub cursor: usize,
    pub field: SetupField,
    /// GSM8K test questions as typed: `0..20`, `5,7,9`.
    pub questions: String,
    /// As typed; empty: named after the questions and templates (so the same choice resumes).
    pub name: String,
}

/// Where an experiment is.
#[derive(Clone, Debug, PartialEq)]
pub enum RunState {
    /// Waiting for the worker to open the files.
    Opening,
    Running,
    Cancelling,
    Done,
    Cancelled,
    Failed(String),
}

/// An experiment started in this session: its plan, the lines its files hold, report's numbers over
/// them, and its progress.
#[derive(Clone, Debug)]
pub struct ExperimentRun {
    pub id: u64,
    pub name: String,
    pub dir: PathBuf,
    /// The questions as typed (a new setup starts from them).
    pub spec: String,
    /// Column names.
    pub templates: Vec<String>,
    pub questions: Vec<usize>,
    pub sampling: SamplingParams,
    pub paths: usize,
    pub stop: Option<Vec<String>>,
    pub calculator: bool,
    pub files: Vec<PathBuf>,
    /// Each template's lines, in file order.
    pub records: Vec<Vec<EvalRecord>>,
    /// `report`'s numbers over `records`: one run per template (same order), a row per question.
    pub report: report::Report,
    pub state: RunState,
    /// Cells (question × template) left to run when the files were opened; None until then.
    pub todo: Option<usize>,
    /// Cells finished by this run.
    pub finished: usize,
    pub paths_done: usize,
    /// Milliseconds since the run began, as last reported.
    pub elapsed_ms: f64,
    /// Paths ended so far in cells still running, by (template, question).
    pub partial: HashMap<(usize, usize), usize>,
    /// Grid cursor: row (index into [`ExperimentRun::rows`]) and column (template).
    pub cursor: (usize, usize),
}

impl ExperimentRun {
    /// The grid's rows: every planned question and any other the files hold, in order.
    pub fn rows(&self) -> Vec<usize> {
        let mut rows: Vec<usize> = self.questions.clone();
        rows.extend(self.report.questions.iter().map(|q| q.index));
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    /// Report's cell for question `index`, template `col`.
    pub fn cell(&self, index: usize, col: usize) -> Option<&report::Cell> {
        let row = self.report.questions.binary_search_by_key(&index, |q| q.index).ok()?;
        self.report.questions[row].cells.get(col)?.as_ref()
    }

    /// The line of question `index`, template `col`.
    pub fn record(&self, index: usize, col: usize) -> Option<&EvalRecord> {
        self.records.get(col)?.iter().find(|r| r.index == index)
    }

    pub fn running(&self) -> bool {
        matches!(self.state, RunState::Opening | RunState::Running | RunState::Cancelling)
    }

    /// Planned rows with a line for every template.
    pub fn questions_done(&self) -> usize {
        self.questions.iter().filter(|&&q| (0..self.templates.len()).all(|t| self.cell(q, t).is_some())).count()
    }

    /// Paths ended per second in this run.
    pub fn paths_per_s(&self) -> Option<f64> {
        (self.elapsed_ms > 0.0 && self.paths_done > 0).then(|| self.paths_done as f64 / (self.elapsed_ms / 1000.0))
    }

    /// Seconds left at the rate so far.
    pub fn eta_s(&self) -> Option<f64> {
        let todo = self.todo?;
        let left = todo.saturating_sub(self.finished) * self.paths;
        let left = left.saturating_sub(self.partial.values().sum::<usize>());
        Some(left as f64 / self.paths_per_s()?)
    }

    /// Rebuilds report's numbers from the lines (as `report` reads the files: in question order, the
    /// first line's settings).
    fn rebuild(&mut self) {
        let runs: Vec<Run> = self
            .files
            .iter()
            .zip(&self.records)
            .map(|(path, lines)| {
                let mut records = lines.clone();
                records.sort_by_key(|r| r.index);
                let settings = lines.first().and_then(|r| serde_json::to_value(r.settings.as_ref()?).ok());
                Run { path: path.clone(), records, settings, notes: Vec::new() }
            })
            .collect();
        // Forced: templates always differ in settings (the template), and no pair is claimed here.
        if let Ok(r) = report::build(&runs, true) {
            self.report = r;
        }
    }
}

fn empty_report() -> report::Report {
    report::Report { runs: Vec::new(), pairs: Vec::new(), questions: Vec::new(), notes: Vec::new() }
}

impl App {
    /// Whether the experiments view has the screen.
    pub fn experiments_shown(&self) -> bool {
        self.experiments.shown
    }

    pub fn experiment_running(&self) -> bool {
        self.experiments.run.as_ref().is_some_and(ExperimentRun::running)
    }

    pub(super) fn experiment_intent(&mut self, intent: ExperimentIntent, cmds: &mut Vec<Command>) {
        match intent {
            ExperimentIntent::Show => self.show_experiments(),
            ExperimentIntent::Leave => self.leave_experiments(),
            ExperimentIntent::Move { rows, cols } => self.experiment_move(rows, cols),
            ExperimentIntent::Toggle => self.experiment_toggle(),
            ExperimentIntent::Field(d) => {
                if let Some(s) = self.experiments.setup.as_mut() {
                    let i = SetupField::ALL.iter().position(|f| *f == s.field).unwrap_or(0) as isize;
                    s.field = SetupField::ALL[(i + d).rem_euclid(SetupField::ALL.len() as isize) as usize];
                }
            }
            ExperimentIntent::Input(c) => {
                if let Some(buf) = self.setup_text() {
                    buf.push(c);
                }
            }
            ExperimentIntent::Backspace => {
                if let Some(buf) = self.setup_text() {
                    buf.pop();
                }
            }
            ExperimentIntent::Start => self.start_experiment(cmds),
            ExperimentIntent::OpenCell => self.open_cell(cmds),
            ExperimentIntent::Cancel => self.cancel_experiment(cmds),
            ExperimentIntent::New => {
                if self.experiment_running() {
                    self.set_error("an experiment is running: Esc cancels it first");
                } else {
                    self.experiments.setup = Some(self.new_setup());
                }
            }
        }
    }

    fn setup_text(&mut self) -> Option<&mut String> {
        let s = self.experiments.setup.as_mut()?;
        match s.field {
            SetupField::Templates => None,
            SetupField::Questions => Some(&mut s.questions),
            SetupField::Name => Some(&mut s.name),
        }
    }

    fn show_experiments(&mut self) {
        self.experiments.shown = true;
        if self.experiments.run.is_none() && self.experiments.setup.is_none() {
            self.experiments.setup = Some(self.new_setup());
        }
    }

    /// The next setup: the last experiment's choice, else the templates of the normal view.
    fn new_setup(&self) -> Setup {
        let find = |name: &str| self.templates.iter().position(|t| t.template.name == name);
        let (picked, questions) = match &self.experiments.run {
            Some(r) => (r.templates.iter().filter_map(|n| find(n)).collect(), r.spec.clone()),
            None => {
                let picked = match self.mode {
                    CompareMode::SelfConsistency => vec![self.template],
                    CompareMode::Ab => self.ab.clone(),
                };
                (picked, "0..10".to_string())
            }
        };
        let picked: Vec<usize> = picked.into_iter().filter(|&i| i < self.templates.len()).collect();
        Setup {
            cursor: picked.first().copied().unwrap_or(0),
            picked,
            field: SetupField::Templates,
            questions,
            name: String::new(),
        }
    }

    /// The name the setup runs under: as typed, else `q<questions>-<templates>`.
    pub fn setup_name(&self, s: &Setup) -> String {
        let typed = s.name.trim();
        if !typed.is_empty() {
            return experiment::safe_name(typed);
        }
        let names: Vec<&str> =
            s.picked.iter().filter_map(|&i| self.templates.get(i)).map(|t| t.template.name.as_str()).collect();
        let questions: String = s.questions.chars().filter(|c| !c.is_whitespace()).collect();
        experiment::safe_name(&format!("q{questions}-{}", names.join("+")))
    }

    /// Where the setup's experiment is saved.
    pub fn setup_dir(&self, s: &Setup) -> PathBuf {
        experiments_dir(&self.sessions_dir).join(self.setup_name(s))
    }

    fn leave_experiments(&mut self) {
        match &self.experiments.setup {
            // Esc in a setup goes back to the grid of the last experiment, if there is one.
            Some(_) if self.experiments.run.is_some() => self.experiments.setup = None,
            _ => self.experiments.shown = false,
        }
    }

    fn experiment_move(&mut self, rows: isize, cols: isize) {
        let n_templates = self.templates.len();
        if let Some(s) = self.experiments.setup.as_mut() {
            s.cursor = (s.cursor as isize + rows).clamp(0, n_templates.saturating_sub(1) as isize) as usize;
            return;
        }
        let Some(r) = self.experiments.run.as_mut() else { return };
        let (n_rows, n_cols) = (r.rows().len(), r.templates.len());
        let clamp = |v: usize, d: isize, n: usize| (v as isize + d).clamp(0, n.saturating_sub(1) as isize) as usize;
        r.cursor = (clamp(r.cursor.0, rows, n_rows), clamp(r.cursor.1, cols, n_cols));
    }

    fn experiment_toggle(&mut self) {
        let Some(s) = self.experiments.setup.as_mut().filter(|s| s.field == SetupField::Templates) else { return };
        match s.picked.iter().position(|&i| i == s.cursor) {
            Some(pos) => {
                s.picked.remove(pos);
            }
            None if s.cursor < self.templates.len() => s.picked.push(s.cursor),
            None => {}
        }
    }

    fn start_experiment(&mut self, cmds: &mut Vec<Command>) {
        let Some(setup) = self.experiments.setup.clone() else { return };
        if self.experiment_running() {
            return self.set_error("an experiment is running: Esc cancels it first");
        }
        if self.generating() {
            return self.set_error("a generation is running: cancel it first (Esc in the normal view)");
        }
        match &self.model {
            ModelState::Ready(_) => {}
            ModelState::Loading => return self.set_error("the model is still loading…"),
            ModelState::Failed(e) => return self.set_error(format!("no model: {e}")),
        }
        if setup.picked.is_empty() {
            return self.set_error("tick at least one template (Space)");
        }
        let questions = match experiment::parse_questions(&setup.questions, self.problems.len()) {
            Ok(q) => q,
            Err(e) => return self.set_error(format!("questions {e}")),
        };
        let name = self.setup_name(&setup);
        let templates: Vec<lab::Template> =
            setup.picked.iter().filter_map(|&i| self.templates.get(i)).map(|t| t.template.clone()).collect();
        let plan = Plan {
            dir: self.setup_dir(&setup),
            templates,
            questions,
            sampling: self.settings.sampling.clone(),
            paths: self.settings.paths,
            stop: self.settings.stop_override.clone(),
            calculator: self.settings.calculator,
            // Filled in by the event loop, which knows the model's flags.
            model: Default::default(),
            batch: BATCH_ROWS.max(self.settings.paths),
        };
        let id = self.next_generation;
        self.next_generation += 1;
        let mut run = ExperimentRun {
            id,
            name: name.clone(),
            dir: plan.dir.clone(),
            spec: setup.questions.trim().to_string(),
            templates: plan.templates.iter().map(|t| t.name.clone()).collect(),
            questions: plan.questions.clone(),
            sampling: plan.sampling.clone(),
            paths: plan.paths,
            stop: plan.stop.clone(),
            calculator: plan.calculator,
            files: plan.files(),
            records: vec![Vec::new(); plan.templates.len()],
            report: empty_report(),
            state: RunState::Opening,
            todo: None,
            finished: 0,
            paths_done: 0,
            elapsed_ms: 0.0,
            partial: HashMap::new(),
            cursor: (0, 0),
        };
        run.rebuild();
        self.experiments.run = Some(run);
        self.experiments.setup = None;
        self.set_status(format!("experiment {name}: starting… Esc cancels (finished questions stay saved)"));
        cmds.push(Command::StartExperiment { id, plan: Box::new(plan) });
    }

    fn cancel_experiment(&mut self, cmds: &mut Vec<Command>) {
        let Some(r) = self.experiments.run.as_mut().filter(|r| r.running()) else { return };
        if r.state != RunState::Cancelling {
            r.state = RunState::Cancelling;
            cmds.push(Command::CancelExperiment { id: r.id });
        }
        self.set_status("cancelling the experiment… finished questions stay saved");
    }

    pub(super) fn experiment_update(&mut self, id: u64, update: ExperimentUpdate, at_ms: f64) {
        let Some(r) = self.experiments.run.as_mut().filter(|r| r.id == id) else { return };
        r.elapsed_ms = r.elapsed_ms.max(at_ms);
        match update {
            ExperimentUpdate::Event(Event::Opened { files, existing, todo }) => {
                r.files = files;
                r.records = existing;
                r.todo = Some(todo);
                if r.state == RunState::Opening {
                    r.state = RunState::Running;
                }
                r.rebuild();
                let had: usize = r.records.iter().map(Vec::len).sum();
                let msg = match (had, todo) {
                    (0, _) => format!("experiment {}: {todo} cells to run… Esc cancels", r.name),
                    (_, 0) => format!("experiment {}: every cell was already done ({had} lines read)", r.name),
                    _ => format!("experiment {}: resuming, {had} cells already done, {todo} to run", r.name),
                };
                self.set_status(msg);
            }
            ExperimentUpdate::Event(Event::PathDone { template, index }) => {
                r.paths_done += 1;
                *r.partial.entry((template, index)).or_default() += 1;
            }
            ExperimentUpdate::Event(Event::Record { template, record }) => {
                r.partial.remove(&(template, record.index));
                if let Some(lines) = r.records.get_mut(template) {
                    lines.push(*record);
                    r.finished += 1;
                    r.rebuild();
                }
            }
            ExperimentUpdate::Finished { cancelled } => {
                r.partial.clear();
                r.state = if cancelled { RunState::Cancelled } else { RunState::Done };
                let (name, n, dir) = (r.name.clone(), r.finished, r.dir.display().to_string());
                self.set_status(if cancelled {
                    format!("experiment {name} cancelled after {n} cells; picking it again resumes it ({dir})")
                } else {
                    format!("experiment {name} done: {n} cells run, saved in {dir}; Enter opens a cell")
                });
            }
            ExperimentUpdate::Failed(message) => {
                r.partial.clear();
                r.state = RunState::Failed(message.clone());
                self.set_error(format!("experiment: {message}"));
            }
        }
    }

    /// Enter on a cell: its question and template in the normal view, with the paths as generated, to
    /// read, label and save as a session.
    fn open_cell(&mut self, cmds: &mut Vec<Command>) {
        let Some(r) = self.experiments.run.as_ref() else { return };
        let index = r.rows().get(r.cursor.0).copied();
        let col = r.cursor.1;
        let (Some(index), Some(name)) = (index, r.templates.get(col).cloned()) else { return };
        let Some(record) = r.record(index, col).cloned() else {
            return self.set_error(format!("question {index} has no result for {name} yet"));
        };
        let file = r.files.get(col).cloned().unwrap_or_default();
        let sampling = record.settings.as_ref().map_or_else(|| r.sampling.clone(), |s| s.sampling.clone());
        let stop = record.settings.as_ref().map(|s| s.stop.clone()).or_else(|| r.stop.clone());
        let calculator = record.settings.as_ref().map_or(r.calculator, |s| s.calculator);
        if self.generating() {
            return self.set_error("a generation is running: Esc cancels it first");
        }
        let Some(problem) = self.problems.get(index) else {
            return self.set_error(format!("question {index} is not in this GSM8K test set"));
        };
        let Some(tpl) = self.templates.iter().find(|t| t.template.name == name).map(|t| t.template.clone()) else {
            return self.set_error(format!("template {name} is not loaded: cannot show its prompt"));
        };
        if !self.guard_discard("Enter") {
            return;
        }
        let spec = PromptSpec::new(
            &name,
            tpl.render(&problem.question),
            stop.unwrap_or_else(|| tpl.stop_strings().to_vec()),
            tpl.instruction().map(str::to_string),
            tpl.ends_with_answer_marker(),
        );
        let changed = spec.prompt_sha256 != record.prompt_hash;
        let paths = record
            .paths
            .iter()
            .map(|p| {
                let mut p = p.clone();
                p.template = name.clone();
                // Eval lines keep the detectors' findings; here they pre-fill the labels, as after a generation.
                let mut labels = Labels::default();
                labels.set_detected(p.failures.iter().map(|f| f.kind));
                p.set_labels(&labels);
                p
            })
            .collect();
        let Some(model) = self.model_info().cloned() else {
            return self.set_error("no model info to show the paths with");
        };
        let run = RunRecord {
            model,
            mode: CompareMode::SelfConsistency,
            question: QuestionRecord { index, gold: record.gold.clone(), text: problem.question.clone() },
            templates: vec![spec],
            sampling,
            calculator,
            paths,
            vote: VoteRecord::new(&record.vote, &record.gold),
        };
        let session = Session {
            version: session::VERSION,
            created: String::new(),
            cotscope_version: lab::settings::VERSION.to_string(),
            run,
        };
        let id = self.next_generation;
        self.open_session(file, session, cmds);
        let Some(g) = self.generation.as_mut().filter(|g| g.id == id) else { return };
        // Not a session file: `s` saves a new session.
        g.saved_to = None;
        self.experiments.shown = false;
        if changed {
            self.set_error(format!("question {index} · {name}: the template changed since this line was written"));
        } else if self.status.as_ref().is_none_or(|s| !s.error) {
            self.set_status(format!(
                "question {index} · {name} from experiment: 1–9 label, n note, s saves a session, x back to the grid"
            ));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
