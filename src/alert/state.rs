//! The alert state machine: pure decisions over plain data, no IO, the clock
//! passed in as Unix seconds.
//!
//! Two halves live in one serializable [`AlertState`] so that one atomic file
//! write keeps them consistent:
//!
//! * alert records: what is open, since when, which expiry thresholds have
//!   fired for which certificate, and the streaks that damp flapping;
//! * the delivery queue: per channel, the notifications not yet delivered,
//!   with their attempt count and next attempt time.
//!
//! Rules (documented for operators in the README, "Alerts"):
//!
//! * A key seen for the first time with a problem fires at once.
//! * A firing key notifies again when its severity rises (escalation), when a
//!   lower expiry threshold is crossed for the same certificate, or after
//!   `repeat_interval` (critical only, unless `repeat_warnings`).
//! * A firing key resolves after `resolve_after_checks` consecutive checks
//!   that reported it OK *and* at least `resolve_after` since the first of
//!   them. A key that is not checked at all keeps its state: absence of
//!   evidence is not resolution.
//! * A key that resolved before fires again only after
//!   `refire_after_checks` consecutive bad checks, so an endpoint behind a
//!   load balancer that alternates between a good and a bad backend gives
//!   one alert, not a storm.
//! * Expiry thresholds fire once per certificate (by fingerprint): a renewed
//!   certificate starts its own set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Unix time in seconds.
pub type Ts = u64;

/// How many certificates per key remember which thresholds fired.
const FINGERPRINTS_KEPT: usize = 4;

/// Version of the on-disk format of [`AlertState`].
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem observed in this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable identity, e.g. `probe:example.com:443:expiry` or `renew:example.com`.
    pub key: String,
    pub severity: Severity,
    /// One line for subjects and headers.
    pub summary: String,
    /// Facts shown in messages: `endpoint` or `certificate`, `problem`,
    /// `days_left`, `issuer`, `serial`, ...
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// SHA-256 fingerprint of the certificate concerned, when there is one.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The expiry threshold (in days) this observation has crossed, if any;
    /// see [`crate::alert::config::AlertConfig::expiry_threshold`].
    #[serde(default)]
    pub threshold: Option<u32>,
}

/// The check name of a key `kind:subject:check` (its last part): short and
/// stable, what receivers group on (`alertname`).
pub fn check_of(key: &str) -> &str {
    key.rsplit(':').next().unwrap_or(key)
}

/// A key of an earlier release, mapped to its `kind:subject:check` form, so
/// an alert opened before an upgrade still resolves after it.
pub fn current_key(key: &str) -> Option<String> {
    match key {
        "renew:run" => Some("renew:run:deploy".into()),
        "agent:ca-unreachable" => Some("agent:ca:reachable".into()),
        "agent:renewal-check" => Some("agent:renewal-check:run".into()),
        _ => {
            let name = key.strip_prefix("renew:")?;
            (!name.contains(':')).then(|| format!("renew:{name}:renewal"))
        }
    }
}

impl Problem {
    pub fn new(key: impl Into<String>, severity: Severity, summary: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            severity,
            summary: summary.into(),
            details: BTreeMap::new(),
            fingerprint: None,
            threshold: None,
        }
    }

    pub fn detail(mut self, name: &str, value: impl Into<String>) -> Self {
        self.details.insert(name.to_string(), value.into());
        self
    }
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A new problem (or one that came back).
    Firing,
    /// The severity rose from warning to critical.
    Escalated,
    /// A lower expiry threshold was crossed.
    Threshold,
    /// Still unresolved after `repeat_interval`.
    Repeat,
    /// The problem cleared.
    Resolved,
    /// `certkeep alert test`.
    Test,
    /// Still open, re-sent to a channel that forgets alerts not re-sent in
    /// time (Alertmanager); only queued for that channel.
    Refresh,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Firing => "firing",
            Kind::Escalated => "escalated",
            Kind::Threshold => "threshold",
            Kind::Repeat => "repeat",
            Kind::Resolved => "resolved",
            Kind::Test => "test",
            Kind::Refresh => "refresh",
        }
    }
}

