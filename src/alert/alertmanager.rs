//! Prometheus Alertmanager, API v2: `POST <url>/api/v2/alerts` to every
//! configured URL (an HA pair gets every alert, as Prometheus sends them).
//!
//! The labels make the same problem reported by several hosts one alert
//! group: `alertname` (`Certkeep` + the check in CamelCase), `check`,
//! `severity`, `certificate` or `endpoint` (or `subject` for agent-wide
//! problems) and `instance` (this host). Variable text goes into
//! annotations (`summary`, `description`, `days_left`, `serial`, `issuer`,
//! and the other details), so a changing error message never makes a new
//! alert.
//!
//! A firing alert carries `endsAt` = send time + 4 × `resend_interval` and is
//! re-sent every `resend_interval` while open
//! ([`super::state::AlertState::refresh`]); if this host stops reporting,
//! Alertmanager resolves it on its own, as it does for Prometheus. A resolved
//! alert carries the time it resolved as `endsAt`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use serde_json::{json, Value};

use super::channel::{post_json, SendError};
use super::config::AlertmanagerChannel;
use super::message::rfc3339;
use super::state::{check_of, Notification, Ts};

/// Detail names that are labels (identity) rather than annotations.
const LABEL_DETAILS: [&str; 2] = ["endpoint", "certificate"];

/// Detail names not repeated as annotations (already labels).
const SKIPPED_DETAILS: [&str; 3] = ["endpoint", "certificate", "check"];

/// `Certkeep` + the check in CamelCase: `expiry` -> `CertkeepExpiry`,
/// `tls-version` -> `CertkeepTlsVersion`.
pub fn alertname(check: &str) -> String {
    let mut out = String::from("Certkeep");
    for part in check.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    out
}

/// The alerts of `batch` as Alertmanager takes them, sent at `now`.
pub fn payload(c: &AlertmanagerChannel, batch: &[Notification], now: Ts) -> Value {
    let lapse = c.resend_interval.as_secs().max(1).saturating_mul(4);
    let alerts: Vec<Value> = batch
        .iter()
        .map(|n| {
            let check = check_of(&n.key);
            let mut labels = BTreeMap::new();
            labels.insert("alertname".to_string(), alertname(check));
            labels.insert("check".to_string(), check.to_string());
            labels.insert("severity".to_string(), n.severity.as_str().to_string());
            labels.insert("instance".to_string(), c.instance.clone());
            let mut annotations = BTreeMap::new();
            annotations.insert("summary".to_string(), n.summary.clone());
            annotations.insert(
                "description".to_string(),
                n.details
                    .get("problem")
                    .cloned()
                    .unwrap_or_else(|| n.summary.clone()),
            );
            for (k, v) in &n.details {
                if LABEL_DETAILS.contains(&k.as_str()) {
                    labels.insert(k.clone(), v.clone());
                }
                if !SKIPPED_DETAILS.contains(&k.as_str()) && k != "problem" {
                    annotations.insert(k.clone(), v.clone());
                }
            }
            if !LABEL_DETAILS.iter().any(|l| labels.contains_key(*l)) {
                // `kind:subject:check`: the subject says what is concerned.
                let subject = n
                    .key
                    .split_once(':')
                    .map(|(_, rest)| rest)
                    .and_then(|rest| rest.rsplit_once(':'))
                    .map(|(subject, _)| subject)
                    .unwrap_or(&n.key);
                labels.insert("subject".to_string(), subject.to_string());
            }
            let ends = if n.is_resolved() {
                n.at
            } else {
                now.saturating_add(lapse)
            };
            let mut a = json!({
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(n.since),
                "endsAt": rfc3339(ends),
            });
            if let Some(g) = &c.generator_url {
                a["generatorURL"] = Value::String(g.clone());
            }
            a
        })
        .collect();
    Value::Array(alerts)
}

