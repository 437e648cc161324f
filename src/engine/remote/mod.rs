//! The remote engine: a model served by vLLM, text-generation-inference or llama.cpp's server,
//! driven through the OpenAI-compatible `POST /v1/completions` with `stream: true`.
//!
//! Each path is its own streamed request (at most [`RemoteConfig::max_streams`] at once) with its own
//! seed, derived from the request's seed and the path index as the local engine derives its
//! sampler streams. The streams run on a small tokio runtime the engine owns; `generate` blocks the
//! calling thread on it, reports events in the local engine's shape, and checks the cancel flag
//! every few milliseconds: cancelling drops the streams, which closes their connections, which is
//! how the servers learn to stop.
//!
//! Servers return text pieces, not token ids: token events carry `id: None`, and results have no
//! `token_ids` (their `token_logprobs` hold one entry per token when logprobs were asked for).

mod client;
mod error;
mod request;
mod sse;
mod stream;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{mpsc, Semaphore};

pub use error::RemoteError;

use self::client::Http;
use self::request::{completion_body, Dialect};
use self::sse::SseReader;
use self::stream::{Chunk, PathStream, Step};
use super::{
    CancelFlag, Engine, EngineError, EngineEvent, GenerateRequest, GenerationStats, ModelInfo, RemoteModel,
    SamplingParams, StopReason,
};

/// How often a running generation looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(10);

/// Where the server is and how to talk to it.
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// The API root, e.g. `http://gpu-box:8000/v1` (a bare `http://host:port` gets `/v1`).
    pub endpoint: String,
    /// The served model's name; None: the first of `GET /models`.
    pub model: Option<String>,
    /// The environment variable holding the bearer token; None: `OPENAI_API_KEY` when it is set.
    pub api_key_env: Option<String>,
    /// Idle-read timeout (connecting takes at most 10 s of it).
    pub timeout: Duration,
    /// Most streams one generation keeps open at once.
    pub max_streams: usize,
}

impl RemoteConfig {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            model: None,
            api_key_env: None,
            timeout: Duration::from_secs(30),
            max_streams: 8,
        }
    }
}

/// An [`Engine`] over a server. Concurrent generations run concurrently (the server batches them).
pub struct RemoteEngine {
    /// Always Some until drop (taken there to shut it down without blocking).
    rt: Option<tokio::runtime::Runtime>,
    http: Arc<Http>,
    model: String,
    /// Every model the server listed, for the message of a 404.
    served: Vec<String>,
    info: ModelInfo,
    dialect: Dialect,
    max_streams: usize,
    /// Which tokenize route this server answered (found on first use).
    tokenize: Mutex<Option<TokenizeRoute>>,
}

impl std::fmt::Debug for RemoteEngine {
    // By hand: the key must never be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEngine").field("endpoint", &self.http.base).field("model", &self.model).finish()
    }
}

