//! `cotscope prompt`: prints the prompt a template renders for a GSM8K test question, byte for byte.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::lab::{gsm8k, template};

/// Flags of `cotscope prompt`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    /// Template name (its `name:` field or file stem), e.g. wei-8shot.
    #[arg(long)]
    pub template: String,
    /// GSM8K test question: 0-based row of test.jsonl (0 is Janet's ducks).
    #[arg(long)]
    pub question: usize,
    /// Directory of template YAML files. Default: ./templates, else the project's templates.
    #[arg(long)]
    pub templates_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (_, t) = load_template(&args.template, args.templates_dir.as_deref())?;
    let problem = gsm8k::test_problem(args.question)?;
    let mut out = std::io::stdout().lock();
    out.write_all(t.render(&problem.question).as_bytes()).context("writing the prompt")?;
    out.flush().context("writing the prompt")?;
    Ok(())
}

/// Loads template `name` from `dir` (or the default directory); other broken files do not matter.
pub fn load_template(name: &str, dir: Option<&std::path::Path>) -> anyhow::Result<(PathBuf, template::Template)> {
    let dir = dir.map(PathBuf::from).unwrap_or_else(template::default_dir);
    let set = template::load_dir(&dir);
    let (path, t) = set.get(name)?;
    Ok((path.clone(), t.clone()))
}
