//! Dialogs and text fields: help, template errors, the template chooser, the session list, the note
//! editor, the quit question and the exemplar confirmation; and how Enter, Esc and typing reach them.

use crate::lab::record::CompareMode;

use super::super::command::Command;
use super::super::generation::MAX_AB;
use super::super::session::SessionEntry;
use super::{scroll, App, ExemplarProposal};

/// A window over the screen that takes the keys while open.
#[derive(Clone, Debug)]
pub enum Overlay {
    Help {
        scroll: usize,
    },
    /// Every template file that failed to load, in full.
    TemplateErrors {
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

impl App {
    pub(super) fn toggle_help(&mut self) {
        self.overlay = match self.overlay {
            Some(Overlay::Help { .. }) => None,
            _ => Some(Overlay::Help { scroll: 0 }),
        }
    }

    pub(super) fn show_template_errors(&mut self) {
        if self.template_errors.is_empty() {
            self.set_status(format!("every template in {} loaded", self.templates_dir.display()));
        } else {
            self.overlay = Some(Overlay::TemplateErrors { scroll: 0 });
        }
    }

    pub(super) fn open_template_chooser(&mut self) {
        if self.templates.is_empty() {
            return self.set_error(format!("no templates in {}", self.templates_dir.display()));
        }
        let cursor = match self.mode {
            CompareMode::SelfConsistency => self.template,
            CompareMode::Ab => self.ab.first().copied().unwrap_or(0),
        };
        self.overlay = Some(Overlay::Templates { cursor, picked: self.ab.clone() });
    }

    pub(super) fn overlay_move(&mut self, d: isize) {
        let n_templates = self.templates.len();
        match self.overlay.as_mut() {
            Some(Overlay::Help { scroll: s }) | Some(Overlay::TemplateErrors { scroll: s }) => *s = scroll(*s, -d, 200),
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

    /// Ticks or unticks the template under the cursor (A/B chooser); a fifth is refused, saying why.
    pub(super) fn overlay_toggle(&mut self) {
        let Some(Overlay::Templates { cursor, picked }) = self.overlay.as_mut() else { return };
        if let Some(pos) = picked.iter().position(|i| i == cursor) {
            if picked.len() > 1 {
                picked.remove(pos);
            } else {
                self.set_status("the A/B view needs at least one template");
            }
        } else if picked.len() < MAX_AB {
            picked.push(*cursor);
        } else {
            self.set_error(format!("the A/B view compares at most {MAX_AB} templates side by side: untick one first"));
        }
    }

    pub(super) fn input(&mut self, c: Option<char>, cmds: &mut Vec<Command>) {
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

    /// Enter: confirms the open dialog or field; with none open, generates.
    pub(super) fn submit(&mut self, cmds: &mut Vec<Command>) {
        match self.overlay.take() {
            Some(Overlay::Help { .. }) | Some(Overlay::TemplateErrors { .. }) => {}
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
            Some(Overlay::Note { pane, text }) => self.keep_note(pane, text),
            Some(Overlay::Exemplar(p)) => self.write_exemplar(*p, cmds),
            None => {
                if self.questions.filtering {
                    self.questions.filtering = false;
                } else if let Some(buf) = self.edit.take() {
                    self.apply_edit(&buf, cmds);
                } else {
                    self.generate(cmds);
                }
            }
        }
    }

    /// Esc: closes the open dialog or field; with none open, cancels a running generation.
    pub(super) fn close(&mut self, cmds: &mut Vec<Command>) {
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
        } else if self.edit.take().is_none() && self.generating() {
            self.cancel(cmds);
        }
    }

    pub(super) fn quit(&mut self, cmds: &mut Vec<Command>) {
        if matches!(self.overlay, Some(Overlay::ConfirmQuit)) || !self.unsaved() {
            if let Some(r) = self.generation.as_ref().filter(|r| r.running) {
                cmds.push(Command::CancelGeneration { id: r.id });
            }
            self.quit = true;
            cmds.push(Command::Quit);
        } else {
            self.overlay = Some(Overlay::ConfirmQuit);
        }
    }

    /// True when nothing unsaved would be lost, or when the user repeats `key` after the warning.
    pub(super) fn guard_discard(&mut self, key: &'static str) -> bool {
        if !self.unsaved() || self.armed == Some(key) {
            self.armed = None;
            return true;
        }
        self.armed = Some(key);
        self.set_error(format!("unsaved labels/notes on these paths: s saves them, {key} again discards them"));
        false
    }
}
