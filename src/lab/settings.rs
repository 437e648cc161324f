//! The record of a run's settings: everything that decides what a generation produces (model, weights'
//! format, template, sampling, seed, paths, stop strings), written beside every result so a result can
//! be trusted afterwards, and compared before a resume so old results never mix with new settings.

use serde::{Deserialize, Serialize};

use crate::engine::SamplingParams;

/// The embedded default model's name, as recorded (not `default`).
pub const EMBEDDED_MODEL: &str = "tiny-bloom-gsm8k (embedded)";

/// cotscope's version, recorded beside results.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which model, and how its weights are computed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// A hub id or directory as the user named it, or [`EMBEDDED_MODEL`].
    pub id: String,
    /// sha256 of the model's `config.json` (empty while the model is not loaded yet).
    #[serde(default)]
    pub config_hash: String,
    /// `--dtype` as given (None: the default, f32 on CPU).
    #[serde(default)]
    pub dtype: Option<String>,
    /// `--quantize` as given.
    #[serde(default)]
    pub quantize: Option<String>,
}

/// Everything that decides a run's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub model: ModelSettings,
    pub template: String,
    /// sha256 of the template as written (its YAML), so an edited template is told apart.
    pub template_hash: String,
    pub sampling: SamplingParams,
    pub paths: usize,
    pub stop: Vec<String>,
    /// `--calculator`: the engine wrote the results of `expression =` for the model. Left out of the
    /// record when off, so files from before it existed keep their settings (and file names).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub calculator: bool,
    /// Informational: not compared (a newer cotscope may resume an older one's file).
    pub cotscope_version: String,
}

/// sha256 of a template as written (its YAML).
pub fn template_hash(template: &super::template::Template) -> Result<String, super::template::TemplateError> {
    Ok(crate::hash::sha256_hex(template.to_yaml()?))
}

/// What differs between the settings of a file and those of this run.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// The setting as a user names it: a flag (`--temperature`) or a phrase.
    pub setting: String,
    pub recorded: String,
    pub now: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} was {} there, is {} now", self.setting, self.recorded, self.now)
    }
}

impl RunSettings {
    /// The settings of a run of `template` (the model's config hash stays as given: empty until it
    /// is loaded).
    pub fn new(
        model: ModelSettings,
        template: &super::template::Template,
        sampling: SamplingParams,
        paths: usize,
        stop: Vec<String>,
        calculator: bool,
    ) -> Result<RunSettings, super::template::TemplateError> {
        Ok(RunSettings {
            model,
            template: template.name.clone(),
            template_hash: template_hash(template)?,
            sampling,
            paths,
            stop,
            calculator,
            cotscope_version: VERSION.to_string(),
        })
    }

    /// The first setting of `self` (this run) that differs from `recorded`; None when they agree.
    /// The version is not compared, nor the config hash while either side does not know it yet.
    pub fn difference(&self, recorded: &RunSettings) -> Option<Difference> {
        let (a, b) = (flatten(recorded), flatten(self));
        let keys = b.iter().map(|(k, _)| k).chain(a.iter().map(|(k, _)| k));
        for key in keys {
            if key == "cotscope_version" {
                continue;
            }
            let get = |v: &[(String, serde_json::Value)]| v.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            let (old, new) = (get(&a).unwrap_or_default(), get(&b).unwrap_or_default());
            if key == "model.config_hash" && (is_blank(&old) || is_blank(&new)) {
                continue;
            }
            if old != new {
                return Some(Difference {
                    setting: setting_name(key, &self.template),
                    recorded: show(&old),
                    now: show(&new),
                });
            }
        }
        None
    }

    /// A short hash of the compared settings (config hash and version left out: both may be unknown
    /// before the model loads), naming this run's file inside an `--out` directory.
    pub fn key(&self) -> String {
        let mut s = self.clone();
        s.model.config_hash.clear();
        s.cotscope_version.clear();
        let json = serde_json::to_string(&s).unwrap_or_default();
        crate::hash::sha256_hex(json)[..12].to_string()
    }
}

