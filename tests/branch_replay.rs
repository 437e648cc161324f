//! Branching as the workbench does it (`b` on a token), on the embedded default model: a branch that
//! forces the token its parent already had at that point replays the parent exactly under greedy
//! decoding, and one that forces another alternative keeps the parent's text before it and differs
//! after. The branch's request is built by the TUI's own `Generation::branch`.

use std::path::PathBuf;

use cotscope::engine::{CancelFlag, Engine, GenerateRequest, LocalEngine, SamplingParams};
use cotscope::lab::record::{CompareMode, PromptSpec};
use cotscope::lab::{self, gsm8k};
use cotscope::model::{self, LoadOptions};
use cotscope::tui::generation::{BranchChoice, Generation};

fn engine() -> LocalEngine {
    let m = model::load(None, &LoadOptions::default()).unwrap();
    LocalEngine::new(m.model, m.tokenizer, m.eos_token_id, m.info)
}

/// Runs `requests` into generation `g` as the worker would (request i's events to `apply(i, …)`).
fn run(e: &LocalEngine, g: &mut Generation, requests: &[GenerateRequest]) {
    for (i, req) in requests.iter().enumerate() {
        e.generate(req, &CancelFlag::new(), &mut |ev| g.apply(i, ev, 0.0)).unwrap();
    }
    g.end(None);
}

/// A finished greedy generation of one path on question 1 with wei-8shot.
fn greedy_parent(e: &LocalEngine) -> Generation {
    let set = lab::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates"));
    let t = set.get("wei-8shot").unwrap().1.clone();
    let problem = gsm8k::test_problem(1).unwrap();
    let spec = PromptSpec::new("wei-8shot", t.render(&problem.question), t.stop_strings().to_vec(), None, true);
    let sampling = SamplingParams { temperature: 0.0, max_new_tokens: 40, ..SamplingParams::default() };
    let mut g = Generation::start(1, CompareMode::SelfConsistency, problem, vec![spec], sampling, 1, Some(e.info()));
    let requests = g.requests();
    assert_eq!(requests[0].logprobs, Some(5), "the workbench asks for the alternatives");
    run(e, &mut g, &requests);
    g
}

#[test]
fn a_branch_forcing_the_parent_s_own_token_reproduces_the_parent_greedy() {
    let e = engine();
    let mut g = greedy_parent(&e);
    let parent = (g.panes[0].text.clone(), g.panes[0].token_ids.clone());
    assert!(parent.1.len() > 10, "the parent has tokens to branch at: {parent:?}");
    assert_eq!(g.panes[0].steps.len(), parent.1.len(), "one step per token");
    for (n, k) in [0, parent.1.len() / 2, parent.1.len() - 1].into_iter().enumerate() {
        let (pane, req) = g.branch(0, k, BranchChoice::Token(parent.1[k])).unwrap();
        assert_eq!(req.prefix, parent.1[..=k].to_vec(), "prefix: the parent's tokens through k");
        g.start_branch(10 + n as u64, pane);
        run(&e, &mut g, &[req]);
        let b = &g.panes[pane];
        assert_eq!(b.text, parent.0, "branch at token {k} gives the parent's text");
        assert_eq!(b.token_ids, parent.1, "branch at token {k} gives the parent's tokens");
        // The replayed tokens show the parent's probabilities; the rest are the model's own.
        assert_eq!(b.steps.len(), b.token_ids.len());
        assert_eq!(b.steps[k].logprob, g.panes[0].steps[k].logprob);
        assert!(b.steps.iter().all(|s| s.logprob.is_some()));
        assert_eq!(b.branch.as_ref().unwrap().parent, 1);
    }
    // Every branch joined the vote with the parent's answer.
    assert_eq!(g.vote().voters, g.panes.iter().filter(|p| p.answer.is_some()).count());
}

#[test]
fn a_branch_with_another_alternative_keeps_the_text_before_it_and_goes_its_own_way() {
    let e = engine();
    let mut g = greedy_parent(&e);
    let ids = g.panes[0].token_ids.clone();
    let k = ids.len() / 2;
    let second = g.panes[0].steps[k].top.iter().find_map(|t| t.id.filter(|id| *id != ids[k])).unwrap();
    let (pane, req) = g.branch(0, k, BranchChoice::Token(second)).unwrap();
    assert_eq!(req.prefix.len(), k + 1);
    assert_eq!(*req.prefix.last().unwrap(), second);
    g.start_branch(20, pane);
    run(&e, &mut g, &[req]);
    let b = &g.panes[pane];
    assert_eq!(&b.token_ids[..k], &ids[..k]);
    assert_eq!(b.token_ids[k], second);
    let before: String = g.panes[0].text[..g.panes[0].token_spans()[k].start].to_string();
    assert!(b.text.starts_with(&before), "{:?} keeps {:?}", b.text, before);
    assert_ne!(b.text, g.panes[0].text);
}
