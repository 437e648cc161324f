//! The token view driven by keys: probability colours, the cursor and its inspector, branching, the
//! path tree, and sessions that keep all of it.

use crossterm::event::KeyCode;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::super::tests::{press, ready_app, TWO_PATHS};
use super::super::*;
use crate::engine::{EngineEvent, GenerateRequest, PathResult, StopReason, TokenEvent, TopLogprob};
use crate::tui::session::Session;

/// The step of token `i` of path `path`: token 3 of path 0 was a long shot (p 0.03, " 9" was likelier),
/// every other one a sure thing (p 0.9).
fn step(path: usize, i: usize, text: &str) -> TokenEvent {
    let own = i as u32 + 10;
    let alt = |id: u32, text: &str, p: f32| TopLogprob { id: Some(id), text: text.into(), logprob: p.ln() };
    let (logprob, top, entropy) = if (path, i) == (0, 3) {
        (0.03f32.ln(), vec![alt(900, " 9", 0.6), alt(700, " 7", 0.2), alt(own, text, 0.03)], 1.1)
    } else {
        (0.9f32.ln(), vec![alt(own, text, 0.9), alt(900 + i as u32, " 9", 0.05), alt(700 + i as u32, " 7", 0.02)], 0.4)
    };
    TokenEvent {
        path,
        id: Some(own),
        text: text.into(),
        logprob: Some(logprob),
        top,
        forced: false,
        entropy: Some(entropy),
    }
}

fn start_id(cmds: &[Command]) -> (u64, Vec<GenerateRequest>) {
    cmds.iter()
        .find_map(|c| match c {
            Command::StartGeneration { id, requests } => Some((*id, requests.clone())),
            _ => None,
        })
        .expect("a generation starts")
}

/// Feeds `texts` (one token per word, with their steps) to generation `run`'s request `request`.
fn feed(app: &mut App, run: u64, request: usize, texts: &[&str], finish: bool) {
    app.on_report(Report::Engine {
        id: run,
        request,
        event: EngineEvent::Prefilled { prompt_tokens: 100, prefill_ms: 50.0 },
        at_ms: 50.0,
    });
    for (path, text) in texts.iter().enumerate() {
        for (i, w) in text.split_inclusive(' ').enumerate() {
            let event = EngineEvent::Token(step(path, i, w));
            app.on_report(Report::Engine { id: run, request, event, at_ms: 60.0 + i as f64 });
        }
    }
    if finish {
        for (path, text) in texts.iter().enumerate() {
            let n = text.split_inclusive(' ').count() as u32;
            let done = PathResult {
                text: text.to_string(),
                token_ids: (10..10 + n).collect(),
                ..PathResult::empty(path, StopReason::StopString("\n\n".into()))
            };
            app.on_report(Report::Engine { id: run, request, event: EngineEvent::Done(done), at_ms: 500.0 });
        }
        app.on_report(Report::GenerationFinished { id: run });
    }
}

/// Two finished paths on question 1 with their probabilities; the paths have the keys.
fn probs_app() -> App {
    let mut a = ready_app();
    a.update(Intent::MoveQuestion(1));
    let (run, requests) = start_id(&press(&mut a, KeyCode::Enter));
    assert!(requests.iter().all(|r| r.logprobs == Some(5)), "every TUI generation asks for 5 alternatives");
    feed(&mut a, run, 0, &TWO_PATHS, true);
    press(&mut a, KeyCode::BackTab);
    a.on_report(Report::Resized { width: 140, height: 45 });
    a
}

fn render(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| crate::tui::draw::draw(app, f)).unwrap();
    t
}

fn screen(app: &App) -> String {
    let t = render(app, 140, 45);
    let b = t.backend().buffer();
    (0..b.area.height).map(|y| (0..b.area.width).map(|x| b[(x, y)].symbol()).collect::<String>() + "\n").collect()
}

fn cursor(a: &App) -> usize {
    a.tokens.cursor.as_ref().expect("the cursor is up").token
}

#[test]
fn p_toggles_probability_colours_and_titles_show_the_mean_logprob() {
    let mut a = probs_app();
    let p = &a.generation.as_ref().unwrap().panes[0];
    assert_eq!(p.steps.len(), p.token_ids.len(), "a step per token");
    let n = p.steps.len() as f64;
    let want = ((n - 1.0) * 0.9f64.ln() + 0.03f64.ln()) / n;
    assert!((p.mean_logprob().unwrap() - want).abs() < 1e-6);
    assert!(screen(&a).contains(&format!("mean lp {want:.2}")), "pane 1's title shows its mean log-probability");
    press(&mut a, KeyCode::Char('p'));
    assert!(a.tokens.probs);
    // The long shot is drawn in the ramp's low end, the sure tokens plain.
    let t = render(&a, 140, 45);
    let low = a.theme.token_prob(0.03);
    assert!(t.backend().buffer().content().iter().any(|c| c.symbol() == "2" && c.fg == low.fg.unwrap()));
    press(&mut a, KeyCode::Char('p'));
    assert!(!a.tokens.probs);
    let t = render(&a, 140, 45);
    assert!(!t.backend().buffer().content().iter().any(|c| c.fg == low.fg.unwrap()), "plain again");
}

