//! `cotscope eval`: runs a template over GSM8K test questions, one JSON line per question, and sums up.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::common::{ModelArgs, SamplingArgs};
use crate::engine::Engine;
use crate::lab::detect::FailureKind;
use crate::lab::evalfile::{self, EvalRecord, ResultsFile, Summary};
use crate::lab::experiment::{evaluate_questions, QuestionOptions};
use crate::lab::gsm8k;
use crate::lab::judge::JudgePrompt;
use crate::lab::select::{self, Selector, Strategy};
use crate::lab::settings::{self as lab_settings, RunSettings};
use crate::lab::template::Template;

const AFTER_HELP: &str = "\
Each question is generated with the template's stop strings. With --out FILE.jsonl, one JSON line per
question is appended as soon as it finishes:
  {\"index\", \"template\", \"prompt_hash\" (sha256 of the prompt), \"paths\": [{\"text\", \"answer\",
   \"answer_rule\", \"failures\", \"stop_reason\", \"stop_string\"?, \"tokens\",
   \"logprob\"?, \"forced_spans\"? (byte ranges the calculator wrote)}], \"vote\", \"gold\",
   \"correct\" (majority vote right), \"first_correct\", \"generation_ms\",
   \"select\": [{\"strategy\", \"answer\", \"correct\", \"tie\"?, \"fallback\"?, \"scores\"?}],
   \"settings\": {\"model\": {\"id\", \"config_hash\", \"dtype\", \"quantize\"}, \"template\", \"template_hash\",
   \"sampling\": {\"temperature\", \"top_k\", \"top_p\", \"seed\", \"max_new_tokens\", …}, \"paths\", \"stop\",
   \"cotscope_version\"}}
--select majority,weighted,verified,judge scores the same paths with each strategy: majority (ties go to
the answer given first), weighted (votes weighted by each path's probability), verified (majority of the
paths without arithmetic_error), judge (the model picks a candidate after templates/judge/judge.yaml).
Rerunning with the same --out skips the questions already there (a line cut short by a crash is run
again), so an interrupted run loses no finished question. A rerun with other settings (model, dtype,
quantize, sampling, seed, paths, max tokens, an edited template) is refused, naming the setting; with
--out pointing at a directory, each settings get their own file there (<template>-<key>.jsonl).

Example:
  cotscope eval --template wei-8shot --questions 0..20 --paths 3 --out wei.jsonl";

/// Flags of `cotscope eval`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Template name (its `name:` field or file stem), e.g. wei-8shot.
    #[arg(long)]
    pub template: String,
    /// GSM8K test questions: `A..B` (B excluded), `A..=B`, `A`, or a comma list of those.
    #[arg(long, default_value = "0..100")]
    pub questions: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Append one JSON line per question here; rerunning with the same file resumes. A directory
    /// keeps one file per settings.
    #[arg(long, value_name = "FILE.jsonl|DIR")]
    pub out: Option<PathBuf>,
    /// Directory of template YAML files. Default: ./templates, else the project's templates.
    #[arg(long)]
    pub templates_dir: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Decode up to this many sequences (paths of several questions) in one batch; a finished
    /// question's rows go to the next question at once. Output equals one question at a time.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Selection strategies scored on the same paths (comma list): majority, weighted, verified, judge.
    #[arg(long, default_value = "majority")]
    pub select: String,
    /// Model for `--select judge` (directory or hub id; same --dtype/--quantize). Default: the model that
    /// generated.
    #[arg(long)]
    pub judge_model: Option<String>,
    /// OpenAI-compatible server of the judge (`--select judge`), e.g. http://gpu-box:8000/v1; then
    /// --judge-model names the served model (default: the first it lists). It must return `logprobs`.
    #[arg(long, value_name = "URL")]
    pub judge_endpoint: Option<String>,
    /// Judge prompt file. Default: judge/judge.yaml in the templates directory, else the shipped one.
    #[arg(long, value_name = "FILE.yaml")]
    pub judge_prompt: Option<PathBuf>,
    /// Questions in flight at once. With --endpoint the server batches them; a local model takes
    /// them in turn (use --batch to decode several questions together locally).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Calculator in the loop: after `expression =`, write the exact result for the model; those
    /// results are not checked for arithmetic errors.
    #[arg(long)]
    pub calculator: bool,
}

