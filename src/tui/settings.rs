//! The sampling settings panel: which fields there are, how ←/→ adjusts them and how a typed value is
//! parsed. Mode and template are rows here too (so the panel reads as "what Enter will run"), but the
//! app changes those itself.

use serde::{Deserialize, Serialize};

use crate::engine::SamplingParams;

/// Most paths per template the workbench samples (panes on screen; the engine allows more).
pub const PATHS_ON_SCREEN: usize = 8;

/// A row of the settings panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Mode,
    Template,
    Paths,
    Temperature,
    TopK,
    TopP,
    MaxNewTokens,
    Seed,
    Stop,
    RepetitionPenalty,
    MinP,
    Calculator,
}

impl Field {
    pub const ALL: [Field; 12] = [
        Field::Mode,
        Field::Template,
        Field::Paths,
        Field::Temperature,
        Field::TopK,
        Field::TopP,
        Field::MaxNewTokens,
        Field::Seed,
        Field::Stop,
        Field::MinP,
        Field::RepetitionPenalty,
        Field::Calculator,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Field::Mode => "mode",
            Field::Template => "template",
            Field::Paths => "paths",
            Field::Temperature => "temperature",
            Field::TopK => "top-k",
            Field::TopP => "top-p",
            Field::MaxNewTokens => "max new",
            Field::Seed => "seed",
            Field::Stop => "stop",
            Field::RepetitionPenalty => "rep penalty",
            Field::MinP => "min-p",
            Field::Calculator => "calculator",
        }
    }

    /// Whether a value can be typed (the others are chosen with ←/→ or `t`/`m`).
    pub fn editable(self) -> bool {
        !matches!(self, Field::Mode | Field::Template | Field::Calculator)
    }
}

/// What the next generation will use (remembered between launches).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub sampling: SamplingParams,
    /// Paths sampled in the self-consistency view (1..=PATHS_ON_SCREEN).
    pub paths: usize,
    /// Stop strings typed by the user; None means each template's own.
    #[serde(default)]
    pub stop_override: Option<Vec<String>>,
    /// Calculator in the loop (`c`): the engine writes the result after each `expression =`.
    #[serde(default)]
    pub calculator: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sampling: SamplingParams { temperature: 0.7, seed: 42, max_new_tokens: 128, ..SamplingParams::default() },
            paths: 2,
            stop_override: None,
            calculator: false,
        }
    }
}

