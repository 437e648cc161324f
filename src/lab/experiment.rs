//! Running templates over GSM8K questions: each question's paths generated (several questions decoded
//! together through [`Engine::generate_many`]), read (answers, failures, vote) into an [`EvalRecord`].
//! `cotscope eval` runs one template with [`evaluate_questions`]; the TUI's experiments view runs several
//! with [`run`], which writes one eval results file per template and resumes files already there.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::engine::{
    CancelFlag, Engine, EngineError, EngineEvent, Forcer, GenerateRequest, GenerationStats, PathResult, SamplingParams,
    StopReason,
};

use super::calculator::{self, Calculator};
use super::detect::DetectContext;
use super::evalfile::{self, EvalFileError, EvalRecord, ResultsFile};
use super::record::PathRecord;
use super::select::{SelectError, Selector, Strategy};
use super::settings::{ModelSettings, RunSettings};
use super::template::{Template, TemplateError};
use super::{answer, gsm8k, vote, LabError};

/// Errors of a run. One line each, naming the question or file.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Question(#[from] LabError),
    #[error("question {index}: the engine did not finish path {path}")]
    Unfinished { index: usize, path: usize },
    /// `context` names the question (or says "questions" for several).
    #[error("{context}: {error}")]
    Engine { context: String, error: EngineError },
    #[error(transparent)]
    File(#[from] EvalFileError),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error("template {name}: {error}")]
    Template { name: String, error: TemplateError },
    #[error("an experiment needs at least one template and one question")]
    Empty,
}

/// A question selection that does not parse; shows as `"SPEC": why`.
#[derive(Debug, thiserror::Error)]
#[error("{spec:?}: {why}")]
pub struct QuestionsError {
    pub spec: String,
    pub why: String,
}

/// Parses a selection of GSM8K test questions: `0..100`, `5..=9`, `7`, `1,3,10..12`. Order kept,
/// duplicates dropped; `len` is the size of the test set.
pub fn parse_questions(spec: &str, len: usize) -> Result<Vec<usize>, QuestionsError> {
    let bad = |why: String| QuestionsError { spec: spec.to_string(), why };
    let num = |s: &str| s.trim().parse::<usize>().map_err(|_| bad(format!("{:?} is not a question number", s.trim())));
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let range = if let Some((a, b)) = part.split_once("..=") {
            num(a)?..num(b)?.saturating_add(1)
        } else if let Some((a, b)) = part.split_once("..") {
            num(a)?..num(b)?
        } else {
            let i = num(part)?;
            i..i + 1
        };
        if range.end > len {
            return Err(bad(format!("GSM8K test has questions 0..{}", len.saturating_sub(1))));
        }
        for i in range {
            if seen.insert(i) {
                out.push(i);
            }
        }
    }
    if out.is_empty() {
        return Err(bad("no questions".into()));
    }
    Ok(out)
}

/// How questions are generated, besides sampling.
#[derive(Clone, Debug, Default)]
pub struct QuestionOptions {
    /// Paths per question.
    pub paths: usize,
    /// Sequences decoded together ([`Engine::generate_many`]).
    pub batch: usize,
    /// Calculator in the loop.
    pub calculator: bool,
    /// Record each path's log-probability (`EvalPath::logprob`).
    pub logprobs: bool,
    /// Stop strings for every template (None: each template's own).
    pub stop: Option<Vec<String>>,
}

impl QuestionOptions {
    fn stop_for(&self, template: &Template) -> Vec<String> {
        self.stop.clone().unwrap_or_else(|| template.stop_strings().to_vec())
    }
}

/// One question of one template.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    pub template: &'a Template,
    pub index: usize,
}

/// What [`evaluate_items`] reports while it runs; `item` indexes its `items`.
#[derive(Debug)]
pub enum Progress {
    /// One path of the item ended.
    PathDone { item: usize },
    /// The item's question is generated and read.
    Finished { item: usize, record: Box<EvalRecord> },
}

/// Generates `paths` paths for question `index` and reads them.
pub fn evaluate_question(
    engine: &dyn Engine,
    template: &Template,
    index: usize,
    params: &SamplingParams,
    paths: usize,
) -> Result<EvalRecord, ExperimentError> {
    let mut out = None;
    let opts = QuestionOptions { paths, batch: 1, ..QuestionOptions::default() };
    evaluate_questions(engine, template, &[index], params, &opts, &mut |r| {
        out = Some(r);
        Ok::<(), ExperimentError>(())
    })?;
    out.ok_or(ExperimentError::Unfinished { index, path: 0 })
}

/// Generates and reads the questions `indices` of one template; `done` gets each record as soon as its
/// question finishes.
pub fn evaluate_questions<E: From<ExperimentError>>(
    engine: &dyn Engine,
    template: &Template,
    indices: &[usize],
    params: &SamplingParams,
    opts: &QuestionOptions,
    done: &mut dyn FnMut(EvalRecord) -> Result<(), E>,
) -> Result<(), E> {
    let items: Vec<Item> = indices.iter().map(|&index| Item { template, index }).collect();
    evaluate_items(engine, &items, params, opts, &CancelFlag::new(), &mut |p| match p {
        Progress::Finished { record, .. } => done(*record),
        Progress::PathDone { .. } => Ok(()),
    })
}