/// Parses `--questions`: `0..100`, `5..=9`, `7`, `1,3,10..12`. Order kept, duplicates dropped.
pub fn parse_questions(spec: &str, len: usize) -> anyhow::Result<Vec<usize>> {
    crate::lab::experiment::parse_questions(spec, len).map_err(|e| anyhow::anyhow!("--questions {e}"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (_, template) = super::prompt::load_template(&args.template, args.templates_dir.as_deref())?;
    let questions = parse_questions(&args.questions, gsm8k::test_set().len())?;
    let strategies = Strategy::parse_list(&args.select).context("--select")?;
    if args.sampling.paths == 0 {
        anyhow::bail!("--paths must be at least 1");
    }
    if args.batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let mut settings = run_settings(&args, &template)?;
    let out = args.out.as_deref().map(|o| evalfile::results_path(o, &settings));
    if let (Some(o), Some(p)) = (&args.out, &out) {
        if o != p {
            eprintln!("results of these settings: {}", p.display());
        }
    }
    let mut results = match &out {
        Some(p) => Some(ResultsFile::open(p, &settings)?),
        None => None,
    };
    let wanted: HashSet<usize> = questions.iter().copied().collect();
    let mut records: Vec<EvalRecord> = results
        .as_ref()
        .map(|r| r.existing.iter().filter(|r| wanted.contains(&r.index)).cloned().collect())
        .unwrap_or_default();
    let done: HashSet<usize> =
        results.as_ref().map(|r| r.existing.iter().map(|r| r.index).collect()).unwrap_or_default();
    let todo: Vec<usize> = questions.iter().copied().filter(|i| !done.contains(i)).collect();
    if let (Some(r), Some(p)) = (&results, &out) {
        if !r.existing.is_empty() || r.dropped_partial_line {
            eprintln!(
                "resuming {}: {} of {} questions already done{}",
                p.display(),
                questions.len() - todo.len(),
                questions.len(),
                if r.dropped_partial_line { " (dropped a line cut short by an interrupted run)" } else { "" }
            );
        }
    }
    let unjudged = records.iter().any(|r| !r.select.iter().any(|s| s.strategy == Strategy::Judge));
    let judging = strategies.contains(&Strategy::Judge) && (unjudged || !todo.is_empty());
    let engine = if !todo.is_empty() || (judging && args.judge_model.is_none() && args.judge_endpoint.is_none()) {
        Some(args.model.open_engine()?)
    } else {
        None
    };
    let selector = Selector { judge: open_judge(&args, judging, engine.as_ref())?, strategies };
    let filled = records.iter_mut().map(|r| selector.fill(r)).collect::<Result<Vec<bool>, _>>()?;
    if let (Some(p), n @ 1..) = (&args.out, filled.iter().filter(|&&f| f).count()) {
        eprintln!(
            "scored {n} questions already in {} with strategies their lines lack (not written back)",
            p.display()
        );
    }
    let mut this_run = ThisRun { concurrency: args.concurrency, ..ThisRun::default() };
    if let (false, Some(engine)) = (todo.is_empty(), engine) {
        // The model's config is known now: a file of another config is refused before anything runs.
        settings.model.config_hash = engine.info().config_hash;
        if let Some(r) = &results {
            r.check(&settings)?;
        }
        let bar = progress_bar(questions.len(), questions.len() - todo.len());
        update_message(&bar, &evalfile::summarize(&records));
        let params = args.sampling.params();
        let opts = QuestionOptions {
            paths: args.sampling.paths,
            batch: args.batch,
            calculator: args.calculator,
            // `weighted` needs each path's probability.
            logprobs: selector.strategies.contains(&Strategy::Weighted),
            stop: None,
        };
        let started = Instant::now();
        let mut on_done = |mut r: EvalRecord| -> anyhow::Result<()> {
            r.settings = Some(settings.clone());
            selector.fill(&mut r)?;
            if let Some(f) = results.as_mut() {
                f.append(&r)?;
            }
            this_run.add(&r);
            records.push(r);
            bar.inc(1);
            update_message(&bar, &evalfile::summarize(&records));
            Ok(())
        };
        if args.concurrency > 1 {
            // Questions in flight on threads (a server batches them); each question alone.
            let one = QuestionOptions { batch: 1, ..opts.clone() };
            let work = |i: usize| -> anyhow::Result<EvalRecord> {
                let mut out = None;
                evaluate_questions(engine.as_ref(), &template, &[i], &params, &one, &mut |r| {
                    out = Some(r);
                    anyhow::Ok(())
                })?;
                out.ok_or_else(|| anyhow::anyhow!("question {i}: the engine did not finish it"))
            };
            in_flight(&todo, args.concurrency, work, |r| on_done(r?))?;
        } else if judging {
            // The judge may be the generating engine, which is busy while it reports a finished
            // question: judge each batch of questions after its generation returns.
            for chunk in todo.chunks(args.batch) {
                let mut finished = Vec::new();
                evaluate_questions(engine.as_ref(), &template, chunk, &params, &opts, &mut |r| {
                    finished.push(r);
                    anyhow::Ok(())
                })?;
                finished.into_iter().try_for_each(&mut on_done)?;
            }
        } else {
            evaluate_questions(engine.as_ref(), &template, &todo, &params, &opts, &mut on_done)?;
        }
        this_run.wall_s = started.elapsed().as_secs_f64();
        // Left on screen (a short run would otherwise flash by unseen).
        bar.finish();
    }
    records.sort_by_key(|r| r.index);
    let summary = evalfile::summarize(&records);
    if args.json {
        let this_run = (this_run.questions > 0).then(|| this_run.report());
        println!("{}", serde_json::to_string(&JsonSummary { summary: &summary, this_run })?);
    } else {
        print!("{}", summary_text(&template.name, &args, &summary, &this_run));
    }
    Ok(())
}

/// The settings this run's results are recorded (and resumed) with; the config hash is filled in once
/// the model is loaded.
fn run_settings(args: &Args, template: &Template) -> anyhow::Result<RunSettings> {
    let stop = template.stop_strings().to_vec();
    let (sampling, paths) = (args.sampling.params(), args.sampling.paths);
    Ok(RunSettings::new(args.model.settings(), template, sampling, paths, stop, args.calculator)?)
}

/// The judge's engine (`--judge-model`, else the generating engine) and prompt, when judging.
fn open_judge(
    args: &Args,
    judging: bool,
    engine: Option<&Arc<dyn Engine>>,
) -> anyhow::Result<Option<(Arc<dyn Engine>, JudgePrompt)>> {
    if !judging {
        return Ok(None);
    }
    let dir = args.templates_dir.clone().unwrap_or_else(crate::lab::default_dir);
    let (_, prompt) = JudgePrompt::resolve(args.judge_prompt.as_deref(), &dir)?;
    let engine = match (&args.judge_model, engine) {
        _ if args.judge_endpoint.is_some() => {
            ModelArgs { endpoint: args.judge_endpoint.clone(), model: args.judge_model.clone(), ..args.model.clone() }
                .open_engine()
                .context("--judge-endpoint")?
        }
        (Some(m), _) => {
            ModelArgs { model: Some(m.clone()), ..args.model.clone() }.open_engine().context("--judge-model")?
        }
        (None, Some(e)) => Arc::clone(e),
        (None, None) => args.model.open_engine()?,
    };
    Ok(Some((engine, prompt)))
}

/// Runs `work` on every item with up to `k` in flight (threads), handing each result to `on_done`
/// on this thread as it comes; the first error from `on_done` stops taking new items.
fn in_flight<T: Send>(
    items: &[usize],
    k: usize,
    work: impl Fn(usize) -> T + Sync,
    mut on_done: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if k <= 1 {
        return items.iter().try_for_each(|&i| on_done(work(i)));
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..k.min(items.len()) {
            let (tx, next, stop, work) = (tx.clone(), &next, &stop, &work);
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Some(&i) = items.get(next.fetch_add(1, Ordering::SeqCst)) else { break };
                    if tx.send(work(i)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for t in rx {
            if let Err(e) = on_done(t) {
                stop.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(())
    })
}

/// What this invocation ran (not the questions resumed from the file).
#[derive(Clone, Debug, Default)]
struct ThisRun {
    questions: usize,
    tokens: usize,
    /// Sum of the questions' generation times.
    generation_ms: f64,
    /// Each question's latency (its generation time).
    latencies_ms: Vec<f64>,
    wall_s: f64,
    concurrency: usize,
}

impl ThisRun {
    fn add(&mut self, r: &EvalRecord) {
        self.questions += 1;
        self.tokens += r.paths.iter().map(|p| p.tokens).sum::<usize>();
        self.generation_ms += r.generation_ms;
        self.latencies_ms.push(r.generation_ms);
    }

    fn report(&self) -> ThisRunReport {
        let mut l = self.latencies_ms.clone();
        l.sort_by(f64::total_cmp);
        // Nearest rank.
        let pct =
            |p: f64| l.get(((p * l.len() as f64).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0) / 1000.0;
        let per_s = |n: usize| if self.wall_s > 0.0 { n as f64 / self.wall_s } else { 0.0 };
        ThisRunReport {
            questions: self.questions,
            tokens: self.tokens,
            wall_s: self.wall_s,
            concurrency: self.concurrency,
            questions_per_s: per_s(self.questions),
            tokens_per_s: per_s(self.tokens),
            latency_p50_s: pct(0.5),
            latency_p90_s: pct(0.9),
            latency_max_s: l.last().copied().unwrap_or(0.0) / 1000.0,
        }
    }
}

/// `this_run` in the `--json` summary.
#[derive(Clone, Debug, serde::Serialize)]
struct ThisRunReport {
    questions: usize,
    tokens: usize,
    wall_s: f64,
    concurrency: usize,
    questions_per_s: f64,
    tokens_per_s: f64,
    latency_p50_s: f64,
    latency_p90_s: f64,
    latency_max_s: f64,
}

/// The `--json` summary: the summary's fields, plus `this_run` when questions ran.
#[derive(serde::Serialize)]
struct JsonSummary<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    this_run: Option<ThisRunReport>,
}

fn progress_bar(len: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} questions · ETA {eta} · {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_position(done as u64);
    bar.reset_eta();
    bar.enable_steady_tick(Duration::from_millis(500));
    bar.tick();
    bar
}

fn update_message(bar: &ProgressBar, s: &Summary) {
    bar.set_message(format!(
        "first path {}/{} · vote {}/{}",
        s.first_correct, s.questions, s.majority_correct, s.questions
    ));
}

fn pct(a: usize, b: usize) -> String {
    if b == 0 {
        "n/a".to_string()
    } else {
        format!("{:.1}%", 100.0 * a as f64 / b as f64)
    }
}

/// The summary for people.
fn summary_text(template: &str, args: &Args, s: &Summary, run: &ThisRun) -> String {
    let (tokens, ms) = (run.tokens, run.generation_ms);
    let mut t = String::new();
    let model = match (&args.model.model, args.model.is_remote()) {
        (None, false) => lab_settings::EMBEDDED_MODEL.to_string(),
        _ => args.model.describe(),
    };
    t.push_str(&format!(
        "eval {template} on GSM8K test {}: {} questions, {} paths each (model {model}, temperature {}, seed {})\n",
        args.questions, s.questions, args.sampling.paths, args.sampling.temperature, args.sampling.seed
    ));
    t.push_str(&format!(
        "first-path accuracy:    {}/{} = {}\n",
        s.first_correct,
        s.questions,
        pct(s.first_correct, s.questions)
    ));
    t.push_str(&format!(
        "majority-vote accuracy: {}/{} = {} (ties: {})\n",
        s.majority_correct,
        s.questions,
        pct(s.majority_correct, s.questions),
        s.ties
    ));
    t.push_str(&select::summary_lines(&s.strategies));
    t.push_str(&format!("answers by rule:        strict {}, flexible {}, none {}\n", s.strict, s.flexible, s.none));
    t.push_str(&format!("failures by kind (paths with it, of {}):\n", s.paths));
    for k in FailureKind::ALL {
        let n = s.failures.iter().find(|(f, _)| *f == k).map_or(0, |(_, n)| *n);
        t.push_str(&format!("  {:<22} {n:>5}  {}\n", k.name(), pct(n, s.paths)));
    }
    match s.tokens_per_second() {
        Some(all) => {
            t.push_str(&format!("tokens/s:               {all:.1} ({} tokens generated in all)", s.tokens));
            if ms > 0.0 {
                t.push_str(&format!(
                    "; this run {:.1} ({tokens} tokens in {:.1} s)",
                    tokens as f64 / (ms / 1000.0),
                    ms / 1000.0
                ));
            }
            t.push('\n');
        }
        None => t.push_str("tokens/s:               n/a\n"),
    }
    if run.questions > 0 {
        let r = run.report();
        t.push_str(&format!(
            "throughput:             {:.2} questions/s, {:.1} tokens/s ({} questions in {:.1} s wall, concurrency {})\n",
            r.questions_per_s, r.tokens_per_s, r.questions, r.wall_s, r.concurrency
        ));
        t.push_str(&format!(
            "latency per question:   p50 {:.2} s, p90 {:.2} s, max {:.2} s\n",
            r.latency_p50_s, r.latency_p90_s, r.latency_max_s
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_specs() {
        assert_eq!(parse_questions("0..3", 1319).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_questions("5..=6", 1319).unwrap(), vec![5, 6]);
        assert_eq!(parse_questions("7", 1319).unwrap(), vec![7]);
        assert_eq!(parse_questions("3,1,2..4", 1319).unwrap(), vec![3, 1, 2]);
        assert!(parse_questions("0..2000", 1319).unwrap_err().to_string().contains("questions 0..1318"));
        assert!(parse_questions("a..b", 1319).is_err());
        assert!(parse_questions("3..3", 1319).is_err());
    }
}
