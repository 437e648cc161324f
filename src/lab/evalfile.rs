//! The results file of `cotscope eval`: one JSON line per question, appended and flushed as each
//! question finishes, so an interrupted run loses no finished question and a rerun resumes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::answer::AnswerRule;
use super::detect::{Failure, FailureKind};
use super::select::{Selection, StrategySummary};
use super::vote::Vote;

/// One path of one question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalPath {
    pub text: String,
    pub answer: Option<String>,
    pub answer_rule: AnswerRule,
    pub failures: Vec<Failure>,
    /// `max_tokens`, `eos`, `stop_string` or `cancelled`.
    pub stop_reason: String,
    /// The stop string, when `stop_reason` is `stop_string`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_string: Option<String>,
    /// Generated tokens.
    #[serde(default)]
    pub tokens: usize,
    /// Byte ranges of `text` the calculator wrote (`eval --calculator`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced_spans: Vec<std::ops::Range<usize>>,
    /// Sum of the log-probabilities of the tokens the model chose (calculator-forced tokens
    /// excluded), when the run asked the engine for them (`--select weighted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprob: Option<f64>,
}

/// One question: a line of the results file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// GSM8K test row.
    pub index: usize,
    pub template: String,
    /// sha256 (hex) of the rendered prompt.
    pub prompt_hash: String,
    pub paths: Vec<EvalPath>,
    pub vote: Vote,
    pub gold: String,
    /// Whether the majority answer is right.
    pub correct: bool,
    /// Whether the first path's answer is right.
    pub first_correct: bool,
    /// Generation time of this question (prefill and decode), for the speed summary.
    #[serde(default)]
    pub generation_ms: f64,
    /// Each selection strategy's answer (`--select`); majority first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<Selection>,
}

/// Errors reading or writing a results file. One line, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum EvalFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: not an eval record: {message}")]
    BadLine { path: PathBuf, line: usize, message: String },
    #[error("{path}: holds results of template {found}, not {wanted}; use another --out")]
    OtherTemplate { path: PathBuf, found: String, wanted: String },
}

/// sha256 of the prompt, hex.
pub fn prompt_hash(prompt: &str) -> String {
    crate::hash::sha256_hex(prompt)
}

/// An open results file, positioned after its last complete record.
pub struct ResultsFile {
    path: PathBuf,
    file: File,
    /// The records already there.
    pub existing: Vec<EvalRecord>,
    /// Whether a truncated last line (from a crash) was dropped.
    pub dropped_partial_line: bool,
}

impl ResultsFile {
    /// Opens (or creates) `path` for template `template`: reads the complete records, drops a
    /// truncated last line, and checks the records are of the same template.
    pub fn open(path: &Path, template: &str) -> Result<ResultsFile, EvalFileError> {
        let io = |source| EvalFileError::Io { path: path.to_path_buf(), source };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let mut existing = Vec::new();
        let mut valid_len = 0usize;
        let mut dropped_partial_line = false;
        let mut pos = 0usize;
        let mut line_no = 0usize;
        while pos < bytes.len() {
            line_no += 1;
            let end = bytes[pos..].iter().position(|&b| b == b'\n').map(|p| pos + p);
            let line = &bytes[pos..end.unwrap_or(bytes.len())];
            let parsed = std::str::from_utf8(line)
                .map_err(|e| e.to_string())
                .and_then(|s| serde_json::from_str::<EvalRecord>(s).map_err(|e| e.to_string()));
            match (parsed, end) {
                (Ok(r), Some(e)) => {
                    existing.push(r);
                    valid_len = e + 1;
                    pos = e + 1;
                }
                // The last line, cut short by a crash: drop it, the question is run again.
                (_, None) => {
                    dropped_partial_line = true;
                    break;
                }
                (Err(_), Some(_)) if line.iter().all(u8::is_ascii_whitespace) => {
                    valid_len = end.map_or(valid_len, |e| e + 1);
                    pos = valid_len;
                }
                (Err(message), Some(_)) => {
                    return Err(EvalFileError::BadLine { path: path.to_path_buf(), line: line_no, message })
                }
            }
        }
        if let Some(r) = existing.iter().find(|r| r.template != template) {
            return Err(EvalFileError::OtherTemplate {
                path: path.to_path_buf(),
                found: r.template.clone(),
                wanted: template.to_string(),
            });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(io)?;
        file.set_len(valid_len as u64).map_err(io)?;
        let mut rf = ResultsFile { path: path.to_path_buf(), file, existing, dropped_partial_line };
        use std::io::Seek;
        rf.file.seek(std::io::SeekFrom::End(0)).map_err(io)?;
        Ok(rf)
    }

    /// Appends one record as a line and makes it durable before returning.
    pub fn append(&mut self, r: &EvalRecord) -> Result<(), EvalFileError> {
        let io = |source| EvalFileError::Io { path: self.path.clone(), source };
        let mut line = serde_json::to_string(r).map_err(|e| io(std::io::Error::other(e)))?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.flush().map_err(io)?;
        self.file.sync_data().map_err(io)?;
        Ok(())
    }
}

/// The totals `eval` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub questions: usize,
    pub paths: usize,
    pub first_correct: usize,
    pub majority_correct: usize,
    /// Questions whose vote was a tie.
    pub ties: usize,
    /// Paths with each failure kind (a path counts once per kind), in [`FailureKind::ALL`] order.
    pub failures: Vec<(FailureKind, usize)>,
    /// Answers by rule: strict, flexible, none.
    pub strict: usize,
    pub flexible: usize,
    pub none: usize,
    pub tokens: usize,
    pub generation_ms: f64,
    /// Accuracy of each selection strategy the records hold, with its 95% Wilson interval and its
    /// differences from the majority vote.
    #[serde(default)]
    pub strategies: Vec<StrategySummary>,
}

