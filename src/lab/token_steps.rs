//! What the model saw at each generated token of a path: the chosen token's log-probability, the
//! alternatives it considered, the entropy of the step, and how much of the path's text the token
//! released. Sessions keep them one line per token (`[len, logprob, entropy, forced, id, logprob,
//! "text", …]`, log-probabilities to 1e-3), so a reopened path shows the same probabilities.

use std::ops::Range;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::{TokenEvent, TopLogprob};

/// One generated token as the model saw it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenStep {
    /// Bytes of the path's text this token released (0 while a character or a possible stop string was
    /// held back; the token after it then releases both).
    pub len: usize,
    /// Log-probability of the token under the model; None where it is not known (a replayed prefix).
    pub logprob: Option<f32>,
    /// Entropy (nats) of the model's distribution at this step, where the engine reports it.
    pub entropy: Option<f32>,
    /// The calculator wrote this token, not the model.
    pub forced: bool,
    /// The most likely tokens at this step, most likely first.
    pub top: Vec<TopLogprob>,
}

impl TokenStep {
    pub fn from_event(t: &TokenEvent) -> Self {
        Self { len: t.text.len(), logprob: t.logprob, entropy: t.entropy, forced: t.forced, top: t.top.clone() }
    }

    /// Probability of the chosen token.
    pub fn prob(&self) -> Option<f64> {
        self.logprob.map(|l| (l as f64).exp())
    }
}

/// Byte range of `text` (of length `text_len`) each step released: the released lengths one after
/// another, the last step taking any rest (text released at a cancel) and ranges clamped to the text.
pub fn spans(steps: &[TokenStep], text_len: usize) -> Vec<Range<usize>> {
    let mut at = 0;
    let mut out: Vec<Range<usize>> = steps
        .iter()
        .map(|s| {
            let start = at.min(text_len);
            at += s.len;
            start..at.min(text_len)
        })
        .collect();
    if let Some(last) = out.last_mut() {
        last.end = text_len.max(last.start);
    }
    out
}

/// Byte ranges of the text the forcer (the calculator) wrote: its tokens' spans, neighbours joined.
pub fn forced_spans(steps: &[TokenStep], text_len: usize) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (s, r) in steps.iter().zip(spans(steps, text_len)) {
        if !s.forced || r.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// Sum of the log-probabilities of the tokens the model chose (calculator tokens and unknown ones left
/// out), with how many were counted; None when none is known.
pub fn sum_logprob(steps: &[TokenStep]) -> Option<(f64, usize)> {
    let known: Vec<f64> = steps.iter().filter(|s| !s.forced).filter_map(|s| s.logprob.map(f64::from)).collect();
    (!known.is_empty()).then(|| (known.iter().sum(), known.len()))
}

/// Mean log-probability per chosen token (see [`sum_logprob`]).
pub fn mean_logprob(steps: &[TokenStep]) -> Option<f64> {
    sum_logprob(steps).map(|(s, n)| s / n as f64)
}

/// A value rounded to 1e-3 for the file (what a probability display needs, and short).
fn round3(x: f32) -> f64 {
    let x = x as f64;
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        x
    }
}

/// One cell of a step's line in a session.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Cell {
    Null,
    Bool(bool),
    Int(u64),
    Num(f64),
    Text(String),
}

impl Serialize for TokenStep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let opt = |x: Option<f32>| x.map_or(Cell::Null, |v| Cell::Num(round3(v)));
        let mut cells = vec![Cell::Int(self.len as u64), opt(self.logprob), opt(self.entropy), Cell::Bool(self.forced)];
        for t in &self.top {
            cells.push(t.id.map_or(Cell::Null, |id| Cell::Int(id as u64)));
            cells.push(Cell::Num(round3(t.logprob)));
            cells.push(Cell::Text(t.text.clone()));
        }
        s.collect_seq(cells)
    }
}

