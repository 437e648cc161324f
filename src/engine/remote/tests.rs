//! The remote engine against an in-process fake server (a raw TCP listener): what a real server will
//! not do on demand — odd SSE framing, errors mid-stream, dropped connections, error statuses,
//! silence. The real llama.cpp server is exercised in `tests/remote_llama.rs`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::engine::{PathResult, SamplingParams, TokenEvent};

/// What the fake does on one connection, in order.
#[derive(Clone, Debug)]
enum Act {
    Write(Vec<u8>),
    Sleep(Duration),
    /// Writes `data: {token}` events every `every` until the client goes away.
    Endless {
        every: Duration,
    },
}

fn write(s: &str) -> Act {
    Act::Write(s.as_bytes().to_vec())
}

/// A request the fake received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: String,
    body: String,
}

type Handler = Arc<dyn Fn(&Seen) -> Vec<Act> + Send + Sync>;

struct FakeServer {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// When the client closed a stream (a write failed).
    disconnects: Arc<Mutex<Vec<Instant>>>,
}

impl FakeServer {
    fn start(handler: impl Fn(&Seen) -> Vec<Act> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let disconnects: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let (s, d) = (Arc::clone(&seen), Arc::clone(&disconnects));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let (h, s, d) = (Arc::clone(&handler), Arc::clone(&s), Arc::clone(&d));
                std::thread::spawn(move || serve(conn, &h, &s, &d));
            }
        });
        Self { addr, seen, disconnects }
    }

    fn completions(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.path.ends_with("/completions")).cloned().collect()
    }
}

fn serve(mut conn: TcpStream, handler: &Handler, seen: &Mutex<Vec<Seen>>, disconnects: &Mutex<Vec<Instant>>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, path) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = conn.read_exact(&mut body);
    let req = Seen { method, path, headers: head, body: String::from_utf8_lossy(&body).into_owned() };
    seen.lock().unwrap().push(req.clone());
    for act in handler(&req) {
        match act {
            Act::Write(b) => {
                if conn.write_all(&b).and_then(|_| conn.flush()).is_err() {
                    disconnects.lock().unwrap().push(Instant::now());
                    return;
                }
            }
            Act::Sleep(d) => std::thread::sleep(d),
            Act::Endless { every } => loop {
                let ev = "data: {\"choices\":[{\"index\":0,\"text\":\" tok\",\"finish_reason\":null}]}\n\n";
                if conn.write_all(ev.as_bytes()).and_then(|_| conn.flush()).is_err() {
                    disconnects.lock().unwrap().push(Instant::now());
                    return;
                }
                std::thread::sleep(every);
            },
        }
    }
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";

fn json_response(status: &str, body: &str) -> Vec<Act> {
    vec![write(&format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))]
}

/// `GET /v1/models` serving `bloom` and `bloomz`; 404 elsewhere except completions (given).
fn with_models(
    completions: impl Fn(&Seen) -> Vec<Act> + Send + Sync + 'static,
) -> impl Fn(&Seen) -> Vec<Act> + Send + Sync + 'static {
    move |req: &Seen| {
        if req.path.ends_with("/v1/models") {
            json_response(
                "200 OK",
                r#"{"object":"list","data":[{"id":"bloom","object":"model","root":"bigscience/bloom"},{"id":"bloomz","object":"model"}]}"#,
            )
        } else if req.path.ends_with("/v1/completions") {
            completions(req)
        } else {
            json_response("404 Not Found", r#"{"detail":"Not Found"}"#)
        }
    }
}

fn chunk(text: &str) -> String {
    format!(
        "data: {}\n\n",
        serde_json::json!({"model": "bloom-served", "choices": [{"index": 0, "text": text, "finish_reason": null}]})
    )
}

fn finish(reason: &str) -> String {
    format!("data: {}\n\n", serde_json::json!({"choices": [{"index": 0, "text": "", "finish_reason": reason}]}))
}

fn config(server: &FakeServer) -> RemoteConfig {
    RemoteConfig { timeout: Duration::from_secs(5), ..RemoteConfig::new(server.addr.clone()) }
}

