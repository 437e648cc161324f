//! `cotscope analyze`.

/// Flags of `cotscope analyze`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cotscope analyze` is not built yet")
}
