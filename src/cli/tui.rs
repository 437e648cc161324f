//! `cotscope tui`.

/// Flags of `cotscope tui`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cotscope tui` is not built yet")
}
