//! The remote engine against a REAL server: llama-cpp-python's OpenAI-compatible server serving the
//! embedded model converted to GGUF (`../shared/models/tiny-bloom-gsm8k-gguf`). llama.cpp reproduces
//! the reference greedy continuations exactly with it, so greedy text must equal the local engine's.
//!
//! Needs `COTSCOPE_LLAMA_PYTHON` (a Python with `llama_cpp.server`) and the GGUF (`COTSCOPE_TEST_GGUF`,
//! default: the shared copy). `.ci/setup.d/llama_server.sh` exports both, making the GGUF from the
//! embedded model with `.ci/hf2gguf.py` (byte for byte the shared copy), so a clone needs no
//! `../shared` beside it. Each test starts its own server on a free loopback port and kills it when
//! it ends, also on failure. Without the server the tests skip with a message, except under
//! `CI=true`, where they fail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::tmux::{have_tmux, Tmux};
use cotscope::engine::remote::{RemoteConfig, RemoteEngine};
use cotscope::engine::{
    CancelFlag, Engine, EngineEvent, GenerateRequest, PathResult, SamplingParams, StopReason, TokenEvent,
};

/// A running llama.cpp server; killed on drop.
struct LlamaServer {
    child: Child,
    endpoint: String,
    _log_dir: tempfile::TempDir,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn gguf() -> PathBuf {
    std::env::var_os("COTSCOPE_TEST_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/models/tiny-bloom-gsm8k-gguf/tiny-bloom-gsm8k-f32.gguf"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether `GET /v1/models` answers 200 on `port`.
fn models_answer(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200")
}

fn try_start() -> Result<LlamaServer, String> {
    let python = std::env::var("COTSCOPE_LLAMA_PYTHON")
        .map_err(|_| "COTSCOPE_LLAMA_PYTHON is not set (source .ci/setup.d/llama_server.sh)".to_string())?;
    let model = gguf();
    if !model.is_file() {
        return Err(format!("the GGUF {} is missing", model.display()));
    }
    let port = free_port();
    let log_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log_path = log_dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(&python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "2048"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let mut server = LlamaServer { child, endpoint: format!("http://127.0.0.1:{port}/v1"), _log_dir: log_dir };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if models_answer(port) {
            return Ok(server);
        }
        let log = || {
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .join(" | ")
        };
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("the server exited ({status}): {}", log()));
        }
        if Instant::now() > deadline {
            return Err(format!("the server did not answer within 120 s: {}", log()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The server, or None (the test then returns) outside CI when it cannot start.
fn server(test: &str) -> Option<LlamaServer> {
    match try_start() {
        Ok(s) => Some(s),
        Err(e) if in_ci() => panic!("{test}: the llama.cpp server must run under CI=true: {e}"),
        Err(e) => {
            println!("SKIPPED {test}: {e}");
            None
        }
    }
}

fn engine(server: &LlamaServer) -> RemoteEngine {
    RemoteEngine::connect(&RemoteConfig::new(server.endpoint.clone())).expect("connect to the llama.cpp server")
}

fn cotscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cotscope")).args(args).current_dir(repo()).output().expect("run cotscope")
}

/// `done` events of `generate --json`, by path.
fn done_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "done")
        .collect()
}

fn collect(
    engine: &RemoteEngine,
    req: &GenerateRequest,
    cancel: &CancelFlag,
    mut on: impl FnMut(&EngineEvent),
) -> Vec<EngineEvent> {
    let mut events = Vec::new();
    engine
        .generate(req, cancel, &mut |e| {
            on(&e);
            events.push(e)
        })
        .expect("generate");
    events
}

fn results(events: &[EngineEvent]) -> Vec<PathResult> {
    let mut out: Vec<PathResult> =
        events.iter().filter_map(|e| if let EngineEvent::Done(r) = e { Some(r.clone()) } else { None }).collect();
    out.sort_by_key(|r| r.path);
    out
}

fn token_events(events: &[EngineEvent], path: usize) -> Vec<TokenEvent> {
    events
        .iter()
        .filter_map(|e| if let EngineEvent::Token(t) = e { (t.path == path).then(|| t.clone()) } else { None })
        .collect()
}

fn short_prompt() -> String {
    "Q: Tom has 3 apples and buys 2 more. How many apples does he have?\nA:".into()
}

fn req(prompt: String, paths: usize, temperature: f64, max_new_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        prompt,
        paths,
        sampling: SamplingParams { temperature, max_new_tokens, seed: 7, ..SamplingParams::default() },
        ..GenerateRequest::default()
    }
}

#[test]
fn greedy_remote_text_equals_the_local_engine_for_every_template() {
    let Some(server) = server("greedy_remote_text_equals_the_local_engine_for_every_template") else { return };
    let dir = tempfile::tempdir().unwrap();
    let templates = ["wei-8shot", "annot1-4shot", "annot2-4shot", "cot-paths", "directions"];
    for (i, template) in templates.iter().enumerate() {
        let question = (i * 7).to_string();
        let out = cotscope(&["prompt", "--template", template, "--question", &question]);
        assert!(out.status.success(), "prompt {template}: {}", String::from_utf8_lossy(&out.stderr));
        let prompt = dir.path().join(format!("{template}.txt"));
        std::fs::write(&prompt, &out.stdout).unwrap();
        let p = prompt.to_str().unwrap();
        let common = ["generate", "--prompt-file", p, "--temperature", "0", "--max-new-tokens", "48", "--json"];
        let local = cotscope(&common);
        assert!(local.status.success(), "local {template}: {}", String::from_utf8_lossy(&local.stderr));
        let remote = cotscope(&[&common[..], &["--endpoint", &server.endpoint]].concat());
        assert!(remote.status.success(), "remote {template}: {}", String::from_utf8_lossy(&remote.stderr));
        let (l, r) = (done_lines(&local.stdout), done_lines(&remote.stdout));
        assert_eq!((l.len(), r.len()), (1, 1), "{template}");
        assert!(!l[0]["text"].as_str().unwrap().is_empty(), "{template}: empty local text");
        assert_eq!(r[0]["text"], l[0]["text"], "{template} question {question}: remote greedy text differs from local");
        assert_eq!(r[0]["stop_reason"], l[0]["stop_reason"], "{template}");
    }
}

#[test]
fn four_sampled_paths_stream_concurrently_and_each_stops_on_its_own() {
    let Some(server) = server("four_sampled_paths_stream_concurrently_and_each_stops_on_its_own") else { return };
    let e = engine(&server);
    let mut r = req(short_prompt(), 4, 1.0, 40);
    r.stop = vec!["\nQ:".into(), "\n\n".into()];
    let events = collect(&e, &r, &CancelFlag::new(), |_| {});
    let done = results(&events);
    assert_eq!(done.iter().map(|d| d.path).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    for d in &done {
        assert!(
            matches!(d.stop_reason, StopReason::Eos | StopReason::MaxTokens | StopReason::StopString(_)),
            "{:?}",
            d.stop_reason
        );
        let toks = token_events(&events, d.path);
        assert!(!toks.is_empty());
        assert_eq!(toks.iter().map(|t| t.text.as_str()).collect::<String>(), d.text);
        assert!(toks.len() <= 40);
    }
    let distinct: std::collections::HashSet<&str> = done.iter().map(|d| d.text.as_str()).collect();
    assert!(distinct.len() > 1, "per-path seeds give different samples: {done:?}");
    // llama-cpp-python's server completes one request at a time, so the four streams' tokens need not
    // interleave here; concurrent streams are covered by the fake-server tests.
    // No "same seed, same samples" here: llama-cpp-python's server serves one request at a time from one
    // shared sampler, so which path gets which sample depends on arrival order (the README says remote
    // sampling may not be bit-reproducible; per-path seeds are checked against the fake server).
}

#[test]
fn stop_strings_cut_the_greedy_text_where_they_occur() {
    let Some(server) = server("stop_strings_cut_the_greedy_text_where_they_occur") else { return };
    let e = engine(&server);
    let full = results(&collect(&e, &req(short_prompt(), 1, 0.0, 32), &CancelFlag::new(), |_| {}))[0].text.clone();
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 12, "greedy text too short to cut: {full:?}");
    let stop: String = chars[8..11].iter().collect();
    let cut = &full[..full.find(&stop).unwrap()];
    let mut r = req(short_prompt(), 1, 0.0, 32);
    r.stop = vec![stop.clone()];
    let d = results(&collect(&e, &r, &CancelFlag::new(), |_| {}))[0].clone();
    assert_eq!(d.stop_reason, StopReason::StopString(stop));
    assert_eq!(d.text, cut);
}

#[test]
fn cancel_mid_stream_ends_every_path_and_keeps_the_text() {
    let Some(server) = server("cancel_mid_stream_ends_every_path_and_keeps_the_text") else { return };
    let e = engine(&server);
    let cancel = CancelFlag::new();
    let flag = cancel.clone();
    let mut n = 0;
    let events = collect(&e, &req(short_prompt(), 2, 1.0, 1500), &cancel, |ev| {
        if matches!(ev, EngineEvent::Token(_)) {
            n += 1;
            if n == 6 {
                flag.cancel();
            }
        }
    });
    let done = results(&events);
    assert_eq!(done.len(), 2);
    // A sampled path may have ended on its own (end of sequence) before the cancel; the rest are cancelled.
    assert!(done.iter().any(|d| d.stop_reason == StopReason::Cancelled), "{done:?}");
    for d in &done {
        assert!(matches!(d.stop_reason, StopReason::Cancelled | StopReason::Eos), "{:?}", d.stop_reason);
        assert_eq!(token_events(&events, d.path).iter().map(|t| t.text.as_str()).collect::<String>(), d.text);
        assert!(token_events(&events, d.path).len() < 1500);
    }
    // The server is free for the next request right away.
    let next = results(&collect(&e, &req(short_prompt(), 1, 0.0, 4), &CancelFlag::new(), |_| {}));
    assert!(!next[0].text.is_empty());
}

#[test]
fn logprobs_arrive_per_token() {
    let Some(server) = server("logprobs_arrive_per_token") else { return };
    let e = engine(&server);
    let mut r = req(short_prompt(), 1, 0.0, 12);
    r.logprobs = Some(3);
    let events = collect(&e, &r, &CancelFlag::new(), |_| {});
    let toks = token_events(&events, 0);
    assert!(!toks.is_empty());
    for t in &toks {
        let lp = t.logprob.expect("a logprob per token");
        assert!(lp <= 0.0 && lp.is_finite(), "{lp}");
        assert!(!t.top.is_empty() && t.top.len() <= 3, "{:?}", t.top);
        assert!(t.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
        // Greedy: the chosen token is the most likely one.
        assert!((t.top[0].logprob - lp).abs() < 1e-3, "{t:?}");
    }
    assert_eq!(results(&events)[0].token_logprobs.len(), toks.len());
}

#[test]
fn the_server_scores_next_tokens_as_the_local_model_does_where_it_lists_them() {
    let Some(server) = server("the_server_scores_next_tokens_as_the_local_model_does_where_it_lists_them") else {
        return;
    };
    let remote = engine(&server);
    let m = cotscope::model::load_embedded(&cotscope::model::LoadOptions::default()).expect("the embedded model");
    let local = cotscope::engine::LocalEngine::new(m.model, m.tokenizer, m.eos_token_id, m.info);
    let judge = cotscope::lab::judge::JudgePrompt::resolve(None, &repo().join("templates")).unwrap().1;
    let prompt = judge.render(
        "Janet has 16 eggs and eats 3. How many are left?",
        &[" 16 - 3 = 13. The answer is 13.", " 16 + 3 = 19. The answer is 19.", " 3. The answer is 3."],
    );
    let labels: Vec<String> = judge.labels[..3].to_vec();
    let (l, r) =
        (local.next_token_logprobs(&prompt, &labels).unwrap(), remote.next_token_logprobs(&prompt, &labels).unwrap());
    assert!(r.iter().any(Option::is_some), "no label among the server's 20 most likely tokens: {r:?}");
    for ((label, a), b) in labels.iter().zip(&l).zip(&r) {
        let a = a.expect("the local engine scores every token");
        if let Some(b) = b {
            assert!((a - b).abs() < 1e-3, "{label}: local {a} vs server {b}");
        }
    }
}

#[test]
fn eval_judges_on_the_judge_endpoint() {
    let Some(server) = server("eval_judges_on_the_judge_endpoint") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("judged.jsonl");
    let out = cotscope(&[
        "eval",
        "--template",
        "wei-8shot",
        "--questions",
        "0..4",
        "--paths",
        "3",
        "--temperature",
        "1.0",
        "--seed",
        "3",
        "--max-new-tokens",
        "40",
        "--select",
        "majority,judge",
        "--judge-endpoint",
        &server.endpoint,
        "--json",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let strategies: Vec<&str> =
        summary["strategies"].as_array().unwrap().iter().map(|s| s["strategy"].as_str().unwrap()).collect();
    assert_eq!(strategies, ["majority", "judge"]);
    for line in std::fs::read_to_string(&out_file).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let judge = v["select"].as_array().unwrap().iter().find(|s| s["strategy"] == "judge").expect("judged").clone();
        // The judge's answer is one of the paths' answers (or none when no path has one).
        let answers: Vec<&serde_json::Value> = v["paths"].as_array().unwrap().iter().map(|p| &p["answer"]).collect();
        assert!(judge["answer"].is_null() || answers.contains(&&judge["answer"]), "{judge} not among {answers:?}");
    }
}

#[test]
fn eval_keeps_k_questions_in_flight_and_reports_throughput() {
    let Some(server) = server("eval_keeps_k_questions_in_flight_and_reports_throughput") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("eval.jsonl");
    let out = cotscope(&[
        "eval",
        "--template",
        "wei-8shot",
        "--questions",
        "0..4",
        "--paths",
        "2",
        "--temperature",
        "0",
        "--max-new-tokens",
        "24",
        "--endpoint",
        &server.endpoint,
        "--concurrency",
        "3",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 questions, 2 paths each"), "{text}");
    assert!(
        regex::Regex::new(
            r"throughput: +[0-9.]+ questions/s, [0-9.]+ tokens/s \(4 questions in [0-9.]+ s wall, concurrency 3\)"
        )
        .unwrap()
        .is_match(&text),
        "{text}"
    );
    assert!(
        regex::Regex::new(r"latency per question: +p50 [0-9.]+ s, p90 [0-9.]+ s, max [0-9.]+ s")
            .unwrap()
            .is_match(&text),
        "{text}"
    );
    let lines = std::fs::read_to_string(&out_file).unwrap();
    let mut indexes: Vec<u64> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["index"].as_u64().unwrap())
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, vec![0, 1, 2, 3]);
    for l in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["generation_ms"].as_f64().unwrap() > 0.0);
        assert!(v["paths"].as_array().unwrap().iter().all(|p| p["tokens"].as_u64().unwrap() > 0));
    }
}

#[test]
fn the_workbench_generates_two_paths_on_the_server_and_saves_the_session() {
    let test = "the_workbench_generates_two_paths_on_the_server_and_saves_the_session";
    if !have_tmux() {
        return;
    }
    let Some(server) = server(test) else { return };
    let sessions = tempfile::tempdir().unwrap();
    // Its own settings directory: the user's saved workbench settings (paths, sampling) must not
    // change what this run generates.
    let config = tempfile::tempdir().unwrap();
    let name = format!("cotscope-remote-{}", std::process::id());
    let cmd = format!(
        "XDG_CONFIG_HOME='{}' '{}' --endpoint '{}' --sessions-dir '{}'; echo COTSCOPE_EXIT=$?; sleep 60",
        config.path().display(),
        env!("CARGO_BIN_EXE_cotscope"),
        server.endpoint,
        sessions.path().display()
    );
    let t = Tmux::start(&name, 140, 45, repo(), &cmd);
    t.wait_for("the UI", 30, |s| s.contains("Questions 1319"));
    t.wait_for("the served model", 60, |s| s.contains("(remote)"));
    t.keys(&["j"]);
    // The prompt pane shows the picked question (the header may be cut short by a long model path).
    t.wait_for("question 1 selected", 10, |s| s.contains("Q: A robe takes 2 bolts"));
    t.keys(&["Enter"]);
    let s = t.wait_for("the generation to finish", 180, |s| s.contains("done after"));
    assert!(s.contains("Vote:"), "{s}");
    t.keys(&["s"]);
    t.wait_for("the save", 20, |s| s.contains(" saved /"));
    t.keys(&["q"]);
    t.wait_for("cotscope to exit", 20, |s| s.contains("COTSCOPE_EXIT=0"));

    let files: Vec<_> = std::fs::read_dir(sessions.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let yaml = std::fs::read_to_string(&files[0]).unwrap();
    let session: cotscope::tui::session::Session = serde_yaml::from_str(&yaml).unwrap();
    let remote = session.run.model.remote.as_ref().expect("the session records the server");
    assert_eq!(remote.endpoint, server.endpoint);
    assert_eq!(remote.served_model, session.run.model.id);
    assert!(!remote.reported_model.is_empty());
    assert_eq!(session.run.question.index, 1);
    assert_eq!(session.run.paths.len(), 2);
    for p in &session.run.paths {
        assert!(!p.text.is_empty(), "{p:?}");
        assert!(["max_tokens", "eos", "stop_string"].contains(&p.stop_reason.as_str()), "{p:?}");
    }
    assert!(!yaml.to_lowercase().contains("api_key") && !yaml.contains("Bearer"));
}
