//! Reading the final answer out of a continuation, and comparing it with the gold number.
//!
//! Strict: the number right after the first "The answer is" (any case; `$`, `:`, a sign, thousands commas
//! and decimals allowed, a final full stop ignored). Flexible: the last number in the text, when the path
//! ends on a statement that gives it (see [`crate::lab::conclusion`]): a path cut off mid-sentence, ending
//! on a question or in a loop has no answer (`answer: null`), whatever numbers it holds. Both only look
//! before an invented next question (`Q:` at the start of a line or after a space), since what follows
//! answers some other question.

use serde::{Deserialize, Serialize};

use super::number;

/// Which rule produced the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerRule {
    Strict,
    Flexible,
    None,
}

impl AnswerRule {
    pub fn name(&self) -> &'static str {
        match self {
            AnswerRule::Strict => "strict",
            AnswerRule::Flexible => "flexible",
            AnswerRule::None => "none",
        }
    }
}

/// An extracted answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// Canonical number text: `18`, `3.5`, `-3`.
    pub answer: Option<String>,
    pub rule: AnswerRule,
    /// Byte span of the number in the continuation.
    pub span: Option<(usize, usize)>,
}

const STRICT_PHRASE: &str = "the answer is";

/// The answer of a continuation, strict rule first, then flexible.
pub fn extract(continuation: &str) -> Extracted {
    let limit = invented_question_start(continuation).unwrap_or(continuation.len());
    let text = &continuation[..limit];
    if let Some((answer, span)) = strict(text) {
        return Extracted { answer: Some(answer), rule: AnswerRule::Strict, span: Some(span) };
    }
    if let Ok((answer, span)) = super::conclusion::final_number(text) {
        return Extracted { answer: Some(answer), rule: AnswerRule::Flexible, span: Some(span) };
    }
    Extracted { answer: None, rule: AnswerRule::None, span: None }
}

/// Why `continuation` gives no answer at all (neither rule finds one), or None when it answers.
pub fn no_answer_reason(continuation: &str) -> Option<&'static str> {
    let limit = invented_question_start(continuation).unwrap_or(continuation.len());
    let text = &continuation[..limit];
    if strict(text).is_some() {
        return None;
    }
    super::conclusion::final_number(text).err()
}

/// The strict answer alone: the number after the first "The answer is" (before any invented `Q:`).
pub fn strict_answer(continuation: &str) -> Option<(String, (usize, usize))> {
    let limit = invented_question_start(continuation).unwrap_or(continuation.len());
    strict(&continuation[..limit])
}

fn strict(text: &str) -> Option<(String, (usize, usize))> {
    strict_after(text, find_strict_phrase(text, 0)?)
}

/// Byte offset of the first "the answer is" (any case) that starts at or after `from`.
pub(crate) fn find_strict_phrase(text: &str, from: usize) -> Option<usize> {
    let phrase = STRICT_PHRASE.as_bytes();
    text.as_bytes().get(from..)?.windows(phrase.len()).position(|w| w.eq_ignore_ascii_case(phrase)).map(|p| from + p)
}

/// The strict answer read after the phrase found at `phrase` (see [`find_strict_phrase`]).
pub(crate) fn strict_after(text: &str, phrase: usize) -> Option<(String, (usize, usize))> {
    let at = phrase + STRICT_PHRASE.len();
    let b = text.as_bytes();
    let mut i = at;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if i < b.len() && b[i] == b':' {
        i += 1;
        skip_ws(&mut i);
    }
    let start = i;
    let mut neg = false;
    if i < b.len() && b[i] == b'-' {
        neg = true;
        i += 1;
    }
    if i < b.len() && b[i] == b'$' {
        i += 1;
    }
    if !neg && i < b.len() && b[i] == b'-' {
        neg = true;
        i += 1;
    }
    let lit = number::scan_at(text, i)?;
    let v = if neg { -lit.value } else { lit.value };
    Some((number::canonical(&v), (start, lit.end)))
}

/// Byte offset of the first `Q:` that starts an invented question: at the start of the text or of a
/// line, or after whitespace.
pub fn invented_question_start(text: &str) -> Option<usize> {
    invented_question_start_from(text, 0)
}

/// Like [`invented_question_start`], looking only at `Q:`s that start at or after byte `from`.
pub fn invented_question_start_from(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut from = from;
    while let Some(p) = text.get(from..)?.find("Q:") {
        let at = from + p;
        if at == 0 || b[at - 1].is_ascii_whitespace() {
            return Some(at);
        }
        from = at + 2;
    }
    None
}

