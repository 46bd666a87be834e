//! Alert delivery to peers not written for these tests: Debian's aiosmtpd,
//! a strict SMTP server (plain with AUTH PLAIN or LOGIN, STARTTLS required,
//! implicit TLS), and HTTPS receivers for the webhook and Slack channels
//! whose certificates come from a private CA that only the channel's
//! `ca_bundle` makes trusted. A wrong CA fails the delivery, sends nothing,
//! and the alert stays queued until a later attempt with the right CA.

use crate::common::aiosmtpd::{self, Aiosmtpd, AuthAttempt};
use crate::common::http_receiver::Receiver;
use crate::common::tlsgen::TestCa;
use crate::common::{alive, smtp::Mail};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use certkeep::alert::{Alerter, Problem, Severity};
use certkeep::config::Settings;

const USER: &str = "certkeep";
const PASSWORD: &str = "ai0smtpd-pa55word";

struct Bed {
    dir: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        Bed {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A CA in its own subdirectory (`<name>/ca.pem`).
    fn ca(&self, name: &str) -> TestCa {
        let d = self.path(name);
        std::fs::create_dir_all(&d).unwrap();
        TestCa::new(&d)
    }

    fn password(&self) -> PathBuf {
        let p = self.path("smtp-password");
        std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
        p
    }

    async fn alerter(&self, channels: &str) -> Alerter {
        let path = self.path("certkeep.toml");
        let text = format!(
            "store = {:?}\n\n[renewal]\nlock_wait = \"5s\"\n\n[alert]\n{channels}",
            self.path("store")
        );
        std::fs::write(&path, &text).unwrap();
        let config = Settings::parse(&text, &path).expect("config parses");
        Alerter::load(&config.alerting()).await.expect("alerter")
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000 + secs)
}

fn expiry(host: &str, days: i64) -> Problem {
    Problem::new(
        format!("probe:{host}:443:expiry"),
        Severity::Critical,
        format!("{host}:443 certificate expires in {days} days"),
    )
    .detail("endpoint", format!("{host}:443"))
    .detail("problem", "expiry")
    .detail("days_left", days.to_string())
    .detail("issuer", "CN=Peer Test CA")
    .detail("serial", "0c:0f:fe:e0")
}

fn email_channel(port: u16, tls: &str, extra: &str) -> String {
    format!(
        r#"
[[alert.channel]]
name = "mail"
type = "email"
from = "certkeep <certkeep@example.test>"
to = ["ops@example.test", "On call <oncall@example.test>"]
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "{tls}"
timeout = "20s"
{extra}
"#
    )
}

/// The message as the strict server stored it, against values written here.
fn check_mail(m: &Mail, host: &str, days: i64) {
    assert_eq!(m.from, "certkeep@example.test");
    assert_eq!(m.rcpt, vec!["ops@example.test", "oncall@example.test"]);
    assert_eq!(
        m.header("Subject").as_deref(),
        Some(
            format!("[certkeep] CRITICAL: {host}:443 certificate expires in {days} days").as_str()
        ),
        "{}",
        m.data
    );
    assert_eq!(
        m.header("From").as_deref(),
        Some("certkeep <certkeep@example.test>")
    );
    assert_eq!(
        m.header("To").as_deref(),
        Some(r#"ops@example.test, "On call" <oncall@example.test>"#)
    );
    assert_eq!(m.header("MIME-Version").as_deref(), Some("1.0"));
    assert_eq!(
        m.header("Content-Type").as_deref(),
        Some("text/plain; charset=utf-8"),
        "{}",
        m.data
    );
    let id = m.header("Message-ID").unwrap_or_default();
    assert!(
        id.starts_with('<') && id.ends_with("@example.test>"),
        "{id}"
    );
    assert!(m.header("Date").is_some_and(|d| !d.is_empty()));
    let body = m.body();
    for want in [
        format!("CRITICAL: {host}:443 certificate expires in {days} days"),
        format!("Endpoint: {host}:443"),
        format!("Days left: {days}"),
        "Issuer: CN=Peer Test CA".to_string(),
        "Serial: 0c:0f:fe:e0".to_string(),
        format!("Alert: probe:{host}:443:expiry"),
    ] {
        assert!(body.contains(&want), "body lacks {want:?}:\n{body}");
    }
    for line in m.data.split("\r\n") {
        assert!(line.len() <= 998, "line over RFC 5322's limit: {line:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_smtp_server_takes_mail_with_auth_plain_and_auth_login() {
    if !aiosmtpd::available() {
        return;
    }
    for mechanism in ["PLAIN", "LOGIN"] {
        let server = Aiosmtpd::start(aiosmtpd::Options {
            credentials: Some((USER, PASSWORD)),
            only_mechanism: Some(mechanism),
            auth_in_clear: true,
            ..Default::default()
        });
        let bed = Bed::new();
        let pw = bed.password();
        let mut alerter = bed
            .alerter(&email_channel(
                server.port,
                "none",
                &format!("username = {USER:?}\npassword_file = {pw:?}\n"),
            ))
            .await;
        alerter.observe(at(0), vec![expiry("plain.example", 2)], &[]);
        let report = alerter.flush(at(0)).await.unwrap();
        assert!(report.ok(), "{mechanism}: {report:?}\n{}", server.log());
        let mails = server.mails();
        assert_eq!(mails.len(), 1, "{mechanism}");
        check_mail(&mails[0], "plain.example", 2);
        assert!(!mails[0].tls);
        assert_eq!(
            mails[0].auth,
            Some((USER.to_string(), String::new(), mechanism.to_string()))
        );
        assert_eq!(
            server.auths(),
            vec![AuthAttempt {
                mechanism: mechanism.to_string(),
                ok: true
            }],
            "one AUTH, accepted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_smtp_server_without_auth_takes_unauthenticated_mail() {
    if !aiosmtpd::available() {
        return;
    }
    let server = Aiosmtpd::start(aiosmtpd::Options::default());
    let bed = Bed::new();
    let mut alerter = bed.alerter(&email_channel(server.port, "none", "")).await;
    alerter.observe(at(0), vec![expiry("relay.example", 1)], &[]);
    let report = alerter.flush(at(0)).await.unwrap();
    assert!(report.ok(), "{report:?}\n{}", server.log());
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    check_mail(&mails[0], "relay.example", 1);
    assert_eq!(mails[0].auth, None);
    assert!(server.auths().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_smtp_server_over_starttls_and_smtps_trusts_only_the_ca_bundle() {
    if !aiosmtpd::available() {
        return;
    }
    for (mode, tls) in [
        (aiosmtpd::Mode::Starttls, "starttls"),
        (aiosmtpd::Mode::Smtps, "tls"),
    ] {
        let bed = Bed::new();
        let ca = bed.ca("right");
        let other = bed.ca("wrong");
        let server = Aiosmtpd::start(aiosmtpd::Options {
            mode,
            ca: Some(&ca),
            credentials: Some((USER, PASSWORD)),
            ..Default::default()
        });
        let pw = bed.password();
        let channel = |ca: &Path| {
            email_channel(
                server.port,
                tls,
                &format!("username = {USER:?}\npassword_file = {pw:?}\nca_bundle = {ca:?}\n"),
            )
        };

        // The wrong CA: the handshake fails, no password and no mail go out.
        let mut alerter = bed.alerter(&channel(&other.path)).await;
        alerter.observe(at(0), vec![expiry("tls.example", 2)], &[]);
        let report = alerter.flush(at(0)).await.unwrap();
        let err = report.outcomes[0].error.clone().unwrap_or_default();
        assert!(err.contains("127.0.0.1"), "{tls}: {err}");
        assert!(err.to_lowercase().contains("certificate"), "{tls}: {err}");
        assert!(!err.contains(PASSWORD), "{tls}: {err}");
        assert_eq!(report.queued, 1, "{tls}: kept for a retry");
        assert!(server.mails().is_empty(), "{tls}");
        assert!(server.auths().is_empty(), "{tls}: AUTH before trust");
        drop(alerter);

        // The operator points ca_bundle at the right CA; the queued alert
        // goes out on the retry, over TLS, authenticated.
        let mut alerter = bed.alerter(&channel(&ca.path)).await;
        let report = alerter.flush(at(3600)).await.unwrap();
        assert!(report.ok(), "{tls}: {report:?}\n{}", server.log());
        assert_eq!(report.queued, 0);
        let mails = server.mails();
        assert_eq!(mails.len(), 1, "{tls}");
        check_mail(&mails[0], "tls.example", 2);
        assert!(mails[0].tls, "{tls}: the mail went over TLS");
        assert_eq!(mails[0].auth.as_ref().map(|a| a.0.as_str()), Some(USER));
        assert_eq!(server.auths().len(), 1, "{tls}");
        assert!(server.auths()[0].ok, "{tls}");
    }
}

/// Slack and webhook channels, each to its own HTTPS receiver with a
/// certificate from a private CA: no `ca_bundle` and the wrong one both fail
/// the handshake and keep the alert queued; the right one delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_and_slack_over_https_trust_only_their_ca_bundle() {
    let bed = Bed::new();
    let ca = bed.ca("right");
    let other = bed.ca("wrong");
    let hook = Receiver::start_tls(vec![], &ca).await;
    let slack = Receiver::start_tls(vec![], &ca).await;
    let channels = |bundle: Option<&Path>| {
        let line = bundle
            .map(|p| format!("ca_bundle = {p:?}\n"))
            .unwrap_or_default();
        format!(
            "[[alert.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = {:?}\ntimeout = \"20s\"\n{line}\
             [[alert.channel]]\nname = \"slack\"\ntype = \"slack\"\nurl = {:?}\ntimeout = \"20s\"\n{line}",
            hook.url("/hook"),
            slack.url("/services/T0/B0/x")
        )
    };
    assert!(hook.url("/").starts_with("https://127.0.0.1:"));

    let mut failures = 0;
    for (step, bundle) in [(0, None), (1, Some(other.path.as_path()))] {
        let mut alerter = bed.alerter(&channels(bundle)).await;
        if step == 0 {
            alerter.observe(at(0), vec![expiry("https.example", 2)], &[]);
        }
        // Each attempt comes after the back-off of the one before.
        let report = alerter.flush(at(step * 3600)).await.unwrap();
        assert_eq!(report.outcomes.len(), 2, "step {step}: {report:?}");
        for o in &report.outcomes {
            let err = o.error.clone().unwrap_or_default();
            assert!(err.contains("https://127.0.0.1:"), "step {step}: {err}");
            assert!(
                !err.contains("/services/"),
                "the Slack URL path is secret: {err}"
            );
        }
        assert_eq!(report.queued, 2, "step {step}: both kept for a retry");
        assert_eq!(alerter.state().queued(), 2);
        failures += 2;
        assert!(hook.requests().is_empty() && slack.requests().is_empty());
        assert_eq!(
            hook.handshake_errors().len() + slack.handshake_errors().len(),
            failures,
            "step {step}: every attempt ended in the TLS handshake"
        );
    }

    let mut alerter = bed.alerter(&channels(Some(&ca.path))).await;
    let report = alerter.flush(at(3 * 3600)).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(alerter.state().queued(), 0);

    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/hook");
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    let v = reqs[0].json();
    assert_eq!(v["version"], "1");
    assert_eq!(v["receiver"], "hook");
    assert_eq!(v["status"], "firing");
    assert_eq!(
        v["alerts"][0]["labels"]["key"],
        "probe:https.example:443:expiry"
    );
    assert_eq!(v["alerts"][0]["labels"]["severity"], "critical");
    assert_eq!(v["alerts"][0]["startsAt"], "2026-05-28T20:26:40Z");

    let reqs = slack.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/services/T0/B0/x");
    let v = reqs[0].json();
    assert_eq!(
        v["blocks"][0]["text"]["text"],
        "certkeep: CRITICAL: https.example:443 certificate expires in 2 days"
    );
    assert!(v["text"]
        .as_str()
        .unwrap_or_default()
        .contains("https.example:443 certificate expires in 2 days"));
}

/// The aiosmtpd process ends with its handle, also when the test panics.
#[test]
fn strict_smtp_server_stops_when_a_test_panics() {
    if !aiosmtpd::available() {
        return;
    }
    let mut pid = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let server = Aiosmtpd::start(aiosmtpd::Options::default());
        pid = Some(server.pid());
        assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_ok());
        panic!("deliberate panic with aiosmtpd running (harness test)");
    }));
    assert!(r.is_err());
    let pid = pid.expect("the server started");
    assert!(!alive(pid), "aiosmtpd {pid} still running after the panic");
}
