//! The Alertmanager channel against a real Alertmanager on loopback
//! (tests/it/common/alertmanager.rs), which notifies the test's HTTP
//! receiver as a webhook receiver: what arrives there is what an on-call
//! team would see.

use crate::common::alertmanager::{self, Alertmanager};
use crate::common::free_port;
use crate::common::http_receiver::{Receiver, Request};

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use certkeep::alert::{Alerter, Problem, Severity};
use certkeep::config::Settings;

/// Bound on waiting for a notification: Alertmanager's group_wait is 1s;
/// the rest is margin for a loaded machine.
const NOTIFY_BOUND: Duration = Duration::from_secs(30);

/// One certkeep agent: its own config and store.
struct Agent {
    dir: tempfile::TempDir,
    config: Settings,
}

impl Agent {
    fn new(instance: &str, am_urls: &[String], extra: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("certkeep.toml");
        let text = format!(
            "store = {:?}\n\n[renewal]\nlock_wait = \"5s\"\n\n[alert]\nresolve_after_checks = 1\nretry_initial = \"1s\"\n\n[[alert.channel]]\nname = \"am\"\ntype = \"alertmanager\"\nurls = {am_urls:?}\ninstance = {instance:?}\ngenerator_url = \"http://{instance}.example:9464/\"\ntimeout = \"5s\"\n{extra}\n",
            dir.path().join("store")
        );
        std::fs::write(&path, &text).expect("write config");
        let config = Settings::parse(&text, &path).expect("config parses");
        Agent { dir, config }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("certkeep.toml")
    }

    async fn alerter(&self) -> Alerter {
        Alerter::load(&self.config.alerting())
            .await
            .expect("alerter")
    }
}

const KEY: &str = "probe:shop.example:443:expiry";

/// The same expiring certificate, as every agent probing it sees it.
fn expiring() -> Problem {
    let mut p = Problem::new(
        KEY,
        Severity::Warning,
        "shop.example:443 certificate expires in 5 days",
    )
    .detail("endpoint", "shop.example:443")
    .detail("problem", "certificate expires in 5 days")
    .detail("days_left", "5")
    .detail("issuer", "CN=Test CA")
    .detail("serial", "0a:1b:2c");
    p.fingerprint = Some("fp-shop".into());
    p.threshold = Some(7);
    p
}

