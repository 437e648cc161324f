//! `cotscope bench`: load, prefill and decode speed, peak memory, and the decode rate against the
//! memory-bandwidth bound, on a model directory or on random weights of a published BLOOM shape.

use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::bench::{self, BenchModel, DecodeRun};
use crate::model::quant::QuantKind;
use crate::model::{self, threads, Config, LoadOptions};

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
    peak_rss_bytes: u64,
    peak_rss_over_weights: f64,
    read_bandwidth_gb_s: f64,
    /// One path's decode rate if every step only streamed the weights at the measured bandwidth.
    bound_tok_s: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let threads = threads::set_compute_threads(args.threads);
    let dtype = model::parse_dtype(&args.dtype)?;
    let quantize = match &args.quantize {
        Some(q) => Some(QuantKind::parse(q).with_context(|| format!("--quantize '{q}': expected q8_0 or q4k"))?),
        None => None,
    };
    if quantize.is_some() && dtype != candle_core::DType::F32 {
        bail!("--quantize works on f32 activations; drop --dtype {}", args.dtype);
    }
    if args.paths.is_empty() || args.paths.contains(&0) {
        bail!("--paths: each count must be at least 1");
    }
    if args.prompt_tokens == 0 {
        bail!("--prompt-tokens must be at least 1");
    }
    let opts = LoadOptions { dtype: Some(dtype), quantize };

    let t0 = Instant::now();
    let (name, mut m) = load(&args, &opts)?;
    let load_s = t0.elapsed().as_secs_f64();
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
    let bw = bench::read_bandwidth_gb_s(args.bandwidth_mib, threads);
    let bound_steps = bw * 1e9 / m.decode_bytes_per_step.max(1) as f64;
    for r in runs.iter_mut() {
        r.fraction_of_bound = Some(r.decode_tok_s / r.paths as f64 / bound_steps);
    }
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
        read_bandwidth_gb_s: bw,
        bound_tok_s: bound_steps,
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
    };
    Ok((l.info.id, m))
}

fn print_text(r: &Report) {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!("model            {}", r.model);
    println!("format           {} ({} threads)", r.format, r.threads);
    println!(
        "parameters       {:.1} M, {:.2} GiB of weights, {:.2} GiB streamed per decode step",
        r.n_params as f64 / 1e6,
        gib(r.weight_bytes as u64),
        gib(r.decode_bytes_per_token as u64)
    );
    println!("load             {:.2} s", r.load_s);
    println!("prefill          {} tokens in {:.2} s ({:.0} tok/s)", r.prompt_tokens, r.prefill_s, r.prefill_tok_s);
    for run in &r.runs {
        println!(
            "decode x{:<2}       {:.2} tok/s all paths ({:.1} ms/step, {:.0}% of the bandwidth bound, {:.2} cores busy)",
            run.paths,
            run.decode_tok_s,
            run.step_ms,
            100.0 * run.fraction_of_bound.unwrap_or(0.0),
            run.decode_cpu_util.unwrap_or(0.0)
        );
    }
    println!("peak memory      {:.2} GiB ({:.2}x the weights)", gib(r.peak_rss_bytes), r.peak_rss_over_weights);
    println!("read bandwidth   {:.1} GB/s: bound {:.2} tok/s for one path", r.read_bandwidth_gb_s, r.bound_tok_s);
}
