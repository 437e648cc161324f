//! The calculator in the loop on the embedded default model: what it writes is the calculator's exact
//! result for the text before it, batched paths equal single runs, and `generate`/`eval` report it.

use std::path::PathBuf;
use std::process::Command;

use cotscope::engine::{
    CancelFlag, Engine, EngineEvent, Forcer, GenerateRequest, LocalEngine, PathResult, SamplingParams,
};
use cotscope::lab::calculator::{self, Calculator};
use cotscope::lab::{self, gsm8k, FailureKind};
use cotscope::model::{self, LoadOptions};
use serde_json::Value;

fn engine() -> LocalEngine {
    let m = model::load(None, &LoadOptions::default()).unwrap();
    LocalEngine::new(m.model, m.tokenizer, m.eos_token_id, m.info)
}

fn wei() -> lab::Template {
    let set = lab::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates"));
    set.get("wei-8shot").unwrap().1.clone()
}

fn request(question: usize, paths: usize) -> GenerateRequest {
    let t = wei();
    GenerateRequest {
        prompt: t.render(&gsm8k::test_problem(question).unwrap().question),
        paths,
        sampling: SamplingParams { temperature: 0.0, max_new_tokens: 96, ..SamplingParams::default() },
        stop: t.stop_strings().to_vec(),
        forcer: Some(Forcer::new(Calculator)),
        ..GenerateRequest::default()
    }
}

fn run(e: &LocalEngine, req: &GenerateRequest) -> (Vec<PathResult>, Vec<EngineEvent>) {
    let mut events = Vec::new();
    e.generate(req, &CancelFlag::new(), &mut |ev| events.push(ev)).unwrap();
    let mut done: Vec<PathResult> = events
        .iter()
        .filter_map(|ev| match ev {
            EngineEvent::Done(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    done.sort_by_key(|r| r.path);
    (done, events)
}

#[test]
fn forced_results_are_the_calculator_s_and_batches_equal_single_runs() {
    let e = engine();
    let mut forced_total = 0;
    for q in 0..2 {
        let (single, events) = run(&e, &request(q, 1));
        let r = &single[0];
        for span in &r.forced_spans {
            // Exactly what the calculator computes for the text before it.
            let want = calculator::result_after(&r.text[..span.start]).expect("a span follows a readable `=`");
            assert_eq!(&r.text[span.clone()], want, "question {q}: {:?}", r.text);
            forced_total += 1;
        }
        let forced_text: String = events
            .iter()
            .filter_map(|ev| match ev {
                EngineEvent::Token(t) if t.forced => Some(t.text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(forced_text, r.forced_spans.iter().map(|s| &r.text[s.clone()]).collect::<String>());
        // No arithmetic error is reported for a result the calculator wrote.
        let ctx = lab::DetectContext::for_template(&wei(), &gsm8k::test_problem(q).unwrap().question);
        let kept = calculator::drop_forced_results(lab::detect_all(&ctx, &r.text), &r.forced_spans);
        for f in kept.iter().filter(|f| f.kind == FailureKind::ArithmeticError) {
            assert!(!r.forced_spans.iter().any(|s| s.start < f.end && f.end <= s.end));
        }
        let (batch, _) = run(&e, &request(q, 3));
        for b in &batch {
            assert_eq!(b.token_ids, r.token_ids, "question {q} path {}", b.path);
            assert_eq!(b.forced_spans, r.forced_spans);
        }
    }
    assert!(forced_total > 0, "the default model writes equations the calculator completes");
}

#[test]
fn generate_json_marks_forced_tokens() {
    let prompt = wei().render(&gsm8k::test_problem(0).unwrap().question);
    let out = Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args([
            "generate",
            "--prompt",
            &prompt,
            "--max-new-tokens",
            "96",
            "--temperature",
            "0",
            "--json",
            "--calculator",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let forced: String = lines
        .iter()
        .filter(|v| v["event"] == "token" && v["forced"] == true)
        .map(|v| v["text"].as_str().unwrap())
        .collect();
    assert!(!forced.is_empty(), "the calculator wrote something");
    let done = lines.iter().find(|v| v["event"] == "done").unwrap();
    let text = done["text"].as_str().unwrap();
    let spans: String = done["forced_spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &text[s[0].as_u64().unwrap() as usize..s[1].as_u64().unwrap() as usize])
        .collect();
    assert_eq!(spans, forced);
    // Unforced tokens carry no "forced" field at all.
    assert!(lines.iter().filter(|v| v["event"] == "token" && v["forced"] != true).all(|v| v.get("forced").is_none()));
}

#[test]
fn eval_with_the_calculator_records_forced_spans() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("calc.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args(["eval", "--template", "wei-8shot", "--questions", "0..2", "--paths", "2", "--calculator"])
        .args(["--max-new-tokens", "96", "--temperature", "0", "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["questions"], 2);
    let mut spans = 0;
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        for p in rec["paths"].as_array().unwrap() {
            let Some(fs) = p.get("forced_spans") else { continue };
            spans += fs.as_array().unwrap().len();
        }
    }
    assert!(spans > 0, "forced spans are recorded");
}