/// Whether `answer` equals `gold` as numbers (`18.00` = `18`, `$1,000` = `1000`). Falls back to exact
/// text when either is not a number.
pub fn matches_gold(answer: &str, gold: &str) -> bool {
    match (number::parse_value(answer), number::parse_value(gold)) {
        (Some(a), Some(g)) => a == g,
        _ => answer.trim() == gold.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(t: &str) -> (Option<String>, AnswerRule) {
        let e = extract(t);
        (e.answer, e.rule)
    }
    fn strict_of(t: &str) -> Option<String> {
        let e = extract(t);
        assert_eq!(e.rule, AnswerRule::Strict, "{t:?}");
        e.answer
    }

    #[test]
    fn strict_forms() {
        assert_eq!(strict_of(" She makes 9 * 2 = $18. The answer is 18.").as_deref(), Some("18"));
        assert_eq!(strict_of("The answer is $18").as_deref(), Some("18"));
        assert_eq!(strict_of("The answer is 18.\n\n").as_deref(), Some("18"));
        assert_eq!(strict_of("so the answer is 1,000 apples").as_deref(), Some("1000"));
        assert_eq!(strict_of("The answer is -3.").as_deref(), Some("-3"));
        assert_eq!(strict_of("The answer is 3.5.").as_deref(), Some("3.5"));
        assert_eq!(strict_of("The answer is $70,000.").as_deref(), Some("70000"));
        assert_eq!(strict_of("The answer is: 12").as_deref(), Some("12"));
        assert_eq!(strict_of("The answer is -$4.50").as_deref(), Some("-4.5"));
    }

    #[test]
    fn strict_takes_the_first_statement() {
        let e = extract("The answer is 5. Wait, 2 + 2 = 4. The answer is 4.");
        assert_eq!((e.answer.as_deref(), e.rule), (Some("5"), AnswerRule::Strict));
        let (s, t) = e.span.unwrap();
        assert_eq!(&"The answer is 5. Wait, 2 + 2 = 4. The answer is 4."[s..t], "5");
    }

    #[test]
    fn flexible_takes_the_last_number_before_an_invented_question() {
        assert_eq!(ans(" He has 3 + 4 = 7 apples"), (Some("7".into()), AnswerRule::Flexible));
        let t = " 2 bolts * 2 = 8 bolts. So 8 bolts in total.\nQ: Tom has 12 cats. The answer is 12.";
        assert_eq!(ans(t), (Some("8".into()), AnswerRule::Flexible));
        assert_eq!(ans(" The answer is a lot, maybe 40 of them."), (Some("40".into()), AnswerRule::Flexible));
        assert_eq!(ans(" the temperature fell to -5."), (Some("-5".into()), AnswerRule::Flexible));
        assert_eq!(ans(" 10-5 is five."), (Some("5".into()), AnswerRule::Flexible));
        assert_eq!(ans(" She sells 13 eggs.\n#### 26.\n\n"), (Some("26".into()), AnswerRule::Flexible));
    }

    #[test]
    fn a_path_that_never_answers_has_no_answer() {
        for t in [
            " How many tests did John take? ** 4",
            " Then he bought 5 glasses for 3 dollars each. So he bought 5 x 3 = 15 glasses. Then he bought 5 glasses",
            " Marie paid $50. How many boxes of pizza did Marie order if each box costs $8.50?\n",
        ] {
            assert_eq!(ans(t), (None, AnswerRule::None), "{t:?}");
            assert!(no_answer_reason(t).is_some(), "{t:?}");
        }
        assert_eq!(no_answer_reason(" 2 + 2 = 4. The answer is 4"), None);
        assert_eq!(no_answer_reason(" 2 + 2 = 4."), None);
    }

    #[test]
    fn no_number_no_answer() {
        assert_eq!(ans(" The robts of the bolts are many."), (None, AnswerRule::None));
        assert_eq!(ans(""), (None, AnswerRule::None));
        assert_eq!(ans("Q: What is 5 + 5? The answer is 10."), (None, AnswerRule::None));
    }

    #[test]
    fn gold_comparison_is_numeric() {
        assert!(matches_gold("18.00", "18"));
        assert!(matches_gold("$1,000", "1000"));
        assert!(matches_gold("18", "18"));
        assert!(matches_gold("-3", "-3"));
        assert!(!matches_gold("17", "18"));
        assert!(!matches_gold("1.8", "18"));
        assert!(matches_gold("0.50", "0.5"));
    }

    #[test]
    fn serde_names() {
        assert_eq!(serde_json::to_string(&AnswerRule::Flexible).unwrap(), "\"flexible\"");
        assert_eq!(serde_json::to_string(&AnswerRule::None).unwrap(), "\"none\"");
    }
}
