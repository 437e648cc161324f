//! Screens drawn on ratatui's TestBackend: insta snapshots of the main screens, plus checks that the
//! layout survives every size down to tiny ones and that NO_COLOR keeps failure kinds apart.

use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

use super::draw;
use crate::engine::{EngineEvent, TokenEvent};
use crate::lab::detect::{Failure, FailureKind};
use crate::tui::app::tests::{app, finished_app, ready_app, TWO_PATHS};
use crate::tui::app::App;
use crate::tui::intent::Intent;
use crate::tui::report::Report;
use crate::tui::theme::Theme;

fn render(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(app, f)).unwrap();
    t
}

fn screen_text(t: &Terminal<TestBackend>) -> String {
    let b = t.backend().buffer();
    let mut s = String::new();
    for y in 0..b.area.height {
        for x in 0..b.area.width {
            s.push_str(b[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

/// Two paths half-way: path 1 has written part of its reasoning, path 2 a little.
fn streaming_app() -> App {
    let mut a = ready_app();
    a.update(Intent::MoveQuestion(1));
    a.update(Intent::Generate);
    // Shift-Tab: the paths take the keys (Enter leaves the focus where it was).
    a.update(Intent::FocusPrev);
    let run = a.generation.as_ref().unwrap().id;
    a.on_report(Report::Engine {
        id: run,
        request: 0,
        event: EngineEvent::Prefilled { prompt_tokens: 620, prefill_ms: 80.0 },
        at_ms: 80.0,
    });
    let mut ms = 80.0;
    for (path, text) in [(0, " It takes 2 / 2 = 1 bolt of white fiber. So"), (1, " The robe takes 2")] {
        for (i, w) in text.split_inclusive(' ').enumerate() {
            ms += 20.0;
            a.on_report(Report::Engine {
                id: run,
                request: 0,
                event: EngineEvent::Token(TokenEvent {
                    path,
                    id: Some(i as u32),
                    text: w.into(),
                    ..TokenEvent::default()
                }),
                at_ms: ms,
            });
        }
    }
    a
}

/// Finished, with one of every failure kind on path 2 (fixed spans, so the picture does not depend on
/// the detectors' heuristics), labels reviewed, a note, and the vote.
fn highlighted_app(theme: Theme) -> App {
    let mut a = finished_app();
    a.theme = theme;
    let text = TWO_PATHS[1];
    let span = |needle: &str, nth: usize| {
        let start = text.match_indices(needle).nth(nth).map(|(i, _)| i).unwrap();
        (start, start + needle.len())
    };
    let run = a.generation.as_mut().unwrap();
    let p = &mut run.panes[1];
    let (rs, re) = span(" The robe takes 2 bolts.", 1);
    let (es, ee) = span("The robe takes", 0);
    let (as_, ae) = span("2 * 2 = 5", 0);
    p.failures = vec![
        Failure { kind: FailureKind::MissingAnswerMarker, start: 0, end: 0, detail: "no A:".into() },
        Failure { kind: FailureKind::QuestionEcho, start: es, end: ee, detail: String::new() },
        Failure { kind: FailureKind::Repetition, start: rs, end: re, detail: String::new() },
        Failure { kind: FailureKind::ArithmeticError, start: as_, end: ae, detail: "2 * 2 = 4".into() },
        Failure { kind: FailureKind::RunawayQuestion, start: ae, end: text.len(), detail: String::new() },
        Failure { kind: FailureKind::NoAnswer, start: text.len(), end: text.len(), detail: String::new() },
    ];
    p.labels.set_detected(p.failures.iter().map(|f| f.kind));
    a.update(Intent::FocusPane(1));
    a.update(Intent::ToggleLabel(1));
    a.update(Intent::ToggleLabel(2));
    a.update(Intent::ToggleLabel(2));
    a.update(Intent::ToggleLabel(4));
    a.update(Intent::EditNote);
    for c in "loops on the question".chars() {
        a.update(Intent::Input(c));
    }
    a.update(Intent::Submit);
    a
}

#[test]
fn snapshot_empty_loading() {
    insta::assert_snapshot!("empty", render(&app(), 140, 45).backend());
}

#[test]
fn snapshot_streaming_midway() {
    insta::assert_snapshot!("streaming", render(&streaming_app(), 140, 45).backend());
}

#[test]
fn snapshot_finished_with_highlights_and_vote() {
    let t = render(&highlighted_app(Theme::color()), 140, 45);
    insta::assert_snapshot!("finished", t.backend());
    let s = screen_text(&t);
    assert!(s.contains("Vote:") && s.contains("majority 3"), "{s}");
    assert!(s.contains("✓"), "right answer marked");
}

#[test]
fn snapshot_help_overlay() {
    let mut a = finished_app();
    a.update(Intent::Help);
    let t = render(&a, 140, 45);
    insta::assert_snapshot!("help", t.backend());
    let s = screen_text(&t);
    for k in ["Enter", "Esc", "Tab / Shift-Tab", "+ / -", "c ", "q / Ctrl-C", "Y", "!"] {
        assert!(s.contains(k), "help lists {k}");
    }
    // Scrolled down, page by page: the rest of the keys and every glyph drawn on screen.
    let mut s = String::new();
    for _ in 0..5 {
        a.update(Intent::OverlayMove(20));
        s.push_str(&screen_text(&render(&a, 140, 45)));
    }
    for k in ["Inside a path (tokens)", "token cursor", "branch at the token", "3 ⟵ 1 @ token 17", "⟦p=0.03 …⟧"]
    {
        assert!(s.contains(k), "help explains {k}:\n{s}");
    }
    for k in
        ["1–6", "7 8 9", "rep? rep✓ rep✗", "⚠ stale", "✓ ✗", "~ (flexible)", "✎", "●", "⟦kind …⟧", "[unsaved labels]"]
    {
        assert!(s.contains(k), "help explains {k}:\n{s}");
    }
}

#[test]
fn snapshot_no_color_keeps_failure_kinds_apart() {
    let t = render(&highlighted_app(Theme::no_color()), 140, 45);
    insta::assert_snapshot!("no_color", t.backend());
    let s = screen_text(&t);
    for tag in ["⟦rep ", "⟦echo ", "⟦noA:⟧", "⟦runQ ", "⟦noans⟧", "⟦arith "] {
        assert!(s.contains(tag), "marker {tag} on screen");
    }
    // No colour anywhere, yet the kinds differ by modifiers too.
    let b = t.backend().buffer();
    let mut mods = std::collections::HashSet::new();
    for c in b.content() {
        assert_eq!((c.fg, c.bg), (Color::Reset, Color::Reset), "colour at {:?}", c.symbol());
        mods.insert(c.modifier);
    }
    for m in [Modifier::REVERSED, Modifier::UNDERLINED, Modifier::CROSSED_OUT, Modifier::UNDERLINED | Modifier::BOLD] {
        assert!(mods.contains(&m), "{m:?} used");
    }
}

#[test]
fn colour_highlights_are_drawn_in_their_kind_style() {
    let a = highlighted_app(Theme::color());
    let t = render(&a, 140, 45);
    let b = t.backend().buffer();
    let arith = a.theme.failure(FailureKind::ArithmeticError);
    let hit = b.content().iter().any(|c| c.symbol() == "*" && c.bg == arith.bg.unwrap());
    assert!(hit, "the wrong sum is drawn with the arithmetic_error style");
}

#[test]
fn small_sizes_never_panic_and_compact_layout_kicks_in() {
    let screens = [app(), streaming_app(), highlighted_app(Theme::color()), {
        let mut a = finished_app();
        a.update(Intent::Help);
        a
    }];
    for a in &screens {
        for (w, h) in [(140, 45), (100, 30), (80, 24), (79, 23), (60, 20), (40, 12), (30, 8), (12, 4), (5, 2), (1, 1)] {
            let t = render(a, w, h);
            assert_eq!(t.backend().buffer().area.width, w);
        }
    }
    let mut a = streaming_app();
    let s = screen_text(&render(&a, 40, 12));
    assert!(s.contains("[Paths●]"), "tab line names the focused panel:\n{s}");
    a.update(Intent::FocusNext);
    let s = screen_text(&render(&a, 40, 12));
    assert!(s.contains("[Questions]"), "{s}");
    insta::assert_snapshot!("compact_40x12", render(&highlighted_app(Theme::color()), 40, 12).backend());
}

#[test]
fn eight_paths_fit_as_a_grid_or_pages() {
    let mut a = ready_app();
    for _ in 0..6 {
        a.update(Intent::MorePaths);
    }
    a.update(Intent::Generate);
    a.update(Intent::FocusPrev);
    assert_eq!(a.generation.as_ref().unwrap().panes.len(), 8);
    let s = screen_text(&render(&a, 140, 45));
    for i in 1..=8 {
        assert!(s.contains(&format!("┌ {i} · ")) || s.contains(&format!("┏ {i} · ")), "pane {i} shown:\n{s}");
    }
    // Narrow: a page of panes that holds the focused one.
    a.update(Intent::FocusPane(7));
    let s = screen_text(&render(&a, 60, 20));
    assert!(s.contains("8/8"), "{s}");
}
