//! Copying text: the system clipboard through arboard, else the OSC 52 escape sequence, which most
//! terminals (and tmux with `set-clipboard on`) turn into a clipboard write even over SSH.

use std::io::Write;

use base64::Engine as _;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClipboardOutcome {
    /// The system clipboard has the text.
    System,
    /// No system clipboard (the reason); the text went out as OSC 52.
    Osc52 { reason: String },
}

/// Holds the system clipboard for the life of the UI (on X11 the text lives as long as its owner).
pub struct Clipboard {
    system: Result<arboard::Clipboard, String>,
}

impl Clipboard {
    pub fn new() -> Self {
        // Without a display server arboard can only fail (after trying to connect); say why plainly.
        if cfg!(target_os = "linux")
            && std::env::var_os("DISPLAY").is_none()
            && std::env::var_os("WAYLAND_DISPLAY").is_none()
        {
            return Self { system: Err("no DISPLAY".to_string()) };
        }
        Self { system: arboard::Clipboard::new().map_err(|e| one_line(&e.to_string())) }
    }

    /// Copies `text`, falling back to OSC 52 written to `term`.
    pub fn copy(&mut self, text: &str, term: &mut dyn Write) -> std::io::Result<ClipboardOutcome> {
        let reason = match self.system.as_mut() {
            Ok(cb) => match cb.set_text(text.to_string()) {
                Ok(()) => return Ok(ClipboardOutcome::System),
                Err(e) => one_line(&e.to_string()),
            },
            Err(e) => e.clone(),
        };
        term.write_all(osc52(text).as_bytes())?;
        term.flush()?;
        Ok(ClipboardOutcome::Osc52 { reason })
    }
}

impl Default for Clipboard {
    fn default() -> Self {
        Self::new()
    }
}

/// The OSC 52 "set clipboard" sequence for `text`.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", base64::engine::general_purpose::STANDARD.encode(text))
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("unavailable").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_encodes_the_text() {
        assert_eq!(osc52("Q: a\nA: b"), "\x1b]52;c;UTogYQpBOiBi\x07");
    }
}
