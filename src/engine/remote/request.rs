//! The body of `POST /completions` for one path.
//!
//! Every sampling parameter is sent explicitly, neutral ones included: each server has defaults of
//! its own (llama.cpp's server uses top-k 40, top-p 0.95, min-p 0.05 and a repeat penalty of 1.1
//! unless told otherwise), and the user must get the sampling cotscope shows. Names differ between
//! servers, so a parameter may be sent under each server's name; servers ignore names they do not know.
//!
//! Stop strings are not sent: cotscope matches them itself, exactly as the local engine does (the
//! stop reason names the string that matched, which the API's `finish_reason: "stop"` cannot tell
//! apart from end-of-sequence), and closes the stream when one completes; the server stops on the
//! closed connection.

use serde::Serialize;

use super::super::rng::Rng;
use super::super::GenerateRequest;

/// Differences between servers that the body must respect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// text-generation-inference rejects `top_p` = 1.0 (its "off" is leaving it out).
    pub(crate) tgi: bool,
}

/// A streamed completion request. Field names are the OpenAI API's unless noted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct CompletionBody<'a> {
    pub(crate) model: &'a str,
    /// The rendered template, byte for byte.
    pub(crate) prompt: &'a str,
    pub(crate) stream: bool,
    pub(crate) n: usize,
    pub(crate) max_tokens: usize,
    pub(crate) temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f64>,
    /// vLLM and llama.cpp; 0 is "no limit" for both (llama-cpp-python rejects -1).
    pub(crate) top_k: i64,
    /// vLLM and llama.cpp; 0 is off.
    pub(crate) min_p: f64,
    pub(crate) seed: u64,
    pub(crate) frequency_penalty: f64,
    pub(crate) presence_penalty: f64,
    /// vLLM's and text-generation-inference's name.
    pub(crate) repetition_penalty: f64,
    /// llama.cpp's name.
    pub(crate) repeat_penalty: f64,
    /// llama.cpp: typical sampling and mirostat off.
    pub(crate) typical_p: f64,
    pub(crate) mirostat_mode: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) logprobs: Option<usize>,
    pub(crate) echo: bool,
}

/// The seed path `path` of a request seeded `seed` sends: derived from (seed, path) by the same
/// generator the local engine seeds path `path` with, so paths get unrelated seeds and path 0 of a
/// batch is the single-path run. Kept below 2^31: every server accepts that range.
pub(crate) fn path_seed(seed: u64, path: usize) -> u64 {
    Rng::new(seed, path as u64).next_u64() & 0x7FFF_FFFF
}

/// The body for path `path` of `req`.
pub(crate) fn completion_body<'a>(
    model: &'a str,
    req: &'a GenerateRequest,
    path: usize,
    dialect: Dialect,
) -> CompletionBody<'a> {
    let s = &req.sampling;
    let top_p = match s.top_p.filter(|&p| p < 1.0) {
        Some(p) => Some(p),
        None if dialect.tgi => None,
        None => Some(1.0),
    };
    CompletionBody {
        model,
        prompt: &req.prompt,
        stream: true,
        n: 1,
        max_tokens: s.max_new_tokens,
        temperature: s.temperature,
        top_p,
        top_k: s.top_k.filter(|&k| k > 0).map_or(0, |k| k as i64),
        min_p: s.min_p.unwrap_or(0.0),
        seed: path_seed(s.seed, path),
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        repetition_penalty: s.repetition_penalty,
        repeat_penalty: s.repetition_penalty,
        typical_p: 1.0,
        mirostat_mode: 0,
        logprobs: req.logprobs,
        echo: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SamplingParams;

    fn req() -> GenerateRequest {
        GenerateRequest {
            prompt: "Q: 1 + 1?\nA:".into(),
            paths: 3,
            sampling: SamplingParams { temperature: 0.0, max_new_tokens: 48, ..SamplingParams::default() },
            stop: vec!["\nQ:".into()],
            ..GenerateRequest::default()
        }
    }

    #[test]
    fn neutral_parameters_are_sent_explicitly() {
        let r = req();
        let v = serde_json::to_value(completion_body("bloom", &r, 0, Dialect::default())).unwrap();
        let want = serde_json::json!({
            "model": "bloom", "prompt": "Q: 1 + 1?\nA:", "stream": true, "n": 1, "max_tokens": 48,
            "temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "seed": path_seed(42, 0),
            "frequency_penalty": 0.0, "presence_penalty": 0.0, "repetition_penalty": 1.0,
            "repeat_penalty": 1.0, "typical_p": 1.0, "mirostat_mode": 0, "echo": false
        });
        assert_eq!(v, want);
        assert!(v.get("stop").is_none(), "stop strings are matched client-side");
    }

    #[test]
    fn set_parameters_are_passed_through() {
        let mut r = req();
        r.sampling = SamplingParams {
            temperature: 0.8,
            top_k: Some(40),
            top_p: Some(0.9),
            min_p: Some(0.05),
            repetition_penalty: 1.3,
            seed: 7,
            max_new_tokens: 10,
        };
        r.logprobs = Some(3);
        let v = serde_json::to_value(completion_body("m", &r, 2, Dialect { tgi: true })).unwrap();
        assert_eq!((v["top_k"].as_i64(), v["top_p"].as_f64(), v["min_p"].as_f64()), (Some(40), Some(0.9), Some(0.05)));
        assert_eq!((v["repetition_penalty"].as_f64(), v["repeat_penalty"].as_f64()), (Some(1.3), Some(1.3)));
        assert_eq!((v["logprobs"].as_u64(), v["seed"].as_u64()), (Some(3), Some(path_seed(7, 2))));
        r.sampling.top_p = None;
        let v = serde_json::to_value(completion_body("m", &r, 0, Dialect { tgi: true })).unwrap();
        assert!(v.get("top_p").is_none(), "TGI rejects top_p = 1.0; its off is leaving it out");
    }

    #[test]
    fn path_seeds_are_fixed_distinct_and_in_range() {
        let seeds: Vec<u64> = (0..8).map(|p| path_seed(42, p)).collect();
        assert_eq!(seeds, (0..8).map(|p| path_seed(42, p)).collect::<Vec<_>>());
        let distinct: std::collections::HashSet<u64> = seeds.iter().copied().collect();
        assert_eq!(distinct.len(), 8);
        assert!(seeds.iter().all(|&s| s < 1 << 31));
        assert_ne!(path_seed(42, 0), path_seed(43, 0));
    }
}
