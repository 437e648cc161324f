//! `cotscope prompt`: byte-exact renders, errors, and a templates directory with a broken file.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cotscope"))
}

const NAMES: [&str; 5] = ["wei-8shot", "annot1-4shot", "annot2-4shot", "cot-paths", "directions"];

#[test]
fn renders_the_reference_prompts_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in NAMES {
        // Run from elsewhere: the default templates directory and GSM8K must not depend on the cwd.
        let out = bin()
            .current_dir(std::env::temp_dir())
            .args(["prompt", "--template", name, "--question", "1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let want = std::fs::read(root.join(format!("tests/fixtures/prompts/{name}.txt"))).unwrap();
        assert_eq!(out.stdout, want, "{name}");
    }
}

#[test]
fn question_zero_is_janets_ducks() {
    let out = bin().args(["prompt", "--template", "wei-8shot", "--question", "0"]).output().unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.ends_with("Q: Janet\u{2019}s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?\nA:"));
}

#[test]
fn unknown_template_and_question_out_of_range() {
    for args in [
        vec!["prompt", "--template", "no-such", "--question", "1"],
        vec!["prompt", "--template", "wei-8shot", "--question", "1319"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let out = bin().args(["prompt", "--template", "no-such", "--question", "1"]).output().unwrap();
    assert!(String::from_utf8(out.stderr).unwrap().contains("wei-8shot"), "lists what is available");
    let out = bin().args(["prompt", "--template", "wei-8shot", "--question", "1319"]).output().unwrap();
    assert!(String::from_utf8(out.stderr).unwrap().contains("out of range"));
}

#[test]
fn templates_dir_with_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("templates/cot-paths.yaml"), dir.path().join("cot-paths.yaml")).unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "name: broken\nexemplars: [\n").unwrap();
    let d = dir.path().to_str().unwrap();
    let out =
        bin().args(["prompt", "--template", "cot-paths", "--question", "1", "--templates-dir", d]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, std::fs::read(root.join("tests/fixtures/prompts/cot-paths.txt")).unwrap());
    let out = bin().args(["prompt", "--template", "broken", "--question", "1", "--templates-dir", d]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("broken.yaml:"), "names the file that failed: {err}");
}
