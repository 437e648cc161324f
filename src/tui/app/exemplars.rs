//! A path as an exemplar: `y` copies it, `Y` writes it to a file, `e` appends it to its template (or a
//! copy) after showing the diff and any reason not to.

use std::path::PathBuf;

use crate::lab::labels::Label;
use crate::lab::record::CompareMode;
use crate::lab::template::Template;

use super::super::clipboard::ClipboardOutcome;
use super::super::command::Command;
use super::super::exemplar::{self, DiffLine};
use super::{App, Overlay, TemplateEntry};

/// What `e` proposes: the template with the path appended, the diff, and the reasons to think twice.
#[derive(Clone, Debug)]
pub struct ExemplarProposal {
    /// Index into `App::templates`.
    pub template: usize,
    pub updated: Template,
    pub diff: Vec<DiffLine>,
    pub scroll: usize,
    /// Some while the user types the name of a copy.
    pub new_name: Option<String>,
    /// Why appending may be a mistake (shown above the diff); the write needs a second press then.
    pub warnings: Vec<String>,
    /// The user pressed append once after seeing the warnings.
    pub confirmed: bool,
}

impl App {
    fn focused_exemplar(&self) -> Option<String> {
        let generation = self.generation.as_ref()?;
        let p = generation.panes.get(self.pane)?;
        Some(exemplar::exemplar_text(&generation.question_text, &p.text))
    }

    pub(super) fn copy_exemplar(&mut self, cmds: &mut Vec<Command>) {
        match self.focused_exemplar() {
            Some(text) => cmds.push(Command::Copy(text)),
            None => self.set_error("no path to copy yet: Enter generates"),
        }
    }

    /// `Y`: the exemplar into a file beside the sessions, for terminals that take no OSC 52.
    pub(super) fn exemplar_to_file(&mut self, cmds: &mut Vec<Command>) {
        let Some(text) = self.focused_exemplar() else {
            return self.set_error("no path to write yet: Enter generates");
        };
        let question = self.generation.as_ref().map_or(0, |g| g.question);
        let path = self.sessions_dir.join(format!("exemplar-q{question}-path{}.txt", self.pane + 1));
        cmds.push(Command::WriteExemplar { path, text });
    }

    pub(super) fn copied(&mut self, outcome: ClipboardOutcome) {
        match outcome {
            ClipboardOutcome::System => self.set_status("copied the path as an exemplar to the clipboard"),
            ClipboardOutcome::Osc52 { reason } => self.set_status(format!(
                "no system clipboard ({reason}): sent the text as an OSC 52 sequence, which reaches the clipboard only if the terminal allows it (tmux: set -g set-clipboard on); Y writes it to a file instead"
            )),
        }
    }

    pub(super) fn propose_exemplar(&mut self) {
        let Some(generation) = self.generation.as_ref() else {
            return self.set_error("no path yet: Enter generates");
        };
        let Some(p) = generation.panes.get(self.pane) else { return };
        if generation.running {
            return self.set_error("wait for the generation to finish before adding it as an exemplar");
        }
        let reasoning = exemplar::reasoning(&p.text);
        if reasoning.is_empty() {
            return self.set_error("this path is empty");
        }
        let name = generation.template_of(self.pane).map(|s| s.template.clone()).unwrap_or_default();
        let Some(ti) = self.templates.iter().position(|t| t.template.name == name) else {
            return self.set_error(format!("template {name} is not loaded from {}", self.templates_dir.display()));
        };
        let old = &self.templates[ti].template;
        let question = generation.question_text.trim();
        if old.exemplars().iter().any(|e| e.question.trim() == question) {
            return self.set_error(format!("template {name} already has this question as an exemplar"));
        }
        let mut warnings = Vec::new();
        match generation.correct(p.answer.as_deref()) {
            Some(true) => {}
            Some(false) => warnings.push(format!(
                "its answer {} is wrong (gold {})",
                p.answer.as_deref().unwrap_or("?"),
                generation.gold
            )),
            None => warnings.push("it gives no answer".to_string()),
        }
        let flagged: Vec<&str> = Label::ALL
            .iter()
            .filter(|l| {
                matches!(l, Label::Failure(_) | Label::WrongStep | Label::Other) && p.labels.get(**l).effective()
            })
            .map(|l| l.name())
            .collect();
        if !flagged.is_empty() {
            warnings.push(format!("it is flagged: {}", flagged.join(", ")));
        }
        warnings.push(format!(
            "question {} is a GSM8K test question: as an exemplar of {name} it contaminates every eval of that question",
            generation.question
        ));
        let mut updated = old.clone();
        updated.push_exemplar(question, &reasoning);
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
            warnings,
            confirmed: false,
        })));
    }

    pub(super) fn exemplar_as_copy(&mut self) {
        if let Some(Overlay::Exemplar(p)) = self.overlay.as_mut() {
            if p.new_name.is_none() {
                let base = self.templates.get(p.template).map_or("template", |t| t.template.name.as_str());
                p.new_name = Some(format!("{base}-plus"));
            }
        }
    }

    pub(super) fn write_exemplar(&mut self, mut p: ExemplarProposal, cmds: &mut Vec<Command>) {
        let Some(entry) = self.templates.get(p.template).cloned() else { return };
        // A copy's name is checked first: nothing to confirm while it cannot be written.
        let target = match p.new_name.clone() {
            None => None,
            Some(name) => match self.copy_target(&name) {
                Ok(path) => Some((name, path)),
                Err(e) => {
                    self.set_error(e);
                    self.overlay = Some(Overlay::Exemplar(Box::new(p)));
                    return;
                }
            },
        };
        if !p.warnings.is_empty() && !p.confirmed {
            p.confirmed = true;
            self.set_error(format!("{}: press Enter again to write it anyway, Esc to leave it", p.warnings.join("; ")));
            self.overlay = Some(Overlay::Exemplar(Box::new(p)));
            return;
        }
        match target {
            None => {
                self.set_status(format!("writing {}…", entry.path.display()));
                cmds.push(Command::WriteTemplate { path: entry.path, template: Box::new(p.updated), new: false });
            }
            Some((name, path)) => {
                let mut t = p.updated;
                t.name = name;
                t.description = copy_description(&entry.template.description, &entry.template.name);
                self.set_status(format!("writing {}…", path.display()));
                // The event loop refuses to replace a file that is there (one not loaded as a template).
                cmds.push(Command::WriteTemplate { path, template: Box::new(t), new: true });
            }
        }
    }

    /// The file a copy named `name` goes to, or why it cannot.
    fn copy_target(&self, name: &str) -> Result<PathBuf, String> {
        let file = format!("{name}.yaml");
        if !exemplar::valid_template_name(name) {
            Err(format!("`{name}` is not a usable template name (letters, digits, - _ .)"))
        } else if self.templates.iter().any(|t| t.template.name == name) {
            Err(format!("a template named {name} already exists"))
        } else if let Some(t) = self.templates.iter().find(|t| t.path.file_name().is_some_and(|f| f == file.as_str())) {
            Err(format!("{} holds template {}: choose another name", t.path.display(), t.template.name))
        } else {
            Ok(self.templates_dir.join(file))
        }
    }

    pub(super) fn template_written(&mut self, path: PathBuf, template: Template, cmds: &mut Vec<Command>) {
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

/// The description of a copy of template `source`: says what it is a copy of (once).
fn copy_description(description: &str, source: &str) -> String {
    let note = format!("Copy of {source} with exemplars added in cotscope.");
    if description.contains(&note) {
        description.to_string()
    } else if description.trim().is_empty() {
        note
    } else {
        format!("{note} {}", description.trim())
    }
}
