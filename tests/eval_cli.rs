//! `cotscope eval` on the embedded default model: the JSON lines, the summary, and resuming.

use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

fn eval(out: &Path, questions: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args(["eval", "--template", "wei-8shot", "--questions", questions, "--paths", "2"])
        .args(["--max-new-tokens", "12", "--temperature", "0", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap().lines().map(str::to_string).collect()
}

fn prompt_of(q: usize) -> Vec<u8> {
    let o = Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args(["prompt", "--template", "wei-8shot", "--question", &q.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success());
    o.stdout
}

#[test]
fn writes_records_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wei.jsonl");

    let summary = ok(&eval(&out, "0..2"));
    assert!(summary.contains("first-path accuracy:"), "{summary}");
    assert!(summary.contains("majority-vote accuracy:"), "{summary}");
    assert!(summary.contains("arithmetic_error") && summary.contains("tokens/s:"), "{summary}");
    let first = lines(&out);
    assert_eq!(first.len(), 2);
    for (i, line) in first.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["index"], i);
        assert_eq!(v["template"], "wei-8shot");
        let hash: String = Sha256::digest(prompt_of(i)).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(v["prompt_hash"], hash.as_str());
        assert_eq!(v["gold"], ["18", "3"][i]);
        let paths = v["paths"].as_array().unwrap();
        assert_eq!(paths.len(), 2);
        for p in paths {
            for k in ["text", "answer", "answer_rule", "failures", "stop_reason"] {
                assert!(p.get(k).is_some(), "{k} in {p}");
            }
            assert!(["max_tokens", "eos", "stop_string"].contains(&p["stop_reason"].as_str().unwrap()));
        }
        // Greedy: both paths write the same text, so they agree.
        assert_eq!(paths[0]["text"], paths[1]["text"]);
        assert!(v["vote"]["counts"].is_array());
        assert!(v["correct"].is_boolean() && v["first_correct"].is_boolean());
    }

    // A wider range: only the new question is generated; the old lines are untouched.
    let o = eval(&out, "0..3");
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 of 3 questions already done"));
    let second = lines(&out);
    assert_eq!(second.len(), 3);
    assert_eq!(second[..2], first[..]);
    let v: serde_json::Value = serde_json::from_str(&second[2]).unwrap();
    assert_eq!(v["index"], 2);

    // A crash while writing the last line: it is dropped and that question is run again, the same.
    let text = std::fs::read_to_string(&out).unwrap();
    let cut = text.len() - second[2].len() / 2;
    std::fs::write(&out, &text[..cut]).unwrap();
    let o = eval(&out, "0..3");
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("dropped a line cut short"));
    let third = lines(&out);
    assert_eq!(third.len(), 3);
    let (a, b): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&second[2]).unwrap(), serde_json::from_str(&third[2]).unwrap());
    assert_eq!(a["paths"], b["paths"], "greedy generation is reproducible");

    // Everything done: no model needed, the summary covers the three.
    let s = ok(&eval(&out, "0..3"));
    assert!(s.contains(": 3 questions"), "{s}");
}

#[test]
fn bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.jsonl");
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_cotscope")).args(args).output().unwrap();
    let o = run(&["eval", "--template", "no-such", "--questions", "0..1"]);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8(o.stderr).unwrap().lines().count(), 1);
    let o = run(&["eval", "--template", "wei-8shot", "--questions", "0..5000"]);
    assert!(!o.status.success());
    assert!(String::from_utf8(o.stderr).unwrap().contains("questions 0..1318"));
    // A results file of another template is not mixed into.
    std::fs::write(&out, "{\"index\":0,\"template\":\"cot-paths\",\"prompt_hash\":\"\",\"paths\":[],\"vote\":{\"counts\":[],\"majority\":null,\"tie\":false,\"agreement\":0.0,\"voters\":0},\"gold\":\"18\",\"correct\":false,\"first_correct\":false}\n").unwrap();
    let o = run(&["eval", "--template", "wei-8shot", "--questions", "0..1", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("holds results of template cot-paths, not wei-8shot"), "{err}");
}
