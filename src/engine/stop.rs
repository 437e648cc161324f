//! Stop strings with hold-back.
//!
//! Text arrives in pieces that need not line up with a stop string (`"\nQ:"` may come as `"\n"` then
//! `"Q:"`). Text that could still be the start of a stop string is held back until it is either
//! completed (the path stops there; the stop string and anything after it are dropped) or ruled out
//! (it is released).

/// What feeding a piece of text gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StopOutput {
    /// Text that can be shown now (never part of a stop string).
    pub text: String,
    /// The stop string that just completed, if any: the path stops.
    pub stopped: Option<String>,
}

/// The stop-string state of one path.
#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not released: a possible beginning of a stop string.
    pending: String,
    stopped: bool,
}

impl StopMatcher {
    /// Empty stop strings are ignored (the engine rejects them up front).
    pub fn new(stops: &[String]) -> Self {
        Self { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), ..Self::default() }
    }

    /// Feeds the next piece of text.
    pub fn push(&mut self, piece: &str) -> StopOutput {
        if self.stopped {
            return StopOutput::default();
        }
        self.pending.push_str(piece);
        // The earliest complete stop string wins (the first listed on a tie).
        let mut hit: Option<(usize, &String)> = None;
        for s in &self.stops {
            if let Some(at) = self.pending.find(s.as_str()) {
                if hit.is_none_or(|(best, _)| at < best) {
                    hit = Some((at, s));
                }
            }
        }
        if let Some((at, s)) = hit {
            let stopped = Some(s.clone());
            let text = self.pending[..at].to_string();
            self.pending.clear();
            self.stopped = true;
            return StopOutput { text, stopped };
        }
        // No stop string is complete, so any match would have to run past the end of `pending`:
        // hold back from the first position whose rest is a proper prefix of some stop string.
        let hold = self
            .pending
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let rest = &self.pending[i..];
                self.stops.iter().any(|s| s.starts_with(rest))
            })
            .unwrap_or(self.pending.len());
        let text = self.pending[..hold].to_string();
        self.pending.drain(..hold);
        StopOutput { text, stopped: None }
    }

    /// The text still held back, released when the path ends for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stops: &[&str], pieces: &[&str]) -> (Vec<String>, Option<String>, String) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = Vec::new();
        for p in pieces {
            let o = m.push(p);
            out.push(o.text);
            if o.stopped.is_some() {
                return (out, o.stopped, String::new());
            }
        }
        let rest = m.finish();
        (out, None, rest)
    }

    #[test]
    fn stops_across_pieces_and_drops_the_string() {
        let (out, stop, _) = feed(&["\nQ:"], &["The answer is 6.", "\n", "Q", ": What", " next"]);
        assert_eq!(stop.as_deref(), Some("\nQ:"));
        assert_eq!(out, vec!["The answer is 6.", "", "", ""]);
        assert_eq!(out.concat(), "The answer is 6.");
    }

    #[test]
    fn releases_held_text_once_ruled_out() {
        let (out, stop, rest) = feed(&["\nQ:"], &["a", "\n", "\nQ", "x"]);
        assert_eq!(stop, None);
        // "\n" is held, then released when the next "\n" starts a new candidate; "\nQ" is released
        // when "x" rules it out.
        assert_eq!(out, vec!["a", "", "\n", "\nQx"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn end_of_generation_releases_what_is_held() {
        let (out, stop, rest) = feed(&["\nQ:"], &["done.", "\nQ"]);
        assert_eq!(stop, None);
        assert_eq!(out.concat() + &rest, "done.\nQ");
    }

    #[test]
    fn earliest_of_several_stop_strings_wins_and_the_tail_is_dropped() {
        let (out, stop, _) = feed(&["The end", "\n\n"], &["x\n\nThe end and more"]);
        assert_eq!(stop.as_deref(), Some("\n\n"));
        assert_eq!(out.concat(), "x");
        let (out, stop, _) = feed(&["\n\n", "5."], &["is 5.\n\nQ:"]);
        assert_eq!(stop.as_deref(), Some("5."));
        assert_eq!(out.concat(), "is ");
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let (out, stop, _) = feed(&["€€"], &["5€", "x€", "€ tail"]);
        assert_eq!(stop.as_deref(), Some("€€"));
        assert_eq!(out, vec!["5", "€x", ""]);
    }

    #[test]
    fn no_stop_strings_release_everything_at_once() {
        let (out, stop, rest) = feed(&[], &["a", "\nQ:", "b"]);
        assert_eq!(stop, None);
        assert_eq!(out, vec!["a", "\nQ:", "b"]);
        assert_eq!(rest, "");
    }
}
