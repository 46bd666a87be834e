//! nginx: configuration test, reload, and confirming over TLS that the new
//! certificate is what is served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::config::NginxConfig;
use crate::hooks::{self, CommandError};
use crate::probe::tls::AcceptAny;

#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("nginx configuration test failed, nothing was reloaded: {0}")]
    Test(CommandError),
    #[error("nginx reload failed: {0}")]
    Reload(CommandError),
    #[error("{endpoint} (SNI {sni}) still serves serial {served} after {waited:?}, expected the new serial {expected}; is this nginx using the live/ paths of this certificate?")]
    Mismatch {
        endpoint: String,
        sni: String,
        served: String,
        expected: String,
        waited: Duration,
    },
    #[error("cannot fetch the served certificate from {endpoint} (SNI {sni}): {detail}")]
    Unreachable {
        endpoint: String,
        sni: String,
        detail: String,
    },
}

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn test(cfg: &NginxConfig) -> Result<(), NginxError> {
    hooks::run("nginx-test", &cfg.test_command, &[], COMMAND_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(NginxError::Test)
}

pub async fn reload(cfg: &NginxConfig) -> Result<(), NginxError> {
    hooks::run("nginx-reload", &cfg.reload_command, &[], COMMAND_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(NginxError::Reload)
}

/// Consecutive connections that must see the new serial: right after a
/// reload, old and new nginx workers both accept for a moment.
const CONFIRMATIONS: u32 = 3;

/// Waits until `endpoint` serves a leaf with serial `expected` on several
/// consecutive connections (nginx workers roll over asynchronously after a
/// reload), up to `timeout`.
pub async fn confirm(
    endpoint: &str,
    sni: &str,
    expected: &str,
    timeout: Duration,
) -> Result<(), NginxError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(25);
    let mut seen = 0;
    loop {
        // Each attempt ends by the deadline (with a floor, so the last one
        // can still complete a handshake): a silent port costs `timeout`.
        let attempt = timeout
            .saturating_sub(start.elapsed())
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        let last = match served_serial(endpoint, sni, attempt).await {
            Ok(serial) if serial == expected => {
                seen += 1;
                if seen >= CONFIRMATIONS {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
            Ok(serial) => Err(serial),
            Err(detail) => Ok(detail),
        };
        seen = 0;
        if start.elapsed() >= timeout {
            return Err(match last {
                Err(served) => NginxError::Mismatch {
                    endpoint: endpoint.into(),
                    sni: sni.into(),
                    served,
                    expected: expected.into(),
                    waited: start.elapsed(),
                },
                Ok(detail) => NginxError::Unreachable {
                    endpoint: endpoint.into(),
                    sni: sni.into(),
                    detail,
                },
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// The serial (lowercase hex) of the leaf `endpoint` serves for `sni`.
pub async fn served_serial(endpoint: &str, sni: &str, timeout: Duration) -> Result<String, String> {
    let leaf = served_leaf(endpoint, sni, timeout).await?;
    crate::cert::facts(&leaf, "the served certificate")
        .map(|f| f.serial)
        .map_err(|e| e.to_string())
}

/// The DER leaf certificate `endpoint` serves for `sni`, trusted or not.
pub async fn served_leaf(endpoint: &str, sni: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    let name =
        ServerName::try_from(sni.to_string()).map_err(|e| format!("invalid SNI name: {e}"))?;
    let fut = async {
        let tcp = TcpStream::connect(endpoint)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let (_, conn) = tls.get_ref();
        conn.peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .ok_or_else(|| "the server sent no certificate".to_string())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}
