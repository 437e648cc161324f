//! `cotscope eval --select`: every strategy scored on the same paths of the embedded model, recorded per
//! question in the JSON lines and summed up with Wilson intervals.

use std::path::Path;
use std::process::{Command, Output};

use cotscope::lab::stats;
use serde_json::Value;

const STRATEGIES: [&str; 4] = ["majority", "weighted", "verified", "judge"];

fn eval(out: &Path, questions: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args(["eval", "--template", "wei-8shot", "--questions", questions, "--paths", "3"])
        .args(["--max-new-tokens", "40", "--temperature", "0.7", "--seed", "1", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn records(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn selection<'a>(r: &'a Value, strategy: &str) -> &'a Value {
    r["select"].as_array().unwrap().iter().find(|s| s["strategy"] == strategy).unwrap()
}

#[test]
fn every_strategy_is_recorded_per_question_and_summed_up_with_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sel.jsonl");
    let o = eval(&out, "0..4", &["--select", "majority,weighted,verified,judge", "--calculator", "--json"]);
    let summary: Value = serde_json::from_str(ok(&o).trim()).unwrap();
    let recs = records(&out);
    assert_eq!(recs.len(), 4);

    for r in &recs {
        let names: Vec<&str> =
            r["select"].as_array().unwrap().iter().map(|s| s["strategy"].as_str().unwrap()).collect();
        assert_eq!(names, STRATEGIES);
        let answers: Vec<&Value> = r["paths"].as_array().unwrap().iter().map(|p| &p["answer"]).collect();
        // Every path carries its log-probability, so weighted never falls back.
        assert!(r["paths"].as_array().unwrap().iter().all(|p| p["logprob"].as_f64().is_some_and(|l| l <= 0.0)), "{r}");
        assert!(selection(r, "weighted").get("fallback").is_none(), "{r}");
        // Majority is the vote; every strategy picks an answer some path gave (or none).
        assert_eq!(selection(r, "majority")["answer"], r["vote"]["majority"]);
        assert_eq!(selection(r, "majority")["correct"], r["correct"]);
        for s in STRATEGIES {
            let a = &selection(r, s)["answer"];
            assert!(a.is_null() || r["vote"]["counts"].as_array().unwrap().iter().any(|c| c[0] == *a), "{s}: {a}");
        }
        // The judge's label probabilities sum to 1 and it takes the most likely label's answer.
        let judge = selection(r, "judge");
        if let Some(scores) = judge.get("scores").and_then(Value::as_array) {
            let total: f64 = scores.iter().map(|s| s["p"].as_f64().unwrap()).sum();
            assert!((total - 1.0).abs() < 1e-9, "{judge}");
            let best =
                scores.iter().max_by(|a, b| a["p"].as_f64().unwrap().total_cmp(&b["p"].as_f64().unwrap())).unwrap();
            assert_eq!(judge["answer"], best["answer"]);
            assert!(scores.iter().all(|s| answers.contains(&&s["answer"])));
        }
    }

    let rows = summary["strategies"].as_array().unwrap();
    assert_eq!(rows.iter().map(|s| s["strategy"].as_str().unwrap()).collect::<Vec<_>>(), STRATEGIES);
    for row in rows {
        let s = row["strategy"].as_str().unwrap();
        let right = |r: &Value, s: &str| selection(r, s)["correct"].as_bool().unwrap();
        let correct = recs.iter().filter(|r| right(r, s)).count();
        assert_eq!(row["questions"], 4);
        assert_eq!(row["correct"], correct);
        assert_eq!(row["accuracy"].as_f64().unwrap(), correct as f64 / 4.0);
        let w = stats::wilson(correct, 4);
        assert_eq!(
            (row["wilson95"]["low"].as_f64().unwrap(), row["wilson95"]["high"].as_f64().unwrap()),
            (w.low, w.high)
        );
        let gained = recs.iter().filter(|r| right(r, s) && !right(r, "majority")).count();
        let lost = recs.iter().filter(|r| !right(r, s) && right(r, "majority")).count();
        assert_eq!(
            (row["right_where_majority_wrong"].as_u64(), row["wrong_where_majority_right"].as_u64()),
            (Some(gained as u64), Some(lost as u64))
        );
        assert_eq!(row["mcnemar_p"].as_f64().unwrap(), stats::mcnemar_exact(gained, lost));
    }
    assert_eq!(summary["questions"], 4);

    // The same file again (same settings, the calculator included): nothing is generated, the text
    // summary lists every strategy.
    let text = ok(&eval(&out, "0..4", &["--select", "majority,weighted,verified,judge", "--calculator"]));
    assert!(text.contains("selection (95% Wilson interval"), "{text}");
    for s in STRATEGIES {
        assert!(text.lines().any(|l| l.trim_start().starts_with(s) && l.contains("%  [")), "{s} in {text}");
    }
    assert!(text.contains("ties go to the answer given first"), "{text}");
    assert_eq!(records(&out), recs, "the results file is untouched");
}

#[test]
fn default_is_majority_and_bad_strategies_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.jsonl");
    let summary: Value = serde_json::from_str(ok(&eval(&out, "0..1", &["--json"])).trim()).unwrap();
    let rows = summary["strategies"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["strategy"], "majority");
    assert_eq!(records(&out)[0]["select"].as_array().unwrap().len(), 1);

    let o = eval(&dir.path().join("x.jsonl"), "0..1", &["--select", "majority,oracle"]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("\"oracle\""), "{err}");
    assert!(!dir.path().join("x.jsonl").exists(), "nothing is created before the flags are checked");
}