/// One message about one key, to be delivered to every matching channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique across runs (`<key>#<n>`): deliveries are deduplicated by it.
    pub id: String,
    pub key: String,
    pub kind: Kind,
    pub severity: Severity,
    pub summary: String,
    pub details: BTreeMap<String, String>,
    /// When this episode of the problem started.
    pub since: Ts,
    /// When the notification was decided.
    pub at: Ts,
}

impl Notification {
    pub fn is_resolved(&self) -> bool {
        self.kind == Kind::Resolved
    }
}

/// Timing rules, all in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub repeat_interval: u64,
    pub repeat_warnings: bool,
    pub resolve_after_checks: u32,
    pub resolve_after: u64,
    pub refire_after_checks: u32,
    /// A resolved record is forgotten after this long; the key then fires at
    /// once again if it comes back.
    pub forget_resolved_after: u64,
    /// A key not checked at all for this long (its endpoint or certificate
    /// left the config) is dropped without a message.
    pub forget_unchecked_after: u64,
    pub retry_initial: u64,
    pub retry_max: u64,
    /// A notification still undelivered after this long is dropped (and logged).
    pub max_delivery_age: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            repeat_interval: 24 * 3600,
            repeat_warnings: false,
            resolve_after_checks: 2,
            resolve_after: 0,
            refire_after_checks: 2,
            forget_resolved_after: 7 * 24 * 3600,
            forget_unchecked_after: 30 * 24 * 3600,
            retry_initial: 60,
            retry_max: 6 * 3600,
            max_delivery_age: 3 * 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Seen bad again after a resolution; waiting for `refire_after_checks`.
    Pending,
    /// Notified and open.
    Firing,
    /// Resolved message decided; kept for flap damping until forgotten.
    Resolved,
}

/// What is known about one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub phase: Phase,
    pub severity: Severity,
    /// The highest severity of this episode: a resolution reaches every
    /// channel that heard about it.
    #[serde(default)]
    pub peak: Option<Severity>,
    pub summary: String,
    pub details: BTreeMap<String, String>,
    pub fingerprint: Option<String>,
    /// Start of the current episode.
    pub since: Ts,
    /// Last time the key was checked (bad or OK).
    pub last_seen: Ts,
    pub last_notified: Option<Ts>,
    pub ok_streak: u32,
    pub ok_since: Option<Ts>,
    pub bad_streak: u32,
    pub resolved_at: Option<Ts>,
    /// Thresholds fired, per certificate fingerprint ("" when none), most recent last.
    pub thresholds: Vec<(String, Vec<u32>)>,
    /// Per refreshing channel (see [`AlertState::refresh`]): when this
    /// alert was last queued there as a refresh.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refreshed: BTreeMap<String, Ts>,
}

impl Record {
    /// Notes `threshold` for `fingerprint`; true when it is newly crossed
    /// (lower than every threshold already fired for that certificate).
    fn cross(&mut self, fingerprint: Option<&str>, threshold: Option<u32>) -> bool {
        let Some(t) = threshold else { return false };
        let fp = fingerprint.unwrap_or("").to_string();
        let entry = match self.thresholds.iter().position(|(f, _)| *f == fp) {
            Some(i) => self.thresholds.remove(i),
            None => (fp, Vec::new()),
        };
        let (fp, mut fired) = entry;
        let new = fired.iter().all(|&x| t < x);
        if new {
            fired.push(t);
        }
        self.thresholds.push((fp, fired));
        if self.thresholds.len() > FINGERPRINTS_KEPT {
            self.thresholds.remove(0);
        }
        new
    }

    fn update_from(&mut self, p: &Problem, now: Ts) {
        self.severity = p.severity;
        self.peak = Some(self.peak.map_or(p.severity, |s| s.max(p.severity)));
        self.summary = p.summary.clone();
        self.details = p.details.clone();
        self.fingerprint = p.fingerprint.clone();
        self.last_seen = now;
    }
}

/// A queued delivery of one notification to one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub attempts: u32,
    pub queued_at: Ts,
    pub next_at: Ts,
    pub last_error: Option<String>,
}

