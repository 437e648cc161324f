//! `cotscope analyze`: the JSON contract, the report, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cotscope"))
}

fn prompt_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prompts").join(format!("{name}.txt"))
}

fn analyze(text: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.txt");
    std::fs::write(&t, text).unwrap();
    bin().arg("analyze").arg("--text-file").arg(&t).args(extra).output().unwrap()
}

fn json(text: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = extra.to_vec();
    args.push("--json");
    let out = analyze(text, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(s.lines().count(), 1, "exactly one JSON object: {s}");
    serde_json::from_str(&s).unwrap()
}

#[test]
fn correct_strict_answer_exact_json() {
    let out = analyze(" She has 16 - 3 - 4 = 9 eggs. 9 * 2 = $18. The answer is $18.", &["--gold", "18", "--json"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"answer\":\"18\",\"answer_rule\":\"strict\",\"correct\":true,\"failures\":[]}\n"
    );
}

#[test]
fn default_model_output_against_its_prompt() {
    // tiny-bloom-gsm8k's greedy continuation of the annot2-4shot prompt for question 1.
    let text = " (There are 2 bolts and 2 bolts)\nA: The robts of the bolts are 2 + 2 = 6 bolts. The robts of the bolts are 2 +";
    let p = prompt_fixture("annot2-4shot");
    let v = json(text, &["--prompt-file", p.to_str().unwrap(), "--gold", "3"]);
    let obj = v.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4);
    for k in ["answer", "answer_rule", "correct", "failures"] {
        assert!(obj.contains_key(k), "{k}");
    }
    assert_eq!(v["answer"], serde_json::Value::Null, "cut off mid-sentence: no answer");
    assert_eq!(v["answer_rule"], "none");
    assert_eq!(v["correct"], false);
    let fs = v["failures"].as_array().unwrap();
    let kinds: Vec<&str> = fs.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["missing_answer_marker", "no_answer", "arithmetic_error", "repetition"]);
    for f in fs {
        let (s, e) = (f["start"].as_u64().unwrap() as usize, f["end"].as_u64().unwrap() as usize);
        assert!(s <= e && e <= text.len());
        assert_eq!(f.as_object().unwrap().len(), 4, "kind, start, end, detail");
    }
    let arith = &fs[2];
    assert_eq!(&text[arith["start"].as_u64().unwrap() as usize..arith["end"].as_u64().unwrap() as usize], "2 + 2 = 6");
    assert_eq!(arith["detail"], "2 + 2 = 4, not 6");
}

#[test]
fn prompt_ending_with_answer_marker_needs_none() {
    let p = prompt_fixture("wei-8shot");
    let v = json(
        " It takes 2 / 2 = 1 bolt. 2 + 1 = 3. The answer is 3.",
        &["--prompt-file", p.to_str().unwrap(), "--gold", "3"],
    );
    assert_eq!(v["failures"], serde_json::json!([]));
    assert_eq!(v["correct"], true);
    // The same text after a prompt that leaves "A:" to the model.
    let p = prompt_fixture("annot1-4shot");
    let v = json(" It takes 2 / 2 = 1 bolt. 2 + 1 = 3. The answer is 3.", &["--prompt-file", p.to_str().unwrap()]);
    assert_eq!(v["failures"][0]["kind"], "missing_answer_marker");
    assert_eq!(v["correct"], serde_json::Value::Null);
}

#[test]
fn question_echo_needs_the_prompt() {
    let p = prompt_fixture("wei-8shot");
    let text = " A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in total does it take? The answer is 2.";
    let v = json(text, &["--prompt-file", p.to_str().unwrap()]);
    assert_eq!(v["failures"][0]["kind"], "question_echo");
    let v = json(text, &[]);
    assert_eq!(v["failures"], serde_json::json!([]), "without a prompt there is no question to echo");
}

