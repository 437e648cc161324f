//! `cotscope bench`: load, prefill and decode speed, peak memory, and the decode rate against the
//! memory-bandwidth bound, on a model directory or on random weights of a published BLOOM shape;
//! with `--scenario question-switch`, the time to first token when moving between questions of one
//! template (the prefix cache at work).

use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::bench::{self, BenchModel, DecodeRun};
use crate::engine::{GenerateRequest, LocalEngine, ModelInfo, SamplingParams};
use crate::lab::gsm8k;
use crate::model::quant::QuantKind;
use crate::model::{self, threads, Config, LoadOptions};

/// What `bench` measures.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Prefill a synthetic prompt, then decode 1..N paths in one batch (`--paths`).
    Decode,
    /// Time to first token over a template's questions in turn (`--template`, `--questions`).
    QuestionSwitch,
    /// A template's questions (`--questions`, `--paths`, `--new-tokens`) decoded at each `--batch` size.
    Eval,
}

const SHAPES: [&str; 5] = ["bloom-560m", "bloom-1b1", "bloom-1b7", "bloom-3b", "bloom-7b1"];

/// Flags of `cotscope bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// A model directory or hub id (default: the embedded model unless --shape is given).
    #[arg(long, conflicts_with = "shape")]
    pub model: Option<String>,
    /// Random weights of a published bigscience shape, built in memory (no download):
    /// bloom-560m, bloom-1b1, bloom-1b7, bloom-3b or bloom-7b1.
    #[arg(long)]
    pub shape: Option<String>,
    /// Prompt length in tokens (random ids).
    #[arg(long, default_value_t = 700)]
    pub prompt_tokens: usize,
    /// Tokens generated per path.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Path counts to measure, each decoded as one batch after one shared prefill.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    pub paths: Vec<usize>,
    /// Weights' dtype: f32 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Quantize every matrix: q8_0 or q4k (activations stay f32).
    #[arg(long)]
    pub quantize: Option<String>,
    /// Compute threads (default: the available cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Size of the buffer the read bandwidth is measured on, in MiB (well above the last-level cache).
    #[arg(long, default_value_t = 256)]
    pub bandwidth_mib: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Decode)]
    pub scenario: Scenario,
    /// Batch sizes of the eval scenario (sequences decoded together).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub batch: Vec<usize>,
    /// Template of the question-switch and eval scenarios, e.g. wei-8shot.
    #[arg(long)]
    pub template: Option<String>,
    /// GSM8K test questions of the question-switch and eval scenarios, in order (as `eval --questions`).
    #[arg(long, default_value = "0,1,2,3")]
    pub questions: String,
    /// Directory of template YAML files. Default: ./templates, else the project's templates.
    #[arg(long)]
    pub templates_dir: Option<std::path::PathBuf>,
    /// Prefix cache of the question-switch scenario, in MiB (0: off; the decode scenario never
    /// caches, so each path count pays the whole prefill). [default: 1024]
    #[arg(long, value_name = "MB")]
    pub prefix_cache_mb: Option<usize>,
}

#[derive(Serialize)]
struct SwitchReport {
    scenario: &'static str,
    model: String,
    format: String,
    threads: usize,
    template: String,
    questions: Vec<usize>,
    prefix_cache_mb: usize,
    ttft_cold_ms: f64,
    ttft_warm_ms: Option<f64>,
    /// `ttft_warm_ms / ttft_cold_ms`.
    warm_over_cold: Option<f64>,
    cached_prompt_tokens: usize,
    per_question: Vec<bench::question_switch::QuestionTiming>,
}

