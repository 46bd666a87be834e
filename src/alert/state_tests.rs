use super::*;

const H: u64 = 3600;
const D: u64 = 24 * H;

/// A fake clock and the state under test.
struct Bed {
    now: Ts,
    state: AlertState,
    policy: Policy,
}

impl Bed {
    fn new() -> Self {
        Self {
            now: 1_750_000_000,
            state: AlertState::default(),
            policy: Policy::default(),
        }
    }
    fn advance(&mut self, secs: u64) {
        self.now += secs;
    }
    fn run(&mut self, problems: &[Problem], ok: &[&str]) -> Vec<(String, Kind)> {
        let ok: Vec<String> = ok.iter().map(|s| s.to_string()).collect();
        self.state
            .observe(self.now, problems, &ok, &self.policy)
            .into_iter()
            .map(|n| (n.key, n.kind))
            .collect()
    }
}

fn crit(key: &str) -> Problem {
    Problem::new(key, Severity::Critical, format!("{key} is broken"))
}
fn warn(key: &str) -> Problem {
    Problem::new(key, Severity::Warning, format!("{key} is degraded"))
}
fn expiry(key: &str, fp: &str, threshold: u32) -> Problem {
    let mut p = warn(key);
    p.fingerprint = Some(fp.into());
    p.threshold = Some(threshold);
    p
}
fn k(key: &str, kind: Kind) -> (String, Kind) {
    (key.to_string(), kind)
}

#[test]
fn new_problem_fires_once() {
    let mut b = Bed::new();
    assert_eq!(b.run(&[crit("a")], &[]), vec![k("a", Kind::Firing)]);
    b.advance(H);
    assert_eq!(b.run(&[crit("a")], &[]), vec![]);
}

#[test]
fn critical_repeats_after_interval_warning_does_not() {
    let mut b = Bed::new();
    b.run(&[crit("c"), warn("w")], &[]);
    b.advance(D - 1);
    assert_eq!(b.run(&[crit("c"), warn("w")], &[]), vec![]);
    b.advance(1);
    assert_eq!(
        b.run(&[crit("c"), warn("w")], &[]),
        vec![k("c", Kind::Repeat)]
    );
    b.advance(H);
    assert_eq!(b.run(&[crit("c"), warn("w")], &[]), vec![]);
    b.advance(D);
    assert_eq!(
        b.run(&[crit("c"), warn("w")], &[]),
        vec![k("c", Kind::Repeat)]
    );
}

#[test]
fn warnings_repeat_when_configured() {
    let mut b = Bed::new();
    b.policy.repeat_warnings = true;
    b.policy.repeat_interval = 6 * H;
    b.run(&[warn("w")], &[]);
    b.advance(6 * H);
    assert_eq!(b.run(&[warn("w")], &[]), vec![k("w", Kind::Repeat)]);
}

#[test]
fn resolves_after_two_ok_checks_once() {
    let mut b = Bed::new();
    b.run(&[crit("a")], &[]);
    b.advance(H);
    assert_eq!(b.run(&[], &["a"]), vec![]);
    b.advance(H);
    assert_eq!(b.run(&[], &["a"]), vec![k("a", Kind::Resolved)]);
    b.advance(H);
    assert_eq!(b.run(&[], &["a"]), vec![]);
    assert_eq!(b.state.open().count(), 0);
}

#[test]
fn resolve_can_also_require_time() {
    let mut b = Bed::new();
    b.policy.resolve_after_checks = 1;
    b.policy.resolve_after = 2 * H;
    b.run(&[crit("a")], &[]);
    b.advance(H);
    assert_eq!(b.run(&[], &["a"]), vec![]);
    b.advance(H);
    assert_eq!(b.run(&[], &["a"]), vec![]);
    b.advance(H);
    assert_eq!(b.run(&[], &["a"]), vec![k("a", Kind::Resolved)]);
}

#[test]
fn absence_is_not_resolution() {
    let mut b = Bed::new();
    b.run(&[crit("a"), crit("b")], &[]);
    for _ in 0..5 {
        b.advance(H);
        // Only b is checked (say, a renew run that does not probe a).
        assert_eq!(b.run(&[crit("b")], &[]), vec![]);
    }
    assert_eq!(b.state.open().count(), 2);
    b.advance(H);
    b.run(&[], &["a"]);
    b.advance(H);
    assert_eq!(b.run(&[], &["a"]), vec![k("a", Kind::Resolved)]);
}

