//! Incremental detokenization: token ids in, newly complete text out.
//!
//! BLOOM's tokenizer is byte-level: one character such as '€' or an emoji may span several tokens,
//! and a token decoded alone can end in the middle of a character (the tokenizer then shows U+FFFD).
//! So a token is never decoded alone: each step decodes a short window of ids — from the last
//! boundary before the previously released text to the end — and releases only the part past the
//! previously released text, and only once it does not end in U+FFFD. The concatenation of all
//! released pieces (plus [`TextStream::finish`]) equals decoding all ids at once.

use tokenizers::Tokenizer;

use super::EngineError;

/// Decodes ids the way the engine reports text: special tokens (e.g. `</s>`) are left out.
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String, EngineError> {
    tokenizer.decode(ids, true).map_err(|e| EngineError::Tokenizer(format!("cannot decode ids: {e}")))
}

/// The detokenizer state of one path.
#[derive(Clone, Debug, Default)]
pub struct TextStream {
    ids: Vec<u32>,
    /// Start of the decode window: a boundary before the last released piece (gives the decoder
    /// context, e.g. for tokenizers that treat the first token of a sequence specially).
    prefix: usize,
    /// Everything before this index has been released.
    read: usize,
    /// `decode(ids[prefix..read])`, cached.
    prefix_text: String,
}

impl TextStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Adds one token; returns the text it completes (empty while a character is still partial).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String, EngineError> {
        self.ids.push(id);
        let text = decode(tokenizer, &self.ids[self.prefix..])?;
        if text.ends_with('\u{FFFD}') {
            // Possibly a character cut in two: wait for the next token.
            return Ok(String::new());
        }
        self.release(tokenizer, text)
    }

    /// Releases whatever is still held back (at the end of generation; may include U+FFFD if the
    /// model really produced invalid UTF-8).
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<String, EngineError> {
        if self.read == self.ids.len() {
            return Ok(String::new());
        }
        let text = decode(tokenizer, &self.ids[self.prefix..])?;
        self.release(tokenizer, text)
    }

    /// Releases the part of `text` (the decoded window) past the previously released text.
    fn release(&mut self, tokenizer: &Tokenizer, text: String) -> Result<String, EngineError> {
        // A decoder that rewrote the earlier text (not byte-level BLOOM) cannot be diffed: hold.
        if text.len() <= self.prefix_text.len() || !text.starts_with(&self.prefix_text) {
            return Ok(String::new());
        }
        let delta = text[self.prefix_text.len()..].to_string();
        self.prefix = self.read;
        self.read = self.ids.len();
        self.prefix_text = decode(tokenizer, &self.ids[self.prefix..self.read])?;
        Ok(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-bloom/tokenizer.json");
        Tokenizer::from_file(path).unwrap()
    }

    /// Streams `ids` one by one; returns the released pieces (the last from `finish`).
    fn stream(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
        let mut s = TextStream::new();
        let mut out: Vec<String> = ids.iter().map(|&id| s.push(tok, id).unwrap()).collect();
        out.push(s.finish(tok).unwrap());
        out
    }

    #[test]
    fn multibyte_characters_arrive_intact() {
        let tok = tokenizer();
        for text in [
            "It costs €2 — she’s happy 😀 today",
            "€€€ ’’ 😀😀 🧑‍🚀 naïve café 日本語 ∑",
            "😀",
            " Q: Janet’s ducks lay 16 eggs.\nA: She sells them for €2 each. The answer is 18.",
        ] {
            let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
            let pieces = stream(&tok, &ids);
            assert_eq!(pieces.concat(), decode(&tok, &ids).unwrap());
            assert_eq!(pieces.concat(), text);
            for p in &pieces {
                assert!(!p.contains('\u{FFFD}'), "partial character released in {p:?} of {text:?}");
            }
        }
    }

    #[test]
    fn the_test_text_really_splits_characters_across_tokens() {
        // Guards the test above: with this tokenizer '€' and the emoji take several byte tokens, and
        // decoding one of them alone gives U+FFFD, so a naive streamer would break them.
        let tok = tokenizer();
        let ids = tok.encode("€😀’", false).unwrap().get_ids().to_vec();
        assert!(ids.len() > 3, "{ids:?}");
        assert!(ids.iter().any(|&id| decode(&tok, &[id]).unwrap().contains('\u{FFFD}')));
        let pieces = stream(&tok, &ids);
        assert!(pieces.iter().any(|p| p.is_empty()), "some token must be held back: {pieces:?}");
    }

    #[test]
    fn concatenation_equals_full_decode_for_arbitrary_ids() {
        // Random ids form invalid UTF-8 too; the stream must still add up to the full decode.
        let tok = tokenizer();
        let vocab = tok.get_vocab_size(true) as u64;
        let mut rng = crate::engine::rng::Rng::new(17, 0);
        for _ in 0..50 {
            let ids: Vec<u32> = (0..40).map(|_| (rng.next_u64() % vocab) as u32).collect();
            assert_eq!(stream(&tok, &ids).concat(), decode(&tok, &ids).unwrap(), "{ids:?}");
        }
    }

    #[test]
    fn special_tokens_give_no_text() {
        let tok = tokenizer();
        let mut ids = tok.encode("A: 5", false).unwrap().get_ids().to_vec();
        ids.push(2); // </s>
        assert_eq!(stream(&tok, &ids).concat(), "A: 5");
    }
}
