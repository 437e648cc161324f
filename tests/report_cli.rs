//! `cotscope report` on results files: hand-written ones in eval's format with known answers, and ones
//! `cotscope eval` writes with the embedded model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn cotscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cotscope")).args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn settings(template: &str, temperature: f64) -> Value {
    json!({
        "model": {"id": "tiny-bloom-gsm8k (embedded)", "config_hash": "", "dtype": null, "quantize": null},
        "template": template, "template_hash": format!("{template}-yaml-hash"),
        "sampling": {"temperature": temperature, "top_k": null, "top_p": null, "seed": 42, "max_new_tokens": 64},
        "paths": 3, "stop": ["\nQ:"], "cotscope_version": "0.1.1"
    })
}

/// One line as `eval` writes it: three paths; `first` is the first path's answer, `majority` the other two's.
fn line(index: usize, template: &str, first: &str, majority: &str, settings: &Value) -> String {
    let gold = "10";
    let path = |a: &str, stop: &str, failures: Value| {
        json!({"text": format!(" So {a}. The answer is {a}."), "answer": a, "answer_rule": "strict",
               "failures": failures, "stop_reason": stop, "tokens": 12})
    };
    let arith = json!([{"kind": "arithmetic_error", "start": 1, "end": 5, "detail": "2 + 2 = 5"}]);
    let paths =
        [path(first, "eos", json!([])), path(majority, "stop_string", arith), path(majority, "max_tokens", json!([]))];
    let counts = if first == majority { json!([[majority, 3]]) } else { json!([[majority, 2], [first, 1]]) };
    let agreement = if first == majority { 1.0 } else { 2.0 / 3.0 };
    json!({
        "index": index, "template": template, "prompt_hash": format!("{index:064x}"), "paths": paths,
        "vote": {"counts": counts, "majority": majority, "tie": false, "agreement": agreement, "voters": 3},
        "gold": gold, "correct": majority == gold, "first_correct": first == gold, "generation_ms": 5.0,
        "settings": settings
    })
    .to_string()
}