#[test]
fn ok_for_unknown_key_is_silent() {
    let mut b = Bed::new();
    assert_eq!(b.run(&[], &["never-seen"]), vec![]);
    assert!(b.state.alerts.is_empty());
}

#[test]
fn escalation_fires_again_deescalation_does_not() {
    let mut b = Bed::new();
    b.run(&[warn("a")], &[]);
    b.advance(H);
    assert_eq!(b.run(&[crit("a")], &[]), vec![k("a", Kind::Escalated)]);
    b.advance(H);
    assert_eq!(b.run(&[warn("a")], &[]), vec![]);
    b.advance(H);
    assert_eq!(b.run(&[crit("a")], &[]), vec![k("a", Kind::Escalated)]);
}

#[test]
fn escalation_restarts_repeat_clock() {
    let mut b = Bed::new();
    b.run(&[warn("a")], &[]);
    b.advance(20 * H);
    b.run(&[crit("a")], &[]);
    b.advance(20 * H);
    assert_eq!(b.run(&[crit("a")], &[]), vec![]);
    b.advance(4 * H);
    assert_eq!(b.run(&[crit("a")], &[]), vec![k("a", Kind::Repeat)]);
}

#[test]
fn resolution_reaches_channels_that_heard_the_peak() {
    let mut b = Bed::new();
    b.run(&[warn("a")], &[]);
    b.run(&[crit("a")], &[]);
    b.run(&[warn("a")], &[]);
    b.run(&[], &["a"]);
    let n = b.state.observe(b.now, &[], &["a".into()], &b.policy);
    assert_eq!(n[0].kind, Kind::Resolved);
    assert_eq!(n[0].severity, Severity::Critical);
    // A new episode starts from its own severity.
    b.advance(H);
    b.run(&[warn("a")], &[]);
    b.advance(H);
    b.run(&[warn("a")], &[]);
    b.run(&[], &["a"]);
    let n = b.state.observe(b.now, &[], &["a".into()], &b.policy);
    assert_eq!(n[0].severity, Severity::Warning);
}

#[test]
fn unchecked_keys_are_dropped_after_a_month_checked_ones_stay() {
    let mut b = Bed::new();
    b.run(&[crit("gone"), crit("kept")], &[]);
    for _ in 0..29 {
        b.advance(D);
        b.run(&[crit("kept")], &[]);
    }
    assert_eq!(b.state.open().count(), 2);
    b.advance(D);
    b.run(&[crit("kept")], &[]);
    assert_eq!(
        b.state.open().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["kept"]
    );
}

#[test]
fn most_severe_duplicate_wins() {
    let mut b = Bed::new();
    let n = b
        .state
        .observe(b.now, &[warn("a"), crit("a")], &[], &b.policy);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].severity, Severity::Critical);
}

#[test]
fn problem_and_ok_for_same_key_counts_as_problem() {
    let mut b = Bed::new();
    b.run(&[crit("a")], &[]);
    for _ in 0..3 {
        b.advance(H);
        assert_eq!(b.run(&[crit("a")], &["a"]), vec![]);
    }
    assert_eq!(b.state.open().count(), 1);
}

#[test]
fn thresholds_fire_once_each_in_descending_order() {
    let mut b = Bed::new();
    let key = "probe:example.com:443:expiry";
    assert_eq!(
        b.run(&[expiry(key, "A", 14)], &[]),
        vec![k(key, Kind::Firing)]
    );
    for _ in 0..6 {
        b.advance(D);
        assert_eq!(b.run(&[expiry(key, "A", 14)], &[]), vec![]);
    }
    b.advance(D);
    assert_eq!(
        b.run(&[expiry(key, "A", 7)], &[]),
        vec![k(key, Kind::Threshold)]
    );
    b.advance(H);
    assert_eq!(b.run(&[expiry(key, "A", 7)], &[]), vec![]);
    // A larger threshold again (clock skew, odd caller) does not fire.
    assert_eq!(b.run(&[expiry(key, "A", 14)], &[]), vec![]);
    b.advance(4 * D);
    assert_eq!(
        b.run(&[expiry(key, "A", 3)], &[]),
        vec![k(key, Kind::Threshold)]
    );
    b.advance(2 * D);
    assert_eq!(
        b.run(&[expiry(key, "A", 1)], &[]),
        vec![k(key, Kind::Threshold)]
    );
}

