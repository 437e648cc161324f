//! Detector tests: weak-model texts for each failure kind, the default model's own greedy outputs,
//! stream-equals-batch on many texts and chunkings, and no false alarms on GSM8K gold reasoning.

use super::*;
use crate::lab::gsm8k;

const Q1: &str =
    "A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in total does it take?";
const DIRECTIONS: &str =
    "Use mathemathical operations and write step by step the explanation of the following math problem solution:";

fn ctx(ends_with_marker: bool) -> DetectContext {
    DetectContext { question: Q1.to_string(), instruction: None, prompt_ends_with_answer_marker: ends_with_marker }
}

fn directions_ctx() -> DetectContext {
    DetectContext {
        question: Q1.to_string(),
        instruction: Some(DIRECTIONS.to_string()),
        prompt_ends_with_answer_marker: false,
    }
}

fn kinds(fs: &[Failure]) -> Vec<&'static str> {
    fs.iter().map(|f| f.kind.name()).collect()
}

fn of_kind<'a>(text: &'a str, fs: &[Failure], kind: FailureKind) -> Vec<&'a str> {
    fs.iter().filter(|f| f.kind == kind).map(|f| &text[f.start..f.end]).collect()
}

#[test]
fn names_and_serde() {
    let names: Vec<&str> = FailureKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        ["repetition", "question_echo", "missing_answer_marker", "runaway_question", "no_answer", "arithmetic_error"]
    );
    for k in FailureKind::ALL {
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{}\"", k.name()));
        assert_eq!(FailureKind::from_name(k.name()), Some(k));
    }
}

#[test]
fn clean_answer_has_no_failures() {
    let t = " It takes 2 / 2 = 1 bolt of white fiber. So the total is 2 + 1 = 3 bolts. The answer is 3.";
    assert!(detect_all(&ctx(true), t).is_empty(), "{:?}", detect_all(&ctx(true), t));
    let t2 = "\nA: It takes 2 / 2 = 1 bolt of white fiber. So 2 + 1 = 3. The answer is 3.";
    assert!(detect_all(&ctx(false), t2).is_empty(), "{:?}", detect_all(&ctx(false), t2));
}

#[test]
fn repetition_token_loop() {
    let t = " The robe takes the the the the the bolts. The answer is 3.";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::Repetition), vec!["the the the the the"]);
    let t = " It takes 2 bolts and 2 bolts and 2 bolts and 2 bolts and 2 bolts";
    let f = detect_all(&ctx(true), t);
    assert_eq!(
        of_kind(t, &f, FailureKind::Repetition),
        vec!["2 bolts and 2 bolts and 2 bolts and 2 bolts and 2 bolts"]
    );
    assert!(f.iter().any(|x| x.detail.contains("\"2 bolts and\" repeated 4 times")), "{f:?}");
}

#[test]
fn repetition_sentence_and_block_loops() {
    let t = " She eats 3 eggs. She eats 3 eggs. She eats 3 eggs. The answer is 3.";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::Repetition), vec!["She eats 3 eggs. She eats 3 eggs. She eats 3 eggs."]);

    let t = " The robe takes 2 bolts of blue fiber. Then the robe takes 2 more. The robe takes 2 bolts of blue fiber. The answer is 4.";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::Repetition), vec!["The robe takes 2 bolts of blue fiber."]);
    assert!(f.iter().any(|x| x.detail == "repeats the sentence at byte 1"), "{f:?}");

    // The A: line said again, then cut off saying it a third time.
    let t = " 2 + 1 = 3 bolts\nA: 2 + 1 = 3 bolts in total\nA: 2 + 1 = 3 bolts in total\nA: 2 + 1 = 3";
    let f = detect_all(&ctx(true), t);
    assert_eq!(
        of_kind(t, &f, FailureKind::Repetition),
        vec!["A: 2 + 1 = 3 bolts in total\nA: 2 + 1 = 3 bolts in total\nA: 2 + 1 = 3"]
    );
    let t = " 2 + 1 = 3 bolts\nA: 2 + 1 = 3 bolts in total\nA: 2 + 1 = 3 bolts in total\nThe answer is 3.";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::Repetition), vec!["A: 2 + 1 = 3 bolts in total"]);
}

