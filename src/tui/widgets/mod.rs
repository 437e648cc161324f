//! One module per panel of the screen; each draws from `&App` only.

pub mod experiments;
pub mod footer;
pub mod header;
pub mod inspector;
pub mod overlays;
pub mod panes;
pub mod prompt;
pub mod questions;
pub mod settings;
pub mod summary;
pub mod tree;

use ratatui::layout::Rect;
use ratatui::widgets::{Block, BorderType, Borders};

use super::theme::Theme;

/// A panel frame; the focused one is drawn thick.
pub fn panel(theme: &Theme, title: String, focused: bool) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused { BorderType::Thick } else { BorderType::Plain })
        .border_style(theme.border(focused))
        .title(title)
}

/// A rectangle of `w`x`h` centred in `area` (clipped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}
