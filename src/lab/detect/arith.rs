//! The arithmetic checker: finds `expr = value` in one segment of text and evaluates `expr` exactly
//! (BigRational) with its own small parser — generated text is never run as code.
//!
//! It is written to miss rather than to cry wolf. An equation is checked only when its left side has a
//! binary operator and nothing around it could change its meaning: no time (`3:00`, `0900`), exponent,
//! ordinal (`5th`), variable (`2x`, `24/Y`), range (`Weeks 1-2`), mixed number (`1 and 1/4`), or a word
//! like "of"/"times"/"to" just before it (`20% of 50 = 10`; but `rose to 80,000 x 2.5` is checked). Up to
//! three unit words may follow a number (`5 weeks x 5 blouses x $5.00`), a rate counting as one
//! (`2 GB/minute`); a sum of different units of measure (`4 pounds - 6 ounces`) is not checked. Markup
//! (`**`) and `<<…>>` calculator marks are read past. A tight fraction binds first (`25 / 1/3 = 75`). A
//! chain `2 + 3 = 5 + 1 = 6` is read as a running computation (each `=` checks the first number after it)
//! and also as an equality of both sides; either reading passing is enough. A decimal result is accepted
//! when rounded or cut to its written places (`10 / 3 = 3.33`); a whole number only when exact, or within
//! 1 when the text says it rounds (`50 / 3 = 16 full boxes`); and a result in another unit by a common
//! factor (`$2.50 - $2.24 = 26` cents, `1/4 hour = 15` minutes).

use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use crate::lab::number;

