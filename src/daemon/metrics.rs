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
pub struct Metrics {
    pub certificates: BTreeMap<String, CertificateMetric>,
    /// job ("renew", "probe") -> unix time of the last run and its success.
    pub last_run: BTreeMap<&'static str, (i64, bool)>,
    /// job -> unix time of the last successful run.
    pub last_success: BTreeMap<&'static str, i64>,
    /// Extra pre-rendered series (probe results), keyed by metric name.
    pub series: BTreeMap<String, Series>,
}

#[derive(Debug, Default, Clone)]
pub struct CertificateMetric {
    pub not_after: i64,
    pub not_before: i64,
    /// Result of the last renewal attempt in this daemon's life (None: none attempted).
    pub last_renewal_ok: Option<bool>,
}

/// A metric family: help text and samples (labels, value).
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub help: String,
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

pub type Shared = Arc<Mutex<Metrics>>;

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

/// The Prometheus text exposition of `m` at unix time `now`.
pub fn render(m: &Metrics, now: i64) -> String {
    let mut out = String::new();
    let name = |n: &str| vec![("name".to_string(), n.to_string())];
    let certs: Vec<_> = m.certificates.iter().collect();
    family(
        &mut out,
        "certkeep_certificate_not_after_timestamp_seconds",
        "Expiry of the live certificate of each lineage (unix time).",
        &certs
            .iter()
            .map(|(n, c)| (name(n), c.not_after as f64))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "certkeep_certificate_days_left",
        "Days until the live certificate of each lineage expires.",
        &certs
            .iter()
            .map(|(n, c)| (name(n), ((c.not_after - now) as f64 / 86_400.0).floor()))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "certkeep_certificate_lifetime_seconds",
        "Total lifetime of the live certificate of each lineage.",
        &certs
            .iter()
            .map(|(n, c)| (name(n), (c.not_after - c.not_before) as f64))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "certkeep_renewal_last_success",
        "1 if the last renewal attempt of the lineage succeeded, 0 if it failed.",
        &certs
            .iter()
            .filter_map(|(n, c)| {
                c.last_renewal_ok
                    .map(|ok| (name(n), if ok { 1.0 } else { 0.0 }))
            })
            .collect::<Vec<_>>(),
    );
    let job = |j: &str| vec![("job".to_string(), j.to_string())];
    family(
        &mut out,
        "certkeep_last_run_timestamp_seconds",
        "When each job last ran (unix time).",
        &m.last_run
            .iter()
            .map(|(j, (t, _))| (job(j), *t as f64))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "certkeep_last_run_success",
        "1 if the last run of each job succeeded.",
        &m.last_run
            .iter()
            .map(|(j, (_, ok))| (job(j), if *ok { 1.0 } else { 0.0 }))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "certkeep_last_success_timestamp_seconds",
        "When each job last succeeded (unix time).",
        &m.last_success
            .iter()
            .map(|(j, t)| (job(j), *t as f64))
            .collect::<Vec<_>>(),
    );
    for (n, s) in &m.series {
        family(&mut out, n, &s.help, &s.samples);
    }
    out
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Shared) {
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
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let body = match metrics.lock() {
                    Ok(m) => render(&m, now),
                    Err(_) => String::new(),
                };
                ("200 OK", body, "text/plain; version=0.0.4; charset=utf-8")
            } else {
                ("404 Not Found", "try /metrics\n".to_string(), "text/plain")
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
    fn renders_certificates_runs_and_series() {
        let mut m = Metrics::default();
        m.certificates.insert(
            "web".into(),
            CertificateMetric {
                not_after: 1_000_000 + 10 * 86_400 + 5,
                not_before: 1_000_000 - 80 * 86_400,
                last_renewal_ok: Some(false),
            },
        );
        m.last_run.insert("renew", (1_000_000, true));
        m.last_success.insert("renew", 1_000_000);
        m.series.insert(
            "certkeep_probe_success".into(),
            Series {
                help: "1 if the probe worked.".into(),
                samples: vec![(vec![("target".into(), "a\"b".into())], 1.0)],
            },
        );
        let text = render(&m, 1_000_000);
        assert!(
            text.contains(
                "certkeep_certificate_not_after_timestamp_seconds{name=\"web\"} 1864005\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("certkeep_certificate_days_left{name=\"web\"} 10\n"),
            "{text}"
        );
        assert!(text.contains("certkeep_renewal_last_success{name=\"web\"} 0\n"));
        assert!(text.contains("certkeep_last_run_success{job=\"renew\"} 1\n"));
        assert!(
            text.contains("certkeep_probe_success{target=\"a\\\"b\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE certkeep_certificate_days_left gauge\n"));
    }

    #[test]
    fn empty_families_are_left_out() {
        assert_eq!(render(&Metrics::default(), 0), "");
    }
}
