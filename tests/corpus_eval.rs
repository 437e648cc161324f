//! The detectors against a careful reader on real BLOOM output (tests/fixtures/corpus), and the answer
//! rules against lm-evaluation-harness's gsm8k-cot filters on the same texts.

use std::path::Path;

use cotscope::lab::corpus::{self, Item};
use cotscope::lab::{analysis, number};

const MIN_INSTANCES: usize = 10;
const MIN_PRECISION: f64 = 0.9;
const MIN_RECALL: f64 = 0.8;

fn bloom_corpus() -> Vec<Item> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/bloom_gsm8k.jsonl");
    corpus::load(&path).unwrap()
}

#[test]
fn detectors_agree_with_the_reader_on_real_bloom_output() {
    let items = bloom_corpus();
    assert!(items.len() >= 150, "{} items", items.len());
    let report = corpus::score(&items);
    println!("{}", corpus::table(&report));
    for d in &report.disagreements {
        println!("  {} {}: reader {}, detectors {}", d.id, d.kind, d.reader, d.detector);
    }
    let mut failed = Vec::new();
    for k in report.kinds.iter().filter(|k| k.labelled >= MIN_INSTANCES) {
        let (p, r) = (k.precision.unwrap_or(0.0), k.recall.unwrap_or(0.0));
        if p < MIN_PRECISION || r < MIN_RECALL {
            failed.push(format!("{}: precision {p:.2}, recall {r:.2}", k.kind));
        }
    }
    assert!(failed.is_empty(), "below precision {MIN_PRECISION} / recall {MIN_RECALL}: {failed:?}");
    // The kinds the corpus must exercise for the thresholds to mean anything.
    let big: Vec<&str> = report.kinds.iter().filter(|k| k.labelled >= MIN_INSTANCES).map(|k| k.kind.name()).collect();
    for k in ["repetition", "question_echo", "no_answer", "arithmetic_error"] {
        assert!(big.contains(&k), "{k} has fewer than {MIN_INSTANCES} labelled items");
    }
}

/// lm-evaluation-harness gsm8k-cot `strict-match`: the first match of `The answer is (\-?[0-9\.\,]+).`.
/// Its final `.` matches any character, so a path that ends right after the number loses the last digit.
fn lm_eval_strict(text: &str) -> Option<String> {
    let re = regex::Regex::new(r"The answer is (\-?[0-9\.\,]+).").unwrap();
    re.captures(text).map(|c| c[1].to_string())
}

/// lm-evaluation-harness gsm8k-cot `flexible-extract`: the last match of `(-?[$0-9.,]{2,})|(-?[0-9]+)`.
fn lm_eval_flexible(text: &str) -> Option<String> {
    let re = regex::Regex::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").unwrap();
    re.captures_iter(text).last().map(|c| c.get(1).or(c.get(2)).map_or(String::new(), |m| m.as_str().to_string()))
}

/// The harness's answer normalisation before exact match: commas, `$` and a final `.` go.
fn lm_eval_normalise(s: &str) -> String {
    s.replace([',', '$'], "").trim_end_matches('.').to_string()
}

/// Whether an lm-eval extraction reads the reader's answer (both none, or the same number).
fn lm_eval_agrees(extracted: Option<String>, reader: Option<&str>) -> bool {
    match (extracted.map(|e| lm_eval_normalise(&e)), reader) {
        (None, None) => true,
        (Some(e), Some(r)) => number::parse_value(&e).is_some_and(|v| number::parse_value(r) == Some(v)),
        _ => false,
    }
}

#[test]
fn strict_regex_quirk_eats_the_last_digit() {
    assert_eq!(lm_eval_strict(" 6 * 8 = 48. The answer is 48").as_deref(), Some("4"));
    assert_eq!(lm_eval_strict(" 6 * 8 = 48. The answer is 48.").as_deref(), Some("48"));
    assert_eq!(lm_eval_strict(" The answer is $48."), None, "a dollar sign defeats it");
    assert_eq!(lm_eval_flexible(" 6 * 8 = 48. The answer is $48.").as_deref(), Some("$48."));
    // cotscope reads all three as 48.
    for t in [" 6 * 8 = 48. The answer is 48", " 6 * 8 = 48. The answer is 48.", " The answer is $48."] {
        assert_eq!(cotscope::lab::extract(t).answer.as_deref(), Some("48"), "{t:?}");
    }
}

#[test]
fn answers_compared_with_lm_eval_filters() {
    let items = bloom_corpus();
    let (mut ours, mut strict, mut flexible, mut strict_or_flexible) = (0, 0, 0, 0);
    for it in &items {
        let reader = it.answer.as_deref();
        let a = analysis::analyze(&it.context(), &it.text, None);
        ours += usize::from(corpus::same_answer(a.answer.as_deref(), reader));
        let s = lm_eval_strict(&it.text);
        strict += usize::from(lm_eval_agrees(s.clone(), reader));
        flexible += usize::from(lm_eval_agrees(lm_eval_flexible(&it.text), reader));
        strict_or_flexible += usize::from(lm_eval_agrees(s.or_else(|| lm_eval_flexible(&it.text)), reader));
    }
    let n = items.len();
    println!("answers that are the reader's, of {n}: cotscope {ours}, strict-match {strict}, flexible-extract {flexible}, strict then flexible {strict_or_flexible}");
    assert!(
        ours > strict && ours > flexible && ours >= strict_or_flexible,
        "cotscope {ours}, strict {strict}, flexible {flexible}, both {strict_or_flexible}"
    );
    assert!(ours as f64 >= 0.95 * n as f64, "cotscope reads the reader's answer on {ours} of {n}");
}

#[test]
fn streaming_equals_detect_all_on_real_output() {
    use cotscope::lab::detect::{detect_all, StreamDetector};
    for it in bloom_corpus() {
        let want = detect_all(&it.context(), &it.text);
        for size in [1, 3, 7] {
            let mut d = StreamDetector::new(it.context());
            let chars: Vec<char> = it.text.chars().collect();
            for chunk in chars.chunks(size) {
                d.push(&chunk.iter().collect::<String>());
                for f in d.failures() {
                    assert!(f.end <= d.text().len(), "{}", it.id);
                }
            }
            assert_eq!(d.finish(), want, "{} in chunks of {size}", it.id);
        }
    }
}