#[test]
fn repetition_cut_off_mid_sentence() {
    // The default model's wei-8shot greedy output: the third sentence restarts the second.
    let t =
        " A robeberts take 2 x 2 = 8 bolts. A robts of 8 x 2 = 16 bolts take up to belving. A robts of 8 x 2 = 16 bol";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::Repetition), vec!["A robts of 8 x 2 = 16 bol"]);
    // A finished sentence that merely starts like an earlier one is not a loop.
    let t = " A robts of 8 x 2 = 16 bolts take up to belving. A robts of 8 x 2 = 16 bolts are blue.";
    assert!(of_kind(t, &detect_all(&ctx(true), t), FailureKind::Repetition).is_empty());
}

#[test]
fn loops_where_only_the_numbers_change() {
    // Cut off while going round once more: a loop from three times on.
    let t = " So she will eat 3 * 4 = 12 omelets. So she will eat 12 * 4 = 48 omelets. So she will eat 48 * 4 = 192 omelets. So she will eat 192 * 4 = 7";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::Repetition), vec![&t[1..]]);
    assert!(f.iter().any(|x| x.detail == "the same sentence 4 times, only the numbers change"), "{f:?}");
    assert!(f.iter().any(|x| x.kind == FailureKind::NoAnswer), "{f:?}");
    // Two sentences going round together.
    let t = " Then he bought 5 glasses for 3 dollars each. So he bought 5 x 3 = 15 glasses. Then he bought 5 glasses for 2 dollars each. So he bought 5 x 2 = 10 glasses. Then he bought 5 glasses for 1 dollar each. So he bought 5 x 1 = 5 glasses. Then he bought 5 glasses";
    assert_eq!(of_kind(t, &detect_all(&ctx(true), t), FailureKind::Repetition), vec![&t[1..]]);
    // Bare arithmetic needs four, the cut one included.
    let t = " 240 / 0.4 = 600. 600 / 0.6 = 1000. 1000 / 0.5 = 2000. 2000 / 0.5 =";
    assert_eq!(of_kind(t, &detect_all(&ctx(true), t), FailureKind::Repetition), vec![&t[1..]]);
    let t = " 240 / 0.4 = 600. 600 / 0.6 = 1000. 1000 / 0.5 =";
    assert!(of_kind(t, &detect_all(&ctx(true), t), FailureKind::Repetition).is_empty());
    // A finished chain, as gold reasoning writes it, is not a loop unless very long.
    let t = " In year 2 he pays 80+10=$90. In year 3 he pays 90+10=$100. In year 4 he pays 100+10=$110. In year 5 he pays 110+10=$120. The answer is 120.";
    assert!(of_kind(t, &detect_all(&ctx(true), t), FailureKind::Repetition).is_empty());
    let long: String = (1..=9).map(|i| format!(" In year {i} he pays {}+10=${}.", 10 * i, 10 * i + 10)).collect();
    let f = detect_all(&ctx(true), &long);
    assert_eq!(of_kind(&long, &f, FailureKind::Repetition), vec![long.trim()]);
    // One long "word" made of a piece said over and over.
    let t = " so his age is <<7/11=<<7/11=<<7/11=<<7/11=<<7/11=<<7/11";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::Repetition), vec!["<<7/11=<<7/11=<<7/11=<<7/11=<<7/11=<<7/11"]);
}

#[test]
fn question_echo_without_a_line_start_q_and_of_the_ask() {
    // The prompt glued the question to the last exemplar; analyze reads it back all the same.
    let prompt = "Q: Tom has 3 cats. How many?\nA: The answer is 3.Q: A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in total does it take?\nA:";
    let c = crate::lab::context_from_prompt(prompt);
    let t = " A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take? The answer is 2.";
    assert_eq!(kinds(&detect_all(&c, t)), vec!["question_echo"]);
    // A partial echo: the end of the ask, through its question mark.
    let t = " 2 + 1 = 3. So, how many bolts in total does it take?\n";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::QuestionEcho), vec!["how many bolts in total does it take?"]);
    assert!(of_kind(t, &f, FailureKind::Repetition).is_empty());
}

