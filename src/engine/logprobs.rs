//! Log-probabilities of a step, as OpenAI-style APIs report them: log-softmax of the raw logits (before
//! temperature, penalties or any filter), for the chosen token and the k most likely ones.
//!
//! One pass over the logits for the normalizer and one for the top k (a small sorted buffer: k is tens,
//! the vocabulary 250880), all in f64 so the values match a reference log-softmax to float precision.

/// What a step's logits say: the chosen token's log-probability, the most likely tokens, the entropy.
#[derive(Clone, Debug, PartialEq)]
pub struct StepLogprobs {
    pub chosen: f32,
    /// (id, log-probability), most likely first.
    pub top: Vec<(u32, f32)>,
    /// Entropy of the whole distribution in nats (how unsure the model was at this step).
    pub entropy: f32,
}

/// Log-probability of `chosen` and the `k` most likely tokens (id, log-probability), most likely first;
/// ties go to the lower id. NaN logits count as impossible. None when no token is possible.
pub fn logprobs(logits: &[f32], chosen: u32, k: usize) -> Option<(f32, Vec<(u32, f32)>)> {
    step_logprobs(logits, chosen, k).map(|s| (s.chosen, s.top))
}

/// [`logprobs`] and the entropy, from the same two passes over the logits: with z = Σ e^(x−max),
/// H = lse − Σ e^(x−max)·x / z, so the entropy costs one multiply-add per logit.
pub fn step_logprobs(logits: &[f32], chosen: u32, k: usize) -> Option<StepLogprobs> {
    let clean = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    let max = logits.iter().map(|&x| clean(x)).fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return None;
    }
    let max = max as f64;
    let (mut sum, mut weighted) = (0.0f64, 0.0f64);
    for &x in logits {
        let x = clean(x);
        if x == f32::NEG_INFINITY {
            continue;
        }
        let e = (x as f64 - max).exp();
        sum += e;
        weighted += e * (x as f64 - max);
    }
    let lse = max + sum.ln();
    let lp = |x: f32| (clean(x) as f64 - lse) as f32;
    let chosen_lp = logits.get(chosen as usize).map_or(f32::NEG_INFINITY, |&x| lp(x));
    // Computed relative to max for precision: H = ln z − Σ e^(x−max)(x−max) / z.
    let entropy = (sum.ln() - weighted / sum).max(0.0) as f32;
    Some(StepLogprobs {
        chosen: chosen_lp,
        top: top_k(logits, k).into_iter().map(|(id, x)| (id, lp(x))).collect(),
        entropy,
    })
}

/// The `k` largest logits (id, logit), largest first, ties to the lower id; NaN and -inf never chosen.
fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (i, &x) in logits.iter().enumerate() {
        if x.is_nan() || x == f32::NEG_INFINITY || (best.len() == k && x <= best[k - 1].1) {
            continue;
        }
        // Insert after every entry at least as large (so an equal, later id goes after).
        let at = best.partition_point(|&(_, b)| b >= x);
        best.insert(at, (i as u32, x));
        best.truncate(k);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(logits: &[f32]) -> Vec<f64> {
        let m = logits.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let z: f64 = logits.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln() + m;
        logits.iter().map(|&x| x as f64 - z).collect()
    }

    #[test]
    fn matches_log_softmax_and_sorts_the_top() {
        let logits = [1.0f32, 3.0, -2.0, 3.0, 0.5, 2.5];
        let (lp, top) = logprobs(&logits, 4, 3).unwrap();
        let r = reference(&logits);
        assert!((lp as f64 - r[4]).abs() < 1e-6);
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, vec![1, 3, 5], "ties to the lower id, then the next");
        for (id, l) in top {
            assert!((l as f64 - r[id as usize]).abs() < 1e-6);
        }
        let total: f64 = r.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn entropy_is_that_of_the_softmax() {
        let logits = [1.0f32, 3.0, -2.0, 3.0, 0.5, f32::NAN, f32::NEG_INFINITY];
        let r = reference(&logits[..5]);
        let want: f64 = -r.iter().map(|l| l.exp() * l).sum::<f64>();
        let s = step_logprobs(&logits, 1, 2).unwrap();
        assert!((s.entropy as f64 - want).abs() < 1e-5, "{} vs {want}", s.entropy);
        // Uniform over four: ln 4; one certain token: 0.
        let u = step_logprobs(&[0.5; 4], 0, 0).unwrap();
        assert!((u.entropy - 4f32.ln()).abs() < 1e-6);
        assert_eq!(step_logprobs(&[0.0, f32::NEG_INFINITY], 0, 1).unwrap().entropy, 0.0);
    }

    #[test]
    fn k_zero_and_nan_and_impossible() {
        let (lp, top) = logprobs(&[0.0, f32::NAN, 0.0], 0, 0).unwrap();
        assert!(top.is_empty());
        assert!((lp - 0.5f32.ln()).abs() < 1e-6, "NaN is impossible, two equal tokens remain");
        let (_, top) = logprobs(&[f32::NAN, 1.0], 1, 5).unwrap();
        assert_eq!(top, vec![(1, 0.0)], "k larger than the possible tokens");
        assert!(logprobs(&[f32::NAN, f32::NEG_INFINITY], 0, 2).is_none());
    }
}
