//! Helpers every network client of certkeep shares (ACME, the webroot
//! self-check, alert channels): one way to build an HTTP client and one way to
//! print an error with its causes.

use std::path::Path;
use std::time::{Duration, SystemTime};

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

/// The full cause chain of an error, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
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
