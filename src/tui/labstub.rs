//! TEMPORARY placeholders mirroring the lab core API (/work/LAB_API.md) until `crate::lab` lands.
//! Deleted once the real module is merged; the TUI imports it as `lab` so the switch is one line.
#![allow(dead_code)]

pub mod gsm8k {
    use serde::{Deserialize, Serialize};
    use std::sync::OnceLock;

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    pub struct Problem {
        pub index: usize,
        pub question: String,
        pub reasoning: String,
        pub gold: String,
    }

    #[derive(Deserialize)]
    struct Row {
        question: String,
        answer: String,
    }

    pub fn test_set() -> &'static [Problem] {
        static SET: OnceLock<Vec<Problem>> = OnceLock::new();
        SET.get_or_init(|| {
            include_str!("../../assets/gsm8k/test.jsonl")
                .lines()
                .filter_map(|l| serde_json::from_str::<Row>(l).ok())
                .enumerate()
                .map(|(index, r)| {
                    let (reasoning, gold) = r.answer.split_once("####").unwrap_or((&r.answer, ""));
                    Problem {
                        index,
                        question: r.question,
                        reasoning: reasoning.trim().to_string(),
                        gold: gold.trim().replace(',', ""),
                    }
                })
                .collect()
        })
    }
}

pub mod template {
    use serde::{Deserialize, Serialize};
    use std::path::{Path, PathBuf};

    #[derive(Debug, thiserror::Error, Clone)]
    #[error("{0}")]
    pub struct TemplateError(pub String);

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    pub struct Exemplar {
        pub question: String,
        pub paths: Vec<String>,
    }

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    pub struct Template {
        pub name: String,
        pub description: String,
        #[serde(default)]
        pub exemplars: Vec<Exemplar>,
        #[serde(default)]
        pub stop: Vec<String>,
        #[serde(default)]
        pub instruction: Option<String>,
    }

    impl Template {
        pub fn load(path: &Path) -> Result<Template, TemplateError> {
            let s = std::fs::read_to_string(path).map_err(|e| TemplateError(format!("{}: {e}", path.display())))?;
            serde_yaml::from_str(&s).map_err(|e| TemplateError(format!("{}: {e}", path.display())))
        }
        pub fn render(&self, question: &str) -> String {
            let mut s = String::new();
            for e in &self.exemplars {
                for p in &e.paths {
                    s.push_str(&format!("Q: {}\nA: {}\n\n", e.question, p));
                }
            }
            s.push_str(&format!("Q: {question}\nA:"));
            s
        }
        pub fn stop_strings(&self) -> &[String] {
            &self.stop
        }
        pub fn ends_with_answer_marker(&self) -> bool {
            true
        }
        pub fn instruction(&self) -> Option<&str> {
            self.instruction.as_deref()
        }
        pub fn exemplars(&self) -> &[Exemplar] {
            &self.exemplars
        }
        pub fn push_exemplar(&mut self, question: &str, path: &str) {
            self.exemplars.push(Exemplar { question: question.into(), paths: vec![path.into()] });
        }
        pub fn to_yaml(&self) -> Result<String, TemplateError> {
            serde_yaml::to_string(self).map_err(|e| TemplateError(e.to_string()))
        }
        pub fn save(&self, path: &Path) -> Result<(), TemplateError> {
            let y = self.to_yaml()?;
            crate::fsutil::write_atomic(path, y.as_bytes()).map_err(|e| TemplateError(format!("{}: {e}", path.display())))
        }
    }

    pub struct TemplateSet {
        pub templates: Vec<(PathBuf, Template)>,
        pub errors: Vec<TemplateError>,
    }

    pub fn load_dir(dir: &Path) -> TemplateSet {
        let mut set = TemplateSet { templates: vec![], errors: vec![] };
        let Ok(rd) = std::fs::read_dir(dir) else {
            for (name, n) in [("wei-8shot", 2usize), ("annot1-4shot", 1)] {
                let t = Template {
                    name: name.into(),
                    description: format!("stub {name}"),
                    exemplars: (0..n)
                        .map(|i| Exemplar { question: format!("Tom has {i} apples. How many?"), paths: vec![format!("Tom has {i}. The answer is {i}.")] })
                        .collect(),
                    stop: vec!["\nQ:".into()],
                    instruction: None,
                };
                set.templates.push((dir.join(format!("{name}.yaml")), t));
            }
            return set;
        };
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.extension().and_then(|e| e.to_str()) == Some("yaml") {
                match Template::load(&p) {
                    Ok(t) => set.templates.push((p, t)),
                    Err(e) => set.errors.push(e),
                }
            }
        }
        set
    }

    pub fn default_dir() -> PathBuf {
        let local = PathBuf::from("templates");
        if local.is_dir() {
            local
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates")
        }
    }
}