#[derive(Serialize)]
struct Report {
    model: String,
    format: String,
    threads: usize,
    n_params: usize,
    weight_bytes: usize,
    decode_bytes_per_token: usize,
    load_s: f64,
    prompt_tokens: usize,
    new_tokens: usize,
    prefill_s: f64,
    prefill_tok_s: f64,
    runs: Vec<DecodeRun>,
    /// The peak resident set from the load to the end of the runs (the bandwidth probe before the
    /// load is not counted where the kernel lets the peak be restarted).
    peak_rss_bytes: u64,
    peak_rss_over_weights: f64,
    /// The peak resident set of the load alone: the weights and whatever the load held beside them.
    load_peak_rss_bytes: u64,
    load_peak_rss_over_weights: f64,
    /// The higher of `read_bandwidth_samples_gb_s`.
    read_bandwidth_gb_s: f64,
    /// Read bandwidth just before the model loaded and just after the runs.
    read_bandwidth_samples_gb_s: [f64; 2],
    /// Each reader's better reading of the two: the plain summing loop, and the one that reads
    /// as the decode kernels do (the faster is the bound), each with its median pass.
    read_bandwidth_by_reader_gb_s: bench::ReadBandwidth,
    /// The median pass of the reader that sets the bound (the higher of the two readings): what
    /// the memory typically gave while the probe ran, against its best moment.
    read_bandwidth_median_gb_s: f64,
    /// One path's decode rate if every step only streamed the weights and the keys and values it
    /// attends to (on average over the run) at the measured bandwidth.
    bound_tok_s: f64,
    /// False where what one path's step streams (weights, keys and values) fits in the last-level
    /// cache (the embedded model): it is then read from the cache, not memory, and the bound and
    /// `fraction_of_bound` mean nothing.
    bound_applies: bool,
    /// Bytes of keys and values per cached position, all layers.
    kv_bytes_per_token: usize,
}

/// Whether a step streaming `step_bytes` is bound by memory: not where they fit in the last-level
/// cache (`llc`, when known).
fn bound_applies(step_bytes: usize, llc: Option<usize>) -> bool {
    llc.is_none_or(|llc| step_bytes > llc)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // `main` sized the pools from --threads before any thread started.
    let threads = threads::compute_threads();
    match args.scenario {
        Scenario::Decode => run_decode(args, threads),
        Scenario::QuestionSwitch => run_question_switch(args, threads),
        Scenario::Eval => run_eval(args, threads),
    }
}

#[derive(Serialize)]
struct EvalReport {
    scenario: &'static str,
    model: String,
    format: String,
    threads: usize,
    template: String,
    questions: usize,
    paths: usize,
    new_tokens: usize,
    runs: Vec<bench::eval_scenario::EvalRun>,
}