/// A results file over questions 0..10: majority right on `right`, first path right on `first_right`.
fn run_file(dir: &Path, template: &str, right: &[usize], first_right: &[usize], temperature: f64) -> PathBuf {
    let s = settings(template, temperature);
    let text: String = (0..10)
        .map(|q| {
            let m = if right.contains(&q) { "10" } else { "11" };
            let f = if first_right.contains(&q) { "10" } else { "12" };
            line(q, template, f, m, &s) + "\n"
        })
        .collect();
    let p = dir.join(format!("{template}.jsonl"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Run A: majority right on 0..6 (6/10), first path on 0..3 (3/10). Run B: majority right on 0, 8, 9
/// (3/10), first path on the same. So A only: 1..6 (5 questions), B only: 8, 9.
fn two_runs(dir: &Path) -> (PathBuf, PathBuf) {
    let a = run_file(dir, "wei-8shot", &[0, 1, 2, 3, 4, 5], &[0, 1, 2], 0.7);
    let b = run_file(dir, "cot-paths", &[0, 8, 9], &[0, 8, 9], 0.7);
    (a, b)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn json_has_accuracies_intervals_and_the_paired_test() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_runs(dir.path());
    let v: Value = serde_json::from_str(&ok(&cotscope(&["report", s(&a), s(&b), "--format", "json"]))).unwrap();
    let close = |x: &Value, want: f64| (x.as_f64().unwrap() - want).abs() < 1e-9;
    let (ra, rb) = (&v["runs"][0], &v["runs"][1]);
    assert_eq!((ra["label"].as_str(), ra["template"].as_str()), (Some("A"), Some("wei-8shot")));
    assert!(close(&ra["accuracy"], 0.6) && close(&rb["accuracy"], 0.3));
    // scipy 1.17.1: binomtest(6, 10).proportion_ci(method="wilson") and binomtest(3, 10)….
    assert!(close(&ra["ci_low"], 0.3126737697336583) && close(&ra["ci_high"], 0.8318196702937639), "{ra}");
    assert!(close(&rb["ci_low"], 0.10779126740630102) && close(&rb["ci_high"], 0.6032218525388546), "{rb}");
    assert!(close(&ra["first_path_accuracy"], 0.3) && close(&ra["first_path_ci_high"], 0.6032218525388546));
    // Every second path has an arithmetic error; stop reasons are a third each.
    let rate = |r: &Value, list: &str, name: &str| {
        r[list].as_array().unwrap().iter().find(|x| x["name"] == name).unwrap()["per_100_paths"].as_f64().unwrap()
    };
    assert!((rate(ra, "failures", "arithmetic_error") - 100.0 / 3.0).abs() < 1e-9);
    assert_eq!(rate(ra, "failures", "repetition"), 0.0);
    assert!((rate(rb, "stop_reasons", "max_tokens") - 100.0 / 3.0).abs() < 1e-9);
    assert_eq!(ra["mean_tokens"], 12.0);
    assert_eq!(ra["settings"]["sampling"]["temperature"], 0.7);
    let p = &v["pairs"][0];
    assert_eq!((p["a"].as_str(), p["b"].as_str()), (Some("A"), Some("B")));
    assert_eq!((p["a_only"].as_u64(), p["b_only"].as_u64(), p["both"].as_u64()), (Some(5), Some(2), Some(1)));
    // By hand: 2·(C(7,0) + C(7,1) + C(7,2))/2⁷ = 58/128.
    assert!(close(&p["mcnemar_p"], 58.0 / 128.0));
    // First path: A only 1, 2; B only 8, 9: 2·(1 + 4 + 6)/16 > 1, so 1.
    assert_eq!((p["first_path"]["a_only"].as_u64(), p["first_path"]["b_only"].as_u64()), (Some(2), Some(2)));
    assert!(close(&p["first_path"]["mcnemar_p"], 1.0));
    let q = v["questions"].as_array().unwrap();
    assert_eq!(q.len(), 10);
    assert_eq!(
        (q[5]["cells"][0]["correct"].as_bool(), q[5]["cells"][1]["correct"].as_bool()),
        (Some(true), Some(false))
    );
}

#[test]
fn text_shows_bars_intervals_and_the_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_runs(dir.path());
    let t = ok(&cotscope(&["report", s(&a), s(&b)]));
    let row = |prefix: &str, needle: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with(prefix) && l.contains(needle))
            .unwrap_or_else(|| panic!("{prefix}…{needle} in\n{t}"))
            .to_string()
    };
    // Majority vote: 60.0% in [31.3, 83.2], drawn as a bar: sure to 31%, then the interval.
    let acc = row("A wei-8shot", "60.0%");
    assert!(acc.contains("[31.3, 83.2]") && acc.contains("6/10"), "{acc}");
    assert!(acc.contains(&format!("|{}{}{}", "█".repeat(9), "▓".repeat(9), "░".repeat(7))), "{acc}");
    assert!(row("B cot-paths", "30.0%").contains("[10.8, 60.3]"));
    assert!(t.contains("settings: ") && t.contains("sampling.temperature 0.7"), "{t}");
    assert!(row("arithmetic_error", "33.3").contains("█"), "{t}");
    let pair = row("A vs B", "p = 0.453");
    assert!(pair.contains("10 questions") && pair.contains("only in A 5, only in B 2"), "{pair}");
    // The per-question table: question 5 right in A, wrong in B.
    let q5 = t.lines().find(|l| l.trim_start().starts_with("5 ")).unwrap();
    assert!(q5.contains("✓ 10 2/3") && q5.contains("✗ 11 2/3"), "{q5}");
    // ASCII only, when asked.
    let ascii = ok(&cotscope(&["report", s(&a), s(&b), "--ascii"]));
    assert!(!ascii.contains(['█', '▓', '░', '▏', '✓', '✗']), "{ascii}");
    assert!(ascii.contains(&format!("|{}{}{}", "#".repeat(9), "=".repeat(9), "-".repeat(7))), "{ascii}");
}

