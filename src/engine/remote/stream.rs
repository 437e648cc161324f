//! From streamed completion chunks to engine events, one path at a time.
//!
//! A chunk carries the text of one or more tokens (with `logprobs`: the tokens' own texts and
//! log-probabilities). Its text goes through the same stop-string matcher as the local engine's, so
//! stop strings are found across chunks and never shown. Each token becomes one [`TokenEvent`]; the
//! last one is held until the next chunk or the end, so that text released at the end (held back as
//! a possible stop string) still travels in a token event and a path's `Done.text` is the
//! concatenation of its token texts.

use serde::Deserialize;

use super::super::stop::StopMatcher;
use std::ops::Range;

use super::super::{PathResult, StopReason, TokenEvent, TokenForcer, TopLogprob};

/// One `data:` payload of a streamed completion.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Chunk {
    #[serde(default)]
    pub(crate) choices: Vec<Choice>,
    #[serde(default)]
    pub(crate) usage: Option<Usage>,
    /// Servers report a failure mid-stream as an error object instead of a completion.
    #[serde(default)]
    pub(crate) error: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Choice {
    #[serde(default)]
    pub(crate) text: String,
    #[serde(default)]
    pub(crate) logprobs: Option<Logprobs>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

/// The legacy completions `logprobs` object.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Logprobs {
    #[serde(default)]
    pub(crate) tokens: Vec<String>,
    #[serde(default)]
    pub(crate) token_logprobs: Vec<Option<f32>>,
    #[serde(default)]
    pub(crate) top_logprobs: Vec<Option<serde_json::Map<String, serde_json::Value>>>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(crate) struct Usage {
    #[serde(default)]
    pub(crate) prompt_tokens: usize,
}

/// What feeding a chunk gives: token events to report now, and the result if the path ended.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Step {
    pub(crate) tokens: Vec<TokenEvent>,
    pub(crate) done: Option<PathResult>,
    /// The forcer inserted text: the stream must go on from a new request whose prompt ends with
    /// everything so far.
    pub(crate) restart: bool,
}

/// The state of one streamed path.
#[derive(Debug)]
pub(crate) struct PathStream {
    path: usize,
    stop: StopMatcher,
    text: String,
    /// All text received and inserted, before stop strings are cut: what the forcer reads and what a
    /// restarted request continues.
    seen: String,
    forced_spans: Vec<Range<usize>>,
    logprobs: Vec<f32>,
    /// Tokens seen so far.
    tokens: usize,
    /// The last token event, not reported yet.
    held: Option<TokenEvent>,
    /// A stop string completed by the chunk being read.
    stopped: Option<String>,
    parked: bool,
    done: bool,
}

impl PathStream {
    pub(crate) fn new(path: usize, stop: &[String]) -> Self {
        Self {
            path,
            stop: StopMatcher::new(stop),
            text: String::new(),
            seen: String::new(),
            forced_spans: Vec::new(),
            logprobs: Vec::new(),
            tokens: 0,
            held: None,
            stopped: None,
            parked: false,
            done: false,
        }
    }

    /// Still streaming (not ended, not parked after an early failure).
    pub(crate) fn is_live(&self) -> bool {
        !self.done && !self.parked
    }

    /// The request failed before any byte: the path waits, unreported, for [`PathStream::end`].
    pub(crate) fn mark_failed(&mut self) {
        self.parked = true;
    }

    pub(crate) fn tokens(&self) -> usize {
        self.tokens
    }

    /// The generated text so far, inserted text included (a restarted request continues after it).
    pub(crate) fn seen(&self) -> &str {
        &self.seen
    }