fn request(paths: usize, max_new_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        prompt: "Q: 2 + 3?\nA:".into(),
        paths,
        sampling: SamplingParams { temperature: 0.0, max_new_tokens, seed: 5, ..SamplingParams::default() },
        ..GenerateRequest::default()
    }
}

fn run(engine: &RemoteEngine, req: &GenerateRequest) -> Result<Vec<EngineEvent>, EngineError> {
    let mut events = Vec::new();
    engine.generate(req, &CancelFlag::new(), &mut |e| events.push(e))?;
    Ok(events)
}

fn done(events: &[EngineEvent]) -> Vec<PathResult> {
    let mut out: Vec<PathResult> =
        events.iter().filter_map(|e| if let EngineEvent::Done(r) = e { Some(r.clone()) } else { None }).collect();
    out.sort_by_key(|r| r.path);
    out
}

fn tokens(events: &[EngineEvent], path: usize) -> Vec<TokenEvent> {
    events
        .iter()
        .filter_map(|e| if let EngineEvent::Token(t) = e { (t.path == path).then(|| t.clone()) } else { None })
        .collect()
}

/// A port with nothing listening.
fn dead_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/v1")
}

#[test]
fn the_model_is_the_first_listed_or_a_served_one() {
    let server = FakeServer::start(with_models(|_| Vec::new()));
    let e = RemoteEngine::connect(&config(&server)).unwrap();
    let info = e.info();
    assert_eq!(info.id, "bloom");
    let remote = info.remote.unwrap();
    assert_eq!((remote.served_model.as_str(), remote.reported_model.as_str()), ("bloom", "bigscience/bloom"));
    let e = RemoteEngine::connect(&RemoteConfig { model: Some("bloomz".into()), ..config(&server) }).unwrap();
    assert_eq!(e.info().id, "bloomz");
    let err = RemoteEngine::connect(&RemoteConfig { model: Some("bloom-7b1".into()), ..config(&server) })
        .unwrap_err()
        .to_string();
    assert_eq!(err, format!("{}: model \"bloom-7b1\" is not served there; it serves: bloom, bloomz", server.addr));
}

#[test]
fn endpoints_are_normalized_and_bad_ones_rejected_in_one_line() {
    assert_eq!(normalize_endpoint("http://h:8000").unwrap(), "http://h:8000/v1");
    assert_eq!(normalize_endpoint("http://h:8000/v1/").unwrap(), "http://h:8000/v1");
    assert_eq!(normalize_endpoint("https://h/api/v1").unwrap(), "https://h/api/v1");
    for bad in ["gpu-box:8000", "ftp://h/v1", "http://user:secret@h/v1", "not a url"] {
        let e = normalize_endpoint(bad).unwrap_err().to_string();
        assert!(e.starts_with("--endpoint") && !e.contains('\n') && !e.contains("secret"), "{e}");
    }
}

