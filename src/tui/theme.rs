//! Styles. With `NO_COLOR` set the theme uses only modifiers (bold, underline, reverse, …) and the
//! failure highlights also carry text markers (`⟦rep …⟧`), so every kind stays distinguishable.

use ratatui::style::{Color, Modifier, Style};

use crate::lab::detect::FailureKind;
use crate::lab::labels::Label;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
    pub fn from_env() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self { color: !no_color }
    }

    pub fn color() -> Self {
        Self { color: true }
    }

    pub fn no_color() -> Self {
        Self { color: false }
    }

    /// Whether failure spans are wrapped in `⟦tag …⟧` markers.
    pub fn markers(&self) -> bool {
        !self.color
    }

    fn pick(&self, color: Style, plain: Style) -> Style {
        if self.color {
            color
        } else {
            plain
        }
    }

    pub fn base(&self) -> Style {
        Style::default()
    }

    /// The end of the prompt shown above a path's text.
    pub fn prompt_text(&self) -> Style {
        self.pick(
            Style::default().fg(Color::DarkGray).add_modifier(Modifier::ITALIC),
            Style::default().add_modifier(Modifier::DIM | Modifier::ITALIC),
        )
    }

    pub fn generated(&self) -> Style {
        Style::default()
    }

    pub fn failure(&self, kind: FailureKind) -> Style {
        match kind {
            FailureKind::Repetition => self.pick(
                Style::default().fg(Color::Black).bg(Color::Magenta),
                Style::default().add_modifier(Modifier::REVERSED),
            ),
            FailureKind::QuestionEcho => self.pick(
                Style::default().fg(Color::White).bg(Color::Blue),
                Style::default().add_modifier(Modifier::UNDERLINED),
            ),
            FailureKind::MissingAnswerMarker => self.pick(
                Style::default().fg(Color::Black).bg(Color::Yellow),
                Style::default().add_modifier(Modifier::BOLD | Modifier::ITALIC),
            ),
            FailureKind::RunawayQuestion => self.pick(
                Style::default().fg(Color::LightYellow).bg(Color::DarkGray).add_modifier(Modifier::ITALIC),
                Style::default().add_modifier(Modifier::CROSSED_OUT),
            ),
            FailureKind::NoAnswer => self.pick(
                Style::default().fg(Color::Black).bg(Color::LightRed),
                Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED),
            ),
            FailureKind::ArithmeticError => self.pick(
                Style::default().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
                Style::default().add_modifier(Modifier::UNDERLINED | Modifier::BOLD),
            ),
        }
    }

    /// A label chip in a pane: detected but unreviewed, confirmed, or overruled.
    pub fn label(&self, label: Label, effective: bool, reviewed: bool) -> Style {
        let mut s = if effective {
            match label {
                Label::Good => self.pick(Style::default().fg(Color::Green), Style::default()),
                _ => self.pick(Style::default().fg(Color::LightRed), Style::default()),
            }
        } else {
            Style::default().add_modifier(Modifier::CROSSED_OUT | Modifier::DIM)
        };
        if reviewed {
            s = s.add_modifier(Modifier::BOLD);
        }
        s
    }

    pub fn right(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Green).add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::BOLD),
        )
    }

    pub fn wrong(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::BOLD),
        )
    }

    pub fn title(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    pub fn border(&self, focused: bool) -> Style {
        match (focused, self.color) {
            (true, true) => Style::default().fg(Color::Cyan),
            (true, false) => Style::default().add_modifier(Modifier::BOLD),
            (false, _) => Style::default(),
        }
    }

    pub fn selected(&self) -> Style {
        self.pick(Style::default().fg(Color::Black).bg(Color::Cyan), Style::default().add_modifier(Modifier::REVERSED))
    }

    pub fn dim(&self) -> Style {
        self.pick(Style::default().fg(Color::DarkGray), Style::default().add_modifier(Modifier::DIM))
    }

    pub fn key(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::BOLD),
        )
    }

    pub fn status_error(&self) -> Style {
        self.pick(Style::default().fg(Color::LightRed), Style::default().add_modifier(Modifier::BOLD))
    }

    pub fn diff_add(&self) -> Style {
        self.pick(Style::default().fg(Color::Green), Style::default().add_modifier(Modifier::BOLD))
    }

    pub fn diff_del(&self) -> Style {
        self.pick(Style::default().fg(Color::Red), Style::default().add_modifier(Modifier::CROSSED_OUT))
    }

    /// A token coloured by its probability (`p`): plain when the model was sure, then blue, ochre,
    /// orange, red as it was less so. Mid-tone 256-colour indices, so the ramp reads on dark and light
    /// backgrounds alike. Without colour the low ones are tagged instead (see [`LOW_P`]).
    pub fn token_prob(&self, p: f64) -> Style {
        if !self.color {
            return Style::default();
        }
        match PROB_RAMP.iter().find(|(floor, _)| p >= *floor) {
            Some((_, None)) => Style::default(),
            Some((_, Some(c))) => Style::default().fg(Color::Indexed(*c)),
            None => Style::default().fg(Color::Indexed(160)).add_modifier(Modifier::BOLD),
        }
    }

    /// Text the calculator wrote (`c`): right by construction, not the model's.
    pub fn forced(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Indexed(29)).add_modifier(Modifier::ITALIC | Modifier::UNDERLINED),
            Style::default().add_modifier(Modifier::ITALIC | Modifier::UNDERLINED),
        )
    }

    /// The token under the token cursor.
    pub fn token_cursor(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )
    }
}

/// Probability floors of the token ramp and their colour (None: plain); below the last, bold red.
pub const PROB_RAMP: [(f64, Option<u8>); 4] = [(0.9, None), (0.5, Some(31)), (0.2, Some(136)), (0.05, Some(166))];

/// Below this probability a token is tagged `⟦p=0.03 …⟧` when there is no colour.
pub const LOW_P: f64 = 0.1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_kind_has_its_own_style_with_and_without_colour() {
        for theme in [Theme::color(), Theme::no_color()] {
            let styles: Vec<Style> = FailureKind::ALL.iter().map(|k| theme.failure(*k)).collect();
            for i in 0..styles.len() {
                for j in i + 1..styles.len() {
                    assert_ne!(styles[i], styles[j], "kinds {i} and {j} share a style (color={})", theme.color);
                }
            }
        }
    }

    #[test]
    fn the_probability_ramp_darkens_as_the_model_is_less_sure() {
        let t = Theme::color();
        let styles: Vec<Style> = [0.95, 0.6, 0.3, 0.1, 0.01].iter().map(|p| t.token_prob(*p)).collect();
        assert_eq!(styles[0], Style::default(), "sure tokens stay plain");
        for i in 0..styles.len() {
            for j in i + 1..styles.len() {
                assert_ne!(styles[i], styles[j], "buckets {i} and {j}");
            }
        }
        assert_eq!(Theme::no_color().token_prob(0.01), Style::default());
    }

    #[test]
    fn no_color_theme_uses_no_colours() {
        let t = Theme::no_color();
        for k in FailureKind::ALL {
            let s = t.failure(k);
            assert_eq!((s.fg, s.bg), (None, None));
        }
        assert_eq!(t.prompt_text().fg, None);
        assert_eq!(t.selected().bg, None);
    }
}
