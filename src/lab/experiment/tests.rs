//! The question runner on a fake engine: what a record holds, and how an experiment writes, resumes,
//! cancels and refuses other settings.

use std::path::PathBuf;

use super::*;
use crate::engine::LocalEngine;
use crate::lab::detect::FailureKind;

fn fake_engine(texts: &[&str]) -> LocalEngine {
    let tok = tokenizers::Tokenizer::from_bytes(crate::model::embedded::TOKENIZER).unwrap();
    LocalEngine::fake(tok, texts, Some(2)).unwrap()
}

fn wei() -> Template {
    let set = crate::lab::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates"));
    set.get("wei-8shot").unwrap().1.clone()
}

#[test]
fn one_question_with_a_fake_engine() {
    // Question 1's gold is 3. Path 0 is right, path 1 wrong with an arithmetic error, path 2 right.
    // (Greedy paths share their first token: it comes from the one prefill.)
    let texts = [
        " It takes 2 / 2 = 1 bolt of white fiber. 2 + 1 = 3. The answer is 3.",
        " It takes 2 x 2 = 5 bolts. The answer is 5.",
        " It is 2 + 1 = 3 bolts in total. The answer is 3.",
    ];
    let engine = fake_engine(&texts);
    let params = SamplingParams { temperature: 0.0, max_new_tokens: 64, ..SamplingParams::default() };
    let r = evaluate_question(&engine, &wei(), 1, &params, 3).unwrap();
    assert_eq!(r.index, 1);
    assert_eq!(r.gold, "3");
    assert_eq!(r.prompt_hash, evalfile::prompt_hash(&wei().render(&gsm8k::test_set()[1].question)));
    let got: Vec<&str> = r.paths.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(got, texts);
    assert_eq!(r.paths[1].failures.len(), 1);
    assert_eq!(r.paths[1].failures[0].kind, FailureKind::ArithmeticError);
    assert_eq!(r.vote.majority.as_deref(), Some("3"));
    assert!((r.vote.agreement - 2.0 / 3.0).abs() < 1e-9);
    assert!(r.correct && r.first_correct);
    assert!(r.paths.iter().all(|p| p.stop_reason == "eos" && p.tokens > 0));
}

#[test]
fn stop_string_cut_marks_a_runaway_question() {
    // The template stops at "\nQ:": the invented question is cut off but still reported.
    let engine = fake_engine(&[" 2 + 1 = 3. The answer is 3.\nQ: Tom has 4 cats."]);
    let params = SamplingParams { temperature: 0.0, max_new_tokens: 64, ..SamplingParams::default() };
    let r = evaluate_question(&engine, &wei(), 1, &params, 1).unwrap();
    let p = &r.paths[0];
    assert_eq!(p.text, " 2 + 1 = 3. The answer is 3.");
    assert_eq!((p.stop_reason.as_str(), p.stop_string.as_deref()), ("stop_string", Some("\nQ:")));
    assert_eq!(p.failures.iter().map(|f| f.kind).collect::<Vec<_>>(), vec![FailureKind::RunawayQuestion]);
    assert!(r.correct);
}

fn template(name: &str) -> Template {
    let set = crate::lab::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates"));
    set.get(name).unwrap().1.clone()
}

/// Two templates over questions 0..3, two greedy paths each, into `dir`.
fn plan(dir: &Path) -> Plan {
    Plan {
        dir: dir.to_path_buf(),
        templates: vec![template("wei-8shot"), template("cot-paths")],
        questions: vec![0, 1, 2],
        sampling: SamplingParams { temperature: 0.0, max_new_tokens: 32, ..SamplingParams::default() },
        paths: 2,
        stop: None,
        calculator: false,
        model: ModelSettings { id: "fake".into(), ..ModelSettings::default() },
        batch: 4,
    }
}

