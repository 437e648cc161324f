//! Run settings as eval files record them (`settings` on every line), read as plain JSON so files of
//! older or newer cotscopes still load: compared leaf by leaf and shown one line per run.

use serde_json::Value;

/// What a comparison should ignore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Two runs of a report: their templates (and so prompts and stop strings) differ on purpose.
    BetweenRuns,
    /// Lines of one file: everything but the version must agree.
    WithinFile,
}

/// The outcome of comparing two runs' settings.
#[derive(Clone, Debug, PartialEq)]
pub enum Comparison {
    Same,
    /// Each difference as `key a vs b`.
    Differ(Vec<String>),
    /// One of them records no settings (written by an older cotscope): nothing can be checked.
    Unknown,
}

/// Keys that belong to the template, not to the conditions it ran under.
const TEMPLATE_KEYS: [&str; 4] = ["template", "template_hash", "stop", "prompt_hash"];
/// Informational only: a newer cotscope reads an older one's results the same way.
const VERSION_KEY: &str = "cotscope_version";

/// Compares the recorded settings of two runs.
pub fn compare(a: Option<&Value>, b: Option<&Value>, scope: Scope) -> Comparison {
    let (Some(a), Some(b)) = (a, b) else { return Comparison::Unknown };
    let (fa, fb) = (flatten(a), flatten(b));
    let mut keys: Vec<&String> = fa.iter().map(|(k, _)| k).collect();
    for (k, _) in &fb {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let get =
        |f: &[(String, Value)], key: &str| f.iter().find(|(k, _)| k == key).map_or(Value::Null, |(_, v)| v.clone());
    let mut out = Vec::new();
    for key in keys {
        let top = key.split('.').next().unwrap_or(key);
        if top == VERSION_KEY || (scope == Scope::BetweenRuns && TEMPLATE_KEYS.contains(&top)) {
            continue;
        }
        let (va, vb) = (get(&fa, key), get(&fb, key));
        // The model's config hash is unknown until the model is loaded; blank is not a difference.
        if key == "model.config_hash" && (is_blank(&va) || is_blank(&vb)) {
            continue;
        }
        if va != vb {
            out.push(format!("{key} {} vs {}", show(&va), show(&vb)));
        }
    }
    if out.is_empty() {
        Comparison::Same
    } else {
        Comparison::Differ(out)
    }
}

/// The settings on one line, for people: `model.id tiny · sampling.temperature 0.7 · …`.
pub fn describe(v: Option<&Value>) -> String {
    match v {
        None => "not recorded (a file of an older cotscope)".to_string(),
        Some(v) => flatten(v).iter().map(|(k, v)| format!("{k} {}", show(v))).collect::<Vec<_>>().join(" · "),
    }
}

/// Leaves of a JSON object as (dotted key, value), in the order written.
pub fn flatten(v: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            leaf => out.push((prefix.to_string(), leaf.clone())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

fn is_blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(str::is_empty)
}

/// A value for people: strings bare, 64-digit hashes shortened to 12, null as `unset`.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "unset".to_string(),
        Value::String(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => s[..12].to_string(),
        Value::String(s) if s.is_empty() => "\"\"".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(template: &str, temperature: f64) -> Value {
        json!({
            "model": {"id": "tiny", "config_hash": "", "dtype": null, "quantize": null},
            "template": template, "template_hash": format!("{template}-hash"),
            "sampling": {"temperature": temperature, "top_k": null, "top_p": null, "seed": 42, "max_new_tokens": 64},
            "paths": 3, "stop": ["\nQ:"], "cotscope_version": "0.1.1"
        })
    }

    #[test]
    fn templates_differ_on_purpose_sampling_does_not() {
        let (a, b) = (settings("wei-8shot", 0.7), settings("cot-paths", 0.7));
        assert_eq!(compare(Some(&a), Some(&b), Scope::BetweenRuns), Comparison::Same);
        match compare(Some(&a), Some(&b), Scope::WithinFile) {
            Comparison::Differ(d) => {
                assert_eq!(d, ["template wei-8shot vs cot-paths", "template_hash wei-8shot-hash vs cot-paths-hash"])
            }
            other => panic!("{other:?}"),
        }
        let c = settings("cot-paths", 0.0);
        assert_eq!(
            compare(Some(&a), Some(&c), Scope::BetweenRuns),
            Comparison::Differ(vec!["sampling.temperature 0.7 vs 0.0".into()])
        );
        assert_eq!(compare(Some(&a), None, Scope::BetweenRuns), Comparison::Unknown);
    }

    #[test]
    fn version_and_unknown_config_hash_are_not_differences_but_a_key_only_one_has_is() {
        let a = settings("t", 0.7);
        let mut b = a.clone();
        b["cotscope_version"] = json!("9.9.9");
        b["model"]["config_hash"] = json!("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(compare(Some(&a), Some(&b), Scope::WithinFile), Comparison::Same);
        let mut c = b.clone();
        c["model"]["config_hash"] = json!("0000c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(
            compare(Some(&b), Some(&c), Scope::BetweenRuns),
            Comparison::Differ(vec!["model.config_hash e3b0c44298fc vs 0000c44298fc".into()])
        );
        let mut d = a.clone();
        d["sampling"]["min_p"] = json!(0.1);
        assert_eq!(
            compare(Some(&a), Some(&d), Scope::BetweenRuns),
            Comparison::Differ(vec!["sampling.min_p unset vs 0.1".into()])
        );
    }

    #[test]
    fn described_on_one_line() {
        let d = describe(Some(&settings("wei-8shot", 0.7)));
        assert!(d.contains("model.id tiny · ") && d.contains("model.config_hash \"\" · model.dtype unset"), "{d}");
        assert!(d.contains("sampling.temperature 0.7 · sampling.top_k unset") && d.contains("paths 3"), "{d}");
        assert!(d.contains(r#"stop ["\nQ:"]"#) && !d.contains('\n'), "{d}");
        assert!(describe(None).contains("not recorded"));
    }
}
