//! What every alert channel shares: the error of one send (with the
//! server's `Retry-After`) and a JSON POST (Slack, webhooks).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::message::redact_url;

/// Why one send failed. The message never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub message: String,
    /// What the server asked for (429/503 `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A problem in the channel's set-up (a missing secret file, a bad address).
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(message)
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendError {}

/// POSTs `body` as JSON. Errors name the scheme and host only: the rest of a
/// webhook URL is a secret.
pub(crate) async fn post_json(
    url: &str,
    ca_bundle: Option<&Path>,
    headers: &[(String, String)],
    body: &Value,
    timeout: std::time::Duration,
) -> Result<(), SendError> {
    let target = redact_url(url);
    let client = crate::net::client_builder(ca_bundle)
        .and_then(|b| b.build().map_err(|e| e.without_url().into()))
        .map_err(|e| {
            SendError::config(format!("cannot set up the HTTP client for {target}: {e}"))
        })?;
    // The channel's timeout, not the client's default, bounds the request.
    let mut req = client.post(url).json(body).timeout(timeout);
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    tracing::debug!(target_url = %target, "posting alert");
    let rsp = req.send().await.map_err(|e| {
        SendError::new(format!(
            "POST to {target} failed: {}",
            crate::net::error_chain(&e.without_url())
        ))
    })?;
    let status = rsp.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = rsp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::net::parse_retry_after(v, std::time::SystemTime::now()));
    let text = rsp.text().await.unwrap_or_default();
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    Err(SendError {
        message: format!("{target} answered {status}: {text}"),
        retry_after,
    })
}
