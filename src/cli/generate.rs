//! `cotscope generate`: one prompt in, streamed text (or JSON Lines events) out.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::common::{ModelArgs, SamplingArgs};
use crate::engine::{EngineEvent, Forcer, GenerateRequest, Generation, GenerationStats, PathResult, TopLogprob};
use crate::lab::calculator::Calculator;

const AFTER_HELP: &str = "\
Output:
  Plain: the generated text (not the prompt) streams to stdout as it is produced. With several
  paths, path 0 streams under a `--- path 0 ---` header and every other path follows, in order,
  under its own header once it has finished. Stop reasons and speed go to stderr.

  --json: one JSON object per line:
    {\"event\":\"token\",\"path\":0,\"id\":123,\"text\":\"...\"}        per token (text may be empty
        while a character or a possible stop string is incomplete); with --logprobs K also
        \"logprob\":-0.12,\"top\":[{\"id\":..,\"text\":\"..\",\"logprob\":..}, ...] (log-softmax of the raw
        logits, most likely first) and, from the local engine, \"entropy\":1.3 (nats, of the whole
        distribution); \"forced\":true on tokens the calculator inserted
    {\"event\":\"done\",\"path\":0,\"token_ids\":[...],\"text\":\"...\",\"stop_reason\":\"max_tokens|eos|stop_string|cancelled|error\"}
        per path when it ends (generated ids only; with \"stop_string\":\"...\" when it stopped on one,
        \"error\":\"...\" when it ended in an error, \"forced_spans\":[[start,end],...] (byte ranges
        of text) when --calculator wrote results)
    {\"event\":\"stats\",\"prefill_ms\":...,\"decode_tok_s\":...,...,\"cached_prompt_tokens\":...}   last
        (decode rate of all paths together; prompt tokens taken from the prefix cache)

Examples:
  cotscope generate --prompt $'Q: What is 3 + 4?\\nA:' --max-new-tokens 48 --stop '\\nQ:'
  cotscope generate --prompt-file prompt.txt --paths 4 --temperature 0.8 --seed 1 --json";

/// Flags of `cotscope generate`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt to continue.
    #[arg(long, required_unless_present = "prompt_file", conflicts_with = "prompt_file")]
    pub prompt: Option<String>,
    /// Read the prompt from this file, used byte for byte (no trimming).
    #[arg(long, value_name = "FILE")]
    pub prompt_file: Option<PathBuf>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Stop a path when its text reaches STR (repeatable; the string itself is not output).
    /// Escapes \n, \t, \r and \\ are understood, so --stop '\nQ:' works from a shell.
    #[arg(long = "stop", value_name = "STR")]
    pub stop: Vec<String>,
    /// Print JSON Lines events instead of plain text (see below).
    #[arg(long)]
    pub json: bool,
    /// With --json: report each token's log-probability and the K most likely alternatives.
    #[arg(long, value_name = "K")]
    pub logprobs: Option<usize>,
    /// Calculator in the loop: after `expression =`, write the exact result for the model (those
    /// tokens are marked "forced": true in --json).
    #[arg(long)]
    pub calculator: bool,
}

