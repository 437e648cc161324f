use cotscope::lab::*;
fn main() {
    let mut counts = std::collections::BTreeMap::new();
    let set = if std::env::args().nth(1).as_deref() == Some("train") { train_set() } else { test_set() };
    for p in set {
        let ctx = DetectContext { question: p.question.clone(), instruction: None, prompt_ends_with_answer_marker: true };
        for f in detect_all(&ctx, &p.reasoning) {
            if matches!(f.kind, FailureKind::NoAnswer) { continue; }
            *counts.entry(f.kind.name()).or_insert(0) += 1;
            println!("{} {} {:?} || {}", p.index, f.kind.name(), &p.reasoning[f.start..f.end], f.detail);
        }
    }
    println!("{counts:?}");
}