impl Summary {
    pub fn first_path_accuracy(&self) -> f64 {
        ratio(self.first_correct, self.questions)
    }
    pub fn majority_accuracy(&self) -> f64 {
        ratio(self.majority_correct, self.questions)
    }
    /// Generated tokens per second of generation time (prefill included), all paths together.
    pub fn tokens_per_second(&self) -> Option<f64> {
        (self.generation_ms > 0.0).then(|| self.tokens as f64 / (self.generation_ms / 1000.0))
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Totals over `records`.
pub fn summarize<'a>(records: impl IntoIterator<Item = &'a EvalRecord> + Clone) -> Summary {
    let mut s = Summary {
        failures: FailureKind::ALL.iter().map(|&k| (k, 0)).collect(),
        strategies: super::select::summarize(records.clone()),
        ..Summary::default()
    };
    for r in records {
        s.questions += 1;
        s.first_correct += usize::from(r.first_correct);
        s.majority_correct += usize::from(r.correct);
        s.ties += usize::from(r.vote.tie);
        s.generation_ms += r.generation_ms;
        for p in &r.paths {
            s.paths += 1;
            s.tokens += p.tokens;
            match p.answer_rule {
                AnswerRule::Strict => s.strict += 1,
                AnswerRule::Flexible => s.flexible += 1,
                AnswerRule::None => s.none += 1,
            }
            for (k, n) in s.failures.iter_mut() {
                if p.failures.iter().any(|f| f.kind == *k) {
                    *n += 1;
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::vote::vote;

    fn record(index: usize, template: &str, answer: &str, gold: &str) -> EvalRecord {
        let path = EvalPath {
            text: format!(" The answer is {answer}."),
            answer: Some(answer.to_string()),
            answer_rule: AnswerRule::Strict,
            failures: vec![],
            stop_reason: "stop_string".into(),
            stop_string: Some("\n\n".into()),
            tokens: 5,
            forced_spans: vec![],
            logprob: None,
        };
        let v = vote(&[Some(answer.to_string())]);
        EvalRecord {
            index,
            template: template.into(),
            prompt_hash: prompt_hash("p"),
            paths: vec![path],
            vote: v,
            gold: gold.into(),
            correct: answer == gold,
            first_correct: answer == gold,
            generation_ms: 10.0,
            select: vec![],
        }
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(prompt_hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn append_then_resume_drops_a_truncated_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.jsonl");
        let mut f = ResultsFile::open(&p, "t").unwrap();
        assert!(f.existing.is_empty());
        f.append(&record(0, "t", "3", "3")).unwrap();
        f.append(&record(1, "t", "4", "5")).unwrap();
        drop(f);
        let good = std::fs::read_to_string(&p).unwrap();
        assert_eq!(good.lines().count(), 2);
        // A crash in the middle of writing the third line.
        let third = serde_json::to_string(&record(2, "t", "1", "1")).unwrap();
        std::fs::write(&p, format!("{good}{}", &third[..third.len() / 2])).unwrap();
        let mut f = ResultsFile::open(&p, "t").unwrap();
        assert!(f.dropped_partial_line);
        assert_eq!(f.existing.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 1]);
        f.append(&record(2, "t", "1", "1")).unwrap();
        drop(f);
        let after = std::fs::read_to_string(&p).unwrap();
        assert_eq!(after, format!("{good}{third}\n"));
        let f = ResultsFile::open(&p, "t").unwrap();
        assert!(!f.dropped_partial_line);
        let s = summarize(&f.existing);
        assert_eq!((s.questions, s.first_correct, s.majority_correct, s.tokens, s.strict), (3, 2, 2, 15, 3));
        assert_eq!(s.tokens_per_second(), Some(15.0 / 0.03));
    }

    #[test]
    fn other_template_and_corrupt_middle_line_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        let mut f = ResultsFile::open(&p, "a").unwrap();
        f.append(&record(0, "a", "3", "3")).unwrap();
        drop(f);
        let e = ResultsFile::open(&p, "b").err().unwrap().to_string();
        assert!(e.contains("holds results of template a, not b"), "{e}");
        let good = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, format!("garbage\n{good}")).unwrap();
        let e = ResultsFile::open(&p, "a").err().unwrap().to_string();
        assert!(e.starts_with(&format!("{}:1: not an eval record", p.display())), "{e}");
    }
}
