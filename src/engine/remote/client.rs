//! HTTP to the server: the client, its timeouts, retries before the first byte, and turning statuses
//! into [`RemoteError`]s.

use std::time::Duration;

use reqwest::{Client, Response, StatusCode};

use super::error::server_message;
use super::RemoteError;

/// Retries of a request that failed before its first byte (refused, 429, 502, 503), and the first
/// wait; each wait doubles.
const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Connection settings shared by every request.
pub(crate) struct Http {
    pub(crate) client: Client,
    /// The API root as given, without a trailing slash, e.g. `http://gpu-box:8000/v1`.
    pub(crate) base: String,
    /// Bearer token and the variable it came from (the variable's name is all messages show).
    pub(crate) key: Option<(String, String)>,
    /// Idle-read timeout: the longest wait for the response or the next bytes of a stream.
    pub(crate) timeout: Duration,
}

impl Http {
    pub(crate) fn new(base: String, key: Option<(String, String)>, timeout: Duration) -> Result<Self, RemoteError> {
        let client = Client::builder()
            .connect_timeout(connect_timeout(timeout))
            // No idle connections kept: a dropped response then always closes its connection, which
            // is how the server learns to stop generating.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| RemoteError::Config(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self { client, base, key, timeout })
    }

    /// `base` + `/path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// The server's root (the base without a trailing `/v1`), for the non-OpenAI routes.
    pub(crate) fn root_url(&self, path: &str) -> String {
        let root = self.base.strip_suffix("/v1").unwrap_or(&self.base);
        format!("{}/{}", root, path.trim_start_matches('/'))
    }

    fn authorize(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some((_, key)) => rb.bearer_auth(key),
            None => rb,
        }
    }

    /// GET `url`, retried before the first byte; returns the body of a 2xx answer.
    pub(crate) async fn get_text(&self, url: &str) -> Result<String, RemoteError> {
        let resp = self.send(|| self.authorize(self.client.get(url))).await?;
        self.body_text(resp).await
    }

    /// POST `body` as JSON to `url`, retried before the first byte; returns the 2xx response.
    pub(crate) async fn post_json(&self, url: &str, body: &impl serde::Serialize) -> Result<Response, RemoteError> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| RemoteError::Config(format!("cannot encode the request: {e}")))?;
        self.post_body(url, bytes).await
    }

    /// POST a JSON body already encoded.
    pub(crate) async fn post_body(&self, url: &str, bytes: Vec<u8>) -> Result<Response, RemoteError> {
        self.send(|| {
            self.authorize(self.client.post(url)).header("content-type", "application/json").body(bytes.clone())
        })
        .await
    }

    /// Reads a whole (small) body within the timeout.
    pub(crate) async fn body_text(&self, resp: Response) -> Result<String, RemoteError> {
        match tokio::time::timeout(self.timeout, resp.text()).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(RemoteError::BadStream {
                endpoint: self.base.clone(),
                cause: format!("reading the answer: {}", cause(&e)),
            }),
            Err(_) => Err(self.timed_out("reading the answer")),
        }
    }

    pub(crate) fn timed_out(&self, during: &str) -> RemoteError {
        RemoteError::Timeout { endpoint: self.base.clone(), secs: self.timeout.as_secs().max(1), during: during.into() }
    }

    /// Sends the request `make` builds until it gets a 2xx status, retrying with backoff while the
    /// failure is one worth retrying; a non-2xx status becomes its [`RemoteError`].
    async fn send(&self, make: impl Fn() -> reqwest::RequestBuilder) -> Result<Response, RemoteError> {
        let mut wait = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let err = match tokio::time::timeout(self.timeout, make().send()).await {
                Err(_) => self.timed_out("waiting for the response"),
                Ok(Err(e)) if e.is_timeout() => self.timed_out("connecting"),
                Ok(Err(e)) => RemoteError::Unreachable { endpoint: self.base.clone(), cause: cause(&e) },
                Ok(Ok(resp)) if resp.status().is_success() => return Ok(resp),
                Ok(Ok(resp)) => self.status_error(resp).await,
            };
            if !err.retryable() || attempt >= RETRIES {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }

    /// The error a non-2xx answer means (404 of a model is refined by the caller, who knows the list).
    async fn status_error(&self, resp: Response) -> RemoteError {
        let status = resp.status();
        let body = match tokio::time::timeout(self.timeout, resp.text()).await {
            Ok(Ok(t)) => t,
            _ => String::new(),
        };
        let endpoint = self.base.clone();
        let message = server_message(&body);
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let hint = match &self.key {
                    Some((var, _)) => format!("check the key in ${var}"),
                    None => "no key was sent: set OPENAI_API_KEY or name the variable with --api-key-env".into(),
                };
                RemoteError::Auth { endpoint, status: status.as_u16(), hint }
            }
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                RemoteError::Rejected { endpoint, status: status.as_u16(), message }
            }
            _ => RemoteError::Status { endpoint, status: status.as_u16(), message },
        }
    }
}

/// Connecting takes at most 10 s (so an unreachable host fails fast) or the idle timeout if shorter.
pub(crate) fn connect_timeout(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(10))
}

/// The innermost cause of a reqwest error, one line (reqwest's own message is only "error sending
/// request for url (…)").
pub(crate) fn cause(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    super::error::one_line(&last)
}