/// Generates and reads `items`, decoding up to `opts.batch` sequences together
/// ([`Engine::generate_many`]); `on` hears each path end and each record as soon as its question
/// finishes. After `cancel`, the questions cut short are still reported (their cancelled paths say so).
/// The first error from `on` stops reporting and is returned once the engine stops.
pub fn evaluate_items<E: From<ExperimentError>>(
    engine: &dyn Engine,
    items: &[Item],
    params: &SamplingParams,
    opts: &QuestionOptions,
    cancel: &CancelFlag,
    on: &mut dyn FnMut(Progress) -> Result<(), E>,
) -> Result<(), E> {
    let paths = opts.paths;
    let problems = items
        .iter()
        .map(|it| gsm8k::test_problem(it.index))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| E::from(ExperimentError::from(e)))?;
    let reqs: Vec<GenerateRequest> = items
        .iter()
        .zip(&problems)
        .map(|(it, p)| GenerateRequest {
            prompt: it.template.render(&p.question),
            paths,
            sampling: params.clone(),
            stop: opts.stop_for(it.template),
            logprobs: opts.logprobs.then_some(0),
            forcer: opts.calculator.then(|| Forcer::new(Calculator)),
            ..GenerateRequest::default()
        })
        .collect();
    let mut finished: Vec<Vec<Option<PathResult>>> = vec![vec![None; paths]; reqs.len()];
    // Token events, not ids, count tokens: a server may give no ids.
    let mut counts: Vec<Vec<usize>> = vec![vec![0; paths]; reqs.len()];
    let mut failed: Option<E> = None;
    let run = engine.generate_many(&reqs, opts.batch.max(1), cancel, &mut |i, ev| match ev {
        EngineEvent::Token(t) => {
            if let Some(n) = counts[i].get_mut(t.path) {
                *n += 1;
            }
        }
        EngineEvent::Done(r) if failed.is_none() => {
            if let Some(slot) = finished[i].get_mut(r.path) {
                *slot = Some(r);
            }
            if let Err(e) = on(Progress::PathDone { item: i }) {
                failed = Some(e);
            }
        }
        EngineEvent::Stats(stats) if failed.is_none() => {
            let done = std::mem::take(&mut finished[i]);
            let (it, problem) = (&items[i], problems[i]);
            let record = read_question(it.template, &reqs[i], it.index, problem, done, &counts[i], &stats);
            if let Err(e) =
                record.map_err(E::from).and_then(|record| on(Progress::Finished { item: i, record: Box::new(record) }))
            {
                failed = Some(e);
            }
        }
        _ => {}
    });
    if let Some(e) = failed {
        return Err(e);
    }
    match (run, items) {
        (Err(error), [one]) => {
            Err(ExperimentError::Engine { context: format!("question {}", one.index), error }.into())
        }
        (Err(error), _) => Err(ExperimentError::Engine { context: "questions".into(), error }.into()),
        (Ok(_), _) => Ok(()),
    }
}

/// The record of question `index` from its finished paths.
fn read_question(
    template: &Template,
    req: &GenerateRequest,
    index: usize,
    problem: &gsm8k::Problem,
    done: Vec<Option<PathResult>>,
    token_counts: &[usize],
    stats: &GenerationStats,
) -> Result<EvalRecord, ExperimentError> {
    let ctx = DetectContext::for_template(template, &problem.question);
    let paths: Vec<PathRecord> = done
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.ok_or(ExperimentError::Unfinished { index, path: i })?;
            let logprob = req.logprobs.is_some().then(|| r.sum_logprob());
            let tokens = r.token_ids.len().max(token_counts.get(i).copied().unwrap_or(0));
            let forced_spans = r.forced_spans.clone();
            let mut p = PathRecord::analyzed(&ctx, r.text, r.token_ids, &r.stop_reason, Some(&problem.gold));
            // The calculator's results are right by construction.
            let failures = calculator::drop_forced_results(std::mem::take(&mut p.failures), &forced_spans);
            // Eval lines count tokens; the ids stay out of them.
            Ok(PathRecord { path: i + 1, token_ids: Vec::new(), tokens, logprob, failures, forced_spans, ..p })
        })
        .collect::<Result<_, ExperimentError>>()?;
    let answers: Vec<Option<String>> = paths.iter().map(|p| p.answer.clone()).collect();
    let v = vote::vote(&answers);
    let is_right = |a: &Option<String>| a.as_deref().is_some_and(|a| answer::matches_gold(a, &problem.gold));
    Ok(EvalRecord {
        index,
        template: template.name.clone(),
        prompt_hash: evalfile::prompt_hash(&req.prompt),
        correct: is_right(&v.majority),
        first_correct: paths.first().is_some_and(|p| is_right(&p.answer)),
        paths,
        vote: v,
        gold: problem.gold.clone(),
        generation_ms: stats.prefill_ms + stats.decode_ms,
        settings: None,
        select: Vec::new(),
    })
}