#[test]
fn v_moves_the_cursor_by_token_and_by_screen_line() {
    let mut a = probs_app();
    press(&mut a, KeyCode::Char('v'));
    let last = a.generation.as_ref().unwrap().panes[0].token_ids.len() - 1;
    assert_eq!(cursor(&a), last, "the cursor starts on the last token");
    press(&mut a, KeyCode::Left);
    assert_eq!(cursor(&a), last - 1);
    press(&mut a, KeyCode::Char('g'));
    assert_eq!(cursor(&a), 0);
    press(&mut a, KeyCode::Right);
    press(&mut a, KeyCode::Right);
    assert_eq!(cursor(&a), 2);
    // ↓: the token under it on the next screen line, ↑ back.
    let width = crate::tui::draw::focused_pane_width(&a, (140, 45)).unwrap();
    let pos = crate::tui::widgets::panes::token_positions(&a, width);
    let (line, col) = pos[2].unwrap();
    press(&mut a, KeyCode::Down);
    let (down_line, down_col) = pos[cursor(&a)].unwrap();
    assert_eq!(down_line, line + 1);
    let nearest = pos.iter().flatten().filter(|(l, _)| *l == line + 1).map(|(_, c)| c.abs_diff(col)).min().unwrap();
    assert_eq!(down_col.abs_diff(col), nearest, "the nearest column");
    press(&mut a, KeyCode::Up);
    assert_eq!(pos[cursor(&a)].unwrap().0, line);
    // Esc leaves; the focus moving away takes the cursor too.
    press(&mut a, KeyCode::Esc);
    assert!(a.tokens.cursor.is_none());
    press(&mut a, KeyCode::Char('v'));
    press(&mut a, KeyCode::Tab);
    assert!(a.tokens.cursor.is_none());
}

/// The cursor on path 1's long shot, "2 " (token 4 on screen).
fn on_long_shot() -> App {
    let mut a = probs_app();
    press(&mut a, KeyCode::Char('v'));
    press(&mut a, KeyCode::Char('g'));
    for _ in 0..3 {
        press(&mut a, KeyCode::Right);
    }
    assert_eq!(cursor(&a), 3);
    a
}

#[test]
fn the_inspector_shows_the_token_its_probability_the_alternatives_and_the_entropy() {
    let a = on_long_shot();
    let s = screen(&a);
    for want in ["Token 4 of path 1", "\"2 \"  p 0.03  logp -3.507", "entropy 1.10 nats", "Alternatives (top 3)"] {
        assert!(s.contains(want), "{want} in\n{s}");
    }
    assert!(s.contains("\" 9\"") && s.contains("60.0%") && s.contains("20.0%"), "{s}");
    assert!(s.contains("● \"2 \""), "the path's own token is marked:\n{s}");
    insta::assert_snapshot!("inspector", render(&a, 140, 45).backend());
}