impl Settings {
    /// The same checks a typed value gets (for settings read from a file).
    pub fn check(&self) -> Result<(), String> {
        let s = &self.sampling;
        if !(1..=PATHS_ON_SCREEN).contains(&self.paths) {
            return Err(format!("paths: {} is outside 1..={PATHS_ON_SCREEN}", self.paths));
        }
        if !(0.0..=10.0).contains(&s.temperature) {
            return Err(format!("temperature: {} is outside 0..=10", s.temperature));
        }
        if s.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return Err(format!("top-p: {:?} is outside (0, 1]", s.top_p));
        }
        if s.max_new_tokens == 0 {
            return Err("max new tokens: must be at least 1".into());
        }
        if !(s.repetition_penalty > 0.0 && s.repetition_penalty <= 10.0) {
            return Err(format!("repetition penalty: {} is outside (0, 10]", s.repetition_penalty));
        }
        if s.min_p.is_some_and(|p| !(p > 0.0 && p < 1.0)) {
            return Err(format!("min-p: {:?} is outside (0, 1)", s.min_p));
        }
        Ok(())
    }

    /// Steps a numeric field by `delta` notches (←/→).
    pub fn adjust(&mut self, field: Field, delta: i32) {
        let s = &mut self.sampling;
        match field {
            Field::Paths => self.paths = step_usize(self.paths, delta, 1, 1, PATHS_ON_SCREEN),
            Field::Temperature => {
                let t = (s.temperature * 10.0).round() + f64::from(delta);
                s.temperature = (t.clamp(0.0, 20.0)) / 10.0;
            }
            Field::TopK => {
                let k = step_usize(s.top_k.unwrap_or(0), delta, 5, 0, 1000);
                s.top_k = (k > 0).then_some(k);
            }
            Field::TopP => {
                let p = (s.top_p.unwrap_or(1.0) * 100.0).round() as i64 + i64::from(delta) * 5;
                let p = p.clamp(5, 100);
                s.top_p = (p < 100).then_some(p as f64 / 100.0);
            }
            Field::MaxNewTokens => s.max_new_tokens = step_usize(s.max_new_tokens, delta, 16, 1, 4096),
            Field::Seed => {
                s.seed = if delta >= 0 {
                    s.seed.wrapping_add(delta as u64)
                } else {
                    s.seed.wrapping_sub(delta.unsigned_abs() as u64)
                }
            }
            Field::RepetitionPenalty => {
                let r = (s.repetition_penalty * 20.0).round() as i64 + i64::from(delta);
                s.repetition_penalty = r.clamp(20, 200) as f64 / 20.0;
            }
            Field::MinP => {
                let p = (s.min_p.unwrap_or(0.0) * 100.0).round() as i64 + i64::from(delta);
                let p = p.clamp(0, 99);
                s.min_p = (p > 0).then_some(p as f64 / 100.0);
            }
            Field::Calculator => self.calculator = !self.calculator,
            Field::Stop | Field::Mode | Field::Template => {}
        }
    }

    /// The value as the panel shows it (and as the edit line starts).
    pub fn value_text(&self, field: Field, template_stop: &[String]) -> String {
        let s = &self.sampling;
        match field {
            Field::Paths => self.paths.to_string(),
            Field::Temperature if s.temperature == 0.0 => "0 (greedy)".into(),
            Field::Temperature => format!("{:.2}", s.temperature),
            Field::TopK => s.top_k.map_or("off".into(), |k| k.to_string()),
            Field::TopP => s.top_p.map_or("off".into(), |p| format!("{p:.2}")),
            Field::MaxNewTokens => s.max_new_tokens.to_string(),
            Field::Seed => s.seed.to_string(),
            Field::Stop => format_stops(self.stop_override.as_deref().unwrap_or(template_stop)),
            Field::RepetitionPenalty if s.repetition_penalty == 1.0 => "1 (off)".into(),
            Field::RepetitionPenalty => format!("{}", s.repetition_penalty),
            Field::MinP => s.min_p.map_or("off".into(), |p| format!("{p:.2}")),
            Field::Calculator if self.calculator => "on (c)".into(),
            Field::Calculator => "off (c)".into(),
            Field::Mode | Field::Template => String::new(),
        }
    }

    /// The text an edit of `field` starts from.
    pub fn edit_text(&self, field: Field, template_stop: &[String]) -> String {
        match field {
            Field::Temperature => format!("{}", self.sampling.temperature),
            Field::RepetitionPenalty => format!("{}", self.sampling.repetition_penalty),
            _ => self.value_text(field, template_stop),
        }
    }

    /// Applies a typed value; the error says what is wrong with it.
    pub fn apply_edit(&mut self, field: Field, text: &str) -> Result<(), String> {
        let t = text.trim();
        let s = &mut self.sampling;
        let off = t.is_empty() || t.eq_ignore_ascii_case("off");
        match field {
            Field::Paths => {
                let n: usize = t.parse().map_err(|_| format!("paths: `{t}` is not a whole number"))?;
                if !(1..=PATHS_ON_SCREEN).contains(&n) {
                    return Err(format!("paths: {n} is outside 1..={PATHS_ON_SCREEN}"));
                }
                self.paths = n;
            }
            Field::Temperature => {
                let v: f64 = t
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| format!("temperature: `{t}` is not a number"))?;
                if !(0.0..=10.0).contains(&v) {
                    return Err(format!("temperature: {v} is outside 0..=10"));
                }
                s.temperature = v;
            }
            Field::TopK => {
                let k: usize = if off {
                    0
                } else {
                    t.parse().map_err(|_| format!("top-k: `{t}` is not a whole number or off"))?
                };
                s.top_k = (k > 0).then_some(k);
            }
            Field::TopP => {
                if off {
                    s.top_p = None;
                } else {
                    let p: f64 = t.parse().map_err(|_| format!("top-p: `{t}` is not a number or off"))?;
                    if !(p > 0.0 && p <= 1.0) {
                        return Err(format!("top-p: {p} is outside (0, 1]"));
                    }
                    s.top_p = (p < 1.0).then_some(p);
                }
            }
            Field::MaxNewTokens => {
                let n: usize = t.parse().map_err(|_| format!("max new tokens: `{t}` is not a whole number"))?;
                if n == 0 {
                    return Err("max new tokens: must be at least 1".into());
                }
                s.max_new_tokens = n;
            }
            Field::Seed => s.seed = t.parse().map_err(|_| format!("seed: `{t}` is not a whole number"))?,
            Field::Stop => self.stop_override = Some(parse_stops(text)?),
            Field::RepetitionPenalty => {
                let v: f64 = if off {
                    1.0
                } else {
                    t.split_whitespace()
                        .next()
                        .unwrap_or("")
                        .parse()
                        .map_err(|_| format!("repetition penalty: `{t}` is not a number"))?
                };
                if !(v > 0.0 && v <= 10.0) {
                    return Err(format!("repetition penalty: {v} is outside (0, 10] (1 is off)"));
                }
                s.repetition_penalty = v;
            }
            Field::MinP => {
                if off {
                    s.min_p = None;
                } else {
                    let p: f64 = t.parse().map_err(|_| format!("min-p: `{t}` is not a number or off"))?;
                    if !(0.0..1.0).contains(&p) {
                        return Err(format!("min-p: {p} is outside [0, 1)"));
                    }
                    s.min_p = (p > 0.0).then_some(p);
                }
            }
            Field::Mode | Field::Template | Field::Calculator => {}
        }
        Ok(())
    }
}

