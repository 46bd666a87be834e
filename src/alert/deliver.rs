//! Carries out the delivery queue's decisions: sends what is due, one
//! message per channel (split only where the channel limits message size),
//! and records the outcome so failures are retried and successes never resent.

use std::time::Duration;

use super::channel::SendError;
use super::config::{AlertConfig, Channel, ChannelKind};
use super::message::test_notification;
use super::state::{AlertState, Expired, Notification, Ts};
use super::{alertmanager, email, slack, webhook, AlertError};

/// A `Retry-After` this short is waited out within the same run.
const SHORT_RETRY: Duration = Duration::from_secs(10);

/// The outcome of one message to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelOutcome {
    pub channel: String,
    /// Notifications in the message.
    pub notifications: usize,
    /// None when delivered.
    pub error: Option<String>,
}

/// What [`super::Alerter::flush`] did.
#[derive(Debug, Clone, Default)]
pub struct DeliveryReport {
    pub outcomes: Vec<ChannelOutcome>,
    /// Given up on after `max_delivery_age`.
    pub expired: Vec<Expired>,
    /// Deliveries still queued for a later run.
    pub queued: usize,
}

impl DeliveryReport {
    /// True when nothing failed or expired in this flush.
    pub fn ok(&self) -> bool {
        self.expired.is_empty() && self.outcomes.iter().all(|o| o.error.is_none())
    }
}

/// What one channel's task did with one message.
enum Sent {
    Delivered(Vec<String>),
    /// The ids of this message and of every later one of the batch.
    Failed(Vec<String>, SendError),
}

fn ids(chunk: &[Notification]) -> Vec<String> {
    chunk.iter().map(|n| n.id.clone()).collect()
}

/// How many notifications fit in one message of this channel.
fn max_per_message(c: &Channel) -> usize {
    match c.kind {
        ChannelKind::Slack(_) => slack::MAX_PER_MESSAGE,
        ChannelKind::Email(_) | ChannelKind::Webhook(_) | ChannelKind::Alertmanager(_) => 200,
    }
}

/// One attempt, ended after the channel's timeout whatever the peer does
/// (lettre bounds only the TCP connect; a server that accepts and never
/// greets, or stalls a TLS handshake, would hold the run for ever).
async fn send_once(channel: &Channel, batch: &[Notification]) -> Result<(), SendError> {
    let attempt = async {
        match &channel.kind {
            ChannelKind::Email(c) => email::send(c, batch).await,
            ChannelKind::Slack(c) => slack::send(c, batch, channel.timeout).await,
            ChannelKind::Webhook(c) => {
                webhook::send(c, &channel.name, batch, channel.timeout).await
            }
            ChannelKind::Alertmanager(c) => {
                alertmanager::send(c, &channel.name, batch, channel.timeout).await
            }
        }
    };
    match tokio::time::timeout(channel.timeout, attempt).await {
        Ok(r) => r,
        Err(_) => {
            let peer = match &channel.kind {
                ChannelKind::Email(c) => format!("SMTP server {}:{}", c.host, c.port),
                ChannelKind::Slack(_) => "the Slack webhook".into(),
                ChannelKind::Webhook(_) => "the webhook".into(),
                ChannelKind::Alertmanager(_) => "Alertmanager".into(),
            };
            Err(SendError::new(format!(
                "{peer} did not complete the delivery within {:?} (the channel's timeout)",
                channel.timeout
            )))
        }
    }
}

/// Sends one message; a short `Retry-After` is waited out once.
pub async fn send(channel: &Channel, batch: &[Notification]) -> Result<(), SendError> {
    let mut waited = false;
    loop {
        let r = send_once(channel, batch).await;
        match r {
            Err(e) if !waited && e.retry_after.is_some_and(|d| d <= SHORT_RETRY) => {
                let wait = e.retry_after.unwrap_or_default();
                tracing::info!(channel = %channel.name, error = %e, "waiting {wait:?} as the server asked, then retrying");
                if crate::shutdown::global().sleep(wait).await.is_err() {
                    return Err(e);
                }
                waited = true;
            }
            r => return r,
        }
    }
}