#[test]
fn b_branches_with_the_picked_alternative_through_the_prefix() {
    let mut a = on_long_shot();
    assert!(press(&mut a, KeyCode::Char('b')).is_empty(), "b first opens the picker");
    assert_eq!(a.tokens.cursor.as_ref().unwrap().pick, Some(0), "on the likeliest other token");
    press(&mut a, KeyCode::Down);
    assert!(screen(&a).contains("▸  \" 7\""), "the pick is marked");
    let (run, requests) = start_id(&press(&mut a, KeyCode::Char('b')));
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.prefix, vec![10, 11, 12, 700], "the parent's tokens before the branch point, then the pick");
    assert_eq!((r.paths, r.logprobs), (1, Some(5)));
    assert_eq!(r.sampling, a.settings.sampling);
    assert!(r.prompt.ends_with("A:"));
    let g = a.generation.as_ref().unwrap();
    assert_eq!(g.panes.len(), 3);
    assert_eq!(a.pane, 2, "the branch takes the focus");
    let b = g.panes[2].branch.as_ref().unwrap();
    assert_eq!((b.parent, b.at, b.token, b.from_text.as_str(), b.to_text.as_str()), (1, 3, Some(700), "2 ", " 7"));
    assert!(a.generating());

    // It streams like any path: the replayed tokens show the parent's probabilities.
    let replay = [" ", "It ", "takes ", " 7"];
    for (i, w) in replay.iter().enumerate() {
        let ev = TokenEvent { path: 0, id: Some(r.prefix[i]), text: w.to_string(), ..TokenEvent::default() };
        a.on_report(Report::Engine { id: run, request: 0, event: EngineEvent::Token(ev), at_ms: 1.0 });
    }
    let rest = step(0, 9, " bolts. The answer is 7.");
    a.on_report(Report::Engine { id: run, request: 0, event: EngineEvent::Token(rest), at_ms: 2.0 });
    let done = PathResult {
        text: " It takes  7 bolts. The answer is 7.".into(),
        token_ids: vec![10, 11, 12, 700, 19],
        ..PathResult::empty(0, StopReason::Eos)
    };
    a.on_report(Report::Engine { id: run, request: 0, event: EngineEvent::Done(done), at_ms: 3.0 });
    a.on_report(Report::GenerationFinished { id: run });
    let g = a.generation.as_ref().unwrap();
    let p = &g.panes[2];
    assert_eq!(p.steps[1].logprob, g.panes[0].steps[1].logprob, "inherited");
    assert!((p.steps[3].logprob.unwrap() - 0.2f32.ln()).abs() < 1e-6, "the pick's own probability");
    assert_eq!(p.answer.as_deref(), Some("7"));
    assert_eq!(g.vote().voters, 3, "the branch votes too");
    assert_eq!(g.vote().counts.iter().find(|(a, _)| a == "7").map(|c| c.1), Some(1));
    let s = screen(&a);
    assert!(s.contains("3 ⟵ 1 @ token 4 (\"2 \" → \" 7\")"), "the title names parent, token and swap:\n{s}");
}

#[test]
fn branching_waits_for_the_generation_and_needs_token_ids() {
    let mut a = ready_app();
    a.update(Intent::MoveQuestion(1));
    let (run, _) = start_id(&press(&mut a, KeyCode::Enter));
    feed(&mut a, run, 0, &TWO_PATHS, false);
    press(&mut a, KeyCode::BackTab);
    press(&mut a, KeyCode::Char('v'));
    assert!(press(&mut a, KeyCode::Char('b')).is_empty());
    let s = a.status.clone().unwrap();
    assert!(s.error && s.text.starts_with("a generation is running"), "{s:?}");
    assert!(!crate::tui::keymap::hints(&a).iter().any(|h| h.keys == "b"), "no b in the footer while it cannot act");

    // A remote path: tokens without ids.
    let mut a = probs_app();
    a.generation.as_mut().unwrap().panes[0].ids_missing = true;
    press(&mut a, KeyCode::Char('v'));
    assert!(press(&mut a, KeyCode::Char('b')).is_empty());
    assert!(a.status.clone().unwrap().text.contains("no token ids"), "{:?}", a.status);
}

/// Path 3 branches off 1 at the long shot with " 9"; path 4 resamples path 3 at its 2nd token.
fn tree_app() -> App {
    let mut a = on_long_shot();
    press(&mut a, KeyCode::Char('b'));
    let (run, req) = start_id(&press(&mut a, KeyCode::Enter));
    let ev = |i: usize, text: &str| TokenEvent {
        path: 0,
        id: Some(req[0].prefix[i]),
        text: text.into(),
        ..Default::default()
    };
    for (i, w) in [" ", "It ", "takes ", " 9"].iter().enumerate() {
        a.on_report(Report::Engine { id: run, request: 0, event: EngineEvent::Token(ev(i, w)), at_ms: 1.0 });
    }
    let done = PathResult {
        text: " It takes  9".into(),
        token_ids: req[0].prefix.clone(),
        ..PathResult::empty(0, StopReason::Eos)
    };
    a.on_report(Report::Engine { id: run, request: 0, event: EngineEvent::Done(done), at_ms: 2.0 });
    a.on_report(Report::GenerationFinished { id: run });
    // Resample path 3 from its 2nd token ("It ").
    press(&mut a, KeyCode::Char('v'));
    press(&mut a, KeyCode::Char('g'));
    press(&mut a, KeyCode::Right);
    press(&mut a, KeyCode::Char('b'));
    for _ in 0..5 {
        press(&mut a, KeyCode::Down);
    }
    let (run, req) = start_id(&press(&mut a, KeyCode::Char('b')));
    assert_eq!(req[0].prefix, vec![10], "resampling keeps only the tokens before");
    assert_ne!(req[0].sampling.seed, a.settings.sampling.seed, "with a seed of its own");
    feed(&mut a, run, 0, &[" It takes 4 bolts. The answer is 4."], true);
    a
}

