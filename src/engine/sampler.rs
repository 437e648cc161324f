//! Picking the next token from a logits vector: greedy, temperature, top-k, top-p, min-p, seeded.
//!
//! Built for BLOOM's 250880-token vocabulary: top-k uses a linear-time selection and sorts only the k
//! survivors; top-p sorts only as many of the most likely tokens as it needs to reach p. Every
//! ordering is total (logit descending, then id ascending) and the random draw walks the candidates in
//! that order (or in id order when nothing is filtered), so a seed gives the same token everywhere.

use std::cmp::Ordering;

use super::rng::Rng;
use super::{EngineError, SamplingParams};

/// One candidate token.
#[derive(Clone, Copy, Debug)]
struct Cand {
    id: u32,
    logit: f32,
}

/// Most likely first; ties go to the lower id. NaN never reaches here (see `sanitize`).
fn rank(a: &Cand, b: &Cand) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// NaN logits count as impossible tokens.
fn sanitize(x: f32) -> f32 {
    if x.is_nan() {
        f32::NEG_INFINITY
    } else {
        x
    }
}

/// The most likely token; ties go to the lowest id. `None` when every logit is NaN or -inf.
///
/// Two passes, each one the compiler vectorises: the largest value in 16 lanes (a comparison
/// skips NaN, as `sanitize` would), then the first position holding it. Every greedy step of
/// every path scans BLOOM's 250880 logits, and one branchy pass took a few percent of a q8_0 step.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let best = tail.iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    if best == f32::NEG_INFINITY {
        return None;
    }
    // The chunk holding the first `best` (an or-fold, not an early exit, so it vectorises), then
    // its place in the chunk.
    let at = logits.chunks(LANES).position(|c| c.iter().fold(false, |any, &x| any | (x == best)))?;
    let i = logits[at * LANES..].iter().position(|&x| x == best)?;
    Some((at * LANES + i) as u32)
}

/// The sampler of one path: its parameters and its own random stream.
#[derive(Clone, Debug)]
pub struct Sampler {
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
    /// Keep tokens whose weight (probability relative to the most likely one) reaches this.
    min_p: Option<f64>,
    rng: Rng,
    /// Reused between calls to avoid a 2 MB allocation per token at BLOOM's vocabulary size.
    scratch: Vec<Cand>,
}

impl Sampler {
    /// The sampler of path `path`: its stream is derived from (`params.seed`, `path`).
    pub fn new(params: &SamplingParams, path: usize) -> Self {
        Self {
            temperature: params.temperature,
            top_k: params.top_k.filter(|&k| k > 0),
            top_p: params.top_p.filter(|&p| p < 1.0),
            min_p: params.min_p.filter(|&p| p > 0.0),
            rng: Rng::new(params.seed, path as u64),
            scratch: Vec::new(),
        }
    }

    /// Whether this sampler always takes the most likely token.
    pub fn is_greedy(&self) -> bool {
        // A temperature so small that 1/t overflows is greedy in effect (and would give NaN weights).
        self.temperature <= 0.0 || !(1.0 / self.temperature).is_finite() || self.top_k == Some(1)
    }

    /// The next token for these logits.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, EngineError> {
        if logits.is_empty() {
            return Err(EngineError::Model("the model returned empty logits".into()));
        }
        let no_token = || EngineError::Model("every logit is NaN or -inf; no token can be sampled".into());
        if self.is_greedy() {
            return argmax(logits).ok_or_else(no_token);
        }
        let max = logits.iter().map(|&x| sanitize(x)).fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return Err(no_token());
        }
        let inv_t = 1.0 / self.temperature;
        // Unnormalized probability: softmax with the max subtracted, in f64.
        let weight = |logit: f32| -> f64 {
            let x = sanitize(logit);
            if x == f32::NEG_INFINITY {
                0.0
            } else {
                ((x as f64 - max as f64) * inv_t).exp()
            }
        };

        let n = logits.len();
        let top_k = self.top_k.filter(|&k| k < n);
        // The most likely token has weight 1, so min-p keeps the tokens of weight >= min_p: a prefix of
        // the ranking, like top-k and top-p, which makes the order of the three rules irrelevant.
        let min_w = self.min_p.unwrap_or(0.0);
        let drawn = |logit: f32| -> f64 {
            let w = weight(logit);
            if w < min_w {
                0.0
            } else {
                w
            }
        };
        if top_k.is_none() && self.top_p.is_none() {
            // No ranking needed: draw over the whole vocabulary in id order.
            let total: f64 = logits.iter().map(|&x| drawn(x)).sum();
            let u = self.rng.next_f64() * total;
            return Ok(walk(logits.iter().enumerate().map(|(i, &x)| (i as u32, drawn(x))), u));
        }

        let cands = &mut self.scratch;
        cands.clear();
        cands.extend(logits.iter().enumerate().map(|(i, &x)| Cand { id: i as u32, logit: sanitize(x) }));
        // `sorted` is how many leading candidates are in final rank order.
        let mut sorted = 0;
        if let Some(k) = top_k {
            cands.select_nth_unstable_by(k - 1, rank);
            cands.truncate(k);
            cands.sort_unstable_by(rank);
            sorted = k;
        }
        let total: f64 = cands.iter().map(|c| weight(c.logit)).sum();
        let mut keep = cands.len();
        if let Some(p) = self.top_p {
            keep = nucleus(cands, &mut sorted, p * total, &weight);
        }
        let kept = &cands[..keep];
        let kept_total: f64 = kept.iter().map(|c| drawn(c.logit)).sum();
        let u = self.rng.next_f64() * kept_total;
        Ok(walk(kept.iter().map(|c| (c.id, drawn(c.logit))), u))
    }
}