/// Waits until `done` holds for the notifications received so far.
async fn wait_notifications(
    rx: &Receiver,
    what: &str,
    done: impl Fn(&[Request]) -> bool,
) -> Vec<Request> {
    let start = Instant::now();
    loop {
        let reqs = rx.requests();
        if done(&reqs) {
            return reqs;
        }
        if start.elapsed() > NOTIFY_BOUND {
            let bodies: Vec<String> = reqs
                .iter()
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .collect();
            panic!("timed out after {NOTIFY_BOUND:?} waiting for {what}; got {bodies:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn instances(n: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = n["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["instance"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_make_one_grouped_notification_then_resolved() {
    require!(alertmanager::BIN);
    let rx = Receiver::start(vec![]).await;
    let am = Alertmanager::start(
        free_port(),
        &Alertmanager::config(&rx.url("/am"), &["alertname", "endpoint"]),
    )
    .await;
    let a = Agent::new("agent-a", &[am.url()], "");
    let b = Agent::new("agent-b", &[am.url()], "");
    for agent in [&a, &b] {
        let mut alerter = agent.alerter().await;
        let now = SystemTime::now();
        assert_eq!(alerter.observe(now, vec![expiring()], &[]).len(), 1);
        let report = alerter.flush(now).await.unwrap();
        assert!(report.ok(), "{report:?}");
    }
    let reqs = wait_notifications(&rx, "a firing notification", |r| !r.is_empty()).await;
    // Give Alertmanager time for a second notification if it were to send one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reqs_after = rx.requests();
    assert_eq!(
        reqs_after.len(),
        reqs.len(),
        "one notification for both agents: {:?}",
        reqs_after.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    assert_eq!(reqs.len(), 1);
    let n = reqs[0].json();
    assert_eq!(n["status"], "firing");
    assert_eq!(n["groupLabels"]["alertname"], "CertkeepExpiry");
    assert_eq!(n["groupLabels"]["endpoint"], "shop.example:443");
    assert_eq!(instances(&n), vec!["agent-a", "agent-b"]);
    let first = &n["alerts"][0];
    assert_eq!(first["labels"]["check"], "expiry");
    assert_eq!(first["labels"]["severity"], "warning");
    assert_eq!(
        first["annotations"]["summary"],
        "shop.example:443 certificate expires in 5 days"
    );
    assert_eq!(first["annotations"]["days_left"], "5");
    assert_eq!(first["annotations"]["serial"], "0a:1b:2c");
    assert_eq!(first["annotations"]["issuer"], "CN=Test CA");
    assert!(
        first["generatorURL"]
            .as_str()
            .unwrap()
            .ends_with(".example:9464/"),
        "{first}"
    );

    // Fixed: both agents see it fine again and resolve it.
    for agent in [&a, &b] {
        let mut alerter = agent.alerter().await;
        let now = SystemTime::now();
        let out = alerter.observe(now, vec![], &[KEY.to_string()]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(alerter.flush(now).await.unwrap().ok());
    }
    let reqs = wait_notifications(&rx, "a resolved notification", |r| {
        r.last().is_some_and(|r| r.json()["status"] == "resolved")
    })
    .await;
    let n = reqs.last().unwrap().json();
    assert_eq!(instances(&n), vec!["agent-a", "agent-b"]);
    for alert in n["alerts"].as_array().unwrap() {
        assert_eq!(alert["status"], "resolved", "{alert}");
    }
    let pid = am.pid();
    drop(am);
    assert!(
        !crate::common::alive(pid),
        "Alertmanager {pid} still running after drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_down_at_first_gets_the_alert_once_when_up() {
    require!(alertmanager::BIN);
    let rx = Receiver::start(vec![]).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let agent = Agent::new(
        "agent-a",
        std::slice::from_ref(&url),
        "resend_interval = \"1s\"",
    );
    let mut alerter = agent.alerter().await;
    let now = SystemTime::now();
    alerter.observe(now, vec![expiring()], &[]);
    let report = alerter.flush(now).await.unwrap();
    let err = report.outcomes[0]
        .error
        .as_deref()
        .expect("Alertmanager is down");
    assert!(err.contains(&url), "{err}");
    assert_eq!(report.queued, 1);

    let am = Alertmanager::start(port, &Alertmanager::config(&rx.url("/am"), &["alertname"])).await;
    // The retry (after retry_initial = 1s) and, later, refreshes every
    // resend_interval (1s): Alertmanager hears of the alert several times.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let report = alerter.flush(SystemTime::now()).await.unwrap();
        assert!(report.ok(), "{report:?}");
    }
    assert_eq!(alerter.state().queued(), 0);
    let reqs = wait_notifications(&rx, "the firing notification", |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reqs_after = rx.requests();
    assert_eq!(
        reqs_after.len(),
        1,
        "delivered once: {:?}",
        reqs_after.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    let n = reqs[0].json();
    assert_eq!(n["status"], "firing");
    assert_eq!(n["alerts"].as_array().unwrap().len(), 1);
    // Refreshed: Alertmanager's copy ends four resend intervals after the
    // last send, in the future.
    let report = alerter.flush(SystemTime::now()).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let held = am.alerts().await;
    assert_eq!(held.len(), 1, "{held:?}\n{}", am.log());
    assert_eq!(held[0]["status"]["state"], "active");
    assert_eq!(held[0]["labels"]["instance"], "agent-a");
    let ends = time::OffsetDateTime::parse(
        held[0]["endsAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(ends > time::OffsetDateTime::now_utc(), "{ends}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_test_command_and_every_url_gets_every_alert() {
    require!(alertmanager::BIN);
    let rx1 = Receiver::start(vec![]).await;
    let rx2 = Receiver::start(vec![]).await;
    let am1 = Alertmanager::start(
        free_port(),
        &Alertmanager::config(&rx1.url("/am"), &["alertname"]),
    )
    .await;
    let am2 = Alertmanager::start(
        free_port(),
        &Alertmanager::config(&rx2.url("/am"), &["alertname"]),
    )
    .await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let token = "s3cret-bearer-do-not-log";
    let agent = Agent::new("agent-t", &[am1.url(), am2.url(), dead], "");
    let config = agent.config_path();
    let token_file = agent.dir.path().join("am-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!("bearer_token_file = {token_file:?}\n");
    std::fs::write(&config, text).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_certkeep"))
        .arg("--config")
        .arg(&config)
        .args(["alert", "test"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("am (alertmanager): delivered"), "{stdout}");
    assert!(!stdout.contains(token) && !stderr.contains(token));
    for (am, rx) in [(&am1, &rx1), (&am2, &rx2)] {
        let held = am.alerts().await;
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0]["labels"]["alertname"], "CertkeepTest");
        assert_eq!(held[0]["labels"]["instance"], "agent-t");
        let reqs = wait_notifications(rx, "the test notification", |r| !r.is_empty()).await;
        assert_eq!(
            reqs[0].json()["alerts"][0]["labels"]["alertname"],
            "CertkeepTest"
        );
    }
}
