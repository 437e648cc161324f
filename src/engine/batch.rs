//! Continuous batching: many requests (an eval's questions, each with its paths) decoded as one
//! batch of up to `max_rows` rows.
//!
//! All prompts' common start (a template's exemplars) is prefilled once and shared by every row;
//! each admitted request prefills only its own tokens (the model's prefix cache holds the rest) and
//! adds one row per path. Rows of different requests have different lengths: the model keeps each
//! row's own positions and masks the rest. A row that finishes leaves the batch at once, and the
//! next request is admitted before the next step whenever its paths fit. Every path samples from
//! the same seeded stream as in a request of its own, so the output equals one request at a time.

use std::time::Instant;

use super::local::{validate, LocalEngine, PathState};
use super::{CancelFlag, DecoderModel, EngineError, EngineEvent, GenerateRequest, GenerationStats, StopReason};

/// One admitted request's progress.
struct Running {
    paths: Vec<PathState>,
    /// Paths not finished yet.
    live: usize,
    prompt_tokens: usize,
    cached_prompt_tokens: usize,
    prefill_ms: f64,
    decode_start: Instant,
    generated: usize,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The tokens every prompt begins with, leaving each prompt at least one token of its own.
fn shared_start(prompts: &[Vec<u32>]) -> &[u32] {
    let Some(first) = prompts.first() else { return &[] };
    let n = prompts.iter().map(|p| common_prefix(first, p).min(p.len().saturating_sub(1))).min().unwrap_or(0);
    &first[..n]
}

/// Runs `reqs` with up to `max_rows` rows decoding together; `sink(i, event)` gets request `i`'s
/// events in the order [`super::Engine::generate`] gives them. Returns each request's stats.
pub(crate) fn generate_many(
    engine: &LocalEngine,
    model: &mut dyn DecoderModel,
    reqs: &[GenerateRequest],
    max_rows: usize,
    cancel: &CancelFlag,
    sink: &mut dyn FnMut(usize, EngineEvent),
) -> Result<Vec<GenerationStats>, EngineError> {
    for r in reqs {
        validate(r)?;
    }
    let prompts = reqs.iter().map(|r| engine.encode(&r.prompt)).collect::<Result<Vec<_>, _>>()?;
    if prompts.iter().any(|p| p.is_empty()) {
        return Err(EngineError::Invalid("a prompt encodes to no tokens".into()));
    }
    model.reserve_positions(reqs.iter().map(|r| r.sampling.max_new_tokens).max().unwrap_or(0));
    model.start_batch(shared_start(&prompts))?;

    let mut stats: Vec<Option<GenerationStats>> = vec![None; reqs.len()];
    let mut running: Vec<Option<Running>> = (0..reqs.len()).map(|_| None).collect();
    // `rows[r]` is (request, path) of the model's batch row r; `next[r]` the token it is fed next.
    let mut rows: Vec<(usize, usize)> = Vec::new();
    let mut next: Vec<u32> = Vec::new();
    let mut admitted = 0;
    loop {
        // Admit requests while their paths fit (one at least, whatever its size, when the batch is
        // empty), prefilling the whole wave's own tokens together: one pass over the weights.
        let mut wave = Vec::new();
        let mut taken = rows.len();
        while admitted < reqs.len()
            && !cancel.is_cancelled()
            && (taken == 0 || taken + reqs[admitted].paths <= max_rows)
        {
            wave.push(admitted);
            taken += reqs[admitted].paths;
            admitted += 1;
        }
        if !wave.is_empty() {
            let started = Instant::now();
            let asks: Vec<(&[u32], usize)> = wave.iter().map(|&i| (prompts[i].as_slice(), reqs[i].paths)).collect();
            let added = model.add_rows_many(&asks)?;
            if added.len() != wave.len() {
                return Err(EngineError::Model(format!("{} prompts added, {} asked", added.len(), wave.len())));
            }
            let prefill_ms = ms(started);
            // Rows are added in wave order: request `wave[w]`'s paths after the earlier ones'.
            let mut first_row = rows.len();
            let mut keep: Vec<usize> = (0..first_row).collect();
            for (&i, add) in wave.iter().zip(&added) {
                let req = &reqs[i];
                sink(i, EngineEvent::Prefilled { prompt_tokens: prompts[i].len(), prefill_ms });
                let mut run = Running {
                    paths: (0..req.paths).map(|p| PathState::new(req, p, &prompts[i])).collect(),
                    live: req.paths,
                    prompt_tokens: prompts[i].len(),
                    cached_prompt_tokens: add.cached_prompt_tokens,
                    prefill_ms,
                    decode_start: Instant::now(),
                    generated: 0,
                };
                for p in 0..req.paths {
                    if req.sampling.max_new_tokens == 0 {
                        sink(i, EngineEvent::Done(run.paths[p].result(StopReason::MaxTokens)));
                        run.live -= 1;
                        continue;
                    }
                    let tok =
                        engine.advance(&mut run.paths[p], &add.logits, req.sampling.max_new_tokens, &mut |e| {
                            sink(i, e)
                        })?;
                    run.generated += 1;
                    match tok {
                        Some(t) => {
                            keep.push(first_row + p);
                            rows.push((i, p));
                            next.push(t);
                        }
                        None => run.live -= 1,
                    }
                }
                first_row += req.paths;
                running[i] = Some(run);
                if running[i].as_ref().is_some_and(|r| r.live == 0) {
                    finish(i, &mut running, &mut stats, sink);
                }
            }
            if keep.len() < first_row {
                model.retain(&keep)?;
            }
        }
        if rows.is_empty() {
            if admitted < reqs.len() && !cancel.is_cancelled() {
                continue;
            }
            break;
        }
        if cancel.is_cancelled() {
            for &(i, p) in &rows {
                if let Some(run) = running[i].as_mut() {
                    let path = &mut run.paths[p];
                    let (rest, _) = path.flush(engine.tokenizer())?;
                    path.text.push_str(&rest);
                    sink(i, EngineEvent::Done(path.result(StopReason::Cancelled)));
                    run.live -= 1;
                    if run.live == 0 {
                        finish(i, &mut running, &mut stats, sink);
                    }
                }
            }
            break;
        }
        let logits = model.step(&next)?;
        if logits.len() != rows.len() {
            return Err(EngineError::Model(format!(
                "step returned {} logits rows for a batch of {}",
                logits.len(),
                rows.len()
            )));
        }
        let mut keep = Vec::with_capacity(rows.len());
        let mut kept_next = Vec::with_capacity(rows.len());
        for (r, &(i, p)) in rows.iter().enumerate() {
            let Some(run) = running[i].as_mut() else { continue };
            let max_new = reqs[i].sampling.max_new_tokens;
            let tok = engine.advance(&mut run.paths[p], &logits[r], max_new, &mut |e| sink(i, e))?;
            run.generated += 1;
            match tok {
                Some(t) => {
                    keep.push(r);
                    kept_next.push(t);
                }
                None => {
                    run.live -= 1;
                    if run.live == 0 {
                        finish(i, &mut running, &mut stats, sink);
                    }
                }
            }
        }
        if keep.len() < rows.len() {
            model.retain(&keep)?;
            rows = keep.iter().map(|&r| rows[r]).collect();
        }
        next = kept_next;
    }
    // Requests never admitted (cancelled first) end with empty cancelled paths, as `generate` does.
    for (i, req) in reqs.iter().enumerate().skip(admitted) {
        let paths: Vec<PathState> = (0..req.paths).map(|p| PathState::new(req, p, &prompts[i])).collect();
        for p in &paths {
            sink(i, EngineEvent::Done(p.result(StopReason::Cancelled)));
        }
        let s = GenerationStats { prompt_tokens: prompts[i].len(), ..GenerationStats::default() };
        sink(i, EngineEvent::Stats(s.clone()));
        stats[i] = Some(s);
    }
    Ok(stats.into_iter().map(Option::unwrap_or_default).collect())
}

/// Reports request `i`'s stats once its last path is done.
fn finish(
    i: usize,
    running: &mut [Option<Running>],
    stats: &mut [Option<GenerationStats>],
    sink: &mut dyn FnMut(usize, EngineEvent),
) {
    let Some(run) = running[i].take() else { return };
    let decode_ms = ms(run.decode_start);
    let s = GenerationStats {
        prompt_tokens: run.prompt_tokens,
        prefill_ms: run.prefill_ms,
        decode_ms,
        generated_tokens: run.generated,
        decode_tok_s: if decode_ms > 0.0 { run.generated as f64 / (decode_ms / 1000.0) } else { 0.0 },
        cached_prompt_tokens: run.cached_prompt_tokens,
    };
    sink(i, EngineEvent::Stats(s.clone()));
    stats[i] = Some(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_start_leaves_every_prompt_a_token_of_its_own() {
        assert_eq!(shared_start(&[vec![1, 2, 3, 4], vec![1, 2, 3, 5, 6]]), &[1, 2, 3]);
        assert_eq!(shared_start(&[vec![1, 2, 3], vec![1, 2, 3, 4]]), &[1, 2]);
        assert_eq!(shared_start(&[vec![1, 2, 3]]), &[1, 2]);
        assert_eq!(shared_start(&[vec![7], vec![8]]), &[] as &[u32]);
        assert_eq!(shared_start(&[]), &[] as &[u32]);
    }
}
