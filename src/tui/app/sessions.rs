//! Sessions: saving the run, listing and opening saved ones (an opened session runs again as saved).

use std::path::PathBuf;

use crate::lab::record::CompareMode;

use super::super::command::Command;
use super::super::session::Session;
use super::super::settings::PATHS_ON_SCREEN;
use super::{App, Focus, Overlay};

impl App {
    /// Asks for the session to be written; false (with the reason shown) when it cannot be yet.
    pub(super) fn save(&mut self, cmds: &mut Vec<Command>) -> bool {
        let Some(generation) = self.generation.as_ref() else {
            self.set_error("nothing to save yet: Enter generates");
            return false;
        };
        if generation.running {
            self.set_error("wait for the generation to finish (or Esc) before saving");
            return false;
        }
        let Some(model) = generation.model.clone().or_else(|| self.model_info().cloned()) else {
            self.set_error("no model info to save");
            return false;
        };
        let session = Session::from_generation(generation, &model);
        cmds.push(Command::SaveSession { session: Box::new(session), path: generation.saved_to.clone() });
        self.saving_annotations = Some(self.annotations());
        self.set_status("saving…");
        true
    }

    pub(super) fn session_saved(&mut self, path: PathBuf, cmds: &mut Vec<Command>) {
        if let Some(r) = self.generation.as_mut() {
            r.saved_to = Some(path.clone());
        }
        if let Some(a) = self.saving_annotations.take() {
            self.saved_annotations = a;
        }
        self.set_status(format!("saved {}", path.display()));
        if std::mem::take(&mut self.quit_after_save) {
            self.quit(cmds);
        }
    }

    pub(super) fn list_sessions(&mut self, cmds: &mut Vec<Command>) {
        if self.generating() {
            self.set_error("a generation is running: Esc cancels it first");
        } else if self.guard_discard("o") {
            self.overlay = Some(Overlay::Sessions { entries: None, cursor: 0 });
            cmds.push(Command::ListSessions);
        }
    }

    pub(super) fn open_session(&mut self, path: PathBuf, session: Session, cmds: &mut Vec<Command>) {
        if self.generating() {
            return self.set_error("a generation is running: Esc cancels it first");
        }
        let id = self.next_generation;
        self.next_generation += 1;
        let generation = match session.to_generation(id, Some(path.clone())) {
            Ok(r) => r,
            Err(e) => return self.set_error(format!("{}: {e}", path.display())),
        };
        let run = &session.run;
        let mut warnings = Vec::new();
        self.mode = run.mode;
        if !self.questions.select_index(self.problems, run.question.index) {
            warnings.push(format!("question {} is not in this GSM8K test set", run.question.index));
        }
        let find = |name: &str| self.templates.iter().position(|t| t.template.name == name);
        let found: Vec<usize> = run.templates.iter().filter_map(|t| find(&t.template)).collect();
        // Branches are extra panes of their template, not more sampled paths.
        let per_template =
            generation.panes.iter().filter(|p| p.branch.is_none()).map(|p| p.path + 1).max().unwrap_or(1);
        self.settings.paths = per_template.clamp(1, PATHS_ON_SCREEN);
        match self.mode {
            CompareMode::SelfConsistency => {
                if let Some(t) = found.first() {
                    self.template = *t;
                }
            }
            CompareMode::Ab => {
                if !found.is_empty() {
                    self.ab = found;
                }
            }
        }
        for t in &run.templates {
            match self.templates.iter().find(|e| e.template.name == t.template) {
                None => warnings.push(format!("template {} is not loaded", t.template)),
                Some(e) if crate::hash::sha256_hex(e.template.render(&run.question.text)) != t.prompt_sha256 => {
                    warnings.push(format!("template {} changed since", t.template))
                }
                Some(_) => {}
            }
        }
        if let Some(info) = self.model_info() {
            if info.config_hash != run.model.config_hash {
                warnings.push(format!("saved with model {} (another config than the one loaded)", run.model.id));
            }
        }
        self.settings.sampling = run.sampling.clone();
        self.settings.stop_override = None;
        self.pinned = Some(run.templates.clone());
        self.prompt_tab = 0;
        self.prompt_scroll_up = 0;
        self.refresh_prompts(cmds);
        self.generation = Some(generation);
        self.pane = 0;
        self.tokens.cursor = None;
        self.mark_saved();
        // Opening a session is for reviewing its paths: they take the keys.
        self.focus = Focus::Paths;
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        if warnings.is_empty() {
            self.set_status(format!("opened {name}: Enter runs it again with the prompt as saved"));
        } else {
            self.set_error(format!("opened {name}; {}; Enter runs the prompt as saved", warnings.join("; ")));
        }
    }
}
