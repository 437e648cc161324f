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
