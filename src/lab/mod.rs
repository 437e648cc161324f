//! The prompt lab: GSM8K, prompt templates, and reading what a model wrote — its answer, its failures,
//! and how several paths vote. Used by `prompt`, `analyze`, `eval` and the TUI.

pub mod analysis;
pub mod answer;
pub mod answer_stream;
pub mod calculator;
mod conclusion;
pub mod corpus;
pub mod detect;
pub mod evalfile;
pub mod experiment;
pub mod gsm8k;
pub mod judge;
pub mod labels;
pub mod number;
pub mod path_tree;
pub mod prompt_parse;
pub mod record;
pub mod report;
pub mod select;
pub mod settings;
pub mod stats;
pub mod template;
pub mod token_steps;
pub mod vote;

pub use analysis::{analyze, PathAnalysis};
pub use answer::{extract, matches_gold, AnswerRule, Extracted};
pub use detect::{detect_all, DetectContext, Failure, FailureKind, StreamDetector};
pub use gsm8k::{test_set, train_set, Problem};
pub use prompt_parse::context_from_prompt;
pub use template::{default_dir, load_dir, Exemplar, Layout, Template, TemplateError, TemplateSet};
pub use vote::{vote, Vote};

/// Errors of the lab outside templates.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("question {index} is out of range: GSM8K test has questions 0..{}", len.saturating_sub(1))]
    QuestionOutOfRange { index: usize, len: usize },
}
