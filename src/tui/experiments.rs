//! The experiments view's traffic with the worker: what the app asks for, what comes back, and the job
//! itself, run on the worker thread through the lab's experiment runner (the code `eval` uses).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine::{CancelFlag, Engine};
use crate::lab::evalfile::EvalFileError;
use crate::lab::experiment::{self, Event, ExperimentError};

pub use crate::lab::experiment::Plan;

use super::report::Report;
use super::worker::Sink;

pub mod keys;

/// Sequences decoded together in an experiment (paths of several questions at once): the batch
/// scheduler keeps them busy while questions finish at different times.
pub const BATCH_ROWS: usize = 8;

/// What the keys mean in the experiments view.
#[derive(Clone, Debug, PartialEq)]
pub enum ExperimentIntent {
    /// `x`: show the view (the setup when nothing ran yet, else the grid).
    Show,
    /// Back to the normal view (the experiment goes on).
    Leave,
    /// Move the cursor by rows and columns (setup: the template list; grid: the cells).
    Move { rows: isize, cols: isize },
    /// Tick or untick the template under the cursor.
    Toggle,
    /// Next / previous field of the setup (templates, questions, name).
    Field(isize),
    /// A character typed into the questions or name field.
    Input(char),
    /// Delete the last character of that field.
    Backspace,
    /// Run the experiment set up (resuming its files when they are there).
    Start,
    /// Open the cell under the cursor in the normal view.
    OpenCell,
    /// Stop the running experiment; finished questions stay written.
    Cancel,
    /// Set up another experiment.
    New,
}

/// What the worker reports about experiment `id` (boxed in [`Report::Experiment`]).
#[derive(Clone, Debug)]
pub enum ExperimentUpdate {
    Event(Event),
    /// The run is over (all done, or cancelled).
    Finished {
        cancelled: bool,
    },
    /// The run stopped with an error; one line.
    Failed(String),
}

/// Where experiments are saved: `experiments/` beside the sessions folder (inside it when it has no
/// parent to be beside).
pub fn experiments_dir(sessions_dir: &Path) -> PathBuf {
    match sessions_dir.parent() {
        Some(p) if sessions_dir.file_name().is_some() => p.join("experiments"),
        _ => sessions_dir.join("experiments"),
    }
}

/// Runs `plan` on the worker thread, reporting each event to the UI.
pub(crate) fn run_job(engine: &dyn Engine, id: u64, plan: &Plan, cancel: &CancelFlag, sink: &Sink) {
    let t0 = Instant::now();
    let send = |update: ExperimentUpdate| {
        sink(Report::Experiment { id, update: Box::new(update), at_ms: t0.elapsed().as_secs_f64() * 1000.0 })
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        experiment::run(engine, plan, cancel, &mut |e| send(ExperimentUpdate::Event(e)))
    }));
    send(match result {
        Ok(Ok(out)) => ExperimentUpdate::Finished { cancelled: out.cancelled },
        Ok(Err(e)) => ExperimentUpdate::Failed(message(e)),
        Err(p) => ExperimentUpdate::Failed(format!("panic in the experiment: {}", super::worker::panic_message(&p))),
    });
}

/// The error as the view says it. A file of other settings gets advice that fits the view (not `--out`),
/// short enough for the status line: the folder is on screen already, and settings go by their panel names.
fn message(e: ExperimentError) -> String {
    match e {
        ExperimentError::File(EvalFileError::OtherSettings { path, difference }) => format!(
            "{} holds other settings ({}): set them back, or give the experiment another name",
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()),
            difference.strip_prefix("--").unwrap_or(&difference)
        ),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiments_go_beside_the_sessions_folder() {
        assert_eq!(experiments_dir(Path::new("sessions")), PathBuf::from("experiments"));
        assert_eq!(experiments_dir(Path::new("/tmp/x/sessions")), PathBuf::from("/tmp/x/experiments"));
        assert_eq!(experiments_dir(Path::new("/")), PathBuf::from("/experiments"));
    }
}