#[test]
fn sums_and_short_restatements_are_not_loops() {
    for t in [
        " He sold 3 cars + 3 cars + 3 cars + 3 cars = 12 cars. The answer is 12.",
        " 1 plus 1 plus 1 plus 1 plus 1 equals 5. The answer is 5.",
        " 5 + 5 + 5 + 5 + 5 = 25. The answer is 25.",
        " It takes 2 bolts. It takes 1 bolt. The answer is 3.",
    ] {
        assert!(of_kind(t, &detect_all(&ctx(true), t), FailureKind::Repetition).is_empty(), "{t:?}");
    }
}

#[test]
fn question_echo_parroting() {
    let t = " A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take? The answer is 2.";
    let f = detect_all(&ctx(true), t);
    assert_eq!(
        of_kind(t, &f, FailureKind::QuestionEcho),
        vec![
            "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?"
        ]
    );
    assert!(f.iter().any(|x| x.detail == "copies 22 words of the question verbatim"), "{f:?}");
    // Restating a clause, as gold reasoning does, is fine.
    let t = " A robe takes 2 bolts of blue fiber, so it takes 2 / 2 = 1 bolt of white fiber. The answer is 3.";
    assert!(of_kind(t, &detect_all(&ctx(true), t), FailureKind::QuestionEcho).is_empty());
}

#[test]
fn question_echo_of_the_instruction() {
    let t = "\nA: Use mathemathical operations and write step by step the explanation. 2 + 1 = 3. The answer is 3.";
    let f = detect_all(&directions_ctx(), t);
    assert_eq!(kinds(&f), vec!["question_echo"]);
    assert_eq!(
        of_kind(t, &f, FailureKind::QuestionEcho),
        vec!["Use mathemathical operations and write step by step the explanation."]
    );
    assert!(f[0].detail.contains("instruction line"));
}

#[test]
fn missing_answer_marker_cases() {
    // The default model's annot1-4shot greedy output: it goes on with the question, then writes "A:"
    // where the template needs it.
    let t = " (There are 2 bolts and he has 2 bolts and 2 bolts of fits. Each bolts will be 2 bolts and 2 bolts?\nA: Each bolts will";
    let f = detect_all(&ctx(false), t);
    assert_eq!(kinds(&f), vec!["no_answer"]);
    // Something other than the question comes first: the marker is missing, up to the model's own "A:".
    let t = " (There are 2 bolts and 2 bolts)\nA: It takes 2 + 1 = 3 bolts. The answer is 3.";
    let f = detect_all(&ctx(false), t);
    assert_eq!(of_kind(t, &f, FailureKind::MissingAnswerMarker), vec!["(There are 2 bolts and 2 bolts)"]);
    // The question goes on, but no "A:" follows.
    let t = " How many in all?\nIt takes 2 + 1 = 3 bolts. The answer is 3.";
    assert_eq!(kinds(&detect_all(&ctx(false), t)), vec!["missing_answer_marker"]);
    let t = " How many in all?\n\n  A: It takes 2 + 1 = 3 bolts. The answer is 3.";
    assert!(detect_all(&ctx(false), t).is_empty());
    let t = " 2 + 1 = 3.\nThe answer is 3.";
    assert_eq!(of_kind(t, &detect_all(&ctx(false), t), FailureKind::MissingAnswerMarker), vec!["2 + 1 = 3."]);
    for ok in ["\nA: 2 + 1 = 3. The answer is 3.", " A: The answer is 3.", "A: The answer is 3."] {
        assert!(detect_all(&ctx(false), ok).is_empty(), "{ok:?}");
    }
    // When the prompt ends with "A:", the model does not write it.
    assert!(detect_all(&ctx(true), " 2 + 1 = 3. The answer is 3.").is_empty());
    let empty = detect_all(&ctx(false), "");
    assert_eq!(kinds(&empty), vec!["missing_answer_marker", "no_answer"]);
}

