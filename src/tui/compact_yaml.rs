//! YAML for people and diffs: maps and lists of maps in block style, lists of scalars on one line
//! (`token_ids: [12, 7, 99]`), every string double-quoted (JSON escapes are YAML escapes), so stop
//! strings, blank notes and numbers-as-text read back exactly.

use serde_yaml::Value;

/// `v` (a mapping, in field order) as a YAML document.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Mapping(_) => entries(v, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // Not produced by sessions; plain serde_yaml for anything else.
        other => serde_yaml::to_string(other).unwrap_or_default().trim_end().to_string(),
    }
}

fn key(k: &Value) -> String {
    match k {
        Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => s.clone(),
        other => scalar(other),
    }
}

/// The entries of map `v`, each line indented by `indent`.
fn entries(v: &Value, indent: usize, out: &mut String) {
    let Value::Mapping(m) = v else { return };
    let pad = " ".repeat(indent);
    for (k, val) in m {
        out.push_str(&pad);
        out.push_str(&key(k));
        out.push(':');
        value_after_key(val, indent, out);
    }
}

/// What follows `key:` — inline for scalars, empty containers and lists of scalars; else a block.
fn value_after_key(val: &Value, indent: usize, out: &mut String) {
    match val {
        Value::Mapping(m) if m.is_empty() => out.push_str(" {}\n"),
        Value::Mapping(_) => {
            out.push('\n');
            entries(val, indent + 2, out);
        }
        Value::Sequence(items) if items.iter().all(is_scalar) => {
            let inline: Vec<String> = items.iter().map(scalar).collect();
            out.push_str(&format!(" [{}]\n", inline.join(", ")));
        }
        Value::Sequence(items) => {
            out.push('\n');
            list(items, indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

/// A block list at `indent` (items start with `- `, a map's first entry on the dash line).
fn list(items: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                let mut block = String::new();
                entries(item, indent + 2, &mut block);
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&block[indent + 2..]);
            }
            Value::Sequence(inner) if inner.iter().all(is_scalar) => {
                let inline: Vec<String> = inner.iter().map(scalar).collect();
                out.push_str(&format!("{pad}- [{}]\n", inline.join(", ")));
            }
            Value::Sequence(inner) => {
                out.push_str(&pad);
                out.push_str("-\n");
                list(inner, indent + 2, out);
            }
            other => {
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&if matches!(other, Value::Mapping(_)) { "{}".to_string() } else { scalar(other) });
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn reads_back_exactly_and_lists_of_scalars_stay_on_one_line() {
        // Written as YAML so the fields keep their order (as a struct's do).
        let v: Value = serde_yaml::from_str(
            r#"
version: 2
stop: ["\nQ:", "\n\n", "a \"q\" b"]
empty: []
none: {}
n: null
paths:
  - {path: 1, token_ids: [12, 7, 99], text: " 3 + 4 = 7.\nThe answer is 7.", labels: [{label: good, human: true}]}
  - {path: 2, token_ids: [], text: "", note: "no: yes", agreement: 0.5}
nested: {deep: {x: "007"}}
lists: [[1, 2], []]
"#,
        )
        .unwrap();
        let y = to_string(&v);
        assert!(y.contains("  token_ids: [12, 7, 99]\n"), "{y}");
        assert!(y.contains("stop: [\"\\nQ:\", \"\\n\\n\", \"a \\\"q\\\" b\"]\n"), "{y}");
        assert!(y.contains("- path: 1\n"), "{y}");
        let back: Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(back, v, "{y}");
    }
}