/// One wrong equation.
#[derive(Clone, Debug, PartialEq)]
pub struct ArithError {
    pub start: usize,
    pub end: usize,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num {
        v: BigRational,
        pct: bool,
        decimals: usize,
        bad: bool,
    },
    Op(char),
    /// `x`/`X` as a word: multiplication between operands, else a variable.
    X,
    LParen,
    RParen,
    Eq,
    Word(String),
    Other(char),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

/// Words that change what the numbers around them mean (`20% of 50`, `3 times 4`, `2 dozen`): an
/// expression right after one is not checked, and they are never taken for units.
const MODIFIERS: &[&str] = &[
    "of",
    "times",
    "by",
    "per",
    "plus",
    "minus",
    "over",
    "divided",
    "multiplied",
    "than",
    "into",
    "less",
    "more",
    "fewer",
    "half",
    "twice",
    "double",
    "triple",
    "thrice",
    "quarter",
    "third",
    "percent",
    "squared",
    "cubed",
    "to",
    "from",
    "with",
    "without",
    "add",
    "added",
    "subtract",
    "subtracted",
    "dozen",
    "dozens",
    "hundred",
    "hundreds",
    "thousand",
    "thousands",
    "million",
    "millions",
    "billion",
    "billions",
];

/// Words that are not units (`5 apples and 3 pears`, `9 because …`), though an expression may follow them.
const NOT_UNITS: &[&str] = &[
    "and", "or", "is", "are", "was", "were", "equals", "equal", "makes", "gives", "each", "every", "out", "so", "the",
    "a", "an", "because", "since", "then", "if", "but", "that", "which", "who", "when", "where", "while", "he", "she",
    "it", "they", "we", "you", "i", "his", "her", "their", "its", "has", "have", "had", "will", "would", "can",
    "could", "should", "must", "do", "does", "did", "be", "been", "for", "in", "on", "at", "as", "now", "this",
    "these", "those", "there", "here", "not", "no", "left", "total", "all", "after", "before", "until", "about",
    "than", "more", "less",
];

/// Units of measure that are converted into each other along the way (`4 pounds - 6 ounces = 58` ounces).
/// A sum of other different words (`100 girls - 100 boys`) is still checked.
const MEASURES: &[&str] = &[
    "pound",
    "lb",
    "ounce",
    "oz",
    "ton",
    "gram",
    "g",
    "kilogram",
    "kg",
    "hour",
    "hr",
    "minute",
    "min",
    "second",
    "sec",
    "day",
    "week",
    "month",
    "year",
    "foot",
    "feet",
    "ft",
    "inche",
    "inch",
    "in",
    "yard",
    "yd",
    "mile",
    "meter",
    "metre",
    "m",
    "centimeter",
    "cm",
    "millimeter",
    "mm",
    "kilometer",
    "km",
    "dollar",
    "cent",
    "penny",
    "pennie",
    "nickel",
    "dime",
    "quarter",
    "cup",
    "tablespoon",
    "teaspoon",
    "quart",
    "gallon",
    "pint",
    "liter",
    "litre",
    "milliliter",
    "ml",
    "dozen",
    "score",
    "percent",
];

fn is_measure(unit: &str) -> bool {
    MEASURES.contains(&unit)
}

/// Units a result may be written in instead: cents, grams, minutes, inches, ounces, hours, days.
const SCALES: [u32; 7] = [100, 1000, 60, 12, 16, 24, 7];

/// Operators written as words or symbols: a "loop" of them is arithmetic (used by the repetition check).
pub fn is_operator_word(w: &str) -> bool {
    matches!(w, "+" | "-" | "*" | "/" | "x" | "×" | "=" | "plus" | "minus" | "times")
}

fn is_modifier(w: &str) -> bool {
    MODIFIERS.contains(&w.to_lowercase().as_str())
}

/// Words between a modifier and a number that keep the modifier attached (`to the 29 + 24`).
const DETERMINERS: &[&str] = &[
    "the", "a", "an", "his", "her", "their", "its", "my", "our", "your", "these", "those", "this", "that", "all",
    "each",
];

/// Verbs after which "to" introduces the resulting amount (`rose to 3 x 5 = 15`).
const CHANGE_VERBS: &[&str] = &[
    "rose",
    "rises",
    "rise",
    "risen",
    "grew",
    "grows",
    "grow",
    "grown",
    "increased",
    "increases",
    "increase",
    "decreased",
    "decreases",
    "decrease",
    "dropped",
    "drops",
    "fell",
    "falls",
    "jumped",
    "jumps",
    "climbed",
    "climbs",
    "went",
    "goes",
    "comes",
    "came",
    "amounts",
    "amounted",
    "up",
    "down",
];

/// Words that make a following "of" take a part of what comes next (`half of 10 = 5`).
const PART_WORDS: &[&str] = &[
    "half",
    "third",
    "thirds",
    "quarter",
    "quarters",
    "fourth",
    "fourths",
    "fifth",
    "fifths",
    "tenth",
    "tenths",
    "percent",
    "twice",
    "double",
    "triple",
    "fraction",
    "portion",
    "part",
    "rest",
    "remainder",
];

/// Whether the word at `i` changes what the expression after it means. "of" does so only after a
/// number, a percentage or a part word (`20% of 50`, `1/2 of 10`, `half of 8`), not in `a total of`.
fn blocks_expression(toks: &[Token], i: usize) -> bool {
    let Tok::Word(w) = &toks[i].tok else { return false };
    if w.eq_ignore_ascii_case("to") {
        // `rose to 80,000 x 2.5 = 210,000`: the new amount, not a transfer (`add 20 to the 29 + 24`).
        let changed = i
            .checked_sub(1)
            .is_some_and(|j| matches!(&toks[j].tok, Tok::Word(p) if CHANGE_VERBS.contains(&p.to_lowercase().as_str())));
        return !changed;
    }
    if !w.eq_ignore_ascii_case("of") {
        return is_modifier(w);
    }
    match i.checked_sub(1).map(|j| &toks[j].tok) {
        Some(Tok::Num { .. }) | Some(Tok::Other('%')) | Some(Tok::RParen) | None => true,
        Some(Tok::Word(p)) => PART_WORDS.contains(&p.to_lowercase().as_str()) || is_modifier(p),
        Some(_) => true,
    }
}

fn can_be_unit(w: &str) -> bool {
    let l = w.to_lowercase();
    !MODIFIERS.contains(&l.as_str()) && !NOT_UNITS.contains(&l.as_str())
}

fn tokenize(seg: &str, base: usize) -> Vec<Token> {
    let chars: Vec<(usize, char)> = seg.char_indices().collect();
    let char_at = |k: usize| chars.get(k).map(|&(_, c)| c);
    let mut out = Vec::new();
    let mut k = 0;
    while k < chars.len() {
        let (i, c) = chars[k];
        if c.is_whitespace() {
            k += 1;
            continue;
        }
        // `**`: markup (GSM8K's socratic lines, bold) unless it sits between two digits (`2**3`, a power).
        if c == '*' && char_at(k + 1) == Some('*') {
            let power = k > 0
                && char_at(k - 1).is_some_and(|d| d.is_ascii_alphanumeric())
                && char_at(k + 2).is_some_and(|d| d.is_ascii_alphanumeric());
            if power {
                out.push(Token { tok: Tok::Other('^'), start: base + i, end: base + i + 2 });
            }
            k += 2;
            continue;
        }
        // `.5` after a space or an operator is a number (`10 dogs *.5 hours`), not a full stop.
        let lead_dot = c == '.'
            && char_at(k + 1).is_some_and(|d| d.is_ascii_digit())
            && (k == 0 || char_at(k - 1).is_some_and(|p| p.is_whitespace() || "+-*/×(=<".contains(p)));
        if lead_dot {
            if let Some(tok) = leading_dot_number(seg, i, base) {
                while k < chars.len() && chars[k].0 < tok.end - base {
                    k += 1;
                }
                out.push(tok);
                continue;
            }
        }
        let dollar_num = c == '$' && char_at(k + 1).is_some_and(|d| d.is_ascii_digit());
        if c.is_ascii_digit() || dollar_num {
            let num_at = if dollar_num { i + 1 } else { i };
            let before = if k > 0 { char_at(k - 1) } else { None };
            let Some(lit) = number::scan_at(seg, num_at) else {
                k += 1;
                continue;
            };
            let mut end = lit.end;
            let mut pct = false;
            if seg[end..].starts_with('%') {
                pct = true;
                end += 1;
            }
            let mut after = seg[end..].chars();
            let a1 = after.next();
            let a2 = after.next();
            let bad_before = before.is_some_and(|b| b.is_alphanumeric() || ".:,^_'’".contains(b));
            let bad_after = a1.is_some_and(|a| {
                a.is_alphanumeric()
                    || a == '^'
                    || a == '_'
                    || (matches!(a, ':' | ',' | '.') && a2.is_some_and(|d| d.is_ascii_digit()))
            });
            let text = &seg[num_at..lit.end];
            // `0900`, `05`: clock times and codes, not quantities.
            let leading_zero = text.len() > 1 && text.starts_with('0') && text.as_bytes()[1].is_ascii_digit();
            let decimals = text.find('.').map_or(0, |p| text.len() - p - 1);
            out.push(Token {
                tok: Tok::Num { v: lit.value, pct, decimals, bad: bad_before || bad_after || leading_zero },
                start: base + i,
                end: base + end,
            });
            while k < chars.len() && chars[k].0 < end {
                k += 1;
            }
            continue;
        }
        if c.is_alphabetic() {
            let mut j = k;
            while j < chars.len() && (chars[j].1.is_alphabetic() || matches!(chars[j].1, '\'' | '’')) {
                j += 1;
            }
            let end = chars.get(j).map_or(seg.len(), |&(p, _)| p);
            let w = &seg[i..end];
            let tok = if w == "x" || w == "X" { Tok::X } else { Tok::Word(w.to_string()) };
            out.push(Token { tok, start: base + i, end: base + end });
            k = j;
            continue;
        }
        let tok = match c {
            '+' => Tok::Op('+'),
            // Gold GSM8K writes an en dash for minus too (`120 – 80 - 15`).
            '-' | '\u{2212}' | '\u{2013}' => Tok::Op('-'),
            '*' | '\u{00d7}' | '\u{22c5}' => Tok::Op('*'),
            // A slash touching a word is a rate (`km/h`, `50 cm/cuff`), not a division.
            '/' | '\u{00f7}' => {
                let touches_word = (k > 0 && char_at(k - 1).is_some_and(char::is_alphabetic))
                    || char_at(k + 1).is_some_and(char::is_alphabetic);
                if touches_word {
                    Tok::Other('/')
                } else {
                    Tok::Op('/')
                }
            }
            '(' | '[' => Tok::LParen,
            ')' | ']' => Tok::RParen,
            '=' => Tok::Eq,
            other => Tok::Other(other),
        };
        out.push(Token { tok, start: base + i, end: base + i + c.len_utf8() });
        k += 1;
    }
    mark_dates(&mut out);
    out
}

/// A number written without its leading zero (`.5`), starting at the dot at byte `i` of `seg`.
fn leading_dot_number(seg: &str, i: usize, base: usize) -> Option<Token> {
    let lit = number::scan_at(seg, i + 1)?;
    let digits = &seg[i + 1..lit.end];
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let after = seg[lit.end..].chars().next();
    let bad = after.is_some_and(|a| a.is_alphanumeric() || matches!(a, '.' | ',' | ':' | '^' | '_'));
    let mut v = lit.value;
    for _ in 0..digits.len() {
        v /= BigRational::from_integer(10.into());
    }
    Some(Token { tok: Tok::Num { v, pct: false, decimals: digits.len(), bad }, start: base + i, end: base + lit.end })
}

/// Dates like `12/25/2020` are not divisions: marks `a/b/c` written without spaces as unreadable.
fn mark_dates(toks: &mut [Token]) {
    for i in 0..toks.len().saturating_sub(4) {
        let w = &toks[i..i + 5];
        let shape = matches!(w[0].tok, Tok::Num { .. })
            && w[1].tok == Tok::Op('/')
            && matches!(w[2].tok, Tok::Num { .. })
            && w[3].tok == Tok::Op('/')
            && matches!(w[4].tok, Tok::Num { .. });
        let tight = w.windows(2).all(|p| p[0].end == p[1].start);
        if shape && tight {
            for t in toks[i..i + 5].iter_mut() {
                if let Tok::Num { bad, .. } = &mut t.tok {
                    *bad = true;
                }
            }
        }
    }
}

/// A value computed two ways: with `%` as /100, and with `%` ignored (people write both `20% * 50 = 10`
/// and `0.2 * 100 = 20%`).
#[derive(Clone, Debug)]
struct Val {
    pct: BigRational,
    raw: BigRational,
}

impl Val {
    fn num(v: &BigRational, pct: bool) -> Val {
        let hundred = BigRational::from_integer(100.into());
        Val { pct: if pct { v / hundred } else { v.clone() }, raw: v.clone() }
    }