#[test]
fn runaway_question_cases() {
    let t = " 2 + 1 = 3. The answer is 3.\n\nQ: John has 5 apples. How many does he have?\nA: The answer is 5.";
    let f = detect_all(&ctx(true), t);
    assert_eq!(kinds(&f), vec!["runaway_question"]);
    assert_eq!(f[0].start, t.find("Q:").unwrap());
    assert_eq!(f[0].end, t.len());
    assert!(f[0].detail.contains("Q: John has 5 apples."));
    // The strict answer is the one before the invented question.
    let t = " 2 + 2 = 4 bolts\nQ: Tom has 7 cats. The answer is 7.";
    let f = detect_all(&ctx(true), t);
    assert_eq!(kinds(&f), vec!["runaway_question"], "4 is its answer, in another format");
    let t = " Then 2 + 2\nQ: Tom has 7 cats. The answer is 7.";
    assert_eq!(kinds(&detect_all(&ctx(true), t)), vec!["no_answer", "runaway_question"]);
    assert!(detect_all(&ctx(true), " FAQ: 2 + 1 = 3. The answer is 3.").is_empty());
}

#[test]
fn no_answer_cases() {
    for (t, want) in [
        (" 2 + 1 = 3 bolts.", false),
        ("\n3", false),
        (" The answer is three.", true),
        (" So the answer is 3", false),
        (" The answer is $3.", false),
        ("", true),
        (" Then he bought 5 glasses", true),
        (" How many bolts in total does it take?\n", true),
        (" It takes 2 bolts. It takes 2 bolts.", true),
    ] {
        let f = detect_all(&ctx(true), t);
        assert_eq!(f.iter().any(|x| x.kind == FailureKind::NoAnswer), want, "{t:?}: {f:?}");
    }
    let t = "  2 + 1 = 3 bolts. Then he bought 5 glasses\n";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::NoAnswer), vec!["2 + 1 = 3 bolts. Then he bought 5 glasses"]);
    assert_eq!(
        f.iter().find(|x| x.kind == FailureKind::NoAnswer).unwrap().detail,
        "the path stops in the middle of a sentence"
    );
}

#[test]
fn arithmetic_errors_in_context() {
    let t = " The robts of the bolts are 2 + 2 = 6 bolts. So she has 6 * 3 = 18 bolts. The answer is 18.";
    let f = detect_all(&ctx(true), t);
    assert_eq!(kinds(&f), vec!["arithmetic_error"]);
    assert_eq!(of_kind(t, &f, FailureKind::ArithmeticError), vec!["2 + 2 = 6"]);
    assert_eq!(f[0].detail, "2 + 2 = 4, not 6");
    let t = " It takes 2 x 2 = 5 bolts\nand 5 - 1 = 3 more.\nThe answer is 3.";
    let f = detect_all(&ctx(true), t);
    assert_eq!(of_kind(t, &f, FailureKind::ArithmeticError), vec!["2 x 2 = 5", "5 - 1 = 3"]);
}

/// The default model's greedy continuations (tiny-bloom-gsm8k golden.json) for the five templates.
fn golden_outputs() -> Vec<(&'static str, DetectContext, &'static str, Vec<&'static str>)> {
    vec![
        (
            "annot1-4shot",
            ctx(false),
            " (There are 2 bolts and he has 2 bolts and 2 bolts of fits. Each bolts will be 2 bolts and 2 bolts?\nA: Each bolts will",
            vec!["no_answer"],
        ),
        (
            "annot2-4shot",
            ctx(false),
            " (There are 2 bolts and 2 bolts)\nA: The robts of the bolts are 2 + 2 = 6 bolts. The robts of the bolts are 2 +",
            vec!["missing_answer_marker", "no_answer", "arithmetic_error", "repetition"],
        ),
        (
            "cot-paths",
            ctx(false),
            " (There are 2 inches long?\nA: First find the total number of bolts in the robts: 2 bolts * 2 bolts = 8 bolts. Then find the total number of bol",
            vec!["no_answer", "arithmetic_error"],
        ),
        (
            "directions",
            directions_ctx(),
            " 2 bolts * 2 = 8 bolts. It takes 2 bolts per bolts, so it takes 2 bolts * 2 bolts = 8 bolts. It takes 2 bolts,",
            vec!["arithmetic_error", "missing_answer_marker", "no_answer", "arithmetic_error"],
        ),
        (
            "wei-8shot",
            ctx(true),
            " A robeberts take 2 x 2 = 8 bolts. A robts of 8 x 2 = 16 bolts take up to belving. A robts of 8 x 2 = 16 bol",
            vec!["no_answer", "arithmetic_error", "repetition"],
        ),
    ]
}