#[test]
fn split_and_merged_frames_with_crlf_and_keepalives_give_the_text() {
    // One body cut at awkward places: inside "data:", inside JSON, between \r and \n; then several
    // events in one write, comment lines, an event without a space after the colon.
    let body = [
        ": keep-alive\r\n\r\n".to_string(),
        chunk(" She").replace('\n', "\r\n"),
        chunk(" has"),
        chunk(" 5 €"),
        "data:".to_string() + &chunk(" apples.")[5..],
        finish("stop"),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    let cuts = [3usize, 20, 41, 42, 60, 99, 130];
    let server = FakeServer::start(with_models(move |_| {
        let b = body.as_bytes();
        let mut acts = vec![write(SSE_HEAD)];
        let mut at = 0;
        for &c in cuts.iter().filter(|&&c| c < b.len()) {
            acts.push(Act::Write(b[at..c].to_vec()));
            acts.push(Act::Sleep(Duration::from_millis(15)));
            at = c;
        }
        acts.push(Act::Write(b[at..].to_vec()));
        acts
    }));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let events = run(&engine, &request(1, 48)).unwrap();
    assert!(matches!(events.first(), Some(EngineEvent::Prefilled { .. })));
    assert!(matches!(events.last(), Some(EngineEvent::Stats(s)) if s.generated_tokens == 4));
    let r = &done(&events)[0];
    assert_eq!(r.text, " She has 5 € apples.");
    assert_eq!(r.stop_reason, StopReason::Eos);
    let toks = tokens(&events, 0);
    assert_eq!(toks.len(), 4);
    assert!(toks.iter().all(|t| t.id.is_none() && t.logprob.is_none() && !t.forced));
    assert_eq!(toks.iter().map(|t| t.text.as_str()).collect::<String>(), r.text);
}

#[test]
fn every_sampling_parameter_and_a_derived_seed_per_path_are_sent() {
    let server = FakeServer::start(with_models(|_| {
        vec![write(SSE_HEAD), write(&chunk(" 5")), write(&finish("length")), write("data: [DONE]\n\n")]
    }));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let mut req = request(3, 1);
    req.sampling.temperature = 0.7;
    let events = run(&engine, &req).unwrap();
    assert!(done(&events).iter().all(|r| r.stop_reason == StopReason::MaxTokens && r.text == " 5"));
    let mut seeds = Vec::new();
    for seen in server.completions() {
        assert_eq!(seen.method, "POST");
        let v: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(v["prompt"], "Q: 2 + 3?\nA:");
        assert_eq!(v["model"], "bloom");
        assert_eq!(v["stream"], true);
        assert_eq!(v["temperature"], 0.7);
        for k in [
            "top_p",
            "top_k",
            "min_p",
            "frequency_penalty",
            "presence_penalty",
            "repetition_penalty",
            "repeat_penalty",
            "max_tokens",
        ] {
            assert!(v.get(k).is_some(), "{k} missing from {v}");
        }
        seeds.push(v["seed"].as_u64().unwrap());
    }
    seeds.sort_unstable();
    let mut want: Vec<u64> = (0..3).map(|p| request::path_seed(5, p)).collect();
    want.sort_unstable();
    assert_eq!(seeds, want);
}

#[test]
fn stop_strings_split_across_chunks_stop_the_path_and_close_its_stream() {
    let server = FakeServer::start(with_models(|_| {
        let mut acts = vec![write(SSE_HEAD)];
        for t in [" 2 + 3 = 5.", " The answer is 5.", "\n", "Q", ": Tom"] {
            acts.push(write(&chunk(t)));
            acts.push(Act::Sleep(Duration::from_millis(5)));
        }
        acts.push(Act::Endless { every: Duration::from_millis(5) });
        acts
    }));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let mut req = request(1, 10_000);
    req.stop = vec!["\nQ:".into()];
    let events = run(&engine, &req).unwrap();
    let r = &done(&events)[0];
    assert_eq!(r.stop_reason, StopReason::StopString("\nQ:".into()));
    assert_eq!(r.text, " 2 + 3 = 5. The answer is 5.");
    assert_eq!(tokens(&events, 0).iter().map(|t| t.text.as_str()).collect::<String>(), r.text);
    // The server notices the closed connection instead of streaming on.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.disconnects.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the stream was not closed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_error_object_mid_stream_ends_the_path_in_error_keeping_its_text() {
    let server = FakeServer::start(with_models(|_| {
        vec![
            write(SSE_HEAD),
            write(&chunk(" 2 + 3")),
            write(&chunk(" = 5")),
            write("data: {\"error\":{\"message\":\"CUDA out of memory\",\"type\":\"server_error\"}}\n\n"),
        ]
    }));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let events = run(&engine, &request(1, 48)).unwrap();
    let r = &done(&events)[0];
    assert_eq!(r.text, " 2 + 3 = 5");
    assert_eq!(r.stop_reason.as_str(), "error");
    let msg = r.stop_reason.error().unwrap();
    assert_eq!(msg, format!("{}: bad stream: the server reported an error: CUDA out of memory", server.addr));
}

#[test]
fn a_connection_dropped_mid_stream_ends_the_path_in_error_keeping_its_text() {
    // Close-delimited body cut short, and a chunked body cut inside a chunk.
    let plain = FakeServer::start(with_models(|_| vec![write(SSE_HEAD), write(&chunk(" 2 + 3")), write(&chunk(" ="))]));
    let chunked = FakeServer::start(with_models(|_| {
        let ev = chunk(" 2 + 3") + &chunk(" =");
        vec![
            write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"),
            write(&format!("{:x}\r\n{ev}\r\n", ev.len())),
            write("40\r\ndata: {\"choi"),
        ]
    }));
    for (server, cause) in
        [(plain, "the stream ended without [DONE] after 2 tokens"), (chunked, "connection lost mid-stream")]
    {
        let engine = RemoteEngine::connect(&config(&server)).unwrap();
        let events = run(&engine, &request(2, 48)).unwrap();
        for r in done(&events) {
            assert_eq!(r.text, " 2 + 3 =");
            let msg = r.stop_reason.error().unwrap_or_default().to_string();
            assert!(msg.starts_with(&format!("{}: bad stream: {cause}", server.addr)), "{msg}");
        }
    }
}

#[test]
fn auth_failures_name_the_key_variable_never_the_key() {
    let server = FakeServer::start(|req: &Seen| {
        if req.headers.contains("Bearer s3cret-value") {
            with_models(|_| Vec::new())(req)
        } else {
            json_response("401 Unauthorized", r#"{"error":{"message":"invalid api key"}}"#)
        }
    });
    std::env::set_var("COTSCOPE_TEST_WRONG_KEY", "wrong-value");
    let err =
        RemoteEngine::connect(&RemoteConfig { api_key_env: Some("COTSCOPE_TEST_WRONG_KEY".into()), ..config(&server) })
            .unwrap_err()
            .to_string();
    assert_eq!(
        err,
        format!("{}: HTTP 401: the server refused the API key; check the key in $COTSCOPE_TEST_WRONG_KEY", server.addr)
    );
    assert!(!err.contains("wrong-value"));
    let err =
        RemoteEngine::connect(&RemoteConfig { api_key_env: Some("COTSCOPE_TEST_UNSET_KEY".into()), ..config(&server) })
            .unwrap_err()
            .to_string();
    assert_eq!(err, "--api-key-env COTSCOPE_TEST_UNSET_KEY: the variable is not set");
    std::env::set_var("COTSCOPE_TEST_RIGHT_KEY", "s3cret-value");
    let engine =
        RemoteEngine::connect(&RemoteConfig { api_key_env: Some("COTSCOPE_TEST_RIGHT_KEY".into()), ..config(&server) })
            .unwrap();
    assert!(!format!("{engine:?}").contains("s3cret"));
    assert!(!serde_json::to_string(&engine.info()).unwrap().contains("s3cret"));
}

#[test]
fn statuses_become_one_line_errors_and_only_busy_ones_are_retried() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&attempts);
    let server = FakeServer::start(with_models(move |req| {
        let v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        match v["max_tokens"].as_u64().unwrap() {
            // 503 twice, then a stream: retried before the first byte.
            1 if a.fetch_add(1, Ordering::SeqCst) < 2 => {
                json_response("503 Service Unavailable", r#"{"error":"loading"}"#)
            }
            1 => vec![write(SSE_HEAD), write(&chunk(" 5")), write(&finish("length")), write("data: [DONE]\n\n")],
            2 => json_response("400 Bad Request", r#"{"error":{"message":"top_k must be -1 or at least 1"}}"#),
            3 => json_response("404 Not Found", r#"{"error":{"message":"The model `bloom` does not exist."}}"#),
            _ => json_response("500 Internal Server Error", "Internal Server Error"),
        }
    }));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let events = run(&engine, &request(1, 1)).unwrap();
    assert_eq!(done(&events)[0].text, " 5");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let a = &server.addr;
    let cases = [
        (2, format!("{a}: the server rejected the request (HTTP 400): top_k must be -1 or at least 1")),
        (3, format!("{a}: model \"bloom\" is not served there; it serves: bloom, bloomz")),
        (4, format!("{a}: HTTP 500: Internal Server Error")),
    ];
    for (max, want) in cases {
        let mut n = 0;
        let err = engine.generate(&request(2, max), &CancelFlag::new(), &mut |_| n += 1).unwrap_err();
        assert_eq!(err.to_string(), want);
        assert_eq!(n, 0, "no events when every path failed before its first byte");
    }
}

#[test]
fn a_server_that_never_answers_times_out() {
    let server = FakeServer::start(with_models(|_| vec![Act::Sleep(Duration::from_secs(60))]));
    let engine = RemoteEngine::connect(&RemoteConfig { timeout: Duration::from_secs(1), ..config(&server) }).unwrap();
    let err = run(&engine, &request(1, 8)).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: no answer within 1 s while waiting for the response; is the server up and not overloaded? (--timeout)",
            server.addr
        )
    );
    // Silent after the headers and some text: the path ends in error with its text.
    let server = FakeServer::start(with_models(|_| {
        vec![write(SSE_HEAD), write(&chunk(" 5")), Act::Sleep(Duration::from_secs(60))]
    }));
    let engine = RemoteEngine::connect(&RemoteConfig { timeout: Duration::from_secs(1), ..config(&server) }).unwrap();
    let r = &done(&run(&engine, &request(1, 8)).unwrap())[0];
    assert_eq!(r.text, " 5");
    assert!(
        r.stop_reason.error().is_some_and(|m| m.contains("no answer within 1 s while reading the stream")),
        "{:?}",
        r.stop_reason
    );
    // Silent at connect time (GET /models).
    let silent = FakeServer::start(|_| vec![Act::Sleep(Duration::from_secs(60))]);
    let err = RemoteEngine::connect(&RemoteConfig { timeout: Duration::from_secs(1), ..config(&silent) }).unwrap_err();
    assert!(matches!(err, RemoteError::Timeout { .. }), "{err}");
}

#[test]
fn an_unreachable_endpoint_fails_in_one_line() {
    let endpoint = dead_endpoint();
    let err = RemoteEngine::connect(&RemoteConfig::new(endpoint.clone())).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RemoteError::Unreachable { .. }), "{msg}");
    assert!(msg.starts_with(&format!("cannot reach {endpoint}: ")) && !msg.contains('\n'), "{msg}");
}

