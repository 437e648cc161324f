//! The sampling settings panel: which fields there are, how ←/→ adjusts them and how a typed value is
//! parsed. Mode and template are rows here too (so the panel reads as "what Enter will run"), but the
//! app changes those itself.

use crate::engine::SamplingParams;

/// Most paths a generation samples (panes on screen).
pub const MAX_PATHS: usize = 8;

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
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::Mode,
        Field::Template,
        Field::Paths,
        Field::Temperature,
        Field::TopK,
        Field::TopP,
        Field::MaxNewTokens,
        Field::Seed,
        Field::Stop,
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
        }
    }

    /// Whether a value can be typed (the others are chosen with ←/→ or `t`/`m`).
    pub fn editable(self) -> bool {
        !matches!(self, Field::Mode | Field::Template)
    }
}

/// What the next generation will use.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub sampling: SamplingParams,
    /// Paths sampled in the self-consistency view (1..=MAX_PATHS).
    pub paths: usize,
    /// Stop strings typed by the user; None means each template's own.
    pub stop_override: Option<Vec<String>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sampling: SamplingParams {
                temperature: 0.7,
                top_k: None,
                top_p: None,
                seed: 42,
                max_new_tokens: 128,
                ..SamplingParams::default()
            },
            paths: 2,
            stop_override: None,
        }
    }
}

impl Settings {
    /// Steps a numeric field by `delta` notches (←/→).
    pub fn adjust(&mut self, field: Field, delta: i32) {
        let s = &mut self.sampling;
        match field {
            Field::Paths => self.paths = step_usize(self.paths, delta, 1, 1, MAX_PATHS),
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
            Field::Mode | Field::Template => String::new(),
        }
    }

    /// The text an edit of `field` starts from.
    pub fn edit_text(&self, field: Field, template_stop: &[String]) -> String {
        match field {
            Field::Temperature => format!("{}", self.sampling.temperature),
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
                if !(1..=MAX_PATHS).contains(&n) {
                    return Err(format!("paths: {n} is outside 1..={MAX_PATHS}"));
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
            Field::Mode | Field::Template => {}
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
        assert_eq!(s.paths, MAX_PATHS);
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
    }
}
