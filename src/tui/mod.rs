//! The interactive workbench (`cotscope`, `cotscope tui`).
//!
//! Data flows one way: terminal events → [`action::Action`] (through [`keymap`]) → [`app::App::update`]
//! (pure state change) → [`command::Command`]s carried out by the [`runner`] (generation on the
//! [`worker`] thread, session files, clipboard, template write-back) → their results come back as
//! actions → [`draw::draw`] renders the state. Nothing in `update` or `draw` does I/O or touches the model.

pub mod action;
pub mod app;
pub mod clipboard;
pub mod command;
pub mod draw;
pub mod exemplar;
pub mod highlight;
pub mod keymap;
pub mod labels;
pub mod questions;
pub mod run;
pub mod runner;
pub mod session;
pub mod settings;
pub mod terminal;
pub mod theme;
mod widgets;
pub mod worker;
pub mod wrap;

pub use runner::{run, Options};

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
    #[error("reading keys: {0}")]
    Input(String),
}
