//! Hugging Face's repetition penalty (`RepetitionPenaltyLogitsProcessor`), so a setting means what it
//! means in transformers: every token already in the prompt or the path has its logit divided by the
//! penalty when positive and multiplied by it when negative — once, however often it occurred.

/// The tokens a path has seen so far and the penalty for them.
#[derive(Clone, Debug)]
pub struct RepetitionPenalty {
    penalty: f32,
    /// `seen[id]`: whether `id` occurred (grown on demand).
    seen: Vec<bool>,
    /// The distinct ids seen, in first-seen order.
    ids: Vec<u32>,
    /// Penalized copy of the last logits (reused between steps).
    scratch: Vec<f32>,
}

impl RepetitionPenalty {
    /// `penalty` 1.0 is off (then nothing is tracked or copied).
    pub fn new(penalty: f64, prompt: &[u32]) -> Self {
        let mut p = Self { penalty: penalty as f32, seen: Vec::new(), ids: Vec::new(), scratch: Vec::new() };
        for &id in prompt {
            p.push(id);
        }
        p
    }

    pub fn is_off(&self) -> bool {
        self.penalty == 1.0
    }

    /// Records a token of the path.
    pub fn push(&mut self, id: u32) {
        if self.is_off() {
            return;
        }
        let i = id as usize;
        if i >= self.seen.len() {
            self.seen.resize(i + 1, false);
        }
        if !self.seen[i] {
            self.seen[i] = true;
            self.ids.push(id);
        }
    }

    /// The logits with the penalty applied (the input itself when the penalty is off).
    pub fn apply<'a>(&'a mut self, logits: &'a [f32]) -> &'a [f32] {
        if self.is_off() {
            return logits;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(logits);
        for &id in &self.ids {
            if let Some(x) = self.scratch.get_mut(id as usize) {
                *x = if *x < 0.0 { *x * self.penalty } else { *x / self.penalty };
            }
        }
        &self.scratch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divides_positive_multiplies_negative_once_per_token() {
        let mut p = RepetitionPenalty::new(2.0, &[1, 1, 3]);
        p.push(3);
        let out = p.apply(&[4.0, 4.0, 4.0, -4.0, 0.0]).to_vec();
        assert_eq!(out, vec![4.0, 2.0, 4.0, -8.0, 0.0]);
        p.push(0);
        assert_eq!(p.apply(&[4.0, 4.0, 4.0, -4.0]).to_vec(), vec![2.0, 2.0, 4.0, -8.0]);
    }

    #[test]
    fn one_is_off() {
        let mut p = RepetitionPenalty::new(1.0, &[0, 1]);
        let logits = [3.0, -1.0];
        assert!(std::ptr::eq(p.apply(&logits), &logits[..]));
    }
}