    fn apply(self, op: char, r: Val) -> Option<Val> {
        Some(match op {
            '+' => Val { pct: self.pct + r.pct, raw: self.raw + r.raw },
            '-' => Val { pct: self.pct - r.pct, raw: self.raw - r.raw },
            '*' => Val { pct: self.pct * r.pct, raw: self.raw * r.raw },
            _ => {
                if r.pct.is_zero() || r.raw.is_zero() {
                    return None;
                }
                Val { pct: self.pct / r.pct, raw: self.raw / r.raw }
            }
        })
    }
}

/// What a parse found besides the value.
#[derive(Default)]
struct Shape {
    binops: usize,
    additive: bool,
    /// The first unit word after each operand that has one (lowercased, plural `s` dropped).
    units: Vec<String>,
}

struct Parser<'a> {
    t: &'a [Token],
    i: usize,
    shape: Shape,
}

fn tight(a: &Token, b: &Token) -> bool {
    a.end == b.start
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i).map(|t| &t.tok)
    }

    fn expr(&mut self) -> Option<Val> {
        let mut v = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek() {
            let op = *op;
            self.i += 1;
            let r = self.term()?;
            self.shape.binops += 1;
            self.shape.additive = true;
            v = v.apply(op, r)?;
        }
        Some(v)
    }

    fn term(&mut self) -> Option<Val> {
        let mut v = self.factor()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(op @ ('*' | '/'))) => *op,
                Some(Tok::X) => '*',
                _ => return Some(v),
            };
            self.i += 1;
            let r = self.factor()?;
            self.shape.binops += 1;
            v = v.apply(op, r)?;
        }
    }

    fn factor(&mut self) -> Option<Val> {
        if let Some(Tok::Op('-')) = self.peek() {
            self.i += 1;
            let v = self.factor()?;
            return Some(Val { pct: -v.pct, raw: -v.raw });
        }
        let v = match self.peek()? {
            Tok::Num { v, pct, bad: false, .. } => {
                let mut val = Val::num(v, *pct);
                self.i += 1;
                // A tight fraction `1/3` is one number: `25 / 1/3` is 25 divided by a third.
                if let (Some(sl), Some(den)) = (self.t.get(self.i), self.t.get(self.i + 1)) {
                    if let (Tok::Op('/'), Tok::Num { v: d, pct: dp, bad: false, .. }) = (&sl.tok, &den.tok) {
                        if tight(&self.t[self.i - 1], sl) && tight(sl, den) {
                            val = val.apply('/', Val::num(d, *dp))?;
                            self.shape.binops += 1;
                            self.i += 2;
                        }
                    }
                }
                val
            }
            Tok::LParen => {
                self.i += 1;
                let v = self.expr()?;
                if self.peek() != Some(&Tok::RParen) {
                    return None;
                }
                self.i += 1;
                v
            }
            _ => return None,
        };
        // Unit words after an operand, separated by a space: `2 bolts`, `5 golf balls` (not `(3/4)e`); a
        // rate counts as one (`2 GB/minute`).
        let mut units = 0;
        while let Some(Tok::Word(w)) = self.peek() {
            if units == 3 || !can_be_unit(w) || tight(&self.t[self.i - 1], &self.t[self.i]) {
                break;
            }
            if units == 0 {
                let l = w.to_lowercase();
                self.shape.units.push(l.strip_suffix('s').unwrap_or(&l).to_string());
            }
            units += 1;
            self.i += 1;
            if let (Some(sl), Some(den)) = (self.t.get(self.i), self.t.get(self.i + 1)) {
                let per = sl.tok == Tok::Other('/') && matches!(den.tok, Tok::Word(_));
                if per && tight(&self.t[self.i - 1], sl) && tight(sl, den) {
                    self.i += 2;
                }
            }
        }
        Some(v)
    }
}

