//! One generation as the screen shows it: the prompts sent, one pane per path (a templates × paths grid
//! in the A/B view), and how engine events update the panes. Saved and opened as the lab's run record.

use std::path::PathBuf;

use crate::engine::{EngineEvent, Forcer, GenerateRequest, GenerationStats, ModelInfo, SamplingParams, StopReason};
use crate::lab;
use crate::lab::calculator::Calculator;
use crate::lab::gsm8k::Problem;
use crate::lab::record::{CompareMode, PathRecord, PromptSpec, QuestionRecord, RunRecord, VoteRecord};
use crate::lab::vote::Vote;

pub use super::pane::Pane;

mod branch;

pub use branch::{token_text as branch_token_text, BranchChoice, TOP_LOGPROBS};

/// Most templates side by side in the A/B view.
pub const MAX_AB: usize = 4;

/// A generation (running or finished, or opened from a session).
pub struct Generation {
    /// Matches engine events to the generation they belong to.
    pub id: u64,
    pub mode: CompareMode,
    pub question: usize,
    pub question_text: String,
    pub gold: String,
    pub prompts: Vec<PromptSpec>,
    pub sampling: SamplingParams,
    /// Calculator in the loop (`c`): the engine writes each `expression =`'s result.
    pub calculator: bool,
    /// The judge's choice per template (prompt index), once asked (`V` to judge).
    pub judged: std::collections::BTreeMap<usize, Result<crate::lab::select::Choice, String>>,
    pub panes: Vec<Pane>,
    pub running: bool,
    pub cancelling: bool,
    pub error: Option<String>,
    pub stats: Vec<GenerationStats>,
    /// Model that produced it.
    pub model: Option<ModelInfo>,
    /// Session file it was last saved to or opened from.
    pub saved_to: Option<PathBuf>,
    /// The texts of the generation this one repeats (a session run again), to compare once it is done.
    pub repeated: Option<Vec<String>>,
    /// The branch pane the running request streams into, when the run is one branch (`b`).
    pub(crate) active_branch: Option<usize>,
}

impl Generation {
    /// A new generation about to start: `paths` panes of prompt 0 (self-consistency), or `paths` panes
    /// of each prompt (A/B), template by template.
    pub fn start(
        id: u64,
        mode: CompareMode,
        problem: &Problem,
        prompts: Vec<PromptSpec>,
        sampling: SamplingParams,
        paths: usize,
        model: Option<ModelInfo>,
    ) -> Self {
        let prompts: Vec<PromptSpec> = match mode {
            CompareMode::SelfConsistency => prompts.into_iter().take(1).collect(),
            CompareMode::Ab => prompts,
        };
        let mut panes = Vec::new();
        for (pi, spec) in prompts.iter().enumerate() {
            for path in 0..paths.max(1) {
                panes.push(Pane::new(pi, path, spec.detect_context(&problem.question)));
            }
        }
        Self {
            id,
            mode,
            question: problem.index,
            question_text: problem.question.clone(),
            gold: problem.gold.clone(),
            prompts,
            sampling,
            calculator: false,
            judged: Default::default(),
            panes,
            running: true,
            cancelling: false,
            error: None,
            stats: Vec::new(),
            model,
            saved_to: None,
            repeated: None,
            active_branch: None,
        }
    }