#[test]
fn cancel_closes_every_stream_and_keeps_the_text() {
    let server =
        FakeServer::start(with_models(|_| vec![write(SSE_HEAD), Act::Endless { every: Duration::from_millis(5) }]));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let cancel = CancelFlag::new();
    let flag = cancel.clone();
    let mut events = Vec::new();
    let mut seen = 0;
    let mut cancelled_at = None;
    engine
        .generate(&request(3, 1_000_000), &cancel, &mut |e| {
            if matches!(e, EngineEvent::Token(_)) {
                seen += 1;
                if seen == 12 {
                    flag.cancel();
                    cancelled_at = Some(Instant::now());
                }
            }
            events.push(e);
        })
        .unwrap();
    let results = done(&events);
    assert_eq!(results.len(), 3);
    for r in &results {
        assert_eq!(r.stop_reason, StopReason::Cancelled);
        assert_eq!(tokens(&events, r.path).iter().map(|t| t.text.as_str()).collect::<String>(), r.text);
    }
    assert!(matches!(events.last(), Some(EngineEvent::Stats(_))));
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.disconnects.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the server still streams after cancel");
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = *server.disconnects.lock().unwrap().iter().max().unwrap();
    eprintln!("streams closed {:?} after cancel", last.saturating_duration_since(cancelled_at.unwrap()));
}