/// The template and its rendered prompts for `--questions`.
fn template_prompts(
    args: &Args,
    scenario: &str,
) -> anyhow::Result<(crate::lab::template::Template, Vec<(usize, String)>)> {
    let Some(name) = args.template.as_deref() else {
        bail!("--scenario {scenario} needs --template (e.g. --template wei-8shot)");
    };
    let (_, template) = super::prompt::load_template(name, args.templates_dir.as_deref())?;
    let questions = super::eval::parse_questions(&args.questions, gsm8k::test_set().len())?;
    let prompts = questions
        .iter()
        .map(|&i| Ok((i, template.render(&gsm8k::test_problem(i)?.question))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((template, prompts))
}

fn run_eval(args: Args, threads: usize) -> anyhow::Result<()> {
    let (template, prompts) = template_prompts(&args, "eval")?;
    let paths = match args.paths.as_slice() {
        [p] if *p > 0 => *p,
        _ => bail!("--scenario eval takes one --paths count of at least 1"),
    };
    if args.batch.is_empty() || args.batch.contains(&0) {
        bail!("--batch: each size must be at least 1");
    }
    let mut opts = load_options(&args)?;
    opts.prefix_cache_mb = Some(opts.prefix_cache_mb.unwrap_or(model::DEFAULT_PREFIX_CACHE_MB));
    let reqs: Vec<GenerateRequest> = prompts
        .iter()
        .map(|(_, prompt)| GenerateRequest {
            prompt: prompt.clone(),
            paths,
            sampling: SamplingParams {
                temperature: 0.0,
                seed: 0,
                max_new_tokens: args.new_tokens,
                ..SamplingParams::default()
            },
            stop: template.stop_strings().to_vec(),
            ..GenerateRequest::default()
        })
        .collect();
    // A fresh model per batch size: what one size cached must not speed up the next.
    let (mut model_name, mut runs) = (String::new(), Vec::new());
    for &batch in &args.batch {
        let (name, engine) = open_engine(&args, &opts)?;
        model_name = name;
        runs.extend(bench::eval_scenario::run(&engine, &reqs, &[batch]).context("eval run")?);
    }
    let report = EvalReport {
        scenario: "eval",
        model: model_name,
        format: model::format_name(&opts),
        threads,
        template: template.name.clone(),
        questions: reqs.len(),
        paths,
        new_tokens: args.new_tokens,
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!("model            {} ({}, {} threads)", report.model, report.format, report.threads);
    println!(
        "eval             {}: {} questions x {} paths, up to {} new tokens",
        report.template, report.questions, report.paths, report.new_tokens
    );
    for r in &report.runs {
        println!(
            "batch {:<3}        {:.1} question-paths/min ({} paths, {} tokens in {:.1} s)",
            r.batch, r.eval_paths_per_min, r.paths, r.generated_tokens, r.wall_s
        );
    }
    Ok(())
}

/// The load options the flags ask for (prefix cache as given; callers decide its default).
fn load_options(args: &Args) -> anyhow::Result<LoadOptions> {
    let dtype = model::parse_dtype(&args.dtype)?;
    let quantize = match &args.quantize {
        Some(q) => Some(QuantKind::parse(q).with_context(|| format!("--quantize '{q}': expected q8_0 or q4k"))?),
        None => None,
    };
    if quantize.is_some() && dtype != candle_core::DType::F32 {
        bail!("--quantize works on f32 activations; drop --dtype {}", args.dtype);
    }
    Ok(LoadOptions { dtype: Some(dtype), quantize, prefix_cache_mb: args.prefix_cache_mb })
}

fn run_question_switch(args: Args, threads: usize) -> anyhow::Result<()> {
    let (template, prompts) = template_prompts(&args, "question-switch")?;
    let questions: Vec<usize> = prompts.iter().map(|(i, _)| *i).collect();
    let mut opts = load_options(&args)?;
    opts.prefix_cache_mb = Some(opts.prefix_cache_mb.unwrap_or(model::DEFAULT_PREFIX_CACHE_MB));
    let (model_name, engine) = open_engine(&args, &opts)?;
    let r = bench::question_switch::run(&engine, &prompts).context("question-switch run")?;
    let report = SwitchReport {
        scenario: "question-switch",
        model: model_name,
        format: model::format_name(&opts),
        threads,
        template: template.name.clone(),
        questions,
        prefix_cache_mb: opts.prefix_cache_mb.unwrap_or(0),
        ttft_cold_ms: r.ttft_cold_ms,
        ttft_warm_ms: r.ttft_warm_ms,
        warm_over_cold: r.ttft_warm_ms.map(|w| w / r.ttft_cold_ms.max(1e-9)),
        cached_prompt_tokens: r.cached_prompt_tokens,
        per_question: r.per_question,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!("model            {} ({}, {} threads)", report.model, report.format, report.threads);
    println!("template         {}", report.template);
    for q in &report.per_question {
        println!(
            "question {:<7} {} prompt tokens, {} from the prefix cache: first token after {:.0} ms",
            q.question, q.prompt_tokens, q.cached_prompt_tokens, q.ttft_ms
        );
    }
    match (report.ttft_warm_ms, report.warm_over_cold) {
        (Some(w), Some(ratio)) => {
            println!("first token      cold {:.0} ms, warm {w:.0} ms (median; {ratio:.2}x cold)", report.ttft_cold_ms)
        }
        _ => println!("first token      cold {:.0} ms (one question: nothing warm)", report.ttft_cold_ms),
    }
    Ok(())
}

/// A local engine over the model the flags name; a random shape gets the embedded model's tokenizer.
fn open_engine(args: &Args, opts: &LoadOptions) -> anyhow::Result<(String, LocalEngine)> {
    if args.shape.is_some() {
        let (name, m) = load(args, opts)?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(model::embedded::TOKENIZER)
            .map_err(|e| anyhow::anyhow!("the embedded tokenizer: {e}"))?;
        let eos = tokenizer.token_to_id("</s>");
        let info = ModelInfo {
            id: name.clone(),
            config_hash: String::new(),
            n_params: m.n_params,
            vocab_size: m.model.vocab_size(),
            dtype: model::format_name(opts),
            remote: None,
        };
        return Ok((name, LocalEngine::new(m.model, tokenizer, eos, info)));
    }
    let l = model::load(args.model.as_deref(), opts)?;
    Ok((l.info.id.clone(), LocalEngine::new(l.model, l.tokenizer, l.eos_token_id, l.info)))
}

fn run_decode(args: Args, threads: usize) -> anyhow::Result<()> {
    let mut opts = load_options(&args)?;
    // Every path count prefills the same prompt: a cache would turn the later prefills into lookups.
    opts.prefix_cache_mb = Some(0);
    if args.paths.is_empty() || args.paths.contains(&0) {
        bail!("--paths: each count must be at least 1");
    }
    if args.prompt_tokens == 0 {
        bail!("--prompt-tokens must be at least 1");
    }

    // The host's bandwidth moves over seconds (other tenants): it is read just before the model
    // loads and just after it is dropped, and the higher reading is the bound (the stricter one).
    let bw_before = bench::read_bandwidth(args.bandwidth_mib, threads);
    // The probe's buffer is freed by now; the peaks below are the model's.
    bench::reset_peak_rss();
    let t0 = Instant::now();
    let (name, mut m) = load(&args, &opts)?;
    let load_s = t0.elapsed().as_secs_f64();
    let load_peak = bench::peak_rss_bytes().unwrap_or(0);
    let vocab = m.model.vocab_size();
    let prompt = bench::synthetic_prompt(args.prompt_tokens, vocab);

    let mut runs = Vec::new();
    for &paths in &args.paths {
        let r = bench::run_decode(m.model.as_mut(), &prompt, args.new_tokens, paths).context("benchmark run")?;
        if !args.json {
            eprintln!(
                "paths {paths}: prefill {:.2} s, decode {:.2} tok/s ({:.1} ms/step)",
                r.prefill_s, r.decode_tok_s, r.step_ms
            );
        }
        runs.push(r);
    }
    let peak = bench::peak_rss_bytes().unwrap_or(0);
    drop(m.model);
    let bw_after = bench::read_bandwidth(args.bandwidth_mib, threads);
    let by_reader = bw_before.max(bw_after);
    let bw = by_reader.best();
    // A step streams the weights and the keys and values it attends to: the prompt's (shared by
    // the rows) and each row's own, on average half the new tokens plus the one it is fed.
    let kv_per_step = |paths: usize| m.kv_bytes_per_token * (args.prompt_tokens + paths * (args.new_tokens + 1) / 2);
    let bound_steps_s = |paths: usize| bw * 1e9 / (m.decode_bytes_per_step + kv_per_step(paths)).max(1) as f64;
    for r in runs.iter_mut() {
        r.kv_bytes_per_step = Some(kv_per_step(r.paths));
        let fraction = r.decode_tok_s / r.paths as f64 / bound_steps_s(r.paths);
        r.fraction_of_bound = Some(fraction);
        r.fraction_of_median_bandwidth = Some(fraction * bw / by_reader.median().max(1e-9));
    }
    let bound_steps = bound_steps_s(1);
    let prefill_s = runs.iter().map(|r| r.prefill_s).fold(f64::MAX, f64::min);
    let report = Report {
        model: name,
        format: model::format_name(&opts),
        threads,
        n_params: m.n_params,
        weight_bytes: m.weight_bytes,
        decode_bytes_per_token: m.decode_bytes_per_step,
        load_s,
        prompt_tokens: args.prompt_tokens,
        new_tokens: args.new_tokens,
        prefill_s,
        prefill_tok_s: args.prompt_tokens as f64 / prefill_s,
        runs,
        peak_rss_bytes: peak,
        peak_rss_over_weights: peak as f64 / m.weight_bytes.max(1) as f64,
        load_peak_rss_bytes: load_peak,
        load_peak_rss_over_weights: load_peak as f64 / m.weight_bytes.max(1) as f64,
        read_bandwidth_gb_s: bw,
        read_bandwidth_samples_gb_s: [bw_before.best(), bw_after.best()],
        read_bandwidth_by_reader_gb_s: by_reader,
        read_bandwidth_median_gb_s: by_reader.median(),
        bound_tok_s: bound_steps,
        bound_applies: bound_applies(m.decode_bytes_per_step + kv_per_step(1), model::cpu::last_level_cache_bytes()),
        kv_bytes_per_token: m.kv_bytes_per_token,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn load(args: &Args, opts: &LoadOptions) -> anyhow::Result<(String, BenchModel)> {
    if let Some(shape) = &args.shape {
        let cfg = Config::published(shape)
            .with_context(|| format!("--shape '{shape}': expected one of {}", SHAPES.join(", ")))?;
        let m = bench::random_model(&cfg, opts)
            .map_err(|e| anyhow::anyhow!("building random {shape}: {}", model::error::first_line(&e.to_string())))?;
        return Ok((format!("{shape} (random weights)"), m));
    }
    let l = model::load(args.model.as_deref(), opts)?;
    let m = BenchModel {
        model: l.model,
        n_params: l.info.n_params,
        weight_bytes: l.weight_bytes,
        decode_bytes_per_step: l.decode_bytes_per_step,
        kv_bytes_per_token: l.kv_bytes_per_token,
    };
    Ok((l.info.id, m))
}

fn print_text(r: &Report) {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!("model            {}", r.model);
    println!("format           {} ({} threads)", r.format, r.threads);
    println!(
        "parameters       {:.1} M, {:.2} GiB of weights, {:.2} GiB streamed per decode step + {:.0} KiB of keys and values per position",
        r.n_params as f64 / 1e6,
        gib(r.weight_bytes as u64),
        gib(r.decode_bytes_per_token as u64),
        r.kv_bytes_per_token as f64 / 1024.0
    );
    println!("load             {:.2} s", r.load_s);
    println!("prefill          {} tokens in {:.2} s ({:.0} tok/s)", r.prompt_tokens, r.prefill_s, r.prefill_tok_s);
    for run in &r.runs {
        let bound = if r.bound_applies {
            format!(
                "{:.0}% of the bandwidth bound, {:.0}% of the probe's median pass",
                100.0 * run.fraction_of_bound.unwrap_or(0.0),
                100.0 * run.fraction_of_median_bandwidth.unwrap_or(0.0)
            )
        } else {
            "weights in the cache: no bandwidth bound".to_string()
        };
        println!(
            "decode x{:<2}       {:.2} tok/s all paths ({:.1} ms/step, best {:.1}, median {:.1}; {bound}, {:.2} cores busy)",
            run.paths,
            run.decode_tok_s,
            run.step_ms,
            run.step_ms_best,
            run.step_ms_median,
            run.decode_cpu_util.unwrap_or(0.0)
        );
    }
    println!(
        "peak memory      {:.2} GiB ({:.2}x the weights; the load alone {:.2}x)",
        gib(r.peak_rss_bytes),
        r.peak_rss_over_weights,
        r.load_peak_rss_over_weights
    );
    println!(
        "read bandwidth   {:.1} GB/s (before {:.1}, after {:.1}; plain reader {:.1}, streaming {:.1}; median pass {:.1}): bound {:.2} tok/s for one path",
        r.read_bandwidth_gb_s,
        r.read_bandwidth_samples_gb_s[0],
        r.read_bandwidth_samples_gb_s[1],
        r.read_bandwidth_by_reader_gb_s.plain,
        r.read_bandwidth_by_reader_gb_s.streaming,
        r.read_bandwidth_median_gb_s,
        r.bound_tok_s
    );
}

#[cfg(test)]
mod tests {
    use super::bound_applies;

    #[test]
    fn the_bound_applies_to_weights_larger_than_the_last_level_cache() {
        let l3 = Some(32 << 20);
        assert!(!bound_applies(17 << 20, l3), "the embedded model's 17 MiB stay in a 32 MiB L3");
        assert!(!bound_applies(32 << 20, l3));
        assert!(bound_applies((32 << 20) + 1, l3));
        assert!(bound_applies(2_236_858_368, l3), "bloom-560m in f32");
        assert!(bound_applies(17 << 20, None), "an unknown cache: the bound is kept");
    }
}
