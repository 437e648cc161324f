//! The eval scenario: a template's questions run through [`Engine::generate_many`] at several batch
//! sizes, counting completed question-paths per minute (what an `eval` over GSM8K waits on).

use std::time::Instant;

use serde::Serialize;

use crate::engine::{CancelFlag, Engine, EngineError, EngineEvent, GenerateRequest};

/// One batch size's run over all requests.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRun {
    pub batch: usize,
    pub wall_s: f64,
    /// Paths completed (all paths of all questions).
    pub paths: usize,
    pub generated_tokens: usize,
    /// Prompt tokens computed (not taken from the prefix cache), all questions together.
    pub prefilled_tokens: usize,
    pub eval_paths_per_min: f64,
}

/// Runs `reqs` once per batch size, in order.
pub fn run(engine: &dyn Engine, reqs: &[GenerateRequest], batches: &[usize]) -> Result<Vec<EvalRun>, EngineError> {
    let mut out = Vec::with_capacity(batches.len());
    for &batch in batches {
        let mut paths = 0;
        let t0 = Instant::now();
        let stats = engine.generate_many(reqs, batch, &CancelFlag::new(), &mut |_, ev| {
            if matches!(ev, EngineEvent::Done(_)) {
                paths += 1;
            }
        })?;
        let wall_s = t0.elapsed().as_secs_f64().max(1e-9);
        out.push(EvalRun {
            batch,
            wall_s,
            paths,
            generated_tokens: stats.iter().map(|s| s.generated_tokens).sum(),
            prefilled_tokens: stats.iter().map(|s| s.prompt_tokens - s.cached_prompt_tokens.min(s.prompt_tokens)).sum(),
            eval_paths_per_min: paths as f64 * 60.0 / wall_s,
        });
    }
    Ok(out)
}