/// Sorts just enough of the most likely candidates (in growing chunks, each found by linear-time
/// selection) to reach `target` cumulative weight; returns how many to keep (at least one).
fn nucleus(cands: &mut [Cand], sorted: &mut usize, target: f64, weight: &dyn Fn(f32) -> f64) -> usize {
    let n = cands.len();
    let mut acc = 0.0;
    let mut done = 0;
    let mut chunk = 64;
    loop {
        let end = (done + chunk).min(n);
        if end > *sorted {
            let rest = &mut cands[*sorted..];
            let want = end - *sorted;
            if want < rest.len() {
                rest.select_nth_unstable_by(want - 1, rank);
            }
            rest[..want].sort_unstable_by(rank);
            *sorted = end;
        }
        for (i, c) in cands[done..end].iter().enumerate() {
            acc += weight(c.logit);
            if acc >= target {
                return done + i + 1;
            }
        }
        done = end;
        if done == n {
            return n;
        }
        chunk *= 4;
    }
}

/// The first candidate at which the running weight passes `u`; the last one with weight if rounding
/// leaves `u` unreached.
fn walk(cands: impl Iterator<Item = (u32, f64)>, u: f64) -> u32 {
    let mut acc = 0.0;
    let mut last = 0;
    for (id, w) in cands {
        if w <= 0.0 {
            continue;
        }
        acc += w;
        last = id;
        if acc > u {
            return id;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f64, top_k: Option<usize>, top_p: Option<f64>, seed: u64) -> SamplingParams {
        SamplingParams { temperature, top_k, top_p, seed, max_new_tokens: 16, ..SamplingParams::default() }
    }

    /// Deterministic pseudo-random logits of BLOOM's vocabulary size.
    fn big_logits(salt: u64) -> Vec<f32> {
        let mut r = Rng::new(salt, 99);
        (0..250_880).map(|_| (r.next_f64() * 12.0 - 6.0) as f32).collect()
    }

    #[test]
    fn greedy_is_argmax_with_ties_to_lowest_id() {
        let mut s = Sampler::new(&params(0.0, None, None, 1), 0);
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9]).unwrap(), 1);
        assert_eq!(s.sample(&[1.0, 5.0, 5.0, 5.0]).unwrap(), 1);
        assert_eq!(s.sample(&[f32::NAN, 0.5, f32::NAN]).unwrap(), 1);
        let big = big_logits(3);
        let want = big
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i as u32)
            .unwrap();
        assert_eq!(s.sample(&big).unwrap(), want);
    }

    /// The first index of the largest logit that is neither NaN nor -inf, one element at a time.
    fn argmax_plain(logits: &[f32]) -> Option<u32> {
        let mut best: Option<(usize, f32)> = None;
        for (i, &x) in logits.iter().enumerate() {
            if x.is_nan() || x == f32::NEG_INFINITY || best.is_some_and(|(_, b)| x <= b) {
                continue;
            }
            best = Some((i, x));
        }
        best.map(|(i, _)| i as u32)
    }

    #[test]
    fn argmax_matches_a_plain_scan_at_every_length_and_place() {
        let mut r = Rng::new(7, 1);
        for len in 0..70 {
            for _ in 0..40 {
                // Few distinct values, so ties (within and across 16-lane chunks) are common.
                let v: Vec<f32> = (0..len)
                    .map(|_| match (r.next_f64() * 8.0) as u32 {
                        0 => f32::NAN,
                        1 => f32::NEG_INFINITY,
                        k => k as f32 - 4.0,
                    })
                    .collect();
                assert_eq!(argmax(&v), argmax_plain(&v), "{v:?}");
            }
        }
        assert_eq!(argmax(&[f32::NAN; 40]), None);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 17]), None);
        let mut v = vec![1.0f32; 40];
        v[33] = f32::INFINITY;
        v[39] = f32::INFINITY;
        assert_eq!(argmax(&v), Some(33));
        let big = big_logits(5);
        assert_eq!(argmax(&big), argmax_plain(&big));
    }

    #[test]
    fn impossible_logits_are_errors_not_panics() {
        let mut s = Sampler::new(&params(0.8, None, None, 1), 0);
        assert!(s.sample(&[]).is_err());
        assert!(s.sample(&[f32::NAN, f32::NEG_INFINITY]).is_err());
        let mut g = Sampler::new(&params(0.0, None, None, 1), 0);
        assert!(g.sample(&[f32::NAN]).is_err());
        let mut tiny = Sampler::new(&params(f64::MIN_POSITIVE / 1e10, None, Some(0.5), 1), 0);
        assert_eq!(tiny.sample(&[0.0, 1.0, 0.5]).unwrap(), 1);
    }

    fn draw(p: &SamplingParams, path: usize, logits: &[f32], n: usize) -> Vec<u32> {
        let mut s = Sampler::new(p, path);
        (0..n).map(|_| s.sample(logits).unwrap()).collect()
    }

    #[test]
    fn same_seed_same_sequence_and_paths_differ() {
        let logits = big_logits(5);
        for p in [
            params(1.0, None, None, 42),
            params(0.9, Some(40), None, 42),
            params(1.3, None, Some(0.9), 42),
            params(1.0, Some(500), Some(0.95), 42),
        ] {
            let a = draw(&p, 0, &logits, 20);
            assert_eq!(a, draw(&p, 0, &logits, 20), "{p:?}");
            assert_ne!(a, draw(&p, 1, &logits, 20), "path 1 must have its own stream: {p:?}");
            let other = SamplingParams { seed: 43, ..p.clone() };
            assert_ne!(a, draw(&other, 0, &logits, 20), "{p:?}");
        }
    }

    #[test]
    fn fixed_seed_gives_a_fixed_stream() {
        // Pins the stream: a change here means saved sessions no longer reproduce.
        let logits: Vec<f32> = (0..10).map(|i| i as f32 * 0.25 - 1.0).collect();
        let got = draw(&params(1.0, None, None, 42), 0, &logits, 12);
        let again = draw(&params(1.0, None, None, 42), 0, &logits, 12);
        assert_eq!(got, again);
        assert_eq!(got, PINNED.to_vec(), "sampled stream changed: {got:?}");
    }
    const PINNED: [u32; 12] = [4, 7, 4, 6, 7, 0, 9, 1, 7, 9, 7, 9];

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let logits = big_logits(8);
        let greedy = argmax(&logits).unwrap();
        assert!(draw(&params(1.5, Some(1), None, 9), 0, &logits, 10).iter().all(|&t| t == greedy));
        assert!(draw(&params(1.5, None, Some(1e-9), 9), 3, &logits, 10).iter().all(|&t| t == greedy));
        // Ties: both rules pick the lowest id among equals, as greedy does.
        let tied = [0.0, 2.0, 2.0, 1.0];
        assert!(draw(&params(1.0, Some(1), None, 1), 0, &tied, 10).iter().all(|&t| t == 1));
        assert!(draw(&params(1.0, None, Some(1e-6), 1), 0, &tied, 10).iter().all(|&t| t == 1));
    }

    #[test]
    fn top_k_keeps_only_the_k_most_likely() {
        let logits = big_logits(11);
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        let top: std::collections::HashSet<u32> = order[..5].iter().copied().collect();
        let got = draw(&params(5.0, Some(5), None, 2), 0, &logits, 300);
        assert!(got.iter().all(|t| top.contains(t)));
        // With a high temperature all five show up.
        let seen: std::collections::HashSet<u32> = got.into_iter().collect();
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn distribution_matches_softmax() {
        let probs = [0.5f64, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln() as f32 + 7.0).collect();
        let n = 40_000;
        let mut counts = [0usize; 4];
        for t in draw(&params(1.0, None, None, 123), 0, &logits, n) {
            counts[t as usize] += 1;
        }
        for (c, p) in counts.iter().zip(probs) {
            let f = *c as f64 / n as f64;
            assert!((f - p).abs() < 0.015, "freq {f} vs prob {p}: {counts:?}");
        }
        // Temperature 0.5 squares the odds: 0.5^2 : 0.3^2 : ... renormalized.
        let sq: Vec<f64> = probs.iter().map(|p| p * p).collect();
        let z: f64 = sq.iter().sum();
        let mut counts = [0usize; 4];
        for t in draw(&params(0.5, None, None, 124), 0, &logits, n) {
            counts[t as usize] += 1;
        }
        for (c, q) in counts.iter().zip(&sq) {
            let f = *c as f64 / n as f64;
            assert!((f - q / z).abs() < 0.015, "freq {f} vs prob {}: {counts:?}", q / z);
        }
    }

    #[test]
    fn min_p_keeps_tokens_at_least_that_fraction_of_the_most_likely() {
        // Probabilities 0.5, 0.3, 0.15, 0.05: min-p 0.5 keeps those >= 0.25, i.e. tokens 0 and 1 (5:3).
        let probs = [0.5f64, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln() as f32).collect();
        let p = SamplingParams { min_p: Some(0.5), ..params(1.0, None, None, 8) };
        let got = draw(&p, 0, &logits, 20_000);
        assert!(got.iter().all(|&t| t < 2));
        let ones = got.iter().filter(|&&t| t == 1).count() as f64 / got.len() as f64;
        assert!((ones - 0.375).abs() < 0.02, "{ones}");
        // Temperature 2 flattens the odds (sqrt): 0.15 becomes 0.548 of the top, so token 2 is kept.
        let hot = SamplingParams { min_p: Some(0.5), ..params(2.0, None, None, 8) };
        let seen: std::collections::HashSet<u32> = draw(&hot, 0, &logits, 5_000).into_iter().collect();
        assert_eq!(seen, [0, 1, 2].into_iter().collect());
        // With top-k too the tighter rule wins, whichever it is.
        let both = SamplingParams { min_p: Some(0.5), ..params(1.0, Some(3), None, 8) };
        assert!(draw(&both, 0, &logits, 2_000).iter().all(|&t| t < 2));
        let both = SamplingParams { min_p: Some(0.1), ..params(1.0, Some(2), None, 8) };
        assert!(draw(&both, 0, &logits, 2_000).iter().all(|&t| t < 2));
        // Min-p 0 or None changes nothing: the pinned stream holds.
        let zero = SamplingParams { min_p: Some(0.0), ..params(1.0, None, None, 42) };
        let l: Vec<f32> = (0..10).map(|i| i as f32 * 0.25 - 1.0).collect();
        assert_eq!(draw(&zero, 0, &l, 12), PINNED.to_vec());
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let probs = [0.5f64, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln() as f32).collect();
        // p = 0.75: {0, 1} reach 0.8; token 2 and 3 never appear; 0 and 1 in ratio 5:3.
        let got = draw(&params(1.0, None, Some(0.75), 5), 0, &logits, 20_000);
        assert!(got.iter().all(|&t| t < 2));
        let ones = got.iter().filter(|&&t| t == 1).count() as f64 / got.len() as f64;
        assert!((ones - 0.375).abs() < 0.02, "{ones}");
        // On a big vocabulary the nucleus needs several selection rounds; every draw stays inside it.
        let big = big_logits(13);
        let mut s = Sampler::new(&params(1.0, None, Some(0.5), 6), 0);
        let max = big.iter().cloned().fold(f32::MIN, f32::max);
        let w: Vec<f64> = big.iter().map(|&x| ((x - max) as f64).exp()).collect();
        let total: f64 = w.iter().sum();
        let mut order: Vec<usize> = (0..big.len()).collect();
        order.sort_by(|&a, &b| big[b].total_cmp(&big[a]).then(a.cmp(&b)));
        let mut acc = 0.0;
        let mut nucleus = std::collections::HashSet::new();
        for &i in &order {
            acc += w[i];
            nucleus.insert(i as u32);
            if acc >= 0.5 * total {
                break;
            }
        }
        assert!(nucleus.len() > 1000, "test needs a nucleus spanning several rounds");
        for _ in 0..200 {
            assert!(nucleus.contains(&s.sample(&big).unwrap()));
        }
    }
}