#[test]
fn different_settings_are_compared_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let a = run_file(dir.path(), "wei-8shot", &[0], &[0], 0.7);
    let b = run_file(dir.path(), "cot-paths", &[1], &[1], 0.0);
    let o = cotscope(&["report", s(&a), s(&b)]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("sampling.temperature 0.7 vs 0.0") && err.contains("--force"), "{err}");
    let t = ok(&cotscope(&["report", s(&a), s(&b), "--force"]));
    assert!(t.contains("settings differ (--force): sampling.temperature 0.7 vs 0.0"), "{t}");
    // Each run's settings are stated.
    assert!(t.contains("sampling.temperature 0.7") && t.contains("sampling.temperature 0.0"), "{t}");
}

#[test]
fn markdown_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_runs(dir.path());
    let md = ok(&cotscope(&["report", s(&a), s(&b), "--format", "markdown"]));
    assert!(md.contains("| A wei-8shot | 60.0% | 31.3–83.2% | 6/10 | 30.0% |"), "{md}");
    assert!(md.contains("| A vs B | 10 | 1 | 2 | 5 | 2 | 0.453 |"), "{md}");
    let csv = ok(&cotscope(&["report", s(&a), s(&b), "--format", "csv"]));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3);
    let header: Vec<&str> = rows[0].split(',').collect();
    let a_row: Vec<&str> = rows[1].splitn(header.len(), ',').collect();
    let col = |name: &str| a_row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!((col("run"), col("correct"), col("accuracy")), ("A", "6", "0.6"));
    assert!((col("ci_low").parse::<f64>().unwrap() - 0.3126737697336583).abs() < 1e-12);
    let pairs = ok(&cotscope(&["report", s(&a), s(&b), "--format", "csv", "--table", "pairs"]));
    assert!(pairs.lines().nth(1).unwrap().starts_with("A,B,10,1,2,5,2,0.453125,"), "{pairs}");
    let qs = ok(&cotscope(&["report", s(&a), s(&b), "--format", "csv", "--table", "questions"]));
    assert_eq!(qs.lines().count(), 1 + 20);
    assert!(qs.contains("5,10,A,wei-8shot,10,true,false,"), "{qs}");
}

