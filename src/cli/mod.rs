//! Command-line front ends. Each submodule holds one command's flags (`Args`) and its `run`.
//! This is the binary's edge, so errors are `anyhow`.

pub mod analyze;
pub mod bench;
pub mod common;
pub mod eval;
pub mod generate;
pub mod prompt;
pub mod report;
pub mod tui;