/// Sends a test message to `channel`, outside the queue.
pub async fn send_test(channel: &Channel, now: Ts) -> Result<(), SendError> {
    send(channel, &[test_notification(&channel.name, now)]).await
}

/// Sends everything due at `now`; `save` persists the state after each
/// message so a crash resends at most the message in flight.
pub async fn flush(
    state: &mut AlertState,
    config: &AlertConfig,
    now: Ts,
    mut save: impl FnMut(&AlertState) -> Result<(), AlertError>,
) -> Result<DeliveryReport, AlertError> {
    let policy = config.policy();
    let mut report = DeliveryReport::default();
    let gone: Vec<String> = state
        .queue
        .keys()
        .filter(|c| config.channel(c).is_none())
        .cloned()
        .collect();
    for c in &gone {
        let dropped = state.drop_channel(c);
        tracing::warn!(channel = %c, dropped = dropped.len(), "alert channel is no longer configured; dropping its undelivered alerts");
    }
    let (due, expired) = state.due(now, &policy);
    for e in &expired {
        tracing::error!(
            channel = %e.channel,
            alert = %e.id,
            attempts = e.attempts,
            last_error = e.last_error.as_deref().unwrap_or("none"),
            "giving up on an alert undelivered for {:?} (raise [alert] max_delivery_age or fix the channel)",
            config.max_delivery_age
        );
    }
    report.expired = expired;
    save(state)?;
    // Channels are sent to at the same time, each on its own task: a dead
    // receiver costs the run its channel's timeout once, not once per
    // channel, and never holds up the other channels.
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (name, batch)) in due.into_iter().enumerate() {
        let Some(channel) = config.channel(&name).cloned() else {
            continue;
        };
        tasks.spawn(async move {
            let per = max_per_message(&channel);
            let mut sent: Vec<Sent> = Vec::new();
            let chunks: Vec<&[Notification]> = batch.chunks(per).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                match send(&channel, chunk).await {
                    Ok(()) => sent.push(Sent::Delivered(ids(chunk))),
                    Err(e) => {
                        // The rest of this channel's batch waits with it.
                        let rest = chunks[i..].iter().flat_map(|c| ids(c)).collect();
                        sent.push(Sent::Failed(rest, e));
                        break;
                    }
                }
            }
            (index, name, sent)
        });
    }
    let mut outcomes: Vec<(usize, ChannelOutcome)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (index, name, sent) = match joined {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("an alert delivery task failed: {e}; its alerts stay queued");
                continue;
            }
        };
        for s in sent {
            match s {
                Sent::Delivered(ids) => {
                    state.delivered(&name, &ids, now);
                    tracing::info!(channel = %name, alerts = ids.len(), "alert message delivered");
                    outcomes.push((
                        index,
                        ChannelOutcome {
                            channel: name.clone(),
                            notifications: ids.len(),
                            error: None,
                        },
                    ));
                }
                Sent::Failed(rest, e) => {
                    let retry = e.retry_after.map(|d| d.as_secs());
                    state.failed(&name, &rest, now, &e.message, retry, &policy);
                    let next = state
                        .queue
                        .get(&name)
                        .and_then(|q| q.iter().map(|d| d.next_at).min())
                        .unwrap_or(now);
                    tracing::warn!(
                        channel = %name,
                        alerts = rest.len(),
                        error = %e,
                        "alert delivery failed; kept queued, next attempt in {}s",
                        next.saturating_sub(now)
                    );
                    outcomes.push((
                        index,
                        ChannelOutcome {
                            channel: name.clone(),
                            notifications: rest.len(),
                            error: Some(e.message),
                        },
                    ));
                }
            }
            save(state)?;
        }
    }
    // Report in the channels' order, whatever order they finished in.
    outcomes.sort_by_key(|(index, _)| *index);
    report.outcomes = outcomes.into_iter().map(|(_, o)| o).collect();
    report.queued = state.queued();
    Ok(report)
}
