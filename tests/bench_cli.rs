//! `cotscope bench` end to end on the tiny fixture: the JSON report has every figure, for every path
//! count asked, in every weight format; bad flags are one-line errors. (No timing is asserted.)

use std::process::Command;

use serde_json::Value;

fn bench(extra: &[&str]) -> std::process::Output {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-bloom");
    Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args([
            "bench",
            "--model",
            dir,
            "--prompt-tokens",
            "12",
            "--new-tokens",
            "3",
            "--paths",
            "1,3",
            "--threads",
            "1",
            "--bandwidth-mib",
            "8",
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn json_report_has_every_figure_in_every_format() {
    for (extra, format) in [
        (&[][..], "f32"),
        (&["--dtype", "f16"][..], "f16"),
        (&["--quantize", "q8_0"][..], "q8_0"),
        (&["--quantize", "q4k"][..], "q4k"),
    ] {
        let out = bench(extra);
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["format"], format);
        assert_eq!(r["threads"], 1);
        assert_eq!(r["prompt_tokens"], 12);
        for key in [
            "load_s",
            "prefill_s",
            "weight_bytes",
            "decode_bytes_per_token",
            "peak_rss_bytes",
            "load_peak_rss_bytes",
            "read_bandwidth_gb_s",
            "bound_tok_s",
        ] {
            assert!(r[key].as_f64().unwrap() > 0.0, "{format}: {key} in {r}");
        }
        let runs = r["runs"].as_array().unwrap();
        assert_eq!(runs.iter().map(|x| x["paths"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 3]);
        assert!(runs
            .iter()
            .all(|x| x["decode_tok_s"].as_f64().unwrap() > 0.0 && x["fraction_of_bound"].as_f64().unwrap() > 0.0));
        // One compute thread: the process's CPU time is at most its wall time, whatever the host's
        // load, give or take the readings' own microseconds (a prefill here takes ~0.2 ms); a clock
        // tick of 10 ms over a millisecond's run had read 2.9 cores.
        let new_tokens = r["new_tokens"].as_f64().unwrap();
        for x in runs {
            let decode_s = x["step_ms"].as_f64().unwrap() * new_tokens / 1e3;
            for (key, wall) in [("prefill_cpu_util", x["prefill_s"].as_f64().unwrap()), ("decode_cpu_util", decode_s)] {
                let u = x[key].as_f64().unwrap();
                assert!(
                    0.0 < u && u * wall <= 1.05 * wall + 1e-4,
                    "{format}: {key} {u} over {wall} s with one thread: {x}"
                );
            }
        }
        // The fastest step is no slower than the median one, nor than the mean (`step_ms`, which
        // also counts picking the next tokens).
        for x in runs {
            let (best, median, mean) = (
                x["step_ms_best"].as_f64().unwrap(),
                x["step_ms_median"].as_f64().unwrap(),
                x["step_ms"].as_f64().unwrap(),
            );
            assert!(0.0 < best && best <= median && best <= mean, "{format}: {x}");
        }
        // The load's peak is part of the whole run's, and holds at least the weights.
        let (load_peak, peak) = (r["load_peak_rss_bytes"].as_u64().unwrap(), r["peak_rss_bytes"].as_u64().unwrap());
        assert!(load_peak <= peak && load_peak >= r["weight_bytes"].as_u64().unwrap(), "{format}: {r}");
        // The ratio, to JSON's float round trip (its last bit may differ).
        let ratio = load_peak as f64 / r["weight_bytes"].as_f64().unwrap();
        assert!((r["load_peak_rss_over_weights"].as_f64().unwrap() - ratio).abs() <= 1e-9 * ratio, "{format}: {r}");
        // Keys and values are f32 in every format: 2 layers × (k, v) × 64 wide × 4 bytes per position.
        assert_eq!(r["kv_bytes_per_token"], 1024, "{format}");
        // The test model's weights (kilobytes) stay in any last-level cache sysfs reports.
        if std::path::Path::new("/sys/devices/system/cpu/cpu0/cache/index0/size").exists() {
            assert_eq!(r["bound_applies"], false, "{format}: {r}");
        }
        // The bound uses the higher of the two bandwidth readings.
        let samples: Vec<f64> =
            r["read_bandwidth_samples_gb_s"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(samples.len(), 2);
        assert_eq!(r["read_bandwidth_gb_s"].as_f64().unwrap(), samples[0].max(samples[1]));
        // ... which is the faster reader's best: the plain loop's or the streaming one's.
        let by = &r["read_bandwidth_by_reader_gb_s"];
        let (plain, streaming) = (by["plain"].as_f64().unwrap(), by["streaming"].as_f64().unwrap());
        assert!(plain > 0.0 && streaming > 0.0, "{format}: {by}");
        assert_eq!(r["read_bandwidth_gb_s"].as_f64().unwrap(), plain.max(streaming), "{format}: {r}");
        // The median pass reported is that faster reader's, no faster than its best; so each run's
        // fraction of it is the fraction of the bound scaled by best over median.
        let median = r["read_bandwidth_median_gb_s"].as_f64().unwrap();
        let reader_median = by[if streaming >= plain { "streaming_median" } else { "plain_median" }].as_f64().unwrap();
        assert_eq!(median, reader_median, "{format}: {r}");
        assert!(0.0 < median && median <= plain.max(streaming), "{format}: {r}");
        for x in runs {
            let (f, fm) =
                (x["fraction_of_bound"].as_f64().unwrap(), x["fraction_of_median_bandwidth"].as_f64().unwrap());
            let want = f * plain.max(streaming) / median;
            assert!(fm >= f && (fm - want).abs() <= 1e-9 * want, "{format}: {x}");
        }
        // A step reads the 12-token prompt once and each row's own positions, 2 on average over 3
        // new tokens: 14 positions for one path, 18 for three.
        let kv: Vec<u64> = runs.iter().map(|x| x["kv_bytes_per_step"].as_u64().unwrap()).collect();
        assert_eq!(kv, vec![14 * 1024, 18 * 1024], "{format}");
    }
}

#[test]
fn bad_flags_are_one_line_errors() {
    for (extra, needle) in
        [(&["--quantize", "q3"][..], "q3"), (&["--dtype", "f8"][..], "f8"), (&["--paths", "0"][..], "--paths")]
    {
        let out = bench(extra);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cotscope")).args(["bench", "--shape", "bloom-9b"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bloom-9b"));
}

fn question_switch(extra: &[&str]) -> std::process::Output {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-bloom");
    Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args(["bench", "--scenario", "question-switch", "--model", dir, "--threads", "1", "--json"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn question_switch_reports_cold_and_warm_first_tokens_and_cached_tokens() {
    let out = question_switch(&["--template", "wei-8shot", "--questions", "0,1,2,3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["scenario"], "question-switch");
    assert_eq!(r["template"], "wei-8shot");
    assert!(r["ttft_cold_ms"].as_f64().unwrap() > 0.0);
    assert!(r["ttft_warm_ms"].as_f64().unwrap() > 0.0);
    let per: Vec<&Value> = r["per_question"].as_array().unwrap().iter().collect();
    assert_eq!(per.iter().map(|q| q["question"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(per[0]["cached_prompt_tokens"], 0, "nothing is cached before the first question");
    for q in &per[1..] {
        let (cached, total) = (q["cached_prompt_tokens"].as_u64().unwrap(), q["prompt_tokens"].as_u64().unwrap());
        // The eight exemplars are most of the prompt; the question's own tokens are not cached.
        assert!(cached > total / 2 && cached < total, "{q}");
    }
    let cached = r["cached_prompt_tokens"].as_u64().unwrap();
    assert!(per[1..].iter().any(|q| q["cached_prompt_tokens"].as_u64().unwrap() == cached), "median of the warm ones");

    let off = question_switch(&["--template", "wei-8shot", "--questions", "0,1", "--prefix-cache-mb", "0"]);
    assert!(off.status.success(), "{}", String::from_utf8_lossy(&off.stderr));
    let r: Value = serde_json::from_slice(&off.stdout).unwrap();
    assert_eq!(r["cached_prompt_tokens"], 0);
    assert_eq!(r["prefix_cache_mb"], 0);
}

#[test]
fn question_switch_needs_a_template_and_valid_questions() {
    for (extra, needle) in [
        (&[][..], "--template"),
        (&["--template", "wei-8shot", "--questions", "9999"][..], "--questions"),
        (&["--template", "nope"][..], "nope"),
    ] {
        let out = question_switch(extra);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn eval_scenario_reports_paths_per_minute_per_batch_size() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-bloom");
    let out = Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args(["bench", "--scenario", "eval", "--model", dir, "--template", "wei-8shot", "--questions", "0..3"])
        .args(["--paths", "2", "--new-tokens", "4", "--batch", "1,4", "--threads", "1", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["scenario"], "eval");
    assert_eq!((r["questions"].as_u64(), r["paths"].as_u64(), r["new_tokens"].as_u64()), (Some(3), Some(2), Some(4)));
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|x| x["batch"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 4]);
    for run in runs {
        assert_eq!(run["paths"], 6, "{run}");
        let tokens = run["generated_tokens"].as_u64().unwrap();
        assert!(tokens > 0 && tokens <= 6 * 4, "{run}");
        assert!(run["eval_paths_per_min"].as_f64().unwrap() > 0.0);
    }
    // Both batch sizes generate the same tokens (greedy: the same text).
    assert_eq!(runs[0]["generated_tokens"], runs[1]["generated_tokens"]);
    let bad = Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args(["bench", "--scenario", "eval", "--model", dir, "--template", "wei-8shot", "--paths", "1,2"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--paths"));
}