/// Parses all of `t` as one expression.
fn parse_all(t: &[Token]) -> Option<(Val, Shape)> {
    let mut p = Parser { t, i: 0, shape: Shape::default() };
    let v = p.expr()?;
    (p.i == t.len()).then_some((v, p.shape))
}

/// How far from an `=` an expression may reach.
const MAX_EXPR_TOKENS: usize = 48;

fn extendable(t: &Tok) -> bool {
    match t {
        Tok::Num { bad, .. } => !bad,
        Tok::Op(_) | Tok::X | Tok::LParen | Tok::RParen | Tok::Word(_) | Tok::Other('/') => true,
        Tok::Eq | Tok::Other(_) => false,
    }
}

/// Whether the expression starting at token `a` really starts there, rather than being the tail of
/// something the parser could not read (`2x + 3`, `20% of 50`, `kids + his 1 teacher + 1`, `1 and 1/4`).
fn left_edge_is_clear(toks: &[Token], a: usize) -> bool {
    if a == 0 {
        return true;
    }
    let prev = &toks[a - 1].tok;
    let ok = match prev {
        Tok::Word(_) => !blocks_expression(toks, a - 1),
        Tok::LParen | Tok::Eq => true,
        Tok::Other(c) => !"^.!'’_#~—&@\"/".contains(*c),
        Tok::Num { .. } | Tok::Op(_) | Tok::X | Tok::RParen => false,
    };
    if !ok {
        return false;
    }
    // A leading minus after a word or number is a subtraction whose left side we lost.
    if toks[a].tok == Tok::Op('-') && matches!(prev, Tok::Word(_) | Tok::Num { .. } | Tok::RParen) {
        return false;
    }
    // A mixed number: `1 and 1/4 cup` (but `… = 8 and 8 * 2 = 16` is a second equation).
    let fraction = matches!(toks[a].tok, Tok::Num { .. })
        && toks.get(a + 1).is_some_and(|t| t.tok == Tok::Op('/') && tight(&toks[a], t))
        && toks.get(a + 2).is_some_and(|t| matches!(t.tok, Tok::Num { .. }) && tight(&toks[a + 1], t));
    if let (true, Tok::Word(w), Some(Tok::Num { .. })) = (fraction, prev, a.checked_sub(2).map(|i| &toks[i].tok)) {
        if w.eq_ignore_ascii_case("and") {
            return false;
        }
    }
    // Within a few words to the left: an operator means the expression runs on (`+ his 1 teacher`), a
    // modifier that it means something else (`to the 29 + 24`).
    let mut i = a;
    while i > 0 && a - i < 3 && matches!(toks[i - 1].tok, Tok::Word(_)) {
        // Two words back, a modifier still binds across a determiner (`to the 29 + 24`, `of his 3 + 2`),
        // not across a verb (`needs to pay 3 x $16`).
        let binds =
            a - i == 0 || matches!(&toks[i].tok, Tok::Word(w) if DETERMINERS.contains(&w.to_lowercase().as_str()));
        if a - i < 2 && binds && blocks_expression(toks, i - 1) {
            return false;
        }
        i -= 1;
    }
    !(i > 0 && i < a && matches!(toks[i - 1].tok, Tok::Op(_) | Tok::X))
}