#[test]
fn first_seen_below_several_thresholds_fires_once() {
    let mut b = Bed::new();
    assert_eq!(
        b.run(&[expiry("e", "A", 3)], &[]),
        vec![k("e", Kind::Firing)]
    );
    b.advance(D);
    assert_eq!(b.run(&[expiry("e", "A", 7)], &[]), vec![]);
    assert_eq!(b.run(&[expiry("e", "A", 3)], &[]), vec![]);
}

#[test]
fn new_certificate_resets_thresholds() {
    let mut b = Bed::new();
    b.run(&[expiry("e", "A", 7)], &[]);
    b.advance(D);
    b.run(&[expiry("e", "A", 3)], &[]);
    // Renewed, but the new certificate is short-lived and crosses 7 days too.
    b.advance(D);
    assert_eq!(
        b.run(&[expiry("e", "B", 7)], &[]),
        vec![k("e", Kind::Threshold)]
    );
    b.advance(D);
    assert_eq!(b.run(&[expiry("e", "B", 7)], &[]), vec![]);
    b.advance(D);
    assert_eq!(
        b.run(&[expiry("e", "B", 3)], &[]),
        vec![k("e", Kind::Threshold)]
    );
}

#[test]
fn certificate_change_without_threshold_is_quiet() {
    let mut b = Bed::new();
    let mut p = warn("chain");
    p.fingerprint = Some("A".into());
    b.run(&[p.clone()], &[]);
    p.fingerprint = Some("B".into());
    b.advance(H);
    assert_eq!(b.run(&[p], &[]), vec![]);
}

#[test]
fn load_balancer_alternating_certificates_does_not_alternate_alerts() {
    let mut b = Bed::new();
    let key = "probe:lb.example:443:expiry";
    let mut got = Vec::new();
    for i in 0..20 {
        let fp = if i % 2 == 0 { "A" } else { "B" };
        got.extend(b.run(&[expiry(key, fp, 7)], &[]));
        b.advance(H);
    }
    // One alert for A, one when B (another certificate) is first seen, then quiet.
    assert_eq!(got, vec![k(key, Kind::Firing), k(key, Kind::Threshold)]);
}

#[test]
fn load_balancer_alternating_verdicts_keeps_one_open_alert() {
    let mut b = Bed::new();
    let mut got = Vec::new();
    for i in 0..20 {
        if i % 2 == 0 {
            got.extend(b.run(&[warn("lb")], &[]));
        } else {
            got.extend(b.run(&[], &["lb"]));
        }
        b.advance(H);
    }
    assert_eq!(got, vec![k("lb", Kind::Firing)]);
    assert_eq!(b.state.open().count(), 1);
}

#[test]
fn refire_after_resolution_needs_consecutive_bad_checks() {
    let mut b = Bed::new();
    b.run(&[crit("a")], &[]);
    b.advance(H);
    b.run(&[], &["a"]);
    b.advance(H);
    assert_eq!(b.run(&[], &["a"]), vec![k("a", Kind::Resolved)]);
    // Flaps back once: quiet.
    b.advance(H);
    assert_eq!(b.run(&[crit("a")], &[]), vec![]);
    b.advance(H);
    assert_eq!(b.run(&[], &["a"]), vec![]);
    b.advance(H);
    assert_eq!(b.run(&[crit("a")], &[]), vec![]);
    // Bad twice in a row: fires again, with the episode starting at the first bad check.
    b.advance(H);
    let n = b.state.observe(b.now, &[crit("a")], &[], &b.policy);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].kind, Kind::Firing);
    assert_eq!(n[0].since, b.now - H);
}

#[test]
fn forgotten_resolution_fires_at_once() {
    let mut b = Bed::new();
    b.run(&[crit("a")], &[]);
    b.run(&[], &["a"]);
    b.run(&[], &["a"]);
    b.advance(7 * D);
    b.run(&[], &[]);
    assert!(b.state.alerts.is_empty());
    assert_eq!(b.run(&[crit("a")], &[]), vec![k("a", Kind::Firing)]);
}

#[test]
fn resolved_notification_carries_last_facts() {
    let mut b = Bed::new();
    let p = crit("a").detail("endpoint", "a.example:443");
    b.run(&[p], &[]);
    b.run(&[], &["a"]);
    let n = b.state.observe(b.now + 1, &[], &["a".into()], &b.policy);
    assert_eq!(n[0].kind, Kind::Resolved);
    assert_eq!(n[0].severity, Severity::Critical);
    assert_eq!(n[0].details["endpoint"], "a.example:443");
    assert_eq!(n[0].since, b.now);
}

