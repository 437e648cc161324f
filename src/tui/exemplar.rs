//! A generated path as an exemplar: the `Q: …\nA: …` text `y` copies, the reasoning `e` appends to a
//! template, and the line diff shown before the template file is written.

/// The reasoning part of a generated path: without a leading `A:` the model wrote itself, cut before any
/// question it went on to invent, trimmed.
pub fn reasoning(text: &str) -> String {
    let t = text.trim_start();
    let t = t.strip_prefix("A:").unwrap_or(t);
    let t = match t.find("\nQ:") {
        Some(i) => &t[..i],
        None => t,
    };
    t.trim().to_string()
}

/// `Q: <question>\nA: <reasoning>`, the form of every exemplar in a prompt.
pub fn exemplar_text(question: &str, path_text: &str) -> String {
    format!("Q: {}\nA: {}", question.trim(), reasoning(path_text))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffLine {
    Same(String),
    Added(String),
    Removed(String),
    /// Unchanged lines left out.
    Skipped(usize),
}

/// A line diff of `old` → `new` as one changed block between the common head and tail, with `context`
/// unchanged lines either side (appending an exemplar changes one block).
pub fn diff(old: &str, new: &str, context: usize) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..].iter().rev().zip(b[head..].iter().rev()).take_while(|(x, y)| x == y).count();
    let mut out = Vec::new();
    let ctx_start = head.saturating_sub(context);
    if ctx_start > 0 {
        out.push(DiffLine::Skipped(ctx_start));
    }
    out.extend(a[ctx_start..head].iter().map(|l| DiffLine::Same(l.to_string())));
    out.extend(a[head..a.len() - tail].iter().map(|l| DiffLine::Removed(l.to_string())));
    out.extend(b[head..b.len() - tail].iter().map(|l| DiffLine::Added(l.to_string())));
    let tail_start = a.len() - tail;
    let tail_end = (tail_start + context).min(a.len());
    out.extend(a[tail_start..tail_end].iter().map(|l| DiffLine::Same(l.to_string())));
    if tail_end < a.len() {
        out.push(DiffLine::Skipped(a.len() - tail_end));
    }
    out
}

/// A template name usable as a file name.
pub fn valid_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemplar_text_strips_marker_and_invented_question() {
        let t = " A: She has 3 + 2 = 5. The answer is 5.\nQ: Tom has";
        assert_eq!(exemplar_text(" How many? ", t), "Q: How many?\nA: She has 3 + 2 = 5. The answer is 5.");
        assert_eq!(reasoning(" 2 * 3 = 6. The answer is 6.\n\n"), "2 * 3 = 6. The answer is 6.");
    }

    #[test]
    fn diff_of_an_append_shows_added_lines_with_context() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nb\nc\nd\ne\nf\n";
        assert_eq!(
            diff(old, new, 2),
            vec![
                DiffLine::Skipped(2),
                DiffLine::Same("c".into()),
                DiffLine::Same("d".into()),
                DiffLine::Added("e".into()),
                DiffLine::Added("f".into())
            ]
        );
        let d = diff("x\ny\nz", "x\nY\nz", 0);
        assert_eq!(
            d,
            vec![
                DiffLine::Skipped(1),
                DiffLine::Removed("y".into()),
                DiffLine::Added("Y".into()),
                DiffLine::Skipped(1)
            ]
        );
    }

    #[test]
    fn template_names() {
        assert!(valid_template_name("wei-8shot_v2"));
        assert!(!valid_template_name("../x"));
        assert!(!valid_template_name(""));
        assert!(!valid_template_name("a b"));
    }
}
