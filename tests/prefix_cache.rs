//! The prefix cache on real checkpoints: a prompt that starts like an earlier one takes that start's
//! keys and values from the cache, and greedy output is the same as without the cache.

use std::path::PathBuf;

use cotscope::engine::{
    CancelFlag, Engine, EngineEvent, GenerateRequest, GenerationStats, LocalEngine, SamplingParams,
};
use cotscope::model::{self, LoadOptions};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn engine(name: &str, prefix_cache_mb: usize) -> LocalEngine {
    let opts = LoadOptions { prefix_cache_mb: Some(prefix_cache_mb), ..Default::default() };
    let m = model::load(Some(fixture(name).to_str().unwrap()), &opts).unwrap();
    LocalEngine::new(m.model, m.tokenizer, m.eos_token_id, m.info)
}

/// The golden few-shot prompt: four exemplars and a question.
fn few_shot(name: &str) -> String {
    let text = std::fs::read_to_string(fixture(name).join("golden.json")).unwrap();
    let g: Value = serde_json::from_str(&text).unwrap();
    let cases = g["cases"].as_array().unwrap();
    cases.iter().map(|c| c["prompt"].as_str().unwrap().to_string()).max_by_key(|p| p.len()).unwrap()
}

fn greedy(e: &LocalEngine, prompt: &str, paths: usize) -> (Vec<Vec<u32>>, GenerationStats) {
    let req = GenerateRequest {
        prompt: prompt.into(),
        paths,
        sampling: SamplingParams { temperature: 0.0, seed: 0, max_new_tokens: 16, ..SamplingParams::default() },
        ..GenerateRequest::default()
    };
    let mut ids = vec![Vec::new(); paths];
    let stats = e
        .generate(&req, &CancelFlag::new(), &mut |ev| {
            if let EngineEvent::Done(r) = ev {
                ids[r.path] = r.token_ids;
            }
        })
        .unwrap();
    (ids, stats)
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[test]
fn cached_prefixes_give_the_same_greedy_output_and_are_counted() {
    for name in ["tiny-bloom", "tiny-bloom-f16-sharded", "tiny-bloom-6head-postln"] {
        let base = few_shot("tiny-bloom");
        let (exemplars, _) = base.rsplit_once("Q: ").unwrap();
        let other_question =
            format!("{exemplars}Q: A farmer has 7 cows and buys 5 more. How many cows does he have?\nA:");
        // What a question switch, a branch (prompt + generated text), a rerun and an unrelated prompt
        // send; then a branch of the switched question and its rerun (its cache entry is then three
        // parts: the exemplars, the question, the branch's text).
        let branch = format!("{other_question} He has 7 + 5 =");
        let prompts = [
            base.clone(),
            other_question.clone(),
            format!("{base} There are 16 eggs. She eats"),
            base.clone(),
            "Q: What is 2 + 2?\nA:".to_string(),
            other_question,
            branch.clone(),
            branch,
        ];
        let cold = engine(name, 0);
        let warm = engine(name, 64);
        let mut seen: Vec<Vec<u32>> = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            let ids = warm.encode(p).unwrap();
            let (want, off_stats) = greedy(&cold, p, 1);
            let (got, on_stats) = greedy(&warm, p, 2);
            assert_eq!(off_stats.cached_prompt_tokens, 0, "{name}: no cache, nothing cached");
            for g in &got {
                assert_eq!(g, &want[0], "{name}: prompt {i}: greedy output with the cache");
            }
            // The longest start shared with an earlier prompt, less the last token (always computed).
            let expect = seen.iter().map(|s| common_prefix(s, &ids)).max().unwrap_or(0).min(ids.len() - 1);
            assert_eq!(on_stats.cached_prompt_tokens, expect, "{name}: prompt {i}");
            assert_eq!(on_stats.prompt_tokens, ids.len());
            seen.push(ids);
        }
        // The exemplars were reused by the question switch, the whole prompt by the branch and rerun.
        let lens: Vec<usize> = seen.iter().map(Vec::len).collect();
        assert!(common_prefix(&seen[0], &seen[1]) > lens[1] / 2, "{name}: the switch shares the exemplars");
        assert!(common_prefix(&seen[0], &seen[2]) >= lens[0] - 1, "{name}: the branch extends the prompt");
    }
}

#[test]
fn a_cached_prefill_computes_the_same_logits() {
    let opts = |mb| LoadOptions { prefix_cache_mb: Some(mb), ..Default::default() };
    let path = fixture("tiny-bloom");
    let mut warm = model::load(Some(path.to_str().unwrap()), &opts(64)).unwrap();
    let mut cold = model::load(Some(path.to_str().unwrap()), &opts(0)).unwrap();
    let base = few_shot("tiny-bloom");
    let a = warm.tokenizer.encode(base.as_str(), false).unwrap().get_ids().to_vec();
    let b = warm.tokenizer.encode(format!("{base} 16 - 3 - 4 = 9.").as_str(), false).unwrap().get_ids().to_vec();
    warm.model.prefill(&a).unwrap();
    for prompt in [&b, &a] {
        let got = warm.model.prefill(prompt).unwrap();
        assert!(warm.model.cached_prompt_tokens() >= a.len() - 1);
        let want = cold.model.prefill(prompt).unwrap();
        let d = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "logits differ by {d}");
        // Steps after a cached prefill see the same cache.
        warm.model.fork(2).unwrap();
        cold.model.fork(2).unwrap();
        let (g, w) = (warm.model.step(&[17, 300]).unwrap(), cold.model.step(&[17, 300]).unwrap());
        for (x, y) in g.iter().zip(&w) {
            let d = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert!(d < 1e-4, "step logits differ by {d}");
        }
    }
}
