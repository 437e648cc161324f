//! Why a model could not be loaded, always naming the file or id at fault.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Something is wrong with one file of a model directory.
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// A hub id that is neither cached nor downloadable.
    #[error("model '{id}': {msg}")]
    Hub { id: String, msg: String },
    /// A bad option, such as an unknown dtype.
    #[error("{0}")]
    Invalid(String),
}

impl LoadError {
    pub fn file(path: &Path, msg: impl std::fmt::Display) -> Self {
        LoadError::File { path: path.to_path_buf(), msg: first_line(&msg.to_string()) }
    }
}

/// candle and tokenizers errors can carry backtraces over several lines; the first says what is wrong.
pub fn first_line(s: &str) -> String {
    s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unknown error").to_string()
}

impl From<LoadError> for crate::engine::EngineError {
    fn from(e: LoadError) -> Self {
        crate::engine::EngineError::Load(e.to_string())
    }
}