#[test]
fn no_answer_and_nulls() {
    let v = json(" The robts of the bolts are many.\nQ: Tom has 3 cats.", &[]);
    assert_eq!(v["answer"], serde_json::Value::Null);
    assert_eq!(v["answer_rule"], "none");
    assert_eq!(v["correct"], serde_json::Value::Null);
    let kinds: Vec<&str> = v["failures"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["no_answer", "runaway_question"]);
}

#[test]
fn readable_report() {
    let out = analyze(" 2 x 2 = 8 bolts. The answer is 8.", &["--gold", "3"]);
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("answer:   8 (strict rule)"), "{s}");
    assert!(s.contains("correct:  no (gold 3)"), "{s}");
    assert!(s.contains("arithmetic_error") && s.contains("2 x 2 = 4, not 8") && s.contains("\"2 x 2 = 8\""), "{s}");
}

#[test]
fn bad_input_is_one_line_and_nonzero() {
    let out = bin().args(["analyze", "--text-file", "/nonexistent/t.txt", "--json"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/t.txt"), "{err}");
    let out = analyze("The answer is 3.", &["--gold", "three"]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("--gold"));
    let out = analyze("x", &["--prompt-file", "/nonexistent/p.txt"]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("/nonexistent/p.txt"));
}

#[test]
fn corpus_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.jsonl");
    let lines = [
        r#"{"id":"a","text":" 2 + 2 = 5. The answer is 5.","kinds":["arithmetic_error"],"answer":"5"}"#,
        r#"{"id":"b","text":" It takes 2 bolts. Then he bought 5 glasses","kinds":["no_answer","repetition"],"answer":null}"#,
        r#"{"id":"c","text":" 2 + 2 = 4. So 4 bolts.","kinds":[],"answer":"4"}"#,
    ];
    std::fs::write(&f, lines.join("\n")).unwrap();
    let out = bin().args(["analyze", "--corpus"]).arg(&f).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("(3 items)"), "{s}");
    assert!(s.contains("kind                   labelled  flagged  agreed precision  recall"), "{s}");
    assert!(s.contains("arithmetic_error              1        1       1      1.00    1.00"), "{s}");
    assert!(s.contains("repetition                    1        0       0         -    0.00"), "{s}");
    assert!(s.contains("no_answer                     1        1       1      1.00    1.00"), "{s}");
    assert!(s.contains("answer: the reader's on 3 of 3 items (1.00)"), "{s}");

    let out = bin().args(["analyze", "--json", "--corpus"]).arg(&f).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"], 3);
    assert_eq!(v["answers_agreed"], 3);
    let kinds = v["kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 6);
    let rep = kinds.iter().find(|k| k["kind"] == "repetition").unwrap();
    assert_eq!(
        rep,
        &serde_json::json!({"kind":"repetition","labelled":1,"flagged":0,"agreed":0,"precision":null,"recall":0.0})
    );
    assert_eq!(v["disagreements"], serde_json::json!([{"id":"b","kind":"repetition","reader":true,"detector":false}]));

    // The shipped BLOOM corpus goes through the same command.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/bloom_gsm8k.jsonl");
    let out = bin().args(["analyze", "--corpus"]).arg(&shipped).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("items)") && s.lines().any(|l| l.starts_with("question_echo")), "{s}");
}

#[test]
fn corpus_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.jsonl");
    std::fs::write(&f, "{\"text\":\"x\",\"kinds\":[],\"answer\":null}\n{\"text\":\"y\",\"kinds\":[\"loop\"]}\n")
        .unwrap();
    let out = bin().args(["analyze", "--corpus"]).arg(&f).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("corpus line 2") && err.contains("loop"), "{err}");
    let out = bin().args(["analyze", "--corpus", "/nonexistent/c.jsonl"]).output().unwrap();
    assert!(String::from_utf8(out.stderr).unwrap().contains("/nonexistent/c.jsonl"));
    let out = bin().args(["analyze", "--corpus", "/x.jsonl", "--text-file", "/y.txt"]).output().unwrap();
    assert!(!out.status.success(), "one or the other");
    let out = bin().args(["analyze"]).output().unwrap();
    assert!(!out.status.success());
}