    /// The generation a saved run shows, exactly as saved (not running).
    pub fn restored(id: u64, run: &RunRecord, saved_to: Option<PathBuf>) -> Result<Self, String> {
        let slots = run.path_slots()?;
        let panes = run
            .paths
            .iter()
            .zip(slots)
            .map(|(p, (prompt, path))| Pane::restored(prompt, path, p))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id,
            mode: run.mode,
            question: run.question.index,
            question_text: run.question.text.clone(),
            gold: run.question.gold.clone(),
            prompts: run.templates.clone(),
            sampling: run.sampling.clone(),
            calculator: run.calculator,
            judged: Default::default(),
            panes,
            running: false,
            cancelling: false,
            error: None,
            stats: Vec::new(),
            model: Some(run.model.clone()),
            saved_to,
            repeated: None,
            active_branch: None,
        })
    }

    /// The run record of this generation (the model given when it has none of its own).
    pub fn record(&self, model: &ModelInfo) -> RunRecord {
        let paths: Vec<PathRecord> = self
            .panes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let template = self.prompts.get(p.prompt).map_or("", |s| s.template.as_str());
                p.record(i + 1, template, self.correct(p.answer.as_deref()))
            })
            .collect();
        RunRecord {
            model: self.model.clone().unwrap_or_else(|| model.clone()),
            mode: self.mode,
            question: QuestionRecord {
                index: self.question,
                gold: self.gold.clone(),
                text: self.question_text.clone(),
            },
            templates: self.prompts.clone(),
            sampling: self.sampling.clone(),
            calculator: self.calculator,
            paths,
            vote: VoteRecord::new(&self.vote(), &self.gold),
        }
    }

    /// What the worker runs, in order (A/B: one request per template, run one after another), then one
    /// request per branch (a session with branches run again), each with its forced prefix.
    pub fn requests(&self) -> Vec<GenerateRequest> {
        let mut requests: Vec<GenerateRequest> = self
            .prompts
            .iter()
            .enumerate()
            .map(|(pi, spec)| GenerateRequest {
                prompt: spec.prompt.clone(),
                paths: self.panes.iter().filter(|p| p.prompt == pi && p.branch.is_none()).count(),
                sampling: self.sampling.clone(),
                stop: spec.stop.clone(),
                forcer: self.calculator.then(|| Forcer::new(Calculator)),
                logprobs: Some(TOP_LOGPROBS),
                ..GenerateRequest::default()
            })
            .collect();
        requests.extend(self.branch_panes().filter_map(|i| self.branch_request(i)));
        requests
    }

    /// Whether this generation sends exactly what `old` sent (same prompts, sampling and paths).
    pub fn repeats(&self, old: &Generation) -> bool {
        let shas =
            |g: &Generation| g.prompts.iter().map(|p| (p.prompt_sha256.clone(), p.stop.clone())).collect::<Vec<_>>();
        // Branches are replayed from what was saved; the sampled paths decide.
        let panes = |g: &Generation| {
            g.panes.iter().filter(|p| p.branch.is_none()).map(|p| (p.prompt, p.path)).collect::<Vec<_>>()
        };
        self.mode == old.mode
            && self.sampling == old.sampling
            && self.calculator == old.calculator
            && shas(self) == shas(old)
            && panes(self) == panes(old)
    }

    /// Keeps the human's labels and notes of `old` (which this one repeats) and its texts to compare.
    pub fn keep_annotations_of(&mut self, old: &Generation) {
        for (p, o) in self.panes.iter_mut().zip(old.panes.iter()) {
            p.labels.keep_human(&o.labels);
            p.note = o.note.clone();
        }
        self.repeated = Some(old.panes.iter().map(|p| p.text.clone()).collect());
    }

    /// For a finished repeat: the panes whose text differs from the repeated one's (marked stale);
    /// None when this generation repeats nothing.
    pub fn compare_with_repeated(&mut self) -> Option<Vec<usize>> {
        let old = self.repeated.as_ref()?;
        let mut differ = Vec::new();
        for (i, p) in self.panes.iter_mut().enumerate() {
            p.stale = old.get(i) != Some(&p.text);
            if p.stale {
                differ.push(i);
            }
        }
        Some(differ)
    }

    /// The pane that path `path` of request `request` streams into (see [`Generation::requests`]).
    fn pane_index(&self, request: usize, path: usize) -> Option<usize> {
        if let Some(b) = self.active_branch {
            return (request == 0 && path == 0).then_some(b);
        }
        if request < self.prompts.len() {
            self.panes.iter().position(|p| p.prompt == request && p.path == path && p.branch.is_none())
        } else {
            self.branch_panes().nth(request - self.prompts.len()).filter(|_| path == 0)
        }
    }

    /// Applies one engine event of request `request`, stamped `at_ms` after the generation began.
    pub fn apply(&mut self, request: usize, event: EngineEvent, at_ms: f64) {
        match event {
            EngineEvent::Prefilled { .. } => {
                for i in 0..self.panes.len() {
                    if (0..self.panes.len()).any(|path| self.pane_index(request, path) == Some(i)) {
                        self.panes[i].started_ms = Some(at_ms);
                    }
                }
            }
            EngineEvent::Token(t) => {
                if let Some(i) = self.pane_index(request, t.path) {
                    self.panes[i].push_event(&t, at_ms);
                }
            }
            EngineEvent::Done(res) => {
                let i = self.pane_index(request, res.path);
                if let (Some(i), Some(spec)) = (i, i.and_then(|i| self.prompts.get(self.panes[i].prompt))) {
                    let ctx = spec.detect_context(&self.question_text);
                    self.panes[i].last_ms.get_or_insert(at_ms);
                    self.panes[i].finish(res.text, res.token_ids, res.stop_reason, &ctx);
                }
            }
            EngineEvent::Stats(s) => self.stats.push(s),
        }
    }

    /// The generation ended (normally, cancelled or failed): unfinished panes are closed as cancelled.
    pub fn end(&mut self, error: Option<String>) {
        self.running = false;
        self.active_branch = None;
        self.cancelling = false;
        if error.is_some() {
            self.error = error;
        }
        for p in self.panes.iter_mut().filter(|p| !p.finished()) {
            if let Some(spec) = self.prompts.get(p.prompt) {
                let ctx = spec.detect_context(&self.question_text);
                let (text, ids) = (p.text.clone(), p.token_ids.clone());
                p.finish(text, ids, StopReason::Cancelled, &ctx);
            }
        }
    }

    pub fn correct(&self, answer: Option<&str>) -> Option<bool> {
        answer.map(|a| lab::answer::matches_gold(a, &self.gold))
    }

    pub fn vote(&self) -> Vote {
        let answers: Vec<Option<String>> = self.panes.iter().map(|p| p.answer.clone()).collect();
        lab::vote::vote(&answers)
    }

    /// Tokens generated so far, all panes together.
    pub fn tokens(&self) -> usize {
        self.panes.iter().map(|p| p.token_ids.len()).sum()
    }

    pub fn template_of(&self, pane: usize) -> Option<&PromptSpec> {
        self.prompts.get(self.panes.get(pane)?.prompt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PathResult;
    use crate::lab::detect::FailureKind;
    use crate::lab::labels::Label;

    fn spec(name: &str) -> PromptSpec {
        PromptSpec::new(name, format!("{name}\nQ: q\nA:"), vec!["\nQ:".into()], None, true)
    }

    fn problem() -> Problem {
        Problem { index: 0, question: "q".into(), reasoning: String::new(), gold: "18".into() }
    }

    #[test]
    fn self_consistency_has_one_request_with_n_paths() {
        let g = Generation::start(
            1,
            CompareMode::SelfConsistency,
            &problem(),
            vec![spec("a"), spec("b")],
            SamplingParams::default(),
            3,
            None,
        );
        assert_eq!(g.panes.len(), 3);
        let reqs = g.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].paths, 3);
        assert_eq!(reqs[0].stop, vec!["\nQ:".to_string()]);
    }

    #[test]
    fn ab_is_a_templates_by_paths_grid() {
        let g = Generation::start(
            1,
            CompareMode::Ab,
            &problem(),
            vec![spec("a"), spec("b")],
            SamplingParams::default(),
            3,
            None,
        );
        assert_eq!(g.panes.len(), 6);
        let grid: Vec<(usize, usize)> = g.panes.iter().map(|p| (p.prompt, p.path)).collect();
        assert_eq!(grid, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
        let reqs = g.requests();
        assert_eq!(reqs.iter().map(|r| r.paths).collect::<Vec<_>>(), vec![3, 3]);
        assert!(reqs[1].prompt.starts_with('b'));
        // The record names each path's template and numbers paths as on screen, and comes back the same.
        let rec = g.record(&crate::engine::fake::fake_info(10));
        assert_eq!(rec.paths.iter().map(|p| (p.path, p.template.as_str())).collect::<Vec<_>>()[3], (4, "b"));
        let back = Generation::restored(2, &rec, None).unwrap();
        assert_eq!(back.panes.iter().map(|p| (p.prompt, p.path)).collect::<Vec<_>>(), grid);
    }

    #[test]
    fn events_fill_panes_and_done_text_wins() {
        let mut g = Generation::start(
            1,
            CompareMode::SelfConsistency,
            &problem(),
            vec![spec("a")],
            SamplingParams::default(),
            2,
            None,
        );
        g.apply(0, EngineEvent::Prefilled { prompt_tokens: 5, prefill_ms: 1.0 }, 10.0);
        g.apply(
            0,
            EngineEvent::Token(crate::engine::TokenEvent {
                path: 1,
                id: Some(7),
                text: " The answer".into(),
                ..Default::default()
            }),
            20.0,
        );
        g.apply(
            0,
            EngineEvent::Token(crate::engine::TokenEvent {
                path: 1,
                id: Some(8),
                text: " is 18.".into(),
                ..Default::default()
            }),
            30.0,
        );
        assert_eq!(g.panes[1].text, " The answer is 18.");
        assert_eq!(g.panes[1].answer.as_deref(), Some("18"));
        assert_eq!(g.panes[1].tokens_per_s(), Some(100.0));
        assert!(g.panes[0].text.is_empty());
        let done = PathResult {
            text: " The answer is 18.".into(),
            token_ids: vec![7, 8],
            ..PathResult::empty(1, StopReason::Eos)
        };
        g.apply(0, EngineEvent::Done(done), 31.0);
        assert!(g.panes[1].finished());
        assert_eq!(g.correct(g.panes[1].answer.as_deref()), Some(true));
        g.end(None);
        assert_eq!(g.panes[0].stop, Some(StopReason::Cancelled));
        // Path 0 has no answer: the no_answer detector fires on finish and pre-fills its label.
        assert!(g.panes[0].labels.get(Label::Failure(FailureKind::NoAnswer)).detected);
        let v = g.vote();
        assert_eq!(v.majority.as_deref(), Some("18"));
        assert_eq!(v.voters, 1);
    }
}
