//! Generic JSON webhook: a versioned payload modelled on Alertmanager's.
//!
//! ```json
//! {
//!   "version": "1",
//!   "source": "certkeep",
//!   "receiver": "<channel name>",
//!   "host": "<host name>",
//!   "status": "firing",            // "resolved" when every alert in it is resolved
//!   "alerts": [{
//!     "status": "firing",          // or "resolved"
//!     "kind": "firing",            // firing|escalated|threshold|repeat|resolved|test
//!     "labels": {"alertname": "<check>", "check": "<check>", "key": "<kind:subject:check>", "severity": "critical", ...},
//!     "annotations": {"summary": "...", ...details},
//!     "startsAt": "2026-01-02T03:04:05Z",
//!     "endsAt": "0001-01-01T00:00:00Z",   // the resolution time when resolved
//!     "fingerprint": "16 hex digits, stable per alert key",
//!     "id": "notification id, unique: deduplicate on it"
//!   }]
//! }
//! ```

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::channel::{post_json, SendError};
use super::config::WebhookChannel;
use super::message::{fingerprint, hostname, rfc3339, status};
use super::state::Notification;

/// Version of the payload format; bumped on any incompatible change.
pub(super) const PAYLOAD_VERSION: &str = "1";

/// Detail names that become labels (identity: stable for the alert's
/// life); the others, with every variable text, are annotations.
const LABEL_DETAILS: [&str; 2] = ["endpoint", "certificate"];

pub(super) async fn send(
    c: &WebhookChannel,
    channel: &str,
    batch: &[Notification],
    timeout: std::time::Duration,
) -> Result<(), SendError> {
    let url = c
        .url
        .read()
        .map_err(|e| SendError::config(format!("webhook URL: {e}")))?;
    let mut headers = Vec::new();
    for (name, value) in &c.headers {
        headers.push((name.clone(), value.clone()));
    }
    for (name, path) in &c.headers_from_files {
        let v = std::fs::read_to_string(path).map_err(|e| {
            SendError::config(format!(
                "cannot read header {name} from {}: {e} (create it, mode 0600)",
                path.display()
            ))
        })?;
        headers.push((name.clone(), v.trim_end_matches(['\r', '\n']).to_string()));
    }
    post_json(
        &url,
        c.ca_bundle.as_deref(),
        &headers,
        &payload(channel, batch),
        timeout,
    )
    .await
}

/// The payload for `batch`, sent to the channel named `receiver`.
pub(super) fn payload(receiver: &str, batch: &[Notification]) -> Value {
    let all_resolved = batch.iter().all(Notification::is_resolved);
    let alerts: Vec<Value> = batch
        .iter()
        .map(|n| {
            let mut labels = BTreeMap::new();
            let check = super::state::check_of(&n.key).to_string();
            labels.insert("alertname".to_string(), check.clone());
            labels.insert("check".to_string(), check);
            labels.insert("key".to_string(), n.key.clone());
            labels.insert("severity".to_string(), n.severity.as_str().to_string());
            let mut annotations = BTreeMap::new();
            annotations.insert("summary".to_string(), n.summary.clone());
            for (k, v) in &n.details {
                if LABEL_DETAILS.contains(&k.as_str()) {
                    labels.insert(k.clone(), v.clone());
                } else {
                    annotations.insert(k.clone(), v.clone());
                }
            }
            json!({
                "status": status(n),
                "kind": n.kind.as_str(),
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(n.since),
                "endsAt": if n.is_resolved() { rfc3339(n.at) } else { "0001-01-01T00:00:00Z".to_string() },
                "fingerprint": fingerprint(&n.key),
                "id": n.id,
            })
        })
        .collect();
    json!({
        "version": PAYLOAD_VERSION,
        "source": "certkeep",
        "receiver": receiver,
        "host": hostname(),
        "status": if all_resolved { "resolved" } else { "firing" },
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::state::Kind;

    #[test]
    fn payload_shape() {
        let mut n = crate::alert::message::test_notification("h", 60);
        n.kind = Kind::Resolved;
        n.at = 120;
        let v = payload("h", &[n]);
        assert_eq!(v["version"], "1");
        assert_eq!(v["status"], "resolved");
        let a = &v["alerts"][0];
        assert_eq!(a["labels"]["alertname"], "test");
        assert_eq!(a["annotations"]["problem"], "test message");
        assert_eq!(a["labels"]["severity"], "critical");
        assert_eq!(a["startsAt"], "1970-01-01T00:01:00Z");
        assert_eq!(a["endsAt"], "1970-01-01T00:02:00Z");
        assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    }

    #[test]
    fn identity_does_not_depend_on_the_error_text() {
        let mut firing = crate::alert::message::test_notification("h", 60);
        firing.kind = Kind::Firing;
        firing.key = "renew:shop:renewal".into();
        firing.details.insert("certificate".into(), "shop".into());
        let mut resolved = firing.clone();
        resolved.kind = Kind::Resolved;
        resolved.at = 120;
        firing
            .details
            .insert("problem".into(), "self-check token abc123 failed".into());
        resolved
            .details
            .insert("problem".into(), "self-check token def456 failed".into());
        let f = payload("h", &[firing]);
        let r = payload("h", &[resolved]);
        let (f, r) = (&f["alerts"][0], &r["alerts"][0]);
        assert_eq!(f["labels"], r["labels"]);
        assert_eq!(f["fingerprint"], r["fingerprint"]);
        assert_eq!(f["labels"]["alertname"], "renewal");
        assert_eq!(f["labels"]["certificate"], "shop");
        assert!(!f["labels"].to_string().contains("abc123"), "{f}");
        assert_eq!(
            f["annotations"]["problem"],
            "self-check token abc123 failed"
        );
    }
}
