//! What can go wrong talking to a server. Every message is one line that names the endpoint and the
//! cause, and tells the user what to check. API keys never appear in messages (only the name of the
//! variable they came from).

/// A failure of the remote engine.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RemoteError {
    /// `--endpoint` or another option is unusable before any request is sent.
    #[error("{0}")]
    Config(String),
    /// No connection (refused, DNS, TLS) after the retries.
    #[error("cannot reach {endpoint}: {cause}")]
    Unreachable { endpoint: String, cause: String },
    /// Connecting or waiting for the next byte took longer than `--timeout`.
    #[error("{endpoint}: no answer within {secs} s while {during}; is the server up and not overloaded? (--timeout)")]
    Timeout { endpoint: String, secs: u64, during: String },
    /// 401 or 403.
    #[error("{endpoint}: HTTP {status}: the server refused the API key; {hint}")]
    Auth { endpoint: String, status: u16, hint: String },
    /// The model name is not served there.
    #[error("{endpoint}: model {model:?} is not served there; it serves: {}", served_list(.served))]
    UnknownModel { endpoint: String, model: String, served: Vec<String> },
    /// 400 or 422: the server's own message says what it did not accept.
    #[error("{endpoint}: the server rejected the request (HTTP {status}): {message}")]
    Rejected { endpoint: String, status: u16, message: String },
    /// Any other HTTP status.
    #[error("{endpoint}: HTTP {status}: {message}")]
    Status { endpoint: String, status: u16, message: String },
    /// The response was not the stream or JSON the API promises, or the server reported an error
    /// inside it.
    #[error("{endpoint}: bad stream: {cause}")]
    BadStream { endpoint: String, cause: String },
}

fn served_list(served: &[String]) -> String {
    if served.is_empty() {
        "nothing (GET /models is empty)".into()
    } else {
        served.join(", ")
    }
}

impl RemoteError {
    /// Whether a request that failed this way before its first byte may be sent again.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            RemoteError::Unreachable { .. } => true,
            RemoteError::Status { status, .. } => matches!(status, 429 | 502 | 503),
            _ => false,
        }
    }
}

/// The first line of `s`, trimmed and cut to a readable length (server messages can be pages long).
pub(crate) fn one_line(s: &str) -> String {
    const MAX: usize = 300;
    let line = s.split(['\n', '\r']).map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_string();
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// The message in an error body: OpenAI's `{"error": {"message": …}}`, vLLM's and llama.cpp's
/// variants (`{"error": "…"}`, `{"message": …}`, `{"detail": …}`), else the body's first line.
pub(crate) fn server_message(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => message_of(&v).unwrap_or_else(|| body.to_string()),
        Err(_) => body.to_string(),
    };
    let line = one_line(&text);
    if line.is_empty() {
        "(empty body)".into()
    } else {
        line
    }
}

/// The message inside an error value, wherever the server put it.
pub(crate) fn message_of(v: &serde_json::Value) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    for key in ["error", "message", "detail"] {
        if let Some(inner) = v.get(key) {
            if let Some(m) = message_of(inner) {
                return Some(m);
            }
            // FastAPI's validation errors: `{"detail": [{"msg": …, "loc": […]}]}`.
            if let Some(first) = inner.as_array().and_then(|a| a.first()) {
                let msg = first.get("msg").and_then(|m| m.as_str()).unwrap_or_default();
                let loc = first.get("loc").map(|l| l.to_string()).unwrap_or_default();
                return Some(format!("{msg} {loc}").trim().to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_are_found_in_every_shape() {
        assert_eq!(
            server_message(r#"{"error":{"message":"max_tokens too large","type":"invalid"}}"#),
            "max_tokens too large"
        );
        assert_eq!(server_message(r#"{"error":"bad seed"}"#), "bad seed");
        assert_eq!(server_message(r#"{"object":"error","message":"top_k must be -1","code":400}"#), "top_k must be -1");
        assert_eq!(
            server_message(r#"{"detail":[{"loc":["body","temperature"],"msg":"must be >= 0","type":"x"}]}"#),
            r#"must be >= 0 ["body","temperature"]"#
        );
        assert_eq!(server_message("Internal Server Error\n<html>"), "Internal Server Error");
        assert_eq!(server_message(""), "(empty body)");
        assert!(server_message(&"x".repeat(1000)).chars().count() <= 301);
    }

    #[test]
    fn messages_are_one_line_and_name_the_endpoint() {
        let e = RemoteError::UnknownModel {
            endpoint: "http://h:1/v1".into(),
            model: "bloom".into(),
            served: vec!["a".into(), "b".into()],
        };
        assert_eq!(e.to_string(), "http://h:1/v1: model \"bloom\" is not served there; it serves: a, b");
        let e = RemoteError::Timeout {
            endpoint: "http://h:1/v1".into(),
            secs: 3,
            during: "waiting for the first byte".into(),
        };
        assert!(!e.to_string().contains('\n'));
        assert!(RemoteError::Status { endpoint: String::new(), status: 503, message: String::new() }.retryable());
        assert!(!RemoteError::Status { endpoint: String::new(), status: 500, message: String::new() }.retryable());
    }
}
