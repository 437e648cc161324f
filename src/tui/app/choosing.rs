//! Choosing among the paths on the vote line (`V`): majority, weighted, verified, or the judge, which
//! asks the model (on the worker) once the paths are done.

use crate::lab::select::{Choice, Strategy};

use super::super::command::Command;
use super::App;

impl App {
    /// `V`: the next strategy; the judge is asked at once when the paths are done.
    pub(super) fn next_strategy(&mut self, cmds: &mut Vec<Command>) {
        let all = Strategy::ALL;
        let i = all.iter().position(|s| *s == self.strategy).unwrap_or(0);
        self.strategy = all[(i + 1) % all.len()];
        self.set_status(match self.strategy {
            Strategy::Majority => "vote by majority: the answer most paths give (a tie goes to the one given first)",
            Strategy::Weighted => {
                "vote by weighted: each path counts by its sequence probability (needs probabilities)"
            }
            Strategy::Verified => "vote by verified: majority of the paths with an answer and no arithmetic error",
            Strategy::Judge => {
                "vote by judge: the model reads the question and the paths and picks one (V: back to majority)"
            }
        });
        self.judge_if_wanted(cmds);
    }

    /// Asks the worker to judge the finished generation's paths, when the judge is chosen and has not
    /// judged them yet.
    pub(super) fn judge_if_wanted(&mut self, cmds: &mut Vec<Command>) {
        if self.strategy != Strategy::Judge {
            return;
        }
        let Some(g) = self.generation.as_mut().filter(|g| !g.running && !g.panes.is_empty()) else { return };
        if !g.judged.is_empty() {
            return;
        }
        let candidates = (0..g.prompts.len())
            .map(|pi| {
                let paths = g.panes.iter().filter(|p| p.prompt == pi).map(|p| (p.text.clone(), p.answer.clone()));
                (pi, paths.collect())
            })
            .collect();
        // Pending: shown as "judging…" until the worker answers.
        for pi in 0..g.prompts.len() {
            g.judged.insert(pi, Err(JUDGING.into()));
        }
        cmds.push(Command::Judge {
            id: g.id,
            templates_dir: self.templates_dir.clone(),
            question: g.question_text.clone(),
            candidates,
        });
    }

    pub(super) fn judged(&mut self, id: u64, prompt: usize, result: Result<Choice, String>) {
        if let Some(g) = self.generation.as_mut().filter(|g| g.id == id) {
            let failed = result.as_ref().err().map(|e| format!("judge: {e}"));
            g.judged.insert(prompt, result);
            if let Some(e) = failed {
                self.set_error(e);
            }
        }
    }
}

/// What the vote line shows while the judge has not answered.
pub const JUDGING: &str = "judging…";
