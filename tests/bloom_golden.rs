//! BLOOM against transformers' reference outputs for the fixture checkpoints (f32 single file,
//! f16 sharded, PyTorch .bin without the `transformer.` prefix) and the embedded default model.

use std::path::{Path, PathBuf};

use cotscope::model::{self, LoadOptions, LoadedModel};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn golden(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn greedy(m: &mut LoadedModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut logits = m.model.prefill(prompt).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let next = top1(&logits);
        out.push(next);
        logits = m.model.step(&[next]).unwrap().remove(0);
    }
    out
}

fn check_fixture(name: &str) {
    let dir = fixture(name);
    let g = golden(&dir);
    let mut m = model::load(Some(dir.to_str().unwrap()), &LoadOptions::default()).unwrap();
    for case in g["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let want_ids = ids(&case["input_ids"]);
        let enc = m.tokenizer.encode(prompt, false).unwrap();
        assert_eq!(enc.get_ids(), &want_ids[..], "{name}: tokenization of {prompt:?}");

        let last = m.model.prefill(&want_ids).unwrap();
        let d = max_abs_diff(&last, &floats(&case["last_logits"]));
        assert!(d < 1e-3, "{name}: last logits differ by {d} for {prompt:?}");
        let first = m.model.prefill(&want_ids[..1]).unwrap();
        let d = max_abs_diff(&first, &floats(&case["first_logits"]));
        assert!(d < 1e-3, "{name}: first logits differ by {d} for {prompt:?}");

        let got = greedy(&mut m, &want_ids, 24);
        assert_eq!(got, ids(&case["greedy_ids"]), "{name}: greedy ids for {prompt:?}");
    }
}

#[test]
fn tiny_bloom_f32_matches_transformers() {
    check_fixture("tiny-bloom");
}

#[test]
fn tiny_bloom_f16_sharded_matches_transformers() {
    check_fixture("tiny-bloom-f16-sharded");
}

#[test]
fn six_heads_post_layernorm_residual_untied_head_matches_transformers() {
    // 6 heads (ALiBi slopes of a non-power-of-two count), apply_residual_connection_post_layernorm,
    // and an lm_head.weight of its own; written by tests/fixtures/make_golden.py.
    check_fixture("tiny-bloom-6head-postln");
}

#[test]
fn tiny_bloom_pytorch_bin_without_prefix_matches_transformers() {
    check_fixture("tiny-bloom-pt-bin");
}

#[test]
fn embedded_default_model_matches_transformers_on_the_template_prompts() {
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/models/tiny-bloom-gsm8k/golden.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut m = model::load(None, &LoadOptions::default()).unwrap();
    for case in g["cases"].as_array().unwrap() {
        let name = case["template"].as_str().unwrap();
        let prompt = std::fs::read_to_string(fixture("prompts").join(format!("{name}.txt"))).unwrap();
        let enc = m.tokenizer.encode(prompt.as_str(), false).unwrap();
        assert_eq!(enc.get_ids(), &ids(&case["input_ids"])[..], "{name}: tokenization");
        let want = ids(&case["greedy_ids"]);
        let got = greedy(&mut m, enc.get_ids(), want.len());
        assert_eq!(got, want, "{name}: greedy continuation");
    }
}

#[test]
fn fork_then_batched_steps_equal_single_rows() {
    // Three identical rows decoded in one batch give the same logits as the single row.
    let dir = fixture("tiny-bloom");
    let mut m = model::load(Some(dir.to_str().unwrap()), &LoadOptions::default()).unwrap();
    let prompt = m.tokenizer.encode("Q: There are 15 trees", false).unwrap().get_ids().to_vec();
    let single = m.model.prefill(&prompt).unwrap();
    let t = top1(&single);
    let single_next = m.model.step(&[t]).unwrap().remove(0);
    m.model.prefill(&prompt).unwrap();
    m.model.fork(3).unwrap();
    let rows = m.model.step(&[t, 5, t]).unwrap();
    assert!(max_abs_diff(&rows[0], &single_next) < 1e-5);
    assert!(max_abs_diff(&rows[2], &single_next) < 1e-5);
    assert!(max_abs_diff(&rows[1], &single_next) > 1e-3, "a different token gives different logits");
    // Dropping the middle row keeps the others' state.
    m.model.retain(&[0, 2]).unwrap();
    let after = m.model.step(&[t, t]).unwrap();
    assert!(max_abs_diff(&after[0], &after[1]) < 1e-5);
}

/// The greedy choice, as the engine makes it.
fn top1(v: &[f32]) -> u32 {
    cotscope::engine::sampler::argmax(v).expect("finite logits")
}