impl Drop for RemoteEngine {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime (the TUI's).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `GET /models`: OpenAI's list, or text-generation-inference's single object.
#[derive(Debug, Default, Deserialize)]
struct ModelList {
    #[serde(default)]
    data: Option<Vec<ServedModel>>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ServedModel {
    id: String,
    /// vLLM: the weights the name stands for.
    #[serde(default)]
    root: Option<String>,
}

/// Normalizes `--endpoint`: http(s) only, no trailing slash, `/v1` when no path is given.
pub fn normalize_endpoint(endpoint: &str) -> Result<String, RemoteError> {
    let bad = |why: &str| RemoteError::Config(format!("--endpoint {endpoint:?}: {why}"));
    let url = reqwest::Url::parse(endpoint.trim())
        .map_err(|e| bad(&format!("not a URL ({e}); e.g. http://gpu-box:8000/v1")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http:// and https:// are supported"));
    }
    if url.host_str().is_none() {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the URL holds a secret.
        return Err(RemoteError::Config(
            "--endpoint: put credentials in an environment variable (--api-key-env), not in the URL".into(),
        ));
    }
    let mut s = url.to_string();
    while s.ends_with('/') {
        s.pop();
    }
    if url.path() == "/" {
        s.push_str("/v1");
    }
    Ok(s)
}

/// The API key: from `--api-key-env VAR` (which must then be set), else `OPENAI_API_KEY` if set.
fn api_key(var: Option<&str>) -> Result<Option<(String, String)>, RemoteError> {
    match var {
        Some(v) => match std::env::var(v) {
            Ok(k) if !k.is_empty() => Ok(Some((v.to_string(), k))),
            _ => Err(RemoteError::Config(format!("--api-key-env {v}: the variable is not set"))),
        },
        None => Ok(std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .map(|k| ("OPENAI_API_KEY".to_string(), k))),
    }
}

impl RemoteEngine {
    /// Connects: asks the server which models it serves and picks (or checks) the model.
    pub fn connect(cfg: &RemoteConfig) -> Result<Self, RemoteError> {
        let base = normalize_endpoint(&cfg.endpoint)?;
        let key = api_key(cfg.api_key_env.as_deref())?;
        let timeout = if cfg.timeout.is_zero() { Duration::from_secs(30) } else { cfg.timeout };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cotscope-remote")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Config(format!("cannot start the network runtime: {e}")))?;
        let http = Arc::new(rt.block_on(async { Http::new(base.clone(), key, timeout) })?);
        let (served, tgi_model) = rt.block_on(async {
            let list = http.get_text(&http.url("models")).await?;
            let list: ModelList = serde_json::from_str(&list).map_err(|e| RemoteError::BadStream {
                endpoint: base.clone(),
                cause: format!("GET /models did not answer a model list: {e}"),
            })?;
            // text-generation-inference describes itself at /info; others answer 404 there.
            let tgi = match http.get_text(&http.root_url("info")).await {
                Ok(t) => serde_json::from_str::<serde_json::Value>(&t)
                    .ok()
                    .and_then(|v| v.get("model_id").and_then(|m| m.as_str()).map(str::to_string)),
                Err(_) => None,
            };
            let served: Vec<ServedModel> = match (list.data, list.id) {
                (Some(d), _) => d,
                (None, Some(id)) => vec![ServedModel { id, root: None }],
                (None, None) => Vec::new(),
            };
            Ok::<_, RemoteError>((served, tgi))
        })?;
        let names: Vec<String> = served.iter().map(|m| m.id.clone()).collect();
        let chosen = match &cfg.model {
            Some(m) if names.iter().any(|n| n == m) => m.clone(),
            Some(m) => return Err(RemoteError::UnknownModel { endpoint: base, model: m.clone(), served: names }),
            None => names.first().cloned().ok_or_else(|| RemoteError::UnknownModel {
                endpoint: base.clone(),
                model: "(any)".into(),
                served: Vec::new(),
            })?,
        };
        let reported = tgi_model
            .clone()
            .or_else(|| served.iter().find(|m| m.id == chosen).and_then(|m| m.root.clone()))
            .unwrap_or_else(|| chosen.clone());
        let info = ModelInfo {
            id: chosen.clone(),
            config_hash: String::new(),
            n_params: 0,
            vocab_size: 0,
            dtype: "remote".into(),
            remote: Some(RemoteModel {
                endpoint: base.clone(),
                served_model: chosen.clone(),
                reported_model: reported,
            }),
        };
        Ok(Self {
            rt: Some(rt),
            http,
            model: chosen,
            served: names,
            info,
            dialect: Dialect { tgi: tgi_model.is_some() },
            max_streams: cfg.max_streams.max(1),
            tokenize: Mutex::new(None),
        })
    }

    /// A 404 on completions means the model is gone: list what is served.
    fn refine(&self, e: RemoteError) -> RemoteError {
        match e {
            RemoteError::Status { endpoint, status: 404, .. } => {
                RemoteError::UnknownModel { endpoint, model: self.model.clone(), served: self.served.clone() }
            }
            e => e,
        }
    }

    /// The encoded body of path `path` of `req`.
    fn body(&self, req: &GenerateRequest, path: usize) -> Result<Vec<u8>, EngineError> {
        serde_json::to_vec(&completion_body(&self.model, req, path, self.dialect))
            .map_err(|e| EngineError::Invalid(format!("cannot encode the request: {e}")))
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, EngineError> {
        self.rt.as_ref().ok_or_else(|| EngineError::Model("the remote engine is shut down".into()))
    }
}

impl From<RemoteError> for EngineError {
    fn from(e: RemoteError) -> Self {
        EngineError::Remote(e.to_string())
    }
}

/// What a path's stream task tells the generation.
#[derive(Debug)]
enum PathMsg {
    /// The first bytes of the body arrived: from now on, nothing is retried.
    Started,
    Chunk(Box<Chunk>),
    /// `data: [DONE]` (clean) or the connection closed without it.
    End {
        clean: bool,
    },
    /// The request or the stream failed.
    Failed {
        error: RemoteError,
        started: bool,
    },
}

/// Where a stream task reports: its path, which of the path's requests it is, the channel.
struct Target {
    path: usize,
    attempt: u32,
    tx: mpsc::UnboundedSender<(usize, u32, PathMsg)>,
}

/// Streams path `to.path`: sends the request (retrying before the first byte), then forwards every
/// chunk until the stream ends. Dropping the task drops the response, which closes the connection.
async fn stream_path(http: Arc<Http>, body: Vec<u8>, permits: Arc<Semaphore>, to: Target) {
    let _permit = permits.acquire_owned().await;
    let send = |m: PathMsg| to.tx.send((to.path, to.attempt, m)).is_ok();
    let mut resp = match http.post_body(&http.url("completions"), body).await {
        Ok(r) => r,
        Err(error) => {
            send(PathMsg::Failed { error, started: false });
            return;
        }
    };
    let mut sse = SseReader::new();
    let mut started = false;
    loop {
        let bytes = match tokio::time::timeout(http.timeout, resp.chunk()).await {
            Err(_) => {
                let during = if started { "reading the stream" } else { "waiting for the first token" };
                send(PathMsg::Failed { error: http.timed_out(during), started });
                return;
            }
            Ok(Err(e)) => {
                let error = RemoteError::BadStream {
                    endpoint: http.base.clone(),
                    cause: format!("connection lost mid-stream ({})", client::cause(&e)),
                };
                send(PathMsg::Failed { error, started });
                return;
            }
            Ok(Ok(None)) => {
                let last = sse.finish();
                if let Some(d) = last {
                    if !forward(&http, &d, &send) {
                        return;
                    }
                    if d.trim() == "[DONE]" {
                        return;
                    }
                }
                send(PathMsg::End { clean: false });
                return;
            }
            Ok(Ok(Some(b))) => b,
        };
        if !started && !bytes.is_empty() {
            started = true;
            if !send(PathMsg::Started) {
                return;
            }
        }
        for data in sse.push(&bytes) {
            if !forward(&http, &data, &send) || data.trim() == "[DONE]" {
                return;
            }
        }
    }
}

/// Parses one event's data and sends what it means; false when the path is over (or nobody listens).
fn forward(http: &Http, data: &str, send: &impl Fn(PathMsg) -> bool) -> bool {
    if data.trim() == "[DONE]" {
        send(PathMsg::End { clean: true });
        return false;
    }
    match serde_json::from_str::<Chunk>(data) {
        Ok(c) => send(PathMsg::Chunk(Box::new(c))),
        Err(e) => {
            let cause = format!("not a completion chunk ({e}): {}", error::one_line(data));
            send(PathMsg::Failed {
                error: RemoteError::BadStream { endpoint: http.base.clone(), cause },
                started: true,
            });
            false
        }
    }
}

/// The state of one generation on the generating thread.
struct Run<'s> {
    sink: &'s mut dyn FnMut(EngineEvent),
    paths: Vec<PathStream>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Per path: which of its requests is current (a forced insert starts a new one; messages of
    /// earlier ones are stale).
    attempts: Vec<u32>,
    started: Instant,
    first_token: Option<Instant>,
    /// Failures before any path got a byte: an error for the whole call if no path ever does.
    early: Vec<(usize, RemoteError)>,
    any_started: bool,
    prompt_tokens: usize,
}

impl Run<'_> {
    fn report(&mut self, step: Step) {
        for t in step.tokens {
            (self.sink)(EngineEvent::Token(t));
        }
        if let Some(done) = step.done {
            let path = done.path;
            (self.sink)(EngineEvent::Done(done));
            // The path is over: close its stream (the server stops on the closed connection).
            if let Some(t) = self.tasks.get(path) {
                t.abort();
            }
        }
    }

    fn start(&mut self) {
        if self.any_started {
            return;
        }
        self.any_started = true;
        let prefill_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.first_token = Some(Instant::now());
        (self.sink)(EngineEvent::Prefilled { prompt_tokens: self.prompt_tokens, prefill_ms });
        for (path, e) in std::mem::take(&mut self.early) {
            let step = self.paths[path].end(StopReason::Error(e.to_string()));
            self.report(step);
        }
    }

    fn live(&self) -> bool {
        self.paths.iter().any(|p| p.is_live())
    }
}

impl Engine for RemoteEngine {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    /// Asks the server (vLLM's and llama.cpp's `/tokenize`, text-generation-inference's, or
    /// llama-cpp-python's `/extras/tokenize/count`).
    fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        let rt = self.runtime()?;
        let known = self.tokenize.lock().ok().and_then(|g| *g);
        let routes = match known {
            Some(r) => vec![r],
            None => vec![TokenizeRoute::Tokenize, TokenizeRoute::Extras],
        };
        let mut last = None;
        for route in routes {
            match rt.block_on(route.count(&self.http, &self.model, text)) {
                Ok(n) => {
                    if let Ok(mut g) = self.tokenize.lock() {
                        *g = Some(route);
                    }
                    return Ok(n);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(
            || EngineError::Remote("no tokenize route".into()),
            |e| EngineError::Remote(format!("counting tokens: {e}")),
        ))
    }

    fn generate(
        &self,
        req: &GenerateRequest,
        cancel: &CancelFlag,
        sink: &mut dyn FnMut(EngineEvent),
    ) -> Result<GenerationStats, EngineError> {
        super::local::validate(req)?;
        if !req.prefix.is_empty() {
            return Err(EngineError::Invalid(
                "the remote engine cannot continue from token ids (branching needs the local engine)".into(),
            ));
        }
        let rt = self.runtime()?;
        rt.block_on(self.run(req, cancel, sink))
    }

    /// One greedy token with the server's top alternatives (`logprobs`, at most [`SCORE_TOP`]); a token
    /// not listed there is None: less likely than all of them, its probability unknown. (Scoring it from
    /// an `echo` of prompt + token is not used: llama-cpp-python 0.3 echoes log-probabilities that
    /// disagree with its own top list.) Servers report log-softmax of the raw logits.
    fn next_token_logprobs(&self, prompt: &str, tokens: &[String]) -> Result<Vec<Option<f32>>, EngineError> {
        let req = GenerateRequest {
            prompt: prompt.to_string(),
            paths: 1,
            sampling: SamplingParams { temperature: 0.0, max_new_tokens: 1, ..SamplingParams::default() },
            logprobs: Some(SCORE_TOP),
            ..GenerateRequest::default()
        };
        let mut top: Option<Vec<crate::engine::TopLogprob>> = None;
        self.generate(&req, &CancelFlag::default(), &mut |e| {
            if let (EngineEvent::Token(t), None) = (e, &top) {
                top = Some(t.top);
            }
        })?;
        let top =
            top.ok_or_else(|| EngineError::Remote(format!("{}: the server returned no token", self.http.base)))?;
        if top.is_empty() {
            return Err(EngineError::Remote(format!(
                "{}: the server returned no top log-probabilities (does it support `logprobs`?)",
                self.http.base
            )));
        }
        Ok(tokens.iter().map(|t| top.iter().find(|a| a.text == *t).map(|a| a.logprob)).collect())
    }
}

/// Alternatives asked for when scoring next tokens (vLLM's default `--max-logprobs` is 20).
const SCORE_TOP: usize = 20;

impl RemoteEngine {
    async fn run(
        &self,
        req: &GenerateRequest,
        cancel: &CancelFlag,
        sink: &mut dyn FnMut(EngineEvent),
    ) -> Result<GenerationStats, EngineError> {
        let endpoint = self.http.base.clone();
        let max_tokens = req.sampling.max_new_tokens;
        let mut run = Run {
            sink,
            paths: (0..req.paths).map(|p| PathStream::new(p, &req.stop)).collect(),
            tasks: Vec::new(),
            attempts: vec![0; req.paths],
            started: Instant::now(),
            first_token: None,
            early: Vec::new(),
            any_started: false,
            prompt_tokens: 0,
        };
        if max_tokens == 0 || cancel.is_cancelled() {
            let reason = if max_tokens == 0 { StopReason::MaxTokens } else { StopReason::Cancelled };
            (run.sink)(EngineEvent::Prefilled { prompt_tokens: 0, prefill_ms: 0.0 });
            for p in 0..req.paths {
                let step = run.paths[p].end(reason.clone());
                run.report(step);
            }
            let stats = GenerationStats::default();
            (run.sink)(EngineEvent::Stats(stats.clone()));
            return Ok(stats);
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(self.max_streams));
        for path in 0..req.paths {
            let body = self.body(req, path)?;
            let to = Target { path, attempt: 0, tx: tx.clone() };
            run.tasks.push(tokio::spawn(stream_path(Arc::clone(&self.http), body, Arc::clone(&permits), to)));
        }
        let forcer = req.forcer.as_ref().map(|f| f.0.as_ref());
        let mut poll = tokio::time::interval(CANCEL_POLL);
        let mut cancelled = false;
        while run.live() {
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = poll.tick() => {
                    if cancel.is_cancelled() {
                        cancelled = true;
                        break;
                    }
                    // A task that ended without a last word (it panicked) must not hang the call.
                    let silent = (0..run.paths.len()).all(|p| !run.paths[p].is_live() || run.tasks[p].is_finished());
                    if silent && rx.is_empty() {
                        for p in 0..run.paths.len() {
                            if run.paths[p].is_live() {
                                let e = RemoteError::BadStream { endpoint: endpoint.clone(), cause: "the stream task ended without a result".into() };
                                let step = run.paths[p].end(StopReason::Error(e.to_string()));
                                run.report(step);
                            }
                        }
                    }
                    continue;
                }
            };
            let Some((path, attempt, msg)) = msg else { break };
            if attempt != run.attempts[path] {
                continue;
            }
            match msg {
                PathMsg::Started => run.start(),
                PathMsg::Chunk(c) => {
                    if let Some(u) = c.usage {
                        run.prompt_tokens = u.prompt_tokens;
                    }
                    let step = run.paths[path].chunk(&c, &endpoint, forcer);
                    let restart = step.restart && step.done.is_none();
                    run.report(step);
                    if restart {
                        // Go on after the inserted text: a new request whose prompt ends with it.
                        run.tasks[path].abort();
                        run.attempts[path] += 1;
                        let used = run.paths[path].tokens();
                        if used >= max_tokens {
                            let step = run.paths[path].end(StopReason::MaxTokens);
                            run.report(step);
                            continue;
                        }
                        let mut more = req.clone();
                        more.prompt = format!("{}{}", req.prompt, run.paths[path].seen());
                        more.sampling.max_new_tokens = max_tokens - used;
                        let body = self.body(&more, path)?;
                        let to = Target { path, attempt: run.attempts[path], tx: tx.clone() };
                        run.tasks[path] =
                            tokio::spawn(stream_path(Arc::clone(&self.http), body, Arc::clone(&permits), to));
                    }
                }
                PathMsg::End { clean } => {
                    let step = run.paths[path].stream_end(clean, max_tokens, &endpoint);
                    run.report(step);
                }
                PathMsg::Failed { error, started } => {
                    let error = self.refine(error);
                    if !started && !run.any_started {
                        // Not reported yet: if no path ever starts, the whole call fails with it.
                        run.paths[path].mark_failed();
                        run.early.push((path, error));
                    } else {
                        let step = run.paths[path].end(StopReason::Error(error.to_string()));
                        run.report(step);
                    }
                }
            }
        }
        for t in &run.tasks {
            t.abort();
        }
        if !run.any_started {
            if let Some((_, e)) = run.early.first() {
                if !cancelled {
                    return Err(e.clone().into());
                }
            }
            // Cancelled before any path started: still the contract's order (Prefilled first).
            run.start();
        }
        for path in 0..run.paths.len() {
            let step = run.paths[path].end(StopReason::Cancelled);
            run.report(step);
        }
        let generated: usize = run.paths.iter().map(|p| p.tokens()).sum();
        let decode_ms = run.first_token.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
        let total_ms = run.started.elapsed().as_secs_f64() * 1000.0;
        let stats = GenerationStats {
            prompt_tokens: run.prompt_tokens,
            prefill_ms: total_ms - decode_ms,
            decode_ms,
            generated_tokens: generated,
            decode_tok_s: if decode_ms > 0.0 { generated as f64 / (decode_ms / 1000.0) } else { 0.0 },
            // The server's own prefix cache is not reported.
            cached_prompt_tokens: 0,
        };
        (run.sink)(EngineEvent::Stats(stats.clone()));
        Ok(stats)
    }
}

/// Where a server counts tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenizeRoute {
    /// `POST /tokenize` at the root: vLLM (`prompt`), llama.cpp (`content`), TGI (`inputs`).
    Tokenize,
    /// llama-cpp-python: `POST /extras/tokenize/count`.
    Extras,
}

impl TokenizeRoute {
    async fn count(self, http: &Http, model: &str, text: &str) -> Result<usize, RemoteError> {
        let (url, body) = match self {
            TokenizeRoute::Tokenize => (
                http.root_url("tokenize"),
                serde_json::json!({"model": model, "prompt": text, "content": text, "inputs": text, "add_special_tokens": false}),
            ),
            TokenizeRoute::Extras => {
                (http.root_url("extras/tokenize/count"), serde_json::json!({"model": model, "input": text}))
            }
        };
        let resp = http.post_json(&url, &body).await?;
        let body = http.body_text(resp).await?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| RemoteError::BadStream {
            endpoint: http.base.clone(),
            cause: format!("tokenize answered no JSON: {e}"),
        })?;
        let n = v
            .get("count")
            .and_then(|c| c.as_u64())
            .map(|c| c as usize)
            .or_else(|| v.get("tokens").and_then(|t| t.as_array()).map(|a| a.len()))
            .or_else(|| v.as_array().map(|a| a.len()));
        n.ok_or_else(|| RemoteError::BadStream {
            endpoint: http.base.clone(),
            cause: "tokenize answered no count".into(),
        })
    }
}

#[cfg(test)]
mod tests;