#[test]
fn restart_neither_repeats_nor_loses() {
    let mut b = Bed::new();
    b.run(&[crit("a"), expiry("e", "A", 7)], &[]);
    b.advance(H);
    b.run(&[crit("a")], &["x"]);
    // Restart: serialize, deserialize, continue.
    let json = serde_json::to_string(&b.state).unwrap();
    b.state = serde_json::from_str(&json).unwrap();
    b.advance(H);
    assert_eq!(b.run(&[crit("a"), expiry("e", "A", 7)], &[]), vec![]);
    b.advance(D);
    assert_eq!(
        b.run(&[crit("a"), expiry("e", "A", 3)], &[]),
        vec![k("a", Kind::Repeat), k("e", Kind::Threshold)]
    );
    // Half-way through resolving, restart again.
    b.run(&[], &["a"]);
    let json = serde_json::to_string(&b.state).unwrap();
    b.state = serde_json::from_str(&json).unwrap();
    assert_eq!(b.run(&[], &["a"]), vec![k("a", Kind::Resolved)]);
}

#[test]
fn ids_are_unique_across_restarts() {
    let mut b = Bed::new();
    let first = b.state.observe(b.now, &[crit("a")], &[], &b.policy);
    let json = serde_json::to_string(&b.state).unwrap();
    b.state = serde_json::from_str(&json).unwrap();
    b.advance(D);
    let second = b.state.observe(b.now, &[crit("a")], &[], &b.policy);
    assert_ne!(first[0].id, second[0].id);
}

// ---- delivery queue ----

fn channels() -> Vec<(String, Severity)> {
    vec![
        ("mail".to_string(), Severity::Warning),
        ("pager".to_string(), Severity::Critical),
    ]
}

fn ids(v: &[Notification]) -> Vec<String> {
    v.iter().map(|n| n.id.clone()).collect()
}

fn observe_and_queue(b: &mut Bed, problems: &[Problem], ok: &[&str]) -> Vec<Notification> {
    let ok: Vec<String> = ok.iter().map(|s| s.to_string()).collect();
    let ns = b.state.observe(b.now, problems, &ok, &b.policy);
    for n in &ns {
        b.state.enqueue(n, &channels(), b.now);
    }
    ns
}

#[test]
fn routes_by_minimum_severity_and_groups_per_channel() {
    let mut b = Bed::new();
    observe_and_queue(&mut b, &[crit("a"), warn("w"), crit("c")], &[]);
    let (due, expired) = b.state.due(b.now, &b.policy);
    assert!(expired.is_empty());
    assert_eq!(due["mail"].len(), 3);
    assert_eq!(due["pager"].len(), 2);
    assert!(due["pager"]
        .iter()
        .all(|n| n.severity == Severity::Critical));
}

#[test]
fn delivered_is_never_resent() {
    let mut b = Bed::new();
    let ns = observe_and_queue(&mut b, &[crit("a")], &[]);
    let (due, _) = b.state.due(b.now, &b.policy);
    b.state.delivered("mail", &ids(&due["mail"]), b.now);
    // Queuing the same notification again is refused.
    b.state.enqueue(&ns[0], &channels(), b.now);
    let (due, _) = b.state.due(b.now, &b.policy);
    assert!(!due.contains_key("mail"));
    assert_eq!(due["pager"].len(), 1);
    b.state.enqueue(&ns[0], &channels(), b.now);
    assert_eq!(b.state.queue["pager"].len(), 1);
}

#[test]
fn failures_back_off_exponentially_and_respect_retry_after() {
    let mut b = Bed::new();
    observe_and_queue(&mut b, &[warn("w")], &[]);
    let t0 = b.now;
    let id = vec![b.state.queue["mail"][0].id.clone()];
    let mut expect = Vec::new();
    let mut at = t0;
    for _ in 0..12 {
        b.state
            .failed("mail", &id, at, "connection refused", None, &b.policy);
        let next = b.state.queue["mail"][0].next_at;
        expect.push(next - at);
        // Not due before next_at, due at it.
        assert!(b.state.due(next - 1, &b.policy).0.is_empty());
        at = next;
        assert_eq!(b.state.due(at, &b.policy).0["mail"].len(), 1);
    }
    assert_eq!(&expect[..4], &[60, 120, 240, 480]);
    assert!(expect.iter().all(|&s| s <= 6 * H));
    assert_eq!(*expect.last().unwrap(), 6 * H);
    assert_eq!(b.state.queue["mail"][0].attempts, 12);
    assert_eq!(
        b.state.queue["mail"][0].last_error.as_deref(),
        Some("connection refused")
    );

    let mut b = Bed::new();
    observe_and_queue(&mut b, &[warn("w")], &[]);
    let id = vec![b.state.queue["mail"][0].id.clone()];
    b.state
        .failed("mail", &id, b.now, "429", Some(900), &b.policy);
    assert_eq!(b.state.queue["mail"][0].next_at, b.now + 900);
}

