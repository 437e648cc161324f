//! The calculator in the loop: when a path's text ends in an arithmetic expression followed by `=`, the
//! exact result is written for the model (GSM8K's authors sampled this way). The expression is read by
//! the arithmetic checker's own exact-rational parser — text is never run as code — so the calculator
//! computes exactly what the checker checks, and its results are excluded from `arithmetic_error`.

use std::ops::Range;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::Signed;

use crate::engine::TokenForcer;
use crate::lab::detect::{arith, Failure, FailureKind};
use crate::lab::number;

/// The [`TokenForcer`] that writes results after `=`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Calculator;

impl TokenForcer for Calculator {
    fn name(&self) -> &str {
        "calculator"
    }

    fn force(&self, path_text: &str) -> Option<String> {
        result_after(path_text)
    }
}

/// What to append to `text` when it ends in `expression =`: a space (if the `=` has one before it) and
/// the result as GSM8K writes it. None when the text does not end in `=` or the checker's parser cannot
/// read the expression (a variable, a time, `20% of 50`, …).
pub fn result_after(text: &str) -> Option<String> {
    let body = text.strip_suffix('=')?;
    let seg_start = segment_start(body);
    let (value, offset) = arith::value_before_final_eq(&text[seg_start..])?;
    let expr = &body[seg_start + offset..];
    let sep = if body.ends_with(char::is_whitespace) { " " } else { "" };
    Some(format!("{sep}{}", format_like(&value, expr.contains('$'), has_thousands_comma(expr))))
}

/// Start of the sentence `text` ends in: after the last line break or sentence end (`. `, `! `, `? `).
fn segment_start(text: &str) -> usize {
    let b = text.as_bytes();
    let mut i = b.len();
    while i > 0 {
        let c = b[i - 1];
        if c == b'\n' {
            return i;
        }
        if matches!(c, b'.' | b'!' | b'?') && b.get(i).is_some_and(|n| n.is_ascii_whitespace()) {
            return i;
        }
        i -= 1;
    }
    0
}

/// Whether a number in `expr` is written with thousands commas (`80,000`).
fn has_thousands_comma(expr: &str) -> bool {
    let b = expr.as_bytes();
    (1..b.len()).any(|i| {
        b[i] == b','
            && b[i - 1].is_ascii_digit()
            && b.len() >= i + 4
            && b[i + 1..i + 4].iter().all(u8::is_ascii_digit)
            && !b.get(i + 4).is_some_and(u8::is_ascii_digit)
    })
}

/// `v` as GSM8K writes numbers: integers plain, finite decimals without trailing zeros, other fractions
/// rounded (half away from zero) to two places; with `$` and thousands commas when asked.
pub fn format_like(v: &BigRational, dollars: bool, commas: bool) -> String {
    let neg = v.is_negative();
    let a = v.abs();
    let plain = number::canonical(&a);
    let digits = if plain.contains('/') {
        let hundred = BigRational::from_integer(BigInt::from(100));
        let half = BigRational::new(BigInt::from(1), BigInt::from(2));
        let cents = (&a * &hundred + half).floor().to_integer();
        let (int, frac) = (&cents / 100, &cents % 100);
        let s = format!("{int}.{frac:0>2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        plain
    };
    let digits = if commas { group_thousands(&digits) } else { digits };
    let neg = neg && !(digits.chars().all(|c| matches!(c, '0' | '.' | ',')));
    format!("{}{}{digits}", if neg { "-" } else { "" }, if dollars { "$" } else { "" })
}

fn group_thousands(digits: &str) -> String {
    let (int, rest) = digits.split_at(digits.find('.').unwrap_or(digits.len()));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out + rest
}

/// Drops the `arithmetic_error` findings whose written result lies inside one of `forced` (byte ranges
/// the calculator inserted): those results are right by construction. Other findings are kept.
pub fn drop_forced_results(failures: Vec<Failure>, forced: &[Range<usize>]) -> Vec<Failure> {
    if forced.is_empty() {
        return failures;
    }
    failures
        .into_iter()
        .filter(|f| f.kind != FailureKind::ArithmeticError || !forced.iter().any(|r| r.start < f.end && f.end <= r.end))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(t: &str) -> Option<String> {
        Calculator.force(t)
    }

    #[test]
    fn exact_results_in_gsm8k_style() {
        let cases = [
            ("Janet sells 16 - 3 - 4 =", " 9"),
            ("She makes $2 * 9 =", " $18"),
            ("He earns 80,000 x 2.5 =", " 200,000"),
            ("So 3/4 * 12 =", " 9"),
            ("Each gets 10 / 4 =", " 2.5"),
            ("It costs 1.25 + 2.25 =", " 3.5"),
            ("So 10 / 3 =", " 3.33"),
            ("and 2 / 3 =", " 0.67"),
            ("Then 3 - 5 =", " -2"),
            ("total $1,200 + $350.50 =", " $1,550.5"),
            ("it is 20% * 50 =", " 10"),
            ("16-3-4=", "9"),
            ("2 + 3 = 5 + 1 =", " 6"),
            ("He had 5 apples. Then 7 * 6 =", " 42"),
            ("Line one 4 + 4 = 8\n(3 + 4) * 2 =", " 14"),
        ];
        for (text, want) in cases {
            assert_eq!(calc(text).as_deref(), Some(want), "{text:?}");
        }
    }

    #[test]
    fn unreadable_expressions_force_nothing() {
        for text in [
            "2x + 3 =",
            "20% of 50 =",
            "3:00 + 2 =",
            "He has 5 apples =",
            "x =",
            "It costs 5 + 3 = 8",
            "4 pounds - 6 ounces =",
            "10 / 0 =",
            "",
            "=",
        ] {
            assert_eq!(calc(text), None, "{text:?}");
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero_and_trims() {
        let r = |n: i64, d: i64| BigRational::new(n.into(), d.into());
        assert_eq!(format_like(&r(1, 3), false, false), "0.33");
        assert_eq!(format_like(&r(-1, 3), true, false), "-$0.33");
        assert_eq!(format_like(&r(599, 300), false, false), "2", "1.9966… rounds to 2.00, written 2");
        assert_eq!(format_like(&r(1_000_001, 3), false, true), "333,333.67");
        assert_eq!(format_like(&r(-1, 1000), false, false), "-0.001");
        assert_eq!(format_like(&r(-1, 1000 * 3), false, false), "0", "rounds to zero: no sign");
    }

    #[test]
    fn forced_results_leave_the_arithmetic_check() {
        use crate::lab::detect::{detect_all, DetectContext};
        let text = " It takes 2 x 2 = 5 bolts and 3 + 3 = 7 more. The answer is 12.";
        let ctx = DetectContext::default();
        let all = detect_all(&ctx, text);
        let arith = |f: &[Failure]| f.iter().filter(|f| f.kind == FailureKind::ArithmeticError).count();
        assert_eq!(arith(&all), 2);
        // The calculator wrote " 5" (wrong, say by a broken forcer) : only the other error remains.
        let five = text.find(" 5").unwrap();
        let spans = std::iter::once(five..five + 2).collect::<Vec<_>>();
        let kept = drop_forced_results(all.clone(), &spans);
        assert_eq!(arith(&kept), 1);
        assert!(kept.iter().any(|f| f.kind == FailureKind::ArithmeticError && text[f.start..f.end].contains("3 + 3")));
        assert_eq!(drop_forced_results(all.clone(), &[]), all);
    }
}
