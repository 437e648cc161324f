//! The keys of the token view: `p` probability colours, `T` the path tree, `v` the token cursor with its
//! inspector, `b` branching; their footer hints and their help.

use crossterm::event::{KeyCode, KeyEvent};

use super::{h, Hint};
use crate::tui::app::{App, Focus};
use crate::tui::intent::Intent;

/// The intent of `key` in the token view, if it has one there; other keys mean what they always do.
pub fn intent(app: &App, key: KeyEvent) -> Option<Intent> {
    let code = key.code;
    let up = matches!(code, KeyCode::Up | KeyCode::Char('k'));
    let down = matches!(code, KeyCode::Down | KeyCode::Char('j'));
    let left = matches!(code, KeyCode::Left | KeyCode::Char('h'));
    let right = matches!(code, KeyCode::Right | KeyCode::Char('l'));
    match &app.tokens.cursor {
        Some(c) if c.pick.is_some() => match code {
            _ if up => Some(Intent::PickAlternative(-1)),
            _ if down => Some(Intent::PickAlternative(1)),
            _ if left => Some(Intent::MoveToken(-1)),
            _ if right => Some(Intent::MoveToken(1)),
            KeyCode::Enter | KeyCode::Char('b') => Some(Intent::Branch),
            KeyCode::Esc => Some(Intent::LeaveTokens),
            _ => global(code),
        },
        Some(_) => match code {
            _ if up => Some(Intent::MoveTokenLine(-1)),
            _ if down => Some(Intent::MoveTokenLine(1)),
            _ if left => Some(Intent::MoveToken(-1)),
            _ if right => Some(Intent::MoveToken(1)),
            KeyCode::Home | KeyCode::Char('g') => Some(Intent::MoveToken(-1_000_000)),
            KeyCode::End | KeyCode::Char('G') => Some(Intent::MoveToken(1_000_000)),
            KeyCode::Enter | KeyCode::Char('b') => Some(Intent::Branch),
            KeyCode::Esc | KeyCode::Char('v') => Some(Intent::LeaveTokens),
            _ => global(code),
        },
        None => global(code),
    }
}

/// Keys of the token view that work wherever no text field has the keys.
fn global(code: KeyCode) -> Option<Intent> {
    match code {
        KeyCode::Char('p') => Some(Intent::ToggleProbs),
        KeyCode::Char('T') => Some(Intent::ToggleTree),
        KeyCode::Char('v') => Some(Intent::TokenCursor),
        _ => None,
    }
}

/// Footer hints of the token cursor and its picker; None when the cursor is not up.
pub fn cursor_hints(app: &App) -> Option<Vec<Hint>> {
    let c = app.tokens.cursor.as_ref()?;
    let can_branch = app.generation.as_ref().is_some_and(|g| g.cannot_branch(app.pane).is_none());
    let mut v = if c.pick.is_some() {
        vec![h("↑↓", "pick"), h("Enter/b", "branch with it"), h("←→", "token"), h("Esc", "back")]
    } else {
        let mut v = vec![h("←→", "token"), h("↑↓", "line"), h("g/G", "first/last")];
        if can_branch {
            v.push(h("b", "branch here"));
        }
        v.push(h("Esc/v", "leave"));
        v
    };
    v.push(h("p", if app.tokens.probs { "plain" } else { "probabilities" }));
    v.push(h("T", "tree"));
    v.push(h("?", "help"));
    v.push(h("q", "quit"));
    Some(v)
}

/// Hints for the paths panel when it has paths: what `v`, `p` and `T` would do now.
pub fn path_hints(app: &App, v: &mut Vec<Hint>) {
    let Some(g) = app.generation.as_ref().filter(|g| !g.panes.is_empty()) else { return };
    if app.focus == Focus::Paths && app.focused_pane().is_some_and(|p| !p.steps.is_empty() || !p.text.is_empty()) {
        v.push(h("v", "tokens"));
    }
    if g.panes.iter().any(|p| p.mean_logprob().is_some()) {
        v.push(h("p", if app.tokens.probs { "plain" } else { "probabilities" }));
    }
    if app.tokens.tree || g.panes.len() > 1 {
        v.push(h("T", if app.tokens.tree { "hide tree" } else { "tree" }));
    }
}

/// The help section of the token view.
pub fn help_section() -> (&'static str, Vec<Hint>) {
    (
        "Inside a path (tokens)",
        vec![
            h("p", "colour every token by its probability (plain → blue → ochre → orange → red as it drops)"),
            h("", "with NO_COLOR, tokens under p=0.10 are marked ⟦p=0.03 …⟧; pane titles show the mean log-probability"),
            h("v", "token cursor on the focused path, with an inspector: the token, its probability, the alternatives, the entropy"),
            h("← → / ↑ ↓, g G", "by token / by screen line, first / last token; Esc or v leaves"),
            h("b", "branch at the token: ↑↓ pick an alternative (or ↻ resample), Enter or b starts a new path from there"),
            h("", "the branch keeps the text before the token, streams, is checked and votes like any path"),
            h("T", "the path tree: every path and branch with its answer and ✓/✗"),
            h("3 ⟵ 1 @ token 17", "path 3 branched off path 1 at its 17th token (\" 8\" → \" 9\": the token it changed)"),
        ],
    )
}