    /// Feeds one parsed chunk; `forcer` is asked about the text when it grew.
    pub(crate) fn chunk(&mut self, chunk: &Chunk, endpoint: &str, forcer: Option<&dyn TokenForcer>) -> Step {
        let mut step = Step::default();
        if self.done {
            return step;
        }
        if let Some(err) = &chunk.error {
            let msg = super::error::message_of(err).unwrap_or_else(|| err.to_string());
            let e = super::RemoteError::BadStream {
                endpoint: endpoint.into(),
                cause: format!("the server reported an error: {}", super::error::one_line(&msg)),
            };
            return self.end(StopReason::Error(e.to_string()));
        }
        let Some(choice) = chunk.choices.first() else { return step };
        for ev in self.token_events(choice) {
            if let Some(prev) = self.held.replace(ev) {
                step.tokens.push(prev);
            }
        }
        if let Some(s) = self.stopped.take() {
            return self.end_after(step, StopReason::StopString(s));
        }
        if let Some(reason) = &choice.finish_reason {
            let reason = match reason.as_str() {
                "length" => StopReason::MaxTokens,
                "stop" | "eos" | "eos_token" => StopReason::Eos,
                other => StopReason::Error(format!("{endpoint}: the server ended the path: finish_reason {other:?}")),
            };
            return self.end_after(step, reason);
        }
        let insert =
            forcer.filter(|_| !choice.text.is_empty()).and_then(|f| f.force(&self.seen)).filter(|s| !s.is_empty());
        if let Some(insert) = insert {
            let ev = self.forced_event(&insert);
            if let Some(prev) = self.held.replace(ev) {
                step.tokens.push(prev);
            }
            if let Some(s) = self.stopped.take() {
                return self.end_after(step, StopReason::StopString(s));
            }
            step.restart = true;
        }
        step
    }

    /// The token event of text the forcer inserted.
    fn forced_event(&mut self, insert: &str) -> TokenEvent {
        self.forced_spans.push(self.seen.len()..self.seen.len() + insert.len());
        self.seen.push_str(insert);
        self.tokens += 1;
        let out = self.stop.push(insert);
        self.text.push_str(&out.text);
        if out.stopped.is_some() {
            self.stopped = out.stopped;
        }
        TokenEvent { path: self.path, text: out.text, forced: true, ..TokenEvent::default() }
    }

    /// The stream ended: `[DONE]` (`clean`) or the connection closed (not clean). A path without a
    /// finish reason ends with `max_tokens` when it has them all, else as the server's end-of-text
    /// after `[DONE]`, and in an error when the stream was cut.
    pub(crate) fn stream_end(&mut self, clean: bool, max_tokens: usize, endpoint: &str) -> Step {
        if self.done {
            return Step::default();
        }
        let reason = if self.tokens >= max_tokens {
            StopReason::MaxTokens
        } else if clean {
            StopReason::Eos
        } else {
            let e = super::RemoteError::BadStream {
                endpoint: endpoint.into(),
                cause: format!("the stream ended without [DONE] after {} tokens", self.tokens),
            };
            StopReason::Error(e.to_string())
        };
        self.end(reason)
    }

    /// Ends the path for `reason` (a failure, a cancel), keeping its text so far.
    /// Ends the path after the tokens `step` already holds: they come first, then the end's.
    fn end_after(&mut self, mut step: Step, reason: StopReason) -> Step {
        let mut end = self.end(reason);
        step.tokens.append(&mut end.tokens);
        step.done = end.done;
        step
    }

    pub(crate) fn end(&mut self, reason: StopReason) -> Step {
        let mut step = Step::default();
        if self.done {
            return step;
        }
        self.done = true;
        if !matches!(reason, StopReason::StopString(_)) {
            let rest = self.stop.finish();
            self.text.push_str(&rest);
            match self.held.as_mut() {
                Some(ev) => ev.text.push_str(&rest),
                None if !rest.is_empty() => {
                    self.held = Some(TokenEvent { path: self.path, text: rest, ..TokenEvent::default() })
                }
                None => {}
            }
        }
        step.tokens.extend(self.held.take());
        step.done = Some(PathResult {
            token_logprobs: std::mem::take(&mut self.logprobs),
            forced_spans: std::mem::take(&mut self.forced_spans),
            ..PathResult::empty(self.path, reason)
        });
        if let Some(r) = step.done.as_mut() {
            r.text = self.text.clone();
        }
        step
    }
}

impl PathStream {
    /// The token events of a chunk's choice; a completed stop string is left in `self.stopped`.
    fn token_events(&mut self, choice: &Choice) -> Vec<TokenEvent> {
        // The tokens of the chunk: from logprobs when sent (one event per token), else one.
        let lp = choice.logprobs.as_ref().filter(|l| !l.tokens.is_empty());
        let n = lp.map_or(usize::from(!choice.text.is_empty()), |l| l.tokens.len());
        if n == 0 {
            return Vec::new();
        }
        self.seen.push_str(&choice.text);
        let out = self.stop.push(&choice.text);
        self.text.push_str(&out.text);
        if out.stopped.is_some() {
            self.stopped = out.stopped;
        }
        let mut events: Vec<TokenEvent> = (0..n)
            .map(|i| {
                let logprob = lp.and_then(|l| l.token_logprobs.get(i).copied().flatten());
                let top = lp.and_then(|l| l.top_logprobs.get(i).cloned().flatten()).map(top_list).unwrap_or_default();
                TokenEvent {
                    path: self.path,
                    id: None,
                    text: String::new(),
                    logprob,
                    top,
                    forced: false,
                    entropy: None,
                }
            })
            .collect();
        for ev in &events {
            if let Some(l) = ev.logprob {
                self.logprobs.push(l);
            }
        }
        self.tokens += n;
        // The released text goes with the chunk's last token.
        if let Some(last) = events.last_mut() {
            last.text = out.text;
        }
        events
    }
}

