//! `cotscope generate` end to end: the JSON Lines contract, the golden greedy ids of the fixtures,
//! plain streaming output, stop strings and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn cotscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cotscope")).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json_lines(o: &Output) -> Vec<(String, Value)> {
    stdout(o).lines().map(|l| (l.to_string(), serde_json::from_str(l).unwrap())).collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn write_prompt(dir: &Path, name: &str, prompt: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, prompt).unwrap();
    p
}

#[test]
fn json_greedy_reproduces_the_golden_ids() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["tiny-bloom", "tiny-bloom-f16-sharded"] {
        let dir = fixture(name);
        let g: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
        for (i, case) in g["cases"].as_array().unwrap().iter().enumerate() {
            let prompt_file = write_prompt(tmp.path(), &format!("{name}-{i}.txt"), case["prompt"].as_str().unwrap());
            let out = cotscope(&[
                "generate",
                "--model",
                dir.to_str().unwrap(),
                "--prompt-file",
                prompt_file.to_str().unwrap(),
                "--max-new-tokens",
                "24",
                "--temperature",
                "0",
                "--json",
            ]);
            let lines = json_lines(&out);
            let want = ids(&case["greedy_ids"]);
            let tokens: Vec<u32> = lines
                .iter()
                .filter(|(_, v)| v["event"] == "token")
                .map(|(_, v)| v["id"].as_u64().unwrap() as u32)
                .collect();
            assert_eq!(tokens, want, "{name} case {i}: token events");
            let done: Vec<&Value> = lines.iter().filter(|(_, v)| v["event"] == "done").map(|(_, v)| v).collect();
            assert_eq!(done.len(), 1);
            assert_eq!(ids(&done[0]["token_ids"]), want, "{name} case {i}: done token_ids");
            assert_eq!(done[0]["stop_reason"], "max_tokens");
            let (_, last) = lines.last().unwrap();
            assert_eq!(last["event"], "stats");
        }
    }
}

#[test]
fn json_lines_follow_the_contract_exactly() {
    let out = cotscope(&[
        "generate",
        "--prompt",
        "Q: Tom has 5 pens and loses 2. How many pens does he have?\nA:",
        "--paths",
        "2",
        "--max-new-tokens",
        "30",
        "--temperature",
        "0.8",
        "--seed",
        "3",
        "--stop",
        " pens",
        "--json",
    ]);
    let lines = json_lines(&out);
    let mut texts = [String::new(), String::new()];
    let mut done = 0;
    for (raw, v) in &lines {
        match v["event"].as_str().unwrap() {
            "token" => {
                // Key order and names as the contract spells them.
                let path = v["path"].as_u64().unwrap();
                let prefix = format!("{{\"event\":\"token\",\"path\":{path},\"id\":{},\"text\":", v["id"]);
                assert!(raw.starts_with(&prefix), "{raw}");
                assert_eq!(v.as_object().unwrap().len(), 4);
                texts[path as usize].push_str(v["text"].as_str().unwrap());
            }
            "done" => {
                done += 1;
                let path = v["path"].as_u64().unwrap() as usize;
                assert!(raw.starts_with(&format!("{{\"event\":\"done\",\"path\":{path},\"token_ids\":[")), "{raw}");
                assert_eq!(v["text"].as_str().unwrap(), texts[path]);
                let reason = v["stop_reason"].as_str().unwrap();
                assert!(["max_tokens", "eos", "stop_string"].contains(&reason), "{reason}");
                if reason == "stop_string" {
                    assert_eq!(v["stop_string"], " pens");
                } else {
                    assert!(v.get("stop_string").is_none());
                }
                assert!(!texts[path].contains(" pens"));
                let n = v["token_ids"].as_array().unwrap().len();
                let token_events = lines.iter().filter(|(_, t)| t["event"] == "token" && t["path"] == path).count();
                assert_eq!(n, token_events);
            }
            "stats" => {
                assert!(raw.starts_with("{\"event\":\"stats\",\"prefill_ms\":"), "{raw}");
                assert!(v["decode_tok_s"].as_f64().unwrap() >= 0.0);
                // One prompt per process: nothing can come from the prefix cache.
                assert_eq!(v["cached_prompt_tokens"], 0, "{raw}");
            }
            other => panic!("unknown event {other}"),
        }
    }
    assert_eq!(done, 2);
    assert_eq!(lines.last().unwrap().1["event"], "stats");
}