fn is_blank(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_str().is_some_and(str::is_empty)
}

fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "unset".to_string(),
        other => other.to_string(),
    }
}

/// Leaves of a JSON object as (dotted key, value), in field order.
fn flatten(s: &RunSettings) -> Vec<(String, serde_json::Value)> {
    fn walk(prefix: &str, v: serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            leaf => out.push((prefix.to_string(), leaf)),
        }
    }
    let mut out = Vec::new();
    walk("", serde_json::to_value(s).unwrap_or_default(), &mut out);
    out
}

/// The flag or phrase a user knows a setting by.
fn setting_name(key: &str, template: &str) -> String {
    let named = match key {
        "model.id" => "--model",
        "model.config_hash" => "the model's config.json",
        "model.dtype" => "--dtype",
        "model.quantize" => "--quantize",
        "template" => "--template",
        "template_hash" => return format!("template {template} (edited since)"),
        "paths" => "--paths",
        "stop" => "the stop strings",
        "calculator" => "--calculator",
        _ => "",
    };
    if !named.is_empty() {
        return named.to_string();
    }
    match key.strip_prefix("sampling.") {
        Some(field) => format!("--{}", field.replace('_', "-")),
        None => key.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn settings() -> RunSettings {
        RunSettings {
            model: ModelSettings { id: EMBEDDED_MODEL.into(), config_hash: "abc".into(), dtype: None, quantize: None },
            template: "wei-8shot".into(),
            template_hash: "t1".into(),
            sampling: SamplingParams { temperature: 0.7, seed: 42, max_new_tokens: 128, ..SamplingParams::default() },
            paths: 2,
            stop: vec!["\nQ:".into()],
            calculator: false,
            cotscope_version: VERSION.into(),
        }
    }

    #[test]
    fn each_setting_is_named_when_it_differs() {
        let base = settings();
        type Change = fn(&mut RunSettings);
        let cases: [(&str, Change); 14] = [
            ("--model", |s| s.model.id = "bigscience/bloom-560m".into()),
            ("the model's config.json", |s| s.model.config_hash = "def".into()),
            ("--dtype", |s| s.model.dtype = Some("f16".into())),
            ("--quantize", |s| s.model.quantize = Some("q8_0".into())),
            ("--template", |s| s.template = "cot-paths".into()),
            ("template wei-8shot (edited since)", |s| s.template_hash = "t2".into()),
            ("--temperature", |s| s.sampling.temperature = 0.0),
            ("--top-k", |s| s.sampling.top_k = Some(5)),
            ("--top-p", |s| s.sampling.top_p = Some(0.9)),
            ("--seed", |s| s.sampling.seed = 7),
            ("--max-new-tokens", |s| s.sampling.max_new_tokens = 64),
            ("--paths", |s| s.paths = 3),
            ("the stop strings", |s| s.stop.push("\n\n".into())),
            ("--calculator", |s| s.calculator = true),
        ];
        for (want, change) in cases {
            let mut now = base.clone();
            change(&mut now);
            let d = now.difference(&base).unwrap_or_else(|| panic!("{want} not noticed"));
            assert_eq!(d.setting, want);
            assert_ne!(d.recorded, d.now, "{d}");
            if want != "the model's config.json" {
                assert_ne!(now.key(), base.key(), "{want} gets its own file in a directory");
            }
        }
        let d = {
            let mut now = base.clone();
            now.sampling.temperature = 0.0;
            now.difference(&base).unwrap().to_string()
        };
        assert_eq!(d, "--temperature was 0.7 there, is 0.0 now");
    }

    #[test]
    fn version_and_an_unknown_config_hash_are_not_compared() {
        let base = settings();
        let mut now = base.clone();
        now.cotscope_version = "9.9.9".into();
        now.model.config_hash.clear();
        assert_eq!(now.difference(&base), None);
        assert_eq!(now.key(), base.key());
    }
}
