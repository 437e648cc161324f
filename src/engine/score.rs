//! Scoring next tokens without sampling: the local engine's [`Engine::next_token_logprobs`].
//!
//! [`Engine::next_token_logprobs`]: super::Engine::next_token_logprobs

use std::sync::Mutex;

use tokenizers::Tokenizer;

use super::{DecoderModel, EngineError};

/// Prefills `prompt` (one forward pass; the cache is reset by the next generation's prefill anyway) and
/// returns the log-softmax of its last logits at each of `tokens`' ids.
pub(super) fn next_token_logprobs(
    model: &Mutex<Box<dyn DecoderModel>>,
    tokenizer: &Tokenizer,
    prompt: &str,
    tokens: &[String],
) -> Result<Vec<Option<f32>>, EngineError> {
    let encode = |text: &str| {
        tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Tokenizer(format!("cannot encode {text:?}: {e}")))
    };
    let ids = tokens
        .iter()
        .map(|t| match encode(t)?.as_slice() {
            [id] => Ok(*id),
            other => Err(EngineError::Invalid(format!("{t:?} is {} tokens for this tokenizer, not one", other.len()))),
        })
        .collect::<Result<Vec<u32>, _>>()?;
    let prompt_ids = encode(prompt)?;
    if prompt_ids.is_empty() {
        return Err(EngineError::Invalid("the prompt encodes to no tokens".into()));
    }
    let logits = model
        .lock()
        .map_err(|_| EngineError::Model("the model is unusable: an earlier generation panicked".into()))?
        .prefill(&prompt_ids)?;
    let lse = log_sum_exp(&logits);
    Ok(ids.iter().map(|&id| logits.get(id as usize).map(|&l| l - lse)).collect())
}

/// ln Σ exp(x), shifted by the maximum so it neither overflows nor underflows (f32, like softmax).
fn log_sum_exp(xs: &[f32]) -> f32 {
    let max = xs.iter().copied().filter(|x| !x.is_nan()).fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    max + xs.iter().filter(|x| !x.is_nan()).map(|&x| (x - max).exp()).sum::<f32>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{fake_info, FakeModel};
    use crate::engine::{Engine, LocalEngine};

    fn tokenizer() -> Tokenizer {
        Tokenizer::from_bytes(crate::model::embedded::TOKENIZER).unwrap()
    }

    #[test]
    fn log_softmax_of_the_prefill_logits_at_the_tokens_asked() {
        let tok = tokenizer();
        let vocab = tok.get_vocab_size(true);
        let prompt = "Q: 2 + 2?\nA: (";
        let ids: Vec<u32> = tok.encode(prompt, false).unwrap().get_ids().to_vec();
        let mut reference = FakeModel::new(vocab);
        let logits = reference.prefill(&ids).unwrap();
        let engine = LocalEngine::new(Box::new(FakeModel::new(vocab)), tok, None, fake_info(vocab));
        let labels: Vec<String> = ["A", "B", "7"].map(String::from).to_vec();
        let got = engine.next_token_logprobs(prompt, &labels).unwrap();
        // Reference in f64: log(exp(l_id) / Σ exp(l)).
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for (label, g) in labels.iter().zip(&got) {
            let id = engine.encode(label).unwrap()[0] as usize;
            let want = (f64::from(logits[id]).exp() / z).ln();
            assert!((f64::from(g.unwrap()) - want).abs() < 1e-5, "{label}: {g:?} vs {want}");
        }
        let e = engine.next_token_logprobs(prompt, &["the answer".to_string()]).unwrap_err();
        assert!(e.to_string().contains("tokens for this tokenizer, not one"), "{e}");
        assert!(engine.next_token_logprobs("", &labels).is_err());
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f32.ln())).abs() < 1e-3);
        assert!((log_sum_exp(&[-1000.0, -1000.0]) - (-1000.0 + 2f32.ln())).abs() < 1e-3);
        assert_eq!(log_sum_exp(&[]), f32::NEG_INFINITY);
    }
}