fn lines(path: &Path) -> Vec<EvalRecord> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn an_experiment_writes_eval_lines_per_template_question_by_question_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fake_engine(&[" 2 + 1 = 3. The answer is 3."]);
    let p = plan(&dir.path().join("exp"));
    let mut events = Vec::new();
    let out = run(&engine, &p, &CancelFlag::new(), &mut |e| events.push(e)).unwrap();
    assert_eq!(out, Outcome { written: 6, cancelled: false });
    let Event::Opened { files, existing, todo } = &events[0] else { panic!("{:?}", events[0]) };
    assert_eq!(files, &vec![dir.path().join("exp/wei-8shot.jsonl"), dir.path().join("exp/cot-paths.jsonl")]);
    assert!(existing.iter().all(Vec::is_empty));
    assert_eq!(*todo, 6);
    // Row by row: question 0 of both templates before question 1.
    let order: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Record { template, record } => Some((record.index, *template)),
            _ => None,
        })
        .collect();
    assert_eq!(order, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]);
    let path_ends = events.iter().filter(|e| matches!(e, Event::PathDone { .. })).count();
    assert_eq!(path_ends, 12);
    // The same lines eval writes: settings on every line, the majority selection, answers read.
    for (t, f) in files.iter().enumerate() {
        let recs = lines(f);
        assert_eq!(recs.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2]);
        for r in &recs {
            let s = r.settings.as_ref().expect("settings on every line");
            assert_eq!((s.template.as_str(), s.paths, s.model.id.as_str()), (p.templates[t].name.as_str(), 2, "fake"));
            assert_eq!(s.stop, p.templates[t].stop_strings());
            assert_eq!(r.select.len(), 1);
            assert_eq!(r.select[0].strategy, Strategy::Majority);
            assert_eq!(r.vote.majority.as_deref(), Some("3"));
            assert_eq!(r.correct, r.gold == "3");
        }
        // What `eval` reads back for one question is what the experiment wrote.
        let alone = evaluate_question(&engine, &p.templates[t], 1, &p.sampling, 2).unwrap();
        assert_eq!(alone.paths, recs[1].paths);
    }
    // Again: nothing left to run; the grid gets every line from the files.
    let mut again = Vec::new();
    let out = run(&engine, &p, &CancelFlag::new(), &mut |e| again.push(e)).unwrap();
    assert_eq!(out.written, 0);
    let Event::Opened { existing, todo: 0, .. } = &again[0] else { panic!("{:?}", again[0]) };
    assert_eq!(existing[1], lines(&files[1]));
    assert_eq!(again.len(), 1);
}

#[test]
fn a_cancelled_experiment_keeps_finished_questions_and_a_rerun_does_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fake_engine(&[" 2 + 1 = 3. The answer is 3."]);
    let p = plan(dir.path());
    let cancel = CancelFlag::new();
    let mut recorded = Vec::new();
    let out = run(&engine, &p, &cancel, &mut |e| {
        if let Event::Record { template, record } = e {
            recorded.push((template, record.index));
            // Cancel in the middle of question 1 of the second template.
            if recorded.len() == 3 {
                cancel.cancel();
            }
        }
    })
    .unwrap();
    assert!(out.cancelled);
    assert_eq!(out.written, 3);
    assert_eq!(recorded, [(0, 0), (1, 0), (0, 1)]);
    let files = p.files();
    assert_eq!(lines(&files[0]).iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(lines(&files[1]).iter().map(|r| r.index).collect::<Vec<_>>(), [0]);
    assert!(
        files.iter().flat_map(|f| lines(f)).all(|r| r.paths.iter().all(|p| p.stop_reason != "cancelled")),
        "no question cut short is written"
    );
    let mut todo = None;
    let out = run(&engine, &p, &CancelFlag::new(), &mut |e| {
        if let Event::Opened { todo: n, .. } = e {
            todo = Some(n);
        }
    })
    .unwrap();
    assert_eq!((todo, out.written), (Some(3), 3));
    for f in &files {
        assert_eq!(lines(f).iter().map(|r| r.index).collect::<Vec<_>>().len(), 3);
    }
}

#[test]
fn other_settings_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fake_engine(&[" The answer is 3."]);
    let mut p = plan(dir.path());
    p.questions = vec![0];
    run(&engine, &p, &CancelFlag::new(), &mut |_| {}).unwrap();
    let before: Vec<String> = p.files().iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    p.sampling.seed = 7;
    p.questions = vec![0, 1];
    let mut events = 0;
    let e = run(&engine, &p, &CancelFlag::new(), &mut |_| events += 1).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ExperimentError::File(EvalFileError::OtherSettings { .. })), "{msg}");
    assert!(msg.contains("wei-8shot.jsonl") && msg.contains("--seed was 42 there, is 7 now"), "{msg}");
    assert_eq!(events, 0, "nothing ran");
    let after: Vec<String> = p.files().iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    assert_eq!(before, after);
    assert!(matches!(
        run(&engine, &Plan { questions: vec![], ..p }, &CancelFlag::new(), &mut |_| {}),
        Err(ExperimentError::Empty)
    ));
}

#[test]
fn names_are_safe_file_names() {
    assert_eq!(safe_name("wei-8shot"), "wei-8shot");
    assert_eq!(safe_name("a/b c"), "a_b_c");
    assert_eq!(safe_name(".."), "unnamed");
    assert_eq!(Plan::file(Path::new("e"), "x/y"), PathBuf::from("e/x_y.jsonl"));
}
