//! The HTTP client instant-acme talks through: a [`crate::net`] client (reqwest
//! on rustls, with timeouts and the configured CA bundle), with the last
//! `Retry-After` kept so the retry loop can honour it (instant-acme's problem
//! documents drop headers).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

/// Shared slot for the most recent `Retry-After` the CA sent with an error,
/// and the HTTP status of the last answer that was not a success (instant-acme
/// drops it when the body is not a problem document, as with an HTML 404
/// from a proxy).
#[derive(Clone, Default, Debug)]
pub struct RetryAfter(Arc<Mutex<(Option<Duration>, Option<u16>)>>);

impl RetryAfter {
    pub fn take(&self) -> Option<Duration> {
        self.0.lock().ok().and_then(|mut g| g.0.take())
    }
    fn set(&self, d: Duration) {
        if let Ok(mut g) = self.0.lock() {
            g.0 = Some(d);
        }
    }
    /// The status of the last answer, when it was not a success.
    pub fn take_status(&self) -> Option<u16> {
        self.0.lock().ok().and_then(|mut g| g.1.take())
    }
    fn set_status(&self, status: Option<u16>) {
        if let Ok(mut g) = self.0.lock() {
            g.1 = status;
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
            slot.set_status((!status.is_success()).then_some(status.as_u16()));
            if status.as_u16() == 429 || status.is_server_error() {
                if let Some(d) = rsp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| crate::net::parse_retry_after(v, SystemTime::now()))
                {
                    slot.set(d);
                }
            }
            let rsp: http::Response<reqwest::Body> = rsp.into();
            Ok(BytesResponse::from(rsp))
        })
    }
}
