//! `cotscope analyze`: answer extraction and every failure detector on a generated continuation.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::lab::answer::AnswerRule;
use crate::lab::detect::{DetectContext, Failure};
use crate::lab::{analysis, context_from_prompt, corpus, number};

const AFTER_HELP: &str = "\
--json prints one object:
  {\"answer\": \"18\" or null, \"answer_rule\": \"strict|flexible|none\", \"correct\": true/false/null,
   \"failures\": [{\"kind\": \"...\", \"start\": 0, \"end\": 10, \"detail\": \"...\"}]}
start/end are byte offsets into the text file. Failure kinds: repetition, question_echo,
missing_answer_marker, runaway_question, no_answer, arithmetic_error.

--corpus FILE.jsonl checks the detectors on labelled continuations, one JSON object a line:
  {\"text\": \"...\", \"kinds\": [\"repetition\", ...], \"answer\": \"18\" or null,
   \"question\": \"...\", \"instruction\": null, \"prompt_ends_with_answer_marker\": true, \"id\": \"...\"}
and prints per kind how many items the reader labelled, the detectors flagged and both agree on, with
precision and recall; with --json one object {\"items\", \"kinds\": [{\"kind\", \"labelled\", \"flagged\",
\"agreed\", \"precision\", \"recall\"}], \"answers_agreed\", \"disagreements\", \"answer_misses\"}.";

/// Flags of `cotscope analyze`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The continuation: the text a model generated after the prompt (read byte for byte).
    #[arg(long, value_name = "T", required_unless_present = "corpus")]
    pub text_file: Option<PathBuf>,
    /// A labelled corpus (JSONL, see below): print the detectors' precision and recall on it instead.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["text_file", "prompt_file", "gold"])]
    pub corpus: Option<PathBuf>,
    /// The prompt it continues: gives the target question (for question_echo), the instruction line
    /// and whether the prompt ends with "A:" (for missing_answer_marker).
    #[arg(long, value_name = "P")]
    pub prompt_file: Option<PathBuf>,
    /// The gold answer, to say whether the extracted answer is correct.
    #[arg(long, value_name = "G")]
    pub gold: Option<String>,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    pub json: bool,
}

/// The `--json` output: field names are a contract.
#[derive(Serialize)]
struct Output<'a> {
    answer: Option<&'a str>,
    answer_rule: AnswerRule,
    correct: Option<bool>,
    failures: &'a [Failure],
}

fn read_text(path: &PathBuf, what: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("{what} {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{what} {}: not UTF-8 ({e})", path.display()))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(path) = &args.corpus {
        let items = corpus::load(path)?;
        let report = corpus::score(&items);
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("corpus:   {} ({} items)\n{}", path.display(), report.items, corpus::table(&report));
        }
        return Ok(());
    }
    let Some(text_file) = &args.text_file else {
        anyhow::bail!("--text-file or --corpus is required");
    };
    let text = read_text(text_file, "text file")?;
    let ctx = match &args.prompt_file {
        Some(p) => context_from_prompt(&read_text(p, "prompt file")?),
        // Without a prompt: no question to compare with, and the prompt is taken to end with "A:".
        None => DetectContext { prompt_ends_with_answer_marker: true, ..DetectContext::default() },
    };
    if let Some(g) = &args.gold {
        if number::parse_value(g).is_none() {
            anyhow::bail!("--gold: not a number: {g:?}");
        }
    }
    let a = analysis::analyze(&ctx, &text, args.gold.as_deref());
    if args.json {
        let out = Output {
            answer: a.answer.as_deref(),
            answer_rule: a.answer_rule,
            correct: a.correct,
            failures: &a.failures,
        };
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    print!("{}", report(&text, &a, args.gold.as_deref()));
    Ok(())
}

/// The human-readable report.
fn report(text: &str, a: &analysis::PathAnalysis, gold: Option<&str>) -> String {
    let mut s = String::new();
    match &a.answer {
        Some(ans) => s.push_str(&format!("answer:   {ans} ({} rule)\n", a.answer_rule.name())),
        None => s.push_str("answer:   none\n"),
    }
    match (a.correct, gold) {
        (Some(true), Some(g)) => s.push_str(&format!("correct:  yes (gold {g})\n")),
        (Some(false), Some(g)) => s.push_str(&format!("correct:  no (gold {g})\n")),
        _ => s.push_str("correct:  unknown (no --gold)\n"),
    }
    if a.failures.is_empty() {
        s.push_str("failures: none\n");
        return s;
    }
    s.push_str(&format!("failures: {}\n", a.failures.len()));
    for f in &a.failures {
        let span = crate::lab::detect::excerpt(&text[f.start..f.end], 70);
        s.push_str(&format!("  {:<22} {:>5}..{:<5} {}\n", f.kind.name(), f.start, f.end, f.detail));
        if !span.is_empty() {
            s.push_str(&format!("  {:<22} {:>12} \"{}\"\n", "", "", span));
        }
    }
    s
}