/// A tight `a-b` right after a word is a range (`Weeks 1-2`), not a subtraction.
fn is_range(toks: &[Token], a: usize, k: usize) -> bool {
    k == a + 3
        && a > 0
        && matches!(toks[a - 1].tok, Tok::Word(_))
        && toks[a + 1].tok == Tok::Op('-')
        && tight(&toks[a], &toks[a + 1])
        && tight(&toks[a + 1], &toks[a + 2])
}

/// Checks every equation in `seg` (a segment of the full text starting at byte `base`).
pub fn check_segment(seg: &str, base: usize) -> Vec<ArithError> {
    if !seg.contains('=') {
        return Vec::new();
    }
    let toks = tokenize(seg, base);
    (0..toks.len()).filter(|&k| toks[k].tok == Tok::Eq).filter_map(|k| check_equation(&toks, k, seg, base)).collect()
}

fn check_equation(toks: &[Token], k: usize, seg: &str, base: usize) -> Option<ArithError> {
    // Left side: the longest run of tokens ending just before `=` that parses as an expression.
    let mut lo = k;
    while lo > 0 && k - lo < MAX_EXPR_TOKENS && extendable(&toks[lo - 1].tok) {
        lo -= 1;
    }
    let (a, (lhs, shape)) = (lo..k).find_map(|a| parse_all(&toks[a..k]).map(|r| (a, r)))?;
    if shape.binops == 0 || !left_edge_is_clear(toks, a) || is_range(toks, a, k) {
        return None;
    }
    if shape.additive && shape.units.windows(2).any(|u| u[0] != u[1] && is_measure(&u[0]) && is_measure(&u[1])) {
        return None; // `4 pounds - 6 ounces = 58`: converted on the way
    }
    // Right side: `[-] number`, and the longest expression after `=`, past a calculator annotation
    // (`16 - 3 = <<16-3=13>>13`: the number the text states is the one after it).
    let r0 = after_annotation(toks, k + 1);
    let mut j = r0;
    let neg = matches!(toks.get(j).map(|t| &t.tok), Some(Tok::Op('-')));
    if neg {
        j += 1;
    }
    let Tok::Num { v, pct, decimals, bad } = &toks.get(j)?.tok else {
        return None;
    };
    if *bad || matches!(toks.get(j + 1).map(|t| &t.tok), Some(Tok::Num { .. })) {
        return None; // `= 5:00`, `= 3 000 grams`
    }
    let value = if neg { -v.clone() } else { v.clone() };
    let value_end = toks[j].end;
    let hundred = BigRational::from_integer(100.into());
    let mut candidates = vec![value.clone()];
    if *pct {
        candidates.push(&value / &hundred);
    }
    let mut hi = r0;
    while hi < toks.len() && hi - r0 < MAX_EXPR_TOKENS && extendable(&toks[hi].tok) {
        hi += 1;
    }
    let rhs = (r0 + 1..=hi).rev().find_map(|b| parse_all(&toks[r0..b]).map(|r| (b, r)));
    match &rhs {
        Some((b, (r, rs))) => {
            // The right side goes on in a way we cannot read (`= 24/Y`, `= 30 + M`).
            if matches!(toks.get(*b).map(|t| &t.tok), Some(Tok::Op(_) | Tok::X | Tok::Other('/'))) {
                return None;
            }
            if rs.binops > 0 {
                candidates.push(r.pct.clone());
                candidates.push(r.raw.clone());
            }
        }
        None => return None,
    }
    let lhs_vals = [&lhs.pct, &lhs.raw];
    if lhs_vals.iter().any(|l| candidates.iter().any(|c| c == *l)) {
        return None;
    }
    let rounding = says_rounded(toks, a, j);
    for l in lhs_vals {
        if rounded_match(l, &value, *decimals) {
            return None;
        }
        // `50/3 = 16 full boxes`, `about 33`: a whole number within 1 when the text says it rounds.
        if rounding && *decimals == 0 && !l.is_integer() && (l - &value).abs() < BigRational::one() {
            return None;
        }
        if *pct && rounded_match(l, &(&value / &hundred), decimals + 2) {
            return None;
        }
        for f in SCALES {
            let f = BigRational::from_integer(f.into());
            let (up, down) = (l * &f, l / &f);
            if up == value || down == value {
                return None;
            }
            if *decimals > 0 && (rounded_match(&up, &value, *decimals) || rounded_match(&down, &value, *decimals)) {
                return None;
            }
        }
    }
    let lhs_text = seg[toks[a].start - base..toks[k - 1].end - base].trim();
    let written = seg[toks[if neg { j - 1 } else { j }].start - base..value_end - base].trim();
    Some(ArithError {
        start: toks[a].start,
        end: value_end,
        detail: format!("{lhs_text} = {}, not {written}", show(&lhs.pct)),
    })
}

