//! Continuous batching: questions decoded together in one batch (rows of different prompt lengths,
//! finished rows refilled with the next question) give exactly what one question at a time gives,
//! greedy and sampled, through the engine and through `cotscope eval --batch`.

use std::path::{Path, PathBuf};
use std::process::Command;

use cotscope::engine::{CancelFlag, Engine, EngineEvent, GenerateRequest, LocalEngine, PathResult, SamplingParams};
use cotscope::lab::{gsm8k, template};
use cotscope::model::{self, LoadOptions};
use serde_json::Value;

fn engine(spec: Option<&str>) -> LocalEngine {
    let m = model::load(spec, &LoadOptions::default()).unwrap();
    LocalEngine::new(m.model, m.tokenizer, m.eos_token_id, m.info)
}

fn wei() -> template::Template {
    let set = template::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates"));
    set.get("wei-8shot").unwrap().1.clone()
}

/// Requests for questions 0..n with 1 to 3 paths and different token budgets, so rows end at
/// different steps and the batch is refilled while others run.
fn requests(n: usize, temperature: f64) -> Vec<GenerateRequest> {
    let t = wei();
    (0..n)
        .map(|i| GenerateRequest {
            prompt: t.render(&gsm8k::test_problem(i).unwrap().question),
            paths: 1 + i % 3,
            sampling: SamplingParams {
                temperature,
                seed: 5 + i as u64,
                max_new_tokens: 6 + 5 * (i % 4),
                ..SamplingParams::default()
            },
            stop: t.stop_strings().to_vec(),
            ..GenerateRequest::default()
        })
        .collect()
}

/// Every request's finished paths (by path index) and whether its events came in contract order.
fn run(e: &LocalEngine, reqs: &[GenerateRequest], rows: usize) -> Vec<Vec<PathResult>> {
    let mut done: Vec<Vec<PathResult>> = vec![Vec::new(); reqs.len()];
    let mut events: Vec<Vec<&'static str>> = vec![Vec::new(); reqs.len()];
    let mut texts: Vec<Vec<String>> = reqs.iter().map(|r| vec![String::new(); r.paths]).collect();
    e.generate_many(reqs, rows, &CancelFlag::new(), &mut |i, ev| match ev {
        EngineEvent::Prefilled { .. } => events[i].push("prefilled"),
        EngineEvent::Token(t) => {
            texts[i][t.path].push_str(&t.text);
            events[i].push("token")
        }
        EngineEvent::Done(r) => {
            events[i].push("done");
            done[i].push(r)
        }
        EngineEvent::Stats(_) => events[i].push("stats"),
    })
    .unwrap();
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev.first(), Some(&"prefilled"), "request {i}: {ev:?}");
        assert_eq!(ev.last(), Some(&"stats"), "request {i}: {ev:?}");
        assert_eq!(ev.iter().filter(|e| **e == "done").count(), reqs[i].paths);
    }
    for (d, t) in done.iter_mut().zip(&texts) {
        d.sort_by_key(|r| r.path);
        for r in d.iter() {
            assert_eq!(r.text, t[r.path], "a path's tokens add up to its text");
        }
    }
    done
}

#[test]
fn a_batch_of_questions_equals_one_question_at_a_time() {
    let e = engine(None);
    for temperature in [0.0, 0.8] {
        let reqs = requests(7, temperature);
        let alone = run(&e, &reqs, 1);
        for rows in [3, 8] {
            let batched = run(&e, &reqs, rows);
            for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
                assert_eq!(a, b, "question {i}, temperature {temperature}, {rows} rows");
            }
        }
        // Rows really ended at different steps: some paths stopped before their budget.
        assert!(alone.iter().flatten().any(|r| r.token_ids.len() < 6 + 5 * 3));
    }
}

#[test]
fn batched_rows_on_fixture_checkpoints_match_single_requests() {
    for name in ["tiny-bloom", "tiny-bloom-f16-sharded"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        let e = engine(Some(dir.to_str().unwrap()));
        let reqs = requests(5, 0.0);
        let alone = run(&e, &reqs, 1);
        assert_eq!(alone, run(&e, &reqs, 4), "{name}");
    }
}

