//! Prompt templates: YAML files in `templates/`, one per template, holding exemplars (a question and one
//! or more reasoning paths) and a layout that says exactly how they are put together into a prompt.
//!
//! The prompt is a list of blocks joined by `layout.separator`: one block per exemplar, then the target
//! question's block. An exemplar block is
//! `[instruction "\n"] question_prefix question "\n" (answer_prefix path "\n")…`; the target block is
//! `[instruction "\n"] question_prefix question ["\n" answer_intro] ["\n" answer marker]`, where the
//! answer marker is `answer_prefix` without its trailing space (`A:`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What can go wrong reading or writing a template. Messages are one line and start with the file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("template {name}: {message}")]
    Unknown { name: String, message: String },
}

/// How exemplars and the target question are laid out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// A line put before every exemplar and before the target question (the "directions" style).
    #[serde(default)]
    pub instruction: Option<String>,
    #[serde(default = "default_question_prefix")]
    pub question_prefix: String,
    #[serde(default = "default_answer_prefix")]
    pub answer_prefix: String,
    /// Text between blocks (after each exemplar, before the next exemplar or the target question).
    #[serde(default)]
    pub separator: String,
    /// A line after the target question that introduces the answer, e.g. "Here is the solution explanation:".
    #[serde(default)]
    pub answer_intro: Option<String>,
    /// Whether the prompt ends with the answer marker (`A:`); if not, the model must write it.
    #[serde(default)]
    pub end_with_answer_marker: bool,
}

fn default_question_prefix() -> String {
    "Q: ".to_string()
}
fn default_answer_prefix() -> String {
    "A: ".to_string()
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            instruction: None,
            question_prefix: default_question_prefix(),
            answer_prefix: default_answer_prefix(),
            separator: "\n".to_string(),
            answer_intro: None,
            end_with_answer_marker: true,
        }
    }
}

/// One worked example: a question and one or more reasoning paths (each the text after `A: `).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemplar {
    pub question: String,
    pub paths: Vec<String>,
}

/// A prompt template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub layout: Layout,
    /// Default stop strings for generation with this template.
    #[serde(default)]
    pub stop: Vec<String>,
    #[serde(default)]
    pub exemplars: Vec<Exemplar>,
}

impl Template {
    /// Reads and checks a template file.
    pub fn load(path: &Path) -> Result<Template, TemplateError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TemplateError::Read { path: path.to_path_buf(), source })?;
        Self::from_yaml(&text, path)
    }

    /// Parses template YAML; `path` only names the source in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Template, TemplateError> {
        let t: Template = serde_yaml::from_str(text).map_err(|e| parse_error(path, &e))?;
        t.validate().map_err(|message| TemplateError::Invalid { path: path.to_path_buf(), message })?;
        Ok(t)
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("the template has no name".to_string());
        }
        for (i, e) in self.exemplars.iter().enumerate() {
            if e.paths.is_empty() {
                return Err(format!("exemplar {} has no reasoning paths", i + 1));
            }
        }
        Ok(())
    }

    /// The exact prompt for `question`.
    pub fn render(&self, question: &str) -> String {
        let l = &self.layout;
        let mut blocks: Vec<String> = Vec::with_capacity(self.exemplars.len() + 1);
        for e in &self.exemplars {
            let mut b = self.instruction_line();
            b.push_str(&l.question_prefix);
            b.push_str(&e.question);
            b.push('\n');
            for p in &e.paths {
                b.push_str(&l.answer_prefix);
                b.push_str(p);
                b.push('\n');
            }
            blocks.push(b);
        }
        let mut b = self.instruction_line();
        b.push_str(&l.question_prefix);
        b.push_str(question);
        if let Some(intro) = &l.answer_intro {
            b.push('\n');
            b.push_str(intro);
        }
        if l.end_with_answer_marker {
            b.push('\n');
            b.push_str(self.answer_marker());
        }
        blocks.push(b);
        blocks.join(&l.separator)
    }

    fn instruction_line(&self) -> String {
        match &self.layout.instruction {
            Some(i) => format!("{i}\n"),
            None => String::new(),
        }
    }

    /// The answer marker: the answer prefix without trailing whitespace (`A:`).
    pub fn answer_marker(&self) -> &str {
        self.layout.answer_prefix.trim_end()
    }

    pub fn stop_strings(&self) -> &[String] {
        &self.stop
    }

    /// Whether the prompt ends with `A:` (otherwise the model must write it).
    pub fn ends_with_answer_marker(&self) -> bool {
        self.layout.end_with_answer_marker
    }

    /// The instruction line, if the template has one.
    pub fn instruction(&self) -> Option<&str> {
        self.layout.instruction.as_deref()
    }

    pub fn exemplars(&self) -> &[Exemplar] {
        &self.exemplars
    }

    /// Appends a new exemplar with one reasoning path. Surrounding whitespace is trimmed from both, and
    /// a leading answer marker (`A:`) on the path is dropped, since the layout writes it.
    pub fn push_exemplar(&mut self, question: &str, path: &str) {
        let mut p = path.trim();
        let marker = self.answer_marker().to_string();
        if !marker.is_empty() {
            if let Some(rest) = p.strip_prefix(marker.as_str()) {
                p = rest.trim_start();
            }
        }
        self.exemplars.push(Exemplar { question: question.trim().to_string(), paths: vec![p.to_string()] });
    }

    /// The template as YAML, in the same layout as the shipped files (so a write-back after appending an
    /// exemplar changes only the lines of the new exemplar).
    pub fn to_yaml(&self) -> Result<String, TemplateError> {
        let mut y = String::new();
        y.push_str("# cotscope prompt template: exemplars (a question and one or more reasoning paths, each the\n");
        y.push_str(
            "# text after the answer prefix) and the layout that puts them together; see templates/README.md.\n",
        );
        y.push_str(&format!("name: {}\n", quote(&self.name)));
        y.push_str(&format!("description: {}\n", quote(&self.description)));
        let l = &self.layout;
        y.push_str("layout:\n");
        y.push_str(&format!("  instruction: {}\n", quote_opt(&l.instruction)));
        y.push_str(&format!("  question_prefix: {}\n", quote(&l.question_prefix)));
        y.push_str(&format!("  answer_prefix: {}\n", quote(&l.answer_prefix)));
        y.push_str(&format!("  separator: {}\n", quote(&l.separator)));
        y.push_str(&format!("  answer_intro: {}\n", quote_opt(&l.answer_intro)));
        y.push_str(&format!("  end_with_answer_marker: {}\n", l.end_with_answer_marker));
        if self.stop.is_empty() {
            y.push_str("stop: []\n");
        } else {
            y.push_str("stop:\n");
            for s in &self.stop {
                y.push_str(&format!("  - {}\n", quote(s)));
            }
        }
        if self.exemplars.is_empty() {
            y.push_str("exemplars: []\n");
        } else {
            y.push_str("exemplars:\n");
            for e in &self.exemplars {
                y.push_str(&format!("  - question: {}\n", quote(&e.question)));
                y.push_str("    paths:\n");
                for p in &e.paths {
                    y.push_str(&format!("      - {}\n", quote(p)));
                }
            }
        }
        Ok(y)
    }

    /// Writes the template to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), TemplateError> {
        let y = self.to_yaml()?;
        crate::fsutil::write_atomic(path, y.as_bytes())
            .map_err(|source| TemplateError::Write { path: path.to_path_buf(), source })
    }
}

