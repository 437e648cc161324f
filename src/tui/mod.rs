//! The interactive workbench (`cotscope`, `cotscope tui`).
//!
//! Data flows one way: terminal events → [`intent::Intent`] (through [`keymap`]) → [`app::App::update`]
//! (pure state change) → [`command::Command`]s carried out by the [`event_loop`] (generation on the
//! [`worker`] thread, session files, clipboard, template write-back) → what they learn comes back as
//! [`report::Report`]s to [`app::App::on_report`] → [`draw::draw`] renders the state. Nothing in the app
//! or in drawing does I/O or touches the model.

pub mod app;
mod clipboard;
pub mod command;
pub(crate) mod compact_yaml;
pub mod config;
pub mod draw;
mod event_loop;
mod exemplar;
pub mod experiments;
pub mod generation;
mod highlight;
pub mod intent;
pub mod keymap;
mod pane;
pub mod questions;
pub mod report;
pub mod session;
pub mod settings;
mod terminal;
pub mod theme;
mod widgets;
mod worker;
mod wrap;

pub use event_loop::{start, Options};
pub use worker::Loader;

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
    #[error("reading keys: {0}")]
    Input(String),
}