fn eval(out: &Path, batch: &str, temperature: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args(["eval", "--template", "wei-8shot", "--questions", "0..5", "--paths", "2", "--max-new-tokens", "24"])
        .args(["--temperature", temperature, "--seed", "3", "--batch", batch, "--out"])
        .arg(out)
        .output()
        .unwrap()
}

/// The records of a results file by question, without the timing.
fn records(p: &Path) -> Vec<Value> {
    let mut v: Vec<Value> = std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| {
            let mut r: Value = serde_json::from_str(l).unwrap();
            r.as_object_mut().unwrap().remove("generation_ms");
            r
        })
        .collect();
    v.sort_by_key(|r| r["index"].as_u64());
    v
}

#[test]
fn eval_batch_writes_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    for temperature in ["0", "0.9"] {
        let one = dir.path().join(format!("one-{temperature}.jsonl"));
        let many = dir.path().join(format!("many-{temperature}.jsonl"));
        for (path, batch) in [(&one, "1"), (&many, "4")] {
            let o = eval(path, batch, temperature);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let (a, b) = (records(&one), records(&many));
        assert_eq!(a.len(), 5);
        assert_eq!(a, b, "temperature {temperature}");
    }
    let o = eval(&dir.path().join("x.jsonl"), "0", "0");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--batch") && err.trim().lines().count() == 1, "{err}");
}

/// `add_rows_many` (all prompts' own tokens in one pass) against `add_rows` one prompt at a time:
/// the same logits for each prompt and for the rows' next steps, on checkpoints whose batches take
/// the one-pass path (f32) and the one-at-a-time fallback (f16), with and without a shared start.
#[test]
fn prompts_added_together_equal_prompts_added_one_at_a_time() {
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    for name in ["tiny-bloom", "tiny-bloom-6head-postln", "tiny-bloom-f16-sharded"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        let load = || model::load(Some(dir.to_str().unwrap()), &LoadOptions::default()).unwrap();
        let tok = load().tokenizer;
        let ids = |s: &str| tok.encode(s, false).unwrap().get_ids().to_vec();
        let shot = "Q: Tom has 3 apples and buys 2 more. How many apples?\nA: 3 + 2 = 5. The answer is 5.\n\n";
        let questions = [
            "Q: Ann reads 4 pages a day for 6 days. How many pages?\nA:",
            "Q: 9 - 4?\nA:",
            "Q: A bus has 12 seats.\nA:",
        ];
        for shared_start in [true, false] {
            let prompts: Vec<Vec<u32>> = questions
                .iter()
                .map(|q| ids(&if shared_start { format!("{shot}{q}") } else { q.to_string() }))
                .collect();
            let shared = if shared_start { ids(shot) } else { Vec::new() };
            assert!(prompts.iter().all(|p| p.starts_with(&shared) && p.len() > shared.len()));
            let paths = [2, 1, 3];

            let mut one = load().model;
            one.start_batch(&shared).unwrap();
            let alone: Vec<Vec<f32>> = prompts.iter().zip(paths).map(|(p, n)| one.add_rows(p, n).unwrap()).collect();
            let mut many = load().model;
            many.start_batch(&shared).unwrap();
            let asks: Vec<(&[u32], usize)> = prompts.iter().map(|p| p.as_slice()).zip(paths).collect();
            let together = many.add_rows_many(&asks).unwrap();

            assert_eq!(together.len(), prompts.len());
            for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
                assert_eq!(t.cached_prompt_tokens, shared.len(), "{name}: prompt {i}");
                let d = max_diff(a, &t.logits);
                assert!(d < 1e-4, "{name}, shared start {shared_start}: prompt {i} logits differ by {d}");
            }
            // The rows continue alike: each row (2 + 1 + 3 of them) steps from its own prompt.
            let tokens: Vec<u32> = (0..6).map(|r| 5 + r as u32).collect();
            for _ in 0..2 {
                let (a, b) = (one.step(&tokens).unwrap(), many.step(&tokens).unwrap());
                assert_eq!((a.len(), b.len()), (6, 6));
                for (r, (x, y)) in a.iter().zip(&b).enumerate() {
                    let d = max_diff(x, y);
                    assert!(d < 1e-4, "{name}, shared start {shared_start}: row {r} step logits differ by {d}");
                }
            }
        }
    }
}
