//! `cotscope generate`.

/// Flags of `cotscope generate`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cotscope generate` is not built yet")
}