#[test]
fn logprobs_arrive_with_alternatives_most_likely_first() {
    let server = FakeServer::start(with_models(|_| {
        let c = serde_json::json!({"choices": [{"index": 0, "text": " 5.", "finish_reason": "stop", "logprobs": {
            "tokens": [" 5", "."], "token_logprobs": [-0.25, -1.5],
            "top_logprobs": [{" 6": -2.0, " 5": -0.25, " 4": -3.0}, {".": -1.5, ",": -0.5}]
        }}]});
        vec![write(SSE_HEAD), write(&format!("data: {c}\n\ndata: [DONE]\n\n"))]
    }));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let mut req = request(1, 8);
    req.logprobs = Some(3);
    let events = run(&engine, &req).unwrap();
    let toks = tokens(&events, 0);
    assert_eq!(toks.len(), 2);
    assert_eq!((toks[0].logprob, toks[1].logprob), (Some(-0.25), Some(-1.5)));
    let top: Vec<(&str, f32)> = toks[0].top.iter().map(|t| (t.text.as_str(), t.logprob)).collect();
    assert_eq!(top, vec![(" 5", -0.25), (" 6", -2.0), (" 4", -3.0)]);
    assert_eq!(toks[1].top[0].text, ",");
    assert_eq!(toks.iter().map(|t| t.text.as_str()).collect::<String>(), " 5.");
    let r = &done(&events)[0];
    assert_eq!(r.token_logprobs, vec![-0.25, -1.5]);
    let v: serde_json::Value = serde_json::from_str(&server.completions()[0].body).unwrap();
    assert_eq!(v["logprobs"], 3);
}