fn step_usize(v: usize, delta: i32, step: usize, min: usize, max: usize) -> usize {
    let d = delta.unsigned_abs() as usize * step;
    let v = if delta >= 0 { v.saturating_add(d) } else { v.saturating_sub(d) };
    v.clamp(min, max)
}

/// Stop strings as one editable line: `|` between them, `\n` `\t` `\|` `\\` escaped.
pub fn format_stops(stops: &[String]) -> String {
    stops
        .iter()
        .map(|s| s.replace('\\', "\\\\").replace('\n', "\\n").replace('\t', "\\t").replace('|', "\\|"))
        .collect::<Vec<_>>()
        .join("|")
}

/// Inverse of [`format_stops`]; empty pieces are dropped.
pub fn parse_stops(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => cur.push('\n'),
                Some('t') => cur.push('\t'),
                Some('\\') => cur.push('\\'),
                Some('|') => cur.push('|'),
                Some(o) => return Err(format!("stop: unknown escape `\\{o}` (use \\n \\t \\| \\\\)")),
                None => return Err("stop: a lone `\\` at the end".into()),
            },
            '|' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|s| !s.is_empty());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_round_trip_through_the_edit_line() {
        let stops = vec!["\nQ:".to_string(), "a|b\\c".to_string(), "\n\n".to_string()];
        let line = format_stops(&stops);
        assert_eq!(line, "\\nQ:|a\\|b\\\\c|\\n\\n");
        assert_eq!(parse_stops(&line).unwrap(), stops);
        assert!(parse_stops("\\x").is_err());
    }

    #[test]
    fn adjust_stays_in_range() {
        let mut s = Settings::default();
        for _ in 0..20 {
            s.adjust(Field::Paths, 1);
        }
        assert_eq!(s.paths, PATHS_ON_SCREEN);
        for _ in 0..20 {
            s.adjust(Field::Paths, -1);
        }
        assert_eq!(s.paths, 1);
        s.adjust(Field::TopK, 1);
        assert_eq!(s.sampling.top_k, Some(5));
        s.adjust(Field::TopK, -1);
        assert_eq!(s.sampling.top_k, None);
        s.adjust(Field::TopP, -1);
        assert_eq!(s.sampling.top_p, Some(0.95));
        s.adjust(Field::TopP, 1);
        assert_eq!(s.sampling.top_p, None);
        for _ in 0..10 {
            s.adjust(Field::Temperature, -1);
        }
        assert_eq!(s.sampling.temperature, 0.0);
        s.adjust(Field::RepetitionPenalty, -1);
        assert_eq!(s.sampling.repetition_penalty, 1.0, "1 is the floor: below it repeats would be favoured");
        s.adjust(Field::RepetitionPenalty, 6);
        assert_eq!(s.sampling.repetition_penalty, 1.3);
        s.adjust(Field::MinP, 5);
        assert_eq!(s.sampling.min_p, Some(0.05));
        s.adjust(Field::MinP, -9);
        assert_eq!(s.sampling.min_p, None);
        s.adjust(Field::Calculator, 1);
        assert!(s.calculator);
        s.adjust(Field::Calculator, -1);
        assert!(!s.calculator);
    }

    #[test]
    fn typed_values_are_checked() {
        let mut s = Settings::default();
        assert!(s.apply_edit(Field::Paths, "9").is_err());
        assert!(s.apply_edit(Field::Temperature, "hot").is_err());
        assert!(s.apply_edit(Field::TopP, "1.5").is_err());
        s.apply_edit(Field::Seed, "7").unwrap();
        s.apply_edit(Field::TopK, "off").unwrap();
        s.apply_edit(Field::MaxNewTokens, "64").unwrap();
        assert_eq!((s.sampling.seed, s.sampling.top_k, s.sampling.max_new_tokens), (7, None, 64));
        assert!(s.apply_edit(Field::RepetitionPenalty, "0").is_err());
        assert!(s.apply_edit(Field::MinP, "1").is_err());
        s.apply_edit(Field::RepetitionPenalty, "1.3").unwrap();
        s.apply_edit(Field::MinP, "0.1").unwrap();
        assert_eq!((s.sampling.repetition_penalty, s.sampling.min_p), (1.3, Some(0.1)));
        s.apply_edit(Field::MinP, "off").unwrap();
        s.apply_edit(Field::RepetitionPenalty, "off").unwrap();
        assert_eq!((s.sampling.repetition_penalty, s.sampling.min_p), (1.0, None));
        assert!(s.check().is_ok());
    }
}