#[test]
fn stop_string_reason_is_reported_in_json() {
    // Greedy on the default model mentions " pens" within 30 tokens (checked without --stop first).
    let prompt = "Q: Tom has 5 pens and loses 2. How many pens does he have?\nA:";
    let base = ["generate", "--prompt", prompt, "--max-new-tokens", "30", "--temperature", "0", "--json"];
    let free = json_lines(&cotscope(&base));
    let free_text = free.iter().find(|(_, v)| v["event"] == "done").unwrap().1["text"].as_str().unwrap().to_string();
    let at = free_text.find(" pens").expect("greedy text mentions pens");
    let mut args = base.to_vec();
    args.extend(["--stop", " pens"]);
    let lines = json_lines(&cotscope(&args));
    let done = &lines.iter().find(|(_, v)| v["event"] == "done").unwrap().1;
    assert_eq!(done["stop_reason"], "stop_string");
    assert_eq!(done["stop_string"], " pens");
    assert_eq!(done["text"].as_str().unwrap(), &free_text[..at]);
}

#[test]
fn prompt_file_is_used_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    // Trailing spaces and newline matter to the model: --prompt with the same bytes gives the same ids.
    let prompt = "Q: What is 2 + 3?\nA: \n";
    let file = write_prompt(tmp.path(), "p.txt", prompt);
    let common = ["--max-new-tokens", "12", "--temperature", "0", "--json"];
    let mut a = vec!["generate", "--prompt-file", file.to_str().unwrap()];
    a.extend(common);
    let mut b = vec!["generate", "--prompt", prompt];
    b.extend(common);
    let mut c = vec!["generate", "--prompt", prompt.trim_end()];
    c.extend(common);
    let done = |args: &[&str]| json_lines(&cotscope(args)).into_iter().find(|(_, v)| v["event"] == "done").unwrap().1;
    assert_eq!(done(&a)["token_ids"], done(&b)["token_ids"]);
    assert_ne!(done(&a)["token_ids"], done(&c)["token_ids"], "trimming would change the continuation");
}

#[test]
fn plain_output_is_the_generated_text() {
    let prompt = "Q: A farmer has 4 cows and buys 3 more. How many cows are there?\nA:";
    let json = json_lines(&cotscope(&[
        "generate",
        "--prompt",
        prompt,
        "--max-new-tokens",
        "20",
        "--temperature",
        "0",
        "--json",
    ]));
    let text = json.iter().find(|(_, v)| v["event"] == "done").unwrap().1["text"].as_str().unwrap().to_string();
    let plain = stdout(&cotscope(&["generate", "--prompt", prompt, "--max-new-tokens", "20", "--temperature", "0"]));
    assert_eq!(plain.trim_end_matches('\n'), text.trim_end_matches('\n'));
    // Several paths: one header each, in order.
    let multi = stdout(&cotscope(&[
        "generate",
        "--prompt",
        prompt,
        "--max-new-tokens",
        "10",
        "--paths",
        "3",
        "--temperature",
        "0.9",
    ]));
    let headers: Vec<&str> = multi.lines().filter(|l| l.starts_with("--- path ")).collect();
    assert_eq!(headers, vec!["--- path 0 ---", "--- path 1 ---", "--- path 2 ---"]);
}

#[test]
fn bad_input_gives_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.txt");
    let bad_utf8 = tmp.path().join("bad.txt");
    std::fs::write(&bad_utf8, [b'Q', 0xff, 0xfe]).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["generate", "--prompt-file", missing.to_str().unwrap()], "nope.txt"),
        (vec!["generate", "--prompt-file", bad_utf8.to_str().unwrap()], "not valid UTF-8"),
        (vec!["generate", "--prompt", ""], "prompt is empty"),
        (vec!["generate", "--prompt", "Q", "--paths", "0"], "paths must be between 1 and 64"),
        (vec!["generate", "--prompt", "Q", "--temperature=-1"], "temperature"),
        (vec!["generate", "--prompt", "Q", "--dtype", "f8"], "f8"),
        (vec!["generate", "--prompt", "Q", "--model", missing.to_str().unwrap()], "nope.txt"),
    ];
    for (args, want) in cases {
        let o = cotscope(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line: {err}");
        assert!(!err.contains("panicked"));
    }
    // clap rejects a missing or doubled prompt.
    assert!(!cotscope(&["generate"]).status.success());
    assert!(!cotscope(&["generate", "--prompt", "a", "--prompt-file", "b"]).status.success());
}

/// log_softmax of reference logits, in f64.
fn log_softmax(logits: &[f64]) -> Vec<f64> {
    let m = logits.iter().cloned().fold(f64::MIN, f64::max);
    let lse = m + logits.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
    logits.iter().map(|x| x - lse).collect()
}

