//! Inside a path: colouring tokens by probability (`p`), the token cursor and its inspector (`v`),
//! branching at a token (`b`) and the path tree (`T`).

use super::super::command::Command;
use super::super::generation::BranchChoice;
use super::{App, Focus};

/// What the token keys changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenView {
    /// `p`: every pane's tokens coloured by their probability.
    pub probs: bool,
    /// `T`: the path tree beside the panes.
    pub tree: bool,
    /// `v`: the token cursor on the focused pane.
    pub cursor: Option<TokenCursor>,
    /// The terminal's size (columns, rows), to move the cursor by screen lines.
    pub screen: Option<(u16, u16)>,
}

/// The token cursor on the focused pane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenCursor {
    /// Index of the token.
    pub token: usize,
    /// The branch picker is open on this row: an alternative, or one past them (resample).
    pub pick: Option<usize>,
}

impl App {
    pub(super) fn toggle_probs(&mut self) {
        self.tokens.probs = !self.tokens.probs;
        let known = self.generation.as_ref().is_some_and(|g| g.panes.iter().any(|p| p.mean_logprob().is_some()));
        if self.tokens.probs && !known {
            self.set_status("no token probabilities in these paths (they come with every new generation)");
        }
    }

    pub(super) fn toggle_tree(&mut self) {
        self.tokens.tree = !self.tokens.tree;
    }

    /// `v`: the cursor on the focused path's last token (or leave it).
    pub(super) fn enter_tokens(&mut self) {
        if self.tokens.cursor.take().is_some() {
            return;
        }
        let Some(p) = self.focused_pane() else {
            return self.set_error("no path yet: Enter generates");
        };
        let Some(last) = visible_tokens(p).last().copied() else {
            return self.set_error("this path has no tokens yet");
        };
        self.focus = Focus::Paths;
        self.tokens.cursor = Some(TokenCursor { token: last, pick: None });
        self.set_status("token cursor: ←→ token, ↑↓ line, b branch here, Esc leaves");
    }

    pub(super) fn leave_tokens(&mut self) {
        match self.tokens.cursor.as_mut() {
            Some(c) if c.pick.is_some() => c.pick = None,
            _ => self.tokens.cursor = None,
        }
    }

    /// ←→: the previous / next token that shows text.
    pub(super) fn move_token(&mut self, d: isize) {
        let Some(p) = self.focused_pane() else { return };
        let shown = visible_tokens(p);
        let Some(c) = self.tokens.cursor.as_mut() else { return };
        c.pick = None;
        let at = shown.iter().position(|&t| t >= c.token).unwrap_or(shown.len().saturating_sub(1));
        if let Some(&t) = shown.get((at as isize + d).clamp(0, shown.len() as isize - 1) as usize) {
            c.token = t;
        }
    }

    /// ↑↓: the token nearest the same column on the screen line above / below.
    pub(super) fn move_token_line(&mut self, d: isize) {
        let Some(cur) = self.tokens.cursor.as_ref().map(|c| c.token) else { return };
        let Some(width) = self.tokens.screen.and_then(|s| super::super::draw::focused_pane_width(self, s)) else {
            // No size known yet (no frame drawn): a screen line is about a pane's width of tokens.
            return self.move_token(d * 8);
        };
        let positions = super::super::widgets::panes::token_positions(self, width);
        let Some(&Some((line, col))) = positions.get(cur) else { return };
        let mut best: Option<(usize, usize, usize)> = None; // (line distance, column distance, token)
        for (t, pos) in positions.iter().enumerate() {
            let Some((l, c)) = *pos else { continue };
            let ahead = if d < 0 { l < line } else { l > line };
            if !ahead {
                continue;
            }
            let key = (l.abs_diff(line), c.abs_diff(col), t);
            if best.is_none_or(|b| (key.0, key.1) < (b.0, b.1)) {
                best = Some(key);
            }
        }
        if let (Some((_, _, t)), Some(c)) = (best, self.tokens.cursor.as_mut()) {
            c.token = t;
            c.pick = None;
        }
    }

