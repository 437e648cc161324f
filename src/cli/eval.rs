//! `cotscope eval`.

/// Flags of `cotscope eval`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cotscope eval` is not built yet")
}