#[test]
fn writes_atomically_and_bad_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_runs(dir.path());
    let out = dir.path().join("r.md");
    let o = cotscope(&["report", s(&a), "--format", "markdown", "--out", s(&out)]);
    assert!(ok(&o).is_empty());
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("## cotscope report: 1 run"));
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"index\": 0}\n").unwrap();
    for args in [vec!["report", s(&bad)], vec!["report", "/no/such.jsonl"], vec!["report", s(&a), "--format", "pdf"]] {
        let o = cotscope(&args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(!err.trim().is_empty(), "{args:?}");
        if args.len() == 2 {
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
    let o = cotscope(&["report", s(&bad)]);
    assert!(String::from_utf8(o.stderr).unwrap().contains("bad.jsonl:1: not an eval record"));
}

/// A browser to render with: $COTSCOPE_CHROMIUM (set by .ci/setup.d/chromium.sh), else one on PATH.
fn browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COTSCOPE_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Decodes an 8-bit RGB or RGBA PNG into RGB pixels.
fn png_rgb(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("screenshot colour type {other:?}"),
    };
    let px = buf[..info.buffer_size()].chunks(step).map(|c| [c[0], c[1], c[2]]).collect();
    (info.width, info.height, px)
}

#[test]
fn html_is_self_contained_and_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_runs(dir.path());
    let page = dir.path().join("report.html");
    ok(&cotscope(&["report", s(&a), s(&b), "--format", "html", "--out", s(&page)]));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for fetches in ["<script", "http:", "https:", "src=", "url(", "@import", "<link"] {
        assert!(!html.contains(fetches), "{fetches} in a self-contained page");
    }
    assert_eq!(html.matches("<svg ").count(), 5, "accuracy, failures, stop reasons, flips, question grid");
    assert!(html.contains("<td>60.0%</td><td>31.3–83.2%</td>"), "the accuracy table");

    let Some(chromium) = browser() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but no chromium: see .ci/setup.d/chromium.sh");
        eprintln!("skipped: no chromium installed (apt-get install chromium)");
        return;
    };
    let shot = dir.path().join("shot.png");
    let profile = dir.path().join("profile");
    let mut child = Command::new(&chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,1600")
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A guard against a browser that never returns, not a speed check.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{} did not finish within 120 s", chromium.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let (w, h, px) = png_rgb(&shot);
    assert_eq!((w, h), (1200, 1600));
    let near = |p: &[u8; 3], c: [u8; 3]| p.iter().zip(c).all(|(&x, y)| x.abs_diff(y) <= 8);
    let count = |c: [u8; 3]| px.iter().filter(|p| near(p, c)).count();
    let not_white = px.iter().filter(|p| p.iter().any(|&x| x < 240)).count();
    assert!(not_white > px.len() / 50, "the page looks blank: {not_white} of {} pixels drawn", px.len());
    // The charts drew: run A's bars (#4e79a7), run B's (#f28e2b), right (#59a14f) and wrong (#e15759) squares.
    for (name, c) in [
        ("run A", [0x4e, 0x79, 0xa7]),
        ("run B", [0xf2, 0x8e, 0x2b]),
        ("right", [0x59, 0xa1, 0x4f]),
        ("wrong", [0xe1, 0x57, 0x59]),
    ] {
        assert!(count(c) > 200, "{name} colour: {} pixels", count(c));
    }
    // To look at it: COTSCOPE_REPORT_SHOT=/tmp/shot.png cargo test --test report_cli html
    if let Some(keep) = std::env::var_os("COTSCOPE_REPORT_SHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

/// `eval`'s own summary (`--json`) and `report` agree on files `eval` wrote with the embedded model.
#[test]
fn agrees_with_eval_on_files_eval_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut summaries = Vec::new();
    for template in ["wei-8shot", "cot-paths"] {
        let out = dir.path().join(format!("{template}.jsonl"));
        let o = cotscope(&[
            "eval",
            "--template",
            template,
            "--questions",
            "0..3",
            "--paths",
            "2",
            "--max-new-tokens",
            "12",
            "--temperature",
            "0",
            "--json",
            "--out",
            s(&out),
        ]);
        summaries.push(serde_json::from_str::<Value>(ok(&o).trim()).unwrap());
        files.push(out);
    }
    let mut args = vec!["report", s(&files[0]), s(&files[1])];
    // Files that record no settings (an eval before settings were recorded) are compared only with --force.
    let first_line: Value =
        serde_json::from_str(std::fs::read_to_string(&files[0]).unwrap().lines().next().unwrap()).unwrap();
    if first_line.get("settings").is_none() {
        args.push("--force");
    }
    let t = ok(&cotscope(&args));
    assert!(t.contains("A wei-8shot") && t.contains("B cot-paths") && t.contains("A vs B: 3 questions"), "{t}");
    args.extend(["--format", "json"]);
    let v: Value = serde_json::from_str(&ok(&cotscope(&args))).unwrap();
    for (run, sum) in v["runs"].as_array().unwrap().iter().zip(&summaries) {
        assert_eq!(run["questions"], sum["questions"]);
        assert_eq!(run["paths"], sum["paths"]);
        assert_eq!(run["correct"], sum["majority_correct"]);
        assert_eq!(run["first_correct"], sum["first_correct"]);
        let q = sum["questions"].as_f64().unwrap();
        assert_eq!(run["accuracy"].as_f64().unwrap(), sum["majority_correct"].as_f64().unwrap() / q);
        let mean = sum["tokens"].as_f64().unwrap() / sum["paths"].as_f64().unwrap();
        assert!((run["mean_tokens"].as_f64().unwrap() - mean).abs() < 1e-9);
        let ci = (run["ci_low"].as_f64().unwrap(), run["ci_high"].as_f64().unwrap());
        assert!(ci.0 <= run["accuracy"].as_f64().unwrap() && run["accuracy"].as_f64().unwrap() <= ci.1, "{run}");
    }
    assert_eq!(v["pairs"][0]["questions"], 3);
}