/// Words that say a whole-number result is rounded on purpose: after the value (`16 full boxes`) or
/// before the expression (`about 100 / 3 = 33`).
const ROUNDING_AFTER: &[&str] =
    &["full", "whole", "complete", "entire", "rounded", "approximately", "about", "roughly"];
const ROUNDING_BEFORE: &[&str] = &[
    "about",
    "approximately",
    "around",
    "roughly",
    "rounded",
    "round",
    "nearly",
    "almost",
    "most",
    "least",
    "max",
    "maximum",
    "minimum",
    "whole",
    "full",
];

fn says_rounded(toks: &[Token], a: usize, value: usize) -> bool {
    let word_in =
        |t: &Token, list: &[&str]| matches!(&t.tok, Tok::Word(w) if list.contains(&w.to_lowercase().as_str()));
    toks[value + 1..].iter().take(3).any(|t| word_in(t, ROUNDING_AFTER))
        || toks[..a].iter().rev().take(3).any(|t| word_in(t, ROUNDING_BEFORE) || t.tok == Tok::Other('~'))
}

/// The token after a `<<…>>` annotation starting at `i`, or `i` when there is none.
fn after_annotation(toks: &[Token], i: usize) -> usize {
    let lt = |t: Option<&Token>| t.is_some_and(|t| t.tok == Tok::Other('<'));
    if !(lt(toks.get(i)) && lt(toks.get(i + 1))) {
        return i;
    }
    (i + 2..toks.len().saturating_sub(1))
        .find(|&m| toks[m].tok == Tok::Other('>') && toks[m + 1].tok == Tok::Other('>'))
        .map_or(i, |m| m + 2)
}

/// For the calculator: the exact value of the expression that ends `seg` right before its final `=`, read
/// as [`check_segment`] reads a left side (so it computes exactly what the checker would check), and the
/// byte offset where the expression starts. None when the checker would not check it.
pub fn value_before_final_eq(seg: &str) -> Option<(BigRational, usize)> {
    let toks = tokenize(seg, 0);
    let k = toks.len().checked_sub(1)?;
    if toks[k].tok != Tok::Eq {
        return None;
    }
    let mut lo = k;
    while lo > 0 && k - lo < MAX_EXPR_TOKENS && extendable(&toks[lo - 1].tok) {
        lo -= 1;
    }
    let (a, (lhs, shape)) = (lo..k).find_map(|a| parse_all(&toks[a..k]).map(|r| (a, r)))?;
    if shape.binops == 0 || !left_edge_is_clear(&toks, a) || is_range(&toks, a, k) {
        return None;
    }
    if shape.additive && shape.units.windows(2).any(|u| u[0] != u[1] && is_measure(&u[0]) && is_measure(&u[1])) {
        return None;
    }
    Some((lhs.pct, toks[a].start))
}

/// A result written with `decimals` places matches when it is the true value rounded or cut to those
/// places. A whole number must be exact (`54 / 8 = 6` is wrong) unless the text says it rounds.
fn rounded_match(truth: &BigRational, written: &BigRational, decimals: usize) -> bool {
    let diff = (truth - written).abs();
    if decimals == 0 {
        return false;
    }
    let mut ulp = BigRational::one();
    for _ in 0..decimals {
        ulp /= BigRational::from_integer(10.into());
    }
    diff <= ulp
}

