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
        let st = &v["settings"];
        assert_eq!(st["model"]["id"], "tiny-bloom-gsm8k (embedded)");
        assert_eq!(st["model"]["config_hash"].as_str().map(str::len), Some(64), "{st}");
        assert_eq!((st["paths"].as_u64(), st["sampling"]["max_new_tokens"].as_u64()), (Some(2), Some(12)));
        assert_eq!((st["sampling"]["temperature"].as_f64(), st["sampling"]["seed"].as_u64()), (Some(0.0), Some(42)));
        assert_eq!(st["template"], "wei-8shot");
        assert_eq!(st["stop"][0], "\nQ:");
        assert_eq!(st["cotscope_version"], env!("CARGO_PKG_VERSION"));
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

fn cotscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cotscope")).args(args).output().unwrap()
}

#[test]
fn a_resume_with_other_settings_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.jsonl");
    let out_s = out.to_str().unwrap();
    let base = [
        "eval",
        "--template",
        "wei-8shot",
        "--questions",
        "0",
        "--paths",
        "1",
        "--max-new-tokens",
        "4",
        "--temperature",
        "0",
    ];
    let with = |extra: &[&str]| -> Output {
        // A flag given in `extra` replaces the base's (each base flag takes one value).
        let mut a: Vec<&str> = vec![base[0]];
        for pair in base[1..].chunks(2) {
            if !extra.contains(&pair[0]) {
                a.extend_from_slice(pair);
            }
        }
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--out", out_s]);
        cotscope(&a)
    };
    ok(&with(&[]));
    let before = std::fs::read_to_string(&out).unwrap();
    // An edited copy of the template, under the same name.
    let tdir = dir.path().join("templates");
    std::fs::create_dir(&tdir).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = std::fs::read_to_string(repo.join("templates/wei-8shot.yaml")).unwrap();
    std::fs::write(tdir.join("wei-8shot.yaml"), t.replace("description:", "description: edited;")).unwrap();
    let fixture = repo.join("tests/fixtures/tiny-bloom");
    let cases: [(&[&str], &str); 10] = [
        (&["--paths", "2"], "--paths was 1 there, is 2 now"),
        (&["--temperature", "0.5"], "--temperature was 0.0 there, is 0.5 now"),
        (&["--seed", "7"], "--seed was 42 there, is 7 now"),
        (&["--top-k", "5"], "--top-k was unset there, is 5 now"),
        (&["--top-p", "0.9"], "--top-p was unset there, is 0.9 now"),
        (&["--max-new-tokens", "5"], "--max-new-tokens was 4 there, is 5 now"),
        (&["--model", fixture.to_str().unwrap()], "--model was \"tiny-bloom-gsm8k (embedded)\" there"),
        (&["--dtype", "f16"], "--dtype was unset there, is \"f16\" now"),
        (&["--quantize", "q8_0"], "--quantize was unset there, is \"q8_0\" now"),
        (&["--templates-dir", tdir.to_str().unwrap()], "template wei-8shot (edited since)"),
    ];
    for (extra, want) in cases {
        // Index 0 is already done, so a wrongly accepted resume would succeed without generating.
        let o = with(extra);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "{extra:?} was accepted");
        assert!(err.contains(want) && err.contains("use another --out"), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), before, "refused runs leave the file alone");
}

#[test]
fn a_changed_model_config_is_refused_once_the_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    std::fs::create_dir(&model).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bloom");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), model.join(f)).unwrap();
    }
    let out = dir.path().join("r.jsonl");
    let args = [
        "eval",
        "--template",
        "wei-8shot",
        "--questions",
        "0",
        "--paths",
        "1",
        "--max-new-tokens",
        "2",
        "--temperature",
        "0",
    ];
    let run = |qs: &str| {
        let mut a = args.to_vec();
        a[4] = qs;
        a.extend_from_slice(&["--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        cotscope(&a)
    };
    ok(&run("0"));
    let cfg = std::fs::read_to_string(model.join("config.json")).unwrap();
    std::fs::write(model.join("config.json"), format!("{}\n\n", cfg.trim_end())).unwrap();
    let o = run("0..2");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the model's config.json was"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
}

#[test]
fn an_out_directory_keeps_one_file_per_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = |temp: &str| {
        cotscope(&[
            "eval",
            "--template",
            "wei-8shot",
            "--questions",
            "0",
            "--paths",
            "1",
            "--max-new-tokens",
            "3",
            "--temperature",
            temp,
            "--out",
            d,
        ])
    };
    let o = run("0");
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("results of these settings: "));
    ok(&run("0.5"));
    ok(&run("0"));
    let mut files: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        assert!(f.starts_with("wei-8shot-") && f.ends_with(".jsonl"), "{f}");
        assert_eq!(lines(&dir.path().join(f)).len(), 1, "the third run resumed the first's file");
    }
}
