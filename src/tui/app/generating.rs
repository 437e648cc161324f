//! Starting, cancelling and ending a generation.

use super::super::command::Command;
use super::super::generation::Generation;
use super::{App, ModelState};

impl App {
    pub(super) fn generate(&mut self, cmds: &mut Vec<Command>) {
        if self.generating() {
            return self.set_error("a generation is running: Esc cancels it");
        }
        if self.experiment_running() {
            return self.set_error("an experiment is running: x shows it, Esc there cancels it");
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
        let id = self.next_generation;
        let mut generation = Generation::start(
            id,
            self.mode,
            problem,
            self.prompts.clone(),
            self.settings.sampling.clone(),
            self.settings.paths,
            Some(model),
        );
        generation.calculator = self.settings.calculator;
        // Running an opened session again: its labels and notes stay, and the texts are compared.
        let rerun = self.pinned.is_some() && self.generation.as_ref().is_some_and(|old| generation.repeats(old));
        if !rerun && !self.guard_discard("Enter") {
            return;
        }
        if let Some(old) = self.generation.as_ref().filter(|_| rerun) {
            // Its branches are generated again from the tokens they were forced with.
            generation.add_branches_of(old);
            generation.keep_annotations_of(old);
        }
        self.next_generation += 1;
        let requests = generation.requests();
        self.generation = Some(generation);
        self.pane = 0;
        self.tokens.cursor = None;
        self.mark_saved();
        // Focus stays where it is: digits keep meaning what they meant (Tab or Shift-Tab reach the paths).
        self.set_status(if rerun { "running the session again… Esc cancels" } else { "generating… Esc cancels" });
        cmds.push(Command::StartGeneration { id, requests });
    }

    pub(super) fn cancel(&mut self, cmds: &mut Vec<Command>) {
        if let Some(g) = self.generation.as_mut().filter(|r| r.running) {
            if !g.cancelling {
                g.cancelling = true;
                cmds.push(Command::CancelGeneration { id: g.id });
            }
            self.set_status("cancelling…");
        }
    }

    pub(super) fn generation_failed(&mut self, id: u64, message: String) {
        if let Some(g) = self.generation.as_mut().filter(|r| r.id == id) {
            g.end(Some(message.clone()));
            self.set_error(format!("generation failed: {message}"));
        }
    }

    pub(super) fn generation_finished(&mut self, id: u64) {
        let Some(g) = self.generation.as_mut().filter(|r| r.id == id) else { return };
        let was_cancelled = g.cancelling;
        g.end(None);
        let rate: f64 = g.stats.iter().map(|s| s.decode_tok_s).sum::<f64>() / g.stats.len().max(1) as f64;
        let mut msg = format!(
            "{} after {} tokens ({rate:.1} tok/s): Tab to the paths, 1–9 label, n note, s save",
            if was_cancelled { "cancelled" } else { "done" },
            g.tokens()
        );
        if let Some(differ) = g.compare_with_repeated() {
            msg = if differ.is_empty() {
                "rerun: identical to the saved session (labels and notes kept)".to_string()
            } else {
                let n: Vec<String> = differ.iter().map(|i| (i + 1).to_string()).collect();
                format!(
                    "rerun: path(s) {} differ from the saved session; their labels are kept, marked stale",
                    n.join(", ")
                )
            };
        }
        if self.status.as_ref().is_none_or(|s| !s.error) {
            self.set_status(msg);
        }
    }
}