/// Turns `\n`, `\t`, `\r` and `\\` into the characters they name; other text is kept as is.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn read_prompt(args: &Args) -> anyhow::Result<String> {
    match (&args.prompt, &args.prompt_file) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(path)) => {
            let bytes = std::fs::read(path).with_context(|| format!("prompt file {}", path.display()))?;
            String::from_utf8(bytes)
                .map_err(|e| anyhow::anyhow!("prompt file {}: not valid UTF-8 ({e})", path.display()))
        }
        (None, None) => anyhow::bail!("give the prompt with --prompt TEXT or --prompt-file FILE"),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let prompt = read_prompt(&args)?;
    let req = GenerateRequest {
        prompt,
        paths: args.sampling.paths,
        sampling: args.sampling.params(),
        stop: args.stop.iter().map(|s| unescape(s)).collect(),
        logprobs: args.logprobs,
        forcer: args.calculator.then(|| Forcer::new(Calculator)),
        ..GenerateRequest::default()
    };
    // Reject a bad request before spending time on loading the model.
    crate::engine::local::validate(&req)?;
    let engine = args.model.open_engine()?;
    let generation = Generation::spawn(engine, req.clone());
    let mut out: Box<dyn Output> = if args.json {
        Box::new(JsonOutput { logprobs: args.logprobs.is_some() })
    } else {
        Box::new(PlainOutput::new(req.paths))
    };
    let stdout = io::stdout();
    let mut w = stdout.lock();
    for msg in generation.events.iter() {
        let ev = msg?;
        match out.event(&mut w, &ev).and_then(|_| w.flush()) {
            Ok(()) => {}
            // The reader went away (e.g. `| head`): stop generating and end quietly.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                generation.cancel();
                return Ok(());
            }
            Err(e) => return Err(e).context("writing to stdout"),
        }
    }
    generation.join()?;
    Ok(())
}

/// How one output format writes events.
trait Output {
    fn event(&mut self, w: &mut dyn Write, ev: &EngineEvent) -> io::Result<()>;
}

/// `--json`: one line per token, per finished path, and the stats. Field order is the contract's.
struct JsonOutput {
    /// Whether token lines carry `logprob` and `top` (--logprobs given).
    logprobs: bool,
}

#[derive(Serialize)]
struct TokenLine<'a> {
    event: &'static str,
    path: usize,
    /// null when the engine has no ids (a remote server).
    id: Option<u32>,
    text: &'a str,
    /// Present with --logprobs: null for a token without logits at hand (a replayed prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    logprob: Option<Option<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top: Option<Vec<TopLine<'a>>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    forced: bool,
    /// With --logprobs, where the engine knows it: the entropy (nats) of the step's distribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    entropy: Option<f32>,
}

#[derive(Serialize)]
struct TopLine<'a> {
    id: Option<u32>,
    text: &'a str,
    logprob: f32,
}

impl<'a> TopLine<'a> {
    fn new(t: &'a TopLogprob) -> Self {
        Self { id: t.id, text: &t.text, logprob: t.logprob }
    }
}

#[derive(Serialize)]
struct DoneLine<'a> {
    event: &'static str,
    path: usize,
    token_ids: &'a [u32],
    text: &'a str,
    stop_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_string: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// Byte ranges of `text` the calculator wrote, as [start, end] pairs (only when there are some).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    forced_spans: Vec<[usize; 2]>,
}

#[derive(Serialize)]
struct StatsLine {
    event: &'static str,
    prefill_ms: f64,
    decode_tok_s: f64,
    prompt_tokens: usize,
    generated_tokens: usize,
    decode_ms: f64,
    cached_prompt_tokens: usize,
}

fn json_line(w: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *w, value)?;
    w.write_all(b"\n")
}

impl Output for JsonOutput {
    fn event(&mut self, w: &mut dyn Write, ev: &EngineEvent) -> io::Result<()> {
        match ev {
            EngineEvent::Prefilled { .. } => Ok(()),
            EngineEvent::Token(t) => json_line(
                w,
                &TokenLine {
                    event: "token",
                    path: t.path,
                    id: t.id,
                    text: &t.text,
                    logprob: self.logprobs.then_some(t.logprob),
                    top: self.logprobs.then(|| t.top.iter().map(TopLine::new).collect()),
                    forced: t.forced,
                    entropy: t.entropy.filter(|_| self.logprobs),
                },
            ),
            EngineEvent::Done(r) => json_line(
                w,
                &DoneLine {
                    event: "done",
                    path: r.path,
                    token_ids: &r.token_ids,
                    text: &r.text,
                    stop_reason: r.stop_reason.as_str(),
                    stop_string: r.stop_reason.stop_string(),
                    error: r.stop_reason.error(),
                    forced_spans: r.forced_spans.iter().map(|s| [s.start, s.end]).collect(),
                },
            ),
            EngineEvent::Stats(s) => json_line(
                w,
                &StatsLine {
                    event: "stats",
                    prefill_ms: s.prefill_ms,
                    decode_tok_s: s.decode_tok_s,
                    prompt_tokens: s.prompt_tokens,
                    generated_tokens: s.generated_tokens,
                    decode_ms: s.decode_ms,
                    cached_prompt_tokens: s.cached_prompt_tokens,
                },
            ),
        }
    }
}