/// A value for people: exact when it has a finite decimal form, else about four places.
fn show(v: &BigRational) -> String {
    let c = number::canonical(v);
    if !c.contains('/') {
        return c;
    }
    match v.to_f64() {
        Some(f) => format!("{f:.4}…"),
        None => c,
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn errs(t: &str) -> Vec<String> {
        check_segment(t, 0).into_iter().map(|e| e.detail).collect()
    }
    fn spans(t: &str) -> Vec<&str> {
        check_segment(t, 0).into_iter().map(|e| &t[e.start..e.end]).collect()
    }

    #[test]
    fn finds_wrong_results_with_the_right_value() {
        assert_eq!(errs("A robe takes 2 x 2 = 8 bolts."), vec!["2 x 2 = 4, not 8"]);
        assert_eq!(spans("A robe takes 2 x 2 = 8 bolts."), vec!["2 x 2 = 8"]);
        assert_eq!(errs("so it takes 2 bolts * 2 bolts = 8 bolts"), vec!["2 bolts * 2 bolts = 4, not 8"]);
        assert_eq!(errs("2 bolts * 2 = 8 bolts"), vec!["2 bolts * 2 = 4, not 8"]);
        assert_eq!(errs("The robts are 2 + 2 = 6 bolts"), vec!["2 + 2 = 4, not 6"]);
        assert_eq!(errs("She pays $15 * 2 = $25."), vec!["$15 * 2 = 30, not $25"]);
        assert_eq!(errs("(3 + 4) * 2 = 12"), vec!["(3 + 4) * 2 = 14, not 12"]);
        assert_eq!(errs("He has 80,000 + 50,000 = 120,000"), vec!["80,000 + 50,000 = 130000, not 120,000"]);
        assert_eq!(errs("10 / 4 = 3.5"), vec!["10 / 4 = 2.5, not 3.5"]);
        assert_eq!(errs("3 - 5 = 2"), vec!["3 - 5 = -2, not 2"]);
        assert_eq!(errs("20% * 50 = 20"), vec!["20% * 50 = 10, not 20"]);
        assert_eq!(errs("5 × 3 = 16"), vec!["5 × 3 = 15, not 16"]);
        assert_eq!(errs("100 / 3 = 30"), vec!["100 / 3 = 33.3333…, not 30"]);
        assert_eq!(errs("he has 5 apples and 3 + 4 = 8 pears"), vec!["3 + 4 = 7, not 8"]);
    }

    #[test]
    fn each_link_of_a_chain_is_checked() {
        assert!(errs("2 + 3 = 5 + 1 = 6").is_empty());
        assert!(errs("25 / 1/3 = 75").is_empty(), "a tight fraction binds first");
        assert!(errs("4 * 5 = 20 + 9 = 29 computers").is_empty());
        assert!(errs("5 + 1 = 3 + 3").is_empty(), "equality of two expressions");
        assert_eq!(errs("2 + 3 = 5 + 1 = 7"), vec!["5 + 1 = 6, not 7"]);
        assert_eq!(errs("2 + 3 = 6 + 1 = 7"), vec!["2 + 3 = 5, not 6"]);
    }

    #[test]
    fn issue_13_misses_are_found() {
        // GSM8K's socratic lines put `**` markup before every calculation.
        assert_eq!(errs("How many tests did John take? ** John took 2 * 3 = 7 tests"), vec!["2 * 3 = 6, not 7"]);
        assert_eq!(errs("** 2 * 3 = 6 tests"), Vec::<String>::new());
        assert_eq!(errs("the total is **2 * 3 = 7**"), vec!["2 * 3 = 6, not 7"]);
        // The second of two equations joined by "and".
        assert_eq!(errs("5 + 3 = 8 and 8 * 2 = 17"), vec!["8 * 2 = 16, not 17"]);
        // Unit words between the factors.
        assert_eq!(errs("5 weeks x 5 blouses x $5.00 = $25"), vec!["5 weeks x 5 blouses x $5.00 = 125, not $25"]);
        assert_eq!(
            errs("So the load is 2 GB/minute * 40 minutes = 8 GB."),
            vec!["2 GB/minute * 40 minutes = 80, not 8"]
        );
        // A whole number that is not the exact result of a division.
        assert_eq!(errs("54 / 8 = 6"), vec!["54 / 8 = 6.75, not 6"]);
        assert_eq!(errs("54 / 8 = 7"), vec!["54 / 8 = 6.75, not 7"]);
        assert_eq!(errs("So he bought 5 x 0.5 = 2 glasses."), vec!["5 x 0.5 = 2.5, not 2"]);
        // "to" after a verb of change gives the new amount.
        assert_eq!(errs("The value rose to 80,000 x 2.5 = 210,000"), vec!["80,000 x 2.5 = 200000, not 210,000"]);
        // Calculator marks: the number the text states is checked, and so is the mark.
        assert_eq!(errs("3 x 2 = <<3*2=6>>7 boxes"), vec!["3 x 2 = 6, not 7"]);
        assert_eq!(errs("67 - 120 = <<67-120=-47>>47 fruit"), vec!["67 - 120 = -53, not 47", "67-120 = -53, not -47"]);
        assert_eq!(errs("There are 3 x 2 = <<3*2=7>>7 boxes"), vec!["3 x 2 = 6, not 7", "3*2 = 6, not 7"]);
        // A number written without its leading zero.
        assert_eq!(errs("He needs to pay 16*.6=12 dollars"), vec!["16*.6 = 9.6, not 12"]);
        // Different words that are not units of measure are still added up.
        assert_eq!(errs("So there are 100 girls - 100 boys = 50 girls."), vec!["100 girls - 100 boys = 0, not 50"]);
    }

    #[test]
    fn correct_arithmetic_passes() {
        for t in [
            "Janet sells 16 - 3 - 4 = 9 duck eggs a day.",
            "She makes 9 * 2 = $18 every day.",
            "It takes 2/2=1 bolt of white fiber",
            "80,000*1.5=120,000",
            "So he made 200,000-130,000=$70,000",
            "5 bagels for 3 dollars each will be 5 x 3 = 15 dollars.",
            "He spent 20/100*50 = $10",
            "100 / 3 = 33.33 per person",
            "2 / 3 = 0.67",
            "10 / 3 = 3.3",
            "She buys 50/3 = 16 full boxes",
            "That is about 100 / 3 = 33 each",
            "** 16 - 3 = 13 eggs",
            "The price rose to 80,000 x 2.5 = 200,000",
            "5 + 3 = 8 and 8 * 2 = 16",
            "It takes 1 and 1/4 cup + 2 = 3.25 cups",
            "She has 10 dogs *.5 hours = 5 hours",
            "16 - 3 = <<16-3=13>>13 eggs",
            "2 GB/minute * 40 minutes = 80 GB",
            "0.2 * 100 = 20%",
            "5% + 3% = 8%",
            "1.5 * 4 = 6",
            "-3 + 5 = 2",
            "(10 + 20) / 2 = 15",
            "it is 12 * 2 = 24 hours",
            "Overall, Emma has 120 – 80 - 15 = 25 more points",
        ] {
            assert!(errs(t).is_empty(), "{t:?}: {:?}", errs(t));
        }
    }

    #[test]
    fn of_after_an_ordinary_word_does_not_hide_an_error() {
        // Seen from the default model: "a total of 2*3=12 gum".
        assert_eq!(errs("The robts take a total of 2*3=12 gum.").len(), 1);
        assert_eq!(errs("the number of 4 + 4 = 9 bolts").len(), 1);
        // Seen from the default model: a verb between "to" and the sum does not make it a phrase.
        assert_eq!(errs("He needs to pay 3 x $16 = $16 for the ones.").len(), 1);
        assert_eq!(errs("He needs to pay $6 x 24 = $24 for the bike.").len(), 1);
    }

    #[test]
    fn ambiguous_forms_are_left_alone() {
        for t in [
            "20% of 50 = 20",
            "1/2 of 10 = 4",
            "half of 10 = 4",
            "the rest of 10 - 2 = 9",
            "3:00 + 2 = 5:00",
            "He arrives at 3:00 + 2 hours = 5",
            "2x + 3 = 7",
            "x - 5 + 2 = 7",
            "x = 5",
            "2^3 + 1 = 9",
            "3 times 4 + 2 = 14",
            "the 5th + 2 = 8",
            "5 more than 3 * 2 = 11",
            "a dozen is 12 so 2 dozen * 3 = 72",
            "150% = 1.5",
            "He worked 8 hours = 480 minutes",
            "1 hour and 30 minutes = 90 minutes",
            "Then .5 * 4 = 2",
            "12/25/2020 = 5",
            "2(3 + 4) = 14",
            "It costs 5 + 3 = x",
            "A robe = 2",
            "3² + 1 = 10",
            "1,2345 + 1 = 2346",
            "so 8/3 = 24/Y.",
            "We have: 21/7 = 90/x because",
            "3*30 = 30 + M trees.",
            "Subtract Weeks 3-4 from Weeks 1-2 = 96 - 70 = 26",
            "he uses 600 x 30 = 18 000 watts.",
            "It takes 1/4 cup + 1 and 1/4 cup = 1.5 cups",
            "add 20 + 10 decorations to the 29 + 24 decorations already up = 83 total",
            "He has 4 pounds - 6 ounces = 58 ounces",
            "The trip is 6 km/ 1/30 hour = 180 km/hour",
            "Each costs $2.50 - $2.24 = 26 cents",
            "That is 1/4 * 60 = 15 minutes",
            "the shift is from 0900-0130 = 0730",
            "so (3/4)e = 9",
            "it is 9 because - 18/-2 = 9",
            "250 of the books - 135 sold books - 50 unsold books = 65 books",
            "his 25 classmates + his 1 teacher + 1 himself = 27 people",
        ] {
            assert!(errs(t).is_empty(), "{t:?}: {:?}", errs(t));
        }
    }
}
