//! Bad model directories give one-line errors that name the file and what is wrong, never a panic.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use cotscope::model::{self, LoadOptions};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bloom")
}

/// A copy of the f32 fixture in a temporary directory, to damage.
fn copy_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture().join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn load_err(dir: &Path) -> String {
    let e = match model::load(Some(dir.to_str().unwrap()), &LoadOptions::default()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    };
    eprintln!("error: {e}");
    assert!(!e.contains('\n'), "error is one line: {e}");
    e
}

#[test]
fn missing_config() {
    let d = copy_fixture();
    std::fs::remove_file(d.path().join("config.json")).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("config.json") && e.contains("not found"), "{e}");
}

#[test]
fn corrupt_config() {
    let d = copy_fixture();
    std::fs::write(d.path().join("config.json"), "{\"model_type\": \"bloom\", ").unwrap();
    let e = load_err(d.path());
    assert!(e.contains("config.json") && e.contains("invalid config"), "{e}");
}

#[test]
fn not_a_bloom_config() {
    let d = copy_fixture();
    let text = std::fs::read_to_string(d.path().join("config.json")).unwrap().replace("\"bloom\"", "\"gpt2\"");
    std::fs::write(d.path().join("config.json"), text).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("config.json") && e.contains("model_type is 'gpt2', not 'bloom'"), "{e}");
}

#[test]
fn missing_and_corrupt_tokenizer() {
    let d = copy_fixture();
    std::fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("tokenizer.json") && e.contains("not found"), "{e}");
    std::fs::write(d.path().join("tokenizer.json"), "{ not json").unwrap();
    let e = load_err(d.path());
    assert!(e.contains("tokenizer.json") && e.contains("invalid tokenizer"), "{e}");
}

#[test]
fn truncated_safetensors() {
    let d = copy_fixture();
    let p = d.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("model.safetensors") && e.contains("not a valid safetensors file"), "{e}");
}

#[test]
fn no_weights_at_all() {
    let d = copy_fixture();
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("no weights found"), "{e}");
}

/// Rewrites the fixture's weights with `edit` applied to the tensor map.
fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut std::collections::HashMap<String, Tensor>)) {
    let p = dir.join("model.safetensors");
    let mut ts = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    edit(&mut ts);
    candle_core::safetensors::save(&ts, &p).unwrap();
}

#[test]
fn tensor_with_wrong_shape() {
    let d = copy_fixture();
    rewrite_weights(d.path(), |ts| {
        ts.insert(
            "transformer.h.1.mlp.dense_h_to_4h.weight".into(),
            Tensor::zeros((255, 64), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = load_err(d.path());
    assert!(e.contains("model.safetensors") && e.contains("transformer.h.1.mlp.dense_h_to_4h.weight"), "{e}");
    assert!(e.contains("shape"), "{e}");
}

#[test]
fn missing_tensor() {
    let d = copy_fixture();
    rewrite_weights(d.path(), |ts| {
        ts.remove("transformer.h.1.post_attention_layernorm.bias");
    });
    let e = load_err(d.path());
    assert!(e.contains("model.safetensors") && e.contains("transformer.h.1.post_attention_layernorm.bias"), "{e}");
}

#[test]
fn missing_shard() {
    let d = tempfile::tempdir().unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bloom-f16-sharded");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, d.path().join(f.file_name().unwrap())).unwrap();
    }
    std::fs::remove_file(d.path().join("model-00002-of-00003.safetensors")).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("model-00002-of-00003.safetensors") && e.contains("missing"), "{e}");
}

#[test]
fn nonexistent_directory_and_unknown_dtype() {
    let e = load_err(Path::new("./no/such/model/dir"));
    assert!(e.contains("./no/such/model/dir") && e.contains("does not exist"), "{e}");
    let e = model::parse_dtype("f8").unwrap_err().to_string();
    assert!(e.contains("f8"), "{e}");
}

/// A hub cache holding the f32 fixture as `models--{repo}/snapshots/{rev}/` with `refs/main`, as
/// huggingface_hub writes it.
fn cache_with_fixture_as(repo: &str, rev: &str) -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join(format!("models--{repo}"));
    let snap = repo.join("snapshots").join(rev);
    std::fs::create_dir_all(&snap).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture().join(f), snap.join(f)).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), rev).unwrap();
    cache
}

#[test]
fn hub_id_resolves_from_a_laid_out_cache() {
    let cache = cache_with_fixture_as("bigscience--tiny-bloom", "0123abcd");
    let dir = model::hub::resolve_cached("bigscience/tiny-bloom", cache.path()).unwrap();
    let m = model::load_dir(&dir, "bigscience/tiny-bloom", &LoadOptions::default()).unwrap();
    assert_eq!(m.info.id, "bigscience/tiny-bloom");
    assert_eq!(m.info.vocab_size, 4096);
}

/// Runs `cotscope generate` with a private, empty hub cache and an endpoint that refuses connections.
fn generate_offline(model: &str, cache: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cotscope"))
        .args(["generate", "--model", model, "--prompt", "Q: 1 + 1?", "--max-new-tokens", "2", "--temperature", "0"])
        .env("HF_HUB_CACHE", cache)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap()
}

#[test]
fn cli_unknown_hub_id_fails_with_one_line_naming_the_id() {
    let cache = tempfile::tempdir().unwrap();
    let out = generate_offline("nosuch-org/nosuch-bloom", cache.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].contains("nosuch-org/nosuch-bloom") && lines[0].contains("not in the Hugging Face cache"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn cli_hub_id_in_the_cache_runs_without_network() {
    let cache = cache_with_fixture_as("bigscience--tiny-bloom", "rev1");
    let out = generate_offline("bigscience/tiny-bloom", cache.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