/// A YAML double-quoted scalar. JSON string syntax is valid YAML double-quoted syntax.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

fn quote_opt(s: &Option<String>) -> String {
    match s {
        Some(s) => quote(s),
        None => "null".to_string(),
    }
}

fn parse_error(path: &Path, e: &serde_yaml::Error) -> TemplateError {
    let full = e.to_string();
    // serde_yaml appends " at line L column C"; the location goes in front instead.
    let message = match full.find(" at line ") {
        Some(p) => full[..p].to_string(),
        None => full.clone(),
    };
    let message = message.lines().next().unwrap_or("invalid YAML").to_string();
    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
    TemplateError::Parse { path: path.to_path_buf(), line, column, message }
}

/// Every template of a directory; one bad file does not stop the others.
#[derive(Debug, Default)]
pub struct TemplateSet {
    /// Loaded templates with their files, sorted by file name.
    pub templates: Vec<(PathBuf, Template)>,
    /// One error per file that failed (or one for the directory itself).
    pub errors: Vec<TemplateError>,
}

impl TemplateSet {
    /// The template called `name` (its `name` field, or else its file stem).
    pub fn find(&self, name: &str) -> Option<&(PathBuf, Template)> {
        self.templates
            .iter()
            .find(|(_, t)| t.name == name)
            .or_else(|| self.templates.iter().find(|(p, _)| p.file_stem().and_then(|s| s.to_str()) == Some(name)))
    }

    /// Names of the loaded templates.
    pub fn names(&self) -> Vec<&str> {
        self.templates.iter().map(|(_, t)| t.name.as_str()).collect()
    }

    /// The template called `name`, or an error listing what is there (and which files failed).
    pub fn get(&self, name: &str) -> Result<&(PathBuf, Template), TemplateError> {
        if let Some(t) = self.find(name) {
            return Ok(t);
        }
        let mut message = format!("not found; available: {}", self.names().join(", "));
        if !self.errors.is_empty() {
            let errs: Vec<String> = self.errors.iter().map(|e| e.to_string()).collect();
            message.push_str(&format!(" (failed to load: {})", errs.join("; ")));
        }
        Err(TemplateError::Unknown { name: name.to_string(), message })
    }
}

/// Loads every `*.yaml` / `*.yml` file in `dir`.
pub fn load_dir(dir: &Path) -> TemplateSet {
    let mut set = TemplateSet::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            set.errors.push(TemplateError::Read { path: dir.to_path_buf(), source });
            return set;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml") | Some("yml")))
        .collect();
    files.sort();
    for f in files {
        match Template::load(&f) {
            Ok(t) => set.templates.push((f, t)),
            Err(e) => set.errors.push(e),
        }
    }
    set
}