pub mod answer {
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    pub enum AnswerRule {
        Strict,
        Flexible,
        None,
    }

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    pub struct Extracted {
        pub answer: Option<String>,
        pub rule: AnswerRule,
        pub span: Option<(usize, usize)>,
    }

    pub fn extract(continuation: &str) -> Extracted {
        if let Some(i) = continuation.find("The answer is") {
            let rest = &continuation[i + 13..];
            let num: String = rest
                .trim_start()
                .trim_start_matches('$')
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',' || *c == '-')
                .collect();
            let num = num.trim_end_matches('.').replace(',', "");
            if !num.is_empty() {
                return Extracted { answer: Some(num), rule: AnswerRule::Strict, span: None };
            }
        }
        Extracted { answer: None, rule: AnswerRule::None, span: None }
    }

    pub fn matches_gold(answer: &str, gold: &str) -> bool {
        match (answer.parse::<f64>(), gold.parse::<f64>()) {
            (Ok(a), Ok(g)) => (a - g).abs() < 1e-9,
            _ => answer == gold,
        }
    }
}

pub mod detect {
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[serde(rename_all = "snake_case")]
    pub enum FailureKind {
        Repetition,
        QuestionEcho,
        MissingAnswerMarker,
        RunawayQuestion,
        NoAnswer,
        ArithmeticError,
    }

    impl FailureKind {
        pub const ALL: [FailureKind; 6] = [
            FailureKind::Repetition,
            FailureKind::QuestionEcho,
            FailureKind::MissingAnswerMarker,
            FailureKind::RunawayQuestion,
            FailureKind::NoAnswer,
            FailureKind::ArithmeticError,
        ];
        pub fn name(&self) -> &'static str {
            match self {
                FailureKind::Repetition => "repetition",
                FailureKind::QuestionEcho => "question_echo",
                FailureKind::MissingAnswerMarker => "missing_answer_marker",
                FailureKind::RunawayQuestion => "runaway_question",
                FailureKind::NoAnswer => "no_answer",
                FailureKind::ArithmeticError => "arithmetic_error",
            }
        }
    }

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    pub struct Failure {
        pub kind: FailureKind,
        pub start: usize,
        pub end: usize,
        pub detail: String,
    }

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    pub struct DetectContext {
        pub question: String,
        pub instruction: Option<String>,
        pub prompt_ends_with_answer_marker: bool,
    }

    pub struct StreamDetector {
        ctx: DetectContext,
        text: String,
    }

    impl StreamDetector {
        pub fn new(ctx: DetectContext) -> Self {
            Self { ctx, text: String::new() }
        }
        pub fn push(&mut self, delta: &str) {
            self.text.push_str(delta);
        }
        pub fn text(&self) -> &str {
            &self.text
        }
        pub fn failures(&self) -> Vec<Failure> {
            live(&self.text)
        }
        pub fn finish(&mut self) -> Vec<Failure> {
            detect_all(&self.ctx, &self.text)
        }
    }

    fn live(text: &str) -> Vec<Failure> {
        let mut out = vec![];
        if let Some(i) = text.find("\nQ:") {
            out.push(Failure { kind: FailureKind::RunawayQuestion, start: i + 1, end: text.len(), detail: String::new() });
        }
        out
    }

    pub fn detect_all(_ctx: &DetectContext, continuation: &str) -> Vec<Failure> {
        let mut out = live(continuation);
        if super::answer::extract(continuation).answer.is_none() {
            out.push(Failure {
                kind: FailureKind::NoAnswer,
                start: continuation.len(),
                end: continuation.len(),
                detail: String::new(),
            });
        }
        out
    }
}

pub mod vote {
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    pub struct Vote {
        pub counts: Vec<(String, usize)>,
        pub majority: Option<String>,
        pub tie: bool,
        pub agreement: f64,
        pub voters: usize,
    }

    pub fn vote(answers: &[Option<String>]) -> Vote {
        let mut counts: Vec<(String, usize)> = vec![];
        for a in answers.iter().flatten() {
            match counts.iter_mut().find(|(x, _)| x == a) {
                Some(c) => c.1 += 1,
                None => counts.push((a.clone(), 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1));
        let voters: usize = counts.iter().map(|c| c.1).sum();
        let tie = counts.len() > 1 && counts[0].1 == counts[1].1;
        let majority = counts.first().map(|c| c.0.clone());
        let agreement = if voters == 0 { 0.0 } else { counts[0].1 as f64 / voters as f64 };
        Vote { counts, majority, tie, agreement, voters }
    }
}
