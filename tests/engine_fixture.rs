//! The engine on real BLOOM checkpoints: batched multi-path decoding agrees with single runs, seeded
//! sampling reproduces, stop strings and UTF-8 hold on real generations.

use std::path::PathBuf;
use std::sync::Arc;

use cotscope::engine::{
    CancelFlag, DecoderModel, Engine, EngineEvent, GenerateRequest, Generation, LocalEngine, PathResult,
    SamplingParams, StopReason,
};
use cotscope::model::{self, LoadOptions};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn engine(spec: Option<&str>) -> LocalEngine {
    let m = model::load(spec, &LoadOptions::default()).unwrap();
    LocalEngine::new(m.model, m.tokenizer, m.eos_token_id, m.info)
}

fn golden_cases(name: &str) -> Vec<(String, Vec<u32>)> {
    let text = std::fs::read_to_string(fixture(name).join("golden.json")).unwrap();
    let g: Value = serde_json::from_str(&text).unwrap();
    g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let ids = c["greedy_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
            (c["prompt"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

fn request(prompt: &str, paths: usize, temperature: f64, seed: u64, max_new_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        prompt: prompt.into(),
        paths,
        sampling: SamplingParams { temperature, seed, max_new_tokens, ..SamplingParams::default() },
        ..GenerateRequest::default()
    }
}

fn results(engine: &LocalEngine, req: &GenerateRequest) -> (Vec<PathResult>, Vec<EngineEvent>) {
    let mut events = Vec::new();
    engine.generate(req, &CancelFlag::new(), &mut |e| events.push(e)).unwrap();
    let mut done: Vec<PathResult> = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Done(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    done.sort_by_key(|r| r.path);
    assert_eq!(done.len(), req.paths);
    (done, events)
}

#[test]
fn greedy_paths_in_one_batch_equal_single_runs_and_the_reference() {
    for name in ["tiny-bloom", "tiny-bloom-f16-sharded"] {
        let e = engine(Some(fixture(name).to_str().unwrap()));
        for (prompt, golden) in golden_cases(name) {
            let (single, _) = results(&e, &request(&prompt, 1, 0.0, 0, 24));
            assert_eq!(single[0].token_ids, golden, "{name}: single greedy run of {prompt:?}");
            let (batch, _) = results(&e, &request(&prompt, 4, 0.0, 0, 24));
            for r in &batch {
                assert_eq!(r.token_ids, single[0].token_ids, "{name}: path {} of the batch", r.path);
                assert_eq!(r.text, single[0].text);
                assert_eq!(r.stop_reason, StopReason::MaxTokens);
            }
        }
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn batch_rows_fed_different_tokens_match_separate_runs() {
    // What makes sampled paths in one batch right: each row of a forked batch computes exactly what
    // a single sequence would, also after rows are dropped.
    let mut m = model::load(Some(fixture("tiny-bloom").to_str().unwrap()), &LoadOptions::default()).unwrap();
    let prompt = m.tokenizer.encode("Q: There are 15 trees in the grove.", false).unwrap().get_ids().to_vec();
    let rows: Vec<Vec<u32>> = vec![vec![100, 200, 300, 400, 500], vec![7, 8, 9, 10, 11], vec![3000, 5, 1200, 77, 4000]];

    let single = |model: &mut Box<dyn DecoderModel>, toks: &[u32]| -> Vec<Vec<f32>> {
        model.prefill(&prompt).unwrap();
        toks.iter().map(|&t| model.step(&[t]).unwrap().remove(0)).collect()
    };
    let want: Vec<Vec<Vec<f32>>> = rows.iter().map(|r| single(&mut m.model, r)).collect();

    m.model.prefill(&prompt).unwrap();
    m.model.fork(3).unwrap();
    let mut live = vec![0, 1, 2];
    for step in 0..5 {
        if step == 3 {
            // Drop the middle path, as the engine does when it stops.
            m.model.retain(&[0, 2]).unwrap();
            live = vec![0, 2];
        }
        let toks: Vec<u32> = live.iter().map(|&r| rows[r][step]).collect();
        let got = m.model.step(&toks).unwrap();
        for (i, &r) in live.iter().enumerate() {
            let d = max_abs_diff(&got[i], &want[r][step]);
            assert!(d < 1e-4, "row {r} step {step}: logits differ by {d}");
            assert_eq!(top1(&got[i]), top1(&want[r][step]));
        }
    }
}

#[test]
fn seeded_sampling_reproduces_and_path_zero_equals_a_single_run() {
    let e = engine(None);
    let prompt = "Q: A baker makes 12 cakes and sells 5. How many cakes are left?\nA:";
    let req = request(prompt, 3, 0.9, 11, 40);
    let (a, _) = results(&e, &req);
    let (b, _) = results(&e, &req);
    assert_eq!(a, b, "same seed, same paths");
    assert!(a[1..].iter().any(|r| r.token_ids != a[0].token_ids), "paths must sample their own streams");
    let (single, _) = results(&e, &request(prompt, 1, 0.9, 11, 40));
    assert_eq!(single[0].token_ids, a[0].token_ids);
    let (other, _) = results(&e, &request(prompt, 3, 0.9, 12, 40));
    assert_ne!(other, a, "another seed gives other text");
    // Through the spawned thread, too.
    let arc: Arc<dyn Engine> = Arc::new(engine(None));
    let events = Generation::spawn(arc, req.clone()).collect().unwrap();
    let spawned: Vec<PathResult> = events
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::Done(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(spawned.len(), 3);
    for r in spawned {
        assert_eq!(r, a[r.path]);
    }
}

#[test]
fn stop_strings_and_streamed_text_on_the_default_model() {
    let e = engine(None);
    let prompt = "Q: Tom has 5 pens and loses 2. How many pens does he have?\nA:";
    // Greedy text without a stop string, then the same with one cut out of it.
    let (free, events) = results(&e, &request(prompt, 1, 0.0, 0, 80));
    let text = &free[0].text;
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Token(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(&streamed, text);
    let at = text.find(" pens").expect("the default model talks about pens");
    let mut req = request(prompt, 2, 0.0, 0, 80);
    req.stop = vec![" pens".into()];
    let (stopped, _) = results(&e, &req);
    for r in stopped {
        assert_eq!(r.stop_reason, StopReason::StopString(" pens".into()));
        assert_eq!(r.text, text[..at]);
        assert!(r.token_ids.len() < free[0].token_ids.len());
    }
}

/// The greedy choice, as the engine makes it.
fn top1(v: &[f32]) -> u32 {
    cotscope::engine::sampler::argmax(v).expect("finite logits")
}

/// Hugging Face's repetition penalty, written out: each distinct token of `context` once.
fn penalize(logits: &[f32], context: &[u32], penalty: f32) -> Vec<f32> {
    let mut out = logits.to_vec();
    let seen: std::collections::BTreeSet<u32> = context.iter().copied().collect();
    for id in seen {
        let x = &mut out[id as usize];
        *x = if *x < 0.0 { *x * penalty } else { *x / penalty };
    }
    out
}

#[test]
fn greedy_with_repetition_penalty_follows_the_penalized_logits() {
    let name = "tiny-bloom";
    let spec = fixture(name);
    let e = engine(Some(spec.to_str().unwrap()));
    let mut m = model::load(Some(spec.to_str().unwrap()), &LoadOptions::default()).unwrap();
    let g: Value = serde_json::from_str(&std::fs::read_to_string(spec.join("golden.json")).unwrap()).unwrap();
    let mut changed = 0;
    for ((prompt, golden), case) in golden_cases(name).into_iter().zip(g["cases"].as_array().unwrap()) {
        let mut req = request(&prompt, 2, 0.0, 0, 24);
        req.sampling.repetition_penalty = 1.3;
        let (got, _) = results(&e, &req);
        // By hand: raw model logits, penalized over prompt + generated, argmax.
        let mut context = m.tokenizer.encode(prompt.as_str(), false).unwrap().get_ids().to_vec();
        let reference: Vec<f32> =
            case["last_logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let first_by_reference = top1(&penalize(&reference, &context, 1.3));
        let mut logits = m.model.prefill(&context).unwrap();
        let mut want = Vec::new();
        for _ in 0..24 {
            let t = top1(&penalize(&logits, &context, 1.3));
            want.push(t);
            context.push(t);
            logits = m.model.step(&[t]).unwrap().remove(0);
        }
        assert_eq!(want[0], first_by_reference, "{prompt:?}: first step from transformers' logits");
        for r in &got {
            assert_eq!(r.token_ids, want, "{prompt:?} path {}", r.path);
        }
        changed += usize::from(want != golden);
    }
    assert!(changed > 0, "the penalty changes some greedy continuation, so the test can fail");
}
