//! `cotscope tui` (and `cotscope` with no command): the interactive workbench.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::common::ModelArgs;

/// Flags of `cotscope tui`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where sessions are saved and opened from. Default: ./sessions of the directory cotscope runs in
    /// (created on the first save).
    #[arg(long)]
    pub sessions_dir: Option<PathBuf>,
    /// Where templates are read from (and exemplars written to). Default: ./templates, else the repository's.
    #[arg(long)]
    pub templates_dir: Option<PathBuf>,
}

/// `./<name>` when it exists (or when we are not in a checkout), else the repository's own folder
/// (read-only use: the shipped templates).
fn default_dir(name: &str) -> PathBuf {
    let local = PathBuf::from(name);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    if local.is_dir() || !repo.is_dir() {
        local
    } else {
        repo
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!("the workbench needs an interactive terminal (stdin and stdout are not both a tty); in scripts use a command such as `cotscope generate` or `cotscope eval`");
    }
    let templates_dir = args.templates_dir.unwrap_or_else(|| default_dir("templates"));
    // Sessions are written: always where cotscope runs, never into the source checkout.
    let sessions_dir = args.sessions_dir.unwrap_or_else(|| PathBuf::from("sessions"));
    let model = args.model;
    let model_settings = model.settings();
    let loader: crate::tui::Loader = Box::new(move || model.open_engine().map_err(|e| format!("{e:#}")));
    let settings_file = crate::tui::config::settings_path();
    crate::tui::start(crate::tui::Options { templates_dir, sessions_dir, loader, settings_file, model_settings })
        .context("tui")
}