/// Plain text: path 0 streams; other paths print in order once finished.
struct PlainOutput {
    paths: usize,
    /// Finished paths not printed yet (waiting for a lower path to finish).
    finished: Vec<Option<PathResult>>,
    /// The next path to print (path 0 is printed as it streams).
    next: usize,
    ends_with_newline: bool,
    /// Bytes of path 0's text streamed so far.
    streamed: usize,
    reasons: Vec<String>,
}

impl PlainOutput {
    fn new(paths: usize) -> Self {
        Self { paths, finished: vec![None; paths], next: 0, ends_with_newline: true, streamed: 0, reasons: Vec::new() }
    }

    fn write_text(&mut self, w: &mut dyn Write, text: &str) -> io::Result<()> {
        if !text.is_empty() {
            w.write_all(text.as_bytes())?;
            self.ends_with_newline = text.ends_with('\n');
        }
        Ok(())
    }

    fn end_path(&mut self, w: &mut dyn Write) -> io::Result<()> {
        if !self.ends_with_newline {
            w.write_all(b"\n")?;
            self.ends_with_newline = true;
        }
        Ok(())
    }

    fn header(&self, w: &mut dyn Write, path: usize) -> io::Result<()> {
        if self.paths > 1 {
            writeln!(w, "--- path {path} ---")?;
        }
        Ok(())
    }

    fn summary(&self, s: &GenerationStats) {
        eprintln!(
            "[{}; prompt {} tokens ({} cached), prefill {:.0} ms; {} tokens at {:.1} tok/s]",
            self.reasons.join(", "),
            s.prompt_tokens,
            s.cached_prompt_tokens,
            s.prefill_ms,
            s.generated_tokens,
            s.decode_tok_s
        );
    }
}

fn describe(r: &PathResult) -> String {
    match r.stop_reason.stop_string() {
        Some(s) => format!("path {}: stop_string {s:?}", r.path),
        None => format!("path {}: {}", r.path, r.stop_reason.as_str()),
    }
}

impl Output for PlainOutput {
    fn event(&mut self, w: &mut dyn Write, ev: &EngineEvent) -> io::Result<()> {
        match ev {
            EngineEvent::Prefilled { .. } => self.header(w, 0),
            EngineEvent::Token(t) if t.path == 0 => {
                self.streamed += t.text.len();
                self.write_text(w, &t.text)
            }
            EngineEvent::Token(_) => Ok(()),
            EngineEvent::Done(r) => {
                self.reasons.push(describe(r));
                if let Some(slot) = self.finished.get_mut(r.path) {
                    *slot = Some(r.clone());
                }
                // Print every path that is now next in line.
                while let Some(Some(done)) = self.finished.get(self.next).cloned() {
                    if done.path == 0 {
                        // Streamed already, but a cancel may have released held-back text at the end.
                        let rest = done.text.get(self.streamed..).unwrap_or("").to_string();
                        self.write_text(w, &rest)?;
                    } else {
                        self.header(w, done.path)?;
                        self.write_text(w, &done.text)?;
                    }
                    self.end_path(w)?;
                    self.next += 1;
                }
                Ok(())
            }
            EngineEvent::Stats(s) => {
                self.summary(s);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_understands_the_usual_escapes() {
        assert_eq!(unescape(r"\nQ:"), "\nQ:");
        assert_eq!(unescape(r"a\tb\\n\r"), "a\tb\\n\r");
        assert_eq!(unescape(r"\x and \"), r"\x and \");
        assert_eq!(unescape("\nQ:"), "\nQ:");
    }
}
