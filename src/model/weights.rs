//! Finding a checkpoint's weight files and opening them as a candle `VarBuilder`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::error::LoadError;

/// Where the weights of a model directory are.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightFiles {
    /// `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
    Safetensors(Vec<PathBuf>),
    /// `pytorch_model.bin` (a PyTorch pickle).
    Pth(PathBuf),
}

impl WeightFiles {
    /// Looks for weights in `dir`, preferring safetensors.
    pub fn find(dir: &Path) -> Result<Self, LoadError> {
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Ok(WeightFiles::Safetensors(vec![single]));
        }
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            return Ok(WeightFiles::Safetensors(shards_of(&index, dir)?));
        }
        let bin = dir.join("pytorch_model.bin");
        if bin.is_file() {
            return Ok(WeightFiles::Pth(bin));
        }
        Err(LoadError::file(
            dir,
            "no weights found (expected model.safetensors, model.safetensors.index.json or pytorch_model.bin)",
        ))
    }

    /// Opens the weights, memory-mapped, converting to `dtype` as tensors are read.
    pub fn var_builder(&self, dtype: DType, dev: &Device) -> Result<VarBuilder<'static>, LoadError> {
        match self {
            WeightFiles::Safetensors(files) => {
                // Open each file alone first so a truncated or corrupt one is named in the error.
                for f in files {
                    // SAFETY: the file is mapped read-only; cotscope never writes to model files.
                    unsafe { candle_core::safetensors::MmapedSafetensors::new(f) }.map_err(|e| {
                        LoadError::file(
                            f,
                            format!("not a valid safetensors file ({})", super::error::first_line(&e.to_string())),
                        )
                    })?;
                }
                // Positioned reads rather than the map: see `safetensors_read` (peak memory of a load).
                let reader = super::safetensors_read::SafetensorsReader::open(files)
                    .map_err(|m| LoadError::file(&files[0], m))?;
                Ok(VarBuilder::from_backend(Box::new(reader), dtype, dev.clone()))
            }
            WeightFiles::Pth(f) => VarBuilder::from_pth(f, dtype, dev).map_err(|e| {
                LoadError::file(
                    f,
                    format!("cannot read PyTorch weights ({})", super::error::first_line(&e.to_string())),
                )
            }),
        }
    }

    /// The file to blame when a tensor is missing or misshapen.
    pub fn describe(&self) -> PathBuf {
        match self {
            WeightFiles::Safetensors(f) if f.len() == 1 => f[0].clone(),
            WeightFiles::Safetensors(f) => {
                f[0].parent().map(|p| p.join("model.safetensors.index.json")).unwrap_or_default()
            }
            WeightFiles::Pth(f) => f.clone(),
        }
    }
}

/// The distinct shard files named by a `model.safetensors.index.json`, each checked to exist.
fn shards_of(index: &Path, dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| LoadError::file(index, e))?;
    let idx: Index = serde_json::from_str(&text).map_err(|e| LoadError::file(index, format!("invalid index: {e}")))?;
    let mut files: Vec<String> = idx.weight_map.into_values().collect();
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(LoadError::file(index, "weight_map lists no shards"));
    }
    files
        .into_iter()
        .map(|f| {
            let p = dir.join(&f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(LoadError::file(&p, "shard listed in model.safetensors.index.json is missing"))
            }
        })
        .collect()
}
