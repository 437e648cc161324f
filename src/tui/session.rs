//! Saved sessions: `sessions/<timestamp>-q<index>-<template>.yaml`, everything needed to see a generation
//! again exactly as it was and to run it again (the prompts as sent, sampling and seed, the model's
//! config hash), plus the human's labels and notes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::{ModelInfo, SamplingParams, StopReason};

use super::labels::{Label, LabelState, Labels};
use super::run::{CompareMode, Pane, PromptSpec, Run};
use crate::lab::answer::AnswerRule;
use crate::lab::detect::Failure;

/// Format version written in every file.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub version: u32,
    /// Local time of saving, RFC 3339.
    pub created: String,
    /// Model id or path, sha256 of its config.json, size and dtype.
    pub model: ModelInfo,
    pub mode: CompareMode,
    pub question: SessionQuestion,
    /// Prompts as sent: template name, sha256 of the rendered prompt, stop strings, the prompt itself.
    pub templates: Vec<PromptSpec>,
    pub sampling: SamplingParams,
    pub paths: Vec<SessionPath>,
    pub vote: SessionVote,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionQuestion {
    /// 0-based row of GSM8K test.jsonl.
    pub index: usize,
    pub gold: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionPath {
    /// Path index within its template's request (the sampler stream it used).
    pub path: usize,
    pub template: String,
    pub text: String,
    pub token_ids: Vec<u32>,
    /// `max_tokens`, `eos`, `stop_string` or `cancelled`.
    pub stop_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_string: Option<String>,
    pub answer: Option<String>,
    pub answer_rule: AnswerRule,
    pub correct: Option<bool>,
    /// What the detectors found.
    pub failures: Vec<Failure>,
    /// Labels the detectors or the human set.
    pub labels: Vec<SessionLabel>,
    #[serde(default)]
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionLabel {
    pub label: Label,
    /// Pre-filled by a detector.
    pub detected: bool,
    /// The human's decision: true confirmed/added, false overruled, null not reviewed.
    pub human: Option<bool>,
    /// What counts: the human's word, else the detector's.
    pub value: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionVote {
    pub counts: Vec<VoteCount>,
    pub majority: Option<String>,
    pub tie: bool,
    pub agreement: f64,
    pub voters: usize,
    /// Whether the majority matches gold (null without a majority).
    pub correct: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteCount {
    pub answer: String,
    pub count: usize,
}

/// A saved session in the `o` list.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionEntry {
    pub path: PathBuf,
    pub name: String,
}

impl Session {
    /// The session of `run` (without `created`, which the saver stamps).
    pub fn from_run(run: &Run, model: &ModelInfo) -> Session {
        let vote = run.vote();
        let paths = run
            .panes
            .iter()
            .map(|p| SessionPath {
                path: p.path,
                template: run.prompts.get(p.prompt).map(|s| s.template.clone()).unwrap_or_default(),
                text: p.text.clone(),
                token_ids: p.token_ids.clone(),
                stop_reason: p.stop.as_ref().map_or("cancelled", |s| s.as_str()).to_string(),
                stop_string: p.stop.as_ref().and_then(|s| s.stop_string()).map(str::to_string),
                answer: p.answer.clone(),
                answer_rule: p.answer_rule.clone(),
                correct: run.correct(p.answer.as_deref()),
                failures: p.failures.clone(),
                labels: p
                    .labels
                    .touched()
                    .map(|(label, s)| SessionLabel {
                        label,
                        detected: s.detected,
                        human: s.human,
                        value: s.effective(),
                    })
                    .collect(),
                note: p.note.clone(),
            })
            .collect();
        Session {
            version: VERSION,
            created: String::new(),
            model: model.clone(),
            mode: run.mode,
            question: SessionQuestion { index: run.question, gold: run.gold.clone(), text: run.question_text.clone() },
            templates: run.prompts.clone(),
            sampling: run.sampling.clone(),
            paths,
            vote: SessionVote {
                counts: vote.counts.iter().map(|(a, c)| VoteCount { answer: a.clone(), count: *c }).collect(),
                correct: vote.majority.as_deref().map(|m| crate::lab::answer::matches_gold(m, &run.gold)),
                majority: vote.majority,
                tie: vote.tie,
                agreement: vote.agreement,
                voters: vote.voters,
            },
        }
    }

    /// The run this session shows, exactly as saved (not running).
    pub fn to_run(&self, id: u64, saved_to: Option<PathBuf>) -> Result<Run, String> {
        let mut panes = Vec::new();
        for p in &self.paths {
            let prompt = self.templates.iter().position(|t| t.template == p.template).unwrap_or(0);
            let stop = stop_reason(&p.stop_reason, p.stop_string.as_deref())?;
            let mut labels = Labels::default();
            for l in &p.labels {
                labels.set(l.label, LabelState { detected: l.detected, human: l.human });
            }
            panes.push(Pane::restored(
                prompt,
                p.path,
                p.text.clone(),
                p.token_ids.clone(),
                stop,
                p.failures.clone(),
                p.answer.clone(),
                p.answer_rule.clone(),
                labels,
                p.note.clone(),
            ));
        }
        Ok(Run {
            id,
            mode: self.mode,
            question: self.question.index,
            question_text: self.question.text.clone(),
            gold: self.question.gold.clone(),
            prompts: self.templates.clone(),
            sampling: self.sampling.clone(),
            panes,
            running: false,
            cancelling: false,
            error: None,
            stats: Vec::new(),
            model: Some(self.model.clone()),
            saved_to,
        })
    }

    /// `<timestamp>-q<index>-<template>.yaml`, the template part made safe for a file name.
    pub fn file_name(&self, timestamp: &str) -> String {
        let names: Vec<&str> = self.templates.iter().map(|t| t.template.as_str()).collect();
        let safe: String = names
            .join("+")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.+".contains(c) { c } else { '_' })
            .take(80)
            .collect();
        format!("{timestamp}-q{}-{}.yaml", self.question.index, if safe.is_empty() { "none" } else { &safe })
    }

    pub fn to_yaml(&self) -> Result<String, String> {
        serde_yaml::to_string(self).map_err(|e| e.to_string())
    }
}

fn stop_reason(name: &str, stop: Option<&str>) -> Result<StopReason, String> {
    StopReason::from_name(name, stop).ok_or_else(|| format!("unknown stop_reason `{name}`"))
}

/// Writes `session` atomically: to `existing` if given (saving again), else to a new file in `dir` named
/// after `now`. Returns the path written.
pub fn save(
    dir: &Path,
    session: &mut Session,
    existing: Option<&Path>,
    now: chrono::DateTime<chrono::Local>,
) -> Result<PathBuf, SessionError> {
    session.created = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let path = match existing {
        Some(p) => p.to_path_buf(),
        None => {
            let stamp = now.format("%Y%m%d-%H%M%S").to_string();
            let mut p = dir.join(session.file_name(&stamp));
            let mut n = 2;
            while p.exists() {
                p = dir.join(session.file_name(&format!("{stamp}-{n}")));
                n += 1;
            }
            p
        }
    };
    let yaml = session.to_yaml().map_err(|msg| SessionError::Parse { path: path.display().to_string(), msg })?;
    crate::fsutil::write_atomic(&path, yaml.as_bytes())
        .map_err(|source| SessionError::Io { path: path.display().to_string(), source })?;
    Ok(path)
}

pub fn load(path: &Path) -> Result<Session, SessionError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| SessionError::Io { path: path.display().to_string(), source })?;
    let s: Session = serde_yaml::from_str(&text)
        .map_err(|e| SessionError::Parse { path: path.display().to_string(), msg: e.to_string() })?;
    if s.version != VERSION {
        return Err(SessionError::Parse {
            path: path.display().to_string(),
            msg: format!("session version {} (this cotscope reads {VERSION})", s.version),
        });
    }
    Ok(s)
}

/// Session files in `dir`, newest first (names start with their timestamp). A missing dir is empty.
pub fn list(dir: &Path) -> Result<Vec<SessionEntry>, SessionError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SessionError::Io { path: dir.display().to_string(), source }),
    };
    let mut out: Vec<(std::time::SystemTime, SessionEntry)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let mtime = std::fs::metadata(&p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
            Some((mtime, SessionEntry { path: p, name }))
        })
        .collect();
    out.sort_by(|a, b| b.1.name.cmp(&a.1.name).then(b.0.cmp(&a.0)));
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::action::Action;
    use crate::tui::app::tests::{finished_app, model_info};
    use chrono::TimeZone;

    fn annotated_session() -> Session {
        let mut a = finished_app();
        a.update(Action::FocusPane(1));
        a.update(Action::ToggleLabel(1));
        a.update(Action::ToggleLabel(5));
        a.update(Action::EditNote);
        for c in "loops: \"quoted\"\nand a 2nd line".chars() {
            a.update(Action::Input(c));
        }
        a.update(Action::Submit);
        Session::from_run(a.run.as_ref().unwrap(), &model_info())
    }

    #[test]
    fn save_load_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = annotated_session();
        let now = chrono::Local.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap();
        let path = save(dir.path(), &mut s, None, now).unwrap();
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            format!("20250304-050607-q1-{}.yaml", s.templates[0].template)
        );
        let back = load(&path).unwrap();
        assert_eq!(back, s);
        // The file holds what the issue lists.
        let y = std::fs::read_to_string(&path).unwrap();
        for key in [
            "config_hash:",
            "prompt_sha256:",
            "index: 1",
            "gold: '3'",
            "seed: 42",
            "token_ids:",
            "stop_reason: stop_string",
            "answer: '3'",
            "failures:",
            "labels:",
            "note:",
            "vote:",
            "majority: '3'",
        ] {
            assert!(y.contains(key), "{key} in\n{y}");
        }
        // Opening shows it as saved: the run rebuilt from the file saves to the same session.
        let run = back.to_run(9, Some(path.clone())).unwrap();
        let mut again = Session::from_run(&run, &model_info());
        again.created = back.created.clone();
        assert_eq!(again, back);
        // A second save in the same second gets its own file; saving again to `existing` overwrites.
        let p2 = save(dir.path(), &mut s.clone(), None, now).unwrap();
        assert_ne!(p2, path);
        assert_eq!(save(dir.path(), &mut s, Some(&path), now).unwrap(), path);
    }

    #[test]
    fn list_is_newest_first_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = annotated_session();
        for (d, h) in [(1, 9), (3, 1), (2, 23)] {
            save(dir.path(), &mut s, None, chrono::Local.with_ymd_and_hms(2025, 1, d, h, 0, 0).unwrap()).unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let names: Vec<String> = list(dir.path()).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names.len(), 3);
        assert!(names[0].starts_with("20250103-010000") && names[2].starts_with("20250101-090000"), "{names:?}");
        assert!(list(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn bad_files_give_one_line_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.yaml");
        std::fs::write(&p, "version: 1\nmodel: [").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("broken.yaml") && !e.contains('\n'), "{e}");
        let mut s = annotated_session();
        s.version = 99;
        std::fs::write(&p, serde_yaml::to_string(&s).unwrap()).unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("version 99"));
        let mut s = annotated_session();
        s.paths[0].stop_reason = "bored".into();
        assert!(s.to_run(1, None).is_err());
    }
}
