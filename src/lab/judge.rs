//! The `judge` selection strategy: feed a question's paths back to a model and let it name the best.
//!
//! A judge prompt (`templates/judge/judge.yaml`, editable) shows the question and the candidate
//! solutions labelled (A), (B), … and ends in `The best solution is (`. One forward pass gives the
//! model's probability of each label's token as the next token; the most likely label wins (nothing is
//! sampled). Candidates are the paths with an answer, identical texts shown once. When every candidate
//! gives the same answer the choice is already made and the model is not asked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::select::{best_of, Choice, PathView, Score, SelectError};
use super::template::{parse_error, TemplateError};
use super::vote::answer_key;
use crate::engine::Engine;

/// The shipped judge prompt, used when the templates directory has none.
const SHIPPED: &str = include_str!("../../templates/judge/judge.yaml");

/// Where the judge prompt lives inside a templates directory.
pub const JUDGE_FILE: &str = "judge/judge.yaml";

/// A judge prompt file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgePrompt {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The whole prompt, with `{question}` and `{candidates}` in it.
    pub prompt: String,
    /// One candidate, with `{label}` and `{solution}` in it.
    pub candidate: String,
    /// The candidates' labels, in order; each must be one token of the judge model's tokenizer.
    pub labels: Vec<String>,
}

impl JudgePrompt {
    /// Parses judge YAML; `path` only names the source in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<JudgePrompt, TemplateError> {
        let j: JudgePrompt = serde_yaml::from_str(text).map_err(|e| parse_error(path, &e))?;
        j.validate().map_err(|message| TemplateError::Invalid { path: path.to_path_buf(), message })?;
        Ok(j)
    }

    pub fn load(path: &Path) -> Result<JudgePrompt, TemplateError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TemplateError::Read { path: path.to_path_buf(), source })?;
        Self::from_yaml(&text, path)
    }

    /// The judge prompt to use: `explicit` if given, else `judge/judge.yaml` in `templates_dir`, else the
    /// shipped one. Returns where it came from, for the summary.
    pub fn resolve(explicit: Option<&Path>, templates_dir: &Path) -> Result<(String, JudgePrompt), TemplateError> {
        if let Some(p) = explicit {
            return Ok((p.display().to_string(), Self::load(p)?));
        }
        let in_dir = templates_dir.join(JUDGE_FILE);
        if in_dir.is_file() {
            return Ok((in_dir.display().to_string(), Self::load(&in_dir)?));
        }
        let shipped = PathBuf::from("templates").join(JUDGE_FILE);
        Ok(("shipped judge prompt".to_string(), Self::from_yaml(SHIPPED, &shipped)?))
    }

    fn validate(&self) -> Result<(), String> {
        for (field, text, names) in [
            ("prompt", &self.prompt, ["question", "candidates"]),
            ("candidate", &self.candidate, ["label", "solution"]),
        ] {
            for n in names {
                if !text.contains(&format!("{{{n}}}")) {
                    return Err(format!("{field} has no {{{n}}}"));
                }
            }
        }
        if self.labels.is_empty() {
            return Err("labels is empty".into());
        }
        for (i, l) in self.labels.iter().enumerate() {
            if l.is_empty() || l.chars().any(char::is_whitespace) {
                return Err(format!("label {:?} must be non-empty, without spaces", l));
            }
            if self.labels[..i].contains(l) {
                return Err(format!("label {l:?} appears twice"));
            }
        }
        Ok(())
    }

    /// The judge's prompt for `question` and the candidate solutions (labels in order).
    pub fn render(&self, question: &str, solutions: &[&str]) -> String {
        let candidates: String = self
            .labels
            .iter()
            .zip(solutions)
            .map(|(label, s)| fill(&self.candidate, &[("label", label), ("solution", s.trim())]))
            .collect();
        fill(&self.prompt, &[("question", question), ("candidates", &candidates)])
    }
}

