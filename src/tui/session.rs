//! Saved sessions: `sessions/<timestamp>-q<index>-<template>.yaml`, the lab's run record (everything
//! needed to see a generation again exactly as it was and to run it again: the prompts as sent, sampling
//! and seed, the model's config hash, the human's labels and notes), written as compact YAML.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::ModelInfo;
use crate::lab::record::RunRecord;

use super::generation::Generation;

/// Format version written in every file. 2: path numbers as on screen, `tokens`, `cotscope_version`.
pub const VERSION: u32 = 2;

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
    /// The cotscope that wrote it.
    #[serde(default)]
    pub cotscope_version: String,
    #[serde(flatten)]
    pub run: RunRecord,
}

/// A saved session in the `o` list, with what tells it apart.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionEntry {
    pub path: PathBuf,
    pub name: String,
    /// One line: question, template(s), model, date, label counts, the first note; or why it is unreadable.
    pub summary: String,
}

impl Session {
    /// The session of `generation` (without `created`, which the saver stamps).
    pub fn from_generation(generation: &Generation, model: &ModelInfo) -> Session {
        Session {
            version: VERSION,
            created: String::new(),
            cotscope_version: crate::lab::settings::VERSION.to_string(),
            run: generation.record(model),
        }
    }

    /// The generation this session shows, exactly as saved (not running).
    pub fn to_generation(&self, id: u64, saved_to: Option<PathBuf>) -> Result<Generation, String> {
        Generation::restored(id, &self.run, saved_to)
    }

    /// `<timestamp>-q<index>-<template>.yaml`, the template part made safe for a file name.
    pub fn file_name(&self, timestamp: &str) -> String {
        let names: Vec<&str> = self.run.templates.iter().map(|t| t.template.as_str()).collect();
        let safe: String = names
            .join("+")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.+".contains(c) { c } else { '_' })
            .take(80)
            .collect();
        format!("{timestamp}-q{}-{}.yaml", self.run.question.index, if safe.is_empty() { "none" } else { &safe })
    }

    pub fn to_yaml(&self) -> Result<String, String> {
        let v = serde_yaml::to_value(self).map_err(|e| e.to_string())?;
        Ok(super::compact_yaml::to_string(&v))
    }

    /// The line the session list shows.
    pub fn summary(&self) -> String {
        let r = &self.run;
        let templates: Vec<&str> = r.templates.iter().map(|t| t.template.as_str()).collect();
        let (mut confirmed, mut overruled) = (0, 0);
        for l in r.paths.iter().flat_map(|p| &p.labels) {
            match l.human {
                Some(true) => confirmed += 1,
                Some(false) => overruled += 1,
                None => {}
            }
        }
        let date = self.created.get(..16).unwrap_or(&self.created).replace('T', " ");
        let mut s = format!(
            "q{} · {} · {} · {date} · {} path(s), labels {confirmed}✓ {overruled}✗",
            r.question.index,
            templates.join("+"),
            r.model.id,
            r.paths.len()
        );
        if let Some(note) = r.paths.iter().map(|p| p.note.trim()).find(|n| !n.is_empty()) {
            s.push_str(&format!(" · “{}”", note.lines().next().unwrap_or_default()));
        }
        s
    }
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
    let parse = |msg: String| SessionError::Parse { path: path.display().to_string(), msg: msg.replace('\n', " ") };
    let s: Session = serde_yaml::from_str(&text).map_err(|e| parse(e.to_string()))?;
    if !(1..=VERSION).contains(&s.version) {
        return Err(parse(format!("session version {} (this cotscope reads 1 to {VERSION})", s.version)));
    }
    Ok(s)
}

/// Session files in `dir`, newest first (names start with their timestamp), each with its summary. A
/// missing dir is empty.
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
            let summary = match load(&p) {
                Ok(s) => s.summary(),
                Err(e) => format!("unreadable: {e}"),
            };
            Some((mtime, SessionEntry { path: p, name, summary }))
        })
        .collect();
    out.sort_by(|a, b| b.1.name.cmp(&a.1.name).then(b.0.cmp(&a.0)));
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::tests::{finished_app, model_info};
    use crate::tui::intent::Intent;
    use chrono::TimeZone;

    fn annotated_session() -> Session {
        let mut a = finished_app();
        a.update(Intent::FocusPane(1));
        a.update(Intent::ToggleLabel(1));
        a.update(Intent::ToggleLabel(5));
        a.update(Intent::EditNote);
        for c in "loops: \"quoted\"\nand a 2nd line".chars() {
            a.update(Intent::Input(c));
        }
        a.update(Intent::Submit);
        Session::from_generation(a.generation.as_ref().unwrap(), &model_info())
    }

    #[test]
    fn save_load_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = annotated_session();
        let now = chrono::Local.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap();
        let path = save(dir.path(), &mut s, None, now).unwrap();
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            format!("20250304-050607-q1-{}.yaml", s.run.templates[0].template)
        );
        let back = load(&path).unwrap();
        assert_eq!(back, s);
        // The file holds what the issue lists.
        let y = std::fs::read_to_string(&path).unwrap();
        for key in [
            "config_hash:",
            "prompt_sha256:",
            "index: 1",
            "gold: \"3\"",
            "seed: 42",
            "token_ids: [",
            "stop_reason: \"stop_string\"",
            "stop: [\"",
            "answer: \"3\"",
            "failures:",
            "labels:",
            "note:",
            "vote:",
            "majority: \"3\"",
            "cotscope_version:",
            "- path: 2\n",
        ] {
            assert!(y.contains(key), "{key} in\n{y}");
        }
        // Opening shows it as saved: the run rebuilt from the file saves to the same session.
        let run = back.to_generation(9, Some(path.clone())).unwrap();
        let mut again = Session::from_generation(&run, &model_info());
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
        // Each entry says what the session holds.
        let first = &list(dir.path()).unwrap()[0];
        let template = &s.run.templates[0].template;
        assert_eq!(
            first.summary,
            format!("q1 · {template} · test-model · 2025-01-03 01:00 · 2 path(s), labels 2✓ 0✗ · “loops: \"quoted\"”")
        );
        std::fs::write(dir.path().join("29990101-000000-q1-x.yaml"), "version: [").unwrap();
        let top = &list(dir.path()).unwrap()[0];
        assert!(top.summary.starts_with("unreadable: "), "{}", top.summary);
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
        s.run.paths[0].stop_reason = "bored".into();
        assert!(s.to_generation(1, None).is_err());
        // A path of a template the session does not list is an error, not the first prompt.
        let mut s = annotated_session();
        s.run.paths[1].template = "gone".into();
        let e = s.to_generation(1, None).err().unwrap();
        assert_eq!(e, "path 2 names template `gone`, which the session does not list");
    }
}
