//! Settings remembered between launches: `settings.yaml` in cotscope's folder of the platform's config
//! directory (`$XDG_CONFIG_HOME/cotscope` or `~/.config/cotscope` on Linux), written atomically.

use std::path::{Path, PathBuf};

use super::settings::Settings;

/// Where the settings live; None where the platform has no config directory.
pub fn settings_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("cotscope").join("settings.yaml"))
}

/// The remembered settings; None when there are none yet. A file that cannot be read says why, naming it.
pub fn load(path: &Path) -> Result<Option<Settings>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let s: Settings =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.to_string().replace('\n', " ")))?;
    s.check().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(s))
}

pub fn save(path: &Path, settings: &Settings) -> Result<(), String> {
    let yaml = serde_yaml::to_string(settings).map_err(|e| e.to_string())?;
    let text = format!("# cotscope's workbench settings, written when they change (delete to reset)\n{yaml}");
    crate::fsutil::write_atomic(path, text.as_bytes())
        .map_err(|e| format!("saving settings to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::settings::Field;

    #[test]
    fn settings_round_trip_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cotscope/settings.yaml");
        assert_eq!(load(&p), Ok(None));
        let mut s = Settings::default();
        s.apply_edit(Field::Seed, "7").unwrap();
        s.apply_edit(Field::Temperature, "0").unwrap();
        s.apply_edit(Field::TopP, "0.9").unwrap();
        s.apply_edit(Field::Paths, "5").unwrap();
        s.apply_edit(Field::Stop, "\\n\\n|Q:").unwrap();
        save(&p, &s).unwrap();
        assert_eq!(load(&p), Ok(Some(s)));
        std::fs::write(
            &p,
            "sampling: {temperature: 0.5, top_k: null, top_p: null, seed: 1, max_new_tokens: 0}\npaths: 2\n",
        )
        .unwrap();
        let e = load(&p).unwrap_err();
        assert!(e.contains("settings.yaml") && e.contains("max new tokens"), "{e}");
    }
}
