//! Quantized (q8_0, q4_K) and f16 weights against the f32 reference on the fixtures.
//!
//! Agreement is counted teacher-forced: the reduced-precision model is fed the reference greedy
//! continuation and, at each step, its top-1 token is compared with the reference's next token (a
//! free-running comparison would count every token after a first divergence as a miss). The tiny
//! fixture is 64 wide, too narrow for q4_K's 256-value super-blocks, so under q4k its 64-wide
//! matrices (embeddings/LM head, QKV, dense, h_to_4h) fall back to q8_0 and only `dense_4h_to_h`
//! (256 wide) takes q4_K; the embedded model (256 wide) takes q4_K everywhere.

use std::path::PathBuf;

use candle_core::DType;
use cotscope::model::quant::QuantKind;
use cotscope::model::{self, LoadOptions, LoadedModel};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// (agreeing steps, steps) of `m` teacher-forced along `continuation` after `prompt`.
fn agreement(m: &mut LoadedModel, prompt: &[u32], continuation: &[u32]) -> (usize, usize) {
    let mut logits = m.model.prefill(prompt).unwrap();
    let mut agree = 0;
    for &want in continuation {
        agree += (top1(&logits) == want) as usize;
        logits = m.model.step(&[want]).unwrap().remove(0);
    }
    (agree, continuation.len())
}

/// (prompt ids, reference greedy ids) of a fixture directory's golden.json.
fn fixture_cases(name: &str) -> Vec<(Vec<u32>, Vec<u32>)> {
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures").join(name).join("golden.json")).unwrap(),
    )
    .unwrap();
    g["cases"].as_array().unwrap().iter().map(|c| (ids(&c["input_ids"]), ids(&c["greedy_ids"]))).collect()
}

/// Same, for the embedded model's template prompts.
fn embedded_cases() -> Vec<(Vec<u32>, Vec<u32>)> {
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("assets/models/tiny-bloom-gsm8k/golden.json")).unwrap(),
    )
    .unwrap();
    g["cases"].as_array().unwrap().iter().map(|c| (ids(&c["input_ids"]), ids(&c["greedy_ids"]))).collect()
}

fn rate(m: &mut LoadedModel, cases: &[(Vec<u32>, Vec<u32>)]) -> f64 {
    let (mut a, mut n) = (0, 0);
    for (p, c) in cases {
        let (x, y) = agreement(m, p, c);
        a += x;
        n += y;
    }
    a as f64 / n as f64
}

fn load(spec: Option<&str>, opts: LoadOptions) -> LoadedModel {
    model::load(spec, &opts).unwrap()
}

fn quantized(q: QuantKind) -> LoadOptions {
    LoadOptions { quantize: Some(q), ..Default::default() }
}

#[test]
fn quantized_greedy_agrees_with_f32_on_the_tiny_fixture() {
    let dir = root().join("tests/fixtures/tiny-bloom");
    let cases = fixture_cases("tiny-bloom");
    let mut f32m = load(Some(dir.to_str().unwrap()), LoadOptions::default());
    assert_eq!(rate(&mut f32m, &cases), 1.0, "the f32 model reproduces its own reference");
    for q in [QuantKind::Q8_0, QuantKind::Q4K] {
        let mut m = load(Some(dir.to_str().unwrap()), quantized(q));
        assert_eq!(m.info.dtype, q.name());
        assert!(m.weight_bytes * 3 < f32m.weight_bytes, "{q}: {} vs {}", m.weight_bytes, f32m.weight_bytes);
        let r = rate(&mut m, &cases);
        eprintln!("tiny-bloom {q}: {:.1}% top-1 agreement", 100.0 * r);
        assert!(r >= 0.9, "{q}: {r}");
    }
}

#[test]
fn quantized_greedy_agrees_with_f32_on_the_embedded_model() {
    let cases = embedded_cases();
    for q in [QuantKind::Q8_0, QuantKind::Q4K] {
        let mut m = load(None, quantized(q));
        let r = rate(&mut m, &cases);
        eprintln!("embedded {q}: {:.1}% top-1 agreement", 100.0 * r);
        assert!(r >= 0.9, "{q}: {r}");
    }
}

#[test]
fn q4k_is_smaller_than_q8_0_where_the_width_allows_it() {
    // Width 256: every matrix takes q4_K (4.5 bits) instead of q8_0 (8.5 bits).
    let q8 = load(None, quantized(QuantKind::Q8_0));
    let q4 = load(None, quantized(QuantKind::Q4K));
    assert!((q4.weight_bytes as f64) < 0.6 * q8.weight_bytes as f64, "{} vs {}", q4.weight_bytes, q8.weight_bytes);
}

#[test]
fn f16_weights_stay_close_to_f32_logits() {
    let dir = root().join("tests/fixtures/tiny-bloom");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let mut m = load(Some(dir.to_str().unwrap()), LoadOptions { dtype: Some(DType::F16), ..Default::default() });
    assert_eq!(m.info.dtype, "f16");
    let mut worst = 0f32;
    for case in g["cases"].as_array().unwrap() {
        let want = floats(&case["last_logits"]);
        let got = m.model.prefill(&ids(&case["input_ids"])).unwrap();
        let spread = want.iter().fold(0f32, |a, x| a.max(x.abs()));
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        worst = worst.max(d / spread);
    }
    eprintln!("f16: worst logit error {:.4} of the largest logit", worst);
    assert!(worst < 0.02, "{worst}");
    let r = rate(&mut m, &fixture_cases("tiny-bloom"));
    assert!(r >= 0.9, "f16 top-1 agreement {r}");
}

/// The greedy choice, as the engine makes it.
fn top1(v: &[f32]) -> u32 {
    cotscope::engine::sampler::argmax(v).expect("finite logits")
}