/// Replaces each `{name}` of `template` by its value, in one pass: braces inside the values (a question
/// that says `{question}`) are left alone.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'scan: while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        for (name, value) in values {
            if let Some(tail) = after.strip_prefix(name).and_then(|t| t.strip_prefix('}')) {
                out.push_str(value);
                rest = tail;
                continue 'scan;
            }
        }
        out.push('{');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The judge's choice among `paths` for `question`, asking `engine` (one forward pass at most).
pub fn judge(
    engine: &dyn Engine,
    prompt: &JudgePrompt,
    question: &str,
    paths: &[PathView],
) -> Result<Choice, SelectError> {
    // (path index, text, answer) of each candidate.
    let mut cands: Vec<(usize, &str, &str)> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        if let Some(a) = p.answer {
            if !cands.iter().any(|(_, t, _)| t.trim() == p.text.trim()) {
                cands.push((i, p.text, a));
            }
        }
    }
    let Some(&(_, _, first)) = cands.first() else { return Ok(Choice::default()) };
    if cands.iter().all(|(_, _, a)| answer_key(a) == answer_key(first)) {
        return Ok(Choice { answer: Some(answer_key(first)), ..Choice::default() });
    }
    if cands.len() > prompt.labels.len() {
        return Err(SelectError::Judge(format!(
            "{} candidates but the judge prompt has {} labels; add labels to it",
            cands.len(),
            prompt.labels.len()
        )));
    }
    let labels = &prompt.labels[..cands.len()];
    let texts: Vec<&str> = cands.iter().map(|(_, t, _)| *t).collect();
    let logprobs = engine
        .next_token_logprobs(&prompt.render(question, &texts), labels)
        .map_err(|e| SelectError::Judge(e.to_string()))?;
    let max = logprobs.iter().flatten().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    if !max.is_finite() {
        return Err(SelectError::Judge("the judge model gave no probability to any label".into()));
    }
    // Label probabilities, renormalised over the labels shown.
    let weights: Vec<f64> = logprobs.iter().map(|l| l.map_or(0.0, |l| f64::from(l - max).exp())).collect();
    let sum: f64 = weights.iter().sum();
    let scores = cands
        .iter()
        .zip(labels)
        .zip(&weights)
        .map(|(((path, _, a), label), w)| Score {
            label: Some(label.clone()),
            path: Some(*path),
            answer: answer_key(a),
            p: w / sum,
        })
        .collect();
    Ok(best_of(scores))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::fake_info;
    use crate::engine::{DecoderModel, EngineError, LocalEngine};

    fn shipped() -> JudgePrompt {
        JudgePrompt::from_yaml(SHIPPED, Path::new("judge.yaml")).unwrap()
    }

    fn tokenizer() -> tokenizers::Tokenizer {
        tokenizers::Tokenizer::from_bytes(crate::model::embedded::TOKENIZER).unwrap()
    }

    /// A model whose next-token logits after any prompt are fixed, and which records its prompts.
    struct KnownLogits {
        logits: Vec<f32>,
        prompts: std::sync::Arc<std::sync::Mutex<Vec<Vec<u32>>>>,
    }

    impl DecoderModel for KnownLogits {
        fn vocab_size(&self) -> usize {
            self.logits.len()
        }
        fn prefill(&mut self, prompt: &[u32]) -> Result<Vec<f32>, EngineError> {
            self.prompts.lock().unwrap().push(prompt.to_vec());
            Ok(self.logits.clone())
        }
        fn fork(&mut self, _: usize) -> Result<(), EngineError> {
            Err(EngineError::Model("the judge must not sample".into()))
        }
        fn step(&mut self, _: &[u32]) -> Result<Vec<Vec<f32>>, EngineError> {
            Err(EngineError::Model("the judge must not sample".into()))
        }
        fn retain(&mut self, _: &[usize]) -> Result<(), EngineError> {
            Err(EngineError::Model("the judge must not sample".into()))
        }
    }

    fn id(tok: &tokenizers::Tokenizer, s: &str) -> u32 {
        let ids = tok.encode(s, false).unwrap().get_ids().to_vec();
        assert_eq!(ids.len(), 1, "{s:?} is one token");
        ids[0]
    }

    /// An engine whose label logits are `label_logits` (for A, B, …) and every other logit 0.
    fn judge_engine(label_logits: &[f32]) -> (LocalEngine, std::sync::Arc<std::sync::Mutex<Vec<Vec<u32>>>>) {
        let tok = tokenizer();
        let mut logits = vec![0.0f32; tok.get_vocab_size(true)];
        for (l, &v) in shipped().labels.iter().zip(label_logits) {
            logits[id(&tok, l) as usize] = v;
        }
        let prompts = std::sync::Arc::default();
        let model = KnownLogits { logits, prompts: std::sync::Arc::clone(&prompts) };
        let vocab = tok.get_vocab_size(true);
        (LocalEngine::new(Box::new(model), tok, None, fake_info(vocab)), prompts)
    }

    fn path(text: &'static str, answer: Option<&'static str>) -> PathView<'static> {
        PathView { text, answer, arithmetic_error: false, logprob: None }
    }

    #[test]
    fn renders_question_and_labelled_candidates_and_ends_at_the_label() {
        let j = shipped();
        let p = j.render("How many {candidates}?", &[" 2 + 2 = 4. The answer is 4.\n", "3"]);
        assert!(p.contains("Q: How many {candidates}?\n\n(A) 2 + 2 = 4. The answer is 4.\n(B) 3\n"), "{p}");
        assert!(p.ends_with("\nThe best solution is ("), "{p}");
    }

    #[test]
    fn judge_picks_the_label_with_the_highest_probability() {
        // Five paths, majority 18 (A, C, E); the model prefers (B) = 16, then (D) = 20.
        let paths = [
            path(" 9 * 2 = 18. The answer is 18.", Some("18")),
            path(" 8 * 2 = 16. The answer is 16.", Some("16")),
            path(" 18. The answer is 18.", Some("18")),
            path(" 10 * 2 = 20. The answer is 20.", Some("20")),
            path(" 9 + 9 = 18. The answer is 18.", Some("18")),
            path(" I do not know.", None),
        ];
        let label_logits = [1.0f32, 3.0, 0.5, 2.5, -1.0];
        let (engine, prompts) = judge_engine(&label_logits);
        let c = judge(&engine, &shipped(), "Q?", &paths).unwrap();
        assert_eq!((c.answer.as_deref(), c.tie, c.fallback), (Some("16"), false, false));
        // Probabilities are the softmax of the label logits (the other logits cancel out).
        let z: f64 = label_logits.iter().map(|&l| f64::from(l).exp()).sum();
        let labels: Vec<&str> = c.scores.iter().map(|s| s.label.as_deref().unwrap()).collect();
        assert_eq!(labels, ["A", "B", "C", "D", "E"]);
        assert_eq!(c.scores.iter().map(|s| s.path.unwrap()).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        for (s, &l) in c.scores.iter().zip(&label_logits) {
            assert!((s.p - f64::from(l).exp() / z).abs() < 1e-6, "{s:?}");
        }
        // One forward pass, over the rendered judge prompt.
        let prompts = prompts.lock().unwrap();
        assert_eq!(prompts.len(), 1);
        let texts: Vec<&str> = paths[..5].iter().map(|p| p.text).collect();
        let want = engine.encode(&shipped().render("Q?", &texts)).unwrap();
        assert_eq!(prompts[0], want);
    }

    #[test]
    fn equal_label_probabilities_go_to_the_first_candidate() {
        let paths = [path(" a. The answer is 1.", Some("1")), path(" b. The answer is 2.", Some("2"))];
        let (engine, _) = judge_engine(&[2.0, 2.0]);
        let c = judge(&engine, &shipped(), "Q?", &paths).unwrap();
        assert_eq!((c.answer.as_deref(), c.tie), (Some("1"), true));
    }

    #[test]
    fn duplicate_texts_are_shown_once_and_unanimous_candidates_need_no_model() {
        // The duplicate of A is dropped, so B is path 2 and wins with the second label's logit.
        let paths = [
            path(" x. The answer is 1.", Some("1")),
            path("x. The answer is 1. ", Some("1")),
            path(" y. The answer is 2.", Some("2")),
        ];
        let (engine, _) = judge_engine(&[0.0, 5.0, 9.0]);
        let c = judge(&engine, &shipped(), "Q?", &paths).unwrap();
        assert_eq!(c.scores.len(), 2);
        assert_eq!((c.answer.as_deref(), c.scores[1].path), (Some("2"), Some(2)));
        let (engine, prompts) = judge_engine(&[0.0, 5.0]);
        let same = [path(" x. The answer is 3.", Some("3")), path(" y. The answer is 3.0.", Some("3.0"))];
        let c = judge(&engine, &shipped(), "Q?", &same).unwrap();
        assert_eq!((c.answer.as_deref(), c.scores.len()), (Some("3"), 0));
        assert_eq!(judge(&engine, &shipped(), "Q?", &[path("none", None)]).unwrap().answer, None);
        assert!(prompts.lock().unwrap().is_empty(), "no forward pass was needed");
    }

    #[test]
    fn too_many_candidates_and_bad_files_are_one_line_errors() {
        let mut j = shipped();
        j.labels.truncate(1);
        let paths = [path("a", Some("1")), path("b", Some("2"))];
        let (engine, _) = judge_engine(&[]);
        let e = judge(&engine, &j, "Q", &paths).unwrap_err().to_string();
        assert_eq!(e, "judge: 2 candidates but the judge prompt has 1 labels; add labels to it");
        let bad = SHIPPED.replace("{candidates}", "{cands}");
        let e = JudgePrompt::from_yaml(&bad, Path::new("j.yaml")).unwrap_err().to_string();
        assert_eq!(e, "j.yaml: prompt has no {candidates}");
        let e = JudgePrompt::from_yaml("name: j\nprompt: [", Path::new("j.yaml")).unwrap_err().to_string();
        assert!(e.starts_with("j.yaml:2:"), "{e}");
        let dup = SHIPPED.replace("\"B\"", "\"A\"");
        assert!(JudgePrompt::from_yaml(&dup, Path::new("j.yaml")).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn resolve_prefers_the_file_given_then_the_templates_dir_then_the_shipped_one() {
        let dir = tempfile::tempdir().unwrap();
        let (from, j) = JudgePrompt::resolve(None, dir.path()).unwrap();
        assert_eq!((from.as_str(), j), ("shipped judge prompt", shipped()));
        let own = SHIPPED.replace("name: \"judge\"", "name: \"mine\"");
        std::fs::create_dir_all(dir.path().join("judge")).unwrap();
        std::fs::write(dir.path().join(JUDGE_FILE), &own).unwrap();
        assert_eq!(JudgePrompt::resolve(None, dir.path()).unwrap().1.name, "mine");
        let other = dir.path().join("other.yaml");
        std::fs::write(&other, SHIPPED.replace("name: \"judge\"", "name: \"other\"")).unwrap();
        assert_eq!(JudgePrompt::resolve(Some(&other), dir.path()).unwrap().1.name, "other");
        let e = JudgePrompt::resolve(Some(&dir.path().join("missing.yaml")), dir.path()).unwrap_err();
        assert!(e.to_string().contains("missing.yaml: cannot read"), "{e}");
    }

    #[test]
    fn the_shipped_labels_are_single_tokens_of_the_embedded_tokenizer() {
        let tok = tokenizer();
        for l in &shipped().labels {
            id(&tok, l);
        }
    }
}