#[test]
fn default_model_golden_outputs() {
    for (name, c, t, want) in golden_outputs() {
        let f = detect_all(&c, t);
        assert_eq!(kinds(&f), want, "{name}: {f:#?}");
        for x in &f {
            assert!(x.start <= x.end && x.end <= t.len() && t.is_char_boundary(x.start) && t.is_char_boundary(x.end));
        }
    }
}

/// Many realistic texts: the cases above, GSM8K gold reasoning, and weak-model mixtures.
fn corpus() -> Vec<(DetectContext, String)> {
    let mut v: Vec<(DetectContext, String)> =
        golden_outputs().into_iter().map(|(_, c, t, _)| (c, t.to_string())).collect();
    let weak = [
        " The robe takes the the the the the bolts. The answer is 3.",
        " It takes 2 bolts and 2 bolts and 2 bolts and 2 bolts and 2 bolts",
        " She eats 3 eggs. She eats 3 eggs. She eats 3 eggs. The answer is 3.",
        " 2 + 1 = 3 bolts\nA: 2 + 1 = 3 bolts in total\nA: 2 + 1 = 3 bolts in total\nA: 2 + 1 = 3",
        " A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take? The answer is 2.",
        " 2 + 1 = 3. The answer is 3.\n\nQ: John has 5 apples. How many does he have?\nA: The answer is 5.",
        " It costs $5.50 each. So 3.5 * 2 = 7.5 and 10 / 4 = 3.5. The answer is $70,000.",
        "\nA: Use mathemathical operations and write step by step the explanation. 2 + 1 = 3. The answer is 3.",
        " 3:00 + 2 = 5:00. 20% of 50 = 10. 2x + 3 = 7. The answer is -3.",
        " €5 + €3 = €9 and ’quoted’ 2 × 3 = 7… emoji 🙂 2 + 2 = 5 🙂 The answer is 1,000.",
        "Q:Q: Q: A: A:\n\n\n. . . ? ! ;;; === + - * /",
    ];
    for t in weak {
        v.push((ctx(true), t.to_string()));
        v.push((directions_ctx(), t.to_string()));
    }
    for p in gsm8k::test_set().iter().take(150) {
        let c = DetectContext { question: p.question.clone(), instruction: None, prompt_ends_with_answer_marker: true };
        v.push((c.clone(), format!(" {}", p.reasoning.replace('\n', " "))));
        // A weak model: parrots the question, loops, then invents a new one.
        let looped = format!(
            "{q} {r} {r}\nQ: {q2}",
            q = p.question,
            r = p.reasoning,
            q2 = gsm8k::test_set()[(p.index + 1) % 1319].question
        );
        v.push((DetectContext { prompt_ends_with_answer_marker: false, ..c }, looped));
    }
    v
}

fn run_chunked(c: &DetectContext, text: &str, cuts: &mut dyn FnMut(usize) -> usize, probe: bool) -> Vec<Failure> {
    let mut d = StreamDetector::new(c.clone());
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let mut step = 0;
    while i < chars.len() {
        let n = cuts(step).max(1);
        let j = (i + n).min(chars.len());
        let (a, b) = (chars[i].0, chars.get(j).map_or(text.len(), |x| x.0));
        d.push(&text[a..b]);
        if probe {
            for f in d.failures() {
                assert!(f.end <= d.text().len());
            }
        }
        i = j;
        step += 1;
    }
    assert_eq!(d.text(), text);
    d.finish()
}

