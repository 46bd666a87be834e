//! The HTTP client instant-acme talks through: reqwest on rustls, with
//! timeouts, the configured CA bundle, and the last `Retry-After` kept so the
//! retry loop can honour it (instant-acme's problem documents drop headers).

use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("cannot read CA bundle {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("CA bundle {path} holds no usable PEM certificate: {detail}")]
    Bundle {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Builds a reqwest client trusting the system roots plus `ca_bundle`.
pub fn client_builder(ca_bundle: Option<&Path>) -> Result<reqwest::ClientBuilder, HttpSetupError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("certkeep/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|source| HttpSetupError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| HttpSetupError::Bundle {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(HttpSetupError::Bundle {
                path: path.to_path_buf(),
                detail: "no certificates".into(),
            });
        }
        b = b.tls_certs_merge(certs);
    }
    Ok(b)
}

/// Shared slot for the most recent `Retry-After` the CA sent with an error.
#[derive(Clone, Default, Debug)]
pub struct RetryAfter(Arc<Mutex<Option<Duration>>>);

impl RetryAfter {
    pub fn take(&self) -> Option<Duration> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }
    fn set(&self, d: Duration) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(d);
        }
    }
}

pub struct AcmeHttp {
    client: reqwest::Client,
    retry_after: RetryAfter,
}

impl AcmeHttp {
    pub fn new(client: reqwest::Client, retry_after: RetryAfter) -> Self {
        Self {
            client,
            retry_after,
        }
    }
}

/// Parses a `Retry-After` value: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate(v)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn httpdate(v: &str) -> Option<SystemTime> {
    // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT"
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let dt = time::PrimitiveDateTime::parse(v, &fmt).ok()?;
    Some(dt.assume_utc().into())
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>
    {
        let client = self.client.clone();
        let slot = self.retry_after.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(c) => c.to_bytes(),
                Err(never) => match never {},
            };
            let rsp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let status = rsp.status();
            if status.as_u16() == 429 || status.is_server_error() {
                if let Some(d) = rsp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()))
                {
                    slot.set(d);
                }
            }
            let rsp: http::Response<reqwest::Body> = rsp.into();
            Ok(BytesResponse::from(rsp))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:27 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
