//! What Enter will send: the question, the template(s), the view (mode) and the sampling settings, and
//! the prompts they render to (re-rendered on change, never per frame).

use crate::lab::record::{CompareMode, PromptSpec};

use super::super::command::Command;
use super::super::settings::{Field, Settings};
use super::{App, ModelState, TokenCount};

impl App {
    pub(super) fn question_changed(&mut self, cmds: &mut Vec<Command>) {
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
    pub(super) fn refresh_prompts(&mut self, cmds: &mut Vec<Command>) {
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

    pub(super) fn adjust_setting(&mut self, d: i32, cmds: &mut Vec<Command>) {
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
            field => {
                self.settings.adjust(field, d);
                self.settings_changed(cmds);
            }
        }
    }

    pub(super) fn start_edit(&mut self, first: Option<char>) {
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

    /// A typed value (Enter in the settings field).
    pub(super) fn apply_edit(&mut self, text: &str, cmds: &mut Vec<Command>) {
        let field = self.setting_field();
        match self.settings.apply_edit(field, text) {
            Ok(()) => {
                if field == Field::Stop {
                    self.refresh_prompts(cmds);
                }
                self.settings_changed(cmds);
            }
            Err(e) => self.set_error(e),
        }
    }

    /// Back to the defaults and the template's own stop strings.
    pub(super) fn reset_settings(&mut self, cmds: &mut Vec<Command>) {
        self.settings = Settings::default();
        self.edit = None;
        self.refresh_prompts(cmds);
        self.settings_changed(cmds);
        self.set_status("settings reset: default sampling, the template's stop strings");
    }

    /// `c`: the calculator in the loop, for the next generation.
    pub(super) fn toggle_calculator(&mut self, cmds: &mut Vec<Command>) {
        self.settings.calculator = !self.settings.calculator;
        self.settings_changed(cmds);
        self.set_status(if self.settings.calculator {
            "calculator on: after \"expression =\" the engine writes the result (Enter generates)"
        } else {
            "calculator off: the model does its own arithmetic (Enter generates)"
        });
    }

    /// Settings are remembered for the next launch.
    fn settings_changed(&mut self, cmds: &mut Vec<Command>) {
        cmds.push(Command::SaveSettings(self.settings.clone()));
    }

    /// `+`/`-`: paths per template (in the A/B view too: a templates × paths grid).
    pub(super) fn change_paths(&mut self, d: i32, cmds: &mut Vec<Command>) {
        self.settings.adjust(Field::Paths, d);
        self.settings_changed(cmds);
        let n = self.settings.paths;
        match self.mode {
            CompareMode::SelfConsistency => self.set_status(format!("{n} path(s) next time (Enter generates)")),
            CompareMode::Ab => self
                .set_status(format!("{n} path(s) per template next time: {} × {n} (Enter generates)", self.ab.len())),
        }
    }

    pub(super) fn toggle_mode(&mut self, cmds: &mut Vec<Command>) {
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
}