/// Several templates over the same questions, saved as one eval results file per template in `dir`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub dir: PathBuf,
    pub templates: Vec<Template>,
    pub questions: Vec<usize>,
    pub sampling: SamplingParams,
    pub paths: usize,
    /// Stop strings for every template (None: each template's own).
    pub stop: Option<Vec<String>>,
    /// Calculator in the loop.
    pub calculator: bool,
    /// The model as recorded (its config hash is taken from the engine).
    pub model: ModelSettings,
    /// Sequences decoded together.
    pub batch: usize,
}

impl Plan {
    /// The results file of template `name` in `dir`.
    pub fn file(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{}.jsonl", safe_name(name)))
    }

    /// Every file of the plan, in template order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.templates.iter().map(|t| Plan::file(&self.dir, &t.name)).collect()
    }
}

/// `name` made safe as one path component: letters, digits and `-_.+` kept, the rest `_`.
pub fn safe_name(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.+".contains(c) { c } else { '_' }).take(100).collect();
    // No hidden names, no `.` or `..`.
    match s.trim_start_matches('.') {
        "" => "unnamed".to_string(),
        t => t.to_string(),
    }
}

/// What [`run`] reports while it runs; `template` indexes the plan's templates.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The files are open and agree with the plan's settings: what they already hold (per template)
    /// and how many questions (of all templates) are left to run.
    Opened { files: Vec<PathBuf>, existing: Vec<Vec<EvalRecord>>, todo: usize },
    /// A path of question `index` ended.
    PathDone { template: usize, index: usize },
    /// A question finished and its line is written.
    Record { template: usize, record: Box<EvalRecord> },
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Lines written by this run.
    pub written: usize,
    pub cancelled: bool,
}

/// Runs `plan`: opens (or resumes) each template's file, refusing one of other settings before anything
/// runs, then generates the questions the files lack, question by question across the templates (so
/// the grid fills row by row), writing each line as its question finishes. After `cancel`, questions cut
/// short are not written, so a later run does them again.
pub fn run(
    engine: &dyn Engine,
    plan: &Plan,
    cancel: &CancelFlag,
    on: &mut dyn FnMut(Event),
) -> Result<Outcome, ExperimentError> {
    if plan.templates.is_empty() || plan.questions.is_empty() {
        return Err(ExperimentError::Empty);
    }
    let opts = QuestionOptions {
        paths: plan.paths,
        batch: plan.batch,
        calculator: plan.calculator,
        logprobs: false,
        stop: plan.stop.clone(),
    };
    let model = ModelSettings { config_hash: engine.info().config_hash, ..plan.model.clone() };
    let mut settings = Vec::new();
    let mut files = Vec::new();
    for t in &plan.templates {
        let s =
            RunSettings::new(model.clone(), t, plan.sampling.clone(), plan.paths, opts.stop_for(t), plan.calculator)
                .map_err(|error| ExperimentError::Template { name: t.name.clone(), error })?;
        files.push(ResultsFile::open(&Plan::file(&plan.dir, &t.name), &s)?);
        settings.push(s);
    }
    let done: Vec<HashSet<usize>> = files.iter().map(|f| f.existing.iter().map(|r| r.index).collect()).collect();
    let mut items = Vec::new();
    let mut owner = Vec::new();
    for &q in &plan.questions {
        for (t, template) in plan.templates.iter().enumerate() {
            if !done[t].contains(&q) {
                items.push(Item { template, index: q });
                owner.push(t);
            }
        }
    }
    on(Event::Opened {
        files: plan.files(),
        existing: files.iter().map(|f| f.existing.clone()).collect(),
        todo: items.len(),
    });
    let selector = Selector { judge: None, strategies: vec![Strategy::Majority] };
    let mut written = 0;
    evaluate_items(engine, &items, &plan.sampling, &opts, cancel, &mut |p: Progress| -> Result<(), ExperimentError> {
        match p {
            Progress::PathDone { item } => on(Event::PathDone { template: owner[item], index: items[item].index }),
            Progress::Finished { item, mut record } => {
                let cut_short = record.paths.iter().any(|p| p.stop_reason == StopReason::Cancelled.as_str());
                if cut_short && cancel.is_cancelled() {
                    return Ok(());
                }
                let t = owner[item];
                record.settings = Some(settings[t].clone());
                selector.fill(&mut record)?;
                files[t].append(&record)?;
                written += 1;
                on(Event::Record { template: t, record });
            }
        }
        Ok(())
    })?;
    Ok(Outcome { written, cancelled: cancel.is_cancelled() })
}

#[cfg(test)]
mod tests;
