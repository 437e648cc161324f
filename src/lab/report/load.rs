//! Reading eval results files for a report, read-only: a file being written by a running `eval` can be
//! reported on, and nothing is ever truncated or rewritten here.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::lab::evalfile::EvalRecord;

use super::settings::{compare, Comparison, Scope};
use super::ReportError;

/// One results file: one template run over some questions.
#[derive(Clone, Debug)]
pub struct Run {
    pub path: PathBuf,
    /// Its records, in question order.
    pub records: Vec<EvalRecord>,
    /// The settings as recorded on its first line (`settings` object), if the file records any.
    pub settings: Option<serde_json::Value>,
    /// Things the reader should know (a dropped partial line, lines recording other settings).
    pub notes: Vec<String>,
}

impl Run {
    /// The template of its records (files hold one template; see `ResultsFile`).
    pub fn template(&self) -> &str {
        self.records.first().map_or("", |r| r.template.as_str())
    }
}

/// Reads `path`. Blank lines are skipped and a last line cut short (a run still writing, or a crash) is
/// left out with a note; any other unreadable line, a second template or a repeated question is an error.
pub fn read_run(path: &Path) -> Result<Run, ReportError> {
    let text = std::fs::read(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
    let bad = |line: usize, message: String| ReportError::BadLine { path: path.to_path_buf(), line, message };
    let mut run = Run { path: path.to_path_buf(), records: Vec::new(), settings: None, notes: Vec::new() };
    let mut seen = HashSet::new();
    let mut settings_lines: Vec<Option<serde_json::Value>> = Vec::new();
    let mut lines = text.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let last = lines.peek().is_none();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = std::str::from_utf8(line).map_err(|e| e.to_string()).and_then(|s| {
            let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
            let settings = v.get("settings").filter(|s| !s.is_null()).cloned();
            let r: EvalRecord = serde_json::from_value(v).map_err(|e| e.to_string())?;
            Ok((r, settings))
        });
        let (r, settings) = match parsed {
            Ok(x) => x,
            // No newline after it: cut short while being written.
            Err(_) if last => {
                run.notes.push(format!(
                    "{}: left out line {} (cut short; a run still writing?)",
                    path.display(),
                    i + 1
                ));
                break;
            }
            Err(message) => return Err(bad(i + 1, message)),
        };
        if let Some(first) = run.records.first() {
            if first.template != r.template {
                return Err(bad(
                    i + 1,
                    format!("template {} in a file of template {} (one template per file)", r.template, first.template),
                ));
            }
        }
        if !seen.insert(r.index) {
            return Err(bad(i + 1, format!("question {} appears twice", r.index)));
        }
        settings_lines.push(settings);
        run.records.push(r);
    }
    if run.records.is_empty() {
        return Err(ReportError::Empty { path: path.to_path_buf() });
    }
    run.settings = settings_lines.first().cloned().flatten();
    let first = run.settings.as_ref();
    if settings_lines.iter().any(|s| compare(first, s.as_ref(), Scope::WithinFile) != Comparison::Same && s.is_some()) {
        run.notes.push(format!("{}: its lines record different settings; the first line's are shown", path.display()));
    }
    run.records.sort_by_key(|r| r.index);
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::report::tests::record;

    fn line(index: usize, template: &str, settings: Option<serde_json::Value>) -> String {
        let mut v = serde_json::to_value(record(index, template, "1", &[Some("1")], "eos")).unwrap();
        if let Some(s) = settings {
            v["settings"] = s;
        }
        v.to_string()
    }

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.jsonl");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_in_question_order_skips_blanks_and_a_cut_last_line() {
        let s = serde_json::to_value(crate::lab::settings::tests::settings()).unwrap();
        let cut = line(3, "t", None);
        let text = format!("{}\n\n{}\n{}", line(2, "t", Some(s.clone())), line(0, "t", Some(s.clone())), &cut[..20]);
        let (_d, p) = write(&text);
        let before = std::fs::read(&p).unwrap();
        let run = read_run(&p).unwrap();
        assert_eq!(run.records.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(run.settings, Some(s));
        assert_eq!(run.notes.len(), 1);
        assert!(run.notes[0].contains("left out line 4"), "{:?}", run.notes);
        assert_eq!(std::fs::read(&p).unwrap(), before, "a report never changes its input");
    }

    #[test]
    fn lines_with_other_settings_are_noted() {
        let s = |t: f64| {
            let mut v = crate::lab::settings::tests::settings();
            v.sampling.temperature = t;
            Some(serde_json::to_value(v).unwrap())
        };
        let (_d, p) = write(&format!("{}\n{}\n", line(0, "t", s(0.7)), line(1, "t", s(0.7))));
        assert!(read_run(&p).unwrap().notes.is_empty());
        let (_d, p) = write(&format!("{}\n{}\n", line(0, "t", s(0.7)), line(1, "t", s(0.0))));
        assert!(read_run(&p).unwrap().notes[0].contains("different settings"));
    }

    #[test]
    fn bad_files_are_one_line_errors_naming_the_line() {
        let (_d, p) = write(&format!("{}\nnot json\n{}\n", line(0, "t", None), line(1, "t", None)));
        let e = read_run(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2: not an eval record", p.display())), "{e}");
        let (_d, p) = write(&format!("{}\n{}\n", line(0, "t", None), line(0, "t", None)));
        assert!(read_run(&p).unwrap_err().to_string().ends_with(":2: not an eval record: question 0 appears twice"));
        let (_d, p) = write(&format!("{}\n{}\n", line(0, "a", None), line(1, "b", None)));
        assert!(read_run(&p).unwrap_err().to_string().contains("template b in a file of template a"));
        let (_d, p) = write("\n");
        assert_eq!(read_run(&p).unwrap_err().to_string(), format!("{}: no eval records in it", p.display()));
        let e = read_run(Path::new("/nonexistent/x.jsonl")).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/x.jsonl: ") && !e.contains('\n'), "{e}");
    }
}