#[test]
fn branches_form_a_tree_and_t_lists_it() {
    let mut a = tree_app();
    let g = a.generation.as_ref().unwrap();
    let parents: Vec<Option<usize>> = g.panes.iter().map(|p| p.branch.as_ref().map(|b| b.parent)).collect();
    assert_eq!(parents, vec![None, None, Some(1), Some(3)]);
    assert_eq!(g.panes[3].branch.as_ref().unwrap().token, None);
    press(&mut a, KeyCode::Char('T'));
    assert!(a.tokens.tree);
    let s = screen(&a);
    for want in ["Path tree (T)", "1 ans 3 ✓", "└ 3 @4 \"2 \"→\" 9\"", "  └ 4 @2 \"It \"→↻ ans 4 ✗", "2 ans 5 ✗"]
    {
        assert!(s.contains(want), "{want} in\n{s}");
    }
    insta::assert_snapshot!("tree", render(&a, 140, 45).backend());
}

#[test]
fn no_color_tags_unlikely_tokens() {
    let mut a = probs_app();
    a.theme = crate::tui::theme::Theme::no_color();
    press(&mut a, KeyCode::Char('p'));
    let t = render(&a, 140, 45);
    let s = screen(&a);
    assert!(s.contains("⟦p=0.03 2 ⟧"), "{s}");
    assert_eq!(s.matches("⟦p=").count(), 1, "only the long shot is tagged");
    insta::assert_snapshot!("no_color_probs", t.backend());
}

#[test]
fn sessions_keep_the_tree_and_the_probabilities_and_a_rerun_replays_the_branches() {
    let a = tree_app();
    let g = a.generation.as_ref().unwrap();
    let session = Session::from_generation(g, &super::super::tests::model_info());
    let yaml = session.to_yaml().unwrap();
    assert!(yaml.contains("  branch:\n    parent: 1\n    at: 3\n    token: 900\n"), "{yaml}");
    assert!(yaml.contains("  - [1, -0.105, 0.4, false, 10, -0.105, \" \", 900, -2.996, \" 9\","), "{yaml}");
    let back: Session = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back.to_yaml().unwrap(), yaml, "it reads back to the same file");
    let opened = back.to_generation(7, None).unwrap();
    for (o, p) in opened.panes.iter().zip(&g.panes) {
        assert_eq!(o.branch, p.branch);
        assert_eq!(o.prefix, p.prefix);
        assert_eq!(o.steps.len(), p.steps.len());
        for (x, y) in o.steps.iter().zip(&p.steps) {
            assert!((x.logprob.unwrap_or(0.0) - y.logprob.unwrap_or(0.0)).abs() < 6e-4);
            assert_eq!(x.top.len(), y.top.len());
        }
    }

    // Reopened: the tree is there, the sampled-path count is the roots', and Enter runs it all again.
    let mut b = ready_app();
    b.on_report(Report::SessionOpened { path: "s.yaml".into(), session: Box::new(back) });
    assert_eq!(b.settings.paths, 2, "branches are not more sampled paths");
    assert_eq!(b.generation.as_ref().unwrap().panes.len(), 4);
    let (_, requests) = start_id(&press(&mut b, KeyCode::Enter));
    assert_eq!(requests.len(), 3, "the sampled paths, then one request per branch");
    assert_eq!(requests[0].paths, 2);
    assert_eq!(requests[1].prefix, g.panes[2].prefix);
    assert_eq!(requests[2].prefix, vec![10]);
    assert_eq!(requests[2].sampling, g.panes[3].branch.as_ref().unwrap().sampling);
    let again = b.generation.as_ref().unwrap();
    assert_eq!(again.panes[3].branch, g.panes[3].branch);
}

#[test]
fn sessions_without_steps_or_branches_still_open() {
    let a = super::super::tests::finished_app();
    let mut s = Session::from_generation(a.generation.as_ref().unwrap(), &super::super::tests::model_info());
    for p in &mut s.run.paths {
        p.steps.clear();
    }
    let yaml = s.to_yaml().unwrap();
    assert!(!yaml.contains("steps:") && !yaml.contains("branch:"), "nothing new written when there is nothing");
    let back: Session = serde_yaml::from_str(&yaml).unwrap();
    assert!(back.to_generation(1, None).unwrap().panes.iter().all(|p| p.branch.is_none() && p.steps.is_empty()));
}
