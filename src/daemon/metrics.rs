//! Prometheus metrics of the daemon: rendering (pure) and a minimal HTTP
//! endpoint. Names follow blackbox_exporter's `probe_ssl_*` style.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the daemon knows, updated after each job.
#[derive(Debug, Default, Clone)]
pub(crate) struct Metrics {
    pub certificates: BTreeMap<String, CertificateMetric>,
    /// job ("renew", "probe") -> unix time of the last run and its success.
    pub last_run: BTreeMap<&'static str, (i64, bool)>,
    /// job -> unix time of the last successful run.
    pub last_success: BTreeMap<&'static str, i64>,
    /// Extra pre-rendered series (probe results), keyed by metric name.
    pub series: BTreeMap<String, Series>,
    /// Alert deliveries queued per configured channel (0 when none).
    pub alert_queue: BTreeMap<String, usize>,
    /// Open alerts, when the alert state was read.
    pub alerts_open: Option<usize>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct CertificateMetric {
    pub not_after: i64,
    pub not_before: i64,
    /// Serial (hex, colon-separated) and issuer of the live certificate.
    pub serial: String,
    pub issuer: String,
    /// Result of the last renewal attempt in this daemon's life (None: none attempted).
    pub last_renewal_ok: Option<bool>,
    /// Unix time of the last renewal that succeeded / failed in this daemon's life.
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
}

/// A metric family: help text and samples (labels, value).
#[derive(Debug, Default, Clone)]
pub(crate) struct Series {
    pub help: String,
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

pub(crate) type Shared = Arc<Mutex<Metrics>>;

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(l: &[(String, String)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn family(out: &mut String, name: &str, help: &str, samples: &[(Vec<(String, String)>, f64)]) {
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (l, v) in samples {
        let _ = writeln!(out, "{name}{} {v}", labels(l));
    }
}

type Samples = Vec<(Vec<(String, String)>, f64)>;

/// The Prometheus text exposition of `m`. Every time is an absolute Unix
/// time in seconds and every duration is in seconds: time left is computed
/// in PromQL (`certkeep_certificate_not_after_timestamp_seconds - time()`).
pub(crate) fn render(m: &Metrics) -> String {
    let mut out = String::new();
    let name = |n: &str| vec![("name".to_string(), n.to_string())];
    let which = |n: &str, c: &CertificateMetric| {
        vec![
            ("name".to_string(), n.to_string()),
            ("serial".to_string(), c.serial.clone()),
            ("issuer".to_string(), c.issuer.clone()),
        ]
    };
    let certs: Vec<_> = m
        .certificates
        .iter()
        .filter(|(_, c)| c.not_after != 0)
        .collect();
    family(
        &mut out,
        "certkeep_certificate_not_after_timestamp_seconds",
        "Expiry (notAfter) of the live certificate of each lineage, Unix time.",
        &certs
            .iter()
            .map(|(n, c)| (which(n, c), c.not_after as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_certificate_not_before_timestamp_seconds",
        "Start of validity (notBefore) of the live certificate of each lineage, Unix time.",
        &certs
            .iter()
            .map(|(n, c)| (which(n, c), c.not_before as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_certificate_lifetime_seconds",
        "Total lifetime (notAfter - notBefore) of the live certificate of each lineage.",
        &certs
            .iter()
            .map(|(n, c)| (name(n), (c.not_after - c.not_before) as f64))
            .collect::<Samples>(),
    );
    let all: Vec<_> = m.certificates.iter().collect();
    family(
        &mut out,
        "certkeep_renewal_last_success",
        "1 if the last renewal attempt of the lineage succeeded, 0 if it failed (absent before the first attempt).",
        &all.iter()
            .filter_map(|(n, c)| {
                c.last_renewal_ok
                    .map(|ok| (name(n), if ok { 1.0 } else { 0.0 }))
            })
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_renewal_last_success_timestamp_seconds",
        "When a renewal of the lineage last succeeded, Unix time.",
        &all.iter()
            .filter_map(|(n, c)| c.last_success_at.map(|t| (name(n), t as f64)))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_renewal_last_failure_timestamp_seconds",
        "When a renewal of the lineage last failed, Unix time.",
        &all.iter()
            .filter_map(|(n, c)| c.last_failure_at.map(|t| (name(n), t as f64)))
            .collect::<Samples>(),
    );
    let job = |j: &str| vec![("job_name".to_string(), j.to_string())];
    family(
        &mut out,
        "certkeep_last_run_timestamp_seconds",
        "When each job (renew, probe) last ran, Unix time.",
        &m.last_run
            .iter()
            .map(|(j, (t, _))| (job(j), *t as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_last_run_success",
        "1 if the last run of each job succeeded.",
        &m.last_run
            .iter()
            .map(|(j, (_, ok))| (job(j), if *ok { 1.0 } else { 0.0 }))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_last_success_timestamp_seconds",
        "When each job last succeeded, Unix time.",
        &m.last_success
            .iter()
            .map(|(j, t)| (job(j), *t as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_alert_queue_depth",
        "Alert deliveries queued (not yet delivered) per channel.",
        &m.alert_queue
            .iter()
            .map(|(c, n)| (vec![("channel".to_string(), c.clone())], *n as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_alerts_open",
        "Alerts open (notified and not resolved).",
        &m.alerts_open
            .map(|n| vec![(Vec::new(), n as f64)])
            .unwrap_or_default(),
    );
    for (n, s) in &m.series {
        family(&mut out, n, &s.help, &s.samples);
    }
    out
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, metrics: Shared) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            let read = async {
                while len < buf.len() {
                    let n = sock.read(&mut buf[len..]).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        return Some(());
                    }
                }
                None
            };
            if tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .ok()
                .flatten()
                .is_none()
            {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, body, ctype) = if head.starts_with("GET ")
                && (path == "/metrics" || path.starts_with("/metrics?"))
            {
                let body = match metrics.lock() {
                    Ok(m) => render(&m),
                    Err(_) => String::new(),
                };
                ("200 OK", body, "text/plain; version=0.0.4; charset=utf-8")
            } else if head.starts_with("GET ") && (path == "/" || path == "/status.json") {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let snapshot = metrics.lock().map(|m| m.clone()).unwrap_or_default();
                if path == "/" {
                    (
                        "200 OK",
                        super::status::html(&snapshot, now),
                        "text/html; charset=utf-8",
                    )
                } else {
                    (
                        "200 OK",
                        super::status::json(&snapshot, now).to_string(),
                        "application/json",
                    )
                }
            } else {
                (
                    "404 Not Found",
                    "try /, /status.json or /metrics\n".to_string(),
                    "text/plain",
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_certificates_runs_alerts_and_series() {
        let mut m = Metrics::default();
        m.certificates.insert(
            "web".into(),
            CertificateMetric {
                not_after: 1_000_000 + 10 * 86_400 + 5,
                not_before: 1_000_000 - 80 * 86_400,
                serial: "0a:1b".into(),
                issuer: "CN=Test \"CA\"".into(),
                last_renewal_ok: Some(false),
                last_success_at: Some(900_000),
                last_failure_at: Some(1_000_000),
            },
        );
        m.last_run.insert("renew", (1_000_000, true));
        m.last_success.insert("renew", 1_000_000);
        m.alert_queue.insert("am".into(), 2);
        m.alerts_open = Some(3);
        m.series.insert(
            "certkeep_probe_success".into(),
            Series {
                help: "1 if the probe worked.".into(),
                samples: vec![(vec![("target".into(), "a\"b".into())], 1.0)],
            },
        );
        let text = render(&m);
        for want in [
            "certkeep_certificate_not_after_timestamp_seconds{name=\"web\",serial=\"0a:1b\",issuer=\"CN=Test \\\"CA\\\"\"} 1864005\n",
            "certkeep_certificate_not_before_timestamp_seconds{name=\"web\",serial=\"0a:1b\",issuer=\"CN=Test \\\"CA\\\"\"} -5912000\n",
            "certkeep_certificate_lifetime_seconds{name=\"web\"} 7776005\n",
            "certkeep_renewal_last_success{name=\"web\"} 0\n",
            "certkeep_renewal_last_success_timestamp_seconds{name=\"web\"} 900000\n",
            "certkeep_renewal_last_failure_timestamp_seconds{name=\"web\"} 1000000\n",
            "certkeep_last_run_success{job_name=\"renew\"} 1\n",
            "certkeep_alert_queue_depth{channel=\"am\"} 2\n",
            "certkeep_alerts_open 3\n",
            "certkeep_probe_success{target=\"a\\\"b\"} 1\n",
            "# TYPE certkeep_certificate_not_after_timestamp_seconds gauge\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("days"), "{text}");
    }

    #[test]
    fn empty_families_are_left_out() {
        assert_eq!(render(&Metrics::default()), "");
    }
}