/// `./templates` if it exists, else the project's own templates directory.
pub fn default_dir() -> PathBuf {
    let local = PathBuf::from("templates");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates")
    }

    const NAMES: [&str; 5] = ["wei-8shot", "annot1-4shot", "annot2-4shot", "cot-paths", "directions"];

    #[test]
    fn shipped_templates_render_the_reference_prompts_for_question_1() {
        let set = load_dir(&shipped_dir());
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        let q = &crate::lab::gsm8k::test_set()[1].question;
        for name in NAMES {
            let (_, t) = set.get(name).unwrap();
            let want = std::fs::read_to_string(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/prompts/{name}.txt")),
            )
            .unwrap();
            assert_eq!(t.render(q), want, "template {name}");
            assert_eq!(t.ends_with_answer_marker(), want.ends_with("\nA:"), "{name}");
        }
    }

    #[test]
    fn shipped_templates_are_in_canonical_form() {
        for (path, t) in load_dir(&shipped_dir()).templates {
            assert_eq!(t.to_yaml().unwrap(), std::fs::read_to_string(&path).unwrap(), "{}", path.display());
        }
    }

    #[test]
    fn cot_paths_has_three_paths_and_directions_an_instruction() {
        let set = load_dir(&shipped_dir());
        let (_, t) = set.get("cot-paths").unwrap();
        assert_eq!(t.exemplars().len(), 1);
        assert_eq!(t.exemplars()[0].paths.len(), 3);
        let (_, d) = set.get("directions").unwrap();
        assert!(d.instruction().unwrap().starts_with("Use mathemathical operations"));
        assert!(!d.ends_with_answer_marker());
    }

    #[test]
    fn parse_error_names_file_line_and_column_and_others_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let good = std::fs::read_to_string(shipped_dir().join("wei-8shot.yaml")).unwrap();
        std::fs::write(dir.path().join("good.yaml"), &good).unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "name: bad\nlayout:\n  separator: \"\\n\"\n  sepparator: x\n")
            .unwrap();
        std::fs::write(dir.path().join("broken.yaml"), "name: broken\nexemplars:\n  - question: [unclosed\n").unwrap();
        let set = load_dir(dir.path());
        assert_eq!(set.names(), vec!["wei-8shot"]);
        assert_eq!(set.errors.len(), 2);
        let msgs: Vec<String> = set.errors.iter().map(|e| e.to_string()).collect();
        let bad = dir.path().join("bad.yaml");
        assert!(msgs[0].starts_with(&format!("{}:4:3: ", bad.display())), "{}", msgs[0]);
        assert!(msgs[0].contains("sepparator"), "{}", msgs[0]);
        let broken = dir.path().join("broken.yaml");
        assert!(msgs[1].starts_with(&format!("{}:", broken.display())), "{}", msgs[1]);
        let loc: Vec<&str> = msgs[1].splitn(4, ':').collect();
        assert!(loc[1].parse::<usize>().unwrap() >= 3, "line of the error: {}", msgs[1]);
        assert!(!msgs[1].contains('\n'));
    }

    #[test]
    fn invalid_template_is_reported() {
        let e = Template::from_yaml("name: x\nexemplars:\n  - question: q\n    paths: []\n", Path::new("x.yaml"))
            .unwrap_err();
        assert_eq!(e.to_string(), "x.yaml: exemplar 1 has no reasoning paths");
    }

    #[test]
    fn append_exemplar_and_write_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("annot1-4shot.yaml");
        std::fs::copy(shipped_dir().join("annot1-4shot.yaml"), &path).unwrap();
        let before_text = std::fs::read_to_string(&path).unwrap();
        let mut t = Template::load(&path).unwrap();
        let before = t.clone();
        t.push_exemplar("Q2 has \"quotes\" and a colon: yes", "  A: 2 + 3 = 5. The answer is 5.\n");
        t.save(&path).unwrap();
        let after_text = std::fs::read_to_string(&path).unwrap();
        // The old file is a prefix of the new one: the other exemplars are untouched, byte for byte.
        assert!(after_text.starts_with(&before_text));
        let re = Template::load(&path).unwrap();
        assert_eq!(re, t);
        assert_eq!(re.exemplars().len(), before.exemplars().len() + 1);
        assert_eq!(&re.exemplars()[..4], before.exemplars());
        let last = re.exemplars().last().unwrap();
        assert_eq!(last.question, "Q2 has \"quotes\" and a colon: yes");
        assert_eq!(last.paths, vec!["2 + 3 = 5. The answer is 5.".to_string()]);
        assert!(re
            .render("New?")
            .contains("Q: Q2 has \"quotes\" and a colon: yes\nA: 2 + 3 = 5. The answer is 5.\nQ: New?"));
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "no temporary files left behind");
    }
}
