//! Number literals as they appear in GSM8K text: `18`, `1,000`, `3.5`, `$70,000.` (the `$` and the final
//! sentence dot are not part of the literal). Shared by answer extraction and the arithmetic checker so
//! both read numbers the same way.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};

/// A number literal found in text.
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    /// Byte offset of the first digit.
    pub start: usize,
    /// Byte offset just past the last digit.
    pub end: usize,
    /// Exact value (no sign: a leading `-` is the caller's business).
    pub value: BigRational,
}

/// Reads a number literal starting exactly at byte `at` (which must be an ASCII digit).
/// Thousands commas count only in groups of exactly three digits (`1,000` but not `5,6`); a decimal
/// point counts only when a digit follows (`18.` is 18 and a full stop).
pub fn scan_at(text: &str, at: usize) -> Option<Literal> {
    let b = text.as_bytes();
    if at >= b.len() || !b[at].is_ascii_digit() {
        return None;
    }
    let mut digits = String::new();
    let mut i = at;
    while i < b.len() && b[i].is_ascii_digit() {
        digits.push(b[i] as char);
        i += 1;
    }
    // Thousands groups: only when the leading group has at most three digits.
    if digits.len() <= 3 {
        while i + 4 <= b.len()
            && b[i] == b','
            && b[i + 1..i + 4].iter().all(u8::is_ascii_digit)
            && !(i + 4 < b.len() && b[i + 4].is_ascii_digit())
        {
            digits.extend(b[i + 1..i + 4].iter().map(|&c| c as char));
            i += 4;
        }
    }
    let mut frac = String::new();
    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            frac.push(b[i] as char);
            i += 1;
        }
    }
    Some(Literal { start: at, end: i, value: rational_from_digits(&digits, &frac)? })
}

fn rational_from_digits(int: &str, frac: &str) -> Option<BigRational> {
    let all = format!("{int}{frac}");
    let numer: BigInt = all.parse().ok()?;
    let mut denom = BigInt::one();
    for _ in 0..frac.len() {
        denom *= 10;
    }
    Some(BigRational::new(numer, denom))
}

/// Parses a whole string as a number: optional sign, optional `$`, digits with thousands commas,
/// optional decimals, optional trailing `.` or `%`. `"$1,000"`, `"18.00"`, `"-3"`. None if anything else.
pub fn parse_value(s: &str) -> Option<BigRational> {
    let mut t = s.trim();
    let neg = t.starts_with('-');
    if neg {
        t = t[1..].trim_start();
    }
    t = t.strip_prefix('$').unwrap_or(t);
    let t = t.strip_suffix('.').unwrap_or(t);
    let lit = scan_at(t, 0)?;
    if lit.end != t.len() {
        // Allow plain comma-less long numbers with commas anywhere? No: only exact literals.
        return None;
    }
    Some(if neg { -lit.value } else { lit.value })
}

/// Canonical decimal text of a value: `18`, `3.5`, `-3`, `0.125`; a value with no finite decimal
/// expansion is written as a fraction `1/3`.
pub fn canonical(v: &BigRational) -> String {
    if v.is_integer() {
        return v.to_integer().to_string();
    }
    // Finite decimal iff the reduced denominator has only factors 2 and 5.
    let mut d = v.denom().clone();
    let two = BigInt::from(2);
    let five = BigInt::from(5);
    let (mut twos, mut fives) = (0usize, 0usize);
    while (&d % &two).is_zero() {
        d /= &two;
        twos += 1;
    }
    while (&d % &five).is_zero() {
        d /= &five;
        fives += 1;
    }
    if !d.is_one() {
        return format!("{}/{}", v.numer(), v.denom());
    }
    let places = twos.max(fives);
    let mut scale = BigInt::one();
    for _ in 0..places {
        scale *= 10;
    }
    let scaled = (v * BigRational::from_integer(scale)).to_integer();
    let neg = scaled < BigInt::zero();
    let digits = if neg { (-scaled).to_string() } else { scaled.to_string() };
    let digits = format!("{digits:0>width$}", width = places + 1);
    let (int, frac) = digits.split_at(digits.len() - places);
    format!("{}{int}.{frac}", if neg { "-" } else { "" })
}

/// Canonical text of a number written in `s` (see [`parse_value`]).
pub fn normalize(s: &str) -> Option<String> {
    parse_value(s).map(|v| canonical(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_commas_decimals_and_full_stops() {
        let t = "paid $70,000. then 3.5 and 18. and 5,6 and 1,000,000";
        let lit = scan_at(t, 6).unwrap();
        assert_eq!(&t[lit.start..lit.end], "70,000");
        assert_eq!(canonical(&lit.value), "70000");
        let p = t.find("3.5").unwrap();
        assert_eq!(canonical(&scan_at(t, p).unwrap().value), "3.5");
        let p = t.find("18.").unwrap();
        assert_eq!(scan_at(t, p).unwrap().end, p + 2);
        let p = t.find("5,6").unwrap();
        assert_eq!(scan_at(t, p).unwrap().end, p + 1);
        let p = t.find("1,000,000").unwrap();
        assert_eq!(canonical(&scan_at(t, p).unwrap().value), "1000000");
        assert_eq!(scan_at("12,345", 0).unwrap().end, 6);
        assert_eq!(scan_at("1234,567", 0).unwrap().end, 4, "no commas after four digits");
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("$1,000").as_deref(), Some("1000"));
        assert_eq!(normalize("18.00").as_deref(), Some("18"));
        assert_eq!(normalize("18.").as_deref(), Some("18"));
        assert_eq!(normalize("-3").as_deref(), Some("-3"));
        assert_eq!(normalize("0.50").as_deref(), Some("0.5"));
        assert_eq!(normalize("-0.05").as_deref(), Some("-0.05"));
        assert_eq!(normalize("abc"), None);
        assert_eq!(normalize("5 apples"), None);
        let third = BigRational::new(BigInt::from(1), BigInt::from(3));
        assert_eq!(canonical(&third), "1/3");
    }
}
