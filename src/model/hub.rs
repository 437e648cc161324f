//! Hugging Face hub ids: resolved from the local cache first, downloaded (with a progress bar) only
//! when not cached.

use std::path::{Path, PathBuf};

use super::error::LoadError;

/// The hub cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
}

/// `org/name` or `name`, made of the characters hub ids use.
pub fn looks_like_hub_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    !s.is_empty()
        && parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// The snapshot directory of `id` in `cache`, if it holds a `config.json`: the revision named by
/// `refs/main`, else the most recently modified snapshot.
pub fn resolve_cached(id: &str, cache: &Path) -> Option<PathBuf> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    let by_ref = std::fs::read_to_string(repo.join("refs").join("main"))
        .ok()
        .map(|rev| snapshots.join(rev.trim()))
        .filter(|p| p.join("config.json").is_file());
    by_ref.or_else(|| {
        let entries = std::fs::read_dir(&snapshots).ok()?;
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("config.json").is_file())
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    })
}

/// Downloads `id` into the cache and returns its snapshot directory. Honours `HF_ENDPOINT`, and
/// refuses under `HF_HUB_OFFLINE=1`.
pub fn download(id: &str) -> Result<PathBuf, LoadError> {
    let cache = cache_dir();
    let err = |msg: String| LoadError::Hub { id: id.to_string(), msg };
    if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1") {
        return Err(err(format!("not in the Hugging Face cache ({}) and HF_HUB_OFFLINE=1", cache.display())));
    }
    let not_cached = |e: &dyn std::fmt::Display| {
        err(format!(
            "not in the Hugging Face cache ({}) and could not be downloaded: {}",
            cache.display(),
            super::error::first_line(&e.to_string())
        ))
    };
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_cache_dir(cache.clone())
        .with_progress(true)
        .with_retries(0)
        .build()
        .map_err(|e| not_cached(&e))?;
    let repo = api.model(id.to_string());
    let config = repo.get("config.json").map_err(|e| not_cached(&e))?;
    repo.get("tokenizer.json").map_err(|e| not_cached(&e))?;
    if repo.get("model.safetensors").is_err() {
        if let Ok(index) = repo.get("model.safetensors.index.json") {
            let text = std::fs::read_to_string(&index).map_err(|e| not_cached(&e))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| not_cached(&e))?;
            let mut shards: Vec<String> = v["weight_map"]
                .as_object()
                .map(|m| m.values().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            for s in shards {
                repo.get(&s).map_err(|e| not_cached(&e))?;
            }
        } else {
            repo.get("pytorch_model.bin").map_err(|e| not_cached(&e))?;
        }
    }
    config.parent().map(Path::to_path_buf).ok_or_else(|| err("download left no snapshot directory".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        assert!(looks_like_hub_id("bigscience/bloom-560m"));
        assert!(looks_like_hub_id("gpt2"));
        assert!(!looks_like_hub_id("./models/x"));
        assert!(!looks_like_hub_id("/abs/path"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id(""));
    }

    #[test]
    fn resolves_refs_main_snapshot() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("models--bigscience--bloom-560m");
        for rev in ["aaa", "bbb"] {
            std::fs::create_dir_all(repo.join("snapshots").join(rev)).unwrap();
            std::fs::write(repo.join("snapshots").join(rev).join("config.json"), "{}").unwrap();
        }
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "aaa\n").unwrap();
        let got = resolve_cached("bigscience/bloom-560m", cache.path()).unwrap();
        assert!(got.ends_with("snapshots/aaa"));
        assert_eq!(resolve_cached("bigscience/bloom-1b7", cache.path()), None);
    }
}