/// `<base>/api/v2/alerts`, keeping a path prefix of the base URL.
pub fn alerts_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// Posts `batch` to every URL at once. Delivered when at least one
/// Alertmanager took it (an HA cluster shares alerts between its members);
/// the URLs that failed are logged.
pub async fn send(
    c: &AlertmanagerChannel,
    channel: &str,
    batch: &[Notification],
    timeout: std::time::Duration,
) -> Result<(), SendError> {
    let mut headers = Vec::new();
    if let (Some(user), Some(password)) = (&c.username, &c.password) {
        let password = password
            .read()
            .map_err(|e| SendError::config(format!("Alertmanager password: {e}")))?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.push(("authorization".to_string(), format!("Basic {token}")));
    }
    if let Some(bearer) = &c.bearer_token {
        let token = bearer
            .read()
            .map_err(|e| SendError::config(format!("Alertmanager bearer token: {e}")))?;
        headers.push(("authorization".to_string(), format!("Bearer {token}")));
    }
    let body = payload(c, batch, super::unix(SystemTime::now()));
    let sends = c.urls.iter().map(|base| {
        let url = alerts_url(base);
        let (headers, body) = (&headers, &body);
        async move { post_json(&url, c.ca_bundle.as_deref(), headers, body, timeout).await }
    });
    let results = futures_join(sends).await;
    let mut errors = Vec::new();
    for r in results {
        if let Err(e) = r {
            errors.push(e);
        }
    }
    if errors.len() < c.urls.len() {
        for e in &errors {
            tracing::warn!(channel, error = %e, "an Alertmanager did not take the alerts; another one did");
        }
        return Ok(());
    }
    let retry_after = errors.iter().filter_map(|e| e.retry_after).max();
    Err(SendError {
        message: errors
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; "),
        retry_after,
    })
}

/// Runs the futures concurrently on this task and returns their results in order.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::state::{Kind, Severity};
    use std::time::Duration;

    fn channel() -> AlertmanagerChannel {
        AlertmanagerChannel {
            urls: vec!["http://127.0.0.1:9093".into()],
            instance: "web1".into(),
            generator_url: Some("http://web1:9464/".into()),
            resend_interval: Duration::from_secs(60),
            username: None,
            password: None,
            bearer_token: None,
            ca_bundle: None,
        }
    }

    fn expiring() -> Notification {
        let mut n = crate::alert::message::test_notification("am", 1000);
        n.key = "probe:shop.example:443:expiry".into();
        n.kind = Kind::Firing;
        n.severity = Severity::Warning;
        n.summary = "shop.example:443 certificate expires in 5 days".into();
        n.details.clear();
        for (k, v) in [
            ("endpoint", "shop.example:443"),
            ("check", "expiry"),
            ("problem", "certificate expires in 5 days"),
            ("days_left", "5"),
            ("serial", "0a:1b"),
            ("issuer", "CN=Test CA"),
        ] {
            n.details.insert(k.into(), v.into());
        }
        n
    }

    #[test]
    fn names_are_camel_case() {
        assert_eq!(alertname("expiry"), "CertkeepExpiry");
        assert_eq!(alertname("tls-version"), "CertkeepTlsVersion");
        assert_eq!(alertname("hsts_missing"), "CertkeepHstsMissing");
        assert_eq!(alerts_url("http://a:9093/"), "http://a:9093/api/v2/alerts");
        assert_eq!(alerts_url("https://a/am"), "https://a/am/api/v2/alerts");
    }

    #[test]
    fn firing_alert_shape() {
        let v = payload(&channel(), &[expiring()], 2000);
        let a = &v[0];
        assert_eq!(
            a["labels"],
            json!({
                "alertname": "CertkeepExpiry",
                "check": "expiry",
                "severity": "warning",
                "instance": "web1",
                "endpoint": "shop.example:443",
            })
        );
        assert_eq!(
            a["annotations"],
            json!({
                "summary": "shop.example:443 certificate expires in 5 days",
                "description": "certificate expires in 5 days",
                "days_left": "5",
                "serial": "0a:1b",
                "issuer": "CN=Test CA",
            })
        );
        assert_eq!(a["startsAt"], "1970-01-01T00:16:40Z");
        // Lapses after four resend intervals unless re-sent.
        assert_eq!(a["endsAt"], "1970-01-01T00:37:20Z");
        assert_eq!(a["generatorURL"], "http://web1:9464/");
    }

    #[test]
    fn resolved_alert_ends_when_it_resolved_with_the_same_labels() {
        let firing = expiring();
        let mut resolved = firing.clone();
        resolved.kind = Kind::Resolved;
        resolved.at = 1500;
        resolved
            .details
            .insert("problem".into(), "other text".into());
        let mut c = channel();
        c.generator_url = None;
        let f = payload(&c, &[firing], 2000);
        let r = payload(&c, &[resolved], 2000);
        assert_eq!(f[0]["labels"], r[0]["labels"]);
        assert_eq!(r[0]["endsAt"], "1970-01-01T00:25:00Z");
        assert!(r[0].get("generatorURL").is_none());
    }

    #[test]
    fn agent_problems_name_their_subject() {
        let mut n = expiring();
        n.key = "agent:ca:reachable".into();
        n.details.clear();
        let v = payload(&channel(), &[n], 2000);
        assert_eq!(v[0]["labels"]["subject"], "ca");
        assert_eq!(v[0]["labels"]["alertname"], "CertkeepReachable");
        assert_eq!(
            v[0]["annotations"]["description"],
            v[0]["annotations"]["summary"]
        );
    }
}