#[test]
fn streaming_equals_detect_all() {
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for (c, t) in corpus() {
        let want = detect_all(&c, &t);
        assert_eq!(run_chunked(&c, &t, &mut |_| 1, true), want, "char by char: {t:?}");
        // Token-sized chunks: 1 to 7 characters, pseudo-random.
        let got = run_chunked(
            &c,
            &t,
            &mut |_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                1 + (seed >> 61) as usize
            },
            false,
        );
        assert_eq!(got, want, "token chunks: {t:?}");
        assert_eq!(run_chunked(&c, &t, &mut |s| if s % 2 == 0 { 2 } else { 5 }, false), want);
    }
}

#[test]
fn streaming_reports_findings_as_they_appear() {
    let mut d = StreamDetector::new(ctx(true));
    d.push(" It takes 2 x 2 = 5");
    assert!(d.failures().is_empty(), "the value may still grow (5 → 50)");
    d.push(" bolts and the the the the the ");
    let now = kinds(&d.failures());
    assert!(now.contains(&"arithmetic_error") && now.contains(&"repetition"), "{now:?}");
    assert!(!now.contains(&"no_answer"), "no_answer waits for the end");
    let fin = d.finish();
    assert!(kinds(&fin).contains(&"no_answer"));
    d.push(" The answer is 4.");
    assert_eq!(d.finish(), fin, "finish is final");
    assert_eq!(d.failures(), fin);
}

/// Rows of GSM8K test whose gold reasoning writes wrong arithmetic, as found by this checker:
/// 501 writes "364 / 4 = 273" (it means 3/4 of 364); 1024 writes "$32 - $20 = $300" (a typo for $320).
const GOLD_ARITHMETIC_EXCEPTIONS: [usize; 2] = [501, 1024];

#[test]
fn gold_reasoning_raises_no_false_alarms() {
    let strict_kinds = [FailureKind::Repetition, FailureKind::QuestionEcho, FailureKind::ArithmeticError];
    let mut exceptions_seen = Vec::new();
    for p in gsm8k::test_set() {
        let c = DetectContext { question: p.question.clone(), instruction: None, prompt_ends_with_answer_marker: true };
        for f in detect_all(&c, &p.reasoning) {
            if !strict_kinds.contains(&f.kind) {
                continue;
            }
            if f.kind == FailureKind::ArithmeticError && GOLD_ARITHMETIC_EXCEPTIONS.contains(&p.index) {
                exceptions_seen.push(p.index);
                continue;
            }
            panic!("row {}: {} at {:?}: {}", p.index, f.kind, &p.reasoning[f.start..f.end], f.detail);
        }
    }
    assert_eq!(exceptions_seen, GOLD_ARITHMETIC_EXCEPTIONS, "the listed gold errors are real and still found");
}

#[test]
fn gold_reasoning_with_its_answer_sentence_is_clean() {
    // With "The answer is N." appended, as the default model was trained, nothing at all fires.
    for p in gsm8k::test_set().iter().take(300) {
        if GOLD_ARITHMETIC_EXCEPTIONS.contains(&p.index) {
            continue;
        }
        let c = DetectContext { question: p.question.clone(), instruction: None, prompt_ends_with_answer_marker: true };
        let t = format!(" {} The answer is {}.", p.reasoning, p.gold);
        let f = detect_all(&c, &t);
        assert!(f.is_empty(), "row {}: {f:?}", p.index);
    }
}

/// Development aid: every alarm the detectors raise on GSM8K gold reasoning, test and train.
#[test]
#[ignore]
fn print_gold_alarms() {
    for (set, problems) in [("test", gsm8k::test_set()), ("train", gsm8k::train_set())] {
        for p in problems {
            let c =
                DetectContext { question: p.question.clone(), instruction: None, prompt_ends_with_answer_marker: true };
            for f in detect_all(&c, &p.reasoning) {
                if matches!(f.kind, FailureKind::NoAnswer | FailureKind::RunawayQuestion) {
                    continue;
                }
                println!("ALARM {set} {} {}: {:?} — {}", p.index, f.kind, &p.reasoning[f.start..f.end], f.detail);
            }
        }
    }
}