/// Alternatives most likely first (a JSON object has no order to rely on).
fn top_list(map: serde_json::Map<String, serde_json::Value>) -> Vec<TopLogprob> {
    let mut top: Vec<TopLogprob> = map
        .into_iter()
        .filter_map(|(text, v)| v.as_f64().map(|l| TopLogprob { id: None, text, logprob: l as f32 }))
        .collect();
    top.sort_by(|a, b| b.logprob.total_cmp(&a.logprob).then_with(|| a.text.cmp(&b.text)));
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(v: serde_json::Value) -> Chunk {
        serde_json::from_value(v).unwrap()
    }

    fn text_chunk(text: &str, finish: Option<&str>) -> Chunk {
        chunk(serde_json::json!({"choices": [{"index": 0, "text": text, "finish_reason": finish}]}))
    }

    #[test]
    fn a_stop_string_inside_one_chunk_drops_it_and_the_rest() {
        let mut p = PathStream::new(0, &["\nQ:".to_string()]);
        let s1 = p.chunk(&text_chunk(" 5.", None), "E", None);
        assert!(s1.tokens.is_empty() && s1.done.is_none(), "the first token is held");
        let s2 = p.chunk(&text_chunk(" Done.\nQ: next", None), "E", None);
        let texts: Vec<&str> = s2.tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, vec![" 5.", " Done."]);
        let r = s2.done.unwrap();
        assert_eq!((r.text.as_str(), r.stop_reason), (" 5. Done.", StopReason::StopString("\nQ:".into())));
        assert!(p.chunk(&text_chunk("more", None), "E", None).tokens.is_empty(), "nothing after the end");
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        for (finish, want) in [("length", StopReason::MaxTokens), ("stop", StopReason::Eos)] {
            let mut p = PathStream::new(1, &[]);
            let s = p.chunk(&text_chunk(" 5", Some(finish)), "E", None);
            assert_eq!(s.tokens.len(), 1);
            assert_eq!(s.tokens[0].path, 1);
            assert_eq!(s.done.unwrap().stop_reason, want);
        }
        let mut p = PathStream::new(0, &[]);
        let r = p.chunk(&text_chunk("", Some("abort")), "http://h/v1", None).done.unwrap();
        assert_eq!(r.stop_reason.as_str(), "error");
    }

    #[test]
    fn a_clean_end_without_finish_reason_is_eos_or_max_tokens_a_cut_is_an_error() {
        let mut p = PathStream::new(0, &[]);
        p.chunk(&text_chunk(" a", None), "E", None);
        assert_eq!(p.stream_end(true, 8, "E").done.unwrap().stop_reason, StopReason::Eos);
        let mut p = PathStream::new(0, &[]);
        p.chunk(&text_chunk(" a", None), "E", None);
        assert_eq!(p.stream_end(false, 1, "E").done.unwrap().stop_reason, StopReason::MaxTokens);
        let mut p = PathStream::new(0, &[]);
        p.chunk(&text_chunk(" a", None), "E", None);
        let s = p.stream_end(false, 8, "http://h/v1");
        assert_eq!(s.tokens.len(), 1, "the held token is still reported");
        let r = s.done.unwrap();
        assert_eq!(r.text, " a");
        assert_eq!(
            r.stop_reason.error(),
            Some("http://h/v1: bad stream: the stream ended without [DONE] after 1 tokens")
        );
    }

    #[test]
    fn usage_is_read_from_chunks() {
        let c = chunk(
            serde_json::json!({"model": "m", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}),
        );
        assert_eq!(c.usage.map(|u| u.prompt_tokens), Some(12));
        let mut p = PathStream::new(0, &[]);
        assert_eq!(p.chunk(&c, "E", None), Step::default());
    }
}