#[test]
fn next_tokens_are_scored_from_one_greedy_token_and_its_top_alternatives() {
    let server = FakeServer::start(with_models(|_| {
        let c = serde_json::json!({"choices": [{"index": 0, "text": "C", "finish_reason": "length", "logprobs": {
            "tokens": ["C"], "token_logprobs": [-0.5],
            "top_logprobs": [{"C": -0.5, "A": -1.25, "B": -2.75, "(": -4.0}]
        }}]});
        vec![write(SSE_HEAD), write(&format!("data: {c}\n\ndata: [DONE]\n\n"))]
    }));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let labels: Vec<String> = ["A", "B", "C", "D"].map(String::from).to_vec();
    let got = engine.next_token_logprobs("The best solution is (", &labels).unwrap();
    // D is not among the server's top tokens: unknown, not zero probability.
    assert_eq!(got, vec![Some(-1.25), Some(-2.75), Some(-0.5), None]);
    let v: serde_json::Value = serde_json::from_str(&server.completions()[0].body).unwrap();
    assert_eq!((v["max_tokens"].as_u64(), v["temperature"].as_f64()), (Some(1), Some(0.0)));
    assert_eq!(v["logprobs"].as_u64(), Some(20));
    assert_eq!(v["prompt"], "The best solution is (");
}

#[test]
fn scoring_against_a_server_without_logprobs_says_so() {
    let server = FakeServer::start(with_models(|_| {
        vec![write(SSE_HEAD), write(&format!("{}{}data: [DONE]\n\n", chunk("C"), finish("length")))]
    }));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let e = engine.next_token_logprobs("(", &["A".to_string()]).unwrap_err().to_string();
    assert!(e.contains("no top log-probabilities") && !e.contains('\n'), "{e}");
}

#[test]
fn held_back_text_is_released_at_the_end_in_a_token_event() {
    // "\n" might start the stop string "\nQ:": held, then released when the path ends.
    let server = FakeServer::start(with_models(|_| {
        vec![
            write(SSE_HEAD),
            write(&chunk(" 5.")),
            write(&chunk("\n")),
            write(&finish("stop")),
            write("data: [DONE]\n\n"),
        ]
    }));
    let engine = RemoteEngine::connect(&config(&server)).unwrap();
    let mut req = request(1, 8);
    req.stop = vec!["\nQ:".into()];
    let events = run(&engine, &req).unwrap();
    let r = &done(&events)[0];
    assert_eq!((r.text.as_str(), &r.stop_reason), (" 5.\n", &StopReason::Eos));
    let toks = tokens(&events, 0);
    assert_eq!(toks.len(), 2);
    assert_eq!(toks.iter().map(|t| t.text.as_str()).collect::<String>(), " 5.\n");
}