    /// ↑↓ in the branch picker: another alternative (the row after them resamples).
    pub(super) fn pick_alternative(&mut self, d: isize) {
        let rows = self.focused_step_alternatives() + 1;
        if let Some(Some(pick)) = self.tokens.cursor.as_mut().map(|c| c.pick.as_mut()) {
            *pick = (*pick as isize + d).clamp(0, rows as isize - 1) as usize;
        }
    }

    fn focused_step_alternatives(&self) -> usize {
        let token = self.tokens.cursor.as_ref().map_or(0, |c| c.token);
        self.focused_pane().and_then(|p| p.steps.get(token)).map_or(0, |s| s.top.len())
    }

    /// `b`: opens the branch picker on the cursor's token (on the likeliest other token); `b` or Enter
    /// there starts the branch.
    pub(super) fn branch(&mut self, cmds: &mut Vec<Command>) {
        let Some(cursor) = self.tokens.cursor.clone() else {
            return self.set_error("v first: branching starts at a token");
        };
        let Some(g) = self.generation.as_ref() else { return };
        if let Some(why) = g.cannot_branch(self.pane) {
            return self.set_error(why);
        }
        let Some(p) = g.panes.get(self.pane) else { return };
        let Some(pick) = cursor.pick else {
            let own = p.token_ids.get(cursor.token).copied();
            let top = p.steps.get(cursor.token).map(|s| s.top.as_slice()).unwrap_or_default();
            let first_other = top.iter().position(|t| t.id.is_some() && t.id != own).unwrap_or(top.len());
            if let Some(c) = self.tokens.cursor.as_mut() {
                c.pick = Some(first_other);
            }
            return self.set_status("branch: ↑↓ pick the token to put here, Enter or b starts the path, Esc back");
        };
        let top = p.steps.get(cursor.token).map(|s| s.top.clone()).unwrap_or_default();
        let choice = match top.get(pick) {
            Some(t) => match t.id {
                Some(id) => BranchChoice::Token(id),
                None => return self.set_error("this alternative has no token id (a remote model)"),
            },
            None => BranchChoice::Resample,
        };
        let id = self.next_generation;
        let Some(g) = self.generation.as_mut() else { return };
        match g.branch(self.pane, cursor.token, choice) {
            Ok((pane, request)) => {
                self.next_generation += 1;
                g.start_branch(id, pane);
                let title = g.panes[pane].branch.as_ref().map(|b| b.describe()).unwrap_or_default();
                self.pane = pane;
                self.tokens.cursor = None;
                self.set_status(format!(
                    "path {} ⟵ {} {title}: generating… Esc cancels",
                    pane + 1,
                    cursor_parent(self)
                ));
                cmds.push(Command::StartGeneration { id, requests: vec![request] });
            }
            Err(e) => self.set_error(e),
        }
    }

    /// Keeps the cursor on a token of the focused pane (after the focus moves to another path).
    pub(super) fn clamp_cursor(&mut self) {
        let last = self.focused_pane().and_then(|p| visible_tokens(p).last().copied());
        match (self.tokens.cursor.as_mut(), last) {
            (Some(c), Some(last)) => {
                c.token = c.token.min(last);
                c.pick = None;
            }
            (Some(_), None) => self.tokens.cursor = None,
            _ => {}
        }
    }
}

fn cursor_parent(app: &App) -> usize {
    app.focused_pane().and_then(|p| p.branch.as_ref()).map_or(0, |b| b.parent)
}

/// The tokens of a pane that show text (those that released none cannot be pointed at).
pub(crate) fn visible_tokens(p: &crate::tui::generation::Pane) -> Vec<usize> {
    p.token_spans().iter().enumerate().filter(|(_, r)| !r.is_empty()).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests;