#[test]
fn undelivered_expires_after_max_age() {
    let mut b = Bed::new();
    observe_and_queue(&mut b, &[warn("w")], &[]);
    let id = vec![b.state.queue["mail"][0].id.clone()];
    b.state
        .failed("mail", &id, b.now, "refused", None, &b.policy);
    let (due, expired) = b.state.due(b.now + 3 * D - 1, &b.policy);
    assert_eq!(due["mail"].len(), 1);
    assert!(expired.is_empty());
    let (due, expired) = b.state.due(b.now + 3 * D, &b.policy);
    assert!(due.is_empty());
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].channel, "mail");
    assert_eq!(expired[0].attempts, 1);
    assert_eq!(expired[0].last_error.as_deref(), Some("refused"));
    assert!(b.state.notifications.is_empty());
    assert_eq!(b.state.queued(), 0);
}

#[test]
fn failed_batch_joins_the_next_one() {
    let mut b = Bed::new();
    observe_and_queue(&mut b, &[warn("w1")], &[]);
    let (due, _) = b.state.due(b.now, &b.policy);
    b.state
        .failed("mail", &ids(&due["mail"]), b.now, "500", None, &b.policy);
    b.advance(120);
    observe_and_queue(&mut b, &[warn("w2")], &[]);
    let (due, _) = b.state.due(b.now, &b.policy);
    assert_eq!(due["mail"].len(), 2);
    assert_eq!(due["mail"][0].key, "w1");
}

#[test]
fn queue_survives_restart_and_sent_ids_are_pruned() {
    let mut b = Bed::new();
    observe_and_queue(&mut b, &[crit("a")], &[]);
    let (due, _) = b.state.due(b.now, &b.policy);
    b.state.delivered("mail", &ids(&due["mail"]), b.now);
    b.state
        .failed("pager", &ids(&due["pager"]), b.now, "500", None, &b.policy);
    let json = serde_json::to_string(&b.state).unwrap();
    let mut again: AlertState = serde_json::from_str(&json).unwrap();
    assert_eq!(again, b.state);
    let (due, _) = again.due(b.now + 60, &b.policy);
    assert!(!due.contains_key("mail"));
    assert_eq!(due["pager"].len(), 1);
    again.delivered("pager", &ids(&due["pager"]), b.now + 60);
    again.due(b.now + 7 * D, &b.policy);
    assert!(again.sent.is_empty());
    assert!(again.notifications.is_empty());
}

#[test]
fn dropped_channel_loses_only_its_queue() {
    let mut b = Bed::new();
    observe_and_queue(&mut b, &[crit("a")], &[]);
    assert_eq!(b.state.drop_channel("pager").len(), 1);
    let (due, _) = b.state.due(b.now, &b.policy);
    assert_eq!(due.len(), 1);
    assert!(due.contains_key("mail"));
}

#[test]
fn keys_of_earlier_releases_are_migrated() {
    assert_eq!(
        current_key("renew:shop").as_deref(),
        Some("renew:shop:renewal")
    );
    assert_eq!(
        current_key("renew:run").as_deref(),
        Some("renew:run:deploy")
    );
    assert_eq!(
        current_key("agent:ca-unreachable").as_deref(),
        Some("agent:ca:reachable")
    );
    assert_eq!(current_key("renew:shop:renewal"), None);
    assert_eq!(current_key("probe:a.example:443:expiry"), None);
    assert_eq!(check_of("probe:a.example:443:expiry"), "expiry");
    assert_eq!(check_of("renew:shop:renewal"), "renewal");

    let mut h = Bed::new();
    h.run(&[crit("renew:shop")], &[]);
    h.state.migrate_legacy_keys();
    assert!(h.state.alerts.contains_key("renew:shop:renewal"));
    assert!(!h.state.alerts.contains_key("renew:shop"));
    // The alert opened under the old key resolves under the new one.
    let mut sent = Vec::new();
    for _ in 0..3 {
        h.advance(D);
        sent.extend(h.run(&[], &["renew:shop:renewal"]));
    }
    assert!(
        sent.iter()
            .any(|(k, kind)| k == "renew:shop:renewal" && *kind == Kind::Resolved),
        "{sent:?}"
    );
}

