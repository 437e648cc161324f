//! `cotscope bench`.

/// Flags of `cotscope bench`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cotscope bench` is not built yet")
}
