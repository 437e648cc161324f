//! The `cotscope` binary: parses the command line and hands off to `cotscope::cli`.

use clap::{Parser, Subcommand};
use cotscope::cli;

/// A terminal workbench for designing chain-of-thought prompts on local BLOOM models.
/// With no command, opens the interactive workbench.
#[derive(Parser)]
#[command(name = "cotscope", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    tui: cli::tui::Args,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt (streams; --json for JSON Lines).
    Generate(cli::generate::Args),
    /// Print the prompt a template renders for a GSM8K test question.
    Prompt(cli::prompt::Args),
    /// Extract the answer and detect failures in a generated continuation.
    Analyze(cli::analyze::Args),
    /// Evaluate a template on GSM8K test questions.
    Eval(cli::eval::Args),
    /// Compare eval results files: accuracy with intervals, failures, paired tests.
    Report(cli::report::Args),
    /// Measure load, prefill and decode speed and peak memory.
    Bench(cli::bench::Args),
    /// Open the interactive workbench (the default).
    Tui(cli::tui::Args),
}

/// The `--threads` the command asks for (0: the available cores; commands without a model: 0).
fn compute_threads(cli: &Cli) -> usize {
    match &cli.command {
        None => cli.tui.model.threads,
        Some(Command::Tui(a)) => a.model.threads,
        Some(Command::Generate(a)) => a.model.threads,
        Some(Command::Eval(a)) => a.model.threads,
        Some(Command::Bench(a)) => a.threads,
        Some(Command::Prompt(_)) | Some(Command::Analyze(_)) | Some(Command::Report(_)) => 0,
    }
}

/// Weights and other blocks the C allocator maps on their own go in transparent huge pages.
#[global_allocator]
static ALLOCATOR: cotscope::model::alloc::HugePageAlloc = cotscope::model::alloc::HugePageAlloc;

fn main() {
    let cli = Cli::parse();
    // Sized here, on the main thread before any other thread exists: the pools read environment
    // variables, and setting those while other threads may read the environment is unsound.
    cotscope::model::threads::set_compute_threads(compute_threads(&cli));
    cotscope::model::alloc::keep_freed_buffers();
    let result = match cli.command {
        None => cli::tui::run(cli.tui),
        Some(Command::Tui(a)) => cli::tui::run(a),
        Some(Command::Generate(a)) => cli::generate::run(a),
        Some(Command::Prompt(a)) => cli::prompt::run(a),
        Some(Command::Analyze(a)) => cli::analyze::run(a),
        Some(Command::Eval(a)) => cli::eval::run(a),
        Some(Command::Report(a)) => cli::report::run(a),
        Some(Command::Bench(a)) => cli::bench::run(a),
    };
    if let Err(e) = result {
        // One line, naming what is wrong: the chain of causes joined with ': '.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
