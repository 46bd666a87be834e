//! Slack incoming webhooks: a Block Kit message with a plain `text` fallback.

use serde_json::{json, Value};

use super::channel::{post_json, SendError};
use super::config::SlackChannel;
use super::message::{self, details, headline, rfc3339};
use super::state::{Kind, Notification, Severity};

/// Slack allows 50 blocks per message; each alert takes 3, the header 1.
pub(super) const MAX_PER_MESSAGE: usize = 15;

pub(super) async fn send(
    c: &SlackChannel,
    batch: &[Notification],
    timeout: std::time::Duration,
) -> Result<(), SendError> {
    let url = c
        .url
        .read()
        .map_err(|e| SendError::config(format!("Slack webhook URL: {e}")))?;
    // The caller splits batches at MAX_PER_MESSAGE, so that a failure never
    // resends a part that was delivered.
    post_json(&url, c.ca_bundle.as_deref(), &[], &payload(batch), timeout).await
}

/// Escapes text for Slack mrkdwn.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn icon(n: &Notification) -> &'static str {
    match (n.kind, n.severity) {
        (Kind::Resolved, _) => ":large_green_circle:",
        (Kind::Test, _) => ":large_blue_circle:",
        (_, Severity::Critical) => ":red_circle:",
        (_, Severity::Warning) => ":large_orange_circle:",
    }
}

/// The message body posted to the webhook.
pub(super) fn payload(batch: &[Notification]) -> Value {
    let header = truncate(&format!("certkeep: {}", message::subject(batch)), 150);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": header, "emoji": true}
    })];
    for n in batch {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&format!("{} *{}*", icon(n), esc(&headline(n))), 3000)}
        }));
        let mut fields: Vec<Value> = details(n)
            .into_iter()
            .map(|(label, v)| {
                json!({"type": "mrkdwn", "text": truncate(&format!("*{}*\n{}", esc(&label), esc(&v)), 2000)})
            })
            .collect();
        fields.push(json!({"type": "mrkdwn", "text": format!("*Since*\n{}", rfc3339(n.since))}));
        // Slack allows 10 fields per section.
        fields.truncate(10);
        blocks.push(json!({"type": "section", "fields": fields}));
        blocks.push(json!({"type": "divider"}));
    }
    json!({
        "text": truncate(&message::plain_text(batch), 3000),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_kit_shape() {
        let mut n = message::test_notification("s", 0);
        n.details.insert("endpoint".into(), "a<b>:443".into());
        let v = payload(&[n]);
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[1]["type"], "section");
        let fields = blocks[2]["fields"].as_array().unwrap();
        assert_eq!(fields[0]["text"], "*Endpoint*\na&lt;b&gt;:443");
        assert!(v["text"].as_str().unwrap().contains("TEST"));
    }
}
