//! The question-switch scenario: what a prompt designer waits for when moving from one question to
//! the next under the same template. Each prompt goes through the engine as a one-token greedy
//! generation; the time to its first token is the prefill of whatever the prefix cache did not
//! already hold, plus the first sampling.

use std::time::Instant;

use serde::Serialize;

use crate::engine::{CancelFlag, Engine, EngineError, EngineEvent, GenerateRequest, SamplingParams};

/// One prompt's first token.
#[derive(Debug, Clone, Serialize)]
pub struct QuestionTiming {
    pub question: usize,
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the prefix cache.
    pub cached_prompt_tokens: usize,
    pub ttft_ms: f64,
}

/// All prompts of a run, in order, and the summary the issue asks for.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchRun {
    /// Time to first token of the first prompt (nothing cached yet).
    pub ttft_cold_ms: f64,
    /// Median time to first token of the other prompts (`None` with one prompt).
    pub ttft_warm_ms: Option<f64>,
    /// Median prompt tokens the other prompts took from the cache (0 with one prompt).
    pub cached_prompt_tokens: usize,
    pub per_question: Vec<QuestionTiming>,
}

/// Generates one greedy token for each `(question, prompt)` in turn, timing each until its token.
pub fn run(engine: &dyn Engine, prompts: &[(usize, String)]) -> Result<SwitchRun, EngineError> {
    let mut per_question = Vec::with_capacity(prompts.len());
    for (question, prompt) in prompts {
        let req = GenerateRequest {
            prompt: prompt.clone(),
            paths: 1,
            sampling: SamplingParams { temperature: 0.0, seed: 0, max_new_tokens: 1, ..SamplingParams::default() },
            ..GenerateRequest::default()
        };
        let t0 = Instant::now();
        let mut first: Option<f64> = None;
        let stats = engine.generate(&req, &CancelFlag::new(), &mut |ev| {
            if matches!(ev, EngineEvent::Token(_)) && first.is_none() {
                first = Some(t0.elapsed().as_secs_f64() * 1e3);
            }
        })?;
        let ttft_ms =
            first.ok_or_else(|| EngineError::Model(format!("question {question}: no token was generated")))?;
        per_question.push(QuestionTiming {
            question: *question,
            prompt_tokens: stats.prompt_tokens,
            cached_prompt_tokens: stats.cached_prompt_tokens,
            ttft_ms,
        });
    }
    let Some(cold) = per_question.first() else {
        return Err(EngineError::Invalid("no prompts to run".into()));
    };
    let warm = &per_question[1..];
    let ttft_warm_ms = median(warm.iter().map(|q| q.ttft_ms).collect());
    let cached = median(warm.iter().map(|q| q.cached_prompt_tokens as f64).collect()).unwrap_or(0.0);
    Ok(SwitchRun {
        ttft_cold_ms: cold.ttft_ms,
        ttft_warm_ms,
        cached_prompt_tokens: cached.round() as usize,
        per_question,
    })
}

/// The median (the lower middle of an even count, so it is one of the values).
fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    Some(xs[(xs.len() - 1) / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_one_of_the_values() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0]), Some(3.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
    }
}
