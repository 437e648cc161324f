//! `cotscope report`: accuracy with intervals, failure and stop-reason rates, and paired comparisons
//! over the results files `eval` writes.

use std::path::PathBuf;

use anyhow::Context;

use crate::lab::report::{self, html, table, text};

const AFTER_HELP: &str = "\
Each FILE is one `cotscope eval --out` file (one template). Runs are labelled A, B, … in the order given.
Accuracy is of the majority vote (\"correct\") and of the first path (\"first_correct\"), each with a 95%
Wilson score interval. Two runs are compared over the questions both have: questions only one got right,
and the exact two-sided McNemar p-value (binomial test on those). Runs whose recorded settings differ
(model, dtype, quantize, sampling, seed, paths) or cannot be checked (files of an older cotscope) are
compared only with --force, and the report says how they differ.

--format json prints one object:
  {\"runs\": [{\"label\", \"file\", \"template\", \"settings\", \"questions\", \"paths\", \"correct\",
     \"accuracy\", \"ci_low\", \"ci_high\", \"first_correct\", \"first_path_accuracy\", \"first_path_ci_low\",
     \"first_path_ci_high\", \"ties\", \"failures\": [{\"name\", \"paths\", \"per_100_paths\"}],
     \"stop_reasons\": [same], \"mean_tokens\"}],
   \"pairs\": [{\"a\", \"b\", \"questions\", \"both\", \"neither\", \"a_only\", \"b_only\", \"mcnemar_p\",
     \"first_path\": {same counts}, \"settings_differences\": [..]}],
   \"questions\": [{\"index\", \"gold\", \"cells\": [{\"majority\", \"correct\", \"first_correct\",
     \"agreement\", \"voters\", \"paths\"} or null]}], \"notes\": [..]}
Accuracies and interval ends are fractions (0..1). --format csv writes one table (--table).
--format html writes one self-contained page (inline SVG charts, no scripts, nothing fetched).

Examples:
  cotscope report wei.jsonl cot.jsonl
  cotscope report wei.jsonl cot.jsonl --format html --out report.html";

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
    Csv,
    Html,
}

/// The table `--format csv` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsvTable {
    /// One row per run.
    Runs,
    /// One row per pair of runs.
    Pairs,
    /// One row per question and run.
    Questions,
}

/// Flags of `cotscope report`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Results files of `cotscope eval --out`.
    #[arg(required = true, value_name = "FILE.jsonl")]
    pub files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Compare runs even when their settings differ or cannot be checked.
    #[arg(long)]
    pub force: bool,
    /// Text format: draw bars with ASCII characters only.
    #[arg(long)]
    pub ascii: bool,
    /// CSV format: which table.
    #[arg(long, value_enum, default_value = "runs")]
    pub table: CsvTable,
    /// Write the report here (atomically) instead of to standard output.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The report in the format asked for.
pub fn render(args: &Args) -> anyhow::Result<String> {
    let runs = args.files.iter().map(|p| report::read_run(p)).collect::<Result<Vec<_>, _>>()?;
    let r = report::build(&runs, args.force)?;
    Ok(match args.format {
        Format::Text => text::render(&r, if args.ascii { &text::ASCII } else { &text::UNICODE }),
        Format::Markdown => table::to_markdown(&r),
        Format::Json => serde_json::to_string_pretty(&r)? + "\n",
        Format::Csv => table::to_csv(&table::csv_table(
            &r,
            match args.table {
                CsvTable::Runs => table::CsvTable::Runs,
                CsvTable::Pairs => table::CsvTable::Pairs,
                CsvTable::Questions => table::CsvTable::Questions,
            },
        )),
        Format::Html => html::render(&r),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = render(&args)?;
    match &args.out {
        Some(p) => crate::fsutil::write_atomic(p, out.as_bytes()).with_context(|| format!("{}", p.display()))?,
        None => print!("{out}"),
    }
    Ok(())
}