fn am() -> Vec<(String, Severity, u64)> {
    vec![("am".to_string(), Severity::Warning, 60)]
}

fn refresh_keys(bed: &mut Bed, channels: &[(String, Severity, u64)]) -> Vec<(String, Kind)> {
    bed.state
        .refresh(bed.now, channels)
        .into_iter()
        .map(|n| (n.key, n.kind))
        .collect()
}

#[test]
fn open_alerts_are_refreshed_once_per_interval_only_on_refreshing_channels() {
    let mut bed = Bed::new();
    let routes = vec![
        ("am".to_string(), Severity::Warning),
        ("mail".to_string(), Severity::Warning),
    ];
    let n = bed.state.observe(bed.now, &[crit("a")], &[], &bed.policy);
    bed.state.enqueue(&n[0], &routes, bed.now);
    bed.state.delivered("am", &[n[0].id.clone()], bed.now);
    bed.state.delivered("mail", &[n[0].id.clone()], bed.now);
    bed.advance(59);
    assert_eq!(refresh_keys(&mut bed, &am()), vec![]);
    bed.advance(1);
    assert_eq!(
        refresh_keys(&mut bed, &am()),
        vec![("a".to_string(), Kind::Refresh)]
    );
    // Queued for the refreshing channel only.
    assert_eq!(bed.state.queue.get("am").map(Vec::len), Some(1));
    assert!(bed.state.queue.get("mail").is_none_or(|q| q.is_empty()));
    let id = bed.state.queue["am"][0].id.clone();
    bed.state.delivered("am", &[id], bed.now);
    // Not again within the interval, again after it.
    bed.advance(30);
    assert_eq!(refresh_keys(&mut bed, &am()), vec![]);
    bed.advance(30);
    assert_eq!(refresh_keys(&mut bed, &am()).len(), 1);
}

#[test]
fn no_refresh_while_a_delivery_is_still_queued() {
    let mut bed = Bed::new();
    let routes = vec![("am".to_string(), Severity::Warning)];
    let n = bed.state.observe(bed.now, &[crit("a")], &[], &bed.policy);
    bed.state.enqueue(&n[0], &routes, bed.now);
    // The receiver is down: the firing notification stays queued.
    for _ in 0..10 {
        bed.advance(120);
        assert_eq!(refresh_keys(&mut bed, &am()), vec![]);
    }
    assert_eq!(bed.state.queued(), 1);
    let id = bed.state.queue["am"][0].id.clone();
    bed.state.delivered("am", &[id], bed.now);
    bed.advance(60);
    assert_eq!(refresh_keys(&mut bed, &am()).len(), 1);
}

#[test]
fn resolved_and_low_severity_alerts_are_not_refreshed() {
    let mut bed = Bed::new();
    bed.policy.resolve_after_checks = 1;
    bed.run(&[crit("a"), warn("w")], &[]);
    let critical_only = vec![("am".to_string(), Severity::Critical, 60)];
    bed.advance(60);
    assert_eq!(
        refresh_keys(&mut bed, &critical_only),
        vec![("a".to_string(), Kind::Refresh)]
    );
    assert_eq!(
        bed.run(&[], &["a"]),
        vec![("a".to_string(), Kind::Resolved)]
    );
    bed.advance(600);
    assert_eq!(refresh_keys(&mut bed, &critical_only), vec![]);
    // A later notification (escalation, repeat) restarts the interval.
    let mut bed = Bed::new();
    bed.run(&[warn("w")], &[]);
    bed.advance(50);
    bed.run(&[crit("w")], &[]);
    bed.advance(30);
    assert_eq!(refresh_keys(&mut bed, &am()), vec![]);
    bed.advance(30);
    assert_eq!(refresh_keys(&mut bed, &am()).len(), 1);
}

#[test]
fn state_without_refresh_times_still_loads() {
    let mut bed = Bed::new();
    bed.run(&[crit("a")], &[]);
    let mut v = serde_json::to_value(&bed.state).unwrap();
    assert!(v["alerts"]["a"].get("refreshed").is_none());
    v["alerts"]["a"]
        .as_object_mut()
        .unwrap()
        .remove("refreshed");
    let back: AlertState = serde_json::from_value(v).unwrap();
    assert_eq!(back, bed.state);
}
