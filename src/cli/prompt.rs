//! `cotscope prompt`.

/// Flags of `cotscope prompt`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cotscope prompt` is not built yet")
}