impl<'de> Deserialize<'de> for TokenStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let cells = Vec::<Cell>::deserialize(d)?;
        let bad = |what: &str| D::Error::custom(format!("token step: {what}"));
        let num = |c: &Cell| match c {
            Cell::Null => Ok(None),
            Cell::Int(i) => Ok(Some(*i as f32)),
            Cell::Num(x) => Ok(Some(*x as f32)),
            _ => Err(bad("a log-probability or entropy is not a number")),
        };
        if cells.len() < 4 || (cells.len() - 4) % 3 != 0 {
            return Err(bad("expected [len, logprob, entropy, forced] then (id, logprob, text) triples"));
        }
        let len = match cells[0] {
            Cell::Int(n) => n as usize,
            _ => return Err(bad("len is not a count")),
        };
        let forced = match cells[3] {
            Cell::Bool(b) => b,
            _ => return Err(bad("forced is not true/false")),
        };
        let top = cells[4..]
            .chunks(3)
            .map(|c| {
                let id = match c[0] {
                    Cell::Null => None,
                    Cell::Int(i) => Some(u32::try_from(i).map_err(|_| bad("token id out of range"))?),
                    _ => return Err(bad("token id is not a number")),
                };
                let logprob = num(&c[1])?.ok_or_else(|| bad("alternative without a log-probability"))?;
                let Cell::Text(text) = &c[2] else { return Err(bad("alternative text is not a string")) };
                Ok(TopLogprob { id, text: text.clone(), logprob })
            })
            .collect::<Result<_, _>>()?;
        Ok(TokenStep { len, logprob: num(&cells[1])?, entropy: num(&cells[2])?, forced, top })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(len: usize, logprob: Option<f32>) -> TokenStep {
        TokenStep {
            len,
            logprob,
            entropy: Some(1.2345),
            forced: false,
            top: vec![
                TopLogprob { id: Some(7), text: " 8".into(), logprob: -0.5 },
                TopLogprob { id: None, text: "\"\n".into(), logprob: -1.25 },
            ],
        }
    }

    #[test]
    fn forced_spans_join_neighbouring_calculator_tokens() {
        let mut steps = vec![step(3, Some(-1.0)), step(2, None), step(1, None), step(4, Some(-0.5)), step(2, None)];
        for k in [1, 2, 4] {
            steps[k].forced = true;
        }
        assert_eq!(forced_spans(&steps, 12), vec![3..6, 10..12]);
        assert_eq!(forced_spans(&steps, 11), vec![3..6, 10..11], "clamped to the text");
    }

    #[test]
    fn a_step_is_one_line_of_scalars_and_reads_back_to_1e3() {
        let s = step(3, Some(-0.123_456));
        let steps = std::collections::BTreeMap::from([("steps", vec![s.clone()])]);
        let y = crate::tui::compact_yaml::to_string(&serde_yaml::to_value(steps).unwrap());
        assert_eq!(y, "steps:\n- [3, -0.123, 1.235, false, 7, -0.5, \" 8\", null, -1.25, \"\\\"\\n\"]\n");
        let back: Vec<TokenStep> =
            serde_yaml::from_str::<std::collections::BTreeMap<String, Vec<TokenStep>>>(&y).unwrap()["steps"].clone();
        assert_eq!(back[0].top, s.top);
        assert_eq!((back[0].len, back[0].logprob, back[0].entropy), (3, Some(-0.123), Some(1.235)));
        // JSON too (eval lines share the record), and a replayed token without a log-probability.
        let j = serde_json::to_string(&step(0, None)).unwrap();
        let back: TokenStep = serde_json::from_str(&j).unwrap();
        assert_eq!(back.logprob, None);
        assert!(serde_json::from_str::<TokenStep>("[1, null, null]").is_err());
        assert!(serde_json::from_str::<TokenStep>("[1, null, null, false, 3, -1]").is_err());
    }

    #[test]
    fn spans_follow_released_text_and_the_last_takes_the_rest() {
        let steps = [step(2, None), step(0, None), step(3, None)];
        assert_eq!(spans(&steps, 5), vec![0..2, 2..2, 2..5]);
        assert_eq!(spans(&steps, 7), vec![0..2, 2..2, 2..7], "text released at a cancel");
        assert_eq!(spans(&steps, 3), vec![0..2, 2..2, 2..3]);
        assert!(spans(&[], 4).is_empty());
    }

    #[test]
    fn mean_logprob_skips_forced_and_unknown_tokens() {
        let mut forced = step(1, Some(-5.0));
        forced.forced = true;
        let steps = [step(1, Some(-1.0)), step(1, None), forced, step(1, Some(-2.0))];
        assert_eq!(sum_logprob(&steps), Some((-3.0, 2)));
        assert_eq!(mean_logprob(&steps), Some(-1.5));
        assert_eq!(mean_logprob(&[step(1, None)]), None);
    }
}
