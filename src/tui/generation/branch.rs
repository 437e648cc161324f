//! Branching a finished path at one of its tokens: the new path keeps the parent's tokens before it,
//! puts an alternative there (or samples again), and streams on like any path. The engine gets the kept
//! tokens as the request's `prefix`, so the prompt's keys and values come from the prefix cache.

use crate::engine::Forcer;
use crate::engine::{GenerateRequest, SamplingParams};
use crate::lab::calculator::Calculator;
use crate::lab::path_tree::BranchRecord;
use crate::lab::token_steps::TokenStep;

use super::{Generation, Pane};

/// Alternatives asked for at every step of a TUI generation.
pub const TOP_LOGPROBS: usize = 5;

/// What goes at the branch point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BranchChoice {
    /// This alternative (one of the step's most likely tokens).
    Token(u32),
    /// Sample again from there, with the path's settings and a seed of its own.
    Resample,
}

impl Generation {
    /// Indices of the branch panes, in order.
    pub(crate) fn branch_panes(&self) -> impl Iterator<Item = usize> + '_ {
        self.panes.iter().enumerate().filter(|(_, p)| p.branch.is_some()).map(|(i, _)| i)
    }

    /// The request that (re)generates branch pane `i`: one path of its template's prompt, forced `prefix`.
    pub(crate) fn branch_request(&self, i: usize) -> Option<GenerateRequest> {
        let pane = self.panes.get(i)?;
        let branch = pane.branch.as_ref()?;
        let spec = self.prompts.get(pane.prompt)?;
        Some(GenerateRequest {
            prompt: spec.prompt.clone(),
            paths: 1,
            sampling: branch.sampling.clone(),
            stop: spec.stop.clone(),
            logprobs: Some(TOP_LOGPROBS),
            prefix: pane.prefix.clone(),
            // A branch continues under the same rules as its parent, the calculator included.
            forcer: self.calculator.then(|| Forcer::new(Calculator)),
        })
    }

    /// The sampling pane `i` was made with.
    pub fn sampling_of(&self, i: usize) -> &SamplingParams {
        self.panes.get(i).and_then(|p| p.branch.as_ref()).map_or(&self.sampling, |b| &b.sampling)
    }

    /// Why pane `i` cannot be branched, if it cannot.
    pub fn cannot_branch(&self, i: usize) -> Option<String> {
        let p = self.panes.get(i)?;
        if self.running {
            Some("a generation is running: branch once it is done (Esc leaves the cursor, Esc again cancels)".into())
        } else if p.ids_missing || (p.token_ids.is_empty() && !p.steps.is_empty()) {
            Some("this path has no token ids (a remote model): it cannot be branched".into())
        } else if p.token_ids.is_empty() {
            Some("this path has no tokens to branch at".into())
        } else {
            None
        }
    }

    /// Adds a branch of pane `parent` at its token `at` and returns its index and the request that
    /// streams it; the reason when it cannot be made.
    pub fn branch(
        &mut self,
        parent: usize,
        at: usize,
        choice: BranchChoice,
    ) -> Result<(usize, GenerateRequest), String> {
        if let Some(why) = self.cannot_branch(parent) {
            return Err(why);
        }
        let p = &self.panes[parent];
        let Some(own) = p.token_ids.get(at) else {
            return Err(format!("token {} is past the end of path {}", at + 1, parent + 1));
        };
        let step = p.steps.get(at).cloned().unwrap_or_default();
        let from_text = token_text(p, at);
        let mut prefix = p.token_ids[..at].to_vec();
        let mut inherited: Vec<TokenStep> = p.steps.iter().take(at).cloned().collect();
        let mut sampling = self.sampling_of(parent).clone();
        let (token, to_text) = match choice {
            BranchChoice::Token(id) => {
                // The path's own token (a replay) or one of the alternatives the model considered.
                let (text, logprob) = match step.top.iter().find(|t| t.id == Some(id)) {
                    _ if id == *own => (from_text.clone(), step.logprob),
                    Some(alt) => (alt.text.clone(), Some(alt.logprob)),
                    None => return Err(format!("token {id} is not among the alternatives at token {}", at + 1)),
                };
                prefix.push(id);
                inherited.push(TokenStep { logprob, forced: false, ..step.clone() });
                (Some(id), text)
            }
            BranchChoice::Resample => {
                // A seed of its own (recorded, so a rerun samples the same), else greedy or a fixed seed
                // would draw the parent's token again.
                sampling.seed = sampling.seed.wrapping_add(1000 + self.panes.len() as u64);
                (None, String::new())
            }
        };
        let record = BranchRecord { parent: parent + 1, at, token, from_text, to_text, sampling };
        let prompt = p.prompt;
        let path = self.panes.iter().filter(|q| q.prompt == prompt).count();
        let ctx = self.prompts.get(prompt).map(|s| s.detect_context(&self.question_text)).ok_or("no prompt")?;
        self.panes.push(Pane::new(prompt, path, ctx).branch_of(record, prefix, inherited));
        let i = self.panes.len() - 1;
        let request = self.branch_request(i).ok_or("no prompt for the branch")?;
        Ok((i, request))
    }

    /// Runs generation `id` as the one branch pane `pane` (made by [`Generation::branch`]).
    pub fn start_branch(&mut self, id: u64, pane: usize) {
        self.id = id;
        self.running = true;
        self.cancelling = false;
        self.error = None;
        self.active_branch = Some(pane);
        // A rerun's comparison is over once it finished; a new pane is not a changed one.
        self.repeated = None;
    }

    /// For a session run again: the branches of `old` (which this one repeats), to be generated again
    /// from the tokens they were forced with and shown with the probabilities saved for those.
    pub fn add_branches_of(&mut self, old: &Generation) {
        for o in old.panes.iter().filter(|p| p.branch.is_some()) {
            let (Some(b), Some(spec)) = (o.branch.clone(), self.prompts.get(o.prompt)) else { continue };
            let inherited = o.steps.iter().take(o.prefix.len()).cloned().collect();
            let pane = Pane::new(o.prompt, o.path, spec.detect_context(&self.question_text));
            self.panes.push(pane.branch_of(b, o.prefix.clone(), inherited));
        }
    }
}

/// Token `at` of pane `p` as text: the token alone when it is among its step's alternatives, else the
/// text it released.
pub fn token_text(p: &Pane, at: usize) -> String {
    let id = p.token_ids.get(at).copied();
    if let Some(t) = p.steps.get(at).and_then(|s| s.top.iter().find(|t| t.id.is_some() && t.id == id)) {
        return t.text.clone();
    }
    p.token_spans().get(at).and_then(|r| p.text.get(r.clone())).unwrap_or_default().to_string()
}