/// A delivery given up on because it stayed undelivered for `max_delivery_age`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub channel: String,
    pub id: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Everything persisted in `<store>/state/alerts.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    pub version: u32,
    pub next_id: u64,
    pub alerts: BTreeMap<String, Record>,
    /// Notifications referenced by the queue.
    pub notifications: BTreeMap<String, Notification>,
    pub queue: BTreeMap<String, Vec<Delivery>>,
    /// Per channel: ids delivered and when, so nothing is sent twice.
    pub sent: BTreeMap<String, BTreeMap<String, Ts>>,
}

impl Default for AlertState {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            next_id: 1,
            alerts: BTreeMap::new(),
            notifications: BTreeMap::new(),
            queue: BTreeMap::new(),
            sent: BTreeMap::new(),
        }
    }
}

impl AlertState {
    /// Renames the alert records of keys from earlier releases
    /// ([`current_key`]); a record already under the new key wins.
    pub fn migrate_legacy_keys(&mut self) {
        let old: Vec<String> = self
            .alerts
            .keys()
            .filter(|k| current_key(k).is_some())
            .cloned()
            .collect();
        for k in old {
            if let (Some(new), Some(r)) = (current_key(&k), self.alerts.remove(&k)) {
                self.alerts.entry(new).or_insert(r);
            }
        }
    }

    fn notification(&mut self, key: &str, kind: Kind, r: &Record, now: Ts) -> Notification {
        let id = format!("{key}#{}", self.next_id);
        self.next_id += 1;
        Notification {
            id,
            key: key.to_string(),
            kind,
            severity: if kind == Kind::Resolved {
                r.peak.unwrap_or(r.severity).max(r.severity)
            } else {
                r.severity
            },
            summary: r.summary.clone(),
            details: r.details.clone(),
            since: r.since,
            at: now,
        }
    }

    /// Takes one run's observations and decides what to notify.
    ///
    /// `problems` are the keys found bad now; `ok_keys` the keys checked and
    /// found fine. A key in both counts as bad. Keys in neither are left alone.
    pub fn observe(
        &mut self,
        now: Ts,
        problems: &[Problem],
        ok_keys: &[String],
        policy: &Policy,
    ) -> Vec<Notification> {
        // One observation per key: the most severe wins.
        let mut bad: BTreeMap<&str, &Problem> = BTreeMap::new();
        for p in problems {
            match bad.get(p.key.as_str()) {
                Some(q) if q.severity >= p.severity => {}
                _ => {
                    bad.insert(&p.key, p);
                }
            }
        }
        let mut out = Vec::new();
        for (key, p) in &bad {
            if let Some(n) = self.observe_bad(now, key, p, policy) {
                out.push(n);
            }
        }
        for key in ok_keys {
            if bad.contains_key(key.as_str()) {
                continue;
            }
            if let Some(n) = self.observe_ok(now, key, policy) {
                out.push(n);
            }
        }
        self.alerts.retain(|_, r| {
            let forgotten = r.phase == Phase::Resolved
                && r.resolved_at.unwrap_or(0) + policy.forget_resolved_after <= now;
            let unchecked = r.last_seen + policy.forget_unchecked_after <= now;
            !(forgotten || unchecked)
        });
        out
    }

    fn observe_bad(
        &mut self,
        now: Ts,
        key: &str,
        p: &Problem,
        policy: &Policy,
    ) -> Option<Notification> {
        let Some(mut r) = self.alerts.remove(key) else {
            let mut r = Record {
                phase: Phase::Firing,
                severity: p.severity,
                peak: Some(p.severity),
                summary: p.summary.clone(),
                details: p.details.clone(),
                fingerprint: p.fingerprint.clone(),
                since: now,
                last_seen: now,
                last_notified: Some(now),
                ok_streak: 0,
                ok_since: None,
                bad_streak: 1,
                resolved_at: None,
                thresholds: Vec::new(),
                refreshed: BTreeMap::new(),
            };
            r.cross(p.fingerprint.as_deref(), p.threshold);
            let n = self.notification(key, Kind::Firing, &r, now);
            self.alerts.insert(key.to_string(), r);
            return Some(n);
        };
        r.ok_streak = 0;
        r.ok_since = None;
        r.bad_streak = r.bad_streak.saturating_add(1);
        let old = r.severity;
        let old_phase = r.phase;
        r.update_from(p, now);
        let crossed = r.cross(p.fingerprint.as_deref(), p.threshold);
        let kind = match old_phase {
            Phase::Firing => {
                let repeat_due = (r.severity == Severity::Critical || policy.repeat_warnings)
                    && now >= r.last_notified.unwrap_or(0) + policy.repeat_interval;
                if r.severity > old {
                    Some(Kind::Escalated)
                } else if crossed {
                    Some(Kind::Threshold)
                } else if repeat_due {
                    Some(Kind::Repeat)
                } else {
                    None
                }
            }
            Phase::Resolved | Phase::Pending => {
                if old_phase == Phase::Resolved {
                    r.phase = Phase::Pending;
                    r.since = now;
                    r.peak = Some(r.severity);
                }
                if r.bad_streak >= policy.refire_after_checks {
                    r.phase = Phase::Firing;
                    r.resolved_at = None;
                    Some(Kind::Firing)
                } else {
                    None
                }
            }
        };
        let n = kind.map(|k| {
            r.last_notified = Some(now);
            self.notification(key, k, &r, now)
        });
        self.alerts.insert(key.to_string(), r);
        n
    }

    fn observe_ok(&mut self, now: Ts, key: &str, policy: &Policy) -> Option<Notification> {
        let mut r = self.alerts.remove(key)?;
        r.bad_streak = 0;
        r.last_seen = now;
        let n = match r.phase {
            Phase::Firing => {
                r.ok_streak = r.ok_streak.saturating_add(1);
                let first_ok = *r.ok_since.get_or_insert(now);
                if r.ok_streak >= policy.resolve_after_checks
                    && now >= first_ok + policy.resolve_after
                {
                    r.phase = Phase::Resolved;
                    r.resolved_at = Some(now);
                    r.last_notified = Some(now);
                    Some(self.notification(key, Kind::Resolved, &r, now))
                } else {
                    None
                }
            }
            // Never announced, so nothing to resolve: back to quiet.
            Phase::Pending => {
                r.phase = Phase::Resolved;
                None
            }
            Phase::Resolved => None,
        };
        self.alerts.insert(key.to_string(), r);
        n
    }

    /// Queues a [`Kind::Refresh`] of every open alert on each channel of
    /// `channels` (`(name, minimum severity, interval in seconds)`) that has
    /// not heard of it for `interval`: since its last notification or
    /// refresh. Nothing is queued for a key that still has a delivery queued
    /// on that channel (it goes out with a fresh time when delivered), so an
    /// unreachable receiver does not fill the queue. Returns what was queued.
    pub fn refresh(&mut self, now: Ts, channels: &[(String, Severity, u64)]) -> Vec<Notification> {
        let mut out = Vec::new();
        let keys: Vec<String> = self.open().map(|(k, _)| k.clone()).collect();
        for key in keys {
            for (channel, min, interval) in channels {
                let Some(r) = self.alerts.get(&key) else {
                    continue;
                };
                if r.severity < *min {
                    continue;
                }
                let base = r
                    .last_notified
                    .unwrap_or(r.since)
                    .max(r.refreshed.get(channel).copied().unwrap_or(0));
                if now < base.saturating_add(*interval) {
                    continue;
                }
                let prefix = format!("{key}#");
                let pending = self.queue.get(channel).is_some_and(|q| {
                    q.iter().any(|d| {
                        d.id.strip_prefix(&prefix)
                            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    })
                });
                if pending {
                    continue;
                }
                let r = r.clone();
                let n = self.notification(&key, Kind::Refresh, &r, now);
                if let Some(r) = self.alerts.get_mut(&key) {
                    r.refreshed.insert(channel.clone(), now);
                }
                self.enqueue(&n, &[(channel.clone(), *min)], now);
                out.push(n);
            }
        }
        out
    }

    /// Keys that are open (notified and not resolved), with their records.
    pub fn open(&self) -> impl Iterator<Item = (&String, &Record)> {
        self.alerts.iter().filter(|(_, r)| r.phase == Phase::Firing)
    }

    /// Queues `n` for every channel whose minimum severity it meets. A
    /// notification already queued or delivered on a channel is not queued again.
    pub fn enqueue(&mut self, n: &Notification, channels: &[(String, Severity)], now: Ts) {
        let mut queued = false;
        for (channel, min) in channels {
            if n.severity < *min {
                continue;
            }
            if self
                .sent
                .get(channel)
                .is_some_and(|s| s.contains_key(&n.id))
            {
                continue;
            }
            let q = self.queue.entry(channel.clone()).or_default();
            if q.iter().any(|d| d.id == n.id) {
                continue;
            }
            q.push(Delivery {
                id: n.id.clone(),
                attempts: 0,
                queued_at: now,
                next_at: now,
                last_error: None,
            });
            queued = true;
        }
        if queued {
            self.notifications.insert(n.id.clone(), n.clone());
        }
    }

    /// Drops deliveries older than `max_delivery_age` (returned, to be logged)
    /// and returns, per channel, the notifications due now, oldest first.
    pub fn due(
        &mut self,
        now: Ts,
        policy: &Policy,
    ) -> (BTreeMap<String, Vec<Notification>>, Vec<Expired>) {
        let mut expired = Vec::new();
        for (channel, q) in self.queue.iter_mut() {
            q.retain(|d| {
                let keep = now < d.queued_at + policy.max_delivery_age;
                if !keep {
                    expired.push(Expired {
                        channel: channel.clone(),
                        id: d.id.clone(),
                        attempts: d.attempts,
                        last_error: d.last_error.clone(),
                    });
                }
                keep
            });
        }
        let mut due = BTreeMap::new();
        for (channel, q) in &self.queue {
            let batch: Vec<Notification> = q
                .iter()
                .filter(|d| d.next_at <= now)
                .filter_map(|d| self.notifications.get(&d.id).cloned())
                .collect();
            if !batch.is_empty() {
                due.insert(channel.clone(), batch);
            }
        }
        self.gc(now, policy);
        (due, expired)
    }

    /// Records that `ids` reached `channel`.
    pub fn delivered(&mut self, channel: &str, ids: &[String], now: Ts) {
        if let Some(q) = self.queue.get_mut(channel) {
            q.retain(|d| !ids.contains(&d.id));
        }
        let sent = self.sent.entry(channel.to_string()).or_default();
        for id in ids {
            sent.insert(id.clone(), now);
        }
    }

    /// Records a failed attempt: the next one waits `retry_initial`, doubling
    /// per attempt up to `retry_max`, and never less than the server's `retry_after`.
    pub fn failed(
        &mut self,
        channel: &str,
        ids: &[String],
        now: Ts,
        error: &str,
        retry_after: Option<u64>,
        policy: &Policy,
    ) {
        let Some(q) = self.queue.get_mut(channel) else {
            return;
        };
        for d in q.iter_mut().filter(|d| ids.contains(&d.id)) {
            d.attempts = d.attempts.saturating_add(1);
            let exp = d.attempts.saturating_sub(1).min(30);
            let backoff = policy
                .retry_initial
                .saturating_mul(1u64 << exp)
                .min(policy.retry_max);
            d.next_at = now + backoff.max(retry_after.unwrap_or(0));
            d.last_error = Some(error.to_string());
        }
    }

    /// Drops the queue of a channel that is no longer configured; returns the ids dropped.
    pub fn drop_channel(&mut self, channel: &str) -> Vec<String> {
        self.queue
            .remove(channel)
            .map(|q| q.into_iter().map(|d| d.id).collect())
            .unwrap_or_default()
    }

    /// Queued deliveries in total.
    pub fn queued(&self) -> usize {
        self.queue.values().map(Vec::len).sum()
    }

    /// Forgets delivered ids after twice the delivery age (nothing older can
    /// still be queued) and notifications no queue refers to.
    fn gc(&mut self, now: Ts, policy: &Policy) {
        let horizon = policy.max_delivery_age.saturating_mul(2);
        for s in self.sent.values_mut() {
            s.retain(|_, at| *at + horizon > now);
        }
        self.sent.retain(|_, s| !s.is_empty());
        self.queue.retain(|_, q| !q.is_empty());
        let queue = &self.queue;
        self.notifications
            .retain(|id, _| queue.values().any(|q| q.iter().any(|d| &d.id == id)));
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