#[test]
fn logprobs_match_log_softmax_of_the_reference_logits_on_every_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fixtures = 0;
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("golden.json").is_file() {
            continue;
        }
        fixtures += 1;
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let g: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
        for (i, case) in g["cases"].as_array().unwrap().iter().enumerate() {
            let prompt_file = write_prompt(tmp.path(), &format!("lp-{name}-{i}.txt"), case["prompt"].as_str().unwrap());
            let args = ["--max-new-tokens", "2", "--temperature", "0", "--json", "--logprobs", "5"];
            let out = cotscope(
                &[
                    &["generate", "--model", dir.to_str().unwrap(), "--prompt-file", prompt_file.to_str().unwrap()][..],
                    &args,
                ]
                .concat(),
            );
            let lines = json_lines(&out);
            let (raw, first) = lines.iter().find(|(_, v)| v["event"] == "token").unwrap();
            // The contract: the four fields, then logprob and top.
            assert!(raw.contains(",\"logprob\":") && raw.contains(",\"top\":[{\"id\":"), "{raw}");
            let reference: Vec<f64> =
                case["last_logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let want = log_softmax(&reference);
            let mut order: Vec<usize> = (0..want.len()).collect();
            order.sort_by(|&a, &b| want[b].total_cmp(&want[a]).then(a.cmp(&b)));
            let greedy = first["id"].as_u64().unwrap() as usize;
            assert_eq!(greedy, order[0], "{name} case {i}: greedy token");
            let lp = first["logprob"].as_f64().unwrap();
            assert!((lp - want[greedy]).abs() < 1e-4, "{name} case {i}: logprob {lp} vs {}", want[greedy]);
            let top = first["top"].as_array().unwrap();
            assert_eq!(top.len(), 5);
            for (rank, t) in top.iter().enumerate() {
                let id = t["id"].as_u64().unwrap() as usize;
                assert_eq!(id, order[rank], "{name} case {i}: top {rank}");
                let got = t["logprob"].as_f64().unwrap();
                assert!((got - want[id]).abs() < 1e-4, "{name} case {i}: top {rank}: {got} vs {}", want[id]);
                assert!(t["text"].is_string());
            }
        }
    }
    assert_eq!(fixtures, 4, "every fixture with a golden.json is checked");
}

#[test]
fn token_lines_carry_logprob_fields_only_when_asked() {
    let prompt = "Q: Tom has 3 apples and buys 4 more. How many apples does he have?\nA:";
    let base = ["generate", "--prompt", prompt, "--max-new-tokens", "4", "--temperature", "0", "--json"];
    for (_, v) in json_lines(&cotscope(&base)).iter().filter(|(_, v)| v["event"] == "token") {
        assert!(v.get("logprob").is_none() && v.get("top").is_none() && v.get("forced").is_none(), "{v}");
    }
    let with = [&base[..], &["--logprobs", "0"]].concat();
    for (_, v) in json_lines(&cotscope(&with)).iter().filter(|(_, v)| v["event"] == "token") {
        assert!(v["logprob"].as_f64().unwrap() <= 0.0);
        assert_eq!(v["top"].as_array().unwrap().len(), 0);
    }
}

/// f16 weights in panels (`gemv::F16Panels`, where AVX-512 runs: the layers and the tied
/// embeddings/LM head) decode the same tokens as in rows (`COTSCOPE_F16_PANELS=0`), greedy and
/// sampled, several paths in one batch. Elsewhere both runs keep rows.
#[test]
fn f16_panels_decode_the_rows_tokens() {
    let dir = fixture("tiny-bloom");
    let run = |panels: &str, paths: &str, temperature: &str| -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_cotscope"))
            .env("COTSCOPE_F16_PANELS", panels)
            .args(["generate", "--model", dir.to_str().unwrap(), "--dtype", "f16", "--json"])
            .args(["--prompt", "Q: Tom has 3 apples and buys 4 more. How many apples does he have?\nA:"])
            .args(["--paths", paths, "--temperature", temperature, "--max-new-tokens", "40", "--seed", "7"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Every event but the timings.
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("\"stats\""))
            .map(str::to_string)
            .collect();
        assert!(lines.iter().filter(|l| l.contains("\"done\"")).count() == paths.parse::<usize>().unwrap());
        lines
    };
    for (paths, temperature) in [("1", "0"), ("5", "0.9")] {
        let (panels, rows) = (run("1", paths, temperature), run("0", paths, temperature));
        assert!(panels.len() > 40, "{paths} paths: {} events", panels.len());
        assert_eq!(panels, rows, "{paths} paths at temperature {temperature}");
    }
}
